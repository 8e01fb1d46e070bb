"""Direct, transactional access to a Mephisto SQLite database, plus mephisto-quals' own tables.

Bulk work goes through one connection and one ``BEGIN IMMEDIATE`` transaction, so a
change and its audit rows commit together or not at all (a killed process leaves all
rows or none), and concurrent writers wait their turn instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Sequence, TypeVar, Union

__all__ = ["connect", "transaction", "database_path", "chunks", "SCHEMA", "META_JOIN", "LIVE"]

#: Expiry and reason belong to one row of Mephisto's granted_qualifications (by its id): if
#: Mephisto revokes and grants again, the new row is a new grant, with no expiry of ours.
META_JOIN = (
    "LEFT JOIN mephisto_quals_grant_meta m ON m.granted_qualification_id = g.granted_qualification_id"
)
#: A grant counts while it has no expiry or its expiry is still ahead (one bound parameter: now).
LIVE = "(m.expires_at IS NULL OR m.expires_at > ?)"

T = TypeVar("T")

#: Our tables live in Mephisto's database file, beside its own.
META_TABLE = """
CREATE TABLE IF NOT EXISTS mephisto_quals_grant_meta (
    granted_qualification_id INTEGER PRIMARY KEY,
    worker_id INTEGER NOT NULL,
    qualification_id INTEGER NOT NULL,
    expires_at REAL,
    reason TEXT,
    granted_at REAL NOT NULL
)"""

#: Statements, in order. The audit is stored as one batch row per change set (time,
#: qualification, action, expiry, reason, source, OS user) plus one small row per worker, which
#: keeps a 10,000-worker grant cheap; the ``mephisto_quals_audit`` view reads it back one row
#: per change, and inserting into the view (one change) also works.
SCHEMA: List[str] = [
    META_TABLE,
    "CREATE INDEX IF NOT EXISTS mephisto_quals_grant_meta_pair ON mephisto_quals_grant_meta (qualification_id, worker_id)",
    "CREATE INDEX IF NOT EXISTS mephisto_quals_grant_meta_expiry ON mephisto_quals_grant_meta (expires_at) "
    "WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS mephisto_quals_audit_batch (
        batch_id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        qualification TEXT NOT NULL,
        action TEXT NOT NULL,
        expires_at REAL,
        reason TEXT,
        source TEXT NOT NULL,
        os_user TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS mephisto_quals_audit_change (
        change_id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL REFERENCES mephisto_quals_audit_batch (batch_id),
        worker_id INTEGER NOT NULL,
        old_value INTEGER,
        new_value INTEGER
    )""",
    """CREATE VIEW IF NOT EXISTS mephisto_quals_audit AS
        SELECT c.change_id AS audit_id, b.at, b.qualification, c.worker_id, w.worker_name, b.action,
               c.old_value, c.new_value, b.expires_at, b.reason, b.source, b.os_user
        FROM mephisto_quals_audit_change c
        JOIN mephisto_quals_audit_batch b ON b.batch_id = c.batch_id
        LEFT JOIN workers w ON w.worker_id = c.worker_id""",
    """CREATE TRIGGER IF NOT EXISTS mephisto_quals_audit_insert INSTEAD OF INSERT ON mephisto_quals_audit
    BEGIN
        INSERT INTO mephisto_quals_audit_batch (at, qualification, action, expires_at, reason, source, os_user)
        VALUES (NEW.at, NEW.qualification, NEW.action, NEW.expires_at, NEW.reason, NEW.source, NEW.os_user);
        INSERT INTO mephisto_quals_audit_change (batch_id, worker_id, old_value, new_value)
        VALUES (last_insert_rowid(), NEW.worker_id, NEW.old_value, NEW.new_value);
    END""",
]

_SQLITE_MAX_VARS = 900


def database_path(db: Union[str, Path, Any]) -> str:
    """The file behind a LocalMephistoDB, or a path given directly."""
    path = getattr(db, "db_path", db)
    return os.fspath(path)


def connect(db: Union[str, Path, Any]) -> sqlite3.Connection:
    """A connection to the Mephisto DB with our tables present and a generous busy timeout."""
    path = database_path(db)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no Mephisto database at {path}")
    conn = sqlite3.connect(path, timeout=120, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 120000")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = {"workers", "qualifications", "granted_qualifications"} - tables
    if missing:
        conn.close()
        raise ValueError(f"{path} is not a Mephisto database (no {', '.join(sorted(missing))} table)")
    with transaction(conn):
        _migrate(conn)
        for statement in SCHEMA:
            conn.execute(statement)
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Move a grant-meta table of the first layout (keyed by worker and qualification) to the
    current one (keyed by Mephisto's grant row), keeping every row that still has its grant."""
    kinds = dict(conn.execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'mephisto_quals_%'").fetchall())
    if kinds.get("mephisto_quals_audit") == "table":  # first layout: one wide row per change
        conn.execute("ALTER TABLE mephisto_quals_audit RENAME TO mephisto_quals_audit_v1")
        conn.execute("DROP INDEX IF EXISTS mephisto_quals_audit_qual")
        conn.execute("DROP INDEX IF EXISTS mephisto_quals_audit_worker")
        for statement in SCHEMA[3:]:
            conn.execute(statement)
        conn.execute(
            """INSERT INTO mephisto_quals_audit (at, qualification, worker_id, action, old_value, new_value,
                                                 expires_at, reason, source, os_user)
               SELECT at, qualification, worker_id, action, old_value, new_value, expires_at, reason, source, os_user
               FROM mephisto_quals_audit_v1 ORDER BY audit_id"""
        )
        conn.execute("DROP TABLE mephisto_quals_audit_v1")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(mephisto_quals_grant_meta)")]
    if not columns or "granted_qualification_id" in columns:
        return
    conn.execute("ALTER TABLE mephisto_quals_grant_meta RENAME TO mephisto_quals_grant_meta_v1")
    conn.execute("DROP INDEX IF EXISTS mephisto_quals_grant_meta_expiry")
    conn.execute(META_TABLE)
    conn.execute(
        """INSERT INTO mephisto_quals_grant_meta
           (granted_qualification_id, worker_id, qualification_id, expires_at, reason, granted_at)
           SELECT g.granted_qualification_id, o.worker_id, o.qualification_id, o.expires_at, o.reason, o.granted_at
           FROM mephisto_quals_grant_meta_v1 o JOIN granted_qualifications g
             ON g.worker_id = o.worker_id AND g.qualification_id = o.qualification_id"""
    )
    conn.execute("DROP TABLE mephisto_quals_grant_meta_v1")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.

    IMMEDIATE takes the write lock up front, so two writers never both read and then
    fail to upgrade; a busy database is waited for (busy_timeout), and the rare lock
    error at BEGIN is retried.
    """
    for attempt in range(50):
        try:
            conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            time.sleep(min(0.05 * (attempt + 1), 1.0))
    else:
        raise sqlite3.OperationalError("database stayed locked; another process holds it")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def chunks(items: Sequence[T], size: int = _SQLITE_MAX_VARS) -> Iterator[List[T]]:
    """Slices small enough for SQLite's bound-parameter limit."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
