"""What a bulk operation did, per worker: the report every admin and provider call returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = ["WorkerOutcome", "OutcomeCounts", "BulkReport"]


@dataclass(slots=True)
class WorkerOutcome:
    """What happened to one worker: status is granted, updated, unchanged, revoked, not held or failed."""

    worker: str
    status: str
    worker_id: Optional[int] = None
    worker_name: Optional[str] = None
    old_value: Optional[int] = None
    new_value: Optional[int] = None
    error: Optional[str] = None
    qualification: Optional[str] = None  # set where one report spans several (prune)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


class OutcomeCounts:
    """Shared by reports whose ``outcomes`` each have a ``status`` and an ``ok``."""

    outcomes: List[Any]

    @property
    def failed(self) -> List[Any]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> Dict[str, int]:
        tally: Counter = Counter(getattr(self, "tally", None) or {})
        return dict(Counter(o.status for o in self.outcomes) + tally)


@dataclass
class BulkReport(OutcomeCounts):
    """Per-worker outcomes of one bulk operation, and a summary."""

    action: str
    qualification: str
    dry_run: bool = False
    outcomes: List[WorkerOutcome] = field(default_factory=list)
    #: The audited changes it made (store.audit.Change), for follow-ups such as the crowd sync.
    changes: List[Any] = field(default_factory=list, repr=False, compare=False)
    #: Provider calls that failed after the local change committed (admin.crowd).
    crowd_errors: List[str] = field(default_factory=list)
    #: worker_id -> provider type of changed workers whose provider may have a crowd side (the
    #: crowd sync reads it instead of the database); None: unknown, look them up.
    provider_types: Optional[Dict[int, str]] = field(default=None, compare=False, repr=False)
    #: Outcomes counted but not kept (a streamed import keeps only its failures).
    tally: Counter = field(default_factory=Counter, compare=False, repr=False)
    #: Seconds this call held SQLite's write lock (0 inside a caller's transaction: the caller's hold).
    lock_held: float = field(default=0.0, compare=False)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts().items())) or "no workers"
        prefix = "dry run, nothing written: " if self.dry_run else ""
        crowd = f"; {len(self.crowd_errors)} provider call(s) failed" if self.crowd_errors else ""
        return f"{prefix}{self.action} '{self.qualification}': {counts}{crowd}"
