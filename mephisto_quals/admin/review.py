"""Review-driven grants: rules in YAML turn a task run's review outcomes into qualifications.

After units are reviewed in Mephisto (``Agent.approve_work`` / ``reject_work`` /
``soft_reject_work``, e.g. through ``mephisto review`` or ``examine_utils``), rules such as::

    rules:
      - when: approved
        grant: trusted_annotators
      - when: rejected
        score: {qualification: annotator_score, add: -5}
      - when: rejected
        revoke: trusted_annotators

are planned against the units of a task's runs (:func:`plan_review`) and applied through the
grants API (:func:`apply_review`), so rows, audit (``source="review"``) and transactions are
exactly those of :func:`mephisto_quals.admin.grants.set_values` / :func:`~mephisto_quals.admin.grants.revoke`.

How rules combine, per qualification and worker:

* ``score`` rules add up: the sum of ``add`` over every matching rule and every reviewed unit
  of the worker is applied to their current (live) value, or to ``initial`` (default 0) when
  they hold none. A qualification is either a score or granted/revoked: mixing ``score``
  with ``grant``/``revoke`` for one qualification is a config error.
* ``grant`` / ``revoke`` rules that disagree for the same worker and qualification (say
  approved -> grant X and rejected -> revoke X, for a worker with both kinds of units)
  resolve by **file order: the later rule wins**. Put the revoke after the grant (as above)
  and a single rejected unit takes the qualification away. Each such case is listed in
  :attr:`ReviewPlan.conflicts`.

Each reviewed unit counts once per qualification. :func:`apply_review` records the
(unit, qualification) pairs it applied in ``mephisto_quals_review_applied``; later plans
skip them (``ReviewPlan.already_applied``), so applying a plan twice, or reviewing the same
run again later, changes nothing (no score is added twice, and a grant's ``expires_in``
counts from the first apply). The record is claimed before each grants call and confirmed
after it; should the process die in between, the audit row carrying the call's
``[review <token>]`` tag (written in the grant's own transaction) decides whether it counted.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

from mephisto_quals.admin import grants
from mephisto_quals.compile.durations import parse_duration
from mephisto_quals.errors import Problem, QualsConfigError, QualsError
from mephisto_quals.admin.grants import BulkReport, WorkerOutcome
from mephisto_quals.compile.requirements import check_name
from mephisto_quals.store import Session, chunks, schema

__all__ = [
    "ReviewRule",
    "ReviewChange",
    "ReviewConflict",
    "ReviewPlan",
    "UnknownRunError",
    "ReviewInProgressError",
    "REVIEW_STATUSES",
    "APPLIED_TABLE",
    "load_rules",
    "plan_review",
    "apply_review",
]

#: Agent review statuses a rule can match; the values are Mephisto's ``AgentState.STATUS_*``.
REVIEW_STATUSES = ("approved", "rejected", "soft_rejected")
_STATUS_ALIASES = {"approved": "approved", "rejected": "rejected", "soft_rejected": "soft_rejected",
                   "soft-rejected": "soft_rejected"}
ACTIONS = ("grant", "revoke", "score")
_ACTION_KEYS = {
    "grant": ("qualification", "value", "expires_in", "reason"),
    "revoke": ("qualification", "reason"),
    "score": ("qualification", "add", "initial", "reason"),
}
SOURCE = "review"
APPLIED_TABLE = "mephisto_quals_review_applied"
_APPLIED_SCHEMA = schema.REVIEW_APPLIED
#: A claim neither confirmed nor proven by the audit is taken as in flight for this long,
#: then as abandoned (its grants call never committed) and free to be claimed again.
STALE_CLAIM_SECONDS = 600.0

Progress = Optional[Callable[[int], None]]


class UnknownRunError(QualsError, LookupError):
    """The task name or a run id given to :func:`plan_review` is not in the database."""


class ReviewInProgressError(QualsError, RuntimeError):
    """Another apply of the same units is under way (or died less than a few minutes ago)."""


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class ReviewRule:
    """One rule: when a unit's review status is in ``when``, do ``action`` to ``qualification``."""

    index: int
    when: Tuple[str, ...]
    action: str
    qualification: str
    value: int = 1
    expires_in: Any = None
    add: int = 0
    initial: Optional[int] = None
    reason: Optional[str] = None

    @property
    def label(self) -> str:
        return f"rules[{self.index}]"

    def matches(self, status: str) -> bool:
        return status in self.when

    def describe(self) -> str:
        """``approved -> grant trusted (value 1, expires in 30d)`` and the like."""
        when = "|".join(self.when)
        if self.action == "grant":
            extra = f"value {self.value}" + (f", expires in {self.expires_in}" if self.expires_in is not None else "")
            return f"{when} -> grant {self.qualification} ({extra})"
        if self.action == "revoke":
            return f"{when} -> revoke {self.qualification}"
        initial = "" if self.initial is None else f", initial {self.initial}"
        return f"{when} -> score {self.qualification} {self.add:+d}{initial}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_when(raw: Any, path: str) -> Tuple[Tuple[str, ...], List[Problem]]:
    valid = f"use one of {', '.join(REVIEW_STATUSES)} (or a list of them)"
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    if raw is None or (isinstance(raw, (list, tuple)) and not raw):
        return (), [Problem(path, raw, f"say which review outcome the rule is for; {valid}")]
    found: List[str] = []
    problems = []
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]" if isinstance(raw, (list, tuple)) else path
        status = _STATUS_ALIASES.get(item.strip().lower()) if isinstance(item, str) else None
        if status is None:
            problems.append(Problem(item_path, item, valid))
        elif status not in found:
            found.append(status)
    return tuple(found), problems


def _parse_action(action: str, raw: Any, path: str) -> Tuple[Dict[str, Any], List[Problem]]:
    """The action's fields, or the problems with them."""
    if isinstance(raw, str) and action != "score":
        raw = {"qualification": raw}
    if not isinstance(raw, Mapping):
        if action == "score":
            expected = "give {qualification: NAME, add: N} (and optionally initial: N, reason: TEXT)"
        else:
            expected = f"give a qualification name or {{qualification: NAME, ...}} with keys {', '.join(_ACTION_KEYS[action])}"
        return {}, [Problem(path, raw, expected)]
    problems: List[Problem] = []
    allowed = _ACTION_KEYS[action]
    for key in raw:
        if key not in allowed:
            problems.append(Problem(f"{path}.{key}", raw[key], f"unknown key; {action} takes {', '.join(allowed)}"))
    fields: Dict[str, Any] = {}
    if "qualification" not in raw:
        problems.append(Problem(f"{path}.qualification", None, "name the qualification"))
    else:
        problems += check_name(raw["qualification"], f"{path}.qualification")
        fields["qualification"] = raw["qualification"]
    if action == "grant":
        value = raw.get("value", 1)
        if not _is_int(value):
            problems.append(Problem(f"{path}.value", value, "qualification values are integers"))
        fields["value"] = value
        if raw.get("expires_in") is not None:
            try:
                parse_duration(raw["expires_in"], f"{path}.expires_in")
            except ValueError:
                problems.append(Problem(f"{path}.expires_in", raw["expires_in"],
                                        "write a duration longer than zero: a number and a unit (s, m, h, d, w), "
                                        "e.g. 30d, or 'permanent'"))
            fields["expires_in"] = raw["expires_in"]
    if action == "score":
        if "add" not in raw:
            problems.append(Problem(f"{path}.add", None, "say how much to add (an integer, negative to subtract)"))
        elif not _is_int(raw["add"]):
            problems.append(Problem(f"{path}.add", raw["add"], "add takes an integer (negative to subtract)"))
        else:
            fields["add"] = raw["add"]
        if raw.get("initial") is not None:
            if not _is_int(raw["initial"]):
                problems.append(Problem(f"{path}.initial", raw["initial"], "initial takes an integer"))
            else:
                fields["initial"] = raw["initial"]
    reason = raw.get("reason")
    if reason is not None:
        if not isinstance(reason, str):
            problems.append(Problem(f"{path}.reason", reason, "a reason is text"))
        else:
            fields["reason"] = reason
    return fields, problems


def _parse_rules(cfg: Any, origin: str) -> List[ReviewRule]:
    if not isinstance(cfg, Mapping):
        raise QualsConfigError([Problem(origin, cfg, "give a mapping with a 'rules' list")])
    problems: List[Problem] = []
    for key in cfg:
        if key != "rules":
            problems.append(Problem(str(key), cfg[key], "unknown key; a review rules file has only 'rules'"))
    raw_rules = cfg.get("rules")
    if not isinstance(raw_rules, (list, tuple)) or not raw_rules:
        problems.append(Problem("rules", raw_rules, "give a non-empty list of rules ({when: ..., grant|revoke|score: ...})"))
        raise QualsConfigError(problems)
    rules: List[ReviewRule] = []
    for i, raw in enumerate(raw_rules):
        path = f"rules[{i}]"
        if not isinstance(raw, Mapping):
            problems.append(Problem(path, raw, "a rule is a mapping such as {when: approved, grant: NAME}"))
            continue
        rule_problems: List[Problem] = []
        for key in raw:
            if key not in ("when",) + ACTIONS:
                rule_problems.append(Problem(f"{path}.{key}", raw[key],
                                             "unknown key; a rule has 'when' and one of grant, revoke, score"))
        when, found = _parse_when(raw.get("when"), f"{path}.when")
        rule_problems += found
        actions = [a for a in ACTIONS if a in raw]
        if len(actions) != 1:
            shown = {a: raw[a] for a in actions} if actions else None
            rule_problems.append(Problem(path if not actions else f"{path}.{'/'.join(actions)}", shown,
                                         "give exactly one action: grant, revoke or score"))
            problems += rule_problems
            continue
        action = actions[0]
        fields, found = _parse_action(action, raw[action], f"{path}.{action}")
        rule_problems += found
        problems += rule_problems
        if not rule_problems:
            rules.append(ReviewRule(index=i, when=when, action=action, **fields))
    problems += _cross_check(rules)
    if problems:
        raise QualsConfigError(problems)
    return rules


def _cross_check(rules: Sequence[ReviewRule]) -> List[Problem]:
    """A qualification is a score or granted/revoked, and its score rules agree on ``initial``."""
    problems = []
    kinds: Dict[str, Dict[str, ReviewRule]] = defaultdict(dict)
    initials: Dict[str, ReviewRule] = {}
    for rule in rules:
        kind = "score" if rule.action == "score" else "grant/revoke"
        other_kind = "grant/revoke" if kind == "score" else "score"
        if other_kind in kinds[rule.qualification]:
            first = kinds[rule.qualification][other_kind]
            problems.append(Problem(
                f"{rule.label}.{rule.action}.qualification", rule.qualification,
                f"{first.label} already uses it as a {other_kind} qualification; a qualification is either a "
                "score (score rules only) or granted/revoked (grant/revoke rules only)",
            ))
        kinds[rule.qualification].setdefault(kind, rule)
        if rule.action == "score" and rule.initial is not None:
            first = initials.setdefault(rule.qualification, rule)
            if first.initial != rule.initial:
                problems.append(Problem(f"{rule.label}.score.initial", rule.initial,
                                        f"{first.label} gives initial {first.initial} for {rule.qualification!r}; "
                                        "score rules of one qualification must agree (or leave it out)"))
    return problems


def load_rules(source: Union[str, Path, Mapping[str, Any]]) -> List[ReviewRule]:
    """Review rules from a YAML file (path) or a mapping with key ``rules``.

    Raises :class:`QualsConfigError` (a ValueError) listing every problem, each with its
    path (``rules[2].score.add``), the value and what would be valid.
    """
    if isinstance(source, Mapping):
        return _parse_rules(source, "rules")
    if not isinstance(source, (str, Path)):
        raise QualsConfigError([Problem("rules", source, "give a YAML file path or a mapping with a 'rules' list")])
    import yaml

    path = Path(source)
    text = path.read_text(encoding="utf-8")  # FileNotFoundError names the path
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise QualsConfigError([Problem(str(path), "<file>", f"it is not valid YAML: {e}")]) from None
    return _parse_rules(cfg, str(path))


# --------------------------------------------------------------------------- plan


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
            lines.append(f"  skipped: {self.skipped} ({self.skipped_no_agent} without an agent, "
                         f"{sum(self.skipped_unreviewed.values())} not yet reviewed{': ' + waiting if waiting else ''})")
        if self.already_applied:
            lines.append(f"  already applied earlier: {self.already_applied} unit/qualification pairs (not counted again)")
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
    if task_name is None and not run_ids:
        raise ValueError("give a task name or run ids to review")
    task_runs: Optional[Set[str]] = None
    if task_name is not None:
        row = conn.execute("SELECT task_id FROM tasks WHERE task_name = ?", (task_name,)).fetchone()
        if row is None:
            raise UnknownRunError(f"no task named {task_name!r} in this Mephisto database")
        task_runs = {str(r["task_run_id"]) for r in conn.execute(
            "SELECT task_run_id FROM task_runs WHERE task_id = ?", (row["task_id"],))}
    if not run_ids:
        return sorted(task_runs or (), key=int)
    wanted = []
    for raw in run_ids:
        rid = str(raw).strip()
        if not rid.isdigit() or conn.execute("SELECT 1 FROM task_runs WHERE task_run_id = ?", (int(rid),)).fetchone() is None:
            raise UnknownRunError(f"no task run with id {raw!r} in this Mephisto database")
        if task_runs is not None and rid not in task_runs:
            raise UnknownRunError(f"task run {rid} is not a run of task {task_name!r}")
        if rid not in wanted:
            wanted.append(rid)
    return sorted(wanted, key=int)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _proven(conn: sqlite3.Connection, token: str) -> bool:
    """Did the grants call tagged ``token`` commit? Its audit rows say so."""
    return conn.execute(
        "SELECT 1 FROM mephisto_quals_audit WHERE source = ? AND instr(reason, ?) > 0 LIMIT 1",
        (SOURCE, f"[review {token}]"),
    ).fetchone() is not None


def _claims(conn: sqlite3.Connection, unit_ids: Sequence[str]) -> Dict[Tuple[str, str], sqlite3.Row]:
    if not _has_table(conn, APPLIED_TABLE):
        return {}
    out = {}
    for part in chunks(list(unit_ids)):
        rows = conn.execute(f"SELECT * FROM {APPLIED_TABLE} WHERE unit_id IN ({','.join('?' * len(part))})", part)
        out.update({(r["unit_id"], r["qualification"]): r for r in rows})
    return out


def _counted(conn: sqlite3.Connection, unit_ids: Sequence[str], now: float, strict: bool) -> Set[Tuple[str, str]]:
    """(unit, qualification) pairs already applied; with ``strict``, raise on a claim in flight."""
    counted = set()
    proofs: Dict[str, bool] = {}
    for key, row in _claims(conn, unit_ids).items():
        if row["done"]:
            counted.add(key)
            continue
        token = row["token"]
        if token not in proofs:
            proofs[token] = _proven(conn, token)
        if proofs[token]:
            counted.add(key)
        elif strict and now - row["at"] < STALE_CLAIM_SECONDS:
            raise ReviewInProgressError(
                f"unit {key[0]} ({key[1]}) is being applied by another review (claimed "
                f"{now - row['at']:.0f}s ago); if that process died, try again after {STALE_CLAIM_SECONDS:.0f}s"
            )
    return counted


def _live_values(
    conn: sqlite3.Connection, qualification: str, worker_ids: Iterable[int], now: float
) -> Dict[int, Tuple[int, Optional[float]]]:
    """worker_id -> (value, expires_at) for live (unexpired) grants of one qualification."""
    ids = sorted(set(worker_ids))
    out: Dict[int, Tuple[int, Optional[float]]] = {}
    for part in chunks(ids):
        rows = conn.execute(
            f"""SELECT g.worker_id, g.value, m.expires_at FROM granted_qualifications g
                JOIN qualifications q ON q.qualification_id = g.qualification_id
                LEFT JOIN mephisto_quals_grant_meta m
                  ON m.granted_qualification_id = g.granted_qualification_id
                WHERE q.qualification_name = ? AND (m.expires_at IS NULL OR m.expires_at > ?)
                  AND g.worker_id IN ({','.join('?' * len(part))})""",
            [qualification, now, *part],
        )
        out.update({r["worker_id"]: (r["value"], r["expires_at"]) for r in rows})
    return out


def _initials(rules: Sequence[ReviewRule]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for rule in rules:
        if rule.action == "score" and rule.initial is not None:
            out.setdefault(rule.qualification, rule.initial)
    return out


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
    contributions = sorted(contributions, key=lambda c: (int(c.unit_id), c.rule))
    matched = tuple(sorted({c.rule for c in contributions}))
    units = tuple(dict.fromkeys(c.unit_id for c in contributions))
    runs = tuple(sorted({c.task_run_id for c in contributions}, key=int))
    common = dict(qualification=qualification, worker_id=worker_id, worker_name=worker_name, old_value=old,
                  old_expires_at=old_expiry, rules=matched, units=units, run_ids=runs,
                  contributions=tuple(contributions))
    if by_index[matched[0]].action == "score":
        add = sum(by_index[c.rule].add for c in contributions)
        base = old if old is not None else initial
        return ReviewChange(rule=matched[0], new_value=base + add, action="score", add=add, initial=initial, **common), None
    winner = by_index[matched[-1]]  # file order: the later rule wins
    conflict = None
    losers = tuple(i for i in matched[:-1]
                   if (by_index[i].action, by_index[i].value, by_index[i].expires_in)
                   != (winner.action, winner.value, winner.expires_in))
    if losers:
        conflict = ReviewConflict(qualification, worker_id, worker_name, winner.index, losers)
    if winner.action == "revoke":
        return ReviewChange(rule=winner.index, new_value=None, action="revoke", **common), conflict
    return ReviewChange(rule=winner.index, new_value=winner.value, action="grant", value=winner.value,
                        expires_in=winner.expires_in, **common), conflict


def plan_review(
    db: Any,
    task_name: Optional[str] = None,
    run_ids: Optional[Sequence[str]] = None,
    rules: Union[Sequence[ReviewRule], str, Path, Mapping[str, Any], None] = None,
    *,
    now: Optional[float] = None,
) -> ReviewPlan:
    """What the rules would do for the reviewed units of a task's runs (all, or ``run_ids``).

    Reads each unit's assigned agent and its review status (approved, rejected,
    soft_rejected); units without an agent or not yet reviewed are counted as skipped.
    Writes nothing. ``rules`` may also be a rules file path or mapping.
    """
    if rules is None:
        raise ValueError("give review rules (load_rules(...), a rules file path, or a mapping)")
    rule_list = load_rules(rules) if isinstance(rules, (str, Path, Mapping)) else list(rules)
    if not rule_list:
        raise ValueError("give at least one review rule")
    problems = _cross_check(rule_list)
    if problems:
        raise QualsConfigError(problems)
    now = time.time() if now is None else now
    initials = _initials(rule_list)
    session = Session.open(db, readonly=True)
    conn = session.conn
    try:
        runs = _resolve_runs(conn, task_name, run_ids)
        plan = ReviewPlan(rules=rule_list, run_ids=runs, task_name=task_name)
        rows: List[sqlite3.Row] = []
        for part in chunks([int(r) for r in runs]):
            rows += conn.execute(
                f"""SELECT u.unit_id, u.task_run_id, u.agent_id, a.status AS agent_status,
                           a.worker_id, w.worker_name
                    FROM units u
                    LEFT JOIN agents a ON a.agent_id = u.agent_id
                    LEFT JOIN workers w ON w.worker_id = a.worker_id
                    WHERE u.task_run_id IN ({','.join('?' * len(part))})""",
                part,
            ).fetchall()
        rows.sort(key=lambda r: (int(r["task_run_id"]), int(r["unit_id"])))
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
            names[row["worker_id"]] = row["worker_name"]
            for rule in rule_list:
                if rule.matches(status):
                    matches[(rule.qualification, row["worker_id"])].append(
                        Contribution(str(row["unit_id"]), str(row["task_run_id"]), rule.index))
        plan.reviewed, plan.skipped_unreviewed = dict(reviewed), dict(waiting)
        counted = _counted(conn, sorted({c.unit_id for cs in matches.values() for c in cs}), now, strict=False)
        plan.already_applied = len({(c.unit_id, q) for (q, _), cs in matches.items() for c in cs if (c.unit_id, q) in counted})
        by_qual: Dict[str, Dict[int, List[Contribution]]] = defaultdict(dict)
        for (qual, wid), cs in matches.items():
            fresh = [c for c in cs if (c.unit_id, qual) not in counted]
            if fresh:
                by_qual[qual][wid] = fresh
        for qual in sorted(by_qual):
            current = _live_values(conn, qual, by_qual[qual], now)
            for wid in sorted(by_qual[qual], key=lambda w: (names[w], w)):
                change, conflict = _resolve(rule_list, qual, wid, names[wid], by_qual[qual][wid], current.get(wid),
                                            initials.get(qual, 0))
                plan.changes.append(change)
                if conflict:
                    plan.conflicts.append(conflict)
        return plan
    finally:
        session.close()


# --------------------------------------------------------------------------- apply


def _reason(rules: Sequence[ReviewRule], indexes: Sequence[int], runs: Sequence[str], token: str) -> str:
    by_index = {r.index: r for r in rules}
    said = "; ".join(f"rules[{i}] {by_index[i].describe()}" + (f" ({by_index[i].reason})" if by_index[i].reason else "")
                     for i in indexes)
    run_text = f"run{'s' if len(runs) != 1 else ''} {', '.join(runs)}"
    return f"review of {run_text}: {said} [review {token}]"


@dataclass
class _Group:
    """One grants call: the changes it carries and the reason/options it is made with."""

    action: str
    qualification: str
    changes: List[ReviewChange]
    rule_indexes: Tuple[int, ...]
    value: Optional[int] = None
    expires_in: Any = None
    token: str = ""


def _groups(changes: Sequence[ReviewChange]) -> List[_Group]:
    keyed: Dict[Tuple[Any, ...], _Group] = {}
    for c in changes:
        if c.action == "score":
            key: Tuple[Any, ...] = ("score", c.qualification)
        else:
            key = (c.action, c.qualification, c.rule)
        group = keyed.get(key)
        if group is None:
            group = keyed[key] = _Group(c.action, c.qualification, [], (), c.value, c.expires_in)
        group.changes.append(c)
    for group in keyed.values():
        group.rule_indexes = tuple(sorted({i for c in group.changes for i in (c.rules if c.action == "score" else (c.rule,))}))
    return sorted(keyed.values(), key=lambda g: (g.qualification, g.action, g.rule_indexes))


def _refresh(
    conn: sqlite3.Connection, plan: ReviewPlan, now: float, strict: bool
) -> List[ReviewChange]:
    """The plan's changes as they stand now: units applied since dropped, scores on current values."""
    unit_ids = sorted({c.unit_id for ch in plan.changes for c in ch.contributions})
    counted = _counted(conn, unit_ids, now, strict)
    current: Dict[str, Dict[int, Tuple[int, Optional[float]]]] = {}
    out = []
    for ch in plan.changes:
        fresh = [c for c in ch.contributions if (c.unit_id, ch.qualification) not in counted]
        if not fresh:
            continue
        if ch.qualification not in current:
            wids = [x.worker_id for x in plan.changes if x.qualification == ch.qualification]
            current[ch.qualification] = _live_values(conn, ch.qualification, wids, now)
        change, _ = _resolve(plan.rules, ch.qualification, ch.worker_id, ch.worker_name, fresh,
                             current[ch.qualification].get(ch.worker_id), ch.initial)
        out.append(change)
    return out


def _claim(conn: sqlite3.Connection, groups: Sequence[_Group], now: float) -> None:
    rows = []
    for g in groups:
        for ch in g.changes:
            rules_text = ",".join(f"rules[{i}]" for i in ch.rules)
            for unit_id, run_id in dict.fromkeys((c.unit_id, c.task_run_id) for c in ch.contributions):
                rows.append((unit_id, ch.qualification, ch.worker_id, run_id, rules_text, g.token, now))
    # A stale claim (its call never committed) is replaced; _counted already refused live ones.
    conn.executemany(
        f"""INSERT OR REPLACE INTO {APPLIED_TABLE} (unit_id, qualification, worker_id, task_run_id, rules, token, done, at)
            VALUES (?, ?, ?, ?, ?, ?, 0, ?)""",
        rows,
    )


def _settle(db: Any, token: str, ok_workers: Sequence[int], committed: bool) -> None:
    """Confirm a group's claims (for the workers it succeeded for) or release them."""
    session = Session.open(db)
    conn = session.conn
    try:
        with session.transaction():
            if committed:
                for part in chunks(list(ok_workers)):
                    conn.execute(
                        f"UPDATE {APPLIED_TABLE} SET done = 1 WHERE token = ? AND worker_id IN ({','.join('?' * len(part))})",
                        [token, *part],
                    )
            conn.execute(f"DELETE FROM {APPLIED_TABLE} WHERE token = ? AND done = 0", (token,))
    finally:
        session.close()


def _qualification_exists(db: Any, name: str) -> bool:
    with Session.open(db, readonly=True) as session:
        return session.conn.execute("SELECT 1 FROM qualifications WHERE qualification_name = ?", (name,)).fetchone() is not None


def apply_review(db: Any, plan: ReviewPlan, progress: Progress = None, dry_run: bool = False) -> List[BulkReport]:
    """Apply a plan through the grants API, one call per qualification and rule; returns their reports.

    Units applied since the plan was made (e.g. by an earlier apply of the same plan) are
    dropped, and scores are recomputed on the values held now, so applying twice changes
    nothing. ``dry_run`` computes the exact reports and writes nothing.
    """
    now = time.time()
    batch = uuid.uuid4().hex[:12]
    session = Session.open(db)
    conn = session.conn
    try:
        if dry_run:
            changes = _refresh(conn, plan, now, strict=False)
            groups = _groups(changes)
        else:
            with session.transaction():
                changes = _refresh(conn, plan, now, strict=True)
                groups = _groups(changes)
                for n, g in enumerate(groups):
                    g.token = f"{batch}-{n}"
                _claim(conn, groups, now)
    finally:
        session.close()

    reports: List[BulkReport] = []
    for n, g in enumerate(groups):
        runs = sorted({r for c in g.changes for r in c.run_ids}, key=int)
        reason = _reason(plan.rules, g.rule_indexes, runs, g.token or batch)
        try:
            report = _call(db, g, reason, progress, dry_run)
        except BaseException:
            if not dry_run:  # this call rolled back: release its claims and those never tried
                for left in groups[n:]:
                    try:
                        _settle(db, left.token, [], committed=False)
                    except Exception:  # the claim goes stale and is taken again later
                        pass
            raise
        if not dry_run:
            # If this fails the claims stay; the call's audit rows prove it committed.
            _settle(db, g.token, [int(o.worker) for o in report.outcomes if o.ok and str(o.worker).isdigit()],
                    committed=True)
        reports.append(report)
    return reports


def _call(db: Any, g: _Group, reason: str, progress: Progress, dry_run: bool) -> BulkReport:
    workers = [c.worker_id for c in g.changes]
    if g.action == "revoke":
        if not _qualification_exists(db, g.qualification):
            # Nobody can hold a qualification that does not exist: nothing to revoke.
            report = BulkReport("revoke", g.qualification, dry_run)
            report.outcomes = [WorkerOutcome(str(c.worker_id), "not held", c.worker_id, c.worker_name)
                               for c in g.changes]
            if progress:
                progress(len(g.changes))
            return report
        return grants.revoke(db, g.qualification, workers, reason=reason, source=SOURCE, dry_run=dry_run,
                             progress=progress)
    if g.action == "grant":
        values = {w: g.value for w in workers}
        return grants.set_values(db, g.qualification, values, reason=reason, expires_in=g.expires_in,
                                 source=SOURCE, create=True, dry_run=dry_run, progress=progress)
    scores = {c.worker_id: c.new_value for c in g.changes}
    return grants.set_values(db, g.qualification, scores, reason=reason, source=SOURCE, create=True,
                             dry_run=dry_run, progress=progress)
