"""The Prolific side of ``explain`` / ``forecast``: participant groups and filters.

A ``_quals`` task on the ``prolific`` provider is gated at the source by the participant groups
of its lists (``participant_group_allowlist`` / ``participant_group_blocklist``, see
:mod:`mephisto_quals.integration.prolific_launch`) and by the filters of ``quals.prolific``.
Here each group is shown as our mapping table last recorded it (group id, members at the last
sync and when), and a worker's membership is read from their local grant, which is what the
group holds since that sync; with a client, the group's members are read from Prolific
instead. Filters (approval rate, country, ...) are decided by Prolific alone: "only Prolific
knows". Reads the local database (and, with a client, Prolific); never writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mephisto_quals.compile.plan import QualsPlan
from mephisto_quals.compile.prolific import describe_filter
from mephisto_quals.integration.prolific_launch import PROVIDER, launch_lists
from mephisto_quals.providers.prolific.groups import group_name, mapped_groups
from mephisto_quals.store import Session
from mephisto_quals.store import grants as grant_store
from mephisto_quals.store.workers import is_prolific_participant_id

__all__ = ["SideRow", "applies", "explain_rows", "forecast_lines"]

ONLY_PROLIFIC = "only Prolific knows"


@dataclass(frozen=True)
class SideRow:
    """One Prolific-side row for explain: the fields of ``ExplainRow``."""

    where: str
    requirement: str
    source: str
    actual: str
    verdict: str


def applies(plan: QualsPlan, provider_type: Optional[str]) -> bool:
    """Whether a task has a Prolific side (a ``prolific`` run, or Prolific filters configured)."""
    return provider_type == PROVIDER or bool(plan.prolific)


def _when(at: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "never"


def _newest(db: Any, qualification: str) -> Optional[Dict[str, Any]]:
    """The most recently synced mapping of a qualification (any workspace), or None."""
    rows = mapped_groups(db, qualification)
    return max(rows, key=lambda g: g.get("synced_at") or g.get("created_at") or 0) if rows else None


def _lists(plan: QualsPlan, blueprint: Any) -> List[Tuple[str, str, str]]:
    """(kind, qualification, config path) of every list a launch turns into a group."""
    allow, block = launch_lists(plan, blueprint)
    return [("allowlist", q, src) for q, src in allow] + [("blocklist", q, src) for q, src in block]


def explain_rows(
    db: Any, plan: QualsPlan, blueprint: Any, provider_type: Optional[str], worker_name: str,
    worker_id: Optional[int], client: Any = None, now: Optional[float] = None,
) -> List[SideRow]:
    """Rows for one worker: each list's group (membership and verdict), then each filter (unknown)."""
    rows: List[SideRow] = []
    if provider_type == PROVIDER:
        lists = _lists(plan, blueprint)
        now = time.time() if now is None else now
        holding: Dict[str, Tuple[bool, Optional[int]]] = {}
        if worker_id is not None and lists:
            with Session.open(db, readonly=True) as s:
                holding = grant_store.holdings(s.conn, int(worker_id), [q for _, q, _ in lists], now)
        participant = is_prolific_participant_id(worker_name)
        for kind, qualification, source in lists:
            rows.append(_group_row(db, kind, qualification, source, holding, participant, worker_name, client))
    for i, f in enumerate(plan.prolific):
        rows.append(SideRow("prolific", describe_filter(f), f"mephisto.blueprint.quals.prolific[{i}]", ONLY_PROLIFIC,
                            "unknown"))
    return rows


def _group_row(db: Any, kind: str, qualification: str, source: str, holding: Dict[str, Tuple[bool, Optional[int]]],
               participant: bool, worker_name: str, client: Any) -> SideRow:
    mapped = _newest(db, qualification)
    label = f"participant_group_{kind} '{group_name(qualification)}'"
    if mapped is None:
        return SideRow("prolific", label, source, "no group yet: the launch creates it and syncs the local holders",
                       "unknown")
    label += f" ({mapped['group_id']})"
    if not participant:
        return SideRow("prolific", label, source, "not a Prolific participant id", "unknown")
    if client is not None:
        member = worker_name in set(client.group_members(mapped["group_id"]))
        actual = ("member" if member else "not a member") + " (read from Prolific now)"
    else:
        member = holding.get(qualification, (False, None))[0]
        actual = (f"{'member' if member else 'not a member'} as last synced {_when(mapped.get('synced_at'))} "
                  f"({mapped.get('synced_members')} member(s) then; local changes since reach it at the next sync)")
    ok = member if kind == "allowlist" else not member
    return SideRow("prolific", label, source, actual, "pass" if ok else "fail")


def forecast_lines(db: Any, plan: QualsPlan, blueprint: Any, provider_type: Optional[str]) -> List[str]:
    """Lines for forecast: each list's group as last synced, and the filters only Prolific evaluates."""
    lines: List[str] = []
    if provider_type == PROVIDER:
        for kind, qualification, source in _lists(plan, blueprint):
            mapped = _newest(db, qualification)
            if mapped is None:
                lines.append(f"Prolific: {kind} '{qualification}' ({source}) has no participant group yet: "
                             "the launch creates and syncs it")
            else:
                lines.append(f"Prolific: {kind} '{qualification}' is participant group {mapped['group_id']}, "
                             f"{mapped.get('synced_members')} member(s) as last synced "
                             f"{_when(mapped.get('synced_at'))}")
    filters: Sequence[Dict[str, Any]] = plan.prolific
    if filters:
        lines.append(f"Prolific: {len(filters)} filter(s) not counted, {ONLY_PROLIFIC}: "
                     + "; ".join(describe_filter(f) for f in filters))
    return lines
