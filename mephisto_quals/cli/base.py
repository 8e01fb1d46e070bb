"""Command classes shared by every ``mephisto-quals`` command, and the one error translation.

Errors become a clean one-line message and an exit code in :func:`translate`, and nowhere
else: an error's own ``exit_code`` (:class:`~mephisto_quals.errors.InputError` 2,
:class:`~mephisto_quals.errors.OperationFailed` 1), other package errors and ``ValueError``
2 (``RuntimeError`` 1), ``sqlite3`` errors 1, botocore (MTurk) errors 1. Every group and
command uses one of the classes below, so a command invoked on its own (as the tests do)
exits the same way as under the root group. Nothing here imports Mephisto or botocore.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Optional

import click as plain_click
import rich_click as click

from mephisto_quals.errors import QualsError

__all__ = [
    "QualsGroup",
    "QualsCommand",
    "RichQualsGroup",
    "RichQualsCommand",
    "translate",
    "mturk_failure",
    "is_botocore_error",
    "CONTEXT_SETTINGS",
]

click.rich_click.SHOW_ARGUMENTS = True
click.rich_click.USE_RICH_MARKUP = False  # worker names and reasons may contain [brackets]

#: -h works as --help everywhere.
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class CommandFailed(plain_click.ClickException):
    """What :func:`translate` gives click: the message and the exit code to leave with."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def is_botocore_error(error: BaseException) -> bool:
    """Whether ``error`` comes from botocore (an MTurk call), without importing botocore."""
    return type(error).__module__.startswith("botocore")


def mturk_failure(error: BaseException) -> str:
    """The message for a botocore error: what MTurk refused, or that it could not be reached."""
    from botocore.exceptions import ClientError

    from mephisto_quals.providers.mturk.client import error_text

    if isinstance(error, ClientError):
        return f"MTurk refused: {error_text(error)}"
    return f"could not reach MTurk: {error}"


def translate(error: BaseException) -> Optional[plain_click.ClickException]:
    """The clean message and exit code for ``error``, or None to let it through (click's own, bugs)."""
    if isinstance(error, (plain_click.ClickException, plain_click.exceptions.Abort, plain_click.exceptions.Exit)):
        return None
    code = getattr(error, "exit_code", None)
    if isinstance(error, QualsError) and isinstance(code, int):
        return CommandFailed(str(error), code)
    if isinstance(error, (QualsError, ValueError, FileNotFoundError)):
        # a RuntimeError is an operation that failed, not bad input
        return CommandFailed(str(error), 1 if isinstance(error, RuntimeError) else 2)
    if isinstance(error, sqlite3.Error):
        hint = ""
        if "disk" in str(error) or "full" in str(error):
            hint = (" (is the disk full, or the file size limited?); the failed transaction was rolled back: "
                    "run the command again")
        return CommandFailed(f"database error: {error}{hint}", 1)
    if is_botocore_error(error):
        return CommandFailed(mturk_failure(error), 1)
    return None


class Translating:
    """Mixin for click commands and groups: errors raised below become :func:`translate`'s message."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except Exception as e:
            failure = translate(e)
            if failure is None:
                raise
            raise failure from e


class RichQualsGroup(Translating, click.RichGroup):
    """A group with rich help (the root group)."""


class RichQualsCommand(Translating, click.RichCommand):
    """A command with rich help (grants, queries, eligibility, review, wut)."""


class QualsGroup(Translating, plain_click.Group):
    """A group with click's plain help (the provider groups: sync, qual-types, requests)."""


class QualsCommand(Translating, plain_click.Command):
    """A command with click's plain help (export-prolific)."""
