"""Planning a review: which grant, revoke or score change each reviewed unit leads to.

:func:`plan_review` reads a task's runs, their units' agents and review statuses, and what
earlier applies already counted; it writes nothing. :func:`current_changes` is the one
computation of changes from unit/rule matches, used by the plan and again by
:func:`~mephisto_quals.admin.review.apply.apply_review` inside its write transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from mephisto_quals.admin.review.rules import REVIEW_STATUSES, ReviewRule, RulesSource, initials, rule_list
from mephisto_quals.errors import QualsError
from mephisto_quals.store import Session
from mephisto_quals.store import grants as grant_store
from mephisto_quals.store import review_applied as applied_store
from mephisto_quals.store import runs as run_store

__all__ = ["UnknownRunError", "Contribution", "ReviewChange", "ReviewConflict", "ReviewPlan", "plan_review",
           "current_changes", "id_key"]

class UnknownRunError(QualsError, LookupError):
    """The task name or a run id given to :func:`plan_review` is not in the database."""


def id_key(value: str) -> Tuple[int, Union[int, str]]:
    """Sort key for Mephisto ids: numerically when they are numbers, else as text."""
    return (0, int(value)) if value.isdigit() else (1, value)


@dataclass(frozen=True)
class Contribution:
    """One reviewed unit matching one rule."""

    unit_id: str
    task_run_id: str
    rule: int


@dataclass
class ReviewChange:
    """What the review does to one worker's qualification.

    ``rule`` is the index of the deciding rule (for a score, the first contributing one);
    ``rules`` every rule that matched, ``units`` the units counted.
    """

    rule: int
    qualification: str
    worker_id: int
    worker_name: str
    old_value: Optional[int]
    new_value: Optional[int]
    action: str
    old_expires_at: Optional[float] = None
    rules: Tuple[int, ...] = ()
    units: Tuple[str, ...] = ()
    run_ids: Tuple[str, ...] = ()
    add: Optional[int] = None
    initial: int = 0
    value: Optional[int] = None
    expires_in: Any = None
    contributions: Tuple[Contribution, ...] = field(default=(), repr=False)

    @property
    def changed(self) -> bool:
        """False when applying it would leave the worker's grant as it is."""
        if self.action == "revoke":
            return self.old_value is not None
        if self.old_value != self.new_value:
            return True
        # A grant sets the rule's expiry (none without expires_in); a score keeps none.
        return self.old_expires_at is not None or (self.action == "grant" and self.expires_in is not None)

    def describe(self) -> str:
        old = "none" if self.old_value is None else str(self.old_value)
        new = "none" if self.new_value is None else str(self.new_value)
        how = f" ({self.add:+d})" if self.action == "score" else ""
        return f"{self.worker_name} {self.qualification}: {old} -> {new}{how} [{self.action}, rules[{self.rule}]]"


@dataclass(frozen=True)
class ReviewConflict:
    """Grant/revoke rules that disagreed for one worker and qualification; ``winner`` applied."""

    qualification: str
    worker_id: int
    worker_name: str
    winner: int
    overridden: Tuple[int, ...]


@dataclass
class ReviewPlan:
    """The changes a review would make, and how the units were counted."""

    rules: List[ReviewRule]
    run_ids: List[str]
    task_name: Optional[str] = None
    changes: List[ReviewChange] = field(default_factory=list)
    units_total: int = 0
    reviewed: Dict[str, int] = field(default_factory=dict)
    skipped_no_agent: int = 0
    skipped_unreviewed: Dict[str, int] = field(default_factory=dict)
    already_applied: int = 0
    conflicts: List[ReviewConflict] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Units that count for nothing: no agent, or not (yet) approved/rejected."""
        return self.skipped_no_agent + sum(self.skipped_unreviewed.values())

    @property
    def effective(self) -> List[ReviewChange]:
        return [c for c in self.changes if c.changed]

    def summary(self) -> str:
        runs = ", ".join(self.run_ids) or "none"
        head = f"review of task {self.task_name!r} " if self.task_name else "review "
        lines = [f"{head}(run{'s' if len(self.run_ids) != 1 else ''} {runs}): {self.units_total} units"]
        reviewed = ", ".join(f"{n} {s}" for s, n in sorted(self.reviewed.items()))
        lines.append(f"  reviewed: {sum(self.reviewed.values())}" + (f" ({reviewed})" if reviewed else ""))
        if self.skipped:
            waiting = ", ".join(f"{n} {s}" for s, n in sorted(self.skipped_unreviewed.items()))
            waiting = f": {waiting}" if waiting else ""
            lines.append(f"  skipped: {self.skipped} ({self.skipped_no_agent} without an agent, "
                         f"{sum(self.skipped_unreviewed.values())} not yet reviewed{waiting})")
        if self.already_applied:
            lines.append(f"  already applied earlier: {self.already_applied} unit/qualification pairs "
                         "(not counted again)")
        by_key: Dict[Tuple[str, str], List[ReviewChange]] = defaultdict(list)
        for change in self.changes:
            by_key[(change.qualification, change.action)].append(change)
        if not by_key:
            lines.append("  no changes")
        for (qual, action), changes in sorted(by_key.items()):
            moved = sum(1 for c in changes if c.changed)
            lines.append(f"  {action} {qual}: {len(changes)} worker{'s' if len(changes) != 1 else ''}, "
                         f"{moved} changed, {len(changes) - moved} unchanged")
        if self.conflicts:
            lines.append(f"  conflicts: {len(self.conflicts)} (the later rule in the file wins)")
            for c in self.conflicts:
                lost = ", ".join(f"rules[{i}]" for i in c.overridden)
                lines.append(f"    {c.worker_name} {c.qualification}: rules[{c.winner}] over {lost}")
        return "\n".join(lines)




def _resolve_runs(conn: sqlite3.Connection, task_name: Optional[str], run_ids: Optional[Sequence[str]]) -> List[str]:
    """The runs to review: the task's (all, or those of ``run_ids``), or ``run_ids`` alone."""
    if task_name is None and not run_ids:
        raise ValueError("give a task name or run ids to review")
    task_runs: Optional[Set[str]] = None
    if task_name is not None:
        task = run_store.task_id(conn, task_name)
        if task is None:
            raise UnknownRunError(f"no task named {task_name!r} in this Mephisto database")
        task_runs = set(run_store.runs_of_task(conn, task))
    if not run_ids:
        return sorted(task_runs or (), key=id_key)
    wanted: List[str] = []
    for raw in run_ids:
        rid = str(raw).strip()
        if not rid.isdigit() or not run_store.run_exists(conn, int(rid)):
            raise UnknownRunError(f"no task run with id {raw!r} in this Mephisto database")
        if task_runs is not None and rid not in task_runs:
            raise UnknownRunError(f"task run {rid} is not a run of task {task_name!r}")
        if rid not in wanted:
            wanted.append(rid)
    return sorted(wanted, key=id_key)


def _resolve(
    rules: Sequence[ReviewRule],
    qualification: str,
    worker_id: int,
    worker_name: str,
    contributions: Sequence[Contribution],
    held: Optional[Tuple[int, Optional[float]]],
    initial: int,
) -> Tuple[ReviewChange, Optional[ReviewConflict]]:
    """The one change for a worker and qualification from every unit/rule match."""
    old, old_expiry = held if held is not None else (None, None)
    by_index = {r.index: r for r in rules}
    contributions = sorted(contributions, key=lambda c: (id_key(c.unit_id), c.rule))
    matched = tuple(sorted({c.rule for c in contributions}))
    units = tuple(dict.fromkeys(c.unit_id for c in contributions))
    runs = tuple(sorted({c.task_run_id for c in contributions}, key=id_key))
    base = ReviewChange(rule=matched[0], qualification=qualification, worker_id=worker_id, worker_name=worker_name,
                        old_value=old, new_value=None, action="revoke", old_expires_at=old_expiry, rules=matched,
                        units=units, run_ids=runs, contributions=tuple(contributions))
    if by_index[matched[0]].action == "score":
        add = sum(by_index[c.rule].add for c in contributions)
        start = old if old is not None else initial
        return replace(base, new_value=start + add, action="score", add=add, initial=initial), None
    winner = by_index[matched[-1]]  # file order: the later rule wins
    conflict = None
    losers = tuple(i for i in matched[:-1]
                   if (by_index[i].action, by_index[i].value, by_index[i].expires_in)
                   != (winner.action, winner.value, winner.expires_in))
    if losers:
        conflict = ReviewConflict(qualification, worker_id, worker_name, winner.index, losers)
    if winner.action == "revoke":
        return replace(base, rule=winner.index), conflict
    return replace(base, rule=winner.index, new_value=winner.value, action="grant", value=winner.value,
                   expires_in=winner.expires_in), conflict


#: (qualification, worker_id) -> the unit/rule matches of that worker for that qualification.
Matches = Mapping[Tuple[str, int], Sequence[Contribution]]


def current_changes(
    conn: sqlite3.Connection, rules: Sequence[ReviewRule], matches: Matches, names: Mapping[int, str], now: float
) -> Tuple[List[ReviewChange], List[ReviewConflict], int]:
    """The changes ``matches`` ((qualification, worker_id) -> unit/rule matches) make on the
    database as it is now, their conflicts, and how many (unit, qualification) pairs were
    dropped because an apply already counted them. Scores start from the live values now."""
    applied = applied_store.applied_pairs(conn, sorted({c.unit_id for cs in matches.values() for c in cs}))
    already = len({(c.unit_id, q) for (q, _), cs in matches.items() for c in cs if (c.unit_id, q) in applied})
    by_qual: Dict[str, Dict[int, List[Contribution]]] = defaultdict(dict)
    for (qual, wid), cs in matches.items():
        fresh = [c for c in cs if (c.unit_id, qual) not in applied]
        if fresh:
            by_qual[qual][wid] = fresh
    starts = initials(rules)
    changes: List[ReviewChange] = []
    conflicts: List[ReviewConflict] = []
    for qual in sorted(by_qual):
        held = grant_store.values_of(conn, qual, sorted(by_qual[qual]), now)
        for wid in sorted(by_qual[qual], key=lambda w: (names[w], w)):
            change, conflict = _resolve(rules, qual, wid, names[wid], by_qual[qual][wid], held.get(wid),
                                        starts.get(qual, 0))
            changes.append(change)
            if conflict:
                conflicts.append(conflict)
    return changes, conflicts, already


def plan_review(
    db: Any,
    task_name: Optional[str] = None,
    run_ids: Optional[Sequence[str]] = None,
    rules: Union[Sequence[ReviewRule], RulesSource, None] = None,
    *,
    now: Optional[float] = None,
) -> ReviewPlan:
    """What the rules would do for the reviewed units of a task's runs (all, or ``run_ids``).

    Reads each unit's assigned agent and its review status (approved, rejected,
    soft_rejected); units without an agent or not yet reviewed are counted as skipped.
    Writes nothing. ``rules`` may also be a rules file path or mapping.
    """
    checked = rule_list(rules)
    now = time.time() if now is None else now
    with Session.open(db, readonly=True) as session:
        conn = session.conn
        runs = _resolve_runs(conn, task_name, run_ids)
        plan = ReviewPlan(rules=checked, run_ids=runs, task_name=task_name)
        rows = run_store.units_of_runs(conn, [int(r) for r in runs])
        rows.sort(key=lambda r: (id_key(str(r["task_run_id"])), id_key(str(r["unit_id"]))))
        plan.units_total = len(rows)
        reviewed: Counter = Counter()
        waiting: Counter = Counter()
        matches: Dict[Tuple[str, int], List[Contribution]] = defaultdict(list)
        names: Dict[int, str] = {}
        for row in rows:
            if row["agent_id"] is None or row["worker_id"] is None:
                plan.skipped_no_agent += 1
                continue
            status = row["agent_status"]
            if status not in REVIEW_STATUSES:
                waiting[status] += 1
                continue
            reviewed[status] += 1
            wid = int(row["worker_id"])
            names[wid] = row["worker_name"]
            for rule in checked:
                if rule.matches(status):
                    matches[(rule.qualification, wid)].append(
                        Contribution(str(row["unit_id"]), str(row["task_run_id"]), rule.index))
        plan.reviewed, plan.skipped_unreviewed = dict(reviewed), dict(waiting)
        plan.changes, plan.conflicts, plan.already_applied = current_changes(conn, checked, matches, names, now)
        return plan
