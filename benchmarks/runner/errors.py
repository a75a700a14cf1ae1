"""User errors: bad input reported as one line, ``error: <message>`` on stderr, exit code 2.

A command's ``main`` is wrapped with ``@reports_user_errors``. A ``UserError`` (a bad config,
flag, file, dataset or environment variable, found before any long work starts), a dataset-not-found error or a
``SystemExit`` with a message then prints one line and returns 2; with ``--debug`` among the arguments it raises with its
traceback instead. Any other exception is an internal error and keeps its traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input: the message says what was wrong and what was expected."""


def _user_error_types() -> tuple:
    from retrieval.data.base import DatasetNotFoundError  # imported late: it pulls in torch

    return UserError, DatasetNotFoundError


def is_user_error(exc: BaseException) -> bool:
    """A ``UserError``, a dataset-not-found error, or ``SystemExit("message")`` (the commands'
    older way of stopping on bad input), unless the exception says ``user_error = False``."""
    if getattr(exc, "user_error", True) is False:
        return False
    if isinstance(exc, SystemExit):
        return isinstance(exc.code, str)
    return isinstance(exc, _user_error_types())


def one_line(message: str) -> str:
    """``message`` with its lines joined by spaces (``error:`` reports are one line)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _check_environment() -> None:
    """Environment variables the project reads, checked before any work (``HMAT_CPU_ISA``)."""
    from retrieval.numerics import choice  # late: every command imports this module, and --help needs no library

    try:
        choice()
    except ValueError as err:
        raise UserError(str(err)) from None


def reports_user_errors(main):
    """Wrap a command's ``main(argv=None) -> int`` (see the module docstring)."""

    @functools.wraps(main)
    def wrapped(argv=None):
        args = sys.argv[1:] if argv is None else list(argv)
        try:
            _check_environment()
            return main(argv)
        except (Exception, SystemExit) as exc:
            if "--debug" in args or not is_user_error(exc):
                raise
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return EXIT_USER_ERROR

    return wrapped


def add_debug_flag(parser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error")


def comma_list(text: str, cast=str) -> list:
    """An argparse ``type``: the comma-separated values of ``text`` (blanks dropped), each through ``cast``;
    a list with no value (``--methods ,``, ``--seeds ""``) is refused like any bad flag."""
    try:
        values = [cast(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from exc
    if not values:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of at least one value, got {text!r}")
    return values


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad flag reported like every other user error: one line, exit 2."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see {self.prog} --help)\n")
