"""What goes into a bulk call's stage and what comes out of it (:mod:`mephisto_quals.store.staging`)."""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple, Union

__all__ = ["StagedRow", "UniformRow", "Group", "Groups", "Outcome"]

#: One worker of a bulk call, in the order the stage binds it: (given, ref, value, line, group).
#: ``given`` is the worker as the caller wrote them; ``ref`` is a Mephisto worker id (an int) when
#: the row's group has no provider, else the Mephisto worker name; ``value`` the grant's value
#: (None for revokes); ``line`` where the row came from (a CSV line) for messages; ``group`` a
#: number from :class:`Groups`. Five values per row: the shared rest is copied in SQL.
StagedRow = Tuple[str, Union[int, str], Optional[int], Optional[int], int]
#: A row of a call whose rows are all of one group and have no line: (given, ref, value).
UniformRow = Tuple[str, Union[int, str], Optional[int]]


class Group(NamedTuple):
    """What rows of one call may share: the provider that names them, the expiry and the reason."""

    provider: Optional[str]
    expires_at: Optional[float]
    reason: Optional[str]

    @property
    def audit_key(self) -> str:
        """Rows with the same expiry and reason share one audit batch, whatever their provider."""
        return f"{self.expires_at!r},{self.reason!r}"


class Groups:
    """The groups of one call, numbered in the order first used."""

    def __init__(self) -> None:
        self._numbers: Dict[Group, int] = {}
        self.groups: List[Group] = []

    def number(self, provider: Optional[str], expires_at: Optional[float] = None, reason: Optional[str] = None) -> int:
        """The number of a group (a new one the first time it is named)."""
        key = Group(provider, expires_at, reason)
        found = self._numbers.get(key)
        if found is None:
            found = self._numbers[key] = len(self.groups)
            self.groups.append(key)
        return found


class Outcome(NamedTuple):
    """What one staged row came to: status granted/updated/unchanged/revoked/not held/missing."""

    given: str
    status: str
    worker_id: Optional[int]
    worker_name: Optional[str]
    old_value: Optional[int]
    new_value: Optional[int]
    #: Named by Mephisto worker id (else by name).
    by_id: bool
    #: The last row naming this worker: the one whose grant was written.
    last: bool
