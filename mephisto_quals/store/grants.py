"""Grant rows: Mephisto's ``granted_qualifications`` with our expiry and reason beside them.

The one live-grant rule lives here: a grant counts while it has no expiry of ours, or its
expiry is still ahead. An expiry belongs to one grant row, recognised by its id *and* its
creation date (Mephisto 1.5 reuses the id of a deleted row), so a grant Mephisto makes
again after a revoke is a new, permanent grant. Writes here (a retake's revoke, prune) leave
exactly the rows ``revoke_qualification`` leaves on each Mephisto line; bulk grants and
revokes write through :mod:`mephisto_quals.store.staging`.

:func:`holdings` and :func:`failed_at` also run on Mephisto's own connection (inside the
worker pool), whose rows turn ``*_id`` columns into strings: read them by name there.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from mephisto_quals.store.session import chunks

__all__ = [
    "META_JOIN",
    "LIVE",
    "Held",
    "current",
    "drop_meta",
    "delete",
    "expired",
    "delete_rows",
    "holders",
    "summaries",
    "holdings",
    "live_values",
    "values_of",
    "failed_at",
    "drop_stale_meta",
]

#: Our meta row of a grant row, if it is still that grant (same id and creation date).
META_JOIN = (
    "LEFT JOIN mephisto_quals_grant_meta m ON m.granted_qualification_id = g.granted_qualification_id"
    " AND m.grant_created = g.creation_date"
)
#: The live-grant rule, with one bound parameter: now (unix seconds).
LIVE = "(m.expires_at IS NULL OR m.expires_at > ?)"


class Held(NamedTuple):
    """A current grant: its value, our expiry and reason (if any), and Mephisto's row."""

    value: int
    expires_at: Optional[float]
    reason: Optional[str]
    row_id: int
    created: Optional[str]


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


def current(conn: sqlite3.Connection, qual_id: int, worker_ids: Sequence[int]) -> Dict[int, Held]:
    """worker_id -> current grant of one qualification (expired ones included)."""
    out: Dict[int, Held] = {}
    for part in chunks(list(worker_ids)):
        rows = conn.execute(
            f"""SELECT g.worker_id, g.value, m.expires_at, m.reason, g.granted_qualification_id, g.creation_date
                FROM granted_qualifications g {META_JOIN}
                WHERE g.qualification_id = ? AND g.worker_id IN ({_marks(part)})""",
            [qual_id, *part],
        )
        out.update({int(r[0]): Held(r[1], r[2], r[3], int(r[4]), r[5]) for r in rows})
    return out


def drop_meta(conn: sqlite3.Connection, row_ids: Sequence[int]) -> None:
    conn.executemany(
        "DELETE FROM mephisto_quals_grant_meta WHERE granted_qualification_id = ?", [(r,) for r in row_ids]
    )


def delete(conn: sqlite3.Connection, pairs: Sequence[Tuple[int, int]]) -> None:
    """Revoke (qual_id, worker_id) pairs; meta goes by pair, which also clears what an earlier
    revoke through Mephisto left behind."""
    conn.executemany("DELETE FROM granted_qualifications WHERE qualification_id = ? AND worker_id = ?", pairs)
    conn.executemany("DELETE FROM mephisto_quals_grant_meta WHERE qualification_id = ? AND worker_id = ?", pairs)


def expired(conn: sqlite3.Connection, now: float) -> List[sqlite3.Row]:
    """Grants whose expiry has passed: row_id, worker_id, qualification_name, worker_name, value, expires_at."""
    return conn.execute(
        f"""SELECT g.granted_qualification_id AS row_id, g.worker_id, q.qualification_name, w.worker_name,
                   g.value, m.expires_at
            FROM granted_qualifications g
            JOIN mephisto_quals_grant_meta m ON m.granted_qualification_id = g.granted_qualification_id
                 AND m.grant_created = g.creation_date
            JOIN qualifications q ON q.qualification_id = g.qualification_id
            LEFT JOIN workers w ON w.worker_id = g.worker_id
            WHERE m.expires_at IS NOT NULL AND NOT {LIVE}""",
        (now,),
    ).fetchall()


def delete_rows(conn: sqlite3.Connection, row_ids: Sequence[int]) -> None:
    """Delete grant rows (and their meta) by Mephisto's row id."""
    conn.executemany("DELETE FROM granted_qualifications WHERE granted_qualification_id = ?", [(r,) for r in row_ids])
    drop_meta(conn, row_ids)


def holders(conn: sqlite3.Connection, qual_id: int, now: float, include_expired: bool) -> List[sqlite3.Row]:
    """worker_id, worker_name, provider_type, value, expires_at, reason of a qualification's holders."""
    live = "" if include_expired else f"AND {LIVE}"
    return conn.execute(
        f"""SELECT w.worker_id, w.worker_name, w.provider_type, g.value, m.expires_at, m.reason
            FROM granted_qualifications g JOIN workers w ON w.worker_id = g.worker_id {META_JOIN}
            WHERE g.qualification_id = ? {live}
            ORDER BY w.worker_name""",
        (qual_id,) if include_expired else (qual_id, now),
    ).fetchall()


def summaries(conn: sqlite3.Connection, now: float) -> List[sqlite3.Row]:
    """name, holders (live), expired, per qualification."""
    return conn.execute(
        f"""SELECT q.qualification_name AS name,
                   COUNT(g.worker_id) - COUNT(CASE WHEN NOT {LIVE} THEN 1 END) AS holders,
                   COUNT(CASE WHEN NOT {LIVE} THEN 1 END) AS expired
            FROM qualifications q
            LEFT JOIN granted_qualifications g ON g.qualification_id = q.qualification_id
            {META_JOIN}
            GROUP BY q.qualification_id ORDER BY q.qualification_name""",
        (now, now),
    ).fetchall()


def holdings(
    conn: sqlite3.Connection, worker_id: int, names: Sequence[str], now: float
) -> Dict[str, Tuple[bool, Optional[int]]]:
    """name -> (holds a live grant, its value) for one worker, for the names that exist; one query.

    On a database we never wrote to (no meta table yet) every grant is permanent.
    """
    if not names:
        return {}
    try:
        rows = _holdings(conn, worker_id, names, now, META_JOIN, LIVE)
    except sqlite3.OperationalError as e:
        if "mephisto_quals_grant_meta" not in str(e):
            raise
        rows = _holdings(conn, worker_id, names, now, "", "(1 OR ? IS NULL)")
    return {r["name"]: (bool(r["live"]), r["value"] if r["live"] else None) for r in rows}


def _holdings(
    conn: sqlite3.Connection, worker_id: int, names: Sequence[str], now: float, join: str, live: str
) -> List[sqlite3.Row]:
    return conn.execute(
        f"""SELECT q.qualification_name AS name, g.value AS value, (g.worker_id IS NOT NULL AND {live}) AS live
            FROM qualifications q
            LEFT JOIN granted_qualifications g ON g.qualification_id = q.qualification_id AND g.worker_id = ?
            {join}
            WHERE q.qualification_name IN ({_marks(names)})""",
        [now, int(worker_id), *names],
    ).fetchall()


def live_values(conn: sqlite3.Connection, qual_id: int, now: float) -> Dict[int, int]:
    """worker_id -> value of every live grant of one qualification."""
    rows = conn.execute(
        f"""SELECT g.worker_id, g.value FROM granted_qualifications g {META_JOIN}
            WHERE g.qualification_id = ? AND {LIVE}""",
        (qual_id, now),
    )
    return {int(r[0]): r[1] for r in rows}


def values_of(
    conn: sqlite3.Connection, qualification: str, worker_ids: Sequence[int], now: float
) -> Dict[int, Tuple[int, Optional[float]]]:
    """worker_id -> (value, expires_at) of live grants of a named qualification."""
    out: Dict[int, Tuple[int, Optional[float]]] = {}
    for part in chunks(list(worker_ids)):
        rows = conn.execute(
            f"""SELECT g.worker_id, g.value, m.expires_at FROM granted_qualifications g
                JOIN qualifications q ON q.qualification_id = g.qualification_id {META_JOIN}
                WHERE q.qualification_name = ? AND {LIVE} AND g.worker_id IN ({_marks(part)})""",
            [qualification, now, *part],
        )
        out.update({int(r[0]): (r[1], r[2]) for r in rows})
    return out


def failed_at(conn: sqlite3.Connection, qualification: str, worker_id: int) -> Optional[float]:
    """When a worker was granted a qualification (unix seconds), e.g. failed an onboarding."""
    row = conn.execute(
        """SELECT CAST(strftime('%s', g.creation_date) AS REAL) AS at FROM granted_qualifications g
           JOIN qualifications q ON q.qualification_id = g.qualification_id
           WHERE q.qualification_name = ? AND g.worker_id = ?""",
        (qualification, int(worker_id)),
    ).fetchone()
    return None if row is None or row["at"] is None else float(row["at"])


def drop_stale_meta(conn: sqlite3.Connection) -> int:
    """Delete meta rows whose grant row is gone or is another grant now; returns how many."""
    cursor = conn.execute(
        """DELETE FROM mephisto_quals_grant_meta WHERE NOT EXISTS (
               SELECT 1 FROM granted_qualifications g
               WHERE g.granted_qualification_id = mephisto_quals_grant_meta.granted_qualification_id
                 AND g.creation_date = mephisto_quals_grant_meta.grant_created)"""
    )
    return cursor.rowcount
