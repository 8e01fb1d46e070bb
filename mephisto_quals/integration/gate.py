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
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mephisto_quals.compile import comparators as cmp
from mephisto_quals.compile.plan import RETAKE_KEY
from mephisto_quals.compile.requirements import Requirement
from mephisto_quals.store import Session
from mephisto_quals.store import grants as grant_store
from mephisto_quals.store.mephisto import mephisto_connection

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


def _read(db: Any, worker_id: Any, names: Sequence[str], now: float) -> Dict[str, Holding]:
    """Holdings through Mephisto's own per-thread connection, inside a run (whose launch
    created our tables)."""
    with db.table_access_condition:
        return grant_store.holdings(mephisto_connection(db), int(worker_id), names, now)


def _apply_retakes(worker: Any, qualifications: Sequence[Mapping[str, Any]], now: float) -> None:
    """Clear a failed onboarding whose retake delay has passed, so the worker may try again."""
    for q in qualifications:
        retake = q.get(RETAKE_KEY)
        if not retake:
            continue
        failed = q["qualification_name"]
        with worker.db.table_access_condition:
            failed_at = grant_store.failed_at(mephisto_connection(worker.db), failed, int(worker.db_id))
        if failed_at is None or failed_at + retake["after"] > now:
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
    db: Any, worker_id: str, requirements: Sequence[Requirement], now: Optional[float] = None
) -> List[RequirementResult]:
    """Evaluate every requirement for one worker (by Mephisto worker id), in order.

    A worker who lacks a qualification, or whose grant expired, does not hold it.
    """
    now = time.time() if now is None else now
    names = list(dict.fromkeys(r.qualification for r in requirements))
    with Session.open(db, readonly=True) as s:
        holding = grant_store.holdings(s.conn, int(worker_id), names, now)
    results = []
    for r in requirements:
        held, actual = holding.get(r.qualification, (False, None))
        results.append(RequirementResult(r, held, actual, passes(r.comparator, r.value, held, actual)))
    return results


def first_failure(results: Sequence[RequirementResult]) -> Optional[RequirementResult]:
    """The requirement that stopped the worker at the gate (checks run in order)."""
    return next((r for r in results if not r.passed), None)
