"""Local allow/block lists as Prolific filters (the current form of ``quals.prolific``).

Prolific cannot ask Mephisto who holds a qualification, so a list must travel to Prolific,
either as its participant group (kept in step by ``sync``; the launch of a ``_quals`` run
does this by itself) or as participant ids. :func:`prolific_requirements` turns local
qualifications (live grants only, workers of provider type ``prolific``) into filters for
``mephisto.blueprint.quals.prolific``::

    - filter: custom_allowlist      # holders of every allowlist
      values: [5f1a..., ...]
    - filter: custom_blocklist      # holders of any blocklist
      values: [60b2..., ...]

:func:`export_prolific` (``export --format prolific``) writes a list's group instead when it
is mapped (``{filter: participant_group_allowlist, values: [<group id>]}``), which stays
current as the group is synced.

Several allowlists become one white list of the workers holding all of them (what the same
names as local ``allowlists`` mean); several blocklists one black list of everyone holding
any. Prolific participant ids are 24 hexadecimal characters; a holder whose name is not one
is reported (and left out when not strict). The lists are a snapshot: export again after
granting or revoking.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from mephisto_quals.errors import Problem, QualsConfigError, QualsError

__all__ = [
    "PROLIFIC_PROVIDER",
    "PROLIFIC_CONFIG_PATH",
    "ProlificLists",
    "is_participant_id",
    "prolific_lists",
    "prolific_requirements",
    "format_requirements",
    "export_prolific",
]

PROLIFIC_PROVIDER = "prolific"
PROLIFIC_CONFIG_PATH = "mephisto.blueprint.quals.prolific"
ALLOW_FILTER = "custom_allowlist"
BLOCK_FILTER = "custom_blocklist"
_PARTICIPANT_ID = re.compile(r"^[0-9a-f]{24}$")


def is_participant_id(text: Any) -> bool:
    """A Prolific participant id: 24 lowercase hexadecimal characters."""
    return isinstance(text, str) and bool(_PARTICIPANT_ID.match(text))


@dataclass
class ProlificLists:
    """The requirements, and what was left out of them and why."""

    requirements: List[Dict[str, Any]] = field(default_factory=list)
    #: Problems naming each holder whose name is not a Prolific participant id.
    invalid: List[Problem] = field(default_factory=list)
    #: qualification -> holders on other providers (not Prolific participants), left out.
    other_providers: Dict[str, int] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)


def _ids(db: Any, kind: str, index: int, qualification: str, now: float, out: ProlificLists) -> List[str]:
    from mephisto_quals.admin.queries import holders

    found = holders(db, qualification, now=now)
    ids: List[str] = []
    others = 0
    for h in found:
        if h.provider_type != PROLIFIC_PROVIDER:
            others += 1
        elif is_participant_id(h.worker_name):
            ids.append(h.worker_name)
        else:
            out.invalid.append(Problem(f"{kind}[{index}] ({qualification}) holder {h.worker_id}", h.worker_name,
                                       "Prolific participant ids are 24 lowercase hexadecimal characters"))
    if others:
        out.other_providers[qualification] = others
    return ids


def prolific_lists(
    db: Any, allowlists: Sequence[str] = (), blocklists: Sequence[str] = (), now: Optional[float] = None
) -> ProlificLists:
    """Requirements for these local lists, with everything left out reported.

    Raises :class:`~mephisto_quals.admin.grants.UnknownQualificationError` for a qualification
    that does not exist, and QualsError when the allowlists leave nobody (Prolific needs a
    non-empty white list, and an empty one would mean nobody can take the study).
    """
    if isinstance(allowlists, str) or isinstance(blocklists, str):
        raise TypeError("allowlists and blocklists are lists of qualification names")
    now = time.time() if now is None else now
    out = ProlificLists()
    if allowlists:
        allowed: Optional[List[str]] = None
        for i, name in enumerate(allowlists):
            ids = _ids(db, "allowlists", i, name, now, out)
            allowed = ids if allowed is None else [p for p in allowed if p in set(ids)]
        if not allowed:
            raise QualsError(
                f"no Prolific participant holds {'all of ' if len(allowlists) > 1 else ''}"
                f"{', '.join(map(repr, allowlists))}: a white list needs at least one id"
            )
        out.requirements.append({"filter": ALLOW_FILTER, "values": sorted(allowed)})
    if blocklists:
        blocked: set = set()
        for i, name in enumerate(blocklists):
            blocked.update(_ids(db, "blocklists", i, name, now, out))
        if blocked:
            out.requirements.append({"filter": BLOCK_FILTER, "values": sorted(blocked)})
        else:
            held = ", ".join(map(repr, blocklists))
            out.warnings.append(f"no Prolific participant holds {held}: no black list needed")
    for qualification, n in out.other_providers.items():
        out.warnings.append(f"{qualification}: {n} holder(s) are not Prolific participants and are left out")
    _validate(out.requirements)
    return out


def _validate(requirements: List[Dict[str, Any]]) -> None:
    from mephisto_quals.compile.prolific import build_prolific_requirements

    _, problems = build_prolific_requirements(requirements, PROLIFIC_CONFIG_PATH)
    if problems:  # would be a bug here: say so plainly
        raise QualsConfigError(problems)


def prolific_requirements(
    db: Any,
    allowlists: Sequence[str] = (),
    blocklists: Sequence[str] = (),
    *,
    strict: bool = True,
    now: Optional[float] = None,
) -> List[Dict[str, Any]]:
    """Filters for ``mephisto.blueprint.quals.prolific`` from local lists.

    ``allowlists``: only participants holding every one may take the study (one
    ``custom_allowlist`` filter). ``blocklists``: participants holding any are kept out (one
    ``custom_blocklist`` filter). Only live (non-expired) grants
    of workers with provider type ``prolific`` count. With ``strict`` (the default) a holder
    whose name is not a Prolific participant id raises QualsConfigError naming each one;
    otherwise they are left out (see :func:`prolific_lists` for the report).
    """
    result = prolific_lists(db, allowlists, blocklists, now=now)
    if strict and result.invalid:
        raise QualsConfigError(result.invalid)
    return result.requirements


def format_requirements(requirements: List[Dict[str, Any]], fmt: str = "yaml", notes: Sequence[str] = ()) -> str:
    """Text to paste as the value of ``mephisto.blueprint.quals.prolific`` (YAML or JSON).

    ``notes`` become YAML comments (JSON has none: print them elsewhere).
    """
    if fmt == "json":
        return json.dumps(requirements, indent=2) + "\n"
    if fmt != "yaml":
        raise ValueError(f"format: {fmt!r} is not valid; use yaml or json")
    import yaml

    body = yaml.safe_dump(requirements, default_flow_style=None, sort_keys=False, width=100)
    comments = "".join(f"# {line}\n" for note in notes for line in str(note).splitlines())
    return f"# paste as the value of {PROLIFIC_CONFIG_PATH}\n{comments}{body}"


def export_prolific(
    db: Any, qualification: str, block: bool = False, fmt: str = "yaml", *, strict: bool = False,
    now: Optional[float] = None, workspace_id: Optional[str] = None,
) -> str:
    """``export --format prolific``: one local list as a Prolific filter, as text.

    A list mapped to a participant group (``sync``, a launch) is written as its
    ``participant_group_allowlist`` (``block``: ``participant_group_blocklist``) filter, in the
    workspace ``workspace_id`` or the most recently synced one. Otherwise its holders who are
    participants become ``custom_allowlist`` / ``custom_blocklist``; holders whose names are not
    participant ids are left out unless ``strict`` (then QualsConfigError names them).
    """
    from mephisto_quals.providers.prolific.groups import mapped_groups

    mapped = [g for g in mapped_groups(db, qualification) if workspace_id in (None, g["workspace_id"])]
    if mapped:
        newest = max(mapped, key=lambda g: g.get("synced_at") or g.get("created_at") or 0)
        kind = "participant_group_blocklist" if block else "participant_group_allowlist"
        synced = newest.get("synced_at")
        when = (f"last synced {time.strftime('%Y-%m-%d %H:%M', time.localtime(synced))} with "
                f"{newest.get('synced_members')} member(s)") if synced else "not synced yet"
        notes = [f"'{qualification}' is Prolific participant group {newest['group_id']} ({newest['group_name']}) "
                 f"in workspace {newest['workspace_id']}, {when}: run `mephisto-quals sync apply {qualification} "
                 "--prolific` after local changes"]
        notes += [f"also mapped in workspace {g['workspace_id']}: group {g['group_id']}" for g in mapped
                  if g is not newest]
        return format_requirements([{"filter": kind, "values": [newest["group_id"]]}], fmt, notes)
    lists = prolific_lists(db, [] if block else [qualification], [qualification] if block else [], now=now)
    if strict and lists.invalid:
        raise QualsConfigError(lists.invalid)
    notes = lists.warnings + [f"left out: {p}" for p in lists.invalid]
    return format_requirements(lists.requirements, fmt, notes)
