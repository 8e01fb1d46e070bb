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

import argparse
import asyncio
import contextlib
import csv
import io
import json
import logging
import math
import os
import random
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

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
]

ALLOW = "live_allow"
BLOCK = "live_block"
ONBOARDING = "live_onboarding"
LOCKED = ("database is locked", "database table is locked")
#: Mephisto's database methods that write (timed on the run's LocalMephistoDB instance).
_WRITE_PREFIXES = ("new_", "update_", "grant_", "revoke_", "make_", "delete_", "clear_")

#: Category -> the step at which its members' expected verdict flips (None: never), and their
#: verdict before it.
CATEGORIES: Dict[str, Tuple[Optional[str], bool]] = {
    "stable": (None, True),  # allowlisted throughout
    "outsider": (None, False),  # never allowlisted
    "blocked": (None, False),  # allowlisted and blocklisted throughout
    "imported": ("import", False),  # in the CSV: admitted once the import commits
    "revoked": ("revoke", True),  # pre-granted, in the revoke file
    "rejected": ("review", True),  # allowlisted, rejected in the earlier run: blocklisted by review
    "approved": ("review", False),  # approved in the earlier run: allowlisted by review
}
#: The order arrivals cycle through the categories (flipping ones more often).
CYCLE = ("imported", "revoked", "stable", "rejected", "imported", "outsider", "revoked", "approved", "blocked")


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


# ----------------------------------------------------------------------------- the population

def _names(prefix: str, n: int) -> List[str]:
    return [f"{prefix}{i:06d}" for i in range(n)]


@dataclass
class _Population:
    stable: List[str]
    outsider: List[str]
    blocked: List[str]
    imported: List[str]
    revoked: List[str]
    rejected: List[str]
    approved: List[str]

    @classmethod
    def of(cls, config: LoadConfig) -> _Population:
        half = config.earlier_workers // 2
        return cls(_names("st", config.stable), _names("out", config.stable), _names("bl", 50),
                   _names("imp", config.grants), _names("rv", config.revokes), _names("rj", half),
                   _names("ap", config.earlier_workers - half))

    def expected_counts(self, steps: Sequence[str]) -> Dict[str, int]:
        allow = len(self.stable) + len(self.blocked) + len(self.rejected) + len(self.revoked)
        block = len(self.blocked)
        if "import" in steps:
            allow += len(self.imported)
        if "revoke" in steps:
            allow -= len(self.revoked)
        if "review" in steps:
            allow += len(self.approved)
            block += len(self.rejected)
        if "hold" in steps:
            allow += 1  # the control's one grant
        return {ALLOW: allow, BLOCK: block}


def _interleave(names: Sequence[str]) -> Iterator[str]:
    """Head, tail, second, second to last, ...: both ends of a list that commits in order."""
    lo, hi = 0, len(names) - 1
    while lo <= hi:
        yield names[lo]
        if hi != lo:
            yield names[hi]
        lo, hi = lo + 1, hi - 1


def _arrival_plan(pop: _Population) -> Iterator[Tuple[str, str]]:
    """(category, worker) for each arrival, cycling through the categories until all run out."""
    sources = {c: _interleave(getattr(pop, c)) for c in CATEGORIES}
    while sources:
        for category in CYCLE:
            if category not in sources:
                continue
            name = next(sources[category], None)
            if name is None:
                del sources[category]
                continue
            yield category, name


# ----------------------------------------------------------------------------- capture in process A

class _LockWatch(logging.Handler):
    """Records every log record (any logger) that mentions a locked database."""

    def __init__(self, sink: List[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        except Exception:  # a record that cannot format is not ours to report
            return
        if any(s in text for s in LOCKED):
            self.sink.append(f"log {record.name}: {text.strip().splitlines()[-1]}")


@contextlib.contextmanager
def _capture_locks(sink: List[str]) -> Iterator[None]:
    """Watch logging and uncaught thread exceptions for "database is locked" while inside."""
    handler = _LockWatch(sink)
    root = logging.getLogger()
    root.addHandler(handler)
    original_hook = threading.excepthook

    def hook(args: Any) -> None:
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        if any(s in text for s in LOCKED):
            sink.append(f"thread {getattr(args.thread, 'name', '?')}: {args.exc_value}")
        original_hook(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = original_hook
        root.removeHandler(handler)


def _watch_db(db: Any, writes: List[Tuple[str, float]], locked: List[str]) -> None:
    """Wrap the instance's public methods with a watcher that calls straight through: it times
    each write and records any "database is locked" a call raises (Mephisto 1.5.2 swallows some
    of them without a log line), then re-raises it."""
    for name in dir(db):
        if name.startswith("_") or not name.startswith(_WRITE_PREFIXES + ("find_", "get_")):
            continue
        method = getattr(db, name, None)
        if not callable(method):
            continue

        def watched(*args: Any, _method: Callable[..., Any] = method, _name: str = name, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            except Exception as e:
                if any(s in str(e) for s in LOCKED):
                    locked.append(f"Mephisto's {_name} raised: {e}")
                raise
            finally:
                if _name.startswith(_WRITE_PREFIXES):
                    writes.append((_name, time.perf_counter() - started))

        setattr(db, name, watched)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Answers(Dict[str, Any]):
    """The mock server's answers by request id (filed on the server's thread), with their arrival
    time, waking the coroutine that waits for each."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.times: Dict[str, float] = {}
        self.waiters: Dict[str, asyncio.Future[None]] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.times[key] = time.time()
        super().__setitem__(key, value)
        waiter = self.waiters.get(key)
        if waiter is not None:
            self.loop.call_soon_threadsafe(_wake, waiter)


#: What a request got: when it was sent, when the answer came (unix seconds), the answer (None: none came).
Answer = Tuple[float, float, Optional[Dict[str, Any]]]


class _Crowd:
    """Sends mock workers' packets without blocking and awaits Mephisto's answers, on the
    Operator's own event loop."""

    def __init__(self, operator: Any, task_run_id: str, timeout: float) -> None:
        from mephisto_quals.devtools import mock_crowd

        self.operator = operator
        self.loop: asyncio.AbstractEventLoop = operator._event_loop
        self.server = operator.get_running_task_runs()[task_run_id].architect.server
        self.timeout = timeout
        mock_crowd._install_recorder()
        self.answers = _Answers(self.loop)
        setattr(self.server, mock_crowd._ANSWERS_ATTR, self.answers)
        if not operator._run_loop_until(lambda: len(self.server.subs) > 0, timeout):
            raise TimeoutError("the mock server's channel did not come up")
        operator._run_loop_until(lambda: False, 1.0)  # let the channel settle

    def send(self, packet: Dict[str, Any]) -> float:
        """Queue a packet on the server's thread (thread-safe); returns when it was sent."""
        text = json.dumps(packet)
        sub = list(self.server.subs.values())[0]
        self.server.running_instance.add_callback(sub.write_message, text)
        return time.time()

    async def request(self, packet: Dict[str, Any], request_id: str) -> Answer:
        """Send and wait for the answer: (sent, answered, answer); answer None on timeout."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.answers.waiters[request_id] = waiter
        sent = self.send(packet)
        try:
            if request_id not in self.answers:
                try:
                    await asyncio.wait_for(waiter, self.timeout)
                except asyncio.TimeoutError:
                    return sent, time.time(), None
        finally:
            del self.answers.waiters[request_id]
        return sent, self.answers.times[request_id], self.answers[request_id]

    async def register(self, worker: str) -> Answer:
        from mephisto.data_model.packet import PACKET_TYPE_REGISTER_AGENT

        rid = f"register-{uuid.uuid4()}"
        return await self.request({"packet_type": PACKET_TYPE_REGISTER_AGENT, "subject_id": "MockServer",
                                   "data": {"request_id": rid, "provider_data": {
                                       "worker_name": worker, "agent_registration_id": rid}}}, rid)

    async def onboard(self, agent_id: str, passed: bool) -> Answer:
        from mephisto.data_model.packet import PACKET_TYPE_SUBMIT_ONBOARDING

        rid = f"onboard-{uuid.uuid4()}"
        return await self.request({"packet_type": PACKET_TYPE_SUBMIT_ONBOARDING, "subject_id": agent_id,
                                   "data": {"request_id": rid, "onboarding_data": {"should_pass": passed}}}, rid)

    def work_and_submit(self, agent_id: str) -> None:
        """The worker's act (the mock runner waits for one) and the unit's submission."""
        from mephisto.data_model.packet import PACKET_TYPE_MEPHISTO_BOUND_LIVE_UPDATE, PACKET_TYPE_SUBMIT_UNIT

        self.send({"packet_type": PACKET_TYPE_MEPHISTO_BOUND_LIVE_UPDATE, "subject_id": agent_id,
                   "data": {"text": "done"}})
        self.send({"packet_type": PACKET_TYPE_SUBMIT_UNIT, "subject_id": agent_id, "data": {"completed": True}})


async def _flow(crowd: _Crowd, rec: ArrivalRecord, rng: random.Random, onboarding: bool) -> Optional[str]:
    """One worker from arrival to submission; returns the agent id of their unit, if any."""
    from mephisto.operations.datatypes import WorkerFailureReasons

    rec.sent, answered, answer = await crowd.register(rec.worker)
    if answer is None:
        rec.verdict, rec.detail = "error", "no answer to register"
        return None
    rec.answered = answered
    agent_id = answer.get("agent_id")
    failure = answer.get("failure_reason")
    if failure == WorkerFailureReasons.NOT_QUALIFIED:
        rec.verdict = "refused"
        return None
    if not agent_id or (onboarding and not str(agent_id).startswith("onboarding")):
        rec.verdict, rec.detail = "error", f"unexpected answer to register: {answer}"
        return None
    rec.verdict = "admitted"
    if onboarding:
        await asyncio.sleep(rng.uniform(0.05, 0.15))  # the worker does the onboarding
        sent, answered, answer = await crowd.onboard(agent_id, passed=True)
        if answer is None:
            rec.detail = "no answer to the onboarding submission"
            return None
        rec.onboarding_latency = answered - sent
        agent_id = answer.get("agent_id")
        if not agent_id or str(agent_id).startswith("onboarding"):
            rec.detail = f"admitted, passed onboarding, but got no unit: {answer}"
            return None
    rec.got_unit = True
    await asyncio.sleep(rng.uniform(0.05, 0.15))  # the worker does the task
    crowd.work_and_submit(agent_id)
    rec.submitted = True
    rec.agent_id = str(agent_id)
    return rec.agent_id


# ----------------------------------------------------------------------------- set-up in process A

def _mock_config(requester_name: str, task_name: str, num_assignments: int, quals: Optional[Dict[str, Any]] = None,
                 **blueprint: Any) -> Any:
    from mephisto.abstractions.architects.mock_architect import MockArchitectArgs
    from mephisto.abstractions.providers.mock.mock_provider import MockProviderArgs
    from mephisto.data_model.task_run import TaskRunArgs
    from mephisto.operations.hydra_config import MephistoConfig
    from omegaconf import OmegaConf

    from mephisto_quals.devtools.mock_crowd import free_port
    from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS

    args_cls = QUALS_BLUEPRINTS["mock_quals"].ArgsClass
    config = MephistoConfig(
        blueprint=args_cls(num_assignments=num_assignments, timeout_time=30, is_concurrent=False, **blueprint),
        provider=MockProviderArgs(requester_name=requester_name),
        architect=MockArchitectArgs(should_run_server=True, port=str(free_port())),
        task=TaskRunArgs(task_name=task_name, task_title="title", task_description="description",
                         task_reward=0.3, task_tags="test"),
        log_level="warning",
    )
    cfg = OmegaConf.structured(config)
    if quals:
        cfg.blueprint.quals = OmegaConf.merge(cfg.blueprint.quals, quals)
    return cfg


def _launch(operator: Any, cfg: Any) -> str:
    from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS

    return str(operator.launch_task_run(cfg, QUALS_BLUEPRINTS["mock_quals"].SharedStateClass()))


def _earlier_run(db: Any, operator: Any, requester: str, pop: _Population, timeout: float) -> str:
    """A finished earlier run: its workers submit a unit each, then half are rejected, half approved."""
    from mephisto.data_model.agent import Agent

    workers = [("rejected", w) for w in pop.rejected] + [("approved", w) for w in pop.approved]
    run_id = _launch(operator, _mock_config(requester, "live-earlier", len(workers) // 2 + 1))
    crowd = _Crowd(operator, run_id, timeout)
    rng = random.Random(0)

    async def one(i: int, category: str, name: str) -> Tuple[str, Optional[str]]:
        await asyncio.sleep(0.08 * i)
        return category, await _flow(crowd, ArrivalRecord(name, category), rng, onboarding=False)

    async def drive() -> List[Tuple[str, Optional[str]]]:
        return list(await asyncio.gather(*(one(i, c, n) for i, (c, n) in enumerate(workers))))

    agents = crowd.loop.run_until_complete(drive())
    if any(a is None for _, a in agents):
        raise RuntimeError(f"an earlier-run worker got no unit: {agents}")
    done = lambda: all(Agent.get(db, a).get_status() == "completed" for _, a in agents)  # noqa: E731
    if not operator._run_loop_until(done, timeout):
        raise RuntimeError("the earlier run's units were not all submitted")
    for category, agent_id in agents:
        agent = Agent.get(db, agent_id)
        if category == "approved":
            agent.approve_work()
        else:
            agent.reject_work("did not follow the instructions")
    return run_id


def _prepare_files(folder: Path, pop: _Population) -> Dict[str, str]:
    """The CSV to import, the file of workers to revoke and the review rules."""
    grants_csv, revoke_txt, rules_yaml = folder / "grants.csv", folder / "revoke.txt", folder / "rules.yaml"
    with open(grants_csv, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["worker", "value"])
        out.writerows([name, 1] for name in pop.imported)
    revoke_txt.write_text("".join(f"{n}\n" for n in pop.revoked), encoding="utf-8")
    rules_yaml.write_text(f"rules:\n  - when: rejected\n    grant: {BLOCK}\n"
                          f"  - when: approved\n    grant: {ALLOW}\n", encoding="utf-8")
    return {"csv": str(grants_csv), "revoke": str(revoke_txt), "rules": str(rules_yaml)}


def _writer_steps(config: LoadConfig, path: str, files: Dict[str, str], earlier_run: str) -> List[Dict[str, Any]]:
    db = ["--db", path, "--no-progress"]
    if config.hold_lock is not None:
        return [{"name": "hold", "seconds": config.hold_lock}]
    return [
        {"name": "import", "argv": ["import", ALLOW, files["csv"], "--provider", "mock", *db]},
        {"name": "revoke", "argv": ["revoke", ALLOW, "--file", files["revoke"], "--provider", "mock", *db]},
        {"name": "review", "argv": ["review", "--run", earlier_run, "--rules", files["rules"], "--apply", *db]},
    ]


def _start_writer(folder: Path, plan: Dict[str, Any]) -> Tuple[subprocess.Popen, Path]:
    """Process B: this module's ``writer`` command in a new Python, with its own HOME."""
    home = folder / "home-writer"
    home.mkdir(exist_ok=True)
    plan_file, out_file = folder / "writer-plan.json", folder / "writer-result.json"
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["HOME"] = str(home)
    log = open(folder / "writer.log", "w", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-I", "-m", "mephisto_quals.devtools.live_load", "writer",
                             str(plan_file), str(out_file)], cwd=str(home), env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return proc, out_file


# ----------------------------------------------------------------------------- the run

def run_live(config: LoadConfig) -> LiveResult:
    """Set up the database, run the stream (and process B unless ``writer=False``), check it.

    ``HOME`` must already point somewhere safe (``import mephisto`` writes there): the test
    suite's conftest does it, and ``main`` points it inside ``data_dir``.
    """
    from mephisto.abstractions.databases.local_database import LocalMephistoDB
    from mephisto.operations.operator import Operator
    from mephisto.utils.testing import get_mock_requester

    from mephisto_quals.admin import grants
    from mephisto_quals.devtools.mock_crowd import speed_up_mephisto, stop_operator

    clock = [time.perf_counter()]
    result = LiveResult(config=asdict(config))

    def phase(name: str) -> None:
        now = time.perf_counter()
        result.phases[name] = round(now - clock[0], 3)
        clock[0] = now

    folder = Path(config.data_dir)
    (folder / "mephisto").mkdir(parents=True, exist_ok=True)
    path = str(folder / "mephisto" / "database.db")
    pop = _Population.of(config)
    files = _prepare_files(folder, pop)

    speed_up_mephisto()
    db = LocalMephistoDB(database_path=path)
    requester = get_mock_requester(db).requester_name
    for qualification, names in ((ALLOW, pop.stable + pop.blocked + pop.rejected + pop.revoked), (BLOCK, pop.blocked)):
        grants.grant(path, qualification, names, provider="mock", create=True, crowd=False)
    phase("setup")
    operator = Operator(db)
    quiet = open(os.devnull, "w")  # the mock provider prints every unit's URL, from its threads too
    proc: Optional[subprocess.Popen] = None
    try:
        with _capture_locks(result.locked), contextlib.redirect_stdout(quiet):
            earlier = _earlier_run(db, operator, requester, pop, config.answer_timeout)
            phase("earlier run")
            steps = _writer_steps(config, path, files, earlier)
            # At most 7 of the 9 arrivals of a cycle can be admitted (2 units per mock assignment).
            cap = 2 * config.arrivals + 20
            quals = {"allowlists": [ALLOW], "blocklists": [BLOCK]}
            cfg = _mock_config(requester, "live-task", math.ceil(cap * 7 / 18) + 5, quals,
                               use_onboarding=True, onboarding_qualification=ONBOARDING)
            crowd = _Crowd(operator, _launch(operator, cfg), config.answer_timeout)
            phase("launch")
            _watch_db(db, result.mephisto_writes, result.locked)
            rng = random.Random(config.seed)
            plan = _arrival_plan(pop)
            state: Dict[str, Any] = {"proc": None, "out": None, "exited": None}

            async def stream() -> None:
                started = time.time()
                flows = []
                while True:
                    now = time.time()
                    if config.writer and state["proc"] is None and now - started >= config.writer_delay:
                        state["proc"], state["out"] = _start_writer(folder, {"db": path, "steps": steps,
                                                                             "gap": config.gap})
                        result.writer_started = now
                    proc_ = state["proc"]
                    if proc_ is not None and state["exited"] is None and proc_.poll() is not None:
                        state["exited"] = now
                    writer_done = not config.writer or (state["exited"] is not None
                                                        and now - state["exited"] >= config.tail)
                    if len(result.arrivals) >= config.arrivals and writer_done:
                        break
                    if len(result.arrivals) >= cap or now - started > config.writer_timeout:
                        result.problems.append(f"the stream stopped at {len(result.arrivals)} arrivals, "
                                               "process B still running")
                        break
                    category, name = next(plan, ("", ""))
                    if not name:
                        result.problems.append("ran out of workers to send")
                        break
                    rec = ArrivalRecord(name, category)
                    result.arrivals.append(rec)
                    flows.append(asyncio.ensure_future(_flow(crowd, rec, rng, onboarding=True)))
                    await asyncio.sleep(rng.uniform(*config.interval))
                await asyncio.gather(*flows)
                await asyncio.sleep(1.0)  # let the last submissions land

            crowd.loop.run_until_complete(stream())
            phase("stream")
            _await_completion(db, operator, result.arrivals, config.answer_timeout)
            phase("completion")
            proc = state["proc"]
            if proc is not None:
                proc.wait(timeout=config.writer_timeout)
                _read_writer(result, state["out"], proc.returncode)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        with contextlib.redirect_stderr(io.StringIO()):  # Mephisto's unit-expiry progress bar
            stop_operator(operator)
        db.shutdown()
        quiet.close()
        phase("stop")
    _check(result, pop, path)
    phase("check")
    return result


def _await_completion(db: Any, operator: Any, arrivals: Sequence[ArrivalRecord], timeout: float) -> None:
    """Run the loop until every submitted unit's agent is completed (or the timeout); mark them."""
    from mephisto.data_model.agent import Agent

    def done() -> bool:
        for a in arrivals:
            if a.agent_id and not a.completed:
                a.completed = Agent.get(db, a.agent_id).get_status() == "completed"
        return all(a.completed for a in arrivals if a.agent_id)

    operator._run_loop_until(done, timeout)


def _read_writer(result: LiveResult, out_file: Path, code: int) -> None:
    if code != 0 or not out_file.exists():
        log = (out_file.parent / "writer.log").read_text(encoding="utf-8", errors="replace")[-2000:]
        result.problems.append(f"process B exited {code}: {log}")
    if out_file.exists():
        result.steps = [StepRecord(**s) for s in json.loads(out_file.read_text(encoding="utf-8"))]


def _check(result: LiveResult, pop: _Population, path: str) -> None:
    """Fill ``problems``: locked errors, wrong verdicts, units not given, missing commits."""
    from mephisto_quals.admin.queries import list_qualifications

    if result.locked:
        result.problems.append(f"{len(result.locked)} 'database is locked' in process A, e.g. {result.locked[0]}")
    for s in result.steps:
        if s.exit_code != 0:
            result.problems.append(f"process B's {s.name} exited {s.exit_code}: {s.output[-500:]}")
    for a in result.arrivals:
        if a.verdict == "error" or (a.verdict == "admitted" and not (a.got_unit and a.completed)):
            result.errors.append(f"{a.worker} ({a.category}): {a.verdict} {a.detail}")
    if result.errors:
        result.problems.append(f"{len(result.errors)} arrivals went wrong, e.g. {result.errors[0]}")
    windows = {s.name: (s.started, s.ended) for s in result.steps if s.exit_code == 0}
    for a in result.arrivals:
        flip, before = CATEGORIES[a.category]
        if a.verdict in ("admitted", "refused") and flip not in windows and (a.verdict == "admitted") != before:
            result.problems.append(f"{a.worker} ({a.category}) was {a.verdict}, but nothing changed their lists")
    for step, (start, end) in windows.items():
        old = [a for a in result.arrivals if CATEGORIES[a.category][0] == step and a.answered is not None
               and (a.verdict == "admitted") == CATEGORIES[a.category][1] and a.verdict != "error"]
        new = [a for a in result.arrivals if CATEGORIES[a.category][0] == step and a.answered is not None
               and (a.verdict == "admitted") != CATEGORIES[a.category][1] and a.verdict != "error"]
        lo = max([start] + [a.sent for a in old])
        hi = min([end] + [a.answered for a in new if a.answered is not None])
        result.commit_windows[step] = (lo, hi)
        if lo > hi:
            late_old = max(old, key=lambda a: a.sent)
            early_new = min(new, key=lambda a: a.answered or 0)
            result.problems.append(
                f"{step}: no single commit explains the verdicts (half a list seen): {early_new.worker} already had "
                f"the new list at {early_new.answered:.3f} but {late_old.worker} still had the old one after "
                f"{late_old.sent:.3f} (window {start:.3f}-{end:.3f})")
    expected = pop.expected_counts([s.name for s in result.steps if s.exit_code == 0])
    result.expected_counts = expected
    held = {q.name: q.holders for q in list_qualifications(path)}
    result.counts = {q: held.get(q, 0) for q in expected}
    if result.counts != expected:
        result.problems.append(f"holders after the run {result.counts}, expected {expected}")


# ----------------------------------------------------------------------------- process B

def _writer(plan_file: str, out_file: str) -> int:
    """Run the plan's commands in this process; record each one's window and write-lock holds."""
    from mephisto_quals.admin import grants
    from mephisto_quals.cli.main import cli
    from mephisto_quals.store import Session

    plan = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    target = os.path.realpath(plan["db"])
    opened: List[Session] = []
    real_open = Session.open.__func__  # type: ignore[attr-defined]

    def recording_open(cls: Any, db: Any, **kwargs: Any) -> Session:
        session = real_open(cls, db, **kwargs)
        opened.append(session)
        return session

    Session.open = classmethod(recording_open)  # type: ignore[method-assign,assignment]
    records = []
    code = 0
    for i, step in enumerate(plan["steps"]):
        if i:
            time.sleep(plan["gap"])
        first = len(opened)
        output = io.StringIO()
        started = time.time()
        if step["name"] == "hold":
            exit_code = 0
            with Session.open(plan["db"]) as s, s.transaction():
                grants.grant(plan["db"], ALLOW, ["hold_probe"], provider="mock", session=s, crowd=False)
                time.sleep(step["seconds"])
        else:
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                try:
                    cli(args=step["argv"], prog_name="mephisto-quals")
                    exit_code = 0
                except SystemExit as e:
                    exit_code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        ended = time.time()
        holds = [h for s in opened[first:] if os.path.realpath(s.path) == target for h in s.write_holds]
        records.append(asdict(StepRecord(step["name"], started, ended, exit_code, holds, output.getvalue()[-3000:])))
        code = code or exit_code
        print(f"{step['name']}: exit {exit_code}, {ended - started:.2f} s, longest hold {max(holds, default=0):.3f} s",
              flush=True)
    Path(out_file).write_text(json.dumps(records), encoding="utf-8")
    return code


# ----------------------------------------------------------------------------- command line

def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mephisto_quals.devtools.live_load",
                                     description="A live Mephisto run beside bulk grants on the same database.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="process A: the live run (starts process B itself)")
    run.add_argument("--data-dir", required=True, help="folder for the database, files and HOME (must be empty)")
    run.add_argument("--json", required=True, help="where to write the result")
    for name in ("grants", "revokes", "earlier-workers", "arrivals", "seed"):
        run.add_argument(f"--{name}", type=int, default=getattr(LoadConfig, name.replace("-", "_")))
    run.add_argument("--no-writer", action="store_true", help="the same stream without process B")
    run.add_argument("--hold-lock", type=float, help="control: process B only holds the write lock this long")
    writer = sub.add_parser("writer", help="process B (started by 'run')")
    writer.add_argument("plan")
    writer.add_argument("out")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = _parse(argv)
    if args.command == "writer":
        code = _writer(args.plan, args.out)
    else:
        folder = Path(args.data_dir)
        home = folder / "home"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["HOME"] = str(home)  # before the first 'import mephisto'
        config = LoadConfig(str(folder), grants=args.grants, revokes=args.revokes,
                            earlier_workers=args.earlier_workers, arrivals=args.arrivals, seed=args.seed,
                            writer=not args.no_writer, hold_lock=args.hold_lock)
        result = run_live(config)
        Path(args.json).write_text(json.dumps(result.to_json()), encoding="utf-8")
        code = 1 if result.problems else 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # Mephisto leaves non-daemon threads behind (metrics server, tornado)


if __name__ == "__main__":
    main()
