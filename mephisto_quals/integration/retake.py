"""The retake writer: clears a failed onboarding whose retake delay has passed, off the gate.

The gate (``integration.gate``) only decides. When its yes relies on a due retake, the
worker pool's call hands the clearing here and waits for this one commit, because
Mephisto's onboarding check reads ``granted_qualifications`` right after the gate. The
clearing runs on ONE writer thread (so concurrent arrivals of a worker share one ticket and
never contend with each other), on its own connection with a short busy timeout (never
Mephisto's connection or its lock), re-checks that the failure it clears is still the one
that became due, deletes the onboarding result and its failed list, and audits both
(action ``reset-onboarding``, source ``retake-delay``) in the same transaction.

Once committed, the same clearing goes to the worker's crowd provider where it has one
(MTurk; Prolific on Mephisto 1.5.2), as Mephisto's ``OnboardingRequired.clear_onboarding``
does: ``revoke_crowd_qualification`` for each name cleared, on a second thread, so a slow
provider never holds up a registration. A crowd failure is logged; the local clearing stands.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from mephisto_quals.store import Session
from mephisto_quals.store import audit as audit_store
from mephisto_quals.store import grants as grant_store
from mephisto_quals.store import qualifications as qual_store
from mephisto_quals.store.audit import Change, os_user

__all__ = ["Retake", "SOURCE", "BUSY_TIMEOUT", "WAIT", "clear", "has_crowd_side", "drain"]

logger = logging.getLogger("mephisto_quals")

#: The audit source of a clearing made because a retake delay passed.
SOURCE = "retake-delay"
#: Seconds the writer's connection waits for SQLite's write lock per attempt.
BUSY_TIMEOUT = 2.0
#: Seconds a registration waits for its clearing to commit before refusing the worker this once.
WAIT = 10.0

_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mephisto-quals-retake")
_crowd = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mephisto-quals-crowd")
_tickets: Dict[Tuple[str, int, Tuple[str, ...]], Future[Tuple[bool, List[str]]]] = {}
_tickets_lock = threading.RLock()  # a done callback may run inside it


@dataclass(frozen=True)
class Retake:
    """A failed onboarding that may be retaken: its names, the delay, and when it failed (unix s)."""

    onboarding: str
    failed: str
    after: float
    failed_at: float


def has_crowd_side(worker: Any) -> bool:
    """Whether a Mephisto worker's provider keeps qualifications of its own (MTurk, Prolific).

    True when the worker's class overrides ``Worker``'s no-op crowd grant or revoke.
    """
    from mephisto.data_model.worker import Worker

    cls = type(worker)
    return bool(
        cls.grant_crowd_qualification is not Worker.grant_crowd_qualification
        or cls.revoke_crowd_qualification is not Worker.revoke_crowd_qualification
    )


def _clear(db: Any, worker_id: int, worker_name: str, retakes: Sequence[Retake], now: float) -> Tuple[bool, List[str]]:
    """Delete the due failures in one audited transaction: (all still due or gone, names cleared)."""
    cleared: List[str] = []
    admissible = True
    with Session.open(db, timeout=BUSY_TIMEOUT) as s, s.transaction() as conn:
        names = list(dict.fromkeys(n for r in retakes for n in (r.onboarding, r.failed)))
        ids = qual_store.find_ids(conn, names)
        deletes, changes = [], []
        user = os_user()
        for r in retakes:
            failed_at = grant_store.failed_at(conn, r.failed, worker_id)
            if failed_at is None:
                continue  # another ticket cleared it first
            if failed_at + r.after > now:
                admissible = False  # failed again since the gate looked
                continue
            reason = f"retake delay of {r.after:.0f}s passed"
            for name in (r.onboarding, r.failed):
                held = grant_store.current(conn, ids[name], [worker_id]).get(worker_id) if name in ids else None
                if held is None or name in cleared:
                    continue
                deletes.append((ids[name], worker_id))
                changes.append(
                    Change(
                        now,
                        name,
                        worker_id,
                        worker_name,
                        "reset-onboarding",
                        held.value,
                        None,
                        None,
                        reason,
                        SOURCE,
                        user,
                    )
                )
                cleared.append(name)
        grant_store.delete(conn, deletes)
        audit_store.record(conn, changes)
    return admissible, cleared


def _revoke_on_crowd(worker: Any, names: Sequence[str]) -> None:
    for name in names:
        try:
            worker.revoke_crowd_qualification(name)
        except Exception as e:  # the local clearing stands; the provider is told next time
            logger.warning("mephisto-quals: could not revoke '%s' from %s on its provider: %s", name, worker.db_id, e)


def clear(worker: Any, retakes: Sequence[Retake], now: float) -> bool:
    """Have the writer clear ``retakes`` for ``worker`` and wait for the commit (at most ``WAIT`` s).

    True when the worker may go on; False (worker refused this once) when the commit did
    not come in time or the worker failed again meanwhile.
    """
    key = (str(getattr(worker.db, "db_path", id(worker.db))), int(worker.db_id), tuple(r.failed for r in retakes))
    with _tickets_lock:
        ticket = _tickets.get(key)
        if ticket is None:
            ticket = _writer.submit(_clear, worker.db, int(worker.db_id), worker.worker_name, list(retakes), now)
            _tickets[key] = ticket
            ticket.add_done_callback(lambda _f: _forget(key, _f))
    try:
        admissible, cleared = ticket.result(timeout=WAIT)
    except Exception as e:  # busy past WAIT, or the write failed: the DB still says "failed"
        logger.warning("mephisto-quals: retake of %s not cleared yet (%s); refused this time", worker.db_id, e)
        return False
    if cleared:
        logger.info("mephisto-quals: worker %s may retake onboarding (%s cleared)", worker.db_id, ", ".join(cleared))
        if has_crowd_side(worker):
            _crowd.submit(_revoke_on_crowd, worker, cleared)
    return admissible


def _forget(key: Tuple[str, int, Tuple[str, ...]], ticket: Future[Tuple[bool, List[str]]]) -> None:
    with _tickets_lock:
        if _tickets.get(key) is ticket:
            del _tickets[key]


def drain(timeout: float = 30.0) -> None:
    """Wait until every clearing and crowd revoke handed over so far has run (for tests and shutdown)."""
    for pool in (_writer, _crowd):
        pool.submit(lambda: None).result(timeout=timeout)
