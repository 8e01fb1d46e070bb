"""How a staged bulk call runs: stage the rows, refuse what cannot be done, apply under the lock.

Grants and revokes (:mod:`mephisto_quals.admin.grants`) share this frame: the rows go into a
:class:`mephisto_quals.store.staging.Stage` and their workers are looked up before the write
lock; refusals are decided there (all of them, with ``all_or_nothing``); then one transaction
applies the call's writes; then the outcomes are read onto the report and the crowd side is
told. A call says what it writes and how each worker reads in the report (:class:`Call`).
"""

from __future__ import annotations

import functools
import gc
from itertools import starmap
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, TypeVar

from mephisto_quals.admin import crowd as crowd_sync
from mephisto_quals.admin.reports import BulkReport, WorkerOutcome
from mephisto_quals.errors import RowsRefused
from mephisto_quals.store import Session, session_for, staging
from mephisto_quals.store.audit import os_user

__all__ = ["Call", "run_staged", "parts", "NOT_FOUND", "NO_CROWD", "SHOWN_REFUSALS", "no_cyclic_gc"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
Progress = Optional[Callable[[int], None]]

#: Refusals listed one by one at most (the count is always given).
SHOWN_REFUSALS = 200
#: Providers with no crowd side to tell about a grant (admin.crowd does nothing for them).
NO_CROWD = ("mock", "inhouse")


def parts(rows: Iterable[T], size: int = staging.STAGE_PART) -> Iterator[List[T]]:
    """Consecutive lists of up to ``size`` items of any iterable (a generator is read once)."""
    part: List[T] = []
    for row in rows:
        part.append(row)
        if len(part) >= size:
            yield part
            part = []
    if part:
        yield part


#: Why a worker that was not found cannot be granted or revoked, by how they were named (by id?).
NOT_FOUND = {True: "no Mephisto worker has this id", False: "Mephisto has never seen this worker"}


class Call(NamedTuple):
    """What one staged bulk call does under the lock and how its report reads."""

    #: (stage, connection, OS user): the writes, inside the transaction.
    apply: Callable[[staging.Stage, Any, str], None]
    #: (status, error) of a worker named by provider name whom Mephisto does not know.
    missing: Tuple[str, Optional[str]]
    #: Outcomes read as a revoke's (no new value; a later row naming the same worker finds nothing left).
    revoke: bool = False
    #: (stage, report, OS user, quiet providers): what else the report takes from the stage once
    #: applied (the changes: those of the quiet providers may be left out).
    finish: Callable[[staging.Stage, BulkReport, str, Sequence[str]], None] = lambda stage, report, user, quiet: None
    #: (stage): work the call can do before the write lock, once the workers are looked up.
    prepare: Callable[[staging.Stage], None] = lambda stage: None


def no_cyclic_gc(fn: F) -> F:
    """Python's cycle collector off during the call (restored after): a bulk call makes a few small
    acyclic objects per worker, and with Mephisto loaded each full collection walks millions of
    objects; measured, it was half of a 10,000-worker grant's time."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return call  # type: ignore[return-value]


@no_cyclic_gc
def run_staged(
    db: Any,
    session: Optional[Session],
    report: BulkReport,
    rows: Iterable[Tuple[Any, ...]],
    groups: staging.Groups,
    group: Optional[int],
    refused: Dict[str, str],
    call: Call,
    check: Callable[[Any], Any],
    dry_run: bool,
    progress: Progress,
    crowd: bool,
    all_or_nothing: bool = False,
    keep_outcomes: bool = True,
    precheck: Optional[Callable[[Dict[str, str], Dict[str, int]], None]] = None,
    repeats: bool = True,
    distinct: bool = False,
) -> BulkReport:
    """Stage ``rows`` and look their workers up before the write lock; refuse what cannot be
    done (everything, with ``all_or_nothing``); then ``call.apply`` in one transaction (the
    caller's, if given; a dry run rolls back); then the outcomes, and the crowd side.

    ``group``: every row is of that group, given as (given, ref, value) (see ``Stage.add``).
    ``check(conn)`` raises for what makes the whole call impossible (an unknown qualification);
    ``refused`` fills while ``rows`` is read (malformed worker names). ``repeats=False``
    promises each worker is given once (a faster stage); ``distinct``, that no two rows name one
    worker (different Mephisto ids: no repeats to look for).
    """
    inside = session is not None and session.in_transaction
    if dry_run and inside:
        raise ValueError("dry_run inside a caller's transaction: roll the caller's transaction back instead")
    user = os_user()
    with session_for(db, session) as s:
        check(s.conn)
        stage = staging.Stage(s.conn, groups, repeats, distinct)
        try:
            for part in parts(rows):
                stage.add(part, group)
                if progress:
                    progress(len(part))
            stage.resolve()
            call.prepare(stage)
            if all_or_nothing:  # refused: malformed names, unknown Mephisto ids, differing repeats
                failures = dict(refused)
                lines: Dict[str, int] = {}
                known = [(given, NOT_FOUND[True], line) for given, line in stage.unknown_ids()]
                known += [(given, f"also on line {first} with a different value, expiry or reason", line)
                          for given, first, line in stage.conflicts(SHOWN_REFUSALS)]
                for given, why, line in known:
                    failures[given] = why
                    if line is not None:
                        lines[given] = line
                if precheck is not None:
                    precheck(failures, lines)
                if failures:
                    raise RowsRefused(failures, lines)
            report.outcomes += [WorkerOutcome(w, "failed", error=why) for w, why in refused.items()]

            def collect() -> None:
                missing_by_id = ("failed", NOT_FOUND[True])
                if keep_outcomes and not stage.maybe_repeats:  # each row its own outcome: set-based
                    report.outcomes += starmap(WorkerOutcome, stage.plain_outcomes(call.revoke, call.missing,
                                                                                   missing_by_id))
                else:
                    counted = None if keep_outcomes else stage.tally(NO_CROWD)
                    if counted is not None:
                        report.tally.update(counted)
                    for o in stage.outcomes(call.revoke, skip=() if counted is None else NO_CROWD):
                        status, error = (missing_by_id if o.by_id else call.missing) if o.status == "missing" else \
                            (o.status, None)
                        if not keep_outcomes and error is None:
                            report.tally[status] += 1
                            continue
                        found = o.status != "missing"
                        report.outcomes.append(WorkerOutcome(o.given, status, o.worker_id, o.worker_name, o.old_value,
                                                             o.new_value if found and not call.revoke else None,
                                                             error))
                call.finish(stage, report, user, () if keep_outcomes else NO_CROWD)
                report.provider_types = stage.provider_types(NO_CROWD)

            holds = len(s.write_holds)
            with s.transaction(rollback=dry_run) as conn:
                call.apply(stage, conn, user)
                if dry_run or inside:  # TEMP rows roll back with the transaction: read them first
                    collect()
            if not (dry_run or inside):
                collect()
            report.lock_held = sum(s.write_holds[holds:])
        finally:
            if session is not None:  # the caller's connection goes on; our own closes, TEMP tables with it
                stage.drop()
    if crowd and not dry_run and not inside:
        crowd_sync.sync_report(db, report)
    return report
