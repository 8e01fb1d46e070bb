"""Demo: launch a gated task on Mephisto's embedded defaults and show who got work, and why not.

Runs entirely locally: a LocalMephistoDB in the demo's own data directory, the mock
provider and the mock architect (a real websocket server on localhost). A small crowd of
mock workers arrives through Mephisto's real worker pool; the table shows what Mephisto
answered each one and which requirement stopped the others. Exits 1 if any outcome
differs from what the configuration should produce.

    python -m mephisto_quals.devtools.demo [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

__all__ = ["main", "DEMO_QUALS_YAML", "CROWD"]

#: The task's qualification config, as a researcher would write it in the task YAML.
DEMO_QUALS_YAML = """\
allowlists: [demo_allowlist]
blocklists: [demo_blocklist]
block_onboarding_failed: [earlier_screening]
requirements:
  - {qualification: demo_score, comparator: ">=", value: 3}
mturk:          # passed through to MTurk; the mock provider ignores it
  system:
    approval_rate: {comparator: ">=", value: 98}
    approved_hits: {comparator: ">=", value: 1000}
"""

ONBOARDING = "demo_onboarding"


@dataclass(frozen=True)
class DemoWorker:
    """A mock worker: what they hold before arriving, how they do on onboarding, what to expect."""

    name: str
    story: str
    holds: Tuple[Tuple[str, int], ...]
    onboarding: Optional[bool]  # passes / fails this task's onboarding if offered it
    expected: str  # "work", or the qualification whose requirement should stop them


CROWD: List[DemoWorker] = [
    DemoWorker(
        "alice",
        "allowlisted, passed onboarding before",
        (("demo_allowlist", 1), ("demo_score", 5), (ONBOARDING, 1)),
        None,
        "work",
    ),
    DemoWorker(
        "carol",
        "allowlisted, takes onboarding now and passes",
        (("demo_allowlist", 1), ("demo_score", 4)),
        True,
        "work",
    ),
    DemoWorker(
        "bob",
        "allowlisted but on the blocklist",
        (("demo_allowlist", 1), ("demo_score", 5), ("demo_blocklist", 1)),
        None,
        "demo_blocklist",
    ),
    DemoWorker(
        "dave",
        "allowlisted, fails onboarding now",
        (("demo_allowlist", 1), ("demo_score", 5)),
        False,
        f"{ONBOARDING}-failed",
    ),
    DemoWorker(
        "frank",
        "allowlisted, failed another task's onboarding",
        (("demo_allowlist", 1), ("demo_score", 5), ("earlier_screening", 0), ("earlier_screening-failed", 0)),
        None,
        "earlier_screening-failed",
    ),
    DemoWorker(
        "grace", "allowlisted, score 1 (needs >= 3)", (("demo_allowlist", 1), ("demo_score", 1)), None, "demo_score"
    ),
    DemoWorker("erin", "not on the allowlist", (("demo_score", 5),), None, "demo_allowlist"),
]


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mephisto_quals.devtools.demo",
        description="Launch a gated Mephisto task on the mock provider and show who got work.",
    )
    parser.add_argument(
        "--data-dir",
        default="demo-data",
        help="Folder for the demo's Mephisto DB, run data and private HOME (recreated each run; default: ./demo-data)",
    )
    return parser.parse_args(argv)


def _prepare_dir(data_dir: Path) -> Tuple[Path, Path]:
    """A clean Mephisto data folder and a private HOME inside the demo folder."""
    mephisto_dir, home = data_dir / "mephisto", data_dir / "home"
    shutil.rmtree(mephisto_dir, ignore_errors=True)
    mephisto_dir.mkdir(parents=True)
    home.mkdir(parents=True, exist_ok=True)
    # `import mephisto` writes ~/.mephisto/config.yml: point HOME here before that import.
    os.environ["HOME"] = str(home)
    return mephisto_dir, home


def run_demo(data_dir: Path) -> int:
    """Launch, drive the crowd, print the table; return the exit code."""
    mephisto_dir, home = _prepare_dir(data_dir)
    started = time.time()

    from mephisto.abstractions.architects.mock_architect import MockArchitectArgs
    from mephisto.abstractions.databases.local_database import LocalMephistoDB
    from mephisto.abstractions.providers.mock.mock_provider import MockProviderArgs
    from mephisto.data_model.task_run import TaskRunArgs
    from mephisto.data_model.worker import Worker
    from mephisto.operations.hydra_config import MephistoConfig
    from mephisto.operations.operator import Operator
    from mephisto.utils.testing import get_mock_requester
    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.table import Table

    from mephisto_quals.compile.plan import gate_requirements
    from mephisto_quals.devtools.mock_crowd import MockRun, free_port, speed_up_mephisto, stop_operator
    from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS
    from mephisto_quals.integration.gate import check_worker, first_failure
    from mephisto_quals.integration.mixin import ensure_qualifications

    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(f"[bold]mephisto-quals demo[/] — data directory: {data_dir.resolve()}")
    console.print(f"  Mephisto DB: {mephisto_dir.resolve() / 'database.db'}  (HOME for this run: {home.resolve()})")
    console.print("  Task config (mephisto.blueprint.quals):")
    for line in DEMO_QUALS_YAML.rstrip().splitlines():
        console.print(f"    {line}", markup=False, highlight=False)
    console.print(f"  plus Mephisto's own onboarding_qualification: {ONBOARDING}\n")

    speed_up_mephisto()
    db = LocalMephistoDB(database_path=str(mephisto_dir / "database.db"))
    requester = get_mock_requester(db)
    blueprint_cls = QUALS_BLUEPRINTS["mock_quals"]

    # The crowd's history, granted through Mephisto's own API as a review script would.
    for w in CROWD:
        worker = Worker.get(db, db.new_worker(f"{w.name}_sandbox", "mock"))
        ensure_qualifications(db, [q for q, _ in w.holds])
        for qual, value in w.holds:
            worker.grant_qualification(qual, value)

    config = OmegaConf.structured(
        MephistoConfig(
            blueprint=blueprint_cls.ArgsClass(
                num_assignments=len(CROWD), timeout_time=30, use_onboarding=True, onboarding_qualification=ONBOARDING
            ),
            provider=MockProviderArgs(requester_name=requester.requester_name),
            architect=MockArchitectArgs(should_run_server=True, port=str(free_port())),
            task=TaskRunArgs(
                task_name="mephisto-quals-demo",
                task_title="Demo",
                task_description="Gated demo task",
                task_reward=0.1,
                task_tags="demo",
            ),
            log_level="warning",
        )
    )
    config.blueprint.quals = OmegaConf.merge(config.blueprint.quals, OmegaConf.create(DEMO_QUALS_YAML))

    operator = Operator(db)
    rows: List[Tuple[DemoWorker, str, str, str, bool]] = []
    try:
        state = blueprint_cls.SharedStateClass()
        with contextlib.redirect_stdout(io.StringIO()):  # the mock provider prints every unit URL
            run_id = operator.launch_task_run(config, state)
        run = MockRun(operator, run_id)
        plan = run.live_run.blueprint.quals_plan
        checks = gate_requirements(plan, config.blueprint)
        for w in CROWD:
            arrival = run.arrive(w.name)
            if arrival.got_onboarding:
                arrival = run.submit_onboarding(arrival, passed=bool(w.onboarding))
                if w.onboarding is False:
                    arrival = run.arrive(w.name)  # comes back after failing
            worker_id = db.find_workers(worker_name=f"{w.name}_sandbox")[0].db_id
            stopped = first_failure(check_worker(db, worker_id, checks))
            if arrival.got_unit:
                row = ("got work", "", "", "work")
            elif stopped is not None:
                held = f"has {stopped.actual}" if stopped.held else "holds none"
                row = (
                    "refused",
                    f"{stopped.requirement.describe()} ({held})",
                    stopped.requirement.source,
                    stopped.requirement.qualification,
                )
            else:
                row = ("refused", arrival.failure or "no answer", "", "?")
            rows.append((w, *row[:3], row[3] == w.expected))
        mturk_payload = plan.mturk
    finally:
        with contextlib.redirect_stderr(io.StringIO()):  # Mephisto's unit-expiry progress bar
            stop_operator(operator)

    table = Table(title="Who got work")
    for column in ("worker", "history", "Mephisto's answer", "stopped by", "config path", "as configured?"):
        table.add_column(column, overflow="fold", no_wrap=column in ("worker", "config path"))
    for w, outcome, why, path, ok in rows:
        table.add_row(w.name, w.story, outcome, why, path, "yes" if ok else "[red]NO[/]")
    console.print(table)
    console.print(f"MTurk requirements passed through (mturk_specific_qualifications): {len(mturk_payload)}")
    for req in mturk_payload:
        console.print(f"  {req}", markup=False, highlight=False)
    bad = [w.name for w, *_, ok in rows if not ok]
    took = time.time() - started
    if bad:
        console.print(f"[red]Gating did not behave as configured for: {', '.join(bad)}[/] ({took:.1f} s)")
        return 1
    console.print(f"[green]Gating behaved as configured for all {len(rows)} workers[/] ({took:.1f} s)")
    return 0


def main(argv: Optional[List[str]] = None) -> None:
    args = _parse(argv)
    code = run_demo(Path(args.data_dir))
    sys.stdout.flush()
    sys.stderr.flush()
    # Mephisto leaves non-daemon threads behind (metrics server, tornado); do not wait on them.
    os._exit(code)


if __name__ == "__main__":
    main()
