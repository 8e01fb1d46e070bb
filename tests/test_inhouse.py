"""Gating on Mephisto's ``inhouse`` provider (Mephisto 1.5.0+): a ``mock_quals`` task through a real
Operator with the mock architect, workers arriving as the inhouse page's packets do (their exact
name, no ``_sandbox`` suffix), and grants made by name with ``--provider inhouse`` before they
ever connect.

The inhouse provider has no crowd side: admission is entirely the worker pool's gate, so these
are the same guarantees as on mock. On Mephisto 1.1.1 (no inhouse provider) the module skips.
"""

from __future__ import annotations

import inspect
import re
import sqlite3
import uuid
from typing import Any, Callable, Dict, List

import pytest
from mephisto.operations.registry import get_valid_provider_types

if "inhouse" not in get_valid_provider_types():
    pytest.skip("this Mephisto has no 'inhouse' provider (Mephisto 1.5.0 adds it)", allow_module_level=True)

from click.testing import CliRunner  # noqa: E402
from mephisto.abstractions.architects.mock_architect import MockArchitectArgs  # noqa: E402
from mephisto.abstractions.providers.inhouse.inhouse_provider import InhouseProviderArgs  # noqa: E402
from mephisto.data_model.packet import PACKET_TYPE_REGISTER_AGENT  # noqa: E402
from mephisto.data_model.task_run import TaskRun, TaskRunArgs  # noqa: E402
from mephisto.operations.datatypes import WorkerFailureReasons  # noqa: E402
from mephisto.operations.hydra_config import MephistoConfig  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from mephisto_quals.admin import queries  # noqa: E402
from mephisto_quals.cli.main import cli as root  # noqa: E402
from mephisto_quals.devtools.mock_crowd import Arrival, MockRun, free_port  # noqa: E402
from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS  # noqa: E402

NOT_QUALIFIED = WorkerFailureReasons.NOT_QUALIFIED
REQUESTER = "inhouse"  # as `mephisto register inhouse name=inhouse` names it


@pytest.fixture
def requester(db: Any) -> str:
    """An inhouse requester, as ``mephisto register inhouse name=inhouse`` makes it."""
    db.new_requester(REQUESTER, "inhouse")
    return REQUESTER


def arrive(run: MockRun, worker_name: str) -> Arrival:
    """A worker opens the inhouse task page (``?worker_id=<name>&id=<assignment>``) and asks for work:
    the packet its ``wrap_crowd_source.js`` sends."""
    request_id = f"register-{uuid.uuid4()}"
    run.server._send_message({
        "packet_type": PACKET_TYPE_REGISTER_AGENT,
        "subject_id": "MockServer",
        "data": {"request_id": request_id,
                 "provider_data": {"worker_name": worker_name, "agent_registration_id": f"{request_id}-{worker_name}",
                                   "assignment_id": request_id, "provider_type": "inhouse"}},
    })
    if not run.operator._run_loop_until(lambda: request_id in run._answers, run.timeout):
        raise TimeoutError(f"no answer from Mephisto to {worker_name}'s request")
    return Arrival(worker_name, run._answers[request_id])


Launch = Callable[..., MockRun]


@pytest.fixture
def launch(operator: Any, requester: str) -> Launch:
    """Launch a ``mock_quals`` run on the inhouse provider through the real Operator."""

    def _launch(quals: Dict[str, Any], task_name: str = "inhouse-task") -> MockRun:
        blueprint = QUALS_BLUEPRINTS["mock_quals"]
        config = MephistoConfig(
            blueprint=blueprint.ArgsClass(num_assignments=4, timeout_time=30),
            provider=InhouseProviderArgs(requester_name=requester),
            architect=MockArchitectArgs(should_run_server=True, port=str(free_port())),
            task=TaskRunArgs(task_name=task_name, task_title="title", task_description="description",
                             task_reward=0.3, task_tags="test"),
        )
        cfg = OmegaConf.structured(config)
        cfg.blueprint.quals = OmegaConf.merge(cfg.blueprint.quals, quals)
        run_id = operator.launch_task_run(cfg, blueprint.SharedStateClass())
        return MockRun(operator, run_id)

    return _launch


@pytest.fixture
def cli(db: Any) -> Callable[..., Any]:
    """``mephisto-quals ARGS --db <the test DB>`` in-process; returns (exit code, output on one line)."""

    def run(*args: str) -> Any:
        runner = CliRunner(mix_stderr=False) if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters \
            else CliRunner()
        result = runner.invoke(root, [*args, "--db", db.db_path], env={"COLUMNS": "250", "MEPHISTO_QUALS_DB": None},
                               prog_name="mephisto-quals")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout + "\n" + result.stderr).split())

    return run


def workers(db: Any) -> List[tuple]:
    conn = sqlite3.connect(db.db_path)
    try:
        return sorted(conn.execute("SELECT worker_name, provider_type FROM workers").fetchall())
    finally:
        conn.close()


def agents_of(db: Any, name: str) -> List[Any]:
    (worker,) = db.find_workers(worker_name=name)
    return [a for a in db.find_agents() if a.worker_id == worker.db_id]


def test_allowlist_and_blocklist_granted_by_name_gate_inhouse_workers(db, cli, launch):
    for args in (["allow", "alice", "bob", "dave"], ["blocked", "bob"]):
        code, text = cli("grant", *args, "--provider", "inhouse", "--create", "--reason", "pilot")
        assert code == 0, text
    assert cli("revoke", "allow", "dave", "--provider", "inhouse")[0] == 0
    # Stored under their exact names (no _sandbox suffix), before any of them connected.
    assert workers(db) == [("alice", "inhouse"), ("bob", "inhouse"), ("dave", "inhouse")]
    assert {h.worker_name for h in queries.holders(db, "allow")} == {"alice", "bob"}

    run = launch({"allowlists": ["allow"], "blocklists": ["blocked"]})
    assert TaskRun.get(db, run.task_run_id).provider_type == "inhouse"
    alice, bob, dave, stranger = (arrive(run, n) for n in ("alice", "bob", "dave", "stranger"))

    assert alice.got_unit and alice.failure is None, alice.details
    assert len(agents_of(db, "alice")) == 1
    assert bob.failure == NOT_QUALIFIED and not agents_of(db, "bob")
    assert dave.failure == NOT_QUALIFIED and not agents_of(db, "dave")
    assert stranger.failure == NOT_QUALIFIED and not agents_of(db, "stranger")
    # Mephisto found the workers the grants made (one row each); the refused newcomer got one too.
    assert workers(db) == [("alice", "inhouse"), ("bob", "inhouse"), ("dave", "inhouse"), ("stranger", "inhouse")]
    assert alice.details["worker_id"] == str(db.find_workers(worker_name="alice")[0].db_id)


def test_value_requirement_admits_and_refuses_inhouse_workers(db, cli, launch):
    assert cli("grant", "score", "alice", "--provider", "inhouse", "--value", "5", "--create")[0] == 0
    assert cli("grant", "score", "carol", "--provider", "inhouse", "--value", "2")[0] == 0
    run = launch({"requirements": [{"qualification": "score", "comparator": ">=", "value": 3}]})

    alice, carol, newcomer = (arrive(run, n) for n in ("alice", "carol", "newcomer"))
    assert alice.got_unit, alice.details
    assert carol.failure == NOT_QUALIFIED and not agents_of(db, "carol")
    assert newcomer.failure == NOT_QUALIFIED and not agents_of(db, "newcomer")  # no score at all

    # Raising carol's score by name lets her in on her next visit, in the same run.
    assert cli("grant", "score", "carol", "--provider", "inhouse", "--value", "4")[0] == 0
    assert arrive(run, "carol").got_unit
    assert len(agents_of(db, "carol")) == 1
