"""The gate: whether a worker meets a task's requirements, aware of grant expiry.

:func:`qualified` is a drop-in for Mephisto's ``worker_is_qualified`` (same dicts, same
order, same "skip a qualification that does not exist" rule) with three differences:
one query instead of two per requirement, an expired grant does not count, and a worker
who lacks a qualification fails a value comparison instead of raising ``IndexError``.
:func:`install_gate` puts it in Mephisto's worker pool; :func:`check_worker` explains
every requirement for one worker.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mephisto_quals.compile import comparators as cmp
from mephisto_quals.compile.requirements import Requirement

if TYPE_CHECKING:
    from mephisto.abstractions.database import MephistoDB

__all__ = [
    "RequirementResult",
    "check_worker",
    "first_failure",
    "qualified",
    "install_gate",
    "passes",
    "RETAKE_KEY",
]

logger = logging.getLogger("mephisto_quals")

#: Key on a qualification dict that asks the gate to clear a failed onboarding after a delay.
RETAKE_KEY = "mephisto_quals_retake"

Holding = Tuple[bool, Optional[int]]  # (held and not expired, value)


@dataclass(frozen=True)
class RequirementResult:
    """A requirement, the worker's value for it (None when not held) and whether it passed."""

    requirement: Requirement
    held: bool
    actual: Optional[int]
    passed: bool

    def explain(self) -> str:
        """One line a researcher can read, e.g. ``failed: score >= 3 (has 1)``."""
        has = f"has {self.actual}" if self.held else "does not hold it"
        verdict = "passed" if self.passed else "failed"
        return f"{verdict}: {self.requirement.describe()} ({has})"


def passes(comparator: str, wanted: Any, held: bool, actual: Optional[int]) -> bool:
    """Mephisto's comparison, except that not holding the qualification fails value comparisons."""
    if comparator == cmp.EXISTS:
        return held
    if comparator == cmp.NOT_EXIST:
        return not held
    if not held:
        return False
    from mephisto.data_model.qualification import COMPARATOR_OPERATIONS

    wanted = list(wanted) if isinstance(wanted, tuple) else wanted
    return bool(COMPARATOR_OPERATIONS[comparator](actual, wanted))


def _holdings(conn: sqlite3.Connection, worker_id: Any, names: Sequence[str], now: float) -> Dict[str, Holding]:
    """name -> (held, value) for the qualifications that exist, in one query."""
    if not names:
        return {}
    rows = conn.execute(
        f"""SELECT q.qualification_name AS name, g.value AS value,
                   (g.worker_id IS NOT NULL AND (m.expires_at IS NULL OR m.expires_at > ?)) AS live
            FROM qualifications q
            LEFT JOIN granted_qualifications g ON g.qualification_id = q.qualification_id AND g.worker_id = ?
            LEFT JOIN mephisto_quals_grant_meta m ON m.granted_qualification_id = g.granted_qualification_id
            WHERE q.qualification_name IN ({','.join('?' * len(names))})""",
        [now, int(worker_id), *names],
    ).fetchall()
    return {r["name"]: (bool(r["live"]), r["value"] if r["live"] else None) for r in rows}


def _read(db: "MephistoDB", worker_id: Any, names: Sequence[str], now: float) -> Dict[str, Holding]:
    """Holdings through Mephisto's own per-thread connection, creating our tables once if missing."""
    with db.table_access_condition:
        conn = db._get_connection()
        try:
            return _holdings(conn, worker_id, names, now)
        except sqlite3.OperationalError as e:
            if "mephisto_quals_grant_meta" not in str(e):
                raise
    from mephisto_quals.store.session import connect

    connect(db).close()  # creates our tables
    with db.table_access_condition:
        return _holdings(db._get_connection(), worker_id, names, now)


def _apply_retakes(worker: Any, qualifications: Sequence[Mapping[str, Any]], now: float) -> None:
    """Clear a failed onboarding whose retake delay has passed, so the worker may try again."""
    for q in qualifications:
        retake = q.get(RETAKE_KEY)
        if not retake:
            continue
        failed = q["qualification_name"]
        with worker.db.table_access_condition:
            row = worker.db._get_connection().execute(
                """SELECT CAST(strftime('%s', g.creation_date) AS REAL) AS failed_at FROM granted_qualifications g
                   JOIN qualifications q ON q.qualification_id = g.qualification_id
                   WHERE q.qualification_name = ? AND g.worker_id = ?""",
                (failed, int(worker.db_id)),
            ).fetchone()
        if row is None or row["failed_at"] is None or row["failed_at"] + retake["after"] > now:
            continue
        from mephisto_quals.admin.grants import reset_onboarding

        reset_onboarding(worker.db, retake["onboarding"], [worker.db_id], source="retake-delay",
                         reason=f"retake delay of {retake['after']:.0f}s passed")
        logger.info("mephisto-quals: worker %s may retake onboarding '%s'", worker.db_id, retake["onboarding"])


def qualified(worker: Any, qualifications: List[Dict[str, Any]]) -> bool:
    """Drop-in for Mephisto's ``worker_is_qualified``, honouring expiry and retake delays."""
    now = time.time()
    _apply_retakes(worker, qualifications, now)
    names = list(dict.fromkeys(q["qualification_name"] for q in qualifications))
    holding = _read(worker.db, worker.db_id, names, now)
    for q in qualifications:
        name = q["qualification_name"]
        if name not in holding:
            logger.warning(f"Expected to create qualification for {name}, but none found... skipping.")
            continue
        held, actual = holding[name]
        if not passes(q["comparator"], q["value"], held, actual):
            return False
    return True


def install_gate() -> None:
    """Make Mephisto's worker pool use :func:`qualified` (idempotent, process-wide).

    Requirement dicts keep their meaning; what changes is that expired grants stop
    counting and a missing qualification refuses instead of crashing the pool.
    """
    from mephisto.operations import worker_pool

    worker_pool.worker_is_qualified = qualified  # type: ignore[attr-defined]


def check_worker(
    db: "MephistoDB", worker_id: str, requirements: Sequence[Requirement], now: Optional[float] = None
) -> List[RequirementResult]:
    """Evaluate every requirement for one worker (by Mephisto worker id), in order.

    A worker who lacks a qualification, or whose grant expired, does not hold it.
    """
    now = time.time() if now is None else now
    names = list(dict.fromkeys(r.qualification for r in requirements))
    holding = _read(db, worker_id, names, now)
    results = []
    for r in requirements:
        held, actual = holding.get(r.qualification, (False, None))
        results.append(RequirementResult(r, held, actual, passes(r.comparator, r.value, held, actual)))
    return results


def first_failure(results: Sequence[RequirementResult]) -> Optional[RequirementResult]:
    """The requirement that stopped the worker at the gate (checks run in order)."""
    return next((r for r in results if not r.passed), None)
