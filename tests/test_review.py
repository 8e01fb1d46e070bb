"""Review-driven grants on real mock runs: Mephisto's own review calls, then plan/apply, then the gate."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from mephisto.abstractions.blueprint import AgentState
from mephisto.data_model.agent import Agent
from mephisto.operations.datatypes import WorkerFailureReasons

import mephisto_quals
from conftest import grant, worker
from mephisto_quals.admin import grants, review
from mephisto_quals.admin.queries import holders
from mephisto_quals.admin.review import (
    APPLIED_TABLE,
    UnknownRunError,
    apply_review,
    load_rules,
    plan_review,
)
from mephisto_quals.errors import QualsConfigError

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


def test_a_failure_inside_apply_leaves_nothing_applied_and_a_retry_counts_once(db, launch, monkeypatch):
    grant(db, "carol", "trusted_annotators")
    run = launch(task_name="crash", num_assignments=3)
    review_units(db, run, [("alice", "approved"), ("bob", "rejected"), ("carol", "rejected")])
    plan = plan_review(db, task_name="crash", rules=RULES)
    assert len({(c.qualification, c.action) for c in plan.changes}) > 2  # several grants calls in one apply
    untouched = snapshot(db)
    real_set_values, real_revoke = grants.set_values, grants.revoke

    # The first grants call fails: nothing is written.
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(grants, "set_values", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        apply_review(db, plan)
    monkeypatch.undo()
    assert snapshot(db) == untouched

    # The process dies after two grants calls made their rows and audit, before the commit:
    # those rows go with it (and so does the qualification the first call created).
    calls: List[str] = []

    def dies_on_third(real):
        def call(*args, **kwargs):
            calls.append(args[1])
            if len(calls) == 3:
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(grants, "set_values", dies_on_third(real_set_values))
    monkeypatch.setattr(grants, "revoke", dies_on_third(real_revoke))
    with pytest.raises(KeyboardInterrupt):
        apply_review(db, plan)
    monkeypatch.undo()
    assert calls[:2] == ["annotator_score", "spammers"]
    after = snapshot(db)
    assert after == untouched, "a crash inside apply left something behind"
    assert (len(after["granted_qualifications"]), len(after["mephisto_quals_audit"]), len(after[APPLIED_TABLE])) == (
        len(untouched["granted_qualifications"]), len(untouched["mephisto_quals_audit"]), 0)
    assert plan_review(db, task_name="crash", rules=RULES).changes == plan.changes

    # Applying again does the whole job once; a third apply finds nothing to do.
    reports = apply_review(db, plan)
    assert all(r.ok for r in reports)
    assert [value(db, n, "annotator_score") for n in ("alice", "bob", "carol")] == [1, -5, -5]
    assert value(db, "alice", "trusted_annotators") == 1 and value(db, "carol", "trusted_annotators") is None
    assert value(db, "bob", "spammers") == value(db, "carol", "spammers") == 1
    assert apply_review(db, plan) == []
    again = plan_review(db, task_name="crash", rules=RULES)
    assert again.changes == [] and again.already_applied == 8
    review_rows = [r for r in audit(db) if r[6] == "review"]
    assert sorted(r[:5] for r in review_rows if r[0] == "annotator_score") == [
        ("annotator_score", "alice_sandbox", "grant", None, 1), ("annotator_score", "bob_sandbox", "grant", None, -5),
        ("annotator_score", "carol_sandbox", "grant", None, -5)]
    assert len(review_rows) == 7  # 3 scores, 2 spammers, alice's grant, carol's revoke (bob held none)
    assert all("[review" not in r[5] for r in review_rows)  # no tag in the reason: nothing parses it


# Plans the review of one run, then applies it with the grants call hooked:
#   race: the two children start the apply together (a barrier of files), and each makes its
#         first grants call only once the other has got that far too, or 2 s passed;
#   hang: after the first grants call has made its rows, announce it and hang (to be killed).
APPLY_CHILD = r"""
import json, sys, time
from pathlib import Path
from mephisto_quals.admin import grants
from mephisto_quals.admin.review import apply_review, plan_review

path, run_id, rules, folder, k, mode = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), Path(sys.argv[4]), sys.argv[5], sys.argv[6]
plan = plan_review(path, run_ids=[run_id], rules=rules)
real = grants.set_values

def meet(name, timeout):
    (folder / f"{name}.{k}").touch()
    deadline = time.monotonic() + timeout
    while not all((folder / f"{name}.{n}").exists() for n in ("a", "b")) and time.monotonic() < deadline:
        time.sleep(0.005)

def hooked(*args, **kwargs):
    if mode == "race":
        meet("writing", 2.0)
        return real(*args, **kwargs)
    report = real(*args, **kwargs)
    print("granted", flush=True)
    time.sleep(600)
    return report

grants.set_values = hooked
if mode == "race":
    meet("start", 60.0)
began = time.time()
reports = apply_review(path, plan)
print(json.dumps({"span": [began, time.time()], "counts": [r.counts() for r in reports]}), flush=True)
"""


def start_apply(db, run_id: str, rules: Dict[str, Any], folder: Path, k: str, mode: str) -> subprocess.Popen:
    """APPLY_CHILD in its own process, on the installed mephisto_quals, with its own HOME."""
    home = folder / f"home-{k}"
    home.mkdir(exist_ok=True)
    env = {key: v for key, v in os.environ.items() if not key.startswith("PYTHON")}
    env["HOME"] = str(home)
    preamble = f"import sys; sys.path.insert(0, {str(Path(mephisto_quals.__file__).parents[1])!r})\n"
    return subprocess.Popen(
        [sys.executable, "-I", "-c", preamble + APPLY_CHILD, db.db_path, run_id, json.dumps(rules), str(folder), k, mode],
        env=env, cwd=str(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.subprocess
def test_two_processes_applying_reviews_of_different_runs_at_once_both_count(db, launch, tmp_path):
    grant(db, "alice", "annotator_score", 5)
    first = launch(task_name="parallel", num_assignments=1)
    second = launch(task_name="parallel", num_assignments=1)
    units = review_units(db, first, [("alice", "approved")])["alice"] + review_units(db, second, [("alice", "approved")])["alice"]
    for run in (first, second):  # each plan on its own: 5 -> 6
        assert [(c.old_value, c.new_value) for c in plan_review(db, run_ids=[run.task_run_id], rules=SCORE_RULES).changes] == [(5, 6)]

    procs = [start_apply(db, run.task_run_id, SCORE_RULES, tmp_path, k, "race") for run, k in ((first, "a"), (second, "b"))]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    done = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    spans = [d["span"] for d in done]
    assert max(a for a, _ in spans) < min(b for _, b in spans), f"the applies did not overlap: {spans}"
    assert [d["counts"] for d in done] == [[{"updated": 1}], [{"updated": 1}]]

    assert value(db, "alice", "annotator_score") == 7  # both counted: no lost update
    rows = snapshot(db)[APPLIED_TABLE]
    assert sorted((r[0], r[1]) for r in rows) == sorted((u, "annotator_score") for u in units)  # each unit once
    changes = [r for r in audit(db) if r[6] == "review"]
    assert sorted((r[0], r[1], r[3], r[4]) for r in changes) == [
        ("annotator_score", "alice_sandbox", 5, 6), ("annotator_score", "alice_sandbox", 6, 7)]
    assert plan_review(db, task_name="parallel", rules=SCORE_RULES).changes == []


@pytest.mark.subprocess
def test_kill_9_between_the_grants_and_the_commit_leaves_nothing_then_a_rerun_finishes(db, launch, tmp_path):
    run = launch(task_name="killed", num_assignments=2)
    review_units(db, run, [("alice", "approved"), ("bob", "rejected")])
    plan = plan_review(db, task_name="killed", rules=RULES)
    untouched = snapshot(db)

    proc = start_apply(db, run.task_run_id, RULES, tmp_path, "a", "hang")
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "granted", proc.stderr.read() if proc.poll() is not None else line  # type: ignore[union-attr]
        # The first grants call made its rows inside the apply's transaction, still open: the journal is hot.
        assert Path(db.db_path + "-journal").exists()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(db) == untouched  # the hot journal rolled back: no grant, audit or applied row

    reports = apply_review(db, plan)
    assert all(r.ok for r in reports)
    assert (value(db, "alice", "annotator_score"), value(db, "bob", "annotator_score")) == (1, -5)
    assert value(db, "alice", "trusted_annotators") == 1 and value(db, "bob", "spammers") == 1
    assert apply_review(db, plan) == []
    assert plan_review(db, task_name="killed", rules=RULES).already_applied == 5
    assert len([r for r in audit(db) if r[6] == "review"]) == 4  # bob held no trusted_annotators to revoke


def test_a_claim_left_by_an_older_version_does_not_count_and_is_replaced(db, launch):
    """Before one-transaction applies, a claim (done = 0) was written before the grant; one whose
    process died is no proof of anything: the unit is counted by the next apply, once."""
    run = launch(task_name="legacy", num_assignments=1)
    units = review_units(db, run, [("alice", "approved")])
    conn = sqlite3.connect(db.db_path)
    conn.execute(f"INSERT INTO {APPLIED_TABLE} VALUES (?, 'annotator_score', 1, ?, 'rules[0]', 'old-0', 0, ?)",
                 (units["alice"][0], run.task_run_id, time.time()))
    conn.commit()
    conn.close()
    plan = plan_review(db, task_name="legacy", rules=SCORE_RULES)
    assert plan.already_applied == 0 and [(c.old_value, c.new_value) for c in plan.changes] == [(None, 1)]
    apply_review(db, plan)
    assert value(db, "alice", "annotator_score") == 1
    (row,) = snapshot(db)[APPLIED_TABLE]
    assert (row[0], row[1], row[6]) == (units["alice"][0], "annotator_score", 1) and row[5] != "old-0"
    assert apply_review(db, plan) == [] and value(db, "alice", "annotator_score") == 1


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
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - when: sometimes\n    grant: q\n")
    with pytest.raises(QualsConfigError) as caught:
        load_rules(bad)
    assert [(p.path, p.value) for p in caught.value.problems] == [(f"{bad}: rules[0].when", "sometimes")]
    assert f"{bad}: rules[0].when: 'sometimes' is not valid; use one of approved" in str(caught.value)
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [when: approved\n")
    with pytest.raises(QualsConfigError, match="not valid YAML"):
        load_rules(broken)
    with pytest.raises(FileNotFoundError):
        load_rules(tmp_path / "missing.yaml")
