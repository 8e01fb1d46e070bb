"""Exceptions raised by mephisto-quals, one hierarchy so callers can catch them all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

__all__ = [
    "QualsError",
    "QualsConfigError",
    "Problem",
    "DatabaseError",
    "DatabaseBusy",
    "SchemaError",
    "UnknownQualificationError",
    "InputError",
    "OperationFailed",
    "ProlificError",
    "ProlificRefused",
    "ProlificLiveRefused",
    "ProlificInputError",
    "RowsRefused",
]


class QualsError(Exception):
    """Base class of every error mephisto-quals raises on purpose.

    A subclass may set ``exit_code``, what the command line exits with: 2 for bad input
    (nothing was written), 1 for an operation that failed.
    """


@dataclass(frozen=True)
class Problem:
    """One bad config value: where it is, what it was, and what would be valid."""

    path: str
    value: Any
    expected: str

    def __str__(self) -> str:
        return f"{self.path}: {self.value!r} is not valid; {self.expected}"


class QualsConfigError(QualsError, ValueError):
    """A qualification config that must not launch, listing every problem found.

    Raised before anything is written to the Mephisto database, so a failed launch
    leaves no task run and no qualification behind.
    """

    def __init__(self, problems: Sequence[Problem]):
        self.problems: List[Problem] = list(problems)
        if len(self.problems) == 1:
            message = f"invalid qualification config: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"invalid qualification config ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)


class DatabaseError(QualsError, ValueError):
    """The database file is missing, unreadable or not a Mephisto database."""


class DatabaseBusy(DatabaseError):
    """Another process kept the database's write lock for longer than we wait."""

    exit_code = 1


class SchemaError(DatabaseError):
    """Our tables in this database are of a layout this version cannot use as they are."""


class UnknownQualificationError(QualsError, LookupError):
    """A qualification the caller named does not exist (and was not to be created)."""


class InputError(QualsError, ValueError):
    """Bad usage or input (a missing file, an unknown name, a bad CSV line): nothing was written.

    The command line exits with :attr:`exit_code` 2 and prints the message.
    """

    exit_code = 2


class OperationFailed(QualsError, RuntimeError):
    """An operation was refused or failed part-way (the database, MTurk): what succeeded is kept.

    The command line exits with :attr:`exit_code` 1 and prints the message.
    """

    exit_code = 1


class ProlificError(OperationFailed):
    """A Prolific call failed (unreachable, retries used up, an unexpected answer): what succeeded is kept."""


class ProlificRefused(ProlificError):
    """Prolific answered a request with an error status (4xx/5xx after retries); ``status`` and ``body`` say which."""

    def __init__(self, message: str, status: int = 0, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class ProlificLiveRefused(InputError):
    """A call to the real Prolific (a non-loopback base URL: real money, no sandbox) without ``live_ok``/``--live``."""


class ProlificInputError(InputError):
    """Bad input for Prolific (a participant id that is not 24 hex characters, no API key): nothing was sent."""


class RowsRefused(InputError):
    """With ``all_or_nothing``: some workers could not be granted, so nothing was written.

    ``failures`` maps each such worker, as given, to why.
    """

    def __init__(self, failures: Dict[str, str], lines: Optional[Dict[str, int]] = None):
        self.failures = dict(failures)
        #: Where each refused worker was given (a CSV line), when known.
        self.lines = dict(lines or {})
        listed = "\n".join(f"  {w}: {why}" for w, why in self.failures.items())
        super().__init__(f"{len(self.failures)} worker(s) could not be granted; nothing was written:\n{listed}")
