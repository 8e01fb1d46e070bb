"""mephisto-quals' own tables in Mephisto's database file, with a recorded schema version.

No view or trigger here names a Mephisto table: Mephisto 1.4+ rebuilds its tables in its first
migration, and a view or trigger of ours that named one (0.1's audit view joined ``workers``)
made that migration fail and left the database half-migrated. Version 2 removes that view.

One index of ours lives on a Mephisto table (:data:`GRANTS_INDEX`, for eligibility counts). An
index goes with its table when the migration drops it, without an error (tested with a real
1.1.1 -> 1.5.2 upgrade), so it is not part of the version: every writing session puts it back
when it is missing (:func:`missing_indexes`, :func:`ensure_indexes`), and readers never need it.
"""

from __future__ import annotations

import sqlite3
from typing import Dict, List, Optional

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "GRANTS_INDEX",
    "schema_version",
    "ensure_schema",
    "ensure_indexes",
    "missing_indexes",
    "has_grants_index",
    "add_stand_ins",
    "our_objects",
]

#: The layout this code reads and writes. 1 = mephisto-quals 0.1 (unversioned), 2 = 0.2's first layout,
#: 3 = adds the Prolific participant-group mapping.
SCHEMA_VERSION = 3

#: A one-row view holding our version: no table row to write, nothing of Mephisto's named.
VERSION_TABLE = "mephisto_quals_schema"

#: Expiry and reason of one of Mephisto's grant rows. Mephisto 1.5 reuses grant row ids after a
#: delete, so a row is ours only while its creation date is the one we saw (grant_created).
GRANT_META = """CREATE TABLE IF NOT EXISTS mephisto_quals_grant_meta (
    granted_qualification_id INTEGER PRIMARY KEY,
    worker_id INTEGER NOT NULL,
    qualification_id INTEGER NOT NULL,
    expires_at REAL,
    reason TEXT,
    granted_at REAL NOT NULL,
    grant_created TEXT
)"""

AUDIT_BATCH = """CREATE TABLE IF NOT EXISTS mephisto_quals_audit_batch (
    batch_id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    qualification TEXT NOT NULL,
    action TEXT NOT NULL,
    expires_at REAL,
    reason TEXT,
    source TEXT NOT NULL,
    os_user TEXT NOT NULL
)"""

AUDIT_CHANGE = """CREATE TABLE IF NOT EXISTS mephisto_quals_audit_change (
    change_id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES mephisto_quals_audit_batch (batch_id),
    worker_id INTEGER NOT NULL,
    old_value INTEGER,
    new_value INTEGER,
    worker_name TEXT
)"""

#: One row per change, readable with plain SQL; it names our tables only.
AUDIT_VIEW = """CREATE VIEW IF NOT EXISTS mephisto_quals_audit AS
    SELECT c.change_id AS audit_id, b.at, b.qualification, c.worker_id, c.worker_name, b.action,
           c.old_value, c.new_value, b.expires_at, b.reason, b.source, b.os_user
    FROM mephisto_quals_audit_change c JOIN mephisto_quals_audit_batch b ON b.batch_id = c.batch_id"""

AUDIT_INSERT = """CREATE TRIGGER IF NOT EXISTS mephisto_quals_audit_insert INSTEAD OF INSERT ON mephisto_quals_audit
BEGIN
    INSERT INTO mephisto_quals_audit_batch (at, qualification, action, expires_at, reason, source, os_user)
    VALUES (NEW.at, NEW.qualification, NEW.action, NEW.expires_at, NEW.reason, NEW.source, NEW.os_user);
    INSERT INTO mephisto_quals_audit_change (batch_id, worker_id, old_value, new_value, worker_name)
    VALUES (last_insert_rowid(), NEW.worker_id, NEW.old_value, NEW.new_value, NEW.worker_name);
END"""

#: Which review rule changes were applied for which unit (so a second apply counts nothing twice).
REVIEW_APPLIED = """CREATE TABLE IF NOT EXISTS mephisto_quals_review_applied (
    unit_id TEXT NOT NULL,
    qualification TEXT NOT NULL,
    worker_id INTEGER NOT NULL,
    task_run_id TEXT NOT NULL,
    rules TEXT NOT NULL,
    token TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    at REAL NOT NULL,
    PRIMARY KEY (unit_id, qualification)
)"""

#: MTurk writes already sent by a sync apply, so a resumed apply sends none twice.
MTURK_JOURNAL = """CREATE TABLE IF NOT EXISTS mephisto_quals_mturk_journal (
    plan_id TEXT NOT NULL,
    item TEXT NOT NULL,
    action TEXT NOT NULL,
    value INTEGER,
    qualification TEXT NOT NULL,
    requester TEXT NOT NULL,
    qualification_type_id TEXT NOT NULL,
    at REAL NOT NULL,
    os_user TEXT NOT NULL,
    PRIMARY KEY (plan_id, item)
)"""

#: Which Prolific participant group holds a local qualification's list, per workspace (version 3).
PROLIFIC_GROUPS = """CREATE TABLE IF NOT EXISTS mephisto_quals_prolific_groups (
    qualification TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    group_name TEXT NOT NULL,
    created_at REAL NOT NULL,
    synced_at REAL,
    synced_members INTEGER,
    PRIMARY KEY (qualification, workspace_id)
)"""

#: Our tables by name, in creation order.
TABLES: Dict[str, str] = {
    "mephisto_quals_grant_meta": GRANT_META,
    "mephisto_quals_audit_batch": AUDIT_BATCH,
    "mephisto_quals_audit_change": AUDIT_CHANGE,
    "mephisto_quals_review_applied": REVIEW_APPLIED,
    "mephisto_quals_mturk_journal": MTURK_JOURNAL,
    "mephisto_quals_prolific_groups": PROLIFIC_GROUPS,
}

INDEXES: List[str] = [
    "CREATE INDEX IF NOT EXISTS mephisto_quals_grant_meta_pair"
    " ON mephisto_quals_grant_meta (qualification_id, worker_id)",
    "CREATE INDEX IF NOT EXISTS mephisto_quals_grant_meta_expiry ON mephisto_quals_grant_meta (expires_at) "
    "WHERE expires_at IS NOT NULL",
]


#: Our index on Mephisto's ``granted_qualifications``, qualification first: Mephisto's only index
#: there is ``UNIQUE (worker_id, qualification_id)``, so without this one reading the grants of one
#: qualification scans the whole table. It covers what eligibility reads (worker, value; the row id
#: comes with every index).
GRANTS_INDEX = "mephisto_quals_grants_by_qualification"
GRANTS_INDEX_COLUMNS = ("qualification_id", "worker_id", "value")
GRANTS_INDEX_SQL = (
    f"CREATE INDEX IF NOT EXISTS {GRANTS_INDEX} ON granted_qualifications ({', '.join(GRANTS_INDEX_COLUMNS)})"
)


def has_grants_index(conn: sqlite3.Connection) -> bool:
    """Whether :data:`GRANTS_INDEX` is there, on the columns this code reads through it."""
    found = conn.execute(
        "SELECT 1 FROM main.sqlite_master WHERE type = 'index' AND name = ? AND tbl_name = 'granted_qualifications'",
        (GRANTS_INDEX,),
    ).fetchone()
    if found is None:
        return False
    columns = tuple(r[2] for r in conn.execute(f"PRAGMA main.index_info({GRANTS_INDEX})"))
    return columns == GRANTS_INDEX_COLUMNS


def missing_indexes(conn: sqlite3.Connection) -> bool:
    """Whether a writing session has an index of ours on a Mephisto table to (re)create: Mephisto
    1.4+'s first migration rebuilds ``granted_qualifications`` and the index goes with it."""
    return not has_grants_index(conn)


def ensure_indexes(conn: sqlite3.Connection) -> bool:
    """(Re)create our index on Mephisto's grants; the caller holds a write transaction. Returns
    whether it was built (about half a second for 700,000 grant rows, once)."""
    if has_grants_index(conn):
        return False
    conn.execute(f"DROP INDEX IF EXISTS {GRANTS_INDEX}")  # a same-named index on other columns
    conn.execute(GRANTS_INDEX_SQL)
    return True


def our_objects(conn: sqlite3.Connection) -> Dict[str, str]:
    """name -> type of every table, view, index and trigger of ours."""
    return dict(conn.execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'mephisto_quals%'").fetchall())


def schema_version(conn: sqlite3.Connection) -> Optional[int]:
    """Our recorded version; 1 for an unversioned 0.1 layout; None when we never wrote here."""
    objects = our_objects(conn)
    if VERSION_TABLE in objects:
        row = conn.execute(f"SELECT MAX(version) FROM {VERSION_TABLE}").fetchone()
        return int(row[0]) if row and row[0] is not None else 1
    return 1 if objects else None


def _columns(conn: sqlite3.Connection, table: str) -> List[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _upgrade_legacy(conn: sqlite3.Connection) -> None:
    """Bring the first layouts of 0.1 (one wide audit table; meta keyed by worker and
    qualification) to the batch/change audit and per-row meta, keeping every row."""
    objects = our_objects(conn)
    if objects.get("mephisto_quals_audit") == "table":
        conn.execute("ALTER TABLE mephisto_quals_audit RENAME TO mephisto_quals_audit_v1")
        conn.execute("DROP INDEX IF EXISTS mephisto_quals_audit_qual")
        conn.execute("DROP INDEX IF EXISTS mephisto_quals_audit_worker")
        conn.execute(AUDIT_BATCH)
        conn.execute(AUDIT_CHANGE)
        old = conn.execute(
            "SELECT at, qualification, worker_id, action, old_value, new_value, expires_at, reason, source, os_user"
            " FROM mephisto_quals_audit_v1 ORDER BY audit_id"
        ).fetchall()
        for r in old:
            batch = conn.execute(
                "INSERT INTO mephisto_quals_audit_batch"
                " (at, qualification, action, expires_at, reason, source, os_user) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (r[0], r[1], r[3], r[6], r[7], r[8], r[9]),
            ).lastrowid
            conn.execute(
                "INSERT INTO mephisto_quals_audit_change (batch_id, worker_id, old_value, new_value)"
                " VALUES (?, ?, ?, ?)",
                (batch, r[2], r[4], r[5]),
            )
        conn.execute("DROP TABLE mephisto_quals_audit_v1")
    columns = _columns(conn, "mephisto_quals_grant_meta")
    if columns and "granted_qualification_id" not in columns:
        conn.execute("ALTER TABLE mephisto_quals_grant_meta RENAME TO mephisto_quals_grant_meta_v1")
        conn.execute("DROP INDEX IF EXISTS mephisto_quals_grant_meta_expiry")
        conn.execute("DROP INDEX IF EXISTS mephisto_quals_grant_meta_pair")
        conn.execute(GRANT_META)
        conn.execute(
            """INSERT INTO mephisto_quals_grant_meta
               (granted_qualification_id, worker_id, qualification_id, expires_at, reason, granted_at, grant_created)
               SELECT g.granted_qualification_id, o.worker_id, o.qualification_id, o.expires_at, o.reason,
                      o.granted_at, g.creation_date
               FROM mephisto_quals_grant_meta_v1 o JOIN granted_qualifications g
                 ON g.worker_id = o.worker_id AND g.qualification_id = o.qualification_id"""
        )
        conn.execute("DROP TABLE mephisto_quals_grant_meta_v1")


def _to_v2(conn: sqlite3.Connection) -> None:
    """Drop the 0.1 audit view (it joined Mephisto's ``workers``), store names in the audit and
    each grant's creation date beside its expiry."""
    conn.execute("DROP TRIGGER IF EXISTS mephisto_quals_audit_insert")
    conn.execute("DROP VIEW IF EXISTS mephisto_quals_audit")
    for statement in TABLES.values():
        conn.execute(statement)
    if "worker_name" not in _columns(conn, "mephisto_quals_audit_change"):
        conn.execute("ALTER TABLE mephisto_quals_audit_change ADD COLUMN worker_name TEXT")
        conn.execute(
            """UPDATE mephisto_quals_audit_change SET worker_name =
               (SELECT w.worker_name FROM workers w WHERE w.worker_id = mephisto_quals_audit_change.worker_id)"""
        )
    if "grant_created" not in _columns(conn, "mephisto_quals_grant_meta"):
        conn.execute("ALTER TABLE mephisto_quals_grant_meta ADD COLUMN grant_created TEXT")
        conn.execute(
            """UPDATE mephisto_quals_grant_meta SET grant_created =
               (SELECT g.creation_date FROM granted_qualifications g
                WHERE g.granted_qualification_id = mephisto_quals_grant_meta.granted_qualification_id)"""
        )


def _to_v3(conn: sqlite3.Connection) -> None:
    """Add the Prolific participant-group mapping (a new table; nothing else changes)."""
    conn.execute(PROLIFIC_GROUPS)


def ensure_schema(conn: sqlite3.Connection) -> bool:
    """Create or upgrade our tables to :data:`SCHEMA_VERSION`; the caller holds a write
    transaction. Returns whether anything changed."""
    version = schema_version(conn)
    if version == SCHEMA_VERSION:
        return ensure_indexes(conn)
    if version is not None and version > SCHEMA_VERSION:
        from mephisto_quals.errors import SchemaError

        raise SchemaError(
            f"this database has mephisto-quals schema version {version}, newer than this install "
            f"understands ({SCHEMA_VERSION}); upgrade mephisto-quals"
        )
    if version == 1:
        _upgrade_legacy(conn)
    if version is None or version < 2:
        _to_v2(conn)
    _to_v3(conn)
    for statement in INDEXES + [AUDIT_VIEW, AUDIT_INSERT]:
        conn.execute(statement)
    ensure_indexes(conn)
    conn.execute(f"DROP VIEW IF EXISTS {VERSION_TABLE}")
    conn.execute(f"CREATE VIEW {VERSION_TABLE} AS SELECT {int(SCHEMA_VERSION)} AS version")
    return True


def add_stand_ins(conn: sqlite3.Connection) -> None:
    """Empty TEMP copies of our tables for a read-only look at a database we never wrote to:
    unqualified names find them first, so every query reads 'no expiry, no audit'."""
    for statement in TABLES.values():
        conn.execute(statement.replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE IF NOT EXISTS", 1))
    conn.execute(AUDIT_VIEW.replace("CREATE VIEW IF NOT EXISTS", "CREATE TEMP VIEW IF NOT EXISTS", 1))
