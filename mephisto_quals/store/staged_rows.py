"""What goes into a bulk call's stage and what comes out of it (:mod:`mephisto_quals.store.staging`)."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

__all__ = ["StagedRow", "Outcome"]


class StagedRow(NamedTuple):
    """One worker of a bulk call: as given, by Mephisto id or by Mephisto worker name + provider,
    with the grant wanted (value, expiry, reason; unused by revokes)."""

    given: str
    worker_id: Optional[int]
    name: Optional[str]
    provider: Optional[str]
    value: Optional[int] = None
    expires_at: Optional[float] = None
    reason: Optional[str] = None
    #: Where the row came from (a CSV line), for messages.
    line: Optional[int] = None


class Outcome(NamedTuple):
    """What one staged row came to: status granted/updated/unchanged/revoked/not held/missing."""

    given: str
    status: str
    worker_id: Optional[int]
    worker_name: Optional[str]
    old_value: Optional[int]
    new_value: Optional[int]
    expires_at: Optional[float]
    reason: Optional[str]
    #: Named by Mephisto worker id (else by name).
    by_id: bool
    #: The last row naming this worker: the one whose grant was written.
    last: bool
    #: On the last row: the database's value before the call, if the call changed this worker's grant.
    changed_from: Optional[Tuple[Optional[int]]] = None
    provider: Optional[str] = None
