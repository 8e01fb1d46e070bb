"""Questions users ask of a task: why can (or can't) this worker take it, and who could.

A task is named by its Mephisto task name (the args stored with its newest run are used)
or given as a config (a run config with ``blueprint`` / ``provider`` / ``task``, or a
task YAML whose ``mephisto`` node holds one).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from mephisto_quals.admin import prolific_side
from mephisto_quals.compile.mturk import LOCALE_ID, SYSTEM_QUALS, is_mturk_provider
from mephisto_quals.compile.plan import QualsPlan, config_value, gate_requirements, plan_for_run
from mephisto_quals.compile.requirements import Requirement
from mephisto_quals.errors import QualsError
from mephisto_quals.integration.gate import check_worker, passes
from mephisto_quals.store import Session
from mephisto_quals.store import eligibility as eligibility_store
from mephisto_quals.store import qualifications as qual_store
from mephisto_quals.store import runs as run_store
from mephisto_quals.store.workers import parse_refs, resolve_workers

__all__ = [
    "TaskQuals",
    "ExplainRow",
    "Explanation",
    "Forecast",
    "load_task",
    "explain",
    "forecast",
    "eligible_workers",
    "eligible_counts",
    "cost_notes",
]


@dataclass
class TaskQuals:
    """A task's run config, its plan, and everything Mephisto's gate checks for it."""

    source: str
    run_config: Any
    plan: QualsPlan
    checks: List[Requirement]
    provider_type: Optional[str]


def load_task(db: Any = None, task: Optional[str] = None, config: Union[str, Path, Any, None] = None) -> TaskQuals:
    """The qualification plan of a task, by name (its newest run's args) or from a config."""
    from omegaconf import DictConfig, OmegaConf

    if (task is None) == (config is None):
        raise ValueError("name a task or give a config, not both")
    if task is not None:
        with Session.open(db, readonly=True) as s:
            params = run_store.newest_run_params(s.conn, task)
        if params is None:
            raise QualsError(f"task {task!r} has no runs in this database; check the name or give --config")
        run_config = OmegaConf.create(json.loads(params))  # YAML text, JSON-quoted
        source = f"task '{task}' (args of its newest run)"
    else:
        if isinstance(config, (str, Path)):
            run_config = OmegaConf.load(str(config))
            source = f"config {config}"
        else:
            run_config = config if isinstance(config, DictConfig) else OmegaConf.create(config)
            source = "config"
        if "mephisto" in run_config:
            run_config = run_config.mephisto
    if "blueprint" not in run_config:
        raise QualsError(f"{source} has no mephisto.blueprint node")
    plan = plan_for_run(run_config)
    provider = run_config.get("provider") or {}
    return TaskQuals(
        source,
        run_config,
        plan,
        gate_requirements(plan, run_config.blueprint),
        config_value(provider, "_provider_type"),
    )


def cost_notes(plan: QualsPlan) -> List[str]:
    """Fees the MTurk requirements add (Masters: 5% more commission)."""
    ids = {q.type_id(s): q for q in SYSTEM_QUALS.values() for s in (False, True)}
    notes = []
    for req in plan.mturk:
        q = ids.get(req["QualificationTypeId"])
        if q is not None and q.fee_note:
            notes.append(q.fee_note)
    return list(dict.fromkeys(notes))


@dataclass(frozen=True)
class ExplainRow:
    """One requirement as it applies to one worker."""

    where: str  # local | mephisto | mturk | prolific
    requirement: str
    source: str
    actual: str
    verdict: str  # pass | fail | unknown


@dataclass
class Explanation:
    worker: str
    worker_id: Optional[int]
    task: TaskQuals
    rows: List[ExplainRow] = field(default_factory=list)

    @property
    def local_verdict(self) -> str:
        """pass when every local check passes; what MTurk decides is listed separately."""
        return "fail" if any(r.verdict == "fail" for r in self.rows) else "pass"


def _resolve_one(db: Any, worker: str, provider: Optional[str]) -> Tuple[Optional[int], str]:
    refs, refused = parse_refs([worker], provider)
    if refused:
        raise ValueError(f"worker {worker!r}: {refused[next(iter(refused))]}")
    with Session.open(db, readonly=True) as s:
        found, _ = resolve_workers(s.conn, refs, create=False)
    if worker in found:
        return found[worker]
    return None, refs[0].name or worker


def _mturk_label(req: Dict[str, Any]) -> str:
    by_id = {q.type_id(s): q for q in SYSTEM_QUALS.values() for s in (False, True)}
    q = by_id.get(req["QualificationTypeId"])
    name = q.title if q else req["QualificationTypeId"]
    values = req.get("IntegerValues") or [
        f"{v['Country']}-{v['Subdivision']}" if "Subdivision" in v else v["Country"]
        for v in req.get("LocaleValues") or []
    ]
    return f"{name} {req['Comparator']} {values}" if values else f"{name} {req['Comparator']}"


def explain(
    db: Any,
    worker: str,
    provider: Optional[str] = None,
    task: Optional[str] = None,
    config: Any = None,
    now: Optional[float] = None,
    prolific_client: Any = None,
) -> Explanation:
    """Every requirement of a task for one worker: their value and pass / fail / unknown.

    On a Prolific task the list groups are shown as last synced, or read from Prolific with
    ``prolific_client``; Prolific's filters are "only Prolific knows"."""
    tq = load_task(db, task, config)
    worker_id, name = _resolve_one(db, worker, provider)
    out = Explanation(name, worker_id, tq)
    results = check_worker(db, str(worker_id), tq.checks, now=now) if worker_id is not None else []
    for i, r in enumerate(tq.checks):
        where = "local" if r.source.startswith("mephisto.blueprint.quals") else "mephisto"
        if worker_id is None:
            # Mephisto has never seen this worker: they hold nothing.
            ok = passes(r.comparator, r.value, False, None)
            out.rows.append(ExplainRow(where, r.describe(), r.source, "never seen", "pass" if ok else "fail"))
            continue
        res = results[i]
        actual = str(res.actual) if res.held else "not held"
        out.rows.append(ExplainRow(where, r.describe(), r.source, actual, "pass" if res.passed else "fail"))
    for req in tq.plan.mturk:
        out.rows.append(
            ExplainRow("mturk", _mturk_label(req), "mephisto.blueprint.quals.mturk", "only MTurk knows", "unknown")
        )
    if (
        is_mturk_provider(tq.provider_type)
        and tq.provider_type == "mturk"
        and not any(q["QualificationTypeId"] == LOCALE_ID for q in tq.plan.mturk)
    ):
        out.rows.append(
            ExplainRow(
                "mturk",
                "Location In [US, CA, GB, AU, NZ] (Mephisto's default)",
                "mephisto (live MTurk)",
                "only MTurk knows",
                "unknown",
            )
        )
    if prolific_side.applies(tq.plan, tq.provider_type):
        side = prolific_side.explain_rows(
            db, tq.plan, tq.run_config.blueprint, tq.provider_type, name, worker_id, client=prolific_client, now=now
        )
        out.rows += [ExplainRow(r.where, r.requirement, r.source, r.actual, r.verdict) for r in side]
    return out


@dataclass
class Forecast:
    """How many known workers pass every local requirement, and each requirement alone."""

    task: TaskQuals
    known_workers: int
    passing: int
    per_requirement: List[Tuple[Requirement, int]]
    warnings: List[str]
    #: The Prolific side (list groups as last synced, filters only Prolific evaluates); also in warnings.
    prolific: List[str] = field(default_factory=list)


def _checks(s: Session, requirements: Sequence[Requirement]) -> List[eligibility_store.Check]:
    ids = qual_store.find_ids(s.conn, list(dict.fromkeys(r.qualification for r in requirements)))
    return [eligibility_store.Check(ids.get(r.qualification), r.comparator, r.value) for r in requirements]


def eligible_workers(
    db: Any,
    requirements: Sequence[Requirement],
    worker_ids: Optional[Sequence[int]] = None,
    provider_type: Optional[str] = None,
    now: Optional[float] = None,
) -> Tuple[Dict[int, bool], List[int]]:
    """worker_id -> passes every requirement, plus how many pass each requirement alone.

    Set-based (store.eligibility.verdicts: a few statements for all workers, in one read
    transaction), with the gate's verdicts. A qualification not yet in the DB counts as held by
    nobody: the mixin creates it at launch. A worker id given twice counts once. When only the
    numbers are needed, :func:`eligible_counts` skips the per-worker answer.
    """
    now = time.time() if now is None else now
    with Session.open(db, readonly=True) as s, s.transaction():
        return eligibility_store.verdicts(s.conn, _checks(s, requirements), now, provider_type, worker_ids)


def eligible_counts(
    db: Any,
    requirements: Sequence[Requirement],
    worker_ids: Optional[Sequence[int]] = None,
    provider_type: Optional[str] = None,
    now: Optional[float] = None,
) -> eligibility_store.Counts:
    """The numbers of :func:`eligible_workers` without a row per worker: the population's size,
    how many pass every requirement, and how many pass each one alone (what ``forecast`` prints)."""
    now = time.time() if now is None else now
    with Session.open(db, readonly=True) as s, s.transaction():
        return eligibility_store.counts(s.conn, _checks(s, requirements), now, provider_type, worker_ids)


def forecast(db: Any, task: Optional[str] = None, config: Any = None, now: Optional[float] = None) -> Forecast:
    """Known workers (of the task's provider type) passing every local requirement."""
    tq = load_task(db, task, config)
    known, passing, per = eligible_counts(db, tq.checks, provider_type=tq.provider_type, now=now)
    warnings = []
    if passing == 0:
        warnings.append("no known worker passes every local requirement: nobody could work on this task yet")
    if tq.plan.mturk or tq.plan.prolific:
        warnings.append("provider-side requirements (MTurk / Prolific) are not counted: only the provider knows them")
    warnings += [f"cost: {note}" for note in cost_notes(tq.plan)]
    prolific = prolific_side.forecast_lines(db, tq.plan, tq.run_config.blueprint, tq.provider_type)
    return Forecast(tq, known, passing, list(zip(tq.checks, per, strict=True)), warnings + prolific, prolific)
