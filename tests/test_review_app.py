"""Mephisto 1.5.2's review app and mephisto-quals, both ways, through the app's real Flask views.

- Grants and revokes made on the app's qualification pages show in our history as source
  ``review_app`` (with the reviewer's note as reason), merged in time order with our audit.
- Our grants and revokes write the ``worker_review`` row ``new_worker_review`` would, in the
  grant's own transaction, so the app's ``/api/qualifications/<id>/workers`` lists our grantees.
- Units approved / rejected / soft-rejected in the app become grants through our review rules.

On Mephisto 1.1.1 (no review app, no ``worker_review``) the app tests skip, and one test checks
that grants and history work as before there.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
from mephisto.abstractions.blueprint import AgentState
from mephisto.data_model.agent import Agent

from mephisto_quals.admin import grants, queries
from mephisto_quals.admin.review import apply_review, plan_review
from mephisto_quals.store import Session
from mephisto_quals.store.mephisto import RANDOM_ID_RANGE


def has_worker_review(db: Any) -> bool:
    conn = sqlite3.connect(db.db_path)
    try:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'worker_review'").fetchone() is not None
    finally:
        conn.close()


def review_rows(db: Any) -> List[Dict[str, Any]]:
    conn = sqlite3.connect(db.db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM worker_review ORDER BY creation_date, rowid")]
    finally:
        conn.close()


@pytest.fixture
def app(db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The review app's Flask app on the test database (``mephisto review_app`` serves this)."""
    if not has_worker_review(db):
        pytest.skip("this Mephisto has no worker_review table and no review app qualification pages (1.5.2 adds them)")
    # Importing the app makes a boto3 S3 client (form_composer's validation utils), which would
    # look for AWS credentials on the EC2 metadata address: give it dummy ones, offline.
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    saved = _logging_state()  # importing the app configures logging for the whole process
    try:
        try:
            from mephisto.review_app import server
        except ImportError as e:
            pytest.skip(f"Mephisto's review app server does not import here: {e}")
        # The app reconfigures logging again at creation; the tests need none of it.
        monkeypatch.setattr(server, "dictConfig", lambda config: None)
        flask_app = server.create_app(database_path=db.db_path)
        flask_app.testing = True
        yield flask_app
        flask_app.db.shutdown()
    finally:
        _restore_logging(saved)


def _logging_state() -> Dict[str, Any]:
    """Every logger's level, handlers, propagation and disabled flag (a dictConfig with
    disable_existing_loggers turns off loggers later tests read with caplog)."""
    loggers = [logging.getLogger()] + [v for v in logging.root.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger)]
    return {lg.name: (lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in loggers}


def _restore_logging(saved: Dict[str, Any]) -> None:
    for lg, level, handlers, propagate, disabled in saved.values():
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate, lg.disabled = propagate, disabled
    for v in list(logging.root.manager.loggerDict.values()):  # loggers made since: as a fresh one would be
        if isinstance(v, logging.Logger) and v.name not in saved:
            v.disabled = False


def call(app: Any, method: str, url: str, body: Optional[Dict[str, Any]] = None) -> Any:
    with app.test_client() as client:
        response = client.open(url, method=method, json=body)
    assert response.status_code == 200, (method, url, response.status_code, response.get_data(as_text=True))
    return response.get_json()


def qid(db: Any, name: str) -> int:
    return int(db.find_qualifications(name)[0].db_id)


def wid(db: Any, name: str) -> int:
    found = db.find_workers(worker_name=name)
    return int(found[0].db_id if found else db.new_worker(name, "mock"))


def worker_value(db: Any, name: str, qualification: str) -> Optional[int]:
    held = db.find_workers(worker_name=name)[0].get_granted_qualification(qualification)
    return None if held is None else held.value


def app_holders(app: Any, qualification_id: int) -> Dict[int, int]:
    """worker id -> value, as the app's qualification page lists its holders."""
    got = call(app, "GET", f"/api/qualifications/{qualification_id}/workers")
    return {int(w["worker_id"]): w["value"] for w in got["workers"]}


def test_review_app_grants_and_revokes_show_in_history_merged_with_ours(db, app):
    alice = wid(db, "alice_sandbox")
    grants.grant(db, "trusted", [alice], reason="pilot batch", create=True)
    q = qid(db, "trusted")
    time.sleep(0.01)
    call(app, "PATCH", f"/api/qualifications/{q}/workers/{alice}/grant", {"value": 3, "explanation": "careful work"})
    time.sleep(0.01)
    grants.grant(db, "trusted", [alice], value=4, reason="ours again")
    time.sleep(0.01)
    call(app, "PATCH", f"/api/qualifications/{q}/workers/{alice}/revoke", {"explanation": "left the project"})
    assert db.find_workers(worker_name="alice_sandbox")[0].get_granted_qualification("trusted") is None

    got = [(e.source, e.action, e.old_value, e.new_value, e.reason, e.worker_name)
           for e in queries.history(db, "trusted")]
    assert got == [
        ("review_app", "revoke", None, None, "left the project", "alice_sandbox"),
        ("api", "grant", 3, 4, "ours again", "alice_sandbox"),          # our row there is not listed twice
        ("review_app", "grant", None, 3, "careful work", "alice_sandbox"),
        ("api", "grant", None, 1, "pilot batch", "alice_sandbox"),
    ]
    assert [e.source for e in queries.history(db, worker="alice")] == ["review_app", "api", "review_app", "api"]
    assert [e.source for e in queries.history(db, worker=str(alice), limit=2)] == ["review_app", "api"]
    assert queries.history(db, "other") == []
    entries = queries.history(db)
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)

    from click.testing import CliRunner

    from mephisto_quals.cli.main import cli as root

    result = CliRunner().invoke(root, ["history", "-q", "trusted", "--db", db.db_path], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "review_app" in result.output and "careful work" in result.output and "left the project" in result.output


def test_our_grants_write_the_row_new_worker_review_writes_and_the_app_lists_them(db, app):
    alice, bob, carol = wid(db, "alice_sandbox"), wid(db, "bob_sandbox"), wid(db, "carol_sandbox")
    grants.grant(db, "trusted", ["alice", "bob"], provider="mock", reason="pilot batch", create=True)
    q = qid(db, "trusted")
    assert app_holders(app, q) == {alice: 1, bob: 1}

    db.new_worker_review(worker_id=carol, qualification_id=q, value=1, review_note="theirs", status="grant")
    rows = review_rows(db)
    theirs = rows[-1]
    for ours in rows[:2]:
        assert RANDOM_ID_RANGE[0] <= ours["id"] <= RANDOM_ID_RANGE[1]
        assert {k for k, v in ours.items() if v is not None} == {k for k, v in theirs.items() if v is not None}
        assert (ours["unit_id"], ours["task_id"], ours["status"], ours["review_note"], ours["bonus"],
                ours["blocked_worker"], ours["updated_qualification_id"], ours["updated_qualification_value"],
                ours["revoked_qualification_id"]) == (None, None, "grant", "pilot batch", None, 0, q, 1, None)
        assert len(ours["creation_date"]) == len(theirs["creation_date"])  # YYYY-MM-DD HH:MM:SS.SSS
    assert {r["worker_id"] for r in rows[:2]} == {alice, bob}

    time.sleep(0.01)
    grants.grant(db, "trusted", ["alice"], provider="mock", value=5)
    time.sleep(0.01)
    grants.revoke(db, "trusted", ["bob"], provider="mock", reason="done")
    assert app_holders(app, q) == {alice: 5}  # carol holds no grant: her row alone does not list her
    latest = review_rows(db)[-2:]
    assert [(r["worker_id"], r["status"], r["updated_qualification_id"], r["updated_qualification_value"],
             r["revoked_qualification_id"], r["review_note"]) for r in latest] == [
        (alice, "grant", q, 5, None, None), (bob, "revoke", None, None, q, "done")]
    listed = call(app, "GET", f"/api/qualifications/{q}/workers")["workers"]
    assert [int(w["worker_review_id"]) for w in listed] == [latest[0]["id"]]

    # Only our audit in our history: the rows we wrote for it are not echoed as review_app.
    assert {e.source for e in queries.history(db, "trusted")} == {"api", "review_app"}
    assert [e.reason for e in queries.history(db, "trusted") if e.source == "review_app"] == ["theirs"]

    # Dry runs and rolled-back transactions leave no worker_review row either.
    count = len(review_rows(db))
    grants.grant(db, "trusted", ["dave"], provider="mock", dry_run=True)
    with Session.open(db) as s, pytest.raises(RuntimeError):
        with s.transaction():
            grants.grant(db, "trusted", ["erin"], provider="mock", session=s)
            raise RuntimeError("caller gives up")
    assert len(review_rows(db)) == count and not db.find_workers(worker_name="erin_sandbox")

    # prune and reset-onboarding are revokes for the app too.
    grants.grant(db, "brief", ["alice"], provider="mock", create=True, expires_in="1h")
    grants.prune(db, now=time.time() + 7200)
    assert review_rows(db)[-1]["status"] == "revoke" and review_rows(db)[-1]["review_note"] == "expired"
    assert app_holders(app, qid(db, "brief")) == {}


RULES = {"rules": [{"when": "approved", "grant": "trusted_annotators"},
                   {"when": "rejected", "grant": "spammers"},
                   {"when": "soft-rejected", "grant": "my_task_block"}]}


def test_units_reviewed_in_the_app_become_grants_through_review_rules(db, app, launch):
    run = launch(task_name="labelling", num_assignments=3)
    units = {}
    for name in ("alice", "bob", "carol"):
        arrival = run.arrive(name)
        assert arrival.got_unit, arrival.details
        agent = Agent.get(db, arrival.agent_id)
        agent.update_status(AgentState.STATUS_COMPLETED)  # as the worker's submission would
        units[name] = int(agent.unit_id)
    call(app, "POST", "/api/units/approve", {"unit_ids": [units["alice"]], "review_note": "good"})
    call(app, "POST", "/api/units/reject", {"unit_ids": [units["bob"]], "review_note": "random answers"})
    call(app, "POST", "/api/units/soft-reject", {"unit_ids": [units["carol"]], "review_note": "meh"})
    assert {r["status"] for r in review_rows(db)} == {"approved", "rejected", "soft_rejected"}

    plan = plan_review(db, task_name="labelling", rules=RULES)
    assert plan.reviewed == {"approved": 1, "rejected": 1, "soft_rejected": 1}
    assert [(c.qualification, c.worker_name, c.action) for c in plan.changes] == [
        ("my_task_block", "carol_sandbox", "grant"), ("spammers", "bob_sandbox", "grant"),
        ("trusted_annotators", "alice_sandbox", "grant")]
    assert all(r.ok for r in apply_review(db, plan))
    alice = wid(db, "alice_sandbox")
    assert app_holders(app, qid(db, "trusted_annotators")) == {alice: 1}
    assert app_holders(app, qid(db, "spammers")) == {wid(db, "bob_sandbox"): 1}

    # A unit-tied grant in the app (its "grant qualification" on a reviewed unit) shows in history too.
    call(app, "POST", f"/api/qualifications/{qid(db, 'trusted_annotators')}/workers/{alice}/grant",
         {"unit_ids": [units["alice"]], "value": 2})
    # Mephisto writes it into the unit's approve row (update_worker_review), so it keeps that row's
    # date and note: it sorts at the review, before our grant made from it.
    history = [(e.source, e.qualification, e.worker_name, e.new_value, e.reason)
               for e in queries.history(db, "trusted_annotators")]
    assert history[1] == ("review_app", "trusted_annotators", "alice_sandbox", 2, "good")
    assert history[0][:4] == ("review", "trusted_annotators", "alice_sandbox", 1)
    assert worker_value(db, "alice_sandbox", "trusted_annotators") == 2
    # The app's approve/reject rows name no qualification: they are not history entries.
    assert {e.source for e in queries.history(db)} == {"review", "review_app"}
    assert len(queries.history(db)) == 4


def test_without_worker_review_grants_and_history_are_as_before(db):
    if has_worker_review(db):
        pytest.skip("this Mephisto's database has worker_review (1.5.2); this checks a database without it")
    grants.grant(db, "trusted", ["alice"], provider="mock", reason="pilot", create=True)
    grants.revoke(db, "trusted", ["alice"], provider="mock", reason="done")
    assert [(e.source, e.action, e.reason) for e in queries.history(db, "trusted")] == [
        ("api", "revoke", "done"), ("api", "grant", "pilot")]
    conn = sqlite3.connect(db.db_path)
    try:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name LIKE '%review%' AND type = 'table' "
                            "AND name NOT LIKE 'mephisto_quals%'").fetchall() == []
    finally:
        conn.close()


def test_bulk_ids_are_random_in_range_and_ascend_as_written(db):
    """On a database with random ids (1.4+): a bulk grant's new workers get random ids that
    ascend in name order (both of the table's B-trees fill in turn) and its worker_review rows
    random ids that ascend in the given order, all in Mephisto's range and distinct."""
    if not has_worker_review(db):
        pytest.skip("this Mephisto has no worker_review table and sequential worker ids (1.4+ adds random ones)")
    names = [f"w{n:03d}" for n in (7, 3, 9, 1, 5, 0, 8, 2, 6, 4)]
    grants.grant(db, "trusted", names, provider="mock", create=True)
    conn = sqlite3.connect(db.db_path)
    try:
        made = conn.execute("SELECT worker_name, worker_id FROM workers ORDER BY worker_name").fetchall()
        reviews = conn.execute("SELECT r.id, w.worker_name FROM worker_review r JOIN workers w USING (worker_id)"
                               " ORDER BY r.id").fetchall()
    finally:
        conn.close()
    low, high = RANDOM_ID_RANGE
    ids = [i for _, i in made]
    assert len(made) == 10 and ids == sorted(ids) and len(set(ids)) == 10 and all(low <= i <= high for i in ids)
    assert [n for _, n in reviews] == [f"{n}_sandbox" for n in names]  # id order is the given order
    assert all(low <= i <= high for i, _ in reviews) and len({i for i, _ in reviews}) == 10
