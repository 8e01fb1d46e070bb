"""MTurk requirements: system-qualification presets and raw dicts, checked against the MTurk API model.

The output is a list of QualificationRequirement dicts for
``SharedTaskState.mturk_specific_qualifications``, which Mephisto's MTurk provider appends
to the HIT type unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mephisto_quals.compile import comparators as cmp
from mephisto_quals.compile.mturk_locale import MAX_LOCALE_VALUES, locale_problems, parse_locale
from mephisto_quals.compile.mturk_quals import (
    LOCALE_ID,
    MASTERS_LIVE_ID,
    MASTERS_SANDBOX_ID,
    MAX_REQUIREMENTS,
    SYSTEM_QUALS,
    SystemQual,
)
from mephisto_quals.errors import Problem

__all__ = [
    "SystemQual",
    "SYSTEM_QUALS",
    "LOCALE_ID",
    "MAX_REQUIREMENTS",
    "MASTERS_LIVE_ID",
    "MASTERS_SANDBOX_ID",
    "build_mturk_requirements",
    "validate_requirement",
    "count_problems",
    "is_mturk_provider",
    "is_sandbox_provider",
]

_MAX_INTEGER_VALUES = 15

#: kind -> (lowest, highest or None, what the values mean) of a system qualification's IntegerValues.
_RANGES: Dict[str, Tuple[int, Optional[int], str]] = {
    "percent": (0, 100, "a percentage from 0 to 100"),
    "count": (0, None, "a count of 0 or more"),
    "adult": (0, 1, "1 (worker agreed to see adult content) or 0"),
}
_BY_ID = {i: q for q in SYSTEM_QUALS.values() for i in (q.live_id, q.sandbox_id)}
_SANDBOX_ONLY = {q.sandbox_id: q for q in SYSTEM_QUALS.values() if q.sandbox_id != q.live_id}
_LIVE_ONLY = {q.live_id: q for q in SYSTEM_QUALS.values() if q.sandbox_id != q.live_id}


def is_mturk_provider(provider_type: Optional[str]) -> bool:
    return bool(provider_type) and str(provider_type).startswith("mturk")


def is_sandbox_provider(provider_type: Optional[str]) -> bool:
    return provider_type == "mturk_sandbox"


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("mturk")


def _enum(shape: str) -> Tuple[str, ...]:
    return tuple(_model().shape_for(shape).enum)


def validate_requirement(req: Mapping[str, Any], path: str, sandbox: Optional[bool]) -> List[Problem]:
    """Check one QualificationRequirement against botocore's MTurk model and MTurk's rules.

    ``sandbox`` (None when unknown) also rejects an ID that exists only on the other side.
    """
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(dict(req), _model().shape_for("QualificationRequirement"))
    if report.has_errors():
        return [Problem(path, dict(req), f"not an MTurk QualificationRequirement: {report.generate_report()}")]
    problems: List[Problem] = []
    comparator = req["Comparator"]
    if comparator not in _enum("Comparator"):
        problems.append(Problem(f"{path}.Comparator", comparator, f"use one of {', '.join(_enum('Comparator'))}"))
    guarded = req.get("ActionsGuarded")
    if guarded is not None and guarded not in _enum("HITAccessActions"):
        problems.append(
            Problem(f"{path}.ActionsGuarded", guarded, f"use one of {', '.join(_enum('HITAccessActions'))}")
        )
    if guarded is not None and "RequiredToPreview" in req:
        problems.append(
            Problem(
                f"{path}.RequiredToPreview",
                req["RequiredToPreview"],
                "do not combine the deprecated RequiredToPreview with ActionsGuarded",
            )
        )
    ints, locales = req.get("IntegerValues"), req.get("LocaleValues")
    if comparator in ("Exists", "DoesNotExist") and (ints or locales):
        problems.append(Problem(path, dict(req), f"{comparator} takes no IntegerValues or LocaleValues"))
    if comparator not in ("Exists", "DoesNotExist") and not (ints or locales):
        problems.append(Problem(path, dict(req), f"{comparator} needs IntegerValues or LocaleValues"))
    if ints and locales:
        problems.append(Problem(path, dict(req), "give IntegerValues or LocaleValues, not both"))
    type_id = req["QualificationTypeId"]
    if locales and type_id != LOCALE_ID:
        problems.append(
            Problem(f"{path}.LocaleValues", locales, f"LocaleValues are only for the Locale qualification {LOCALE_ID}")
        )
    if type_id == LOCALE_ID and ints:
        problems.append(
            Problem(f"{path}.IntegerValues", ints, "the Locale qualification takes LocaleValues, not IntegerValues")
        )
    for values, limit, label in (
        (ints, _MAX_INTEGER_VALUES, "IntegerValues"),
        (locales, MAX_LOCALE_VALUES, "LocaleValues"),
    ):
        if not values:
            continue
        if comparator in ("In", "NotIn") and len(values) > limit:
            problems.append(Problem(f"{path}.{label}", values, f"{comparator} takes at most {limit} values"))
        if comparator not in ("In", "NotIn") and len(values) != 1:
            problems.append(Problem(f"{path}.{label}", values, f"{comparator} takes exactly one value"))
    for loc_i, loc in enumerate(locales or []):
        problems += locale_problems(loc, f"{path}.LocaleValues[{loc_i}]")
    problems += _range_problems(type_id, ints, path)
    if sandbox is True and type_id in _LIVE_ONLY:
        q = _LIVE_ONLY[type_id]
        problems.append(
            Problem(
                f"{path}.QualificationTypeId",
                type_id,
                f"this is the live {q.title} ID; the requester is a sandbox one, "
                f"use {q.sandbox_id} (or the '{q.name}' preset)",
            )
        )
    if sandbox is False and type_id in _SANDBOX_ONLY:
        q = _SANDBOX_ONLY[type_id]
        problems.append(
            Problem(
                f"{path}.QualificationTypeId",
                type_id,
                f"this is the sandbox-only {q.title} ID; the requester is live, "
                f"use {q.live_id} (or the '{q.name}' preset)",
            )
        )
    return problems


def _range_problems(type_id: Any, ints: Any, path: str) -> List[Problem]:
    """A system qualification's IntegerValues in its range, as the presets check them (raw dicts too)."""
    q = _BY_ID.get(type_id)
    if not ints or q is None or q.kind not in _RANGES:
        return []
    low, high, unit = _RANGES[q.kind]
    bad = [v for v in ints if v < low or (high is not None and v > high)]
    if not bad:
        return []
    return [Problem(f"{path}.IntegerValues", list(ints), f"{q.title} ({type_id}) is {unit}; {bad} are out of range")]


_SPEC_KEYS = {"comparator", "value", "actions_guarded"}


def _preset(
    q: SystemQual, spec: Any, path: str, sandbox: bool, guarded: str
) -> Tuple[Optional[Dict[str, Any]], List[Problem]]:
    if spec is True or spec == {}:
        if q.kind == "masters":
            spec = {"comparator": "exists"}
        elif q.kind == "adult":
            spec = {"comparator": "==", "value": 1}
        else:
            return None, [Problem(path, spec, f"'{q.name}' needs {{comparator, value}}, e.g. {_example(q)}")]
    if not isinstance(spec, Mapping):
        return None, [Problem(path, spec, f"give {{comparator, value}}, e.g. {_example(q)}, or null to turn it off")]
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        return None, [Problem(path, dict(spec), f"unknown keys {unknown}; use comparator, value, actions_guarded")]
    guarded = spec.get("actions_guarded") or guarded
    value = spec.get("value")
    if q.kind == "masters":
        comparator, problems = cmp.normalize_comparator(
            spec.get("comparator", "exists"), f"{path}.comparator", (cmp.EXISTS,)
        )
        if problems:
            return None, [
                Problem(
                    f"{path}.comparator", spec.get("comparator"), "Masters only takes 'exists' (write `masters: true`)"
                )
            ]
        if value is not None:
            return None, [Problem(f"{path}.value", value, "Masters takes no value (write `masters: true`)")]
        return {"QualificationTypeId": q.type_id(sandbox), "Comparator": cmp.EXISTS, "ActionsGuarded": guarded}, []
    if q.kind == "locale":
        comparator, problems = cmp.normalize_comparator(
            spec.get("comparator", "in"), f"{path}.comparator", (cmp.EQUAL, cmp.NOT_EQUAL, cmp.IN, cmp.NOT_IN)
        )
        if problems:
            return None, problems
        values = value if isinstance(value, (list, tuple)) else [value]
        if comparator in (cmp.EQUAL, cmp.NOT_EQUAL) and len(values) != 1:
            return None, [
                Problem(
                    f"{path}.value",
                    value,
                    f"'{cmp.describe(comparator)}' takes exactly one locale; use 'in' for several",
                )
            ]
        if not values or len(values) > MAX_LOCALE_VALUES:
            return None, [
                Problem(f"{path}.value", value, f"give 1 to {MAX_LOCALE_VALUES} locales such as [US, GB, US-NY]")
            ]
        locales, problems = [], []
        for i, v in enumerate(values):
            loc, p = parse_locale(v, f"{path}.value[{i}]" if isinstance(value, (list, tuple)) else f"{path}.value")
            problems += p
            if loc is not None:
                locales.append(loc)
        if problems:
            return None, problems
        return {
            "QualificationTypeId": LOCALE_ID,
            "Comparator": comparator,
            "LocaleValues": locales,
            "ActionsGuarded": guarded,
        }, []
    if q.kind == "adult":
        comparator, problems = cmp.normalize_comparator(
            spec.get("comparator", "=="), f"{path}.comparator", (cmp.EQUAL, cmp.EXISTS)
        )
        if problems:
            return None, problems
        if comparator == cmp.EXISTS:
            if value is not None:
                return None, [Problem(f"{path}.value", value, "'exists' takes no value")]
            return {"QualificationTypeId": q.type_id(sandbox), "Comparator": cmp.EXISTS, "ActionsGuarded": guarded}, []
        if value not in (0, 1) or isinstance(value, bool):
            return None, [
                Problem(f"{path}.value", value, "adult content is 1 (worker agreed to see adult content) or 0")
            ]
        return {
            "QualificationTypeId": q.type_id(sandbox),
            "Comparator": cmp.EQUAL,
            "IntegerValues": [value],
            "ActionsGuarded": guarded,
        }, []
    # percent / count
    allowed = cmp.VALUE_COMPARATORS
    comparator, problems = cmp.normalize_comparator(spec.get("comparator"), f"{path}.comparator", allowed)
    if problems or comparator is None:
        return None, problems
    checked, problems = cmp.check_value(comparator, value, f"{path}.value", max_list=_MAX_INTEGER_VALUES)
    if problems:
        return None, problems
    values = checked if isinstance(checked, list) else [checked]
    low, high, unit = _RANGES[q.kind]
    bad = [v for v in values if v < low or (high is not None and v > high)]
    if bad:
        return None, [Problem(f"{path}.value", value, f"{q.title} is {unit}")]
    return {
        "QualificationTypeId": q.type_id(sandbox),
        "Comparator": comparator,
        "IntegerValues": values,
        "ActionsGuarded": guarded,
    }, []


def _example(q: SystemQual) -> str:
    return {
        "percent": "{comparator: '>=', value: 98}",
        "count": "{comparator: '>=', value: 1000}",
        "locale": "{comparator: in, value: [US, GB]}",
    }.get(q.kind, "true")


def build_mturk_requirements(
    cfg: Mapping[str, Any], path: str, sandbox: Optional[bool]
) -> Tuple[List[Dict[str, Any]], List[Problem], List[str]]:
    """Compile the ``quals.mturk`` node into QualificationRequirement dicts.

    Returns the dicts, the problems found, and warnings (legacy system qualifications).
    ``sandbox`` picks the sandbox or live ID; None (provider not MTurk) assumes live IDs.
    """
    out: List[Dict[str, Any]] = []
    problems: List[Problem] = []
    warnings: List[str] = []
    guarded = cfg.get("actions_guarded") or "DiscoverPreviewAndAccept"
    if guarded not in _enum("HITAccessActions"):
        problems.append(
            Problem(f"{path}.actions_guarded", guarded, f"use one of {', '.join(_enum('HITAccessActions'))}")
        )
        guarded = "DiscoverPreviewAndAccept"
    system = cfg.get("system") or {}
    if not isinstance(system, Mapping):
        problems.append(Problem(f"{path}.system", system, "give a mapping of preset name to {comparator, value}"))
        system = {}
    for name, spec in system.items():
        item_path = f"{path}.system.{name}"
        q = SYSTEM_QUALS.get(name)
        if q is None:
            problems.append(Problem(item_path, name, f"unknown MTurk preset; use one of {', '.join(SYSTEM_QUALS)}"))
            continue
        if spec is None or spec is False:
            continue
        req, p = _preset(q, spec, item_path, bool(sandbox), guarded)
        problems += p
        if req is None:
            continue
        problems += validate_requirement(req, item_path, sandbox)
        if q.legacy:
            warnings.append(
                f"{item_path}: '{q.title}' ({q.live_id}) is a legacy MTurk system qualification, "
                "listed by client libraries but not on MTurk's current API page; MTurk may reject "
                "or ignore it"
            )
        out.append(req)
    raw = cfg.get("raw") or []
    if not isinstance(raw, (list, tuple)):
        problems.append(Problem(f"{path}.raw", raw, "give a list of QualificationRequirement dicts"))
        raw = []
    for i, item in enumerate(raw):
        item_path = f"{path}.raw[{i}]"
        if not isinstance(item, Mapping):
            problems.append(Problem(item_path, item, "give a QualificationRequirement mapping"))
            continue
        req = dict(item)
        found = validate_requirement(req, item_path, sandbox)  # as written: errors show the user's dict
        problems += found
        if found:
            continue
        if "RequiredToPreview" in req and "ActionsGuarded" not in req:
            # Mephisto's conversion drops RequiredToPreview (defaulting to DiscoverPreviewAndAccept),
            # so send its meaning as the equivalent ActionsGuarded.
            req["ActionsGuarded"] = "PreviewAndAccept" if req.pop("RequiredToPreview") else "Accept"
        req.setdefault("ActionsGuarded", guarded)
        out.append(req)
    return out, problems, warnings


def count_problems(
    local: Sequence[Mapping[str, Any]],
    specific: Sequence[Mapping[str, Any]],
    sandbox: bool,
    path: str,
) -> List[Problem]:
    """MTurk takes at most 10 requirements per HIT, counting the ones Mephisto adds.

    ``local`` are the Mephisto qualification dicts the MTurk provider will convert (with
    ``block_qualification`` and the onboarding's failed list), ``specific`` the MTurk
    dicts. On a live requester Mephisto adds its own Locale requirement unless one is given.
    """
    labels = [f"{q['qualification_name']} {cmp.describe(q['comparator'])}" for q in local]
    labels += [f"{q['QualificationTypeId']} {q['Comparator']}" for q in specific]
    if not sandbox and not any(q.get("QualificationTypeId") == LOCALE_ID for q in specific):
        labels.append("Mephisto's default Locale In [US, CA, GB, AU, NZ] (live only)")
    if len(labels) <= MAX_REQUIREMENTS:
        return []
    return [
        Problem(
            path,
            f"{len(labels)} requirements",
            f"MTurk takes at most {MAX_REQUIREMENTS} per HIT; these would be sent: {'; '.join(labels)}",
        )
    ]
