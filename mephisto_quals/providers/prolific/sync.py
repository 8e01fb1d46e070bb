"""Keep a Prolific participant group equal to a local list; grant on Prolific with bookkeeping.

**Direction.** The Mephisto DB is the source of truth: :func:`plan_sync` compares the live
local holders of a qualification who are Prolific participants (provider type ``prolific``)
with the members of its group (:mod:`~mephisto_quals.providers.prolific.groups`, every page),
and :func:`apply_sync` sends only the difference, in batches of ``batch_size`` ids: POST
``participant-groups/{id}/participants/`` for the missing, DELETE for those the list does not
have (``revoke=False`` keeps them). A missing group is created by the apply (the plan says so).

**Resuming.** As for MTurk: applying by qualification name re-plans from Prolific's members
first, so after any interruption the next apply sends only what is still different. The
journal (``mephisto_quals_mturk_journal``, shared with MTurk: ``requester`` holds
``prolific:<workspace id>``, ``qualification_type_id`` the group id) records each batch right
after Prolific accepted it, so re-applying the same :class:`ProlificSyncPlan` object skips
what was sent. Adding a member twice or removing a non-member changes nothing on Prolific,
so the one window (accepted, not yet journalled) is harmless.

**Errors.** 429/5xx are retried honouring ``Retry-After`` (:class:`~mephisto_quals.providers.prolific.client.Retry`).
A batch Prolific refuses (400) is split into single calls so each refused participant is
reported and the others go on; retries used up stop the apply (run it again to resume).

**Real money.** Every function refuses a non-loopback base URL unless ``live_ok=True``.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from mephisto_quals.admin import grants as grants_api
from mephisto_quals.admin.queries import holders
from mephisto_quals.admin.reports import BulkReport, WorkerOutcome
from mephisto_quals.errors import ProlificInputError
from mephisto_quals.providers.prolific.client import ProlificClient, Retry, check_live, check_participant_ids
from mephisto_quals.providers.prolific.groups import DEFAULT_WORKSPACE, GroupRef, ensure_group, find_group
from mephisto_quals.store import Session, chunks
from mephisto_quals.store import journal as journal_store
from mephisto_quals.store import prolific_groups as group_store
from mephisto_quals.store.audit import os_user
from mephisto_quals.store.workers import PROLIFIC_ID_RULE, is_prolific_participant_id

__all__ = ["BATCH", "ProlificSyncPlan", "ProlificSyncReport", "ProlificReport", "connect", "plan_sync", "apply_sync",
           "pull", "grant_on_prolific", "revoke_on_prolific", "import_on_prolific", "send_to_group", "journal"]

PROVIDER = "prolific"
#: Participant ids per add / remove call.
BATCH = 100
_CREATE_ITEM = "*create-group*"
Progress = Optional[Callable[[int], None]]


def connect(client: Optional[ProlificClient] = None, *, base_url: Optional[str] = None, api_key: Optional[str] = None,
            requester: Optional[str] = None, live_ok: bool = False, retry: Optional[Retry] = None) -> ProlificClient:
    """The given client (checked against the live rule too) or a new one (see ProlificClient.connect)."""
    if client is not None:
        check_live(client.base_url, live_ok)
        return client
    return ProlificClient.connect(base_url, api_key, live_ok=live_ok, requester=requester, retry=retry)


# --- plan ----------------------------------------------------------------------------------------

@dataclass
class ProlificSyncPlan:
    """What one sync would send to a Prolific participant group, from both sides' current state."""

    qualification: str
    group: GroupRef
    base_url: str
    local_holders: int
    group_members: int
    adds: List[str] = field(default_factory=list)
    removes: List[str] = field(default_factory=list)
    kept: int = 0  # group-only members left alone (revoke=False)
    skipped: Dict[str, str] = field(default_factory=dict)  # local holder -> why it cannot be synced
    read_calls: int = 0
    batch_size: int = BATCH
    plan_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    planned_at: float = field(default_factory=time.time)

    @property
    def create_group(self) -> bool:
        return not self.group.exists and bool(self.adds)

    @property
    def items(self) -> List[Tuple[str, str]]:
        """(action, participant id) of every change: add first, then remove."""
        return [("add", p) for p in self.adds] + [("remove", p) for p in self.removes]

    @property
    def write_calls(self) -> int:
        """HTTP write calls an apply sends: one per batch of adds / removes, one more to create the group."""
        batches = math.ceil(len(self.adds) / self.batch_size) + math.ceil(len(self.removes) / self.batch_size)
        return batches + (1 if self.create_group else 0)

    def summary(self) -> str:
        g = self.group
        where = (f"group '{g.group_name}' {g.group_id}" if g.exists
                 else f"group '{g.group_name}' missing" + (": apply creates it" if self.create_group else ""))
        lines = [
            f"sync '{self.qualification}' to Prolific workspace '{g.workspace}' ({where}) at {self.base_url}",
            f"local holders {self.local_holders}, group members {self.group_members} ({self.read_calls} read calls)",
            f"add {len(self.adds)}, remove {len(self.removes)} -> {self.write_calls} write calls"
            f" (batches of {self.batch_size})" + (" (1 creates the group)" if self.create_group else ""),
        ]
        if self.kept:
            lines.append(f"{self.kept} group-only members kept (revoke off)")
        lines += [f"skipped {w}: {why}" for w, why in sorted(self.skipped.items())]
        return "\n".join(lines)


def _local(db: Any, qualification: str, now: Optional[float]) -> Tuple[List[str], Dict[str, str]]:
    """Participant ids of the live local grants held by Prolific workers; the malformed apart."""
    ids: List[str] = []
    skipped: Dict[str, str] = {}
    for h in holders(db, qualification, now=now):
        if h.provider_type != PROVIDER:
            continue
        if is_prolific_participant_id(h.worker_name):
            ids.append(h.worker_name)
        else:
            skipped[h.worker_name] = PROLIFIC_ID_RULE
    return ids, skipped


def plan_sync(
    db: Any, qualification: str, *, workspace: str = DEFAULT_WORKSPACE, client: Optional[ProlificClient] = None,
    base_url: Optional[str] = None, api_key: Optional[str] = None, requester: Optional[str] = None,
    live_ok: bool = False, revoke: bool = True, batch_size: int = BATCH, retry: Optional[Retry] = None,
    now: Optional[float] = None,
) -> ProlificSyncPlan:
    """Compare local holders and the group's members; reads Prolific only (refuses live without ``live_ok``)."""
    calls = connect(client, base_url=base_url, api_key=api_key, requester=requester, live_ok=live_ok, retry=retry)
    local, skipped = _local(db, qualification, now)  # an unknown qualification fails before any request
    reads_before = calls.reads
    group = find_group(db, calls, qualification, workspace)
    members = calls.group_members(group.group_id) if group.group_id else []
    remote, mine = set(members), set(local)
    plan = ProlificSyncPlan(qualification, group, calls.base_url, len(local) + len(skipped), len(remote),
                            adds=sorted(mine - remote), skipped=skipped, batch_size=batch_size)
    extra = sorted(remote - mine)
    if revoke:
        plan.removes = extra
    else:
        plan.kept = len(extra)
    plan.read_calls = calls.reads - reads_before
    return plan


# --- apply ---------------------------------------------------------------------------------------

@dataclass
class ProlificSyncReport(BulkReport):
    """Per-participant outcomes of an apply, and the Prolific calls it made."""

    plan: Optional[ProlificSyncPlan] = None
    group_id: Optional[str] = None
    created_group: bool = False
    read_calls: int = 0
    write_calls: int = 0
    retries: int = 0

    @property
    def changed(self) -> int:
        """Participants added to or removed from the group by this apply."""
        return sum(1 for o in self.outcomes if o.status in ("added", "removed"))

    def summary(self) -> str:
        created = f"; created group {self.group_id}" if self.created_group else ""
        return (f"{super().summary()} ({self.write_calls} write calls, {self.read_calls} read calls, "
                f"{self.retries} retries){created}")


def journal(db: Any, plan_id: Optional[str] = None) -> List[Dict[str, Any]]:
    """The provider writes recorded by applies (of one plan, or all; MTurk's too), oldest first."""
    with Session.open(db, readonly=True) as s:
        return journal_store.entries(s.conn, plan_id)


def apply_sync(
    db: Any, plan_or_qualification: Union[ProlificSyncPlan, str], *, workspace: str = DEFAULT_WORKSPACE,
    client: Optional[ProlificClient] = None, base_url: Optional[str] = None, api_key: Optional[str] = None,
    requester: Optional[str] = None, live_ok: bool = False, revoke: bool = True, batch_size: int = BATCH,
    dry_run: bool = False, retry: Optional[Retry] = None, progress: Progress = None, now: Optional[float] = None,
) -> ProlificSyncReport:
    """Send the group only the difference: a qualification name re-plans from Prolific first, a
    :class:`ProlificSyncPlan` is applied as planned, skipping what the journal records as sent."""
    given = plan_or_qualification if isinstance(plan_or_qualification, ProlificSyncPlan) else None
    calls = connect(client, base_url=base_url or (given.base_url if given else None), api_key=api_key,
                    requester=requester, live_ok=live_ok, retry=retry)
    reads0, writes0, retries0 = calls.reads - (given.read_calls if given else 0), calls.writes, calls.retries
    plan = given or plan_sync(db, str(plan_or_qualification), workspace=workspace, client=calls, live_ok=live_ok,
                              revoke=revoke, batch_size=batch_size, now=now)
    report = ProlificSyncReport("sync", plan.qualification, dry_run, plan=plan, group_id=plan.group.group_id)
    report.outcomes += [WorkerOutcome(w, "failed", error=why) for w, why in sorted(plan.skipped.items())]
    statuses = {"add": "added", "remove": "removed"}
    if dry_run:
        report.outcomes += [WorkerOutcome(p, statuses[a]) for a, p in plan.items]
        report.read_calls = calls.reads - reads0
        return report
    session = Session.open(db)
    requester_label = f"prolific:{plan.group.workspace_id}"
    try:
        done = journal_store.done(session.conn, plan.plan_id)
        group = plan.group
        if not group.exists and plan.adds:
            if _CREATE_ITEM in done:
                group.group_id, group.how = done[_CREATE_ITEM], "created"
            else:
                ensure_group(db, calls, group, session=session)
                report.created_group = True
                _log(session, plan, [_CREATE_ITEM], "create-group", requester_label)
        elif group.exists:
            ensure_group(db, calls, group, session=session)  # records an adopted group's mapping
        report.group_id = group.group_id
        failed = False
        for action, ids in (("add", plan.adds), ("remove", plan.removes)):
            for part in chunks(ids, plan.batch_size):
                todo = [p for p in part if p not in done]
                report.outcomes += [WorkerOutcome(p, "already applied") for p in part if p in done]
                if todo:
                    assert group.group_id is not None
                    results = calls.change_members(group.group_id, action, todo)
                    sent = [p for p, err in results.items() if err is None]
                    _log(session, plan, sent, action, requester_label)
                    for p, err in results.items():
                        failed |= err is not None
                        report.outcomes.append(WorkerOutcome(p, statuses[action] if err is None else "failed",
                                                             error=err))
                if progress:
                    progress(len(part))
        if not failed and group.group_id is not None:
            with session.transaction() as conn:
                group_store.mark_synced(conn, plan.qualification, group.workspace_id,
                                        plan.local_holders - len(plan.skipped) + plan.kept, time.time())
    finally:
        session.close()
        report.read_calls, report.write_calls = calls.reads - reads0, calls.writes - writes0
        report.retries = calls.retries - retries0
    return report


def _log(session: Session, plan: ProlificSyncPlan, items: List[str], action: str, requester: str) -> None:
    """Journal sent items in one transaction (value 1 for an add, None for a remove)."""
    at, user = time.time(), os_user()
    with session.transaction() as conn:
        for item in items:
            journal_store.log(conn, plan.plan_id, item, action, 1 if action == "add" else None, plan.qualification,
                              requester, plan.group.group_id or "", at, user)


# --- pull: a group into a local list ------------------------------------------------------------

def pull(
    db: Any, qualification: str, *, workspace: str = DEFAULT_WORKSPACE, client: Optional[ProlificClient] = None,
    base_url: Optional[str] = None, api_key: Optional[str] = None, requester: Optional[str] = None,
    live_ok: bool = False, value: int = 1, reason: Optional[str] = None, dry_run: bool = False,
    retry: Optional[Retry] = None,
) -> BulkReport:
    """Grant ``qualification`` locally to every member of its group (provider ``prolific``, created
    if needed, source ``prolific-pull``); reads Prolific only. Local holders outside the group are kept."""
    calls = connect(client, base_url=base_url, api_key=api_key, requester=requester, live_ok=live_ok, retry=retry)
    group = find_group(db, calls, qualification, workspace)
    if not group.exists:
        return BulkReport("pull", qualification, dry_run)
    members = calls.group_members(group.group_id)  # type: ignore[arg-type]
    report = grants_api.grant(db, qualification, members, value, provider=PROVIDER, reason=reason,
                              source="prolific-pull", create=True, dry_run=dry_run)
    if not dry_run:
        ensure_group(db, calls, group)
    return report


# --- direct grants on Prolific, bookkept locally -------------------------------------------------

@dataclass
class ProlificReport(BulkReport):
    """A grant / revoke sent to the group: Prolific failures per participant, then the local outcomes."""

    workspace: str = ""
    group_id: Optional[str] = None
    created_group: bool = False
    write_calls: int = 0
    retries: int = 0

    def summary(self) -> str:
        created = f"; created group {self.group_id}" if self.created_group else ""
        return (f"{super().summary()} on Prolific workspace '{self.workspace}' ({self.write_calls} write calls, "
                f"{self.retries} retries){created}")


Local = Callable[[List[str], bool], BulkReport]


def send_to_group(
    db: Any, qualification: str, participant_ids: Iterable[str], action: str, local: Local, *,
    workspace: str = DEFAULT_WORKSPACE, client: Optional[ProlificClient] = None, base_url: Optional[str] = None,
    api_key: Optional[str] = None, requester: Optional[str] = None, live_ok: bool = False, dry_run: bool = False,
    retry: Optional[Retry] = None, batch_size: int = BATCH,
) -> ProlificReport:
    """Add (``action`` "add") or remove participants on the group, then run ``local(ids, preflight)``
    for those Prolific accepted. Bad ids raise before any request; ``local(ids, True)`` is a dry run
    of the local side first (an unknown qualification, a bad expiry stop here too)."""
    ids = check_participant_ids(list(participant_ids))
    calls = connect(client, base_url=base_url, api_key=api_key, requester=requester, live_ok=live_ok, retry=retry)
    report = ProlificReport("grant" if action == "add" else "revoke", qualification, dry_run, workspace=workspace)
    preflight = local(ids, True)
    refused = {o.worker for o in preflight.outcomes if o.status == "failed"}
    report.outcomes += [o for o in preflight.outcomes if o.status == "failed"]
    targets = [p for p in ids if p not in refused]
    group = find_group(db, calls, qualification, workspace)
    report.group_id = group.group_id
    if dry_run or not targets:
        report.outcomes += [o for o in preflight.outcomes if o.worker not in refused]
        return report
    writes0, retries0 = calls.writes, calls.retries
    try:
        if action == "add" or group.exists:
            report.created_group = not group.exists
            ensure_group(db, calls, group)
            report.group_id = group.group_id
        for part in chunks(targets, batch_size):
            if group.group_id is None:  # a revoke, and no group: nobody is in it
                accepted = part
            else:
                results = calls.change_members(group.group_id, action, part)
                accepted = [p for p, err in results.items() if err is None]
                report.outcomes += [WorkerOutcome(p, "failed", error=err) for p, err in results.items() if err]
            if accepted:
                report.outcomes += local(accepted, False).outcomes
    finally:
        report.write_calls, report.retries = calls.writes - writes0, calls.retries - retries0
    return report


def grant_on_prolific(
    db: Any, qualification: str, participant_ids: Iterable[str], value: int = 1, *, reason: Optional[str] = None,
    expires_in: Any = None, expires_at: Any = None, dry_run: bool = False, **prolific: Any,
) -> ProlificReport:
    """Add participants to the qualification's group (created on first use), then grant locally
    (``set_values(..., provider="prolific", create=True, source="prolific")``), as grant_on_mturk does.

    ``prolific`` takes workspace, client, base_url, api_key, requester, live_ok, retry, batch_size.
    """
    grants_api.check_value(value)

    def local(ids: List[str], preflight: bool) -> BulkReport:
        return grants_api.set_values(db, qualification, {p: value for p in ids}, provider=PROVIDER, reason=reason,
                                     expires_in=expires_in, expires_at=expires_at, source=PROVIDER, create=True,
                                     dry_run=preflight)

    return send_to_group(db, qualification, participant_ids, "add", local, dry_run=dry_run, **prolific)


def revoke_on_prolific(
    db: Any, qualification: str, participant_ids: Iterable[str], *, reason: Optional[str] = None,
    dry_run: bool = False, **prolific: Any,
) -> ProlificReport:
    """Remove participants from the qualification's group, then revoke locally (source ``prolific``)."""

    def local(ids: List[str], preflight: bool) -> BulkReport:
        return grants_api.revoke(db, qualification, ids, provider=PROVIDER, reason=reason, source=PROVIDER,
                                 dry_run=preflight)

    return send_to_group(db, qualification, participant_ids, "remove", local, dry_run=dry_run, **prolific)


def import_on_prolific(
    db: Any, qualification: str, rows: List[grants_api.GrantRow], *, create: bool = False, source: str = PROVIDER,
    dry_run: bool = False, now: Optional[float] = None, **prolific: Any,
) -> ProlificReport:
    """Rows of an import (participant id, value, expiry, reason) into the group, then
    ``grant_rows`` locally for those Prolific accepted. A row of another provider is an error."""
    others = [r.worker for r in rows if r.provider not in (None, PROVIDER)]
    if others:
        raise ProlificInputError(f"rows of another provider cannot go to Prolific: {', '.join(map(str, others[:10]))}")
    by_id = {str(r.worker).strip(): r._replace(provider=PROVIDER) for r in rows}

    def local(ids: List[str], preflight: bool) -> BulkReport:
        return grants_api.grant_rows(db, qualification, [by_id[p] for p in ids], source=source, create=create,
                                     dry_run=preflight, now=now)

    return send_to_group(db, qualification, list(by_id), "add", local, dry_run=dry_run, **prolific)
