"""The gate: whether a worker meets a task's requirements, aware of grant expiry.

:func:`qualified` is a drop-in for Mephisto's ``worker_is_qualified`` (same dicts, same
order, same "skip a qualification that does not exist" rule) with three differences:
one query instead of two per requirement, an expired grant does not count, and a worker
who lacks a qualification fails a value comparison instead of raising ``IndexError``
(Mephisto 1.1.1). It only reads: a failed onboarding whose retake delay has passed counts
as cleared in its verdict, and :func:`decide` says which clearings that verdict relies on.

Scope. :func:`install_gate` (called by the mixin when a ``_quals`` run starts, never at
import) puts :func:`pool_gate` where Mephisto's worker pool (and, on 1.5.2, its Prolific
provider) looks ``worker_is_qualified`` up by name. It captures Mephisto's original function
once and wraps nothing twice. ``pool_gate`` hands every list that carries none of our
dicts (``GATE_KEY``, set by the mixin) to that original, so plain runs in the same process
(``mock``, ``static_task``, ...) are gated exactly as without the plugin; a list with any
marked dict, including the dicts the Operator appends after the mixin, is ours.

Retakes. Right after the gate says yes, Mephisto's own onboarding check
(``worker.is_disqualified(onboarding)``) reads ``granted_qualifications`` directly, so the
failed result must be gone by then or the worker is refused anyway. ``pool_gate`` therefore
hands a due clearing to the retake writer (``integration.retake``: one thread, its own short
busy-timeout connection, audited with source ``retake-delay``) and waits for that commit
only; an ordinary arrival never writes and never waits. If the clearing does not commit in
time, the worker is refused this once (the database still says they failed, which is the
truth) and the clearing still lands, so their next arrival goes through.

Time. Every decision takes ``now`` from :func:`clock` (``time.time`` unless a test puts
another function in its place), never from the system clock directly.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from mephisto_quals.compile import comparators as cmp
from mephisto_quals.compile.plan import GATE_KEY, RETAKE_KEY
from mephisto_quals.compile.requirements import Requirement
from mephisto_quals.integration import retake as retake_writer
from mephisto_quals.integration.retake import Retake
from mephisto_quals.store import Session
from mephisto_quals.store import grants as grant_store
from mephisto_quals.store.mephisto import mephisto_connection

if TYPE_CHECKING:
    from mephisto.abstractions.database import MephistoDB

__all__ = [
    "RequirementResult",
    "Verdict",
    "check_worker",
    "clock",
    "decide",
    "first_failure",
    "is_ours",
    "qualified",
    "pool_gate",
    "install_gate",
    "original_gate",
    "passes",
    "RETAKE_KEY",
    "GATE_KEY",
]

logger = logging.getLogger("mephisto_quals")

Holding = Tuple[bool, Optional[int]]  # (held and not expired, value)
GateFn = Callable[[Any, List[Dict[str, Any]]], bool]

#: Where "now" comes from for the gate and check_worker; tests replace it (and restore it).
clock: Callable[[], float] = time.time

#: Modules that look ``worker_is_qualified`` up by name (the Prolific ones exist from 1.2 on).
POOL_MODULES = (
    "mephisto.operations.worker_pool",
    "mephisto.abstractions.providers.prolific.prolific_provider",
    "mephisto.abstractions.providers.prolific.prolific_worker",
)
_ATTR = "worker_is_qualified"
_MARK = "__mephisto_quals_gate__"
_original: Optional[GateFn] = None


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


@dataclass(frozen=True)
class Verdict:
    """The gate's answer, and the retake clearings a yes relies on (to be written before admitting)."""

    ok: bool
    retakes: List[Retake] = field(default_factory=list)


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


def _due_retakes(db: Any, worker_id: int, qualifications: Sequence[Mapping[str, Any]], now: float) -> List[Retake]:
    """Failed onboardings (read on Mephisto's connection) whose retake delay has passed."""
    due = []
    for q in qualifications:
        marker = q.get(RETAKE_KEY)
        if not marker:
            continue
        failed = q["qualification_name"]
        with db.table_access_condition:
            failed_at = grant_store.failed_at(mephisto_connection(db), failed, worker_id)
        if failed_at is not None and failed_at + marker["after"] <= now:
            due.append(Retake(marker["onboarding"], failed, float(marker["after"]), failed_at))
    return due


def decide(worker: Any, qualifications: Sequence[Mapping[str, Any]], now: Optional[float] = None) -> Verdict:
    """Evaluate ``qualifications`` for a Mephisto ``Worker``; reads only, never writes.

    A due retake counts as cleared: its onboarding and failed list read as not held.
    """
    now = clock() if now is None else now
    db, worker_id = worker.db, int(worker.db_id)
    retakes = _due_retakes(db, worker_id, qualifications, now)
    names = list(dict.fromkeys(q["qualification_name"] for q in qualifications))
    with db.table_access_condition:
        holding: Dict[str, Holding] = grant_store.holdings(mephisto_connection(db), worker_id, names, now)
    for r in retakes:
        for name in (r.onboarding, r.failed):
            if name in holding:
                holding[name] = (False, None)
    for q in qualifications:
        name = q["qualification_name"]
        if name not in holding:
            logger.warning(f"Expected to create qualification for {name}, but none found... skipping.")
            continue
        held, actual = holding[name]
        if not passes(q["comparator"], q["value"], held, actual):
            return Verdict(False)
    return Verdict(True, retakes)


def qualified(worker: Any, qualifications: List[Dict[str, Any]]) -> bool:
    """Drop-in for Mephisto's ``worker_is_qualified``, honouring expiry and retake delays (reads only)."""
    return decide(worker, qualifications).ok


def is_ours(qualifications: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a requirement list belongs to a ``_quals`` run (any dict carries ``GATE_KEY``)."""
    return any(q.get(GATE_KEY) for q in qualifications or ())


def original_gate() -> GateFn:
    """Mephisto's own ``worker_is_qualified``, as it was before :func:`install_gate`."""
    if _original is not None:
        return _original
    from mephisto.utils.qualifications import worker_is_qualified

    return worker_is_qualified


def pool_gate(worker: Any, qualifications: List[Dict[str, Any]]) -> bool:
    """What the worker pool calls: Mephisto's function for other runs, ours for ``_quals`` runs.

    For ours, a yes that relies on a due retake returns only once the retake writer has
    committed the clearing (Mephisto's onboarding check reads the rows next).
    """
    if not is_ours(qualifications):
        return original_gate()(worker, qualifications)
    now = clock()
    verdict = decide(worker, qualifications, now)
    if verdict.ok and verdict.retakes:
        return retake_writer.clear(worker, verdict.retakes, now)
    return verdict.ok


setattr(pool_gate, _MARK, True)


def install_gate() -> None:
    """Put :func:`pool_gate` where Mephisto looks ``worker_is_qualified`` up (idempotent).

    Mephisto's original is captured the first time; a module already holding our gate is
    left alone, and a module that does not exist on this Mephisto line is skipped.
    """
    global _original
    for module_name in POOL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except Exception:  # Prolific's modules do not exist on Mephisto 1.1.1
            continue
        current = getattr(module, _ATTR, None)
        if current is None or getattr(current, _MARK, False):
            continue
        if _original is None:
            _original = current
        setattr(module, _ATTR, pool_gate)


def check_worker(
    db: MephistoDB, worker_id: str, requirements: Sequence[Requirement], now: Optional[float] = None
) -> List[RequirementResult]:
    """Evaluate every requirement for one worker (by Mephisto worker id), in order.

    A worker who lacks a qualification, or whose grant expired, does not hold it.
    """
    now = clock() if now is None else now
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
