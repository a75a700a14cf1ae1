"""``python -m benchmarks.make_digits_folder``: 10 class folders holding every digit once."""

from PIL import Image

from benchmarks import make_digits_folder


def test_writes_every_digit_once_in_its_class_folder(tmp_path, capsys):
    assert make_digits_folder.main([str(tmp_path / "digits")]) == 0
    folders = sorted((tmp_path / "digits").iterdir())
    assert [f.name for f in folders] == [f"digit_{k}" for k in range(10)]
    assert sum(len(list(f.glob("*.png"))) for f in folders) == 1797
    with Image.open(next(folders[3].glob("*.png"))) as image:
        assert image.size == (8, 8) and image.mode == "L" and image.getextrema()[1] > 128
    assert make_digits_folder.main([str(tmp_path / "digits")]) == 2  # not empty: refused
    assert "not empty" in capsys.readouterr().err
