"""What one live run is given and what it records: the configuration, each arrival's and each of
process B's commands' records, the run's result (JSON both ways) and the latency figures."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

ALLOW = "live_allow"
BLOCK = "live_block"
ONBOARDING = "live_onboarding"


@dataclass
class LoadConfig:
    """Sizes and pacing of one live run beside the grant process."""

    data_dir: str
    grants: int = 20_000  # rows of the imported CSV (new workers)
    revokes: int = 10_000  # pre-granted allowlist members revoked from a file
    earlier_workers: int = 20  # workers of the earlier, finished run (half rejected, half approved)
    stable: int = 200
    arrivals: int = 60  # arrivals at least (more while process B still runs)
    seed: int = 7
    writer: bool = True  # False: the same stream with no process B
    hold_lock: Optional[float] = None  # control: B only holds one write transaction this long
    writer_delay: float = 1.0  # seconds into the stream when process B starts
    gap: float = 0.8  # seconds between B's commands
    tail: float = 1.0  # arrivals go on this long after B exits
    interval: Tuple[float, float] = (0.06, 0.14)
    answer_timeout: float = 15.0
    writer_timeout: float = 600.0


@dataclass
class ArrivalRecord:
    """One worker's arrival: verdict, timestamps (unix seconds) and Mephisto's latencies."""

    worker: str
    category: str
    sent: float = 0.0
    answered: Optional[float] = None
    verdict: str = "pending"  # admitted / refused / error
    detail: str = ""
    onboarding_latency: Optional[float] = None
    got_unit: bool = False
    submitted: bool = False
    completed: bool = False  # Mephisto marked the submitted unit's agent completed
    agent_id: Optional[str] = None

    @property
    def register_latency(self) -> Optional[float]:
        return None if self.answered is None else self.answered - self.sent

    @property
    def accept_latency(self) -> Optional[float]:
        """Mephisto's time to answer this worker: register, plus the onboarding submit if admitted."""
        if self.register_latency is None:
            return None
        return self.register_latency + (self.onboarding_latency or 0.0)


@dataclass
class StepRecord:
    """One command of process B: its window, exit code, write-lock holds and output tail."""

    name: str
    started: float
    ended: float
    exit_code: int
    holds: List[float]
    output: str = ""

    @property
    def longest_hold(self) -> float:
        return max(self.holds, default=0.0)


@dataclass
class LiveResult:
    """Everything one run recorded, and what was wrong with it (``problems``, empty when right)."""

    config: Dict[str, Any]
    arrivals: List[ArrivalRecord] = field(default_factory=list)
    steps: List[StepRecord] = field(default_factory=list)
    locked: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    mephisto_writes: List[Tuple[str, float]] = field(default_factory=list)
    counts: Dict[str, int] = field(default_factory=dict)
    expected_counts: Dict[str, int] = field(default_factory=dict)
    commit_windows: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)
    writer_started: Optional[float] = None
    phases: Dict[str, float] = field(default_factory=dict)  # seconds each part of the run took

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        data["latency"] = latency_stats(self.arrivals)
        return data

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> LiveResult:
        data = dict(data)
        data.pop("latency", None)
        data["arrivals"] = [ArrivalRecord(**a) for a in data["arrivals"]]
        data["steps"] = [StepRecord(**s) for s in data["steps"]]
        data["mephisto_writes"] = [tuple(w) for w in data["mephisto_writes"]]
        data["commit_windows"] = {k: tuple(v) for k, v in data["commit_windows"].items()}
        return cls(**data)

    def window(self) -> Optional[Tuple[float, float]]:
        """From the first command's start to the last one's end (None without process B)."""
        if not self.steps:
            return None
        return self.steps[0].started, self.steps[-1].ended


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def latency_stats(arrivals: Sequence[ArrivalRecord], since: Optional[float] = None,
                  until: Optional[float] = None) -> Dict[str, float]:
    """Median, p95 and worst accept latency (seconds) of the answered arrivals, optionally of
    those sent within ``[since, until]``."""
    values = [a.accept_latency for a in arrivals if a.accept_latency is not None
              and (since is None or a.sent >= since) and (until is None or a.sent <= until)]
    return {"n": len(values), "median": _percentile(values, 0.5), "p95": _percentile(values, 0.95),
            "worst": max(values, default=float("nan"))}
