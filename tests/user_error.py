"""``user_error(capsys, main, argv)``: run a command's ``main`` on bad input and return its one
line of stderr, checking the way every command reports a user error (``error: ...``, exit 2)."""


def user_error(capsys, main, argv) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err
