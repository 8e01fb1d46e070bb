"""Reads of Mephisto's tasks, runs, units, agents and requesters (never written here).

Mephisto 1.4+ gives runs random ids, so "newest" is by creation date, then id.
"""

from __future__ import annotations

import sqlite3
from typing import List, Optional, Sequence

from mephisto_quals.store.session import chunks

__all__ = ["task_id", "runs_of_task", "run_exists", "newest_run_params", "units_of_runs", "worker_ids", "requesters"]


def task_id(conn: sqlite3.Connection, task_name: str) -> Optional[int]:
    row = conn.execute("SELECT task_id FROM tasks WHERE task_name = ?", (task_name,)).fetchone()
    return None if row is None else int(row[0])


def runs_of_task(conn: sqlite3.Connection, task: int) -> List[str]:
    return [str(r[0]) for r in conn.execute("SELECT task_run_id FROM task_runs WHERE task_id = ?", (task,))]


def run_exists(conn: sqlite3.Connection, run_id: int) -> bool:
    return conn.execute("SELECT 1 FROM task_runs WHERE task_run_id = ?", (run_id,)).fetchone() is not None


def newest_run_params(conn: sqlite3.Connection, task_name: str) -> Optional[str]:
    """The stored ``init_params`` of a task's newest run."""
    row = conn.execute(
        """SELECT r.init_params FROM task_runs r JOIN tasks t ON t.task_id = r.task_id
           WHERE t.task_name = ? ORDER BY r.creation_date DESC, r.task_run_id DESC LIMIT 1""",
        (task_name,),
    ).fetchone()
    return None if row is None else row[0]


def units_of_runs(conn: sqlite3.Connection, run_ids: Sequence[int]) -> List[sqlite3.Row]:
    """unit_id, task_run_id, agent_id, agent_status, worker_id, worker_name of every unit of the runs."""
    rows: List[sqlite3.Row] = []
    for part in chunks(list(run_ids)):
        rows += conn.execute(
            f"""SELECT u.unit_id, u.task_run_id, u.agent_id, a.status AS agent_status, a.worker_id, w.worker_name
                FROM units u
                LEFT JOIN agents a ON a.agent_id = u.agent_id
                LEFT JOIN workers w ON w.worker_id = a.worker_id
                WHERE u.task_run_id IN ({",".join("?" * len(part))})""",
            part,
        ).fetchall()
    return rows


def worker_ids(conn: sqlite3.Connection, provider_type: Optional[str] = None) -> List[int]:
    """Every known worker's id, of one provider type if given."""
    sql, args = "SELECT worker_id FROM workers", []
    if provider_type:
        sql, args = sql + " WHERE provider_type = ?", [provider_type]
    return [int(r[0]) for r in conn.execute(sql, args)]


def requesters(
    conn: sqlite3.Connection, names: Sequence[str] = (), provider_types: Sequence[str] = ()
) -> List[sqlite3.Row]:
    """requester_id, requester_name, provider_type of the named requesters, or of the provider types."""
    if names:
        return conn.execute(
            f"""SELECT requester_id, requester_name, provider_type FROM requesters
                WHERE requester_name IN ({','.join('?' * len(names))})""",
            list(names),
        ).fetchall()
    return conn.execute(
        f"""SELECT requester_id, requester_name, provider_type FROM requesters
            WHERE provider_type IN ({",".join("?" * len(provider_types))}) ORDER BY requester_name""",
        list(provider_types),
    ).fetchall()
