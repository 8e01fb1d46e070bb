"""Read-only questions about qualifications: who holds what, and the audit history."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, List, Optional

from mephisto_quals.compile.durations import format_instant
from mephisto_quals.errors import UnknownQualificationError
from mephisto_quals.store import Session, session_for
from mephisto_quals.store import audit as audit_store
from mephisto_quals.store import grants as grant_store
from mephisto_quals.store import qualifications as qual_store
from mephisto_quals.store import reviews as review_store

__all__ = [
    "Holder",
    "QualificationSummary",
    "AuditEntry",
    "holders",
    "list_qualifications",
    "description",
    "history",
    "REVIEW_APP_SOURCE",
]

#: The source of history entries read from Mephisto's ``worker_review`` table (the review app's grants).
REVIEW_APP_SOURCE = "review_app"


@dataclass(frozen=True)
class Holder:
    """One worker holding a qualification."""

    worker_id: int
    worker_name: str
    provider_type: str
    value: int
    expires_at: Optional[float]
    reason: Optional[str]

    @property
    def expires(self) -> str:
        return format_instant(self.expires_at)


@dataclass(frozen=True)
class QualificationSummary:
    """A qualification with how many workers hold it now and how many grants expired."""

    name: str
    holders: int
    expired: int
    description: Optional[str] = None


@dataclass(frozen=True)
class AuditEntry:
    """One recorded change."""

    at: float
    qualification: str
    worker_id: int
    worker_name: Optional[str]
    action: str
    old_value: Optional[int]
    new_value: Optional[int]
    expires_at: Optional[float]
    reason: Optional[str]
    source: str
    os_user: str

    @property
    def when(self) -> str:
        return format_instant(self.at)


def holders(
    db: Any,
    qualification: str,
    include_expired: bool = False,
    now: Optional[float] = None,
    session: Optional[Session] = None,
) -> List[Holder]:
    """Workers holding a qualification (expired grants excluded unless asked for)."""
    now = time.time() if now is None else now
    with session_for(db, session, readonly=True) as s:
        found = qual_store.find_ids(s.conn, [qualification])
        if qualification not in found:
            raise UnknownQualificationError(
                f"qualification {qualification!r} does not exist; list them with 'mephisto-quals list'"
            )
        rows = grant_store.holders(s.conn, found[qualification], now, include_expired)
    return [
        Holder(r["worker_id"], r["worker_name"], r["provider_type"], r["value"], r["expires_at"], r["reason"])
        for r in rows
    ]


def list_qualifications(
    db: Any, now: Optional[float] = None, session: Optional[Session] = None
) -> List[QualificationSummary]:
    """Every qualification with how many workers hold it now, and how many grants expired."""
    now = time.time() if now is None else now
    with session_for(db, session, readonly=True) as s:
        rows = grant_store.summaries(s.conn, now)
        descriptions = qual_store.describe(s.conn)
    return [QualificationSummary(r["name"], r["holders"], r["expired"], descriptions.get(r["name"])) for r in rows]


def description(db: Any, qualification: str, session: Optional[Session] = None) -> Optional[str]:
    """A qualification's description (None where unset, or on a database without descriptions)."""
    with session_for(db, session, readonly=True) as s:
        return qual_store.describe(s.conn, [qualification]).get(qualification)


def history(
    db: Any,
    qualification: Optional[str] = None,
    worker: Optional[str] = None,
    limit: Optional[int] = None,
    session: Optional[Session] = None,
) -> List[AuditEntry]:
    """Recorded changes, newest first; filter by qualification and/or worker (id or name).

    On Mephisto 1.5.2 this also lists the grants and revokes the review app recorded in
    ``worker_review`` (source ``review_app``, the app's note as reason; old value and OS
    user unknown), merged in time order; the rows we wrote there for our own changes are
    not listed twice.
    """
    with session_for(db, session, readonly=True) as s:
        rows = audit_store.read(s.conn, qualification, worker, limit)
        reviews = review_store.read(s.conn, qualification, worker, limit)
    entries = [
        AuditEntry(
            r["at"],
            r["qualification"],
            r["worker_id"],
            r["worker_name"],
            r["action"],
            r["old_value"],
            r["new_value"],
            r["expires_at"],
            r["reason"],
            r["source"],
            r["os_user"],
        )
        for r in rows
    ]
    entries += [
        AuditEntry(
            r.at,
            r.qualification,
            r.worker_id,
            r.worker_name,
            r.action,
            None,
            r.new_value,
            None,
            r.reason,
            REVIEW_APP_SOURCE,
            "",
        )
        for r in reviews
    ]
    entries.sort(key=lambda e: e.at, reverse=True)  # stable: each source's own order is kept on ties
    return entries[:limit] if limit is not None else entries
