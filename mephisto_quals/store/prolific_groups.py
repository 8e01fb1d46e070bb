"""Our mapping of local qualifications to Prolific participant groups (``mephisto_quals_prolific_groups``).

One row per (qualification, Prolific workspace): the group that holds that qualification's
list there, and when it was last synced with how many members. Functions take a sqlite3
connection and run inside the caller's transaction; rows are read by name.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Dict, List, Optional

__all__ = ["find", "for_qualification", "all_groups", "record", "forget", "mark_synced"]

_TABLE = "mephisto_quals_prolific_groups"


def find(conn: sqlite3.Connection, qualification: str, workspace_id: str) -> Optional[Dict[str, Any]]:
    """The mapping row of a qualification in a workspace, or None."""
    row = conn.execute(
        f"SELECT * FROM {_TABLE} WHERE qualification = ? AND workspace_id = ?", (qualification, workspace_id)
    ).fetchone()
    return dict(row) if row is not None else None


def for_qualification(conn: sqlite3.Connection, qualification: str) -> List[Dict[str, Any]]:
    """Every workspace's group of one qualification (for explain / launch)."""
    rows = conn.execute(f"SELECT * FROM {_TABLE} WHERE qualification = ? ORDER BY workspace_id", (qualification,))
    return [dict(r) for r in rows]


def all_groups(conn: sqlite3.Connection) -> List[Dict[str, Any]]:
    """Every mapping, by qualification then workspace."""
    return [dict(r) for r in conn.execute(f"SELECT * FROM {_TABLE} ORDER BY qualification, workspace_id")]


def record(
    conn: sqlite3.Connection, qualification: str, workspace_id: str, group_id: str, group_name: str, at: float
) -> None:
    """Remember (or replace) the group of a qualification in a workspace."""
    conn.execute(
        f"""INSERT INTO {_TABLE} (qualification, workspace_id, group_id, group_name, created_at)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (qualification, workspace_id) DO UPDATE SET
              group_id = excluded.group_id, group_name = excluded.group_name, created_at = excluded.created_at,
              synced_at = NULL, synced_members = NULL""",
        (qualification, workspace_id, group_id, group_name, at),
    )


def forget(conn: sqlite3.Connection, qualification: str, workspace_id: str) -> None:
    """Drop a mapping (its group was deleted on Prolific)."""
    conn.execute(f"DELETE FROM {_TABLE} WHERE qualification = ? AND workspace_id = ?", (qualification, workspace_id))


def mark_synced(conn: sqlite3.Connection, qualification: str, workspace_id: str, members: int, at: float) -> None:
    """After an apply that left the group equal to the local list: when, and how many members."""
    conn.execute(
        f"UPDATE {_TABLE} SET synced_at = ?, synced_members = ? WHERE qualification = ? AND workspace_id = ?",
        (at, members, qualification, workspace_id),
    )
