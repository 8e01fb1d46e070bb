"""The crowd side of a grant: tell the worker's provider what was just committed locally.

Mephisto's ``Worker.grant_qualification`` / ``revoke_qualification`` write the local row and
then call ``grant_crowd_qualification(name, value)`` / ``revoke_crowd_qualification(name)``
(unless ``skip_crowd``); ``OnboardingRequired.clear_onboarding`` revokes the onboarding and
its failed list the same way. :func:`sync_changes` does that for a committed set of our
changes, with Mephisto's own ``Worker`` objects, so the provider side behaves as Mephisto's:

- ``mturk`` / ``mturk_sandbox``: a grant (or a changed value) associates the MTurk
  qualification type Mephisto maps the name to (creating it when Mephisto has no mapping,
  as Mephisto does); a revoke or onboarding reset disassociates it, and does nothing for a
  name Mephisto never put on MTurk.
- ``prolific`` (Mephisto 1.5.2): Mephisto's Prolific worker updates its participant groups.
- ``mock``, ``inhouse``: no crowd side, nothing is sent.

A provider failure is reported per worker and never undoes the local change (Mephisto
also keeps its local write when the crowd call fails).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from mephisto_quals.admin.reports import BulkReport
from mephisto_quals.integration.retake import has_crowd_side
from mephisto_quals.store import session_for
from mephisto_quals.store.audit import Change
from mephisto_quals.store.workers import provider_types

__all__ = ["CrowdFailure", "CROWD_PROVIDERS", "GRANTING", "REVOKING", "sync_changes", "sync_report"]

logger = logging.getLogger("mephisto_quals")

#: Provider types whose workers can have a crowd side (checked again on the Worker class).
CROWD_PROVIDERS = frozenset({"mturk", "mturk_sandbox", "prolific"})
#: Audit actions that grant on the provider, and those that revoke there.
GRANTING = frozenset({"grant"})
REVOKING = frozenset({"revoke", "reset-onboarding"})


@dataclass(frozen=True)
class CrowdFailure:
    """One provider call that failed after the local change committed."""

    worker_id: int
    worker_name: str
    provider: str
    qualification: str
    action: str
    error: str

    def explain(self) -> str:
        verb = "grant" if self.action in GRANTING else "revoke"
        return (
            f"{self.provider}: could not {verb} '{self.qualification}' for {self.worker_name}: {self.error} "
            "(the local change stands)"
        )


def _mephisto_db(db: Any) -> Any:
    """A LocalMephistoDB for ``db`` (the caller's own object when it is one)."""
    if hasattr(db, "db_path"):
        return db
    from mephisto.abstractions.databases.local_database import LocalMephistoDB

    return LocalMephistoDB(database_path=str(db))


def sync_changes(db: Any, changes: Sequence[Change], known: Optional[Dict[int, str]] = None) -> List[CrowdFailure]:
    """Send committed ``changes`` to each worker's crowd provider; returns what failed.

    Call only after the local transaction committed. Workers on providers without a crowd
    side are skipped without loading anything from Mephisto. ``known`` (worker_id -> provider
    type, from the call that made the changes; workers missing from it have no crowd side)
    saves reading the provider types again.
    """
    if known is not None and not known:  # no changed worker is on a provider with a crowd side
        return []
    relevant = [c for c in changes if c.action in GRANTING | REVOKING]
    if not relevant:
        return []
    if known is not None:
        providers = known
    else:
        with session_for(db, None, readonly=True) as s:
            providers = provider_types(s.conn, [c.worker_id for c in relevant])
    relevant = [c for c in relevant if providers.get(int(c.worker_id)) in CROWD_PROVIDERS]
    if not relevant:
        return []
    from mephisto.data_model.worker import Worker

    mdb = _mephisto_db(db)
    workers: Dict[int, Any] = {}
    failures: List[CrowdFailure] = []
    for c in relevant:
        wid = int(c.worker_id)
        provider = providers[wid]
        try:
            if wid not in workers:
                workers[wid] = Worker.get(mdb, str(wid))
            worker = workers[wid]
            if not has_crowd_side(worker):
                continue
            if c.action in GRANTING:
                worker.grant_crowd_qualification(c.qualification, c.new_value if c.new_value is not None else 1)
            else:
                worker.revoke_crowd_qualification(c.qualification)
        except Exception as e:  # per worker: the rest still go out
            error = str(e) or repr(e)
            failure = CrowdFailure(wid, c.worker_name or str(wid), provider, c.qualification, c.action, error)
            logger.warning("mephisto-quals: %s", failure.explain())
            failures.append(failure)
    return failures


def sync_report(db: Any, report: BulkReport) -> List[CrowdFailure]:
    """Sync what ``report``'s operation committed; failures go on the report and its outcomes.

    Callers that ran a grant inside their own transaction (``session=``) call this after
    their commit; ``admin.grants`` calls it itself otherwise.
    """
    failures = sync_changes(db, report.changes, report.provider_types)
    for f in failures:
        report.crowd_errors.append(f.explain())
        for o in report.outcomes:
            if o.worker_id == f.worker_id and o.error is None:
                o.error = f.explain()
    return failures
