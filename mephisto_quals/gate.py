"""Checking one worker against a plan's local requirements, with the reason for each outcome.

Mephisto's own gate answers yes or no and stops at the first failure; this one evaluates
every requirement, so a person can see which ones stopped a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from mephisto_quals import comparators as cmp
from mephisto_quals.requirements import Requirement

if TYPE_CHECKING:
    from mephisto.abstractions.database import MephistoDB

__all__ = ["RequirementResult", "check_worker", "first_failure"]


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


def _holding(db: "MephistoDB", worker_id: str, name: str) -> Tuple[bool, Optional[int]]:
    """Whether the worker holds the qualification, and its value."""
    quals = db.find_qualifications(name)
    if not quals:
        return False, None
    granted = db.check_granted_qualifications(qualification_id=quals[0].db_id, worker_id=worker_id)
    return (True, granted[0].value) if granted else (False, None)


def check_worker(db: "MephistoDB", worker_id: str, requirements: Sequence[Requirement]) -> List[RequirementResult]:
    """Evaluate every requirement for one worker (by Mephisto worker id), in order.

    A worker who lacks a qualification fails every value comparison on it.
    """
    from mephisto.data_model.qualification import COMPARATOR_OPERATIONS

    holdings = {name: _holding(db, worker_id, name) for name in dict.fromkeys(r.qualification for r in requirements)}
    results = []
    for r in requirements:
        held, actual = holdings[r.qualification]
        if r.comparator == cmp.EXISTS:
            passed = held
        elif r.comparator == cmp.NOT_EXIST:
            passed = not held
        else:
            value = list(r.value) if isinstance(r.value, tuple) else r.value
            passed = held and bool(COMPARATOR_OPERATIONS[r.comparator](actual, value))
        results.append(RequirementResult(r, held, actual, passed))
    return results


def first_failure(results: Sequence[RequirementResult]) -> Optional[RequirementResult]:
    """The requirement that stopped the worker at Mephisto's gate (checks run in order)."""
    return next((r for r in results if not r.passed), None)
