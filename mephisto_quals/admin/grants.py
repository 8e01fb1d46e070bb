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
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from mephisto_quals.admin import bulk
from mephisto_quals.admin.reports import BulkReport, OutcomeCounts, WorkerOutcome
from mephisto_quals.compile.comparators import VALUE_MAX, VALUE_MIN
from mephisto_quals.compile.durations import check_expiry, format_instant, parse_duration, parse_instant
from mephisto_quals.compile.requirements import check_name, failed_name
from mephisto_quals.errors import InputError, RowsRefused, UnknownQualificationError
from mephisto_quals.store import Session, session_for, staging
from mephisto_quals.store import audit as audit_store
from mephisto_quals.store import grants as grant_store
from mephisto_quals.store import qualifications as qual_store
from mephisto_quals.store import reviews as review_store
from mephisto_quals.store.audit import Change, os_user
from mephisto_quals.store.workers import parse_refs, plain_ids

_new_change = partial(tuple.__new__, Change)  # a Change from a complete tuple, without its Python __new__

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
#: Outcomes that changed a grant (and so are audited and told to the crowd side).
_CHANGED = ("granted", "updated")
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


def _run(db: Any, session: Optional[Session], dry_run: bool, work: Callable[[Any], None]) -> None:
    """Run ``work(conn)`` in one transaction (the caller's, if given); a dry run rolls back."""
    if dry_run and session is not None and session.in_transaction:
        raise ValueError("dry_run inside a caller's transaction: roll the caller's transaction back instead")
    with session_for(db, session) as s, s.transaction(rollback=dry_run) as conn:
        work(conn)


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


@bulk.no_cyclic_gc
def grant_rows(
    db: Any,
    qualification: str,
    rows: Iterable[Any],
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
    keep_outcomes: bool = True,
    precheck: Optional[Callable[[Dict[str, str], Dict[str, int]], None]] = None,
) -> BulkReport:
    """Grant one qualification with its own value, provider, expiry and reason per worker,
    all in one transaction (what ``import`` of a CSV needs).

    With ``all_or_nothing`` any worker that cannot be granted (a malformed name, an unknown
    Mephisto id) raises :class:`RowsRefused` listing them all, and nothing is written.

    New grants are plain INSERTs and changed values UPDATEs in place, as Mephisto's
    ``_grant_qualification`` does. Workers named by provider worker name whom Mephisto has
    never seen get a worker record, so the grant gates them when they arrive. The rows are
    staged and checked before the write lock is taken (:mod:`mephisto_quals.store.staging`),
    so a live run in another process waits only for the short apply. ``rows`` may be a
    generator: it is read once. A worker named twice (by id and by name) gets the last row;
    with ``all_or_nothing``, a worker given twice with different grants is refused.
    ``keep_outcomes=False`` keeps only the failures on the report (and counts the rest in
    ``report.tally``), and the changes only of workers a crowd provider is told about, so
    memory stays flat however many rows stream in. ``precheck(refusals, lines)``, with
    ``all_or_nothing``, runs once every row is staged and before anything is written: it may
    raise (a CSV reader reports its bad lines there together with the refused workers).
    """
    now = time.time() if now is None else now
    groups = staging.Groups()
    refused: Dict[str, str] = {}

    def staged() -> Iterator[staging.StagedRow]:
        for part in bulk.parts(rows):
            for r in part:
                check_expiry(r.expires_at, f"expires_at for {r.worker}")
                if r.expires_at is not None and r.expires_at <= now:
                    raise ValueError(f"expires_at for {r.worker}: {format_instant(r.expires_at)} is in the past")
                check_value(r.value, f"value for {r.worker}")
            for provider in dict.fromkeys(r.provider for r in part):
                group = [r for r in part if r.provider == provider]
                parsed, bad = parse_refs([r.worker for r in group], provider)
                refused.update(bad)
                ref_of = {ref.given: ref for ref in parsed}
                for r in group:  # each row staged: the stage tells repeats that differ
                    ref = ref_of.get(str(r.worker).strip() if r.worker is not None else "")
                    if ref is not None:
                        yield (ref.given, ref.lookup, r.value,
                               getattr(r, "line", None), groups.number(provider, r.expires_at, r.reason))

    return _grant_staged(db, qualification, staged(), groups, None, refused, now, source=source, create=create,
                         description=description, dry_run=dry_run, progress=progress, session=session, crowd=crowd,
                         all_or_nothing=all_or_nothing, keep_outcomes=keep_outcomes, precheck=precheck,
                         repeats=True)


def _grant_staged(db: Any, qualification: str, rows: Iterable[Any], groups: staging.Groups, group: Optional[int],
                  refused: Dict[str, str], now: float, *, source: str, create: bool, description: Optional[str],
                  dry_run: bool, progress: Progress, session: Optional[Session], crowd: bool, all_or_nothing: bool,
                  keep_outcomes: bool, precheck: Optional[Callable[[Dict[str, str], Dict[str, int]], None]],
                  repeats: bool, distinct: bool = False) -> BulkReport:
    """The staged grant behind :func:`grant_rows` and :func:`set_values`: ``rows`` as
    :data:`staging.StagedRow` tuples (or, all of ``group``, as (given, ref, value): see
    ``Stage.add``), their workers already parsed (``refused`` the rest)."""
    report = BulkReport("grant", qualification, dry_run)

    def apply(stage: staging.Stage, conn: Any, user: str) -> None:
        qual_id = _qualification_id(conn, qualification, create, description)
        stage.create_workers()
        stage.apply_grant(qual_id, qualification, now, source, user)

    def changes(stage: staging.Stage, into: BulkReport, user: str, quiet: Sequence[str]) -> None:
        if len(groups.groups) == 1 and stage.plain_read is not None and not quiet:
            # Each outcome read was its own row (no repeats), with the one expiry and reason: the
            # granted and updated ones are the changes, in order, built in C (cheaper than reading
            # them again). Outcome rows: (given, status, worker_id, worker_name, old, new, error).
            _, expires, why = groups.groups[0]
            rows = [r for r in stage.plain_read if r[1] in _CHANGED]  # found workers only
            into.changes += map(_new_change, zip(
                repeat(now), repeat(qualification), map(itemgetter(2), rows), map(itemgetter(3), rows),
                repeat("grant"), map(itemgetter(4), rows), map(itemgetter(5), rows), repeat(expires), repeat(why),
                repeat(source), repeat(user), strict=False))
            return
        into.changes += [Change(now, qualification, wid, name, "grant", old, new, expires, why, source, user)
                         for wid, name, old, new, expires, why in stage.granted(quiet)]

    def check(conn: Any) -> None:
        if not create:
            _qualification_id(conn, qualification, create, description)

    call = bulk.Call(apply, ("failed", bulk.NOT_FOUND[False]), finish=changes,
                     prepare=lambda stage: stage.plan_new_workers())
    return bulk.run_staged(db, session, report, rows, groups, group, refused, call, check, dry_run, progress, crowd,
                           all_or_nothing, keep_outcomes, precheck, repeats=repeats, distinct=distinct)


@bulk.no_cyclic_gc
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
    source: str = "api",
    create: bool = False,
    description: Optional[str] = None,
    dry_run: bool = False,
    progress: Progress = None,
    session: Optional[Session] = None,
    crowd: bool = True,
) -> BulkReport:
    """Grant one qualification with a value per worker (same provider, expiry and reason), in
    one transaction; the other options as :func:`grant_rows`. A dict names each worker once, so
    the rows go to the stage as they are (no repeat to merge)."""
    now = time.time() if now is None else now
    expiry = expiry_from(expires_in, expires_at, now)
    if not all(type(v) is int and VALUE_MIN <= v <= VALUE_MAX for v in values.values()):
        for worker, value in values.items():  # the first bad one, named
            check_value(value, f"value for {worker}")
    groups = staging.Groups()
    group = groups.number(provider, expiry, reason)
    plain = plain_ids(values) if provider is None else None
    refused: Dict[str, str] = {}
    if plain is not None:  # every key a Mephisto id, each once: rows follow the dict's order
        rows: List[Tuple[str, Union[int, str], int]] = list(zip(*plain, values.values(), strict=True))
    else:
        refs, refused = parse_refs(values, provider)
        if len(refs) == len(values):  # every key parsed, none twice: refs follow the dict's order
            rows = [(r.given, r.lookup, v) for r, v in zip(refs, values.values(), strict=True)]
        else:
            value_of = {str(w).strip() if w is not None else "": v for w, v in values.items()}
            rows = [(r.given, r.lookup, value_of[r.given]) for r in refs]
    return _grant_staged(db, qualification, rows, groups, group, refused, now, source=source, create=create,
                         description=description, dry_run=dry_run, progress=progress, session=session, crowd=crowd,
                         all_or_nothing=False, keep_outcomes=True, precheck=None, repeats=False,
                         distinct=plain is not None and len(set(plain[1])) == len(plain[1]))


def grant(db: Any, qualification: str, workers: Workers, value: int = 1, **kwargs: Any) -> BulkReport:
    """Grant one qualification (same value) to many workers; see :func:`set_values` for options."""
    check_value(value)
    return set_values(db, qualification, {w: value for w in workers}, **kwargs)


@bulk.no_cyclic_gc
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

    def check(conn: Any) -> None:
        if names[0] not in qual_store.find_ids(conn, [names[0]]):
            _qualification_id(conn, names[0], create=False)  # raises the clear error

    def apply(stage: staging.Stage, conn: Any, user: str) -> None:
        qual_ids = qual_store.find_ids(conn, list(names))
        stage.apply_revoke([(n, qual_ids[n]) for n in names if n in qual_ids], action, now, source, user)

    def removed(stage: staging.Stage, into: BulkReport, user: str, quiet: Sequence[str]) -> None:
        into.changes += [Change(now, name, wid, wname, action, old, None, None, reason, source, user)
                         for name, wid, wname, old in stage.removed()]

    groups = staging.Groups()
    group = groups.number(provider, None, reason)
    rows = [(r.given, r.lookup, None) for r in refs]
    call = bulk.Call(apply, ("not held", None), revoke=True, finish=removed)
    return bulk.run_staged(db, session, report, rows, groups, group, refused, call, check, dry_run, progress, crowd,
                           repeats=False)


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
