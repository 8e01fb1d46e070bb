"""Our journal of provider writes already sent by a sync apply, so a resumed apply sends none twice."""

from __future__ import annotations

import sqlite3
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["entries", "done", "log"]


def entries(conn: sqlite3.Connection, plan_id: Optional[str] = None) -> List[Dict[str, Any]]:
    """Recorded writes (of one plan, or all), oldest first."""
    sql = "SELECT * FROM mephisto_quals_mturk_journal"
    args: Tuple[Any, ...] = ()
    if plan_id is not None:
        sql += " WHERE plan_id = ?"
        args = (plan_id,)
    return [dict(r) for r in conn.execute(sql + " ORDER BY at, rowid", args)]


def done(conn: sqlite3.Connection, plan_id: str) -> Dict[str, str]:
    """item -> qualification type id of the writes of one plan already sent."""
    rows = conn.execute(
        "SELECT item, qualification_type_id FROM mephisto_quals_mturk_journal WHERE plan_id = ?", (plan_id,)
    )
    return {r[0]: r[1] for r in rows}


def log(
    conn: sqlite3.Connection,
    plan_id: str,
    item: str,
    action: str,
    value: Optional[int],
    qualification: str,
    requester: str,
    type_id: str,
    at: float,
    os_user: str,
) -> None:
    """Record one sent write (inside the caller's transaction)."""
    conn.execute(
        """INSERT OR REPLACE INTO mephisto_quals_mturk_journal
           (plan_id, item, action, value, qualification, requester, qualification_type_id, at, os_user)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (plan_id, item, action, value, qualification, requester, type_id, at, os_user),
    )
