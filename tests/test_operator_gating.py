"""End to end through a real Operator, mock architect server and mock provider.

Workers arrive over the mock server's websocket exactly as a browser's packets would;
Mephisto's own worker pool decides, using the requirements our mixin put in place.
"""

from __future__ import annotations

import logging

from mephisto.operations.datatypes import WorkerFailureReasons

from conftest import grant, worker
from mephisto_quals.integration.gate import check_worker, first_failure

NOT_QUALIFIED = WorkerFailureReasons.NOT_QUALIFIED


def agents_of(db, name):
    return [a for a in db.find_agents() if a.worker_id == worker(db, name).db_id]


def test_blocklisted_worker_gets_no_unit_and_allowlisted_one_does(db, launch):
    grant(db, "good", "allow")
    grant(db, "bad", "allow")
    grant(db, "bad", "blocked")
    worker(db, "stranger")
    run = launch({"allowlists": ["allow"], "blocklists": ["blocked"]})

    good = run.arrive("good")
    bad = run.arrive("bad")
    stranger = run.arrive("stranger")

    assert good.got_unit and good.failure is None
    assert len(agents_of(db, "good")) == 1
    assert bad.failure == NOT_QUALIFIED and not agents_of(db, "bad")
    assert stranger.failure == NOT_QUALIFIED and not agents_of(db, "stranger")


def test_allowlist_nobody_holds_is_created_warned_and_refuses(db, launch, caplog):
    # Without the qualification in the DB, Mephisto 1.1.1 would skip the requirement
    # and let everyone in; the mixin creates it before launch.
    assert db.find_qualifications("never-granted") == []
    with caplog.at_level(logging.WARNING, logger="mephisto_quals"):
        run = launch({"allowlists": ["never-granted"]})
    assert len(db.find_qualifications("never-granted")) == 1
    assert "nobody holds 'never-granted'" in caplog.text
    assert run.arrive("anyone").failure == NOT_QUALIFIED


def test_failing_onboarding_in_task_a_keeps_worker_out_of_task_b(db, launch):
    run_a = launch(task_name="task-a", use_onboarding=True, onboarding_qualification="onb-a")
    first = run_a.arrive("flunker")
    assert first.got_onboarding
    after = run_a.submit_onboarding(first, passed=False)
    assert after.failure == NOT_QUALIFIED
    assert run_a.arrive("flunker").failure == NOT_QUALIFIED  # refused when coming back

    run_b = launch({"block_onboarding_failed": ["onb-a"]}, task_name="task-b")
    assert run_b.arrive("flunker").failure == NOT_QUALIFIED
    assert not [a for a in agents_of(db, "flunker") if a.get_task_run().db_id == run_b.task_run_id]
    newcomer = run_b.arrive("newcomer")
    assert newcomer.got_unit


def test_require_onboarding_passed_admits_only_passers(db, launch):
    run_a = launch(task_name="task-a", use_onboarding=True, onboarding_qualification="onb-a")
    passer = run_a.submit_onboarding(run_a.arrive("passer"), passed=True)
    assert passer.got_unit
    flunker = run_a.submit_onboarding(run_a.arrive("flunker"), passed=False)
    assert flunker.failure == NOT_QUALIFIED

    run_b = launch({"require_onboarding_passed": ["onb-a"]}, task_name="task-b")
    assert run_b.arrive("passer").got_unit
    assert run_b.arrive("flunker").failure == NOT_QUALIFIED
    # Never took the onboarding: refused, and the worker pool did not crash on it.
    assert run_b.arrive("never-took").failure == NOT_QUALIFIED
    assert run_b.arrive("passer").failure != NOT_QUALIFIED  # pool still answers normally


VALUE_RULES = [
    {"qualification": "score", "comparator": ">=", "value": 3},
    {"qualification": "level", "comparator": "in", "value": [1, 2]},
    {"qualification": "tier", "comparator": "!=", "value": 5},
    {"qualification": "strikes", "comparator": "<", "value": 2},
    {"qualification": "age", "comparator": "LessThanOrEqualTo", "value": 10},
    {"qualification": "group", "comparator": "not in", "value": [7, 8]},
    {"qualification": "cohort", "comparator": "==", "value": 2024},
    {"qualification": "rank", "comparator": "gt", "value": 0},
    {"qualification": "trained", "comparator": "exists"},
    {"qualification": "banned", "comparator": "not exists"},
]

GOOD = {"score": 5, "level": 1, "tier": 1, "strikes": 0, "age": 10, "group": 1, "cohort": 2024, "rank": 1, "trained": 0}


def test_value_requirements_with_every_comparator(db, launch):
    # One worker passing everything, then one per rule failing only that rule.
    failing = {
        "low-score": {"score": 2},
        "no-score": {"score": None},
        "bad-level": {"level": 3},
        "tier5": {"tier": 5},
        "striker": {"strikes": 2},
        "old": {"age": 11},
        "group7": {"group": 7},
        "cohort-off": {"cohort": 2023},
        "rank0": {"rank": 0},
        "untrained": {"trained": None},
        "banned": {"banned": 1},
    }
    crowd = {"ace": {}, **failing}
    for name, overrides in crowd.items():
        for qual, value in {**GOOD, **overrides}.items():
            if value is not None:
                grant(db, name, qual, value)
        worker(db, name)
    run = launch({"requirements": VALUE_RULES}, num_assignments=2)
    plan = run.live_run.blueprint.quals_plan

    assert run.arrive("ace").got_unit
    for name, overrides in failing.items():
        arrival = run.arrive(name)
        assert arrival.failure == NOT_QUALIFIED, name
        stopped_by = first_failure(check_worker(db, worker(db, name).db_id, plan.local))
        assert stopped_by is not None and stopped_by.requirement.qualification == next(iter(overrides)), name


def test_composes_with_mephistos_block_and_onboarding_qualifications(db, launch):
    grant(db, "member", "allow")
    grant(db, "soft-blocked", "allow")
    grant(db, "soft-blocked", "task-block")
    grant(db, "group-blocked", "allow")
    grant(db, "group-blocked", "group-block")
    run = launch(
        {"allowlists": ["allow"], "block_qualifications": ["group-block"]},
        block_qualification="task-block",
        use_onboarding=True,
        onboarding_qualification="onb",
    )
    names = [(q["qualification_name"], q["comparator"]) for q in run.live_run.qualifications]
    assert sorted(names) == sorted(
        [("group-block", "DoesNotExist"), ("allow", "Exists"), ("task-block", "DoesNotExist"), ("onb-failed", "DoesNotExist")]
    )
    assert run.arrive("soft-blocked").failure == NOT_QUALIFIED
    assert run.arrive("group-blocked").failure == NOT_QUALIFIED
    assert run.arrive("outsider").failure == NOT_QUALIFIED
    member = run.arrive("member")
    assert member.got_onboarding
    assert run.submit_onboarding(member, passed=True).got_unit


def test_one_launch_one_copy_when_a_shared_state_is_reused(db, launch):
    from mephisto.utils.qualifications import make_qualification_dict

    from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS

    state = QUALS_BLUEPRINTS["mock_quals"].SharedStateClass()
    own = make_qualification_dict("users-own", "DoesNotExist", None)
    state.qualifications = [own]
    quals = {"allowlists": ["allow"], "requirements": [{"qualification": "score", "comparator": ">=", "value": 1}],
             "mturk": {"system": {"approval_rate": {"comparator": ">=", "value": 90}}},
             "prolific": [{"name": "AgeRangeEligibilityRequirement", "min_age": 18}]}
    first = launch(quals, shared_state=state, task_name="t1", block_qualification="blk",
                   use_onboarding=True, onboarding_qualification="onb")
    first_list = list(first.live_run.qualifications)
    second = launch(quals, shared_state=state, task_name="t2", block_qualification="blk",
                    use_onboarding=True, onboarding_qualification="onb")

    def keys(qs):
        return [(q["qualification_name"], q["comparator"], repr(q["value"])) for q in qs]

    assert keys(second.live_run.qualifications) == keys(first_list)
    assert len(keys(state.qualifications)) == len(set(keys(state.qualifications))) == 6
    assert keys(state.qualifications)[0] == ("users-own", "DoesNotExist", "None")
    assert len(state.mturk_specific_qualifications) == 1
    assert len(state.prolific_specific_qualifications) == 1
    # The first run's own list was not changed by the second launch.
    assert keys(first.live_run.qualifications) == keys(first_list)


def test_fee_adding_presets_print_a_cost_note_at_launch(db, launch, caplog):
    with caplog.at_level(logging.WARNING, logger="mephisto_quals"):
        launch({"mturk": {"system": {"masters": True}}})
    assert "cost: Masters add 5% to MTurk's commission" in caplog.text
