"""Grant and revoke on MTurk directly, and bookkeep the successful ones locally.

:func:`grant_on_mturk` / :func:`revoke_on_mturk` grant on MTurk to workers Mephisto may
never have seen and record the successful ones locally through
:func:`mephisto_quals.admin.grants.set_values` / :func:`~mephisto_quals.admin.grants.revoke` (source
``mturk``), creating the Mephisto worker record, so the grant is bookkept and gates the
worker when they first arrive. Errors are handled as in :mod:`mephisto_quals.providers.mturk.sync`:
an error MTurk gives for one worker is reported for that worker and the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Union

from mephisto_quals.admin import grants as grants_api
from mephisto_quals.admin.grants import BulkReport, WorkerOutcome
from mephisto_quals.compile.requirements import check_name
from mephisto_quals.providers.mturk.client import (
    Retry,
    calls_for_requester,
    check_live,
    find_qualification_type,
    find_requester,
    mturk_qualification_name,
    mturk_worker_id,
)
from mephisto_quals.providers.mturk.writes import create_type, record_mapping, send
from mephisto_quals.store import chunks

__all__ = ["MTurkReport", "LOCAL_BATCH", "grant_on_mturk", "revoke_on_mturk"]

#: Successful direct grants are recorded locally this many at a time (a crash loses at most one batch's bookkeeping).
LOCAL_BATCH = 100


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
        return (
            f"{super().summary()} on {side} MTurk requester '{self.requester}'"
            f" ({self.write_calls} write calls, {self.retries} retries){created}"
        )


def _direct(
    db: Any,
    qualification: str,
    worker_ids: Iterable[Union[str, int]],
    value: Optional[int],
    requester: str,
    live_ok: bool,
    client: Any,
    reason: Optional[str],
    dry_run: bool,
    retry: Optional[Retry],
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
    calls = calls_for_requester(info, live_ok, client, retry)
    mturk_name = mturk_qualification_name(qualification, info.sandbox)
    qtype = find_qualification_type(calls, mturk_name)
    report.qualification_type_id = qtype["QualificationTypeId"] if qtype else None
    if dry_run:
        report.outcomes += [o for o in preflight.outcomes if o.worker not in refused]
        report.read_calls = calls.reads
        return report
    type_id = report.qualification_type_id
    if type_id is None and value is not None and targets:
        type_id = report.qualification_type_id = create_type(calls, mturk_name)
        report.created_type = True
    if type_id is not None:
        record_mapping(db, info, mturk_name, type_id)
    try:
        for part in chunks(targets, LOCAL_BATCH):
            succeeded: List[str] = []
            for worker in part:
                if type_id is None:  # revoke, and MTurk has no such type: nobody holds it there
                    succeeded.append(worker)
                    continue
                status, error = send(calls, type_id, mturk_worker_id(worker), value, reason)
                if status == "failed":
                    report.outcomes.append(WorkerOutcome(worker, "failed", error=error))
                else:
                    succeeded.append(worker)
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
        return grants_api.set_values(
            db,
            qualification,
            {w: value for w in workers},
            provider=provider,
            reason=reason,
            expires_in=expires_in,
            expires_at=expires_at,
            source="mturk",
            create=True,
            dry_run=preflight,
            crowd=False,
        )  # already on MTurk

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
        return grants_api.revoke(
            db, qualification, workers, provider=provider, reason=reason, source="mturk", dry_run=preflight, crowd=False
        )  # already off MTurk

    provider = find_requester(db, requester).provider_type
    return _direct(db, qualification, worker_ids, None, requester, live_ok, client, reason, dry_run, retry, local)
