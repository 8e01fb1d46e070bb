#!/usr/bin/env python3
"""A static HTML task whose workers are chosen by mephisto-quals, written like Mephisto's examples.

Nothing here imports mephisto_quals: once the package is installed, its Hydra plugin puts
the ``quals`` presets on the search path and registers the ``static_task_quals`` blueprint
that hydra_configs/conf/example.yaml selects.

    ./run python examples/gated_static_task/run_task.py +mephisto.datapath=/tmp/gated-example
"""

from typing import Any, Dict

from mephisto.operations.operator import Operator
from mephisto.operations.registry import get_blueprint_from_type
from mephisto.tools.scripts import task_script
from omegaconf import DictConfig, OmegaConf

CORRECT_ANSWER = "positive"


def onboarding_is_valid(onboarding_data: Dict[str, Any]) -> bool:
    """Pass the onboarding when the practice question got the right answer."""
    outputs = onboarding_data.get("outputs") or {}
    return outputs.get("answer") == CORRECT_ANSWER


def show_quals(cfg: DictConfig) -> None:
    quals = cfg.mephisto.blueprint.quals
    try:
        text = OmegaConf.to_yaml(quals, resolve=True)
    except Exception:  # e.g. an onboarding preset without onboarding_from: the launch says why
        text = OmegaConf.to_yaml(quals)
    print("Qualification config (mephisto.blueprint.quals):")
    print(text)


@task_script(default_config_file="example")
def main(operator: Operator, cfg: DictConfig) -> None:
    show_quals(cfg)

    # The selected blueprint's own shared state class (static_task_quals adds the MTurk
    # and Prolific requirement fields to Mephisto's SharedStaticTaskState).
    BlueprintClass = get_blueprint_from_type(cfg.mephisto.blueprint._blueprint_type)
    shared_state = BlueprintClass.SharedStateClass(validate_onboarding=onboarding_is_valid)

    task_run_id = operator.launch_task_run(cfg.mephisto, shared_state)
    if task_run_id is None:
        raise SystemExit("The task run did not launch; the error is logged above.")

    print(f"Launched task run {task_run_id}. Workers must meet:")
    for qualification in shared_state.qualifications:
        print(f"  {qualification['qualification_name']} {qualification['comparator']} {qualification['value']}")
    print("MTurk requirements (sent when the provider is mturk or mturk_sandbox):")
    for requirement in shared_state.mturk_specific_qualifications:
        print(f"  {requirement}")

    operator.wait_for_runs_then_shutdown(skip_input=True, log_rate=30)


if __name__ == "__main__":
    main()
