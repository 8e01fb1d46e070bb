"""Local requirement values compiled from the ``quals`` config, the form Mephisto gates on.

Data flows one way: the config node becomes a list of plain :class:`Requirement` values,
which become Mephisto qualification dicts for ``SharedTaskState.qualifications``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple, Union

from mephisto_quals.compile import comparators as cmp
from mephisto_quals.errors import Problem

__all__ = [
    "Requirement",
    "failed_name",
    "check_name",
    "compile_local",
    "find_conflicts",
    "local_provider_types",
]

Value = Union[None, int, Tuple[int, ...]]


def failed_name(onboarding_name: str) -> str:
    """Mephisto's name for the list of workers who failed an onboarding."""
    return f"{onboarding_name}-failed"


@dataclass(frozen=True)
class Requirement:
    """One local requirement: a qualification, a comparator and a value, with its origin.

    ``source`` is the config path that asked for it and ``why`` a sentence a person can
    read. ``local_only`` marks guards that Mephisto checks locally but that need not be
    sent to MTurk, where a worker without a qualification fails value comparisons anyway.
    """

    qualification: str
    comparator: str
    value: Value
    source: str
    why: str
    local_only: bool = False

    @property
    def blocks(self) -> bool:
        """True when holding the qualification keeps a worker out."""
        return self.comparator == cmp.NOT_EXIST

    def key(self) -> Tuple[str, str, Value]:
        """Identity used to drop duplicates: same qualification, comparator and value."""
        return (self.qualification, self.comparator, self.value)

    def describe(self) -> str:
        """Short form such as ``score >= 3`` or ``allowlist exists``."""
        if self.value is None:
            return f"{self.qualification} {cmp.describe(self.comparator)}"
        shown = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.qualification} {cmp.describe(self.comparator)} {shown}"

    def to_mephisto_dict(self) -> Dict[str, Any]:
        """The dict ``make_qualification_dict`` would build, validated by Mephisto itself."""
        from mephisto.utils.qualifications import make_qualification_dict

        value = list(self.value) if isinstance(self.value, tuple) else self.value
        providers = local_provider_types() if self.local_only else None
        return make_qualification_dict(self.qualification, self.comparator, value, providers)


def local_provider_types() -> List[str]:
    """Registered Mephisto providers other than MTurk's (where guards are implied)."""
    from mephisto.operations.registry import get_valid_provider_types

    return [p for p in get_valid_provider_types() if not p.startswith("mturk")]


def check_name(value: Any, path: str) -> List[Problem]:
    """A qualification name must be a non-empty string without surrounding whitespace."""
    if not isinstance(value, str):
        return [Problem(path, value, "a qualification name must be a string")]
    if not value.strip():
        return [Problem(path, value, "a qualification name must not be empty or whitespace")]
    if value != value.strip():
        return [Problem(path, value, f"remove the surrounding whitespace: {value.strip()!r}")]
    return []


def _names(cfg: Mapping[str, Any], key: str, path: str) -> Tuple[List[Tuple[str, str]], List[Problem]]:
    raw = cfg.get(key) or []
    if not isinstance(raw, (list, tuple)):
        return [], [Problem(f"{path}.{key}", raw, "give a list of qualification names")]
    names, problems = [], []
    for i, name in enumerate(raw):
        item_path = f"{path}.{key}[{i}]"
        found = check_name(name, item_path)
        if found and name is None and key in ("require_onboarding_passed", "block_onboarding_failed"):
            found = [Problem(item_path, name, f"set {path}.onboarding_from=NAME when using the onboarding presets")]
        problems += found
        if not found:
            names.append((name, item_path))
    return names, problems


def _value_requirements(cfg: Mapping[str, Any], path: str) -> Tuple[List[Requirement], List[Problem]]:
    raw = cfg.get("requirements") or []
    if not isinstance(raw, (list, tuple)):
        return [], [Problem(f"{path}.requirements", raw, "give a list of {qualification, comparator, value}")]
    out: List[Requirement] = []
    problems: List[Problem] = []
    for i, item in enumerate(raw):
        item_path = f"{path}.requirements[{i}]"
        if not isinstance(item, Mapping):
            problems.append(Problem(item_path, item, "give a mapping {qualification, comparator, value}"))
            continue
        unknown = sorted(set(item) - {"qualification", "comparator", "value"})
        if unknown:
            problems.append(
                Problem(item_path, dict(item), f"unknown keys {unknown}; use qualification, comparator, value")
            )
            continue
        name = item.get("qualification")
        name_problems = check_name(name, f"{item_path}.qualification")
        comparator, comp_problems = cmp.normalize_comparator(item.get("comparator"), f"{item_path}.comparator")
        problems += name_problems + comp_problems
        if name_problems or comparator is None or not isinstance(name, str):
            continue
        value, value_problems = cmp.check_value(comparator, item.get("value"), f"{item_path}.value")
        problems += value_problems
        if value_problems:
            continue
        frozen: Value = tuple(value) if isinstance(value, list) else value
        if comparator in cmp.VALUE_COMPARATORS:
            out.append(
                Requirement(name, cmp.EXISTS, None, item_path, f"must hold '{name}' to be compared", local_only=True)
            )
        req = Requirement(name, comparator, frozen, item_path, "")
        out.append(Requirement(name, comparator, frozen, item_path, f"needs {req.describe()}"))
    return out, problems


def compile_local(cfg: Mapping[str, Any], path: str) -> Tuple[List[Requirement], List[Problem]]:
    """Turn a plain ``quals`` mapping into local requirements, in the order they are checked.

    Blocks come first (one query rejects a blocked worker early), then what must be held.
    Duplicates are dropped; every problem found is returned, not just the first.
    """
    problems: List[Problem] = []
    reqs: List[Requirement] = []

    passed, p = _names(cfg, "require_onboarding_passed", path)
    problems += p
    failed, p = _names(cfg, "block_onboarding_failed", path)
    problems += p
    allow, p = _names(cfg, "allowlists", path)
    problems += p
    block, p = _names(cfg, "blocklists", path)
    problems += p
    soft, p = _names(cfg, "block_qualifications", path)
    problems += p
    values, p = _value_requirements(cfg, path)
    problems += p

    for name, src in block:
        reqs.append(Requirement(name, cmp.NOT_EXIST, None, src, f"on blocklist '{name}'"))
    for name, src in soft:
        reqs.append(Requirement(name, cmp.NOT_EXIST, None, src, f"soft-blocked by '{name}'"))
    for name, src in failed:
        reqs.append(Requirement(failed_name(name), cmp.NOT_EXIST, None, src, f"failed onboarding '{name}'"))
    for name, src in allow:
        reqs.append(Requirement(name, cmp.EXISTS, None, src, f"not on allowlist '{name}'"))
    for name, src in passed:
        reqs.append(Requirement(name, cmp.EXISTS, None, src, f"never took onboarding '{name}'", local_only=True))
        reqs.append(Requirement(name, cmp.EQUAL, 1, src, f"did not pass onboarding '{name}'"))
    reqs += values
    return dedupe(reqs), problems


def dedupe(reqs: Iterable[Requirement]) -> List[Requirement]:
    """Keep the first of requirements with the same key; a guard never repeats."""
    seen = set()
    out = []
    for r in reqs:
        if r.key() in seen:
            continue
        seen.add(r.key())
        out.append(r)
    return out


def find_conflicts(reqs: Sequence[Requirement], extra_blocked: Sequence[Tuple[str, str]] = ()) -> List[Problem]:
    """A name both required and blocked would let nobody in: report each such pair.

    ``extra_blocked`` adds (name, config path) pairs blocked by Mephisto itself, such as
    ``block_qualification`` or an onboarding's failed list.
    """
    required: Dict[str, str] = {}
    blocked: Dict[str, str] = {}
    for r in reqs:
        target = blocked if r.blocks else required
        target.setdefault(r.qualification, r.source)
    for name, src in extra_blocked:
        blocked.setdefault(name, src)
    return [
        Problem(
            blocked[name], name, f"it is also required at {required[name]}; a name cannot be both required and blocked"
        )
        for name in required
        if name in blocked
    ]
