"""Mephisto's ``worker_review`` table (Mephisto 1.5.2): the review app's record of reviews and grants.

The review app lists a qualification's holders only where ``worker_review`` has a row
naming them (``updated_qualification_id``), and its own grants and revokes are recorded
only there. So, when the table exists, every grant and revoke of ours also writes the row
``LocalMephistoDB.new_worker_review(worker_id, qualification_id, value, review_note=reason,
status="grant"|"revoke")`` would write (random id, no unit, no task), in the same
transaction; and our history reads the rows others wrote. Our rows carry the audit's
instant as ``creation_date``, which is how :func:`read` tells them from the app's.

On a database without ``worker_review`` (Mephisto 1.1.1 to 1.5.1) nothing here writes,
and :func:`read` returns nothing.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

from mephisto_quals.store.audit import Change
from mephisto_quals.store.mephisto import has_column, random_id, random_ids_in_order
from mephisto_quals.store.session import chunks, savepoint

__all__ = ["TABLE", "ReviewRow", "supported", "stamp", "instant", "record", "record_staged", "read"]

TABLE = "worker_review"
_COLUMNS = ("updated_qualification_id", "updated_qualification_value", "revoked_qualification_id", "review_note")
#: Our actions that remove a grant: the review app knows them all as a revoke.
_REMOVALS = {"revoke", "reset-onboarding", "expire"}


class ReviewRow(NamedTuple):
    """A ``worker_review`` row that changed a qualification (an app grant, revoke or unit-tied grant)."""

    review_id: int
    at: float
    qualification: str
    worker_id: int
    worker_name: Optional[str]
    action: str
    new_value: Optional[int]
    reason: Optional[str]
    status: Optional[str]
    unit_id: Optional[int]
    creation_date: str


def supported(conn: sqlite3.Connection) -> bool:
    """Whether this database has Mephisto 1.5.2's ``worker_review`` table (with the grant columns)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone()
    return row is not None and all(has_column(conn, TABLE, c) for c in _COLUMNS)


def stamp(at: float) -> str:
    """Unix seconds as Mephisto 1.4+ writes dates: ``YYYY-MM-DD HH:MM:SS.SSS`` in UTC (milliseconds truncated)."""
    moment = datetime.fromtimestamp(at, tz=timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


def instant(text: str) -> float:
    """A Mephisto date (UTC, with or without milliseconds) as unix seconds."""
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    raise ValueError(f"worker_review.creation_date: {text!r} is not a date as Mephisto writes them")


def record(conn: sqlite3.Connection, changes: Sequence[Change], qualification_ids: Mapping[str, int]) -> int:
    """Write one ``worker_review`` row per change (inside the caller's transaction), as
    ``new_worker_review(..., status="grant"|"revoke", review_note=reason)`` would; returns how
    many. Does nothing where the table does not exist."""
    if not changes or not supported(conn):
        return 0
    for c in changes:
        qid = qualification_ids[c.qualification]
        revoke = c.action in _REMOVALS
        values = (
            None if revoke else qid,
            None if revoke else c.new_value,
            qid if revoke else None,
            "revoke" if revoke else "grant",
            c.reason,
            stamp(c.at),
        )
        for attempt in range(20):  # Mephisto retries a clashing random id, so do we
            try:
                conn.execute(
                    """INSERT INTO worker_review (id, unit_id, worker_id, task_id, updated_qualification_id,
                           updated_qualification_value, revoked_qualification_id, status, review_note, bonus,
                           creation_date)
                       VALUES (?, NULL, ?, NULL, ?, ?, ?, ?, ?, NULL, ?)""",
                    (random_id(), c.worker_id, *values),
                )
                break
            except sqlite3.IntegrityError as e:
                if attempt == 19 or "UNIQUE" not in str(e).upper():
                    raise
    return len(changes)


def record_staged(conn: sqlite3.Connection, table: str, where: str, columns: str, args: Tuple[Any, ...],
              now: float) -> None:
    """The ``worker_review`` rows (Mephisto 1.5.2) of the staged rows ``where`` selects (alias
    ``s``), as ``new_worker_review`` writes them: ``columns`` gives worker_id through review_note,
    with ``args``. Their random ids are drawn in the statement (in C: it runs under the lock),
    each in its row's own slice of Mephisto's id range (:func:`random_ids_in_order`), so the rows
    go in in id order and fill the table's pages in turn (on a big table, 2-3x faster than in the
    given order) without a sort; a clash with an existing id draws them all again."""
    c = conn
    if not supported(c):
        return
    slices = int(c.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()[0]) + 1
    sql = f"""INSERT INTO worker_review (id, worker_id, unit_id, updated_qualification_id,
                  updated_qualification_value, revoked_qualification_id, status, review_note, task_id, bonus,
                  creation_date)
              SELECT {random_ids_in_order("s.seq", slices)}, {columns}, NULL, NULL, ? FROM {table} s WHERE {where}
              ORDER BY s.seq"""
    for _ in range(20):  # Mephisto retries a clashing random id, so do we
        try:
            with savepoint(c):
                c.execute(sql, (*args, stamp(now)))
            return
        except sqlite3.IntegrityError as e:
            if "UNIQUE" not in str(e).upper():
                raise
    raise sqlite3.IntegrityError("worker_review: no free random id after 20 tries")


def _ours(conn: sqlite3.Connection, rows: Sequence[ReviewRow]) -> Set[int]:
    """Ids of the rows :func:`record` wrote: same worker, qualification and kind of change as
    one of our audit changes, dated with that change's instant."""
    if not rows:
        return set()
    wanted = {(r.qualification, r.creation_date) for r in rows}
    batches: Dict[int, Tuple[str, str, str]] = {}
    for b in conn.execute("SELECT batch_id, at, qualification, action FROM mephisto_quals_audit_batch"):
        key = (b["qualification"], stamp(float(b["at"])))
        if key in wanted:
            batches[int(b["batch_id"])] = (*key, "revoke" if b["action"] in _REMOVALS else "grant")
    if not batches:
        return set()
    mine: Set[Tuple[str, str, str, int]] = set()
    for part in chunks(list(batches)):
        for c in conn.execute(
            f"SELECT batch_id, worker_id FROM mephisto_quals_audit_change "
            f"WHERE batch_id IN ({','.join('?' * len(part))})",
            part,
        ):
            mine.add((*batches[int(c["batch_id"])], int(c["worker_id"])))
    return {r.review_id for r in rows if (r.qualification, r.creation_date, r.action, r.worker_id) in mine}


def read(
    conn: sqlite3.Connection,
    qualification: Optional[str] = None,
    worker: Optional[str] = None,
    limit: Optional[int] = None,
    others_only: bool = True,
) -> List[ReviewRow]:
    """``worker_review`` rows that granted or revoked a qualification, newest first; filter by
    qualification name and/or worker (id, name, or name without ``_sandbox``). Empty where the
    table does not exist. A qualification deleted since shows as ``#<id>``.

    ``others_only`` leaves out the rows we wrote for our own (audited) changes: of the newest
    ``limit`` rows, so fewer may come back, but each one left out has an audit twin as new.
    """
    if not supported(conn):
        return []
    where = ["(r.updated_qualification_id IS NOT NULL OR r.revoked_qualification_id IS NOT NULL)"]
    args: List[object] = []
    if qualification is not None:
        where.append("q.qualification_name = ?")
        args.append(qualification)
    if worker is not None:
        where.append("(CAST(r.worker_id AS TEXT) = ? OR w.worker_name = ? OR w.worker_name = ?)")
        args += [str(worker), str(worker), f"{worker}_sandbox"]
    sql = f"""SELECT r.id, r.creation_date, r.worker_id, w.worker_name, r.status, r.review_note, r.unit_id,
                     r.updated_qualification_value AS value, r.updated_qualification_id AS updated,
                     COALESCE(q.qualification_name,
                              '#' || COALESCE(r.updated_qualification_id, r.revoked_qualification_id)) AS name
              FROM worker_review r
              LEFT JOIN qualifications q
                ON q.qualification_id = COALESCE(r.updated_qualification_id, r.revoked_qualification_id)
              LEFT JOIN workers w ON w.worker_id = r.worker_id
              WHERE {" AND ".join(where)}
              ORDER BY r.creation_date DESC, r.rowid DESC"""
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    out = []
    for r in conn.execute(sql, args).fetchall():
        granted = r["updated"] is not None
        out.append(
            ReviewRow(
                int(r["id"]),
                instant(str(r["creation_date"])),
                r["name"],
                int(r["worker_id"]),
                r["worker_name"],
                "grant" if granted else "revoke",
                r["value"] if granted else None,
                r["review_note"],
                r["status"],
                r["unit_id"],
                str(r["creation_date"]),
            )
        )
    if not others_only:
        return out
    mine = _ours(conn, out)
    return [r for r in out if r.review_id not in mine]
