"""Set-up in process A: the mock task's config and launch, the earlier finished run, process B's
files and plan, and process B's start."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from mephisto_quals.devtools.live_load.crowd import Crowd, flow
from mephisto_quals.devtools.live_load.population import Population
from mephisto_quals.devtools.live_load.records import ALLOW, BLOCK, ArrivalRecord, LoadConfig


def mock_config(requester_name: str, task_name: str, num_assignments: int, quals: Optional[Dict[str, Any]] = None,
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


def launch(operator: Any, cfg: Any) -> str:
    from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS

    return str(operator.launch_task_run(cfg, QUALS_BLUEPRINTS["mock_quals"].SharedStateClass()))


def make_earlier_run(db: Any, operator: Any, requester: str, pop: Population, timeout: float) -> str:
    """A finished earlier run: its workers submit a unit each, then half are rejected, half approved."""
    from mephisto.data_model.agent import Agent

    workers = [("rejected", w) for w in pop.rejected] + [("approved", w) for w in pop.approved]
    run_id = launch(operator, mock_config(requester, "live-earlier", len(workers) // 2 + 1))
    crowd = Crowd(operator, run_id, timeout)
    rng = random.Random(0)

    async def one(i: int, category: str, name: str) -> Tuple[str, Optional[str]]:
        await asyncio.sleep(0.08 * i)
        return category, await flow(crowd, ArrivalRecord(name, category), rng, onboarding=False)

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


def prepare_files(folder: Path, pop: Population) -> Dict[str, str]:
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


def writer_steps(config: LoadConfig, path: str, files: Dict[str, str], earlier_run: str) -> List[Dict[str, Any]]:
    db = ["--db", path, "--no-progress"]
    if config.hold_lock is not None:
        return [{"name": "hold", "seconds": config.hold_lock}]
    return [
        {"name": "import", "argv": ["import", ALLOW, files["csv"], "--provider", "mock", *db]},
        {"name": "revoke", "argv": ["revoke", ALLOW, "--file", files["revoke"], "--provider", "mock", *db]},
        {"name": "review", "argv": ["review", "--run", earlier_run, "--rules", files["rules"], "--apply", *db]},
    ]


def start_writer(folder: Path, plan: Dict[str, Any]) -> Tuple[subprocess.Popen, Path]:
    """Process B: this package's ``writer`` command in a new Python, with its own HOME."""
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
