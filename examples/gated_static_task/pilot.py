#!/usr/bin/env python3
"""Pilot the gated static task in your own browser: local server, mock workers, ready links.

The same task, Hydra config and command line as run_task.py, plus what a pilot on this
machine needs (mephisto_quals.devtools.pilot): Mephisto's frontend and router are built once into a
cache (Mephisto 1.1.1's own build pins an npm version that no longer exists) and reused, a
few named test workers get their grants (allowed, blocked, not yet onboarded, not allowed),
and their links are printed. Ctrl-C stops it cleanly.

    ./run pilot                                  # = ./run python examples/gated_static_task/pilot.py
    ./run pilot mephisto.architect.port=3001     # any Hydra override works, as with run_task.py

Without ``mephisto.datapath`` the pilot keeps its Mephisto DB in ./pilot-data (the test
workers' grants are reset there at every launch; their submissions stay).
"""

import os
import sys
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # run_task.py beside this file, also under python -I


def _with_default_datapath(argv: List[str]) -> List[str]:
    """Add ``+mephisto.datapath=./pilot-data`` unless the command line sets a datapath."""
    if any(arg.lstrip("+").startswith("mephisto.datapath=") for arg in argv[1:]):
        return argv
    data = Path(os.environ.get("PILOT_DATA", "pilot-data")).resolve()
    data.mkdir(parents=True, exist_ok=True)
    return argv + [f"+mephisto.datapath={data}"]


sys.argv = _with_default_datapath(sys.argv)

from mephisto.operations.operator import Operator  # noqa: E402
from mephisto.operations.registry import get_blueprint_from_type  # noqa: E402
from mephisto.tools.scripts import task_script  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from run_task import onboarding_is_valid, show_quals  # noqa: E402

from mephisto_quals.devtools import pilot  # noqa: E402
from mephisto_quals.devtools.mock_crowd import speed_up_mephisto  # noqa: E402


@task_script(default_config_file="example")
def main(operator: Operator, cfg: DictConfig) -> None:
    architect, provider = cfg.mephisto.architect, cfg.mephisto.provider
    if architect._architect_type != "local" or provider._provider_type != "mock":
        raise SystemExit(
            "The pilot runs on the local architect with the mock provider "
            f"(got {architect._architect_type} / {provider._provider_type}); use run_task.py for others."
        )
    if architect.get("server_type", "node") != "node":
        raise SystemExit(
            "The pilot uses Mephisto's node router (mephisto.architect.server_type=node); "
            "the flask router of Mephisto 1.1.1 does not work."
        )
    show_quals(cfg)
    speed_up_mephisto()  # short polling: Ctrl-C stops the run in about a second
    print(f"Mephisto data: {cfg.mephisto.datapath}")

    builds = pilot.prepare_builds()  # npm once; then from the cache
    pilot.use_builds(builds)

    blueprint = cfg.mephisto.blueprint
    workers = pilot.pilot_workers(blueprint)
    pilot.seed_workers(operator.db, workers, blueprint.get("onboarding_qualification"))

    BlueprintClass = get_blueprint_from_type(blueprint._blueprint_type)
    shared_state = BlueprintClass.SharedStateClass(validate_onboarding=onboarding_is_valid)
    task_run_id = operator.launch_task_run(cfg.mephisto, shared_state)
    if task_run_id is None:
        raise SystemExit("The task run did not launch; the error is logged above.")
    pilot.wait_for_launch(operator, task_run_id)
    print(f"Launched task run {task_run_id}.")
    pilot.print_urls(pilot.server_url(architect), workers)
    pilot.serve_until_interrupted(operator)


if __name__ == "__main__":
    main()
