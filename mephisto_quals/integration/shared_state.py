"""Putting a plan on a ``SharedTaskState`` exactly once per launch, even when the state is reused.

Mephisto's Operator appends ``block_qualification`` and the onboarding's failed list to the
same ``shared_state.qualifications`` list after the blueprint is built, so a state reused for
a second launch would carry every requirement twice. Here each launch starts from the user's
own entries and assigns fresh lists, leaving earlier live runs' lists untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mephisto_quals.compile.plan import GATE_KEY

__all__ = ["QualsSharedState", "user_entries", "apply_plan"]

_RECORD = "_mephisto_quals_applied"


@dataclass
class QualsSharedState:
    """SharedState mixin: the provider-specific requirement fields Mephisto's providers read."""

    mturk_specific_qualifications: List[Dict[str, Any]] = field(
        default_factory=list,
        metadata={
            "help": "MTurk QualificationRequirement dicts added to the HIT type as they are.",
            "type": "List[Dict[str, Any]]",
            "default": "[]",
        },
    )
    prolific_specific_qualifications: List[Dict[str, Any]] = field(
        default_factory=list,
        metadata={
            "help": "Prolific eligibility requirements (read by newer Mephisto's Prolific provider).",
            "type": "List[Dict[str, Any]]",
            "default": "[]",
        },
    )


@dataclass
class _Applied:
    """What one launch put on the state, so the next launch can take it off again."""

    qualifications: List[Dict[str, Any]]
    length: int
    ours: List[Dict[str, Any]]
    appended: List[Dict[str, Any]]
    mturk: List[Dict[str, Any]] = field(default_factory=list)
    prolific: List[Dict[str, Any]] = field(default_factory=list)


def _key(q: Mapping[str, Any]) -> Tuple[Any, Any, str, str]:
    # A retake marker is never the same entry as Mephisto's own failed-onboarding check.
    return (
        q.get("qualification_name"),
        q.get("comparator"),
        repr(q.get("value")),
        repr(q.get("mephisto_quals_retake")),
    )


def user_entries(shared_state: Any) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The user's own qualifications, MTurk and Prolific entries, without any earlier launch's.

    Entries past the end of the list we assigned last time are Mephisto's appends when they
    match what Mephisto appends; anything else there was added by the user and is kept.
    """
    quals = list(getattr(shared_state, "qualifications", None) or [])
    mturk = list(getattr(shared_state, "mturk_specific_qualifications", None) or [])
    prolific = list(getattr(shared_state, "prolific_specific_qualifications", None) or [])
    record: Optional[_Applied] = getattr(shared_state, _RECORD, None)
    if record is None:
        return quals, mturk, prolific
    kept_tail: List[Dict[str, Any]] = []
    if shared_state.qualifications is record.qualifications:
        tail, quals = quals[record.length :], quals[: record.length]
        expected = [_key(q) for q in record.appended]
        for q in tail:
            if _key(q) in expected:
                expected.remove(_key(q))
            else:
                kept_tail.append(q)
    ours = {id(q) for q in record.ours}
    quals = [q for q in quals if id(q) not in ours] + kept_tail
    mturk = [q for q in mturk if all(q is not o for o in record.mturk)]
    prolific = [q for q in prolific if all(q is not o for o in record.prolific)]
    return quals, mturk, prolific


def apply_plan(
    shared_state: Any,
    local: Sequence[Dict[str, Any]],
    mturk: Sequence[Dict[str, Any]],
    prolific: Sequence[Dict[str, Any]],
    appended: Sequence[Dict[str, Any]],
) -> None:
    """Assign fresh lists: the user's entries plus this launch's, each requirement once.

    ``appended`` is what Mephisto's Operator will add after this call, remembered so the
    next launch recognises it. Each of this launch's dicts carries ``GATE_KEY``, which is
    what puts the run under mephisto-quals' gate (see ``integration.gate``).
    """
    base, base_mturk, base_prolific = user_entries(shared_state)
    # What the Operator appends itself is left to it: adding it here too would send it twice.
    seen = {_key(q) for q in base} | {_key(q) for q in appended}
    ours = []
    for q in local:
        if _key(q) not in seen:
            seen.add(_key(q))
            ours.append({**q, GATE_KEY: True})
    new_quals = base + ours
    new_mturk = [dict(q) for q in mturk]
    new_prolific = [dict(q) for q in prolific]
    shared_state.qualifications = new_quals
    shared_state.mturk_specific_qualifications = base_mturk + new_mturk
    shared_state.prolific_specific_qualifications = base_prolific + new_prolific
    setattr(
        shared_state,
        _RECORD,
        _Applied(new_quals, len(new_quals), ours, [dict(q) for q in appended], new_mturk, new_prolific),
    )
