"""explain and forecast: by task name (a real run's stored args) and from a config."""

from __future__ import annotations

from conftest import grant, worker
from mephisto_quals.admin import grants
from mephisto_quals.admin.eligibility import explain, forecast

CONFIG = {
    "mephisto": {
        "blueprint": {
            "_blueprint_type": "mock_quals",
            "block_qualification": "task-block",
            "quals": {
                "allowlists": ["allow"],
                "requirements": [{"qualification": "score", "comparator": ">=", "value": 3}],
                "mturk": {"system": {"masters": True, "approval_rate": {"comparator": ">=", "value": 95}}},
            },
        },
        "provider": {"_provider_type": "mock"},
    }
}


def test_explain_by_task_name_uses_the_runs_stored_args(db, launch):
    grant(db, "ann", "allow")
    grant(db, "ann", "score", 2)
    launch({"allowlists": ["allow"], "requirements": [{"qualification": "score", "comparator": ">=", "value": 3}]},
           task_name="stored-task")
    result = explain(db, "ann", provider="mock", task="stored-task")
    rows = {(r.requirement, r.verdict, r.actual) for r in result.rows}
    assert ("allow exists", "pass", "1") in rows
    assert ("score >= 3", "fail", "2") in rows
    assert result.local_verdict == "fail"


def test_explain_from_config_marks_provider_side_requirements_unknown(db):
    grants.grant(db, "allow", ["bo"], provider="mock", create=True)
    grants.set_values(db, "score", {"bo": 4}, provider="mock", create=True)
    result = explain(db, "bo", provider="mock", config=CONFIG)
    assert result.local_verdict == "pass"
    mturk = [r for r in result.rows if r.where == "mturk"]
    assert len(mturk) == 2 and all(r.verdict == "unknown" and "only MTurk knows" in r.actual for r in mturk)
    mephisto = [r for r in result.rows if r.where == "mephisto"]
    assert [(r.requirement, r.verdict) for r in mephisto] == [("task-block not exists", "pass")]


def test_explain_a_worker_mephisto_never_saw(db):
    grants.grant(db, "allow", ["someone"], provider="mock", create=True)
    result = explain(db, "stranger", provider="mock", config=CONFIG)
    assert result.worker_id is None and result.local_verdict == "fail"
    assert {r.actual for r in result.rows if r.where == "local"} == {"never seen"}


def test_forecast_counts_and_breaks_down(db):
    for name, score in (("a", 5), ("b", 3), ("c", 1)):
        grant(db, name, "allow")
        grant(db, name, "score", score)
    worker(db, "d")  # holds nothing
    grant(db, "b", "task-block")
    result = forecast(db, config=CONFIG)
    assert (result.known_workers, result.passing) == (4, 1)
    breakdown = {r.describe(): n for r, n in result.per_requirement}
    assert breakdown == {"allow exists": 3, "score exists": 3, "score >= 3": 2, "task-block not exists": 3}
    assert any("Masters" in w for w in result.warnings)


def test_forecast_warns_when_nobody_passes(db):
    worker(db, "lonely")
    result = forecast(db, config={"mephisto": {"blueprint": {"quals": {"allowlists": ["ghost"]}}}})
    assert result.passing == 0
    assert any("nobody could work" in w for w in result.warnings)
