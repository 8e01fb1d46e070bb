"""``quals.prolific``: Prolific requirements in its current ``filters`` form, checked before launch.

Each item of the list is one Prolific filter, written as::

    - {filter: approval_rate, min: 95}                         # range filters: min and/or max
    - {filter: current-country-of-residence, values: [United Kingdom, United States]}  # select filters
    - {filter_id: handedness, values: ["1"]}                   # any other filter, by Prolific's id

and becomes the study payload Prolific documents (``{"filter_id", "selected_range": {"lower",
"upper"}}`` or ``{"filter_id", "selected_values": [...]}``). :data:`FILTERS` is the ONE table of
filters mephisto-quals checks itself (ids and bounds as Prolific's filter list gives them; the
launch reads ``GET /api/v1/filters/`` and refuses an id Prolific does not list, so an id that
changes is caught before a study exists). Select values may be Prolific's choice ids or their
labels: the launch maps labels to ids from the same list.

**Deprecated form.** The eligibility-requirement dicts Mephisto's provider used to take
(``{name: ApprovalRateEligibilityRequirement, minimum_approval_rate: 95}``; Prolific marks them
deprecated) are still accepted for a deprecation period: each is checked as before, converted
to its filter, and a warning says the filter line to write instead. ``JoinedBeforeEligibilityRequirement``
has no filter in the table and is refused with that advice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mephisto_quals.errors import Problem

__all__ = [
    "FilterSpec",
    "FILTERS",
    "ELIGIBILITY_REQUIREMENTS",
    "STATE_ENTRY",
    "build_prolific_requirements",
    "build_prolific_filters",
    "legacy_to_filter",
    "to_state_entries",
    "from_state_entries",
    "describe_filter",
]

_PARTICIPANT_ID = re.compile(r"^[0-9a-f]{24}$")
_FILTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: ``name`` of the entries we put in ``shared_state.prolific_specific_qualifications`` (Mephisto's
#: provider reads every entry's ``name``; an unknown one is kept and skipped by its converter).
STATE_ENTRY = "mephisto_quals.filter"


@dataclass(frozen=True)
class FilterSpec:
    """A Prolific filter mephisto-quals checks: its id, kind, and for ranges the valid bounds."""

    filter_id: str
    kind: str  # "range" | "select"
    lower: Optional[float] = None
    upper: Optional[float] = None
    values: str = "strings"  # select: "strings" | "participant ids" | "group ids"

    def bounds(self) -> str:
        if self.upper is None:
            return f">= {self.lower:g}"
        return f"{self.lower:g}–{self.upper:g}"


#: Every filter mephisto-quals knows, by the name written under ``filter:`` (Prolific's filter_id).
FILTERS: Dict[str, FilterSpec] = {
    "approval_rate": FilterSpec("approval_rate", "range", 0, 100),
    "approval_numbers": FilterSpec("approval_numbers", "range", 0, None),
    "age": FilterSpec("age", "range", 18, 100),
    "current-country-of-residence": FilterSpec("current-country-of-residence", "select"),
    "fluent-languages": FilterSpec("fluent-languages", "select"),
    "first-language": FilterSpec("first-language", "select"),
    "custom_allowlist": FilterSpec("custom_allowlist", "select", values="participant ids"),
    "custom_blocklist": FilterSpec("custom_blocklist", "select", values="participant ids"),
    "participant_group_allowlist": FilterSpec("participant_group_allowlist", "select", values="group ids"),
    "participant_group_blocklist": FilterSpec("participant_group_blocklist", "select", values="group ids"),
}

#: Deprecated eligibility requirement -> (its fields, field kind, the filter it becomes, field -> filter key).
ELIGIBILITY_REQUIREMENTS: Dict[str, Tuple[Tuple[str, ...], str, Optional[str], Dict[str, str]]] = {
    "AgeRangeEligibilityRequirement": (("min_age", "max_age"), "int", "age", {"min_age": "min", "max_age": "max"}),
    "ApprovalNumbersEligibilityRequirement": (("minimum_approvals", "maximum_approvals"), "int", "approval_numbers",
                                              {"minimum_approvals": "min", "maximum_approvals": "max"}),
    "ApprovalRateEligibilityRequirement": (("minimum_approval_rate", "maximum_approval_rate"), "int", "approval_rate",
                                           {"minimum_approval_rate": "min", "maximum_approval_rate": "max"}),
    "CustomBlacklistEligibilityRequirement": (("black_list",), "ids", "custom_blocklist", {"black_list": "values"}),
    "CustomWhitelistEligibilityRequirement": (("white_list",), "ids", "custom_allowlist", {"white_list": "values"}),
    "JoinedBeforeEligibilityRequirement": (("joined_before",), "str", None, {}),
    "ParticipantGroupEligibilityRequirement": (("id",), "str", "participant_group_allowlist", {"id": "values"}),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


Checked = Tuple[Dict[str, Any], List[Problem]]


def _range(spec: Optional[FilterSpec], item: Mapping[str, Any], path: str) -> Checked:
    problems: List[Problem] = []
    given = {k: item[k] for k in ("min", "max") if item.get(k) is not None}
    if not given:
        return {}, [Problem(path, dict(item), "a range filter needs min and/or max")]
    for key, value in given.items():
        if not _is_number(value):
            problems.append(Problem(f"{path}.{key}", value, "give a number"))
        elif spec is not None and (value < (spec.lower or 0) or (spec.upper is not None and value > spec.upper)):
            problems.append(Problem(f"{path}.{key}", value, f"{spec.filter_id} takes {spec.bounds()}"))
    if not problems and len(given) == 2 and given["min"] > given["max"]:
        problems.append(Problem(f"{path}.min", given["min"], f"min must be <= max ({given['max']})"))
    bounds = {"lower" if k == "min" else "upper": v for k, v in given.items()}
    return {"selected_range": bounds}, problems


def _values(spec: Optional[FilterSpec], item: Mapping[str, Any], path: str) -> Checked:
    values = item.get("values")
    kind = spec.values if spec else "strings"
    if not isinstance(values, (list, tuple)) or not values:
        return {}, [Problem(f"{path}.values", values, f"give a non-empty list of {kind}")]
    bad = [v for v in values if not isinstance(v, str) or not v.strip()]
    if bad:
        return {}, [Problem(f"{path}.values", list(values), f"values are non-empty strings; {bad!r} are not")]
    if kind == "participant ids":
        wrong = [v for v in values if not _PARTICIPANT_ID.match(v)]
        if wrong:
            return {}, [Problem(f"{path}.values", wrong[:10],
                                "Prolific participant ids are 24 lowercase hex characters")]
    return {"selected_values": list(dict.fromkeys(values))}, []


def _filter_item(item: Mapping[str, Any], path: str) -> Tuple[Optional[Dict[str, Any]], List[Problem]]:
    """One ``{filter: ...}`` / ``{filter_id: ...}`` item as a Prolific filter payload."""
    if "filter" in item and "filter_id" in item:
        return None, [Problem(path, dict(item), "give filter (a filter mephisto-quals checks) or filter_id, not both")]
    raw_id = item.get("filter", item.get("filter_id"))
    key = "filter" if "filter" in item else "filter_id"
    spec: Optional[FilterSpec] = None
    if key == "filter":
        spec = FILTERS.get(raw_id) if isinstance(raw_id, str) else None
        if spec is None:
            return None, [Problem(f"{path}.filter", raw_id, f"use one of {', '.join(FILTERS)}; for another Prolific "
                                  "filter write filter_id: ID (checked against Prolific's filter list at launch)")]
    elif not isinstance(raw_id, str) or not _FILTER_ID.match(raw_id):
        return None, [Problem(f"{path}.filter_id", raw_id, "give a Prolific filter id such as handedness")]
    unknown = sorted(set(item) - {key, "min", "max", "values"})
    if unknown:
        return None, [Problem(path, dict(item), f"unknown keys {unknown}; a filter takes {key} and min/max or values")]
    is_range = spec.kind == "range" if spec else ("min" in item or "max" in item)
    if spec is not None and spec.kind == "select" and ("min" in item or "max" in item):
        return None, [Problem(path, dict(item), f"{spec.filter_id} is a select filter: give values, not min/max")]
    if is_range and "values" in item:
        what = f"{spec.filter_id} is a range filter" if spec else "a filter takes min/max or values"
        return None, [Problem(path, dict(item), f"{what}: give min and/or max, not values")]
    body, problems = _range(spec, item, path) if is_range else _values(spec, item, path)
    return ({"filter_id": raw_id, **body} if not problems else None), problems


def _legacy_field_problem(kind: str, value: Any, path: str) -> List[Problem]:
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


def legacy_to_filter(item: Mapping[str, Any], path: str) -> Tuple[Optional[Dict[str, Any]], List[Problem]]:
    """A deprecated ``{name: ...EligibilityRequirement}`` dict as the ``{filter: ...}`` item to write instead."""
    name = item.get("name")
    if name not in ELIGIBILITY_REQUIREMENTS:
        return None, [Problem(f"{path}.name", name, "write a filter ({filter: approval_rate, min: 95}, ...) or use "
                              f"one of {', '.join(ELIGIBILITY_REQUIREMENTS)} (deprecated)")]
    fields, kind, target, keys = ELIGIBILITY_REQUIREMENTS[name]
    unknown = sorted(set(item) - set(fields) - {"name"})
    if unknown:
        return None, [Problem(path, dict(item), f"unknown keys {unknown}; {name} takes {', '.join(fields)}")]
    given = [f for f in fields if item.get(f) is not None]
    if not given:
        return None, [Problem(path, dict(item), f"{name} needs {' and/or '.join(fields)}")]
    problems = [p for f in given for p in _legacy_field_problem(kind, item[f], f"{path}.{f}")]
    if problems:
        return None, problems
    if target is None:
        return None, [Problem(f"{path}.name", name, "Prolific replaced eligibility requirements with filters and "
                              "mephisto-quals knows no filter for this one: write {filter_id: ID, values: [...]} "
                              "with the id from Prolific's filter list (GET /api/v1/filters/)")]
    out: Dict[str, Any] = {"filter": target}
    for f in given:
        value = item[f]
        out[keys[f]] = [value] if keys[f] == "values" and isinstance(value, str) else (
            list(value) if isinstance(value, (list, tuple)) else value)
    return out, []


def describe_filter(item: Mapping[str, Any]) -> str:
    """A ``{filter: ...}`` item (or a Prolific payload) as one line of YAML-ish text."""
    fid = item.get("filter") or item.get("filter_id")
    if "selected_range" in item or "min" in item or "max" in item:
        rng = item.get("selected_range") or {"lower": item.get("min"), "upper": item.get("max")}
        parts = [f"min: {rng['lower']}" if rng.get("lower") is not None else "",
                 f"max: {rng['upper']}" if rng.get("upper") is not None else ""]
        return f"{{filter: {fid}, {', '.join(p for p in parts if p)}}}"
    values = item.get("selected_values", item.get("values")) or []
    shown = ", ".join(map(str, values[:5])) + (f", ... ({len(values)} in all)" if len(values) > 5 else "")
    return f"{{filter: {fid}, values: [{shown}]}}"


def build_prolific_filters(raw: Any, path: str) -> Tuple[List[Dict[str, Any]], List[Problem], List[str]]:
    """Validate ``quals.prolific``: Prolific filter payloads (one per item, in order), problems, warnings."""
    if not raw:
        return [], [], []
    if not isinstance(raw, (list, tuple)):
        return [], [Problem(path, raw, "give a list of filters such as {filter: approval_rate, min: 95}")], []
    out: List[Dict[str, Any]] = []
    problems: List[Problem] = []
    warnings: List[str] = []
    for i, item in enumerate(raw):
        item_path = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            problems.append(Problem(item_path, item, "give a mapping such as {filter: approval_rate, min: 95}"))
            continue
        if "name" in item and "filter" not in item and "filter_id" not in item:
            converted, found = legacy_to_filter(item, item_path)
            if converted is None:
                problems += found
                continue
            warnings.append(f"{item_path}: {item['name']} is deprecated (Prolific now takes filters); sent as "
                            f"{describe_filter(converted)}: write that instead")
            item = converted
        payload, found = _filter_item(item, item_path)
        problems += found
        if payload is not None:
            out.append(payload)
    return out, problems, warnings


def build_prolific_requirements(raw: Any, path: str) -> Tuple[List[Dict[str, Any]], List[Problem]]:
    """:func:`build_prolific_filters` without its warnings (the payloads and the problems)."""
    filters, problems, _ = build_prolific_filters(raw, path)
    return filters, problems


def to_state_entries(filters: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Filters as entries of ``shared_state.prolific_specific_qualifications`` (each carries ``name``)."""
    return [{"name": STATE_ENTRY, **f} for f in filters]


def from_state_entries(entries: Sequence[Mapping[str, Any]]) -> Tuple[List[Dict[str, Any]], List[Mapping[str, Any]]]:
    """Split provider entries into our filters (``name`` removed) and everything else (as given)."""
    ours, others = [], []
    for e in entries:
        if e.get("name") == STATE_ENTRY:
            ours.append({k: v for k, v in e.items() if k != "name"})
        else:
            others.append(e)
    return ours, others
