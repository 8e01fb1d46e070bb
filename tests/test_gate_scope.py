"""The gate's scope and manners: parity with Mephisto's ``worker_is_qualified``, plain runs left
to Mephisto, retakes decided without writing in the gate, and the crowd side of grants."""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import boto3
import pytest
from botocore.stub import Stubber
from mephisto.abstractions.architects.mock_architect import MockArchitectArgs
from mephisto.abstractions.blueprints.mock.mock_blueprint import MockBlueprintArgs, MockSharedState
from mephisto.abstractions.providers.mock.mock_provider import MockProviderArgs
from mephisto.abstractions.providers.mturk_sandbox.sandbox_mturk_requester import SandboxMTurkRequester
from mephisto.data_model.task_run import TaskRunArgs
from mephisto.data_model.worker import Worker
from mephisto.operations.datatypes import WorkerFailureReasons
from mephisto.operations.hydra_config import MephistoConfig
from mephisto.utils.qualifications import find_or_create_qualification, make_qualification_dict, worker_is_qualified
from omegaconf import OmegaConf

from conftest import FakeClock, worker
from mephisto_quals.admin import crowd, grants
from mephisto_quals.admin.queries import history
from mephisto_quals.devtools.mock_crowd import MockRun, free_port
from mephisto_quals.integration import gate, retake
from mephisto_quals.store import Session

NOT_QUALIFIED = WorkerFailureReasons.NOT_QUALIFIED
#: Mephisto 1.1.1 raises IndexError for a value comparison on a qualification the worker lacks;
#: the fix (3d131384) came with v1.2.0, as did the Prolific provider (a feature to detect it by).
MEPHISTO_RAISES_WHEN_NOT_HELD = importlib.util.find_spec("mephisto.abstractions.providers.prolific") is None


# --- parity ---------------------------------------------------------------------------------------

# comparator -> (wanted, a value that passes, a value that fails or None when no value fails)
CASES: Dict[str, Any] = {
    "Exists": (None, 1, None),
    "DoesNotExist": (None, None, 1),
    "EqualTo": (3, 3, 4),
    "NotEqualTo": (3, 4, 3),
    "GreaterThan": (3, 4, 3),
    "GreaterThanOrEqualTo": (3, 3, 2),
    "LessThan": (3, 2, 3),
    "LessThanOrEqualTo": (3, 3, 4),
    "In": ([1, 2], 1, 3),
    "NotIn": ([1, 2], 3, 1),
}
STATES = ["passing", "failing", "not held", "missing", "expired"]


def _mephisto(w: Worker, dicts: List[Dict[str, Any]]) -> Any:
    try:
        return worker_is_qualified(w, dicts)
    except IndexError:
        return IndexError


@pytest.mark.parametrize("comparator", list(CASES))
def test_parity_with_mephistos_worker_is_qualified(db: Any, comparator: str) -> None:
    wanted, good, bad = CASES[comparator]
    qual = f"q-{comparator}"
    find_or_create_qualification(db, qual)
    value_cmp = comparator not in ("Exists", "DoesNotExist")
    for state in STATES:
        w = worker(db, f"{comparator}-{state}")
        name = qual if state != "missing" else f"absent-{comparator}"
        held: Optional[int] = {"passing": good, "failing": bad, "expired": good}.get(state)
        if state in ("passing", "failing") and held is not None:
            w.grant_qualification(qual, held)
        if state == "expired" and held is not None:
            grants.grant(db, qual, [w.db_id], value=held, expires_in="1s", now=time.time() - 60, source="test")
        if state in ("passing", "failing", "expired") and held is None:
            continue  # no such value for this comparator (nothing fails Exists by value)
        dicts = [make_qualification_dict(name, comparator, wanted)]
        ours, theirs = gate.qualified(w, dicts), _mephisto(w, dicts)
        # What each state means for a correct gate:
        expected = {"passing": True, "failing": False, "missing": True,
                    "not held": comparator == "DoesNotExist", "expired": comparator == "DoesNotExist"}[state]
        assert ours is expected, (comparator, state)
        if state == "not held" and value_cmp and MEPHISTO_RAISES_WHEN_NOT_HELD:
            assert theirs is IndexError, (comparator, state)  # documented difference: ours refuses
        elif state == "expired":
            # Documented difference: Mephisto knows nothing of our expiry and sees the row.
            assert theirs is (comparator != "DoesNotExist"), (comparator, state)
        else:
            assert theirs is ours, (comparator, state)


# --- scope: plain runs stay Mephisto's ------------------------------------------------------------

def _launch_plain(operator: Any, requester_name: str, shared_state: MockSharedState) -> MockRun:
    config = MephistoConfig(
        blueprint=MockBlueprintArgs(num_assignments=2, timeout_time=30),
        provider=MockProviderArgs(requester_name=requester_name),
        architect=MockArchitectArgs(should_run_server=True, port=str(free_port())),
        task=TaskRunArgs(task_name="plain", task_title="t", task_description="d", task_reward=0.3, task_tags="t"),
    )
    return MockRun(operator, operator.launch_task_run(OmegaConf.structured(config), shared_state))


def test_loading_the_plugin_leaves_mephistos_function_in_place() -> None:
    code = ("import mephisto_quals.integration.blueprints, hydra_plugins.mephisto_quals.mephisto_quals_searchpath\n"
            "from mephisto.operations import worker_pool\nfrom mephisto.utils import qualifications\n"
            "assert worker_pool.worker_is_qualified is qualifications.worker_is_qualified, worker_pool.worker_is_qualified\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_plain_mock_run_is_gated_by_mephistos_original_function(db: Any, launch: Any, operator: Any,
                                                                 requester_name: str) -> None:
    grants.grant(db, "trial", ["lapsed"], provider="mock", create=True, expires_in="1s", now=time.time() - 60)
    worker(db, "outsider")
    quals_run = launch({"allowlists": ["trial"]}, task_name="quals")
    from mephisto.operations import worker_pool

    assert worker_pool.worker_is_qualified is gate.pool_gate  # installed by the _quals launch
    assert gate.original_gate() is worker_is_qualified
    plain = _launch_plain(operator, requester_name,
                          MockSharedState(qualifications=[make_qualification_dict("trial", "Exists", None)]))
    # Mephisto ignores our expiry: the lapsed grant's row still admits on the plain run...
    assert plain.arrive("lapsed").got_unit
    assert plain.arrive("outsider").failure == NOT_QUALIFIED
    # ...while the same requirement on the _quals run refuses.
    assert quals_run.arrive("lapsed").failure == NOT_QUALIFIED
    assert all(q.get(gate.GATE_KEY) for q in quals_run.live_run.qualifications if q["qualification_name"] == "trial")
    assert not gate.is_ours(plain.live_run.qualifications)


def test_install_is_idempotent_and_keeps_the_original() -> None:
    from mephisto.operations import worker_pool

    gate.install_gate()
    gate.install_gate()
    assert worker_pool.worker_is_qualified is gate.pool_gate
    assert gate.original_gate() is worker_is_qualified
    for name in gate.POOL_MODULES[1:]:  # the Prolific modules, on lines that have them
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) is not None:
            assert sys.modules[name].worker_is_qualified is gate.pool_gate


# --- retakes: decided in the gate, written by the writer ------------------------------------------

def _hold_write_lock(db: Any) -> sqlite3.Connection:
    conn = sqlite3.connect(db.db_path, timeout=0.1, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_gate_decides_a_retake_without_writing(db: Any, launch: Any, clock: FakeClock,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    run = launch({"onboarding_retake_delay": "1h"}, task_name="screened", use_onboarding=True,
                 onboarding_qualification="screen")
    assert run.submit_onboarding(run.arrive("retaker"), passed=False).failure == NOT_QUALIFIED
    w = worker(db, "retaker")
    dicts = run.live_run.qualifications
    assert not gate.qualified(w, dicts)
    clock.advance(3601)
    lock = _hold_write_lock(db)  # any write now would block, then fail
    try:
        result: Dict[str, Any] = {}
        thread = threading.Thread(target=lambda: result.update(ok=gate.qualified(w, dicts),
                                                               verdict=gate.decide(w, dicts)))
        started = time.monotonic()
        thread.start()
        thread.join(timeout=5)
        assert not thread.is_alive() and time.monotonic() - started < 2, "the gate waited for the write lock"
        assert result["ok"] is True and [r.failed for r in result["verdict"].retakes] == ["screen-failed"]
        # The pool's call must not admit before the clearing commits: with the lock held it refuses, fast.
        monkeypatch.setattr(retake, "WAIT", 0.3)
        assert gate.pool_gate(w, dicts) is False
    finally:
        lock.rollback()
        lock.close()
    retake.drain()
    again = run.arrive("retaker")  # the clearing landed once the lock was free (or lands now)
    assert again.got_onboarding, again.details
    actions = sorted((h.action, h.qualification, h.source) for h in history(db, worker="retaker")
                     if h.source == retake.SOURCE)
    assert actions == [("reset-onboarding", "screen", "retake-delay"), ("reset-onboarding", "screen-failed", "retake-delay")]


# --- crowd side -----------------------------------------------------------------------------------

#: Mephisto 1.5.2's MTurkWorker imports MTurkRequester for type checking only, yet its crowd grant
#: and revoke use it at run time: every MTurk crowd call fails there with a NameError (Mephisto's own
#: grant_qualification logs it and keeps the local row, as we do). The tests expect exactly that.
MTURK_CROWD_BROKEN = not hasattr(importlib.import_module("mephisto.abstractions.providers.mturk.mturk_worker"),
                                 "MTurkRequester")
SCREEN_TYPE = "3SCREENTYPE0000000000000000AA"
FAILED_TYPE = "3SCREENFAILED00000000000000BB"


@pytest.fixture
def turk(db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """A sandbox requester whose MTurk client (the one Mephisto's MTurk worker asks its datastore for) is stubbed."""
    requester = SandboxMTurkRequester.new(db, "alice")
    client = boto3.client("mturk", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
                          endpoint_url="https://mturk-requester-sandbox.us-east-1.amazonaws.com")
    stubber = Stubber(client)
    datastore = db.get_datastore_for_provider("mturk_sandbox")
    monkeypatch.setattr(datastore, "get_sandbox_client_for_requester", lambda name: client)
    for name, type_id in (("screen", SCREEN_TYPE), ("screen-failed", FAILED_TYPE)):
        find_or_create_qualification(db, name)
        datastore.create_qualification_mapping(f"{name}_sandbox", requester.db_id, f"{name}_sandbox", type_id)
    stubber.activate()
    yield stubber
    stubber.deactivate()


def _expect(turk: Stubber, method: str, params: Dict[str, Any]) -> None:
    if not MTURK_CROWD_BROKEN:
        turk.add_response(method, {}, params)


def _crowd_ok(errors: List[Any], calls: int) -> bool:
    """No crowd error, or on Mephisto 1.5.2 exactly one NameError per MTurk call Mephisto attempted."""
    if MTURK_CROWD_BROKEN:
        return len(errors) == calls and all("MTurkRequester" in str(e) for e in errors)
    return errors == []


def _mturk_worker(db: Any, worker_id: str) -> Worker:
    return Worker.get(db, db.new_worker(f"{worker_id}_sandbox", "mturk_sandbox"))


def test_grant_and_reset_onboarding_reach_mturk_as_mephisto_would(db: Any, turk: Stubber) -> None:
    w = _mturk_worker(db, "A1FLUNKED")
    for type_id in (SCREEN_TYPE, FAILED_TYPE):
        _expect(turk, "associate_qualification_with_worker", {
            "QualificationTypeId": type_id, "WorkerId": "A1FLUNKED", "IntegerValue": 0, "SendNotification": False})
    for name in ("screen", "screen-failed"):
        report = grants.grant(db, name, [w.db_id], value=0, source="test")
        assert report.ok and _crowd_ok(report.crowd_errors, 1), report.crowd_errors
    for type_id in (SCREEN_TYPE, FAILED_TYPE):
        _expect(turk, "disassociate_qualification_from_worker", {
            "QualificationTypeId": type_id, "WorkerId": "A1FLUNKED", "Reason": ""})
    report = grants.reset_onboarding(db, "screen", [w.db_id], source="test")
    assert report.ok and _crowd_ok(report.crowd_errors, 2), report.crowd_errors
    turk.assert_no_pending_responses()
    assert w.get_granted_qualification("screen") is None and w.get_granted_qualification("screen-failed") is None


def test_mock_workers_dry_runs_and_crowd_false_send_nothing(db: Any, turk: Stubber) -> None:
    m = worker(db, "mocky")
    t = _mturk_worker(db, "A2QUIET")
    # The stubber has no responses queued: any MTurk call would come back as a crowd error.
    for report in (grants.grant(db, "screen", [m.db_id], source="test"),
                   grants.reset_onboarding(db, "screen", [m.db_id], source="test"),
                   grants.grant(db, "screen", [t.db_id], source="test", dry_run=True),
                   grants.grant(db, "screen", [t.db_id], source="test", crowd=False),
                   grants.revoke(db, "screen", [t.db_id], source="test", crowd=False)):
        assert report.ok and report.crowd_errors == [], report.crowd_errors
    turk.assert_no_pending_responses()


def test_inside_a_session_the_caller_syncs_after_commit(db: Any, turk: Stubber) -> None:
    t = _mturk_worker(db, "A3LATER")
    with Session.open(db) as s, s.transaction():
        report = grants.grant(db, "screen", [t.db_id], value=2, source="test", session=s)
    assert report.crowd_errors == [] and len(report.changes) == 1  # nothing sent yet
    _expect(turk, "associate_qualification_with_worker", {
        "QualificationTypeId": SCREEN_TYPE, "WorkerId": "A3LATER", "IntegerValue": 2, "SendNotification": False})
    assert _crowd_ok(crowd.sync_report(db, report), 1)
    turk.assert_no_pending_responses()


def test_a_provider_failure_is_reported_and_the_local_change_stands(db: Any, turk: Stubber) -> None:
    t = _mturk_worker(db, "A4REFUSED")
    if not MTURK_CROWD_BROKEN:
        turk.add_client_error("associate_qualification_with_worker", "ServiceFault", "MTurk is down", 500)
    report = grants.grant(db, "screen", [t.db_id], value=1, source="test")
    turk.assert_no_pending_responses()
    assert t.get_granted_qualification("screen") is not None  # local grant kept
    why = "MTurkRequester" if MTURK_CROWD_BROKEN else "MTurk is down"
    assert len(report.crowd_errors) == 1 and why in report.crowd_errors[0]
    assert "the local change stands" in (report.outcomes[0].error or "")
    assert report.outcomes[0].status == "granted" and "provider call(s) failed" in report.summary()
