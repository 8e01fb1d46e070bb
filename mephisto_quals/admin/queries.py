"""Read-only questions about qualifications: who holds what, and the audit history."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, List, Optional

from mephisto_quals.compile.durations import format_instant
from mephisto_quals.admin.grants import UnknownQualificationError
from mephisto_quals.store.session import connect

__all__ = ["Holder", "QualificationSummary", "AuditEntry", "holders", "list_qualifications", "history"]

#: A grant counts while it has no expiry or its expiry is still ahead.
LIVE = "(m.expires_at IS NULL OR m.expires_at > ?)"


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
    name: str
    holders: int
    expired: int


@dataclass(frozen=True)
class AuditEntry:
    """One recorded change."""

    at: float
    qualification: str
    worker_id: int
    worker_name: str
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


def holders(db: Any, qualification: str, include_expired: bool = False, now: Optional[float] = None) -> List[Holder]:
    """Workers holding a qualification (expired grants excluded unless asked for)."""
    now = time.time() if now is None else now
    conn = connect(db)
    try:
        row = conn.execute("SELECT qualification_id FROM qualifications WHERE qualification_name = ?", (qualification,)).fetchone()
        if row is None:
            raise UnknownQualificationError(
                f"qualification {qualification!r} does not exist; list them with 'mephisto-quals list'"
            )
        rows = conn.execute(
            f"""SELECT w.worker_id, w.worker_name, w.provider_type, g.value, m.expires_at, m.reason
                FROM granted_qualifications g JOIN workers w ON w.worker_id = g.worker_id
                LEFT JOIN mephisto_quals_grant_meta m
                  ON m.granted_qualification_id = g.granted_qualification_id
                WHERE g.qualification_id = ? {'' if include_expired else 'AND ' + LIVE}
                ORDER BY w.worker_name""",
            (row["qualification_id"],) if include_expired else (row["qualification_id"], now),
        ).fetchall()
        return [Holder(r["worker_id"], r["worker_name"], r["provider_type"], r["value"], r["expires_at"], r["reason"]) for r in rows]
    finally:
        conn.close()


def list_qualifications(db: Any, now: Optional[float] = None) -> List[QualificationSummary]:
    """Every qualification with how many workers hold it now, and how many grants expired."""
    now = time.time() if now is None else now
    conn = connect(db)
    try:
        rows = conn.execute(
            f"""SELECT q.qualification_name AS name,
                       COUNT(g.worker_id) - COUNT(CASE WHEN NOT {LIVE} THEN 1 END) AS holders,
                       COUNT(CASE WHEN NOT {LIVE} THEN 1 END) AS expired
                FROM qualifications q
                LEFT JOIN granted_qualifications g ON g.qualification_id = q.qualification_id
                LEFT JOIN mephisto_quals_grant_meta m
                  ON m.granted_qualification_id = g.granted_qualification_id
                GROUP BY q.qualification_id ORDER BY q.qualification_name""",
            (now, now),
        ).fetchall()
        return [QualificationSummary(r["name"], r["holders"], r["expired"]) for r in rows]
    finally:
        conn.close()


def history(
    db: Any, qualification: Optional[str] = None, worker: Optional[str] = None, limit: Optional[int] = None
) -> List[AuditEntry]:
    """Recorded changes, newest first; filter by qualification and/or worker (id or name)."""
    conn = connect(db)
    try:
        where, args = [], []
        if qualification is not None:
            where.append("qualification = ?")
            args.append(qualification)
        if worker is not None:
            where.append("(CAST(worker_id AS TEXT) = ? OR worker_name = ? OR worker_name = ?)")
            args += [str(worker), str(worker), f"{worker}_sandbox"]
        sql = "SELECT * FROM mephisto_quals_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY audit_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [
            AuditEntry(r["at"], r["qualification"], r["worker_id"], r["worker_name"], r["action"], r["old_value"],
                       r["new_value"], r["expires_at"], r["reason"], r["source"], r["os_user"])
            for r in conn.execute(sql, args)
        ]
    finally:
        conn.close()
