"""Keep MTurk's grants of a qualification equal to Mephisto's, and grant on MTurk with bookkeeping.

**Direction.** The Mephisto DB is the source of truth: :func:`plan_sync` compares the local
holders (``granted_qualifications`` rows of the requester's provider type, expired grants
excluded) with MTurk's (``ListWorkersWithQualificationType``, Status Granted, every page)
and :func:`apply_sync` sends only the difference: AssociateQualificationWithWorker for a
missing grant or a different value, DisassociateQualificationFromWorker for an MTurk grant
Mephisto does not have (``revoke=False`` keeps those). An expired local grant is therefore
revoked on MTurk by the next sync.

**Names.** The MTurk qualification type is found by name among the requester's own types,
with Mephisto's ``_sandbox`` suffix in the sandbox (what Mephisto's provider uses when it
turns a local requirement into a HIT requirement); sandbox worker names lose their
``_sandbox`` suffix. A missing type is created by :func:`apply_sync` (the plan says so).

**Resuming.** Two mechanisms, each for its case:

* Re-planning from MTurk's own state (``apply_sync(db, "qual", requester=...)``, what the
  CLI does every time): after a crash the next apply lists MTurk again and sends only what
  is still different. Nothing local can drift from MTurk's answer, so this is the authority.
* A journal table (``mephisto_quals_mturk_journal``), one row per write committed right
  after MTurk accepted it, keyed by the plan's id: re-applying the *same* :class:`SyncPlan`
  object (stale by construction after a partial apply) skips what the journal says is
  done, without re-reading MTurk. It also keeps a record of every write sent to MTurk.

The one window left is between MTurk accepting a write and the journal row committing; a
re-applied plan would send that one write again, which is harmless for a grant (MTurk sets
the same value) and for a revoke is checked with GetQualificationScore (not held any more:
reported as such, not as a failure).

**Errors.** Throttling and service errors are retried with backoff (botocore's retry
config for real clients, :class:`~mephisto_quals.providers.mturk.client.Retry` around every call).
An error MTurk gives for one worker (RequestError: unknown or invalid worker, ...) is
reported for that worker at the end and the others go on; anything else (no network, a
crash) stops the apply, and the next apply resumes.

**Direct grants.** :func:`grant_on_mturk` / :func:`revoke_on_mturk` grant on MTurk to
workers Mephisto may never have seen and record the successful ones locally through
:func:`mephisto_quals.admin.grants.set_values` / :func:`~mephisto_quals.admin.grants.revoke` (source
``mturk``), creating the Mephisto worker record, so the grant is bookkept and gates the
worker when they first arrive.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from mephisto_quals.admin import grants as grants_api
from mephisto_quals.admin.grants import BulkReport, WorkerOutcome
from mephisto_quals.providers.mturk.client import (
    MTurkCalls,
    MTurkError,
    RequesterInfo,
    Retry,
    pages,
    check_live,
    client_for_requester,
    error_text,
    find_qualification_type,
    find_requester,
    is_mturk_worker_id,
    is_retryable,
    mturk_qualification_name,
    mturk_worker_id,
)
from mephisto_quals.admin.queries import holders
from mephisto_quals.compile.requirements import check_name
from mephisto_quals.store import Session, chunks
from mephisto_quals.store import journal as journal_store
from mephisto_quals.store.audit import os_user

__all__ = [
    "SyncItem",
    "SyncPlan",
    "SyncReport",
    "MTurkReport",
    "plan_sync",
    "apply_sync",
    "grant_on_mturk",
    "revoke_on_mturk",
    "journal",
]

Progress = Optional[Callable[[int], None]]

#: The journal's item for the creation of the qualification type (worker ids start with A).
_CREATE_ITEM = "*create-type*"
#: Successful direct grants are recorded locally this many at a time (a crash loses at most one batch's bookkeeping).
LOCAL_BATCH = 100
_EXISTS_MESSAGE = "You have already created a QualificationType with this name."


# --- plan ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SyncItem:
    """One write: ``grant`` / ``change`` (AssociateQualificationWithWorker) or ``revoke``."""

    worker: str  # MTurk worker id
    action: str
    value: Optional[int]  # the value MTurk gets (None for a revoke)
    old_value: Optional[int] = None  # MTurk's value before (None for a grant)

    def describe(self) -> str:
        if self.action == "grant":
            return f"grant  {self.worker} = {self.value}"
        if self.action == "change":
            return f"change {self.worker} {self.old_value} -> {self.value}"
        return f"revoke {self.worker} (was {self.old_value})"


@dataclass
class SyncPlan:
    """What one sync would send to MTurk, computed from both sides' current state."""

    qualification: str
    requester: str
    requester_id: int
    provider_type: str
    mturk_name: str
    qualification_type_id: Optional[str]  # None: missing on MTurk, apply creates it
    local_holders: int
    mturk_holders: int
    grants: List[SyncItem] = field(default_factory=list)
    changes: List[SyncItem] = field(default_factory=list)
    revokes: List[SyncItem] = field(default_factory=list)
    kept: int = 0  # MTurk-only grants left alone (revoke=False)
    skipped: Dict[str, str] = field(default_factory=dict)  # local worker -> why it cannot be synced
    warnings: List[str] = field(default_factory=list)
    read_calls: int = 0
    plan_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    planned_at: float = field(default_factory=time.time)

    @property
    def sandbox(self) -> bool:
        return self.provider_type == "mturk_sandbox"

    @property
    def type_missing(self) -> bool:
        return self.qualification_type_id is None

    @property
    def create_type(self) -> bool:
        """Apply creates the MTurk type: it is missing and there is something to grant."""
        return self.type_missing and bool(self.items)

    @property
    def items(self) -> List[SyncItem]:
        return self.grants + self.changes + self.revokes

    @property
    def write_calls(self) -> int:
        """MTurk write calls an apply sends (one per item, one more to create the type)."""
        return len(self.items) + (1 if self.create_type else 0)

    def summary(self) -> str:
        side = "sandbox" if self.sandbox else "LIVE"
        kind = f"qualification type '{self.mturk_name}' " + (
            self.qualification_type_id if not self.type_missing
            else "missing on MTurk" + (": apply creates it" if self.create_type else ""))
        lines = [
            f"sync '{self.qualification}' to {side} MTurk requester '{self.requester}' ({kind})",
            f"local holders {self.local_holders}, MTurk holders {self.mturk_holders} ({self.read_calls} read calls)",
            f"grant {len(self.grants)}, change value {len(self.changes)}, revoke {len(self.revokes)}"
            f" -> {self.write_calls} write calls" + (" (1 creates the qualification type)" if self.create_type else ""),
        ]
        if self.kept:
            lines.append(f"{self.kept} MTurk-only grants kept (revoke off)")
        lines += [f"skipped {w}: {why}" for w, why in sorted(self.skipped.items())]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _local_holders(db: Any, qualification: str, provider_type: str, now: Optional[float]) -> Tuple[Dict[str, int], Dict[str, str]]:
    """MTurk worker id -> value of the live local grants of the provider's workers; the unsyncable apart."""
    values: Dict[str, int] = {}
    skipped: Dict[str, str] = {}
    for h in holders(db, qualification, now=now):
        if h.provider_type != provider_type:
            continue
        worker = mturk_worker_id(h.worker_name) if provider_type == "mturk_sandbox" else h.worker_name
        if not is_mturk_worker_id(worker):
            skipped[h.worker_name] = "not an MTurk worker id (A followed by capital letters and digits)"
        else:
            values[worker] = h.value
    return values, skipped


def _mturk_holders(calls: MTurkCalls, type_id: str) -> Dict[str, Optional[int]]:
    """MTurk worker id -> IntegerValue of every current grant (all pages)."""
    return {
        q["WorkerId"]: q.get("IntegerValue")
        for q in pages(calls, "list_workers_with_qualification_type", "Qualifications",
                        QualificationTypeId=type_id, Status="Granted")
        if q.get("Status", "Granted") == "Granted"
    }


def _mapping_warning(db: Any, info: RequesterInfo, mturk_name: str, type_id: Optional[str]) -> Optional[str]:
    """Mephisto's own MTurk datastore maps qualification names to type ids; say if it disagrees."""
    mapping = _mapping(db, info, mturk_name)
    if mapping is None or type_id is None or mapping["mturk_qualification_id"] == type_id:
        return None
    return (f"Mephisto's MTurk datastore maps '{mturk_name}' to {mapping['mturk_qualification_id']} "
            f"(requester {mapping['requester_id']}), not {type_id}: Mephisto's own Worker.grant_qualification "
            "grants that other type")


def _mapping(db: Any, info: RequesterInfo, mturk_name: str) -> Optional[Any]:
    if not hasattr(db, "get_datastore_for_provider"):
        return None
    try:
        return db.get_datastore_for_provider(info.provider_type).get_qualification_mapping(mturk_name)
    except Exception:  # the datastore is a convenience; never fail a sync on it
        return None


def _record_mapping(db: Any, info: RequesterInfo, mturk_name: str, type_id: str) -> None:
    """Tell Mephisto's MTurk datastore which type we use, so its own grants go to the same one."""
    if not hasattr(db, "get_datastore_for_provider") or _mapping(db, info, mturk_name) is not None:
        return
    try:
        db.get_datastore_for_provider(info.provider_type).create_qualification_mapping(
            mturk_name, str(info.requester_id), mturk_name, type_id)
    except Exception:
        pass


def plan_sync(
    db: Any,
    qualification: str,
    requester: str,
    client: Any = None,
    live_ok: bool = False,
    *,
    revoke: bool = True,
    retry: Optional[Retry] = None,
    now: Optional[float] = None,
) -> SyncPlan:
    """Compare local and MTurk holders of ``qualification`` for ``requester``; only reads MTurk.

    Raises :class:`~mephisto_quals.admin.grants.UnknownQualificationError` for an unknown local
    qualification and refuses a live requester unless ``live_ok``.
    """
    info = find_requester(db, requester)
    check_live(info, live_ok)
    local = _local_holders(db, qualification, info.provider_type, now)  # a typo fails before any AWS set-up
    calls = MTurkCalls(client_for_requester(info, live_ok, client), retry or Retry())
    return _plan(db, info, calls, qualification, revoke, local)


def _plan(
    db: Any, info: RequesterInfo, calls: MTurkCalls, qualification: str, revoke: bool,
    local_and_skipped: Tuple[Dict[str, int], Dict[str, str]],
) -> SyncPlan:
    local, skipped = local_and_skipped
    mturk_name = mturk_qualification_name(qualification, info.sandbox)
    qtype = find_qualification_type(calls, mturk_name)
    type_id = qtype["QualificationTypeId"] if qtype else None
    remote = _mturk_holders(calls, type_id) if type_id else {}
    plan = SyncPlan(qualification, info.name, info.requester_id, info.provider_type, mturk_name, type_id,
                    local_holders=len(local) + len(skipped), mturk_holders=len(remote), skipped=skipped)
    if qtype and qtype.get("QualificationTypeStatus") != "Active":
        plan.warnings.append(f"MTurk qualification type {type_id} is {qtype.get('QualificationTypeStatus')}, not Active")
    warning = _mapping_warning(db, info, mturk_name, type_id)
    if warning:
        plan.warnings.append(warning)
    for worker in sorted(local):
        if worker not in remote:
            plan.grants.append(SyncItem(worker, "grant", local[worker]))
        elif remote[worker] != local[worker]:
            plan.changes.append(SyncItem(worker, "change", local[worker], remote[worker]))
    extra = sorted(set(remote) - set(local))
    if revoke:
        plan.revokes = [SyncItem(w, "revoke", None, remote[w]) for w in extra]
    else:
        plan.kept = len(extra)
    plan.read_calls = calls.reads
    return plan


# --- apply ---------------------------------------------------------------------------------------

@dataclass
class SyncReport(BulkReport):
    """Per-worker outcomes of an apply, the MTurk calls it sent, and the plan it followed."""

    plan: Optional[SyncPlan] = None
    read_calls: int = 0
    write_calls: int = 0
    retries: int = 0
    created_type: bool = False
    qualification_type_id: Optional[str] = None

    def summary(self) -> str:
        calls = f" ({self.write_calls} write calls, {self.read_calls} read calls, {self.retries} retries)"
        created = f"; created qualification type {self.qualification_type_id}" if self.created_type else ""
        return super().summary() + calls + created


def journal(db: Any, plan_id: Optional[str] = None) -> List[Dict[str, Any]]:
    """The MTurk writes recorded by applies (of one plan, or all), oldest first."""
    with Session.open(db, readonly=True) as s:
        return journal_store.entries(s.conn, plan_id)


def _log(session: Session, plan: SyncPlan, item: str, action: str, value: Optional[int], type_id: str) -> None:
    with session.transaction() as conn:
        journal_store.log(conn, plan.plan_id, item, action, value, plan.qualification, plan.requester, type_id,
                          time.time(), os_user())


def _create_type(calls: MTurkCalls, name: str) -> str:
    """CreateQualificationType (Active, not auto-granted); a type made meanwhile is found instead."""
    from botocore.exceptions import ClientError

    try:
        response = calls.write(
            "create_qualification_type", Name=name, Description=f"Equivalent qualification for {name}.",
            QualificationTypeStatus="Active", AutoGranted=False,
        )
        return response["QualificationType"]["QualificationTypeId"]
    except ClientError as e:
        if not (e.response.get("Error", {}).get("Message") or "").startswith(_EXISTS_MESSAGE):
            raise
    found = find_qualification_type(calls, name)
    if found is None:
        raise MTurkError(f"MTurk says qualification type '{name}' exists but does not list it")
    return found["QualificationTypeId"]


def _held_on_mturk(calls: MTurkCalls, type_id: str, worker: str) -> Optional[bool]:
    """Whether MTurk still has the grant (None: could not tell), after a revoke MTurk refused."""
    from botocore.exceptions import ClientError

    try:
        response = calls.read("get_qualification_score", QualificationTypeId=type_id, WorkerId=worker)
    except ClientError as e:
        return None if is_retryable(e) else False
    return (response.get("Qualification") or {}).get("Status") == "Granted"


def _send(calls: MTurkCalls, type_id: str, worker: str, value: Optional[int], reason: Optional[str]) -> Tuple[str, Optional[str]]:
    """One grant (value given) or revoke (None) on MTurk: (status, error)."""
    from botocore.exceptions import ClientError

    try:
        if value is not None:
            calls.write("associate_qualification_with_worker", QualificationTypeId=type_id, WorkerId=worker,
                        IntegerValue=value, SendNotification=False)
            return "ok", None
        params = {"QualificationTypeId": type_id, "WorkerId": worker}
        if reason:
            params["Reason"] = reason
        calls.write("disassociate_qualification_from_worker", **params)
        return "ok", None
    except ClientError as e:
        if value is None and not is_retryable(e) and _held_on_mturk(calls, type_id, worker) is False:
            return "not held", None
        return "failed", f"MTurk {error_text(e)}"


def apply_sync(
    db: Any,
    plan_or_qualification: Union[SyncPlan, str],
    requester: Optional[str] = None,
    *,
    client: Any = None,
    live_ok: bool = False,
    dry_run: bool = False,
    revoke: bool = True,
    reason: Optional[str] = None,
    retry: Optional[Retry] = None,
    progress: Progress = None,
    now: Optional[float] = None,
) -> SyncReport:
    """Send MTurk only the difference: a qualification name re-plans from MTurk's state first,
    a :class:`SyncPlan` is applied as planned, skipping what the journal records as done.

    ``dry_run`` plans (reads) and writes nothing. Per-worker MTurk errors are in the report.
    """
    if isinstance(plan_or_qualification, SyncPlan):
        plan = plan_or_qualification
        info = find_requester(db, plan.requester)
        if info.provider_type != plan.provider_type:
            raise MTurkError(f"the plan is for a {plan.provider_type} requester, '{plan.requester}' is {info.provider_type}")
        calls = MTurkCalls(client_for_requester(info, live_ok, client), retry or Retry())
    else:
        if requester is None:
            raise ValueError("name the requester to sync a qualification with (requester=...)")
        info = find_requester(db, requester)
        check_live(info, live_ok)
        local = _local_holders(db, plan_or_qualification, info.provider_type, now)
        calls = MTurkCalls(client_for_requester(info, live_ok, client), retry or Retry())
        plan = _plan(db, info, calls, plan_or_qualification, revoke, local)
    report = SyncReport("sync", plan.qualification, dry_run, plan=plan, qualification_type_id=plan.qualification_type_id)
    report.outcomes += [WorkerOutcome(w, "failed", error=why) for w, why in sorted(plan.skipped.items())]
    statuses = {"grant": "granted", "change": "updated", "revoke": "revoked"}
    if dry_run:
        report.outcomes += [WorkerOutcome(i.worker, statuses[i.action], old_value=i.old_value, new_value=i.value)
                            for i in plan.items]
        report.read_calls = calls.reads
        return report
    session = Session.open(db)
    try:
        done = journal_store.done(session.conn, plan.plan_id)
        type_id = plan.qualification_type_id
        if type_id is None and plan.items:
            if _CREATE_ITEM in done:
                type_id = done[_CREATE_ITEM]
            else:
                type_id = _create_type(calls, plan.mturk_name)
                _log(session, plan, _CREATE_ITEM, "create-type", None, type_id)
                report.created_type = True
            # The plan stays as planned (its write_calls still counts the creation); a re-apply
            # of it finds the created type in the journal.
            report.qualification_type_id = type_id
        if type_id is not None:
            _record_mapping(db, info, plan.mturk_name, type_id)
        for item in plan.items:
            assert type_id is not None  # found, or created above
            if item.worker in done:
                report.outcomes.append(WorkerOutcome(item.worker, "already applied", old_value=item.old_value, new_value=item.value))
            else:
                status, error = _send(calls, type_id, item.worker, item.value, reason)
                if status == "failed":
                    report.outcomes.append(WorkerOutcome(item.worker, "failed", old_value=item.old_value, new_value=item.value, error=error))
                else:
                    _log(session, plan, item.worker, item.action, item.value, type_id)
                    report.outcomes.append(WorkerOutcome(item.worker, statuses[item.action] if status == "ok" else status,
                                                         old_value=item.old_value, new_value=item.value))
            if progress:
                progress(1)
    finally:
        session.close()
        report.read_calls, report.write_calls, report.retries = calls.reads, calls.writes, calls.retries
    return report


# --- direct grants on MTurk, bookkept locally ----------------------------------------------------

@dataclass
class MTurkReport(BulkReport):
    """A direct grant / revoke: MTurk failures per worker, then the local outcomes of the successful ones."""

    requester: str = ""
    provider_type: str = ""
    qualification_type_id: Optional[str] = None
    created_type: bool = False
    read_calls: int = 0
    write_calls: int = 0
    retries: int = 0

    def summary(self) -> str:
        side = "sandbox" if self.provider_type == "mturk_sandbox" else "LIVE"
        created = f"; created qualification type {self.qualification_type_id}" if self.created_type else ""
        return (f"{super().summary()} on {side} MTurk requester '{self.requester}'"
                f" ({self.write_calls} write calls, {self.retries} retries){created}")


def _direct(
    db: Any, qualification: str, worker_ids: Iterable[Union[str, int]], value: Optional[int], requester: str,
    live_ok: bool, client: Any, reason: Optional[str], dry_run: bool, retry: Optional[Retry],
    local: Callable[[List[str], bool], BulkReport],
) -> MTurkReport:
    problems = check_name(qualification, "qualification")
    if problems:
        raise ValueError(str(problems[0]))
    info = find_requester(db, requester)
    check_live(info, live_ok)
    action = "grant" if value is not None else "revoke"
    report = MTurkReport(action, qualification, dry_run, requester=info.name, provider_type=info.provider_type)
    # The local side first, as a dry run: refuses bad ids, values, expiry, an unknown qualification
    # (revoke) before anything is sent to MTurk.
    given = list(dict.fromkeys(str(w).strip() for w in worker_ids))
    preflight = local(given, True)
    refused = {o.worker for o in preflight.outcomes if o.status == "failed"}
    report.outcomes += [o for o in preflight.outcomes if o.status == "failed"]
    targets = [w for w in given if w not in refused]  # in the caller's order
    calls = MTurkCalls(client_for_requester(info, live_ok, client), retry or Retry())
    mturk_name = mturk_qualification_name(qualification, info.sandbox)
    qtype = find_qualification_type(calls, mturk_name)
    report.qualification_type_id = qtype["QualificationTypeId"] if qtype else None
    if dry_run:
        report.outcomes += [o for o in preflight.outcomes if o.worker not in refused]
        report.read_calls = calls.reads
        return report
    type_id = report.qualification_type_id
    if type_id is None and value is not None and targets:
        type_id = report.qualification_type_id = _create_type(calls, mturk_name)
        report.created_type = True
    if type_id is not None:
        _record_mapping(db, info, mturk_name, type_id)
    try:
        for part in chunks(targets, LOCAL_BATCH):
            succeeded: List[str] = []
            for given in part:
                if type_id is None:  # revoke, and MTurk has no such type: nobody holds it there
                    succeeded.append(given)
                    continue
                status, error = _send(calls, type_id, mturk_worker_id(given), value, reason)
                if status == "failed":
                    report.outcomes.append(WorkerOutcome(given, "failed", error=error))
                else:
                    succeeded.append(given)
            if succeeded:
                report.outcomes += local(succeeded, False).outcomes
    finally:
        report.read_calls, report.write_calls, report.retries = calls.reads, calls.writes, calls.retries
    return report


def grant_on_mturk(
    db: Any,
    qualification: str,
    worker_ids: Iterable[Union[str, int]],
    value: int = 1,
    *,
    requester: str,
    live_ok: bool = False,
    client: Any = None,
    reason: Optional[str] = None,
    dry_run: bool = False,
    expires_in: Any = None,
    expires_at: Any = None,
    retry: Optional[Retry] = None,
) -> MTurkReport:
    """Grant ``qualification`` on MTurk (AssociateQualificationWithWorker, no notification) to MTurk
    worker ids, creating the MTurk type if missing, then record the successful grants locally
    (``set_values(..., provider="mturk"/"mturk_sandbox", create=True, source="mturk")``).

    Workers Mephisto never saw get a worker record, so the grant gates them when they arrive.
    ``expires_in`` / ``expires_at`` apply locally; the next sync revokes an expired grant on MTurk.
    """
    grants_api.check_value(value)

    def local(workers: List[str], preflight: bool) -> BulkReport:
        return grants_api.set_values(db, qualification, {w: value for w in workers}, provider=provider, reason=reason,
                                  expires_in=expires_in, expires_at=expires_at, source="mturk", create=True,
                                  dry_run=preflight, crowd=False)  # already on MTurk

    provider = find_requester(db, requester).provider_type
    return _direct(db, qualification, worker_ids, value, requester, live_ok, client, reason, dry_run, retry, local)


def revoke_on_mturk(
    db: Any,
    qualification: str,
    worker_ids: Iterable[Union[str, int]],
    *,
    requester: str,
    live_ok: bool = False,
    client: Any = None,
    reason: Optional[str] = None,
    dry_run: bool = False,
    retry: Optional[Retry] = None,
) -> MTurkReport:
    """Revoke ``qualification`` on MTurk (DisassociateQualificationFromWorker) and locally for
    the workers MTurk revoked (or confirms it does not hold: GetQualificationScore after a refusal).

    Raises :class:`~mephisto_quals.admin.grants.UnknownQualificationError` for an unknown local qualification.
    """

    def local(workers: List[str], preflight: bool) -> BulkReport:
        return grants_api.revoke(db, qualification, workers, provider=provider, reason=reason, source="mturk",
                              dry_run=preflight, crowd=False)  # already off MTurk

    provider = find_requester(db, requester).provider_type
    return _direct(db, qualification, worker_ids, None, requester, live_ok, client, reason, dry_run, retry, local)
