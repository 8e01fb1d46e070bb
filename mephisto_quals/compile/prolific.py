"""Prolific eligibility requirements, checked and passed through as ``prolific_specific_qualifications``.

Newer Mephisto releases (not 1.1.1 on PyPI) read that field in their Prolific provider;
the names and fields below are the ones that provider accepts.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

from mephisto_quals.errors import Problem

__all__ = ["ELIGIBILITY_REQUIREMENTS", "build_prolific_requirements"]

#: Requirement name -> (fields it takes, whether at least one is needed, field kind).
ELIGIBILITY_REQUIREMENTS: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "AgeRangeEligibilityRequirement": (("min_age", "max_age"), "int"),
    "ApprovalNumbersEligibilityRequirement": (("minimum_approvals", "maximum_approvals"), "int"),
    "ApprovalRateEligibilityRequirement": (("minimum_approval_rate", "maximum_approval_rate"), "int"),
    "CustomBlacklistEligibilityRequirement": (("black_list",), "ids"),
    "CustomWhitelistEligibilityRequirement": (("white_list",), "ids"),
    "JoinedBeforeEligibilityRequirement": (("joined_before",), "str"),
    "ParticipantGroupEligibilityRequirement": (("id",), "str"),
}


def _field_problem(kind: str, value: Any, path: str) -> List[Problem]:
    if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        return [Problem(path, value, "give a whole number")]
    if kind == "str" and (not isinstance(value, str) or not value.strip()):
        return [Problem(path, value, "give a non-empty string")]
    if kind == "ids":
        if not isinstance(value, (list, tuple)) or not value:
            return [Problem(path, value, "give a non-empty list of Prolific participant ids")]
        bad = [v for v in value if not isinstance(v, str) or not v.strip()]
        if bad:
            return [Problem(path, value, f"participant ids are non-empty strings; {bad!r} are not")]
    return []


def build_prolific_requirements(raw: Any, path: str) -> Tuple[List[Dict[str, Any]], List[Problem]]:
    """Validate the ``quals.prolific`` list and return plain dicts for the provider."""
    if not raw:
        return [], []
    if not isinstance(raw, (list, tuple)):
        return [], [Problem(path, raw, "give a list of {name: ...EligibilityRequirement, ...}")]
    out: List[Dict[str, Any]] = []
    problems: List[Problem] = []
    for i, item in enumerate(raw):
        item_path = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            problems.append(Problem(item_path, item, "give a mapping with a 'name'"))
            continue
        name = item.get("name")
        if name not in ELIGIBILITY_REQUIREMENTS:
            problems.append(Problem(f"{item_path}.name", name, f"use one of {', '.join(ELIGIBILITY_REQUIREMENTS)}"))
            continue
        fields, kind = ELIGIBILITY_REQUIREMENTS[name]
        unknown = sorted(set(item) - set(fields) - {"name"})
        if unknown:
            problems.append(Problem(item_path, dict(item), f"unknown keys {unknown}; {name} takes {', '.join(fields)}"))
            continue
        given = [f for f in fields if item.get(f) is not None]
        if not given:
            problems.append(Problem(item_path, dict(item), f"{name} needs {' and/or '.join(fields)}"))
            continue
        found = [p for f in given for p in _field_problem(kind, item[f], f"{item_path}.{f}")]
        problems += found
        if not found:
            out.append({k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in item.items()})
    return out, problems
