"""Which (unit, qualification) pairs a review apply has counted: ``mephisto_quals_review_applied``.

A review apply reads these pairs, makes its grants and records the pairs it counted, all in
one write transaction, so a pair is recorded exactly when its grant committed. Rows are
written with ``done = 1``; a ``done = 0`` row is a claim left by an earlier mephisto-quals
(which claimed, granted and confirmed in three transactions) whose process died: it is not
counted, and the next apply that counts the pair replaces it.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple, Sequence, Set, Tuple

from mephisto_quals.store.session import chunks

__all__ = ["TABLE", "AppliedPair", "applied_pairs", "record", "count"]

#: The table (its schema: :data:`mephisto_quals.store.schema.REVIEW_APPLIED`).
TABLE = "mephisto_quals_review_applied"


class AppliedPair(NamedTuple):
    """One reviewed unit counted for one qualification, and what counted it."""

    unit_id: str
    qualification: str
    worker_id: int
    task_run_id: str
    rules: str  # e.g. "rules[0],rules[3]"


def applied_pairs(conn: sqlite3.Connection, unit_ids: Sequence[str]) -> Set[Tuple[str, str]]:
    """The (unit_id, qualification) pairs already counted among these units."""
    out: Set[Tuple[str, str]] = set()
    for part in chunks([str(u) for u in unit_ids]):
        rows = conn.execute(
            f"SELECT unit_id, qualification FROM {TABLE} WHERE done = 1 AND unit_id IN ({','.join('?' * len(part))})",
            part,
        )
        out.update((str(r[0]), str(r[1])) for r in rows)
    return out


def record(conn: sqlite3.Connection, pairs: Sequence[AppliedPair], apply_id: str, at: float) -> None:
    """Record pairs as counted by the apply ``apply_id`` (in the caller's transaction, beside its grants)."""
    conn.executemany(
        f"""INSERT OR REPLACE INTO {TABLE} (unit_id, qualification, worker_id, task_run_id, rules, token, done, at)
            VALUES (?, ?, ?, ?, ?, ?, 1, ?)""",
        [(p.unit_id, p.qualification, p.worker_id, p.task_run_id, p.rules, apply_id, at) for p in pairs],
    )


def count(conn: sqlite3.Connection) -> int:
    """How many pairs are recorded as counted."""
    return int(conn.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE done = 1").fetchone()[0])
