"""Bulk, idempotent, audited grants and revokes: one call for many workers.

The rows left in Mephisto's ``granted_qualifications`` table are exactly those
``Worker.grant_qualification`` / ``revoke_qualification`` leave (insert, update the value in
place on re-grant, delete on revoke). Expiry and reason live in our own table beside them,
and every change writes an audit row in the same transaction. A per-worker problem (unknown
id, malformed name) fails that worker only; everything else commits.

Each function opens its own session and transaction, or runs inside the caller's when given
``session=``, so a review or a sync composes several of them into one commit.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Union

from mephisto_quals.admin import crowd as crowd_sync
from mephisto_quals.admin.reports import BulkReport, OutcomeCounts, WorkerOutcome
from mephisto_quals.compile.comparators import VALUE_MAX, VALUE_MIN
from mephisto_quals.compile.durations import check_expiry, format_instant, parse_duration, parse_instant
from mephisto_quals.compile.requirements import check_name, failed_name
from mephisto_quals.errors import InputError, RowsRefused, UnknownQualificationError
from mephisto_quals.store import Session, chunks, session_for
from mephisto_quals.store import audit as audit_store
from mephisto_quals.store import grants as grant_store
from mephisto_quals.store import qualifications as qual_store
from mephisto_quals.store import reviews as review_store
from mephisto_quals.store.audit import Change, os_user
from mephisto_quals.store.workers import parse_refs, resolve_workers

__all__ = [
    "WorkerOutcome",
    "BulkReport",
    "OutcomeCounts",
    "UnknownQualificationError",
    "GrantRow",
    "RowsRefused",
    "grant",
    "revoke",
    "prune",
    "reset_onboarding",
    "set_values",
    "grant_rows",
    "check_value",
    "expiry_from",
    "os_user",
]

Progress = Optional[Callable[[int], None]]
Workers = Iterable[Union[str, int]]


def check_value(value: Any, field_name: str = "value") -> int:
    """Qualification values are plain integers (not booleans) that fit SQLite's 64-bit INTEGER."""
    if not isinstance(value, int) or isinstance(value, bool) or not VALUE_MIN <= value <= VALUE_MAX:
        raise ValueError(f"{field_name}: {value!r} is not valid; qualification values are integers "
                         f"from {VALUE_MIN} to {VALUE_MAX} (SQLite's 64-bit INTEGER)")
    return value


def expiry_from(expires_in: Any, expires_at: Any, now: float) -> Optional[float]:
    """Unix time a grant expires: from a duration (``7d``) or an instant; None = permanent."""
    if expires_in is not None and expires_at is not None:
        raise ValueError("give expires_in or expires_at, not both")
    if expires_in is not None:
        seconds = parse_duration(expires_in, "expires_in")
        return None if seconds is None else check_expiry(now + seconds, "expires_in", expires_in)
    if expires_at is not None:
        moment = parse_instant(expires_at, "expires_at")
        if moment <= now:
            raise ValueError(f"expires_at: {format_instant(moment)} is in the past")
        return check_expiry(moment, "expires_at", expires_at)
    return None


def _qualification_id(conn: Any, name: str, create: bool, description: Optional[str] = None) -> int:
    problems = check_name(name, "qualification")
    if problems:
        raise ValueError(str(problems[0]))
    if description is not None and not create:
        raise InputError(f"description for {name!r}: a description is set when a qualification is created; "
                         "give it together with create (--create)")
    if description is not None and not qual_store.description_supported(conn):
        raise InputError(
            f"description for {name!r}: this database's qualifications table has no description column "
            "(Mephisto 1.5.2 adds it; this one is older), so nothing was written; leave the description out"
        )
    return qual_store.qualification_id(conn, name, create, description)


def _run(db: Any, session: Optional[Session], dry_run: bool, work: Callable[[Any], None],
         report: Optional[BulkReport] = None, crowd: bool = False) -> None:
    """Run ``work(conn)`` in one transaction (the caller's, if given); a dry run rolls back.

    With ``crowd``, the committed changes then go to the workers' crowd providers
    (admin.crowd), unless this ran inside a caller's transaction: that caller syncs
    (``crowd.sync_report``) after its own commit.
    """
    inside = session is not None and session.in_transaction
    if dry_run and inside:
        raise ValueError("dry_run inside a caller's transaction: roll the caller's transaction back instead")
    with session_for(db, session) as s, s.transaction(rollback=dry_run) as conn:
        work(conn)
    if crowd and report is not None and not dry_run and not inside:
        crowd_sync.sync_report(db, report)


def _record(conn: Any, report: BulkReport, changes: List[Change], qual_ids: Dict[str, int]) -> None:
    """Audit the changes, keep them on the report (the crowd side is told after the commit), and
    write the rows Mephisto 1.5.2's review app shows, all inside the caller's transaction."""
    audit_store.record(conn, changes)
    report.changes.extend(changes)
    review_store.record(conn, changes, qual_ids)


class GrantRow(NamedTuple):
    """One worker's grant in a :func:`grant_rows` call (expiry as unix seconds, None = permanent)."""

    worker: Union[str, int]
    value: int = 1
    provider: Optional[str] = None
    expires_at: Optional[float] = None
    reason: Optional[str] = None


def grant_rows(
    db: Any,
    qualification: str,
    rows: Sequence[GrantRow],
    *,
    source: str = "api",
    create: bool = False,
    description: Optional[str] = None,
    dry_run: bool = False,
    progress: Progress = None,
    now: Optional[float] = None,
    session: Optional[Session] = None,
    crowd: bool = True,
    all_or_nothing: bool = False,
) -> BulkReport:
    """Grant one qualification with its own value, provider, expiry and reason per worker,
    all in one transaction (what ``import`` of a CSV needs).

    With ``all_or_nothing`` any worker that cannot be granted (a malformed name, an unknown
    Mephisto id) raises :class:`RowsRefused` listing them all, and nothing is written.

    New grants are plain INSERTs and changed values UPDATEs in place, as Mephisto's
    ``_grant_qualification`` does. Workers named by provider worker name whom Mephisto has
    never seen get a worker record, so the grant gates them when they arrive.
    """
    now = time.time() if now is None else now
    report = BulkReport("grant", qualification, dry_run)
    wanted: Dict[str, GrantRow] = {}
    refs = []
    for r in rows:
        check_expiry(r.expires_at, f"expires_at for {r.worker}")
        if r.expires_at is not None and r.expires_at <= now:
            raise ValueError(f"expires_at for {r.worker}: {format_instant(r.expires_at)} is in the past")
    for provider in dict.fromkeys(r.provider for r in rows):
        group = [r for r in rows if r.provider == provider]
        for r in group:
            check_value(r.value, f"value for {r.worker}")
        parsed, refused = parse_refs([r.worker for r in group], provider)
        report.outcomes += [WorkerOutcome(w, "failed", error=why) for w, why in refused.items()]
        for r in group:
            wanted[str(r.worker).strip()] = r
        refs += parsed
    user = os_user()

    def work(conn: Any) -> None:
        qual_id = _qualification_id(conn, qualification, create, description)
        found, missing = resolve_workers(conn, refs, create=True)
        report.outcomes.extend(WorkerOutcome(w, "failed", error=why) for w, why in missing.items())
        failures = {o.worker: o.error or "failed" for o in report.outcomes if o.status == "failed"}
        if all_or_nothing and failures:
            raise RowsRefused(failures)  # rolls the transaction back: workers created above go too
        targets = [(r.given, *found[r.given]) for r in refs if r.given in found]
        held = grant_store.current(conn, qual_id, [wid for _, wid, _ in targets])
        for part in chunks(targets):
            inserts, updates, metas, stale, changes = [], [], [], [], []
            fresh: Dict[int, GrantRow] = {}
            for given, wid, wname in part:
                row = wanted[given]
                old = held.get(wid)
                if old is None:
                    status = "granted"
                elif (old.value, old.expires_at, old.reason) == (row.value, row.expires_at, row.reason):
                    status = "unchanged"
                else:
                    status = "updated"
                report.outcomes.append(WorkerOutcome(given, status, wid, wname, old.value if old else None, row.value))
                if status == "unchanged":
                    continue
                if old is None:
                    inserts.append((wid, row.value))
                    fresh[wid] = row
                else:
                    if old.value != row.value:
                        updates.append((wid, row.value))
                    if row.expires_at is not None or row.reason is not None:
                        metas.append((old.row_id, wid, qual_id, row.expires_at, row.reason, now, old.created))
                    elif old.expires_at is not None or old.reason is not None:
                        stale.append(old.row_id)
                # Two names for one worker in one call: the second sees the first.
                held[wid] = grant_store.Held(row.value, row.expires_at, row.reason,
                                             old.row_id if old else -1, old.created if old else None)
                changes.append(Change(now, qualification, wid, wname, "grant", old.value if old else None, row.value,
                                      row.expires_at, row.reason, source, user))
            created = grant_store.insert(conn, qual_id, inserts)
            grant_store.update_values(conn, qual_id, updates)
            for wid, row in fresh.items():
                row_id, made = created[wid]
                held[wid] = held[wid]._replace(row_id=row_id, created=made)
                if row.expires_at is not None or row.reason is not None:
                    metas.append((row_id, wid, qual_id, row.expires_at, row.reason, now, made))
            grant_store.drop_meta(conn, stale)
            grant_store.write_meta(conn, metas)
            _record(conn, report, changes, {qualification: qual_id})
            if progress:
                progress(len(part))

    _run(db, session, dry_run, work, report, crowd)
    return report


def set_values(
    db: Any,
    qualification: str,
    values: Dict[Union[str, int], int],
    *,
    provider: Optional[str] = None,
    reason: Optional[str] = None,
    expires_in: Any = None,
    expires_at: Any = None,
    now: Optional[float] = None,
    **kwargs: Any,
) -> BulkReport:
    """Grant one qualification with a value per worker (same provider, expiry and reason), in
    one transaction; other options (``crowd``, ``session``, ...) as :func:`grant_rows`."""
    now = time.time() if now is None else now
    expiry = expiry_from(expires_in, expires_at, now)
    rows = [GrantRow(w, v, provider, expiry, reason) for w, v in values.items()]
    return grant_rows(db, qualification, rows, now=now, **kwargs)


def grant(db: Any, qualification: str, workers: Workers, value: int = 1, **kwargs: Any) -> BulkReport:
    """Grant one qualification (same value) to many workers; see :func:`set_values` for options."""
    check_value(value)
    return set_values(db, qualification, {w: value for w in workers}, **kwargs)


def _remove(
    db: Any,
    names: Sequence[str],
    workers: Workers,
    action: str,
    provider: Optional[str],
    reason: Optional[str],
    source: str,
    dry_run: bool,
    progress: Progress,
    now: Optional[float],
    session: Optional[Session],
    crowd: bool = True,
) -> BulkReport:
    """Revoke ``names`` (the first must exist; companions such as an onboarding's "-failed"
    list may not exist yet) from workers, audited."""
    now = time.time() if now is None else now
    refs, refused = parse_refs(workers, provider)
    report = BulkReport(action, names[0], dry_run)
    report.outcomes += [WorkerOutcome(w, "failed", error=why) for w, why in refused.items()]
    user = os_user()

    def work(conn: Any) -> None:
        qual_ids = qual_store.find_ids(conn, list(names))
        if names[0] not in qual_ids:
            _qualification_id(conn, names[0], create=False)  # raises the clear error
        found, missing = resolve_workers(conn, refs, create=False)
        for given, why in missing.items():
            status = "failed" if provider is None else "not held"
            report.outcomes.append(WorkerOutcome(given, status, error=why if status == "failed" else None))
        targets = [(r.given, *found[r.given]) for r in refs if r.given in found]
        held = {name: grant_store.current(conn, qid, [wid for _, wid, _ in targets]) for name, qid in qual_ids.items()}
        for part in chunks(targets):
            deletes, changes = [], []
            for given, wid, wname in part:
                olds = {name: held[name][wid].value for name in qual_ids if wid in held[name]}
                report.outcomes.append(WorkerOutcome(given, "revoked" if olds else "not held", wid, wname,
                                                     olds.get(names[0]), None))
                for name, old in olds.items():
                    deletes.append((qual_ids[name], wid))
                    changes.append(Change(now, name, wid, wname, action, old, None, None, reason, source, user))
            grant_store.delete(conn, deletes)
            _record(conn, report, changes, qual_ids)
            if progress:
                progress(len(part))

    _run(db, session, dry_run, work, report, crowd)
    return report


def revoke(
    db: Any,
    qualification: str,
    workers: Workers,
    *,
    provider: Optional[str] = None,
    reason: Optional[str] = None,
    source: str = "api",
    dry_run: bool = False,
    progress: Progress = None,
    now: Optional[float] = None,
    session: Optional[Session] = None,
    crowd: bool = True,
) -> BulkReport:
    """Revoke one qualification from many workers; raises for an unknown qualification."""
    return _remove(db, [qualification], workers, "revoke", provider, reason, source, dry_run, progress, now, session,
                   crowd)


def reset_onboarding(
    db: Any,
    onboarding: str,
    workers: Workers,
    *,
    provider: Optional[str] = None,
    reason: Optional[str] = None,
    source: str = "api",
    dry_run: bool = False,
    now: Optional[float] = None,
    session: Optional[Session] = None,
    crowd: bool = True,
) -> BulkReport:
    """Clear workers' onboarding result (``X`` and ``X-failed``) so they can take it again."""
    return _remove(db, [onboarding, failed_name(onboarding)], workers, "reset-onboarding", provider, reason,
                   source, dry_run, None, now, session, crowd)


def prune(db: Any, *, now: Optional[float] = None, source: str = "api", dry_run: bool = False,
          session: Optional[Session] = None) -> BulkReport:
    """Delete every expired grant (they already stopped counting at the gate), audited.

    Only the grant row an expiry belongs to goes; a row Mephisto made later is another grant.
    """
    now = time.time() if now is None else now
    report = BulkReport("prune", "*", dry_run)
    user = os_user()

    def work(conn: Any) -> None:
        rows = grant_store.expired(conn, now)
        grant_store.delete_rows(conn, [r["row_id"] for r in rows])
        grant_store.drop_stale_meta(conn)
        changes = [Change(now, r["qualification_name"], r["worker_id"], r["worker_name"], "expire",
                          r["value"], None, r["expires_at"], "expired", source, user) for r in rows]
        _record(conn, report, changes, qual_store.find_ids(conn, [c.qualification for c in changes]))
        report.outcomes += [WorkerOutcome(r["worker_name"], "pruned", r["worker_id"], r["worker_name"], r["value"],
                                          None, qualification=r["qualification_name"]) for r in rows]

    _run(db, session, dry_run, work)
    return report
