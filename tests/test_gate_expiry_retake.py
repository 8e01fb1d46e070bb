"""Expiry and retake delays at gate time, through a real Operator and Mephisto's worker pool."""

from __future__ import annotations

import time

from mephisto.operations.datatypes import WorkerFailureReasons

from conftest import worker
from mephisto_quals.admin import grants
from mephisto_quals.admin.queries import history, holders
from mephisto_quals.integration import gate
from mephisto_quals.integration.gate import check_worker, qualified

NOT_QUALIFIED = WorkerFailureReasons.NOT_QUALIFIED


def test_expired_block_stops_counting_at_the_gate_without_cleanup(db, launch, clock):
    worker(db, "timed-out")
    worker(db, "still-blocked")
    grants.grant(db, "time-out", ["timed-out"], provider="mock", create=True, expires_in="1s", reason="cool off")
    grants.grant(db, "time-out", ["still-blocked"], provider="mock", expires_in="1h")
    run = launch({"block_qualifications": ["time-out"]})
    assert run.arrive("still-blocked").failure == NOT_QUALIFIED
    clock.advance(1.2)
    # No prune has run: the expired grant row is still in Mephisto's table...
    assert any(h.worker_name == "timed-out_sandbox" for h in holders(db, "time-out", include_expired=True))
    # ...but it no longer counts.
    assert run.arrive("timed-out").got_unit
    assert run.arrive("still-blocked").failure == NOT_QUALIFIED


def test_expired_allowlist_grant_no_longer_admits(db, launch, clock):
    grants.grant(db, "trial", ["trialist"], provider="mock", create=True, expires_in="1s")
    w = worker(db, "trialist")
    plan_dicts = [{"qualification_name": "trial", "comparator": "Exists", "value": None, "applicable_providers": None}]
    assert qualified(w, plan_dicts)
    clock.advance(1.2)
    assert not qualified(w, plan_dicts)


def test_value_comparison_on_missing_qualification_refuses_instead_of_raising(db):
    from mephisto.utils.qualifications import find_or_create_qualification

    find_or_create_qualification(db, "score")
    w = worker(db, "newcomer")
    dicts = [{"qualification_name": "score", "comparator": "GreaterThanOrEqualTo", "value": 1, "applicable_providers": None}]
    assert qualified(w, dicts) is False
    # Mephisto's own check skips qualifications that do not exist; so does ours.
    assert qualified(w, [{**dicts[0], "qualification_name": "never-made"}]) is True


def test_failed_onboarding_is_final_without_a_retake_delay(db, launch):
    run = launch(task_name="screened", use_onboarding=True, onboarding_qualification="screen")
    failed = run.submit_onboarding(run.arrive("flunker"), passed=False)
    assert failed.failure == NOT_QUALIFIED
    assert run.arrive("flunker").failure == NOT_QUALIFIED


def test_retake_delay_lets_a_failed_worker_try_again(db, launch, clock):
    run = launch({"onboarding_retake_delay": "2s"}, task_name="screened", use_onboarding=True,
                 onboarding_qualification="screen")
    first = run.arrive("retaker")
    assert first.got_onboarding
    assert run.submit_onboarding(first, passed=False).failure == NOT_QUALIFIED
    assert run.arrive("retaker").failure == NOT_QUALIFIED  # too early
    clock.advance(2.5)
    again = run.arrive("retaker")
    assert again.got_onboarding, again.details
    assert run.submit_onboarding(again, passed=True).got_unit
    actions = [(h.action, h.qualification, h.source) for h in history(db, worker="retaker")]
    assert ("reset-onboarding", "screen", "retake-delay") in actions
    assert ("reset-onboarding", "screen-failed", "retake-delay") in actions
    assert len([a for a in actions if a[2] == "retake-delay"]) == 2  # cleared once, by the retake writer


def test_clock_fixture_restores_the_gate_clock():
    assert gate.clock is time.time


def test_check_worker_reports_expired_grants_as_not_held(db):
    from mephisto_quals.compile.requirements import Requirement

    grants.grant(db, "badge", ["holder"], provider="mock", create=True, expires_in="1h")
    w = worker(db, "holder")
    req = Requirement("badge", "Exists", None, "test", "must hold badge")
    assert check_worker(db, w.db_id, [req])[0].passed
    later = time.time() + 7200
    result = check_worker(db, w.db_id, [req], now=later)[0]
    assert not result.passed and not result.held


def test_check_worker_takes_now_from_the_gate_clock(db, clock):
    from mephisto_quals.compile.requirements import Requirement

    grants.grant(db, "badge", ["holder"], provider="mock", create=True, expires_in="1h")
    w = worker(db, "holder")
    req = Requirement("badge", "Exists", None, "test", "must hold badge")
    assert check_worker(db, w.db_id, [req])[0].passed
    clock.advance(3601)
    assert not check_worker(db, w.db_id, [req])[0].passed
