"""Applying a review plan: every grant, revoke and score change, and its record, in one commit.

:func:`apply_review` opens one write transaction (``BEGIN IMMEDIATE``, so concurrent applies
take turns), re-reads inside it which units earlier applies counted and the values workers
hold now, recomputes the changes on them, makes the grants calls with ``session=`` (they run
inside this transaction) and records the (unit, qualification) pairs it counted. Either all
of it commits or none of it: after a crash there is nothing to repair, and applying again
does the whole job once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from mephisto_quals.admin import grants
from mephisto_quals.admin.reports import BulkReport, WorkerOutcome
from mephisto_quals.admin.review.plan import ReviewChange, ReviewPlan, current_changes, id_key
from mephisto_quals.admin.review.rules import ReviewRule
from mephisto_quals.store import Session
from mephisto_quals.store import qualifications as qual_store
from mephisto_quals.store import review_applied as applied_store

__all__ = ["apply_review", "push_to_prolific", "touched_qualifications", "SOURCE"]

#: The audit ``source`` of review changes.
SOURCE = "review"

Progress = Optional[Callable[[int], None]]


@dataclass
class _Call:
    """One grants call: the changes it carries and the rule(s) behind them."""

    action: str
    qualification: str
    changes: List[ReviewChange]
    rule_indexes: Tuple[int, ...] = ()
    value: int = 1
    expires_in: Any = None


def _calls(changes: Sequence[ReviewChange]) -> List[_Call]:
    """One call per score qualification, and per grant/revoke qualification and deciding rule."""
    keyed: Dict[Tuple[Any, ...], _Call] = {}
    for c in changes:
        score = c.action == "score"
        key: Tuple[Any, ...] = ("score", c.qualification) if score else (c.action, c.qualification, c.rule)
        call = keyed.get(key)
        if call is None:
            value = 1 if c.value is None else c.value
            call = keyed[key] = _Call(c.action, c.qualification, [], (), value, c.expires_in)
        call.changes.append(c)
    for call in keyed.values():
        deciding = {i for c in call.changes for i in (c.rules if c.action == "score" else (c.rule,))}
        call.rule_indexes = tuple(sorted(deciding))
    return sorted(keyed.values(), key=lambda g: (g.qualification, g.action, g.rule_indexes))


def _reason(rules: Sequence[ReviewRule], call: _Call) -> str:
    """The audit reason: the runs and the rules (with their own reasons) behind a call."""
    by_index = {r.index: r for r in rules}
    said = "; ".join(f"rules[{i}] {by_index[i].describe()}" + (f" ({by_index[i].reason})" if by_index[i].reason else "")
                     for i in call.rule_indexes)
    runs = sorted({r for c in call.changes for r in c.run_ids}, key=id_key)
    return f"review of run{'s' if len(runs) != 1 else ''} {', '.join(runs)}: {said}"


def _make(db: Any, session: Session, call: _Call, reason: str, progress: Progress, now: float) -> BulkReport:
    """The grants call for ``call``, inside the session's open transaction."""
    workers = [c.worker_id for c in call.changes]
    if call.action == "revoke":
        if call.qualification not in qual_store.find_ids(session.conn, [call.qualification]):
            # Nobody can hold a qualification that does not exist: nothing to revoke.
            report = BulkReport("revoke", call.qualification)
            report.outcomes = [WorkerOutcome(str(c.worker_id), "not held", c.worker_id, c.worker_name)
                               for c in call.changes]
            if progress:
                progress(len(call.changes))
            return report
        return grants.revoke(db, call.qualification, workers, reason=reason, source=SOURCE, progress=progress,
                             now=now, session=session)
    if call.action == "grant":
        values: Dict[Union[str, int], int] = {w: call.value for w in workers}
        return grants.set_values(db, call.qualification, values, reason=reason, expires_in=call.expires_in,
                                 source=SOURCE, create=True, progress=progress, now=now, session=session)
    scores: Dict[Union[str, int], int] = {c.worker_id: c.new_value for c in call.changes if c.new_value is not None}
    return grants.set_values(db, call.qualification, scores, reason=reason, source=SOURCE, create=True,
                             progress=progress, now=now, session=session)


def _counted(call: _Call, report: BulkReport, rules_text: Dict[int, str]) -> List[applied_store.AppliedPair]:
    """The (unit, qualification) pairs a call counted: those of every worker it did not fail for."""
    failed = {o.worker for o in report.outcomes if not o.ok}
    pairs = []
    for ch in call.changes:
        if str(ch.worker_id) in failed:
            continue
        matched = ",".join(rules_text[i] for i in ch.rules)
        for unit_id, run_id in dict.fromkeys((c.unit_id, c.task_run_id) for c in ch.contributions):
            pairs.append(applied_store.AppliedPair(unit_id, ch.qualification, ch.worker_id, run_id, matched))
    return pairs


def apply_review(db: Any, plan: ReviewPlan, progress: Progress = None, dry_run: bool = False) -> List[BulkReport]:
    """Apply a plan through the grants API, one call per qualification and rule, in ONE
    transaction; returns the calls' reports.

    Units counted since the plan was made (e.g. by an earlier apply of the same plan, or by
    another process applying now) are dropped, and scores are recomputed on the values held
    at the moment of writing, so applying twice changes nothing and concurrent applies of
    different runs both count. ``dry_run`` computes the exact reports and writes nothing.
    """
    now = time.time()
    matches = {(ch.qualification, ch.worker_id): ch.contributions for ch in plan.changes}
    names = {ch.worker_id: ch.worker_name for ch in plan.changes}
    rules_text = {r.index: f"rules[{r.index}]" for r in plan.rules}
    reports: List[BulkReport] = []
    with Session.open(db) as session, session.transaction(rollback=dry_run) as conn:
        changes, _, _ = current_changes(conn, plan.rules, matches, names, now)
        counted: List[applied_store.AppliedPair] = []
        for call in _calls(changes):
            report = _make(db, session, call, _reason(plan.rules, call), progress, now)
            counted += _counted(call, report, rules_text)
            reports.append(report)
        applied_store.record(conn, counted, uuid.uuid4().hex[:12], now)
    for report in reports:
        report.dry_run = dry_run
    return reports


#: Outcome statuses that change who holds a qualification.
_CHANGED = {"granted", "updated", "revoked"}


def touched_qualifications(reports: Sequence[BulkReport]) -> List[str]:
    """The qualifications an apply changed for at least one worker, each once, in order."""
    return list(dict.fromkeys(r.qualification for r in reports if any(o.status in _CHANGED for o in r.outcomes)))


def push_to_prolific(db: Any, reports: Sequence[BulkReport], **prolific: Any) -> List[BulkReport]:
    """After an apply committed: sync each touched qualification's Prolific participant group
    from the local holders (only the difference; the group is created on first use), so a
    review that blocks a participant keeps them out of live studies at once.

    ``prolific`` goes to :func:`~mephisto_quals.providers.prolific.sync.apply_sync` (workspace,
    client, live_ok, ...). Returns one sync report per qualification.
    """
    from mephisto_quals.providers.prolific.sync import apply_sync

    return [apply_sync(db, q, **prolific) for q in touched_qualifications(reports)]
