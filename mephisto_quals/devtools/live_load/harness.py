"""Process A: the live task run with its arrival stream, process B started a moment in, and the
result checked."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import os
import random
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from mephisto_quals.devtools.live_load.capture import capture_locks, watch_db
from mephisto_quals.devtools.live_load.crowd import Crowd, flow
from mephisto_quals.devtools.live_load.population import Population, arrival_plan
from mephisto_quals.devtools.live_load.prepare import (
    launch,
    make_earlier_run,
    mock_config,
    prepare_files,
    start_writer,
    writer_steps,
)
from mephisto_quals.devtools.live_load.records import (
    ALLOW,
    BLOCK,
    ONBOARDING,
    ArrivalRecord,
    LiveResult,
    LoadConfig,
    StepRecord,
)
from mephisto_quals.devtools.live_load.verdicts import check_result


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
    pop = Population.of(config)
    files = prepare_files(folder, pop)

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
        with capture_locks(result.locked), contextlib.redirect_stdout(quiet):
            earlier = make_earlier_run(db, operator, requester, pop, config.answer_timeout)
            phase("earlier run")
            steps = writer_steps(config, path, files, earlier)
            # At most 7 of the 9 arrivals of a cycle can be admitted (2 units per mock assignment).
            cap = 2 * config.arrivals + 20
            quals = {"allowlists": [ALLOW], "blocklists": [BLOCK]}
            cfg = mock_config(requester, "live-task", math.ceil(cap * 7 / 18) + 5, quals,
                               use_onboarding=True, onboarding_qualification=ONBOARDING)
            crowd = Crowd(operator, launch(operator, cfg), config.answer_timeout)
            phase("launch")
            watch_db(db, result.mephisto_writes, result.locked)
            rng = random.Random(config.seed)
            plan = arrival_plan(pop)
            state: Dict[str, Any] = {"proc": None, "out": None, "exited": None}

            async def stream() -> None:
                started = time.time()
                flows = []
                while True:
                    now = time.time()
                    if config.writer and state["proc"] is None and now - started >= config.writer_delay:
                        state["proc"], state["out"] = start_writer(folder, {"db": path, "steps": steps,
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
                    flows.append(asyncio.ensure_future(flow(crowd, rec, rng, onboarding=True)))
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
    check_result(result, pop, path)
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
