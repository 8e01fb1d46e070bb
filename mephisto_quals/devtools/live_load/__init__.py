"""A live task run beside a bulk grant process on the same database: the harness behind
``tests/test_live_run.py`` and ``bench/bench_live_run.py``.

Process A (the caller of :func:`run_live`) runs a real Operator task run of ``mock_quals`` on
the mock architect, with onboarding on, an allowlist and a blocklist. A stream of mock workers
arrives one every 60-140 ms (seeded): each registers, takes the onboarding if admitted, gets a
unit, sends an act and submits it. Packets go to the mock server's websocket on its own
thread (no blocking sends), and answers are timestamped as the server receives them, so a
latency is what Mephisto took to answer, not the driver's pace. Any "database is locked"
Mephisto logs, a thread raises or a method of the run's LocalMephistoDB raises is recorded (a
call-through wrapper on the instance, behaviour unchanged; Mephisto 1.5.2 swallows some such
errors silently), as is an arrival left without an answer; every Mephisto write call is timed,
which shows how long Mephisto's writes waited for the lock.

Process B (``python -m mephisto_quals.devtools.live_load writer``, started by process A a
moment into the stream) runs the public CLI on the same file, one command after another:
``mephisto-quals import`` of a CSV of new grants to the allowlist, ``revoke`` of pre-granted
members from a file, and ``review --apply`` of rules on an earlier, finished run (rejected ->
blocklist, approved -> allowlist). It records each command's wall-clock window and the
``write_holds`` of every :class:`~mephisto_quals.store.Session` it opened on the database
(how long each write transaction held SQLite's write lock), whatever the grant path does
inside. A control step ``hold`` keeps one write transaction open for a given time instead.

Verdicts. Workers come from categories whose expected verdict flips at one command (imported
workers are refused, then admitted; revoked members admitted, then refused; reviewed workers
flip at the review) or never. A command's changes must become visible to everyone at one
instant inside its window: for each command there must be a commit time ``c`` in
``[start, end]`` with ``c > sent`` for every arrival that still saw the old list and
``c <= answered`` for every arrival that saw the new one. A list applied in several commits
(half visible) makes that impossible as soon as an arrival sees a later row's change before
another sees an earlier row's old state; any verdict outside both lists fails directly.
Arrivals of the flipping categories alternate between the head and the tail of their list,
where a chunked commit would part them.
"""

from __future__ import annotations

from mephisto_quals.devtools.live_load.cli import main
from mephisto_quals.devtools.live_load.harness import run_live
from mephisto_quals.devtools.live_load.population import CATEGORIES
from mephisto_quals.devtools.live_load.records import (
    ALLOW,
    BLOCK,
    ONBOARDING,
    ArrivalRecord,
    LiveResult,
    LoadConfig,
    StepRecord,
    latency_stats,
)

__all__ = [
    "LoadConfig",
    "ArrivalRecord",
    "StepRecord",
    "LiveResult",
    "run_live",
    "latency_stats",
    "main",
    "ALLOW",
    "BLOCK",
    "ONBOARDING",
    "CATEGORIES",
]
