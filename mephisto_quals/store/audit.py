"""The audit: who changed which grant, when, from what to what, and why.

Stored as one batch row per change set (time, qualification, action, expiry, reason, source,
OS user) plus one small row per worker, which keeps a 10,000-worker grant cheap. Worker names
are stored with each change, so the audit never needs Mephisto's tables to be read.
"""

from __future__ import annotations

import getpass
import os
import sqlite3
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

__all__ = ["Change", "os_user", "record", "record_staged", "read"]


class Change(NamedTuple):
    """One recorded change of one worker's grant."""

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


def os_user() -> str:
    """Who is at the keyboard, for the audit."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return os.environ.get("USER") or str(os.getuid())


def record(conn: sqlite3.Connection, changes: Sequence[Change]) -> None:
    """Record changes inside the caller's transaction, one batch row per shared context."""
    batches: Dict[Tuple[Any, ...], List[Tuple[Any, ...]]] = {}
    for c in changes:
        key = (c.at, c.qualification, c.action, c.expires_at, c.reason, c.source, c.os_user)
        batches.setdefault(key, []).append((c.worker_id, c.old_value, c.new_value, c.worker_name))
    for context, rows in batches.items():
        batch_id = _new_batch(conn, context)
        conn.executemany(
            """INSERT INTO mephisto_quals_audit_change (batch_id, worker_id, old_value, new_value, worker_name)
               VALUES (?, ?, ?, ?, ?)""",
            [(batch_id, *row) for row in rows],
        )


def record_staged(conn: sqlite3.Connection, table: str, batches: str, where: str, qualification: str, action: str,
              now: float, source: str, user: str, new_value: str, only_key: Optional[str] = None) -> None:
    """Audit the rows of a staged table (:mod:`mephisto_quals.store.staging`) that ``where``
    selects (its alias ``s``): one batch per distinct ``bkey`` (expiry and reason), then one
    change row per worker (``worker_id``, ``worker_name``, ``old_value``, the SQL ``new_value``)
    in ``seq`` order, set-based, inside the caller's transaction. ``batches`` is a scratch table.
    ``only_key``: every staged row has this ``bkey`` (one batch, from the first row selected)."""
    c = conn
    changes = f"""INSERT INTO mephisto_quals_audit_change (batch_id, worker_id, old_value, new_value, worker_name)
                  SELECT {{batch}}, s.worker_id, s.old_value, {new_value}, s.worker_name
                  FROM {table} s {{join}} WHERE {where} ORDER BY s.seq"""
    if only_key is not None:  # one batch, its id bound: no grouping, no join per row
        first = c.execute(f"SELECT s.expires_at, s.reason FROM {table} s WHERE {where} ORDER BY s.seq LIMIT 1")\
            .fetchone()
        if first is not None:
            batch_id = _new_batch(c, (now, qualification, action, first[0], first[1], source, user))
            c.execute(changes.format(batch="?", join=""), (batch_id,))
        return
    c.execute(f"DROP TABLE IF EXISTS {batches}")
    c.execute(f"CREATE TABLE {batches} (key TEXT PRIMARY KEY, batch_id INTEGER, first INTEGER)")
    c.execute(f"INSERT INTO {batches} (key, first) SELECT s.bkey, min(s.seq) FROM {table} s WHERE {where}"
              " GROUP BY s.bkey")
    groups = c.execute(
        f"""SELECT b.key, s.expires_at, s.reason FROM {batches} b JOIN {table} s ON s.seq = b.first
            ORDER BY b.first"""
    ).fetchall()
    for group_key, expires_at, reason in groups:
        batch_id = _new_batch(c, (now, qualification, action, expires_at, reason, source, user))
        c.execute(f"UPDATE {batches} SET batch_id = ? WHERE key = ?", (batch_id, group_key))
    c.execute(changes.format(batch="b.batch_id", join=f"JOIN {batches} b ON b.key = s.bkey"))


def _new_batch(conn: sqlite3.Connection, context: Tuple[Any, ...]) -> int:
    """A new batch row of (at, qualification, action, expires_at, reason, source, os_user); its id."""
    cursor = conn.execute(
        """INSERT INTO mephisto_quals_audit_batch (at, qualification, action, expires_at, reason, source, os_user)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        context,
    )
    return int(cursor.lastrowid or 0)


def read(
    conn: sqlite3.Connection,
    qualification: Optional[str] = None,
    worker: Optional[str] = None,
    limit: Optional[int] = None,
) -> List[sqlite3.Row]:
    """Audit rows newest first (the columns of :class:`Change` plus ``audit_id``)."""
    where: List[str] = []
    args: List[Any] = []
    if qualification is not None:
        where.append("b.qualification = ?")
        args.append(qualification)
    if worker is not None:
        where.append("(CAST(c.worker_id AS TEXT) = ? OR c.worker_name = ? OR c.worker_name = ?)")
        args += [str(worker), str(worker), f"{worker}_sandbox"]
    sql = """SELECT c.change_id AS audit_id, b.at, b.qualification, c.worker_id, c.worker_name, b.action,
                    c.old_value, c.new_value, b.expires_at, b.reason, b.source, b.os_user
             FROM mephisto_quals_audit_change c JOIN mephisto_quals_audit_batch b ON b.batch_id = c.batch_id"""
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY c.change_id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    return conn.execute(sql, args).fetchall()
