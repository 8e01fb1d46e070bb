"""Workers' requests for our MTurk qualification types: list them, accept or reject them.

A worker requests a type (taking its test, if it has one without an answer key, or just
asking) and the request waits for the owner. :func:`list_requests` fetches the pending
requests for our types (every page); :func:`decide` accepts or rejects them one by one
(:func:`accept` / :func:`reject`) or by a :class:`Rule` that uses local lists: accept workers
who hold a local allowlist qualification (held now, not expired), reject workers on a
local blocklist (reject wins when both apply), leave everyone else pending.

Every decision is recorded in the audit (action ``accept-request`` / ``reject-request``,
source ``mturk-request``). An accepted request is also granted locally, through
:func:`mephisto_quals.admin.grants.set_values` on provider ``mturk`` / ``mturk_sandbox`` (audited
as a ``grant`` when it changes anything), so Mephisto's local gate agrees with MTurk.
A rejected worker Mephisto has never seen gets a worker record, as a grant would, so the
audit row can name them.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from mephisto_quals.admin.grants import OutcomeCounts
from mephisto_quals.errors import QualsError
from mephisto_quals.providers.mturk.types import looks_like_type_id

__all__ = [
    "QualRequest",
    "Decision",
    "Rule",
    "DecisionOutcome",
    "DecisionReport",
    "SOURCE",
    "DEFAULT_REJECT_REASON",
    "list_requests",
    "accept",
    "reject",
    "plan_decisions",
    "decide",
    "record_decisions",
]

SOURCE = "mturk-request"
DEFAULT_REJECT_REASON = "Your request for this qualification was not approved."


def _provider(sandbox: bool) -> str:
    return "mturk_sandbox" if sandbox else "mturk"


@dataclass(frozen=True)
class QualRequest:
    """One pending request: who asked for which of our types.

    ``qualification`` is the local (Mephisto) name, without the sandbox suffix.
    """

    request_id: str
    type_id: str
    qualification: str
    worker_id: str
    sandbox: bool
    submitted: Optional[datetime] = None
    answer: Optional[str] = None

    @property
    def provider(self) -> str:
        return _provider(self.sandbox)


def _local_name(type_name: str, sandbox: bool) -> str:
    return type_name[: -len("_sandbox")] if sandbox and type_name.endswith("_sandbox") else type_name


def _resolve_types(calls: Any, types: Iterable[str], sandbox: bool) -> Dict[str, str]:
    """type_id -> local name, for names (the caller's own types, exact) or type ids."""
    from mephisto_quals.providers.mturk.client import find_qualification_type, mturk_qualification_name

    out: Dict[str, str] = {}
    for given in types:
        given = str(given).strip()
        if looks_like_type_id(given):
            response = calls.read("get_qualification_type", QualificationTypeId=given)
            out[given] = _local_name(response["QualificationType"]["Name"], sandbox)
            continue
        name = mturk_qualification_name(given, sandbox)
        found = find_qualification_type(calls, name)
        if found is None:
            raise QualsError(
                f"{name!r} is not one of this requester's {'sandbox' if sandbox else 'live'} MTurk "
                "qualification types; create it with 'mephisto-quals qual-types apply'"
            )
        out[found["QualificationTypeId"]] = given
    return out


def _pages(calls: Any, type_id: Optional[str]) -> Iterable[Dict[str, Any]]:
    """Every pending request for ``type_id`` (or for all of the caller's types), all pages."""
    from mephisto_quals.providers.mturk.client import pages

    params: Dict[str, Any] = {} if type_id is None else {"QualificationTypeId": type_id}
    return pages(calls, "list_qualification_requests", "QualificationRequests", **params)


def list_requests(
    client: Any, type_ids_or_names: Iterable[str] = (), sandbox: bool = True, retry: Any = None
) -> List[QualRequest]:
    """Pending requests for the given types (names as declared, or MTurk type ids), every page.

    ``sandbox`` must match the client (names get Mephisto's ``_sandbox`` suffix there). With
    no types, every pending request for any of the caller's types is listed (each type's
    name then looked up once with GetQualificationType). Throttling is retried with backoff.
    """
    from mephisto_quals.providers.mturk.client import as_calls

    calls = as_calls(client, retry)
    wanted = list(type_ids_or_names)
    names: Dict[str, str] = _resolve_types(calls, wanted, sandbox) if wanted else {}
    raw: List[Dict[str, Any]] = []
    if wanted:
        for type_id in names:
            raw += list(_pages(calls, type_id))
    else:
        raw = list(_pages(calls, None))
        for type_id in dict.fromkeys(r["QualificationTypeId"] for r in raw):
            names.update(_resolve_types(calls, [type_id], sandbox))
    return [
        QualRequest(
            r["QualificationRequestId"],
            r["QualificationTypeId"],
            names[r["QualificationTypeId"]],
            r["WorkerId"],
            sandbox,
            r.get("SubmitTime"),
            r.get("Answer"),
        )
        for r in raw
    ]


# --- decisions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Accept (with ``value``) or reject (with ``reason``, shown to the worker) one request."""

    request_id: str
    action: str  # accept | reject
    value: int = 1
    reason: Optional[str] = None
    why: str = "explicit"


def accept(request_id: str, value: int = 1, why: str = "explicit") -> Decision:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"value: {value!r} is not valid; qualification values are integers")
    return Decision(str(request_id), "accept", value, None, why)


def reject(request_id: str, reason: Optional[str] = None, why: str = "explicit") -> Decision:
    return Decision(str(request_id), "reject", 1, reason or DEFAULT_REJECT_REASON, why)


@dataclass(frozen=True)
class Rule:
    """Decide by local lists: accept holders of any ``accept_allowlisted`` qualification,
    reject holders of any ``reject_blocklisted`` one (rejection wins); others stay pending.

    Holding means a live local grant (not expired) on the request's provider
    (``mturk`` or ``mturk_sandbox``).
    """

    accept_allowlisted: Tuple[str, ...] = ()
    reject_blocklisted: Tuple[str, ...] = ()
    value: int = 1
    reject_reason: str = DEFAULT_REJECT_REASON

    def __post_init__(self) -> None:
        object.__setattr__(self, "accept_allowlisted", tuple(self.accept_allowlisted))
        object.__setattr__(self, "reject_blocklisted", tuple(self.reject_blocklisted))


def _holder_names(db: Any, qualification: str, now: float) -> Dict[str, set]:
    """provider -> Mephisto worker names holding ``qualification`` now."""
    from mephisto_quals.admin.queries import holders

    out: Dict[str, set] = {}
    for h in holders(db, qualification, now=now):
        out.setdefault(h.provider_type, set()).add(h.worker_name)
    return out


def plan_decisions(
    db: Any,
    requests: Sequence[QualRequest],
    rule: Optional[Rule] = None,
    decisions: Iterable[Decision] = (),
    now: Optional[float] = None,
) -> Tuple[Dict[str, Decision], List[Decision]]:
    """(request_id -> decision, explicit decisions naming no listed request).

    Explicit decisions win over the rule for their request.
    """
    from mephisto_quals.store.workers import mephisto_worker_name

    now = time.time() if now is None else now
    by_id = {r.request_id: r for r in requests}
    out: Dict[str, Decision] = {}
    if rule is not None:
        allow = {q: _holder_names(db, q, now) for q in rule.accept_allowlisted}
        block = {q: _holder_names(db, q, now) for q in rule.reject_blocklisted}
        for r in requests:
            local = mephisto_worker_name(r.worker_id, r.provider)
            blocked = [q for q, held in block.items() if local in held.get(r.provider, ())]
            allowed = [q for q, held in allow.items() if local in held.get(r.provider, ())]
            if blocked:
                out[r.request_id] = reject(r.request_id, rule.reject_reason, why=f"on blocklist {blocked[0]!r}")
            elif allowed:
                out[r.request_id] = accept(r.request_id, rule.value, why=f"on allowlist {allowed[0]!r}")
    unknown: List[Decision] = []
    for d in decisions:
        if d.request_id in by_id:
            out[d.request_id] = d
        else:
            unknown.append(d)
    return out, unknown


@dataclass
class DecisionOutcome:
    """What happened to one request: status is accepted, rejected, pending, failed
    (or, in a dry run, would accept / would reject)."""

    request_id: str
    worker_id: str
    qualification: str
    status: str
    value: Optional[int] = None
    reason: Optional[str] = None
    why: Optional[str] = None
    local: Optional[str] = None  # the local grant's status (granted, updated, unchanged)
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass
class DecisionReport(OutcomeCounts):
    dry_run: bool = False
    outcomes: List[DecisionOutcome] = field(default_factory=list)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items())) or "no requests"
        return ("dry run, nothing sent or written: " if self.dry_run else "") + f"qualification requests: {counts}"


def record_decisions(
    db: Any,
    entries: Sequence[Tuple[str, str, str, str, Optional[int], Optional[str]]],
    *,
    source: str = SOURCE,
    now: Optional[float] = None,
) -> None:
    """Audit-only rows, one transaction: (qualification, MTurk worker id, provider, action, value, reason).

    Workers Mephisto has never seen get a worker record so the row can name them.
    """
    from mephisto_quals.store import Session
    from mephisto_quals.store import audit as audit_store
    from mephisto_quals.store.audit import Change, os_user
    from mephisto_quals.store.workers import parse_refs, resolve_workers

    if not entries:
        return
    now = time.time() if now is None else now
    user = os_user()
    with Session.open(db) as s, s.transaction() as conn:
        rows = []
        for qualification, worker, provider, action, value, reason in entries:
            refs, refused = parse_refs([worker], provider)
            if refused:
                raise ValueError(f"worker {worker!r}: {refused[worker]}")
            found, _ = resolve_workers(conn, refs, create=True)
            wid, wname = found[refs[0].given]
            rows.append(Change(now, qualification, wid, wname, action, None, value, None, reason, source, user))
        audit_store.record(conn, rows)


def decide(
    db: Any,
    client: Any,
    requests: Sequence[QualRequest],
    rule: Optional[Rule] = None,
    decisions: Iterable[Decision] = (),
    dry_run: bool = False,
    now: Optional[float] = None,
    retry: Any = None,
) -> DecisionReport:
    """Accept or reject requests on MTurk, by explicit decisions and/or a rule, and record each.

    Requests are handled one by one: MTurk first (AcceptQualificationRequest with
    IntegerValue / RejectQualificationRequest with Reason), then the local record, so a
    refusal by MTurk records nothing. Requests no decision covers stay pending. A dry run
    sends nothing and writes nothing.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from mephisto_quals.admin.grants import set_values
    from mephisto_quals.providers.mturk.client import as_calls, error_text

    calls = as_calls(client, retry)
    now = time.time() if now is None else now
    plan, unknown = plan_decisions(db, requests, rule, decisions, now)
    report = DecisionReport(dry_run)
    for miss in unknown:
        report.outcomes.append(
            DecisionOutcome(
                miss.request_id, "", "", "failed", why=miss.why, error="no pending request with this id for these types"
            )
        )
    for r in requests:
        d = plan.get(r.request_id)
        if d is None:
            report.outcomes.append(DecisionOutcome(r.request_id, r.worker_id, r.qualification, "pending"))
            continue
        accepting = d.action == "accept"
        out = DecisionOutcome(
            r.request_id,
            r.worker_id,
            r.qualification,
            "",
            d.value if accepting else None,
            None if accepting else d.reason,
            d.why,
        )
        report.outcomes.append(out)
        if dry_run:
            out.status = "would accept" if accepting else "would reject"
            continue
        try:
            if accepting:
                calls.write("accept_qualification_request", QualificationRequestId=r.request_id, IntegerValue=d.value)
            else:
                calls.write("reject_qualification_request", QualificationRequestId=r.request_id, Reason=d.reason)
        except (ClientError, BotoCoreError) as e:
            out.status, out.error = "failed", f"MTurk refused: {error_text(e)}"
            continue
        out.status = "accepted" if accepting else "rejected"
        note = f"MTurk request {r.request_id}: {d.why}"
        try:
            if accepting:
                granted = set_values(
                    db,
                    r.qualification,
                    {r.worker_id: d.value},
                    provider=r.provider,
                    create=True,
                    source=SOURCE,
                    reason=note,
                    now=now,
                    crowd=False,
                )  # MTurk accepted it
                if granted.failed:
                    raise QualsError(granted.failed[0].error or "local grant failed")
                out.local = granted.outcomes[0].status
            record_decisions(
                db,
                [
                    (
                        r.qualification,
                        r.worker_id,
                        r.provider,
                        f"{d.action}-request",
                        d.value if accepting else None,
                        note if accepting else f"{note}; told: {d.reason}",
                    )
                ],
                now=now,
            )
        except (QualsError, ValueError, sqlite3.Error) as e:
            out.status = "failed"
            out.error = f"{'accepted' if accepting else 'rejected'} on MTurk, but the local record failed: {e}"
    return report
