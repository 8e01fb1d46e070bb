"""Real Hydra composition in real subprocesses, as a user's task script gets it.

Every script here runs with the venv's Python in isolated mode (``-I``) from a temp dir, so
it sees the *installed* package (plugin, presets, blueprints) and never the source tree; it
gets its own HOME (``import mephisto`` writes ``~/.mephisto``) and ``mephisto.datapath``, and
stdin is closed so Mephisto's data-dir prompt would fail instead of hanging. The task scripts
never import mephisto_quals: the Hydra plugin must do everything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from mephisto_quals.compile.config import QualsConfig
from mephisto_quals.devtools.mock_crowd import free_port

pytestmark = pytest.mark.subprocess  # every test runs Hydra in a child process

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gated_static_task" / "run_task.py"
NOT_QUALIFIED = "You are not currently qualified to work on this task..."  # Mephisto's WorkerFailureReasons

# A Mephisto task script, written as Mephisto's examples are. Its body validates through
# Mephisto's own path (registry -> blueprint class -> assert_task_args), prints the
# requirements the blueprint reports, and with +launch=true launches a real mock run.
TASK_SCRIPT = '''\
import json

from mephisto.operations import operator as operator_module, task_launcher
from mephisto.operations.registry import get_blueprint_from_type
from mephisto.tools.scripts import task_script
from omegaconf import DictConfig

operator_module.RUN_STATUS_POLL_TIME = 0.2  # so the mock run stops in a second
task_launcher.UNIT_GENERATOR_WAIT_SECONDS = 0.2


def stop(operator):
    """Stop mock runs at once: channels close before the mock server (Operator.shutdown would wait)."""
    operator.is_shutdown = True
    for live_run in list(operator.get_running_task_runs().values()):
        live_run.client_io.shutdown()
        live_run.task_launcher.shutdown()
        live_run.task_launcher.expire_units()
        live_run.architect.shutdown()
        live_run.task_runner.shutdown()
        live_run.worker_pool.shutdown()
    operator._task_runs_tracked.clear()
    operator._event_loop.run_until_complete(operator.shutdown_async())


@task_script(default_config_file="mock")
def main(operator, cfg: DictConfig) -> None:
    BlueprintClass = get_blueprint_from_type(cfg.mephisto.blueprint._blueprint_type)
    state = BlueprintClass.SharedStateClass()
    BlueprintClass.assert_task_args(cfg.mephisto, state)
    result = {
        "blueprint": BlueprintClass.__name__,
        # The blueprint's mixin API (Blueprint.get_required_qualifications in Mephisto 1.1.1
        # trips over the screening mixin's unset passed_qualification_name).
        "required": BlueprintClass.get_mixin_qualifications(cfg.mephisto, state),
    }
    if cfg.get("launch", False):
        result["run_id"] = operator.launch_task_run(cfg.mephisto, state)
        result["qualifications"] = state.qualifications
        result["mturk"] = state.mturk_specific_qualifications
        result["db_qualifications"] = sorted(q.qualification_name for q in operator.db.find_qualifications())
        stop(operator)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
'''

MOCK_CONF = """\
# @package _global_
defaults:
  - /mephisto/blueprint: mock_quals
  - /mephisto/architect: mock
  - /mephisto/provider: mock
mephisto:
  blueprint:
    num_assignments: 1
    timeout_time: 30
  task:
    task_name: hydra-test
    task_title: Hydra test
    task_description: A task composed by Hydra.
    task_reward: 0.1
    task_tags: test
"""

# Mephisto's stock mock blueprint: composes only if hydra/job_logging/mephisto_default is found.
PLAIN_CONF = """\
# @package _global_
defaults:
  - /mephisto/blueprint: mock
  - /mephisto/architect: mock
  - /mephisto/provider: mock
"""

# Runs a script with our search path left out (the blueprints stay registered).
WITHOUT_OUR_SEARCH_PATH = """\
import runpy, sys
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
real_append = ConfigSearchPathImpl.append
def append(self, provider, path, anchor=None):
    if provider != "mephisto-quals":
        real_append(self, provider, path, anchor)
ConfigSearchPathImpl.append = append
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# Runs the example's own script on the mock architect; when it reaches
# wait_for_runs_then_shutdown, mock workers arrive, the result is printed and the run stops.
EXAMPLE_DRIVER = """\
import json, runpy, sys

sys.argv = sys.argv[1:]  # first: Mephisto takes task_dir from sys.argv[0] on import

from mephisto.data_model.worker import Worker
from mephisto.operations.operator import Operator
from mephisto.utils.qualifications import find_or_create_qualification

from mephisto_quals.devtools.mock_crowd import MockRun, speed_up_mephisto, stop_operator
from mephisto_quals.compile.plan import plan_for_run

speed_up_mephisto()
launched = {}
real_launch = Operator.launch_task_run


def launch(self, run_config, shared_state=None):
    launched.update(config=run_config, state=shared_state)
    launched["run_id"] = real_launch(self, run_config, shared_state)
    return launched["run_id"]


def arrive_then_stop(self, skip_input=False, log_rate=None):
    db, state = self.db, launched["state"]
    result = {
        "run_id": launched["run_id"],
        "qualifications": state.qualifications,
        "mturk": state.mturk_specific_qualifications,
        "plan": [r.describe() for r in plan_for_run(launched["config"]).local],
        "db_qualifications": sorted(q.qualification_name for q in db.find_qualifications()),
    }
    run = MockRun(self, launched["run_id"])
    result["stranger"] = run.arrive("stranger").details
    find_or_create_qualification(db, "gated-example-trusted")
    Worker.get(db, db.new_worker("trusted_sandbox", "mock")).grant_qualification("gated-example-trusted", 1)
    result["trusted"] = run.arrive("trusted").details
    print("RESULT " + json.dumps(result, default=str))
    stop_operator(self)


Operator.launch_task_run = launch
Operator.wait_for_runs_then_shutdown = arrive_then_stop
runpy.run_path(sys.argv[0], run_name="__main__")
"""

TINY_APP = """\
import hydra
from omegaconf import OmegaConf

@hydra.main(version_base=None, config_path=None)
def app(cfg):
    print(OmegaConf.to_yaml(cfg))

app()
"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Dict[str, Any]:
    """A HOME, a Mephisto data dir and a Hydra run dir, all in tmp_path."""
    home = tmp_path / "home"
    data = tmp_path / "mephisto-data"
    home.mkdir()
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HYDRA_"))}
    env.update(HOME=str(home), COLUMNS="250")
    return {"tmp": tmp_path, "home": home, "data": data, "env": env, "run_dir": tmp_path / "outputs"}


def run(sandbox: Dict[str, Any], *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", *args],
        cwd=sandbox["tmp"], env=sandbox["env"], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


def result_of(done: subprocess.CompletedProcess) -> Dict[str, Any]:
    out = ok(done)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, out + done.stderr
    return json.loads(lines[0][len("RESULT "):])


def runtime_args(sandbox: Dict[str, Any]) -> List[str]:
    """Where Mephisto and Hydra write: nothing under the user's home or the cwd."""
    return [f"+mephisto.datapath={sandbox['data']}", f"hydra.run.dir={sandbox['run_dir']}"]


def quals_of(done: subprocess.CompletedProcess) -> Dict[str, Any]:
    """The ``mephisto.blueprint.quals`` node from ``--cfg job`` output."""
    return yaml.safe_load(ok(done))["mephisto"]["blueprint"]["quals"]


def required(result: Dict[str, Any]) -> List[tuple]:
    return [(q["qualification_name"], q["comparator"], q["value"]) for q in result["required"]]


def installed_conf(*parts: str) -> Any:
    return resources.files("mephisto_quals.conf").joinpath(*parts)


@pytest.fixture
def script(sandbox: Dict[str, Any]) -> Path:
    task_dir = sandbox["tmp"] / "task"
    (task_dir / "hydra_configs" / "conf").mkdir(parents=True)
    (task_dir / "run.py").write_text(TASK_SCRIPT)
    (task_dir / "hydra_configs" / "conf" / "mock.yaml").write_text(MOCK_CONF)
    (task_dir / "hydra_configs" / "conf" / "plain.yaml").write_text(PLAIN_CONF)
    assert "mephisto_quals" not in TASK_SCRIPT
    return task_dir / "run.py"


# --- the plugin --------------------------------------------------------------------------


def test_plugin_and_search_path_come_from_the_installed_package(sandbox: Dict[str, Any]) -> None:
    import hydra_plugins.mephisto_quals.mephisto_quals_searchpath as plugin_module

    assert "site-packages" in plugin_module.__file__, plugin_module.__file__
    # A bare Hydra app, nothing to do with Mephisto: the plugin is found by scanning hydra_plugins.
    info = ok(run(sandbox, "-c", TINY_APP, "--info", "all"))
    assert "MephistoQualsSearchPathPlugin" in info
    assert "MephistoSearchPathPlugin" in info
    search_path = [line for line in info.splitlines() if line.startswith("| mephisto-quals ")]
    assert search_path and "pkg://mephisto_quals.conf" in search_path[0], info
    # ... and a preset lands at its absolute package even in an app without Mephisto's config.
    composed = yaml.safe_load(ok(run(sandbox, "-c", TINY_APP, "+quals=mturk_masters", f"hydra.run.dir={sandbox['run_dir']}")))
    assert composed == {"mephisto": {"blueprint": {"quals": {"mturk": {"system": {"masters": True}}}}}}


def test_job_logging_mephisto_default_comes_from_us(sandbox: Dict[str, Any], script: Path) -> None:
    shown = yaml.safe_load(ok(run(sandbox, str(script), "conf=plain", "--cfg", "hydra", "-p", "hydra.job_logging")))
    assert shown == yaml.safe_load(installed_conf("hydra", "job_logging", "mephisto_default.yaml").read_text())
    # Control: the same script without our search path fails as Mephisto's PyPI wheel does.
    helper = sandbox["tmp"] / "without_search_path.py"
    helper.write_text(WITHOUT_OUR_SEARCH_PATH)
    failed = run(sandbox, str(helper), str(script), "conf=plain", "--cfg", "job")
    assert failed.returncode != 0
    assert "Could not find 'hydra/job_logging/mephisto_default'" in failed.stderr, failed.stderr


# --- presets from the command line ---------------------------------------------------------


def test_one_preset_from_the_command_line(sandbox: Dict[str, Any], script: Path) -> None:
    done = run(sandbox, str(script), "+quals=mturk_experienced_us", "--cfg", "job")
    quals = quals_of(done)
    assert quals["mturk"]["system"] == {
        "approval_rate": {"comparator": ">=", "value": 98},
        "approved_hits": {"comparator": ">=", "value": 1000},
        "locale": {"comparator": "in", "value": ["US"]},
    }
    assert quals["allowlists"] == [] and quals["onboarding_from"] is None
    assert yaml.safe_load(done.stdout)["mephisto"]["blueprint"]["_blueprint_type"] == "mock_quals"


def test_several_presets_at_once_from_the_command_line(sandbox: Dict[str, Any], script: Path) -> None:
    quals = quals_of(run(sandbox, str(script), "+quals=[mturk_masters,pilot_allowlist,mturk_experienced_us]", "--cfg", "job"))
    assert quals["allowlists"] == ["pilot_allowlist"]
    assert quals["mturk"]["system"]["masters"] is True
    assert quals["mturk"]["system"]["approval_rate"] == {"comparator": ">=", "value": 98}
    assert set(quals["mturk"]["system"]) == {"masters", "approval_rate", "approved_hits", "locale"}


def test_script_body_launches_a_mock_run_with_the_presets(sandbox: Dict[str, Any], script: Path) -> None:
    result = result_of(run(
        sandbox, str(script), *runtime_args(sandbox), "+launch=true",
        "+quals=[mturk_experienced_us,pilot_allowlist]", "mephisto.blueprint.quals.blocklists=[bad-workers]",
        "mephisto.architect.should_run_server=true", f"mephisto.architect.port={free_port()}",
    ))
    assert result["blueprint"] == "MockBlueprintWithQuals"
    assert result["run_id"] is not None
    expected_local = [("bad-workers", "DoesNotExist", None), ("pilot_allowlist", "Exists", None)]
    assert required(result) == expected_local
    assert [(q["qualification_name"], q["comparator"], q["value"]) for q in result["qualifications"]] == expected_local
    assert [(m["QualificationTypeId"], m["Comparator"]) for m in result["mturk"]] == [
        ("000000000000000000L0", "GreaterThanOrEqualTo"),  # approval rate
        ("00000000000000000040", "GreaterThanOrEqualTo"),  # approved HITs
        ("00000000000000000071", "In"),  # locale
    ]
    assert result["db_qualifications"] == ["bad-workers", "pilot_allowlist"]
    # Everything went where we said: the DB under datapath, Hydra's log (our job_logging) in the run dir.
    assert (sandbox["data"] / "database.db").exists()
    log = (sandbox["run_dir"] / "run.log").read_text()
    assert "mephisto-quals: 2 local requirement(s), 3 MTurk" in log
    assert "datapath" not in (sandbox["home"] / ".mephisto" / "config.yml").read_text()


# --- the onboarding presets ----------------------------------------------------------------


def test_onboarding_presets_follow_onboarding_from(sandbox: Dict[str, Any], script: Path) -> None:
    result = result_of(run(
        sandbox, str(script), *runtime_args(sandbox),
        "+quals=[passed_onboarding,never_failed_onboarding]", "mephisto.blueprint.quals.onboarding_from=onb-a",
    ))
    assert required(result) == [
        ("onb-a-failed", "DoesNotExist", None),
        ("onb-a", "Exists", None),
        ("onb-a", "EqualTo", 1),
    ]


def test_onboarding_presets_without_onboarding_from_name_the_field(sandbox: Dict[str, Any], script: Path) -> None:
    done = run(sandbox, str(script), *runtime_args(sandbox), "+quals=[passed_onboarding,never_failed_onboarding]")
    assert done.returncode != 0 and "RESULT" not in done.stdout
    assert "QualsConfigError" in done.stderr, done.stderr
    assert "set mephisto.blueprint.quals.onboarding_from=NAME" in done.stderr, done.stderr


# --- help ----------------------------------------------------------------------------------


def test_help_lists_the_presets_blueprints_and_quals_fields(sandbox: Dict[str, Any], script: Path) -> None:
    out = ok(run(sandbox, str(script), "--help"))
    presets = sorted(p.name[: -len(".yaml")] for p in installed_conf("quals").iterdir() if p.name.endswith(".yaml"))
    assert len(presets) >= 6
    assert f"quals: {', '.join(presets)}" in out.splitlines()
    blueprints = next(line for line in out.splitlines() if line.startswith("mephisto/blueprint: "))
    assert {"mock_quals", "static_task_quals", "static_react_task_quals"} <= set(blueprints.split(": ")[1].split(", "))
    config = yaml.safe_load(out.split("Override anything in the config (foo.bar=value)", 1)[1].split("Powered by Hydra")[0])
    quals = config["mephisto"]["blueprint"]["quals"]
    assert list(quals) == [f.name for f in dataclasses.fields(QualsConfig)]


def test_mephisto_wut_shows_the_quals_field_once_registered(sandbox: Dict[str, Any]) -> None:
    # Mephisto's CLI loads only its own blueprints and runs no Hydra plugin, so the plain
    # `mephisto wut blueprint=static_task_quals` answers "not found"; with them registered:
    cli = "import mephisto_quals.integration.blueprints\nfrom mephisto.client.cli import cli\ncli()\n"
    out = ok(run(sandbox, "-c", cli, "wut", "blueprint=static_task_quals"))
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 4}
    assert "Qualification control from mephisto-quals" in rows["quals"]
    assert "MTurk QualificationRequirement dicts" in rows["mturk_specific_qualifications"]
    assert "task_source" in rows  # the static_task arguments are all still there


# --- the example ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, presets",
    [
        ([], ["mturk_experienced_us", "never_failed_onboarding"]),
        (["quals=[mturk_masters]"], ["mturk_masters"]),  # replaces the example's list
        (["+quals=[mturk_adult]"], ["mturk_experienced_us", "never_failed_onboarding", "mturk_adult"]),  # adds
    ],
    ids=["defaults-list", "replace", "add"],
)
def test_example_composes_its_presets_and_own_values(sandbox: Dict[str, Any], overrides: List[str], presets: List[str]) -> None:
    done = run(sandbox, str(EXAMPLE), *overrides, "--cfg", "job", "--resolve")
    cfg = yaml.safe_load(ok(done))["mephisto"]
    quals = cfg["blueprint"]["quals"]
    assert (cfg["blueprint"]["_blueprint_type"], cfg["architect"]["_architect_type"], cfg["provider"]["_provider_type"]) == (
        "static_task_quals", "local", "mock")
    assert Path(cfg["blueprint"]["data_csv"]).is_file() and Path(cfg["blueprint"]["onboarding_source"]).is_file()
    # The example's own values, merged after its presets:
    assert quals["allowlists"] == ["gated-example-trusted"]
    assert quals["blocklists"] == ["gated-example-blocked"]
    assert quals["onboarding_from"] == "gated-example-pilot-onboarding"
    assert quals["mturk"]["system"]["approved_hits"] == {"comparator": ">=", "value": 500}
    system = quals["mturk"]["system"]
    assert ("approval_rate" in system) == ("mturk_experienced_us" in presets)
    assert quals["block_onboarding_failed"] == (
        ["gated-example-pilot-onboarding"] if "never_failed_onboarding" in presets else [])
    assert system.get("masters") is ("mturk_masters" in presets or None)
    assert system.get("adult") is ("mturk_adult" in presets or None)


def test_example_launches_on_the_mock_architect_and_gates_workers(sandbox: Dict[str, Any]) -> None:
    driver = sandbox["tmp"] / "drive_example.py"
    driver.write_text(EXAMPLE_DRIVER)
    source = EXAMPLE.read_text()
    assert "import mephisto_quals" not in source and "from mephisto_quals" not in source
    done = run(
        sandbox, str(driver), str(EXAMPLE), *runtime_args(sandbox),
        "mephisto/architect=mock", "mephisto.architect.should_run_server=true", f"mephisto.architect.port={free_port()}",
    )
    result = result_of(done)
    assert "Qualification config (mephisto.blueprint.quals):" in done.stdout
    assert f"Launched task run {result['run_id']}. Workers must meet:" in done.stdout
    local = [(q["qualification_name"], q["comparator"]) for q in result["qualifications"]]
    assert local == [
        ("gated-example-blocked", "DoesNotExist"),
        ("gated-example-pilot-onboarding-failed", "DoesNotExist"),
        ("gated-example-trusted", "Exists"),
        ("gated-example-onboarding-failed", "DoesNotExist"),  # appended by Mephisto for its own onboarding
    ]
    assert result["plan"] == [
        "gated-example-blocked not exists",
        "gated-example-pilot-onboarding-failed not exists",
        "gated-example-trusted exists",
    ]
    assert [m.get("IntegerValues") or m.get("LocaleValues") for m in result["mturk"]] == [[98], [500], [{"Country": "US"}]]
    assert {"gated-example-trusted", "gated-example-blocked", "gated-example-pilot-onboarding-failed"} <= set(
        result["db_qualifications"])
    assert result["stranger"]["failure_reason"] == NOT_QUALIFIED and result["stranger"]["agent_id"] is None
    assert result["trusted"]["failure_reason"] is None
    assert str(result["trusted"]["agent_id"]).startswith("onboarding")


def test_example_refuses_to_launch_without_onboarding_from(sandbox: Dict[str, Any]) -> None:
    driver = sandbox["tmp"] / "drive_example.py"
    driver.write_text(EXAMPLE_DRIVER)
    done = run(
        sandbox, str(driver), str(EXAMPLE), *runtime_args(sandbox), "mephisto.blueprint.quals.onboarding_from=null",
        "mephisto/architect=mock", "mephisto.architect.should_run_server=true", f"mephisto.architect.port={free_port()}",
    )
    assert done.returncode != 0 and "RESULT" not in done.stdout
    output = done.stdout + done.stderr
    assert "The task run did not launch" in output
    assert "mephisto.blueprint.quals.onboarding_from: None is not valid; set mephisto.blueprint.quals.onboarding_from=NAME" in output
    with sqlite3.connect(sandbox["data"] / "database.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM task_runs").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM qualifications").fetchone()[0] == 0
