"""Review-driven grants on real mock runs: Mephisto's own review calls, then plan/apply, then the gate."""

from __future__ import annotations

import sqlite3
import time
from typing import Dict, List, Optional, Tuple

import pytest
from conftest import grant, worker
from mephisto.abstractions.blueprint import AgentState
from mephisto.data_model.agent import Agent
from mephisto.operations.datatypes import WorkerFailureReasons

from mephisto_quals.admin import review
from mephisto_quals.errors import QualsConfigError
from mephisto_quals.admin.queries import holders
from mephisto_quals.admin.review import (
    APPLIED_TABLE,
    ReviewInProgressError,
    UnknownRunError,
    apply_review,
    load_rules,
    plan_review,
)

NOT_QUALIFIED = WorkerFailureReasons.NOT_QUALIFIED

RULES = {
    "rules": [
        {"when": "approved", "grant": "trusted_annotators"},
        {"when": "rejected", "grant": "spammers"},
        {"when": "soft-rejected", "grant": {"qualification": "my_task_block"}},
        {"when": "approved", "score": {"qualification": "annotator_score", "add": 1, "initial": 0}},
        {"when": "rejected", "score": {"qualification": "annotator_score", "add": -5}},
        {"when": "rejected", "revoke": "trusted_annotators"},
    ]
}
SCORE_RULES = {"rules": [{"when": "approved", "score": {"qualification": "annotator_score", "add": 1}},
                         {"when": "rejected", "score": {"qualification": "annotator_score", "add": -5}}]}


def review_units(db, run, outcomes: List[Tuple[str, Optional[str]]]) -> Dict[str, List[str]]:
    """Each (worker, outcome) takes a unit; outcome is approved / rejected / soft_rejected or None (left in task)."""
    units: Dict[str, List[str]] = {}
    for name, outcome in outcomes:
        arrival = run.arrive(name)
        assert arrival.got_unit, (name, arrival.details)
        agent = Agent.get(db, arrival.agent_id)
        units.setdefault(name, []).append(agent.unit_id)
        if outcome is None:
            continue
        agent.update_status(AgentState.STATUS_COMPLETED)  # as the worker's submission would
        if outcome == "approved":
            agent.approve_work()
        elif outcome == "rejected":
            agent.reject_work("did not follow the instructions")
        else:
            agent.soft_reject_work()
        assert agent.get_status() == outcome and agent.get_unit().get_status() != "assigned"
    return units


def value(db, name: str, qualification: str) -> Optional[int]:
    held = worker(db, name).get_granted_qualification(qualification)
    return None if held is None else held.value


def snapshot(db) -> Dict[str, list]:
    """Every row mephisto-quals or a grant could touch, and the table list."""
    conn = sqlite3.connect(db.db_path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")]
        out = {"tables": tables}
        for t in ("qualifications", "granted_qualifications", "workers", "mephisto_quals_grant_meta",
                  "mephisto_quals_audit", APPLIED_TABLE):
            if t in tables:
                out[t] = conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
        return out
    finally:
        conn.close()


def audit(db) -> List[tuple]:
    conn = sqlite3.connect(db.db_path)
    try:
        return conn.execute("SELECT qualification, worker_name, action, old_value, new_value, reason, source "
                            "FROM mephisto_quals_audit ORDER BY audit_id").fetchall()
    finally:
        conn.close()


def test_review_outcomes_become_grants_scores_and_a_score_gate(db, launch):
    grant(db, "carol", "trusted_annotators")
    grant(db, "carol", "annotator_score", 3)
    run = launch(task_name="labelling", num_assignments=4)
    review_units(db, run, [("alice", "approved"), ("bob", "rejected"), ("carol", "approved"),
                           ("carol", "rejected"), ("dave", "soft_rejected"), ("alice", "approved"),
                           ("erin", None)])

    plan = plan_review(db, task_name="labelling", rules=load_rules(RULES))
    assert plan.run_ids == [run.task_run_id]
    assert plan.units_total == 8
    assert plan.reviewed == {"approved": 3, "rejected": 2, "soft_rejected": 1}
    assert plan.skipped_no_agent == 1 and sum(plan.skipped_unreviewed.values()) == 1 and plan.skipped == 2
    got = [(c.qualification, c.worker_name, c.action, c.old_value, c.new_value, c.rule) for c in plan.changes]
    assert got == [
        ("annotator_score", "alice_sandbox", "score", None, 2, 3),   # 0 + 1 + 1
        ("annotator_score", "bob_sandbox", "score", None, -5, 4),
        ("annotator_score", "carol_sandbox", "score", 3, -1, 3),     # 3 + 1 - 5
        ("my_task_block", "dave_sandbox", "grant", None, 1, 2),
        ("spammers", "bob_sandbox", "grant", None, 1, 1),
        ("spammers", "carol_sandbox", "grant", None, 1, 1),
        ("trusted_annotators", "alice_sandbox", "grant", None, 1, 0),
        ("trusted_annotators", "bob_sandbox", "revoke", None, None, 5),
        ("trusted_annotators", "carol_sandbox", "revoke", 1, None, 5),  # later rule wins over rules[0]
    ]
    assert [(c.worker_name, c.winner, c.overridden) for c in plan.conflicts] == [("carol_sandbox", 5, (0,))]
    assert plan_review(db, task_name="labelling", rules=RULES).changes == plan.changes  # deterministic
    text = plan.summary()
    assert "8 units" in text and "3 approved" in text and "1 without an agent" in text
    assert "conflicts: 1 (the later rule in the file wins)" in text

    # The other order: grant after revoke, so the grant wins for carol.
    flipped = {"rules": [RULES["rules"][5], RULES["rules"][0]]}
    carol = [c for c in plan_review(db, task_name="labelling", rules=flipped).changes if c.worker_name == "carol_sandbox"]
    assert [(c.action, c.old_value, c.new_value, c.rule) for c in carol] == [("grant", 1, 1, 1)]

    seen: List[int] = []
    reports = apply_review(db, plan, progress=seen.append)
    assert all(r.ok for r in reports) and sum(seen) == 9
    assert (value(db, "alice", "annotator_score"), value(db, "bob", "annotator_score"),
            value(db, "carol", "annotator_score")) == (2, -5, -1)
    assert value(db, "alice", "trusted_annotators") == 1 and value(db, "carol", "trusted_annotators") is None
    assert value(db, "bob", "spammers") == value(db, "carol", "spammers") == value(db, "dave", "my_task_block") == 1
    assert value(db, "erin", "annotator_score") is None and value(db, "dave", "annotator_score") is None
    rows = audit(db)
    review_rows = [r for r in rows if r[6] == "review"]
    assert len(review_rows) == 8  # bob's revoke changed nothing, so left no row
    carol_revoke = next(r for r in review_rows if r[:3] == ("trusted_annotators", "carol_sandbox", "revoke"))
    assert f"run {run.task_run_id}" in carol_revoke[5] and "rules[5] rejected -> revoke trusted_annotators" in carol_revoke[5]

    # A task gated on the score admits the approved worker and refuses the rejected ones.
    gated = launch({"requirements": [{"qualification": "annotator_score", "comparator": ">=", "value": 0}]},
                   task_name="next-task", num_assignments=2)
    assert gated.arrive("alice").got_unit
    assert gated.arrive("bob").failure == NOT_QUALIFIED
    assert gated.arrive("carol").failure == NOT_QUALIFIED
    assert gated.arrive("erin").failure == NOT_QUALIFIED  # never scored


def test_applying_again_changes_nothing_and_later_runs_add_only_their_units(db, launch):
    rules = {"rules": SCORE_RULES["rules"] + [
        {"when": "approved", "grant": {"qualification": "regulars", "expires_in": "30d", "reason": "good work"}}]}
    first = launch(task_name="rounds", num_assignments=2)
    review_units(db, first, [("alice", "approved"), ("bob", "rejected")])
    plan = plan_review(db, task_name="rounds", rules=rules)
    start = time.time()
    apply_review(db, plan)
    assert (value(db, "alice", "annotator_score"), value(db, "bob", "annotator_score")) == (1, -5)
    (regular,) = holders(db, "regulars")
    assert regular.worker_name == "alice_sandbox" and regular.reason.startswith("review of run")
    assert "(good work)" in regular.reason and abs(regular.expires_at - (start + 30 * 86400)) < 60
    after = snapshot(db)

    assert apply_review(db, plan) == []  # the same plan again: every unit already counted
    replanned = plan_review(db, task_name="rounds", rules=rules)
    assert replanned.changes == [] and replanned.already_applied == 3
    assert "already applied earlier: 3" in replanned.summary()
    assert apply_review(db, replanned) == []
    assert snapshot(db) == after  # no score added twice, no expiry pushed back

    # A second run of the same task: only its own units count on top of the stored values.
    second = launch(task_name="rounds", num_assignments=2)
    review_units(db, second, [("alice", "rejected"), ("carol", "approved")])
    only_second = plan_review(db, run_ids=[second.task_run_id], rules=rules)
    whole_task = plan_review(db, task_name="rounds", rules=rules)
    assert whole_task.run_ids == sorted([first.task_run_id, second.task_run_id], key=int)
    assert whole_task.changes == only_second.changes and whole_task.already_applied == 3
    assert [(c.qualification, c.worker_name, c.old_value, c.new_value) for c in whole_task.changes] == [
        ("annotator_score", "alice_sandbox", 1, -4), ("annotator_score", "carol_sandbox", None, 1),
        ("regulars", "carol_sandbox", None, 1)]
    apply_review(db, whole_task)
    apply_review(db, whole_task)
    assert (value(db, "alice", "annotator_score"), value(db, "bob", "annotator_score"),
            value(db, "carol", "annotator_score")) == (-4, -5, 1)
    assert [h.worker_name for h in holders(db, "regulars")] == ["alice_sandbox", "carol_sandbox"]

    with pytest.raises(UnknownRunError, match="no task named 'nope'"):
        plan_review(db, task_name="nope", rules=rules)
    with pytest.raises(UnknownRunError, match="no task run with id '999'"):
        plan_review(db, run_ids=["999"], rules=rules)
    launch(task_name="labelling", num_assignments=1)
    with pytest.raises(UnknownRunError, match="not a run of task 'labelling'"):
        plan_review(db, task_name="labelling", run_ids=[first.task_run_id], rules=rules)


def test_dry_run_reports_exactly_and_writes_nothing(db, launch):
    run = launch(task_name="dry", num_assignments=2)
    review_units(db, run, [("alice", "approved"), ("bob", "rejected")])
    plan = plan_review(db, task_name="dry", rules=RULES)
    before = snapshot(db)
    assert before[APPLIED_TABLE] == []  # created empty with our other tables when the run launched

    dry = apply_review(db, plan, dry_run=True)
    assert snapshot(db) == before
    assert all(r.dry_run for r in dry)
    assert {(r.qualification, r.action): r.counts() for r in dry} == {
        ("annotator_score", "grant"): {"granted": 2},
        ("spammers", "grant"): {"granted": 1},
        ("trusted_annotators", "grant"): {"granted": 1},
        ("trusted_annotators", "revoke"): {"not held": 1},
    }
    real = apply_review(db, plan)
    assert [(r.qualification, r.action, r.counts()) for r in real] == [
        (r.qualification, r.action, r.counts()) for r in dry]
    assert value(db, "alice", "annotator_score") == 1 and value(db, "bob", "spammers") == 1


def test_an_interrupted_apply_never_counts_a_unit_twice(db, launch, monkeypatch):
    run = launch(task_name="crash", num_assignments=2)
    review_units(db, run, [("alice", "approved"), ("bob", "rejected")])
    plan = plan_review(db, task_name="crash", rules=SCORE_RULES)
    untouched = snapshot(db)

    # The grants call fails: nothing is written and the claims are released.
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(review.grants, "set_values", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        apply_review(db, plan)
    monkeypatch.undo()
    after_failure = snapshot(db)
    assert after_failure[APPLIED_TABLE] == [] and after_failure["mephisto_quals_audit"] == untouched["mephisto_quals_audit"]
    assert plan_review(db, task_name="crash", rules=SCORE_RULES).changes == plan.changes

    # The process dies after the grant committed but before confirming: the audit proves it.
    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(review, "_settle", die)
    with pytest.raises(KeyboardInterrupt):
        apply_review(db, plan)
    monkeypatch.undo()
    assert value(db, "alice", "annotator_score") == 1 and value(db, "bob", "annotator_score") == -5
    again = plan_review(db, task_name="crash", rules=SCORE_RULES)
    assert again.changes == [] and again.already_applied == 2
    assert apply_review(db, plan) == []
    assert value(db, "alice", "annotator_score") == 1


def test_a_claim_in_flight_blocks_and_an_abandoned_one_is_taken_over(db, launch):
    run = launch(task_name="busy", num_assignments=1)
    units = review_units(db, run, [("alice", "approved")])
    plan = plan_review(db, task_name="busy", rules=SCORE_RULES)
    conn = sqlite3.connect(db.db_path)
    conn.execute(review._APPLIED_SCHEMA)
    conn.execute(f"INSERT INTO {APPLIED_TABLE} VALUES (?, 'annotator_score', 1, ?, 'rules[0]', 'other-0', 0, ?)",
                 (units["alice"][0], run.task_run_id, time.time()))
    conn.commit()
    with pytest.raises(ReviewInProgressError, match="being applied by another review"):
        apply_review(db, plan)
    assert value(db, "alice", "annotator_score") is None
    conn.execute(f"UPDATE {APPLIED_TABLE} SET at = ?", (time.time() - review.STALE_CLAIM_SECONDS - 1,))
    conn.commit()
    conn.close()
    apply_review(db, plan)
    assert value(db, "alice", "annotator_score") == 1
    assert plan_review(db, task_name="busy", rules=SCORE_RULES).already_applied == 1


def test_rule_file_with_aliases_shorthand_and_options(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - when: [rejected, soft-rejected]\n"
        "    grant: {qualification: blocked, value: 2, expires_in: 30d, reason: low quality}\n"
        "  - when: approved\n"
        "    revoke: blocked\n"
    )
    rules = load_rules(str(path))
    assert [(r.index, r.when, r.action, r.qualification, r.value, r.expires_in, r.reason) for r in rules] == [
        (0, ("rejected", "soft_rejected"), "grant", "blocked", 2, "30d", "low quality"),
        (1, ("approved",), "revoke", "blocked", 1, None, None),
    ]
    assert load_rules(path) == rules
    assert set(review.REVIEW_STATUSES) == {AgentState.STATUS_APPROVED, AgentState.STATUS_REJECTED,
                                           AgentState.STATUS_SOFT_REJECTED}


def _rules(*rules):
    return {"rules": list(rules)}


BAD = [
    pytest.param(_rules({"when": "accepted", "grant": "q"}), "rules[0].when", "approved, rejected, soft_rejected",
                 id="unknown-when"),
    pytest.param(_rules({"grant": "q"}), "rules[0].when", "review outcome", id="missing-when"),
    pytest.param(_rules({"when": "approved", "grant": {"value": 2}}), "rules[0].grant.qualification",
                 "name the qualification", id="missing-qualification"),
    pytest.param(_rules({"when": "approved", "grant": " q "}), "rules[0].grant.qualification", "whitespace",
                 id="padded-name"),
    pytest.param(_rules({"when": "approved", "grant": "q"}, {"when": "rejected", "grant": "r"},
                        {"when": "rejected", "score": {"qualification": "s", "add": "five"}}),
                 "rules[2].score.add", "integer", id="non-integer-add"),
    pytest.param(_rules({"when": "rejected", "score": {"qualification": "s"}}), "rules[0].score.add",
                 "how much to add", id="missing-add"),
    pytest.param(_rules({"when": "approved", "score": {"qualification": "s", "add": True}}), "rules[0].score.add",
                 "integer", id="boolean-add"),
    pytest.param(_rules({"when": "approved", "grant": {"qualification": "q", "value": 1.5}}),
                 "rules[0].grant.value", "integers", id="non-integer-value"),
    pytest.param(_rules({"when": "approved", "grant": {"qualification": "q", "expires_in": "soon"}}),
                 "rules[0].grant.expires_in", "30d", id="bad-expires-in"),
    pytest.param(_rules({"when": "approved", "grant": {"qualification": "q", "expires_in": "0d"}}),
                 "rules[0].grant.expires_in", "longer than zero", id="zero-expires-in"),
    pytest.param(_rules({"when": "approved", "grant": {"qualification": "q", "valu": 2}}), "rules[0].grant.valu",
                 "unknown key", id="unknown-action-key"),
    pytest.param(_rules({"when": "approved", "grant": "q", "note": "x"}), "rules[0].note", "unknown key",
                 id="unknown-rule-key"),
    pytest.param(_rules({"when": "approved"}), "rules[0]", "exactly one action", id="no-action"),
    pytest.param(_rules({"when": "approved", "grant": "q", "revoke": "q"}), "rules[0].grant/revoke",
                 "exactly one action", id="two-actions"),
    pytest.param(_rules({"when": "approved", "score": "s"}), "rules[0].score", "add: N", id="score-shorthand"),
    pytest.param(_rules({"when": "approved", "score": {"qualification": "s", "add": 1}},
                        {"when": "rejected", "revoke": "s"}),
                 "rules[1].revoke.qualification", "either a score", id="score-mixed-with-revoke"),
    pytest.param(_rules({"when": "approved", "score": {"qualification": "s", "add": 1, "initial": 0}},
                        {"when": "rejected", "score": {"qualification": "s", "add": -1, "initial": 5}}),
                 "rules[1].score.initial", "must agree", id="initials-disagree"),
    pytest.param({"rules": []}, "rules", "non-empty list", id="no-rules"),
    pytest.param({"rule": [{"when": "approved", "grant": "q"}]}, "rule", "unknown key", id="misspelt-top-key"),
    pytest.param(_rules("approved: q"), "rules[0]", "a rule is a mapping", id="rule-not-mapping"),
]


@pytest.mark.parametrize("cfg, path, expected", BAD)
def test_bad_rules_are_refused_with_path_value_and_what_is_valid(cfg, path, expected):
    with pytest.raises(QualsConfigError) as caught:
        load_rules(cfg)
    assert isinstance(caught.value, ValueError)
    paths = [p.path for p in caught.value.problems]
    assert path in paths, caught.value
    problem = caught.value.problems[paths.index(path)]
    assert expected in problem.expected
    assert path in str(caught.value) and expected in str(caught.value)


def test_every_problem_is_listed_at_once_and_files_are_checked(tmp_path):
    cfg = _rules({"when": "approve", "grant": "q"}, {"when": "rejected", "score": {"qualification": "s", "add": 1.5}})
    with pytest.raises(QualsConfigError) as caught:
        load_rules(cfg)
    assert [(p.path, p.value) for p in caught.value.problems] == [("rules[0].when", "approve"),
                                                                   ("rules[1].score.add", 1.5)]
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [when: approved\n")
    with pytest.raises(QualsConfigError, match="not valid YAML"):
        load_rules(broken)
    with pytest.raises(FileNotFoundError):
        load_rules(tmp_path / "missing.yaml")
