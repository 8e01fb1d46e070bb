"""Review rules: the YAML that says which review outcome grants, revokes or scores what.

:func:`load_rules` reads a rules file (or a mapping with key ``rules``) into
:class:`ReviewRule` objects and refuses a bad one with every problem at once, each naming
the file and path (``rules[2].score.add``), the value and what would be valid.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from mephisto_quals.compile.durations import parse_duration
from mephisto_quals.compile.requirements import check_name
from mephisto_quals.errors import Problem, QualsConfigError

__all__ = ["ReviewRule", "REVIEW_STATUSES", "ACTIONS", "RulesSource", "load_rules", "rule_list", "cross_check",
           "initials"]

#: What :func:`load_rules` (and ``plan_review(rules=...)``) accepts besides a list of rules.
RulesSource = Union[str, Path, Mapping[str, Any]]

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
            keys = ", ".join(_ACTION_KEYS[action])
            expected = f"give a qualification name or {{qualification: NAME, ...}} with keys {keys}"
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
        problems.append(Problem("rules", raw_rules,
                                "give a non-empty list of rules ({when: ..., grant|revoke|score: ...})"))
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
    problems += cross_check(rules)
    if problems:
        raise QualsConfigError(problems)
    return rules


def cross_check(rules: Sequence[ReviewRule]) -> List[Problem]:
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


def load_rules(source: RulesSource) -> List[ReviewRule]:
    """Review rules from a YAML file (path) or a mapping with key ``rules``.

    Raises :class:`QualsConfigError` (a ValueError) listing every problem, each with its
    path (``rules[2].score.add``, after the file's name for a file), the value and what
    would be valid.
    """
    if isinstance(source, Mapping):
        return _parse_rules(source, "rules")
    if not isinstance(source, (str, Path)):
        raise QualsConfigError([Problem("rules", source, "give a YAML file path or a mapping with a 'rules' list")])
    from mephisto_quals.compile.config import read_yaml_file

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such review rules file")
    cfg = read_yaml_file(path)  # undecodable bytes or bad YAML: named with the file (and line)
    try:
        return _parse_rules(cfg, str(path))
    except QualsConfigError as e:
        named = [p if p.path == str(path) else Problem(f"{path}: {p.path}", p.value, p.expected) for p in e.problems]
        raise QualsConfigError(named) from None


def rule_list(rules: Union[Sequence[ReviewRule], RulesSource, None]) -> List[ReviewRule]:
    """Rules given as loaded rules, a rules file path or a mapping, checked to combine."""
    if rules is None:
        raise ValueError("give review rules (load_rules(...), a rules file path, or a mapping)")
    out = load_rules(rules) if isinstance(rules, (str, Path, Mapping)) else list(rules)
    if not out:
        raise ValueError("give at least one review rule")
    problems = cross_check(out)
    if problems:
        raise QualsConfigError(problems)
    return out


def initials(rules: Sequence[ReviewRule]) -> Dict[str, int]:
    """qualification -> the ``initial`` its score rules give (only those that give one)."""
    out: Dict[str, int] = {}
    for rule in rules:
        if rule.action == "score" and rule.initial is not None:
            out.setdefault(rule.qualification, rule.initial)
    return out
