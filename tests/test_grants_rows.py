"""Our bulk grants leave exactly the rows Mephisto's own Worker API leaves.

Twin databases: the same grants, re-grants (new value, same value), revokes and grants to
workers Mephisto never saw, done with ``mephisto_quals.admin.grants`` on one and with
``Worker.grant_qualification`` / ``revoke_qualification`` on the other. After every step
the ``workers``, ``qualifications`` and ``granted_qualifications`` tables (and the
autoincrement counters behind their ids) must be identical, creation dates aside.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from conftest import worker
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto.abstractions.providers.mock.mock_worker import MockWorker
from mephisto.data_model.worker import Worker
from mephisto.operations.datatypes import WorkerFailureReasons
from mephisto.utils.qualifications import find_or_create_qualification

from mephisto_quals.admin import grants

NOT_QUALIFIED = WorkerFailureReasons.NOT_QUALIFIED
MEPHISTO_TABLES = {
    "workers": "worker_id",
    "qualifications": "qualification_id",
    "granted_qualifications": "granted_qualification_id",
}


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[LocalMephistoDB]:
    """A second fresh Mephisto DB: Mephisto's own API works on this one."""
    folder = tmp_path / "twin"
    folder.mkdir()
    database = LocalMephistoDB(database_path=str(folder / "database.db"))
    yield database
    database.shutdown()


def table(db: LocalMephistoDB, name: str) -> List[Dict[str, Any]]:
    conn = sqlite3.connect(db.db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {name} ORDER BY {MEPHISTO_TABLES[name]}")]
    finally:
        conn.close()


def sequences(db: LocalMephistoDB) -> Dict[str, int]:
    """The AUTOINCREMENT counters: equal counters mean the next ids will be equal too."""
    conn = sqlite3.connect(db.db_path)
    try:
        return {n: s for n, s in conn.execute("SELECT name, seq FROM sqlite_sequence") if n in MEPHISTO_TABLES}
    finally:
        conn.close()


def assert_twins(ours: LocalMephistoDB, theirs: LocalMephistoDB, step: str) -> None:
    for name in MEPHISTO_TABLES:
        a, b = table(ours, name), table(theirs, name)
        assert all(r["creation_date"] for r in a), f"{step}: a {name} row of ours lacks creation_date"
        assert all(r["creation_date"] for r in b), f"{step}: a {name} row of Mephisto's lacks creation_date"
        strip = lambda rows: [{k: v for k, v in r.items() if k != "creation_date"} for r in rows]  # noqa: E731
        assert strip(a) == strip(b), f"{step}: {name} differs"
    assert sequences(ours) == sequences(theirs), f"{step}: autoincrement counters differ"


class Mephisto:
    """The same operations, done the way a user of Mephisto's API would."""

    def __init__(self, db: LocalMephistoDB):
        self.db = db

    def set_values(self, qualification: str, values: Dict[str, int]) -> None:
        find_or_create_qualification(self.db, qualification)
        for wid, value in values.items():
            Worker.get(self.db, wid).grant_qualification(qualification, value)

    def revoke(self, qualification: str, ids: List[str]) -> None:
        for wid in ids:
            Worker.get(self.db, wid).revoke_qualification(qualification)

    def grant_by_name(self, qualification: str, name: str, value: int = 1) -> None:
        found = self.db.find_workers(worker_name=f"{name}_sandbox")
        w = found[0] if found else MockWorker.new(self.db, name)  # what the worker pool does on arrival
        find_or_create_qualification(self.db, qualification)
        w.grant_qualification(qualification, value)


def test_twin_databases_hold_identical_rows_after_grants_regrants_and_revokes(db: LocalMephistoDB, twin: LocalMephistoDB) -> None:
    names = [f"w{i}" for i in range(6)]
    ids = [worker(db, n).db_id for n in names]
    assert [worker(twin, n).db_id for n in names] == ids
    theirs = Mephisto(twin)
    w = dict(zip(names, ids))
    assert_twins(db, twin, "workers only")

    steps: List[Tuple[str, Any, Any]] = [
        ("grant a=1 to w0..w2",
         lambda: grants.grant(db, "a", [w["w0"], w["w1"], w["w2"]], create=True),
         lambda: theirs.set_values("a", {w["w0"]: 1, w["w1"]: 1, w["w2"]: 1})),
        ("grant b with a value per worker, 0 and negative included",
         lambda: grants.set_values(db, "b", {w["w1"]: 3, w["w2"]: 5, w["w3"]: 0, w["w4"]: -2}, create=True),
         lambda: theirs.set_values("b", {w["w1"]: 3, w["w2"]: 5, w["w3"]: 0, w["w4"]: -2})),
        ("re-grant b: same value, new value, and a new worker",
         lambda: grants.set_values(db, "b", {w["w1"]: 3, w["w2"]: 7, w["w5"]: 2}),
         lambda: theirs.set_values("b", {w["w1"]: 3, w["w2"]: 7, w["w5"]: 2})),
        ("grant c, then more of a after an upsert that only updated",
         lambda: (grants.grant(db, "c", [w["w5"]], value=9, create=True), grants.grant(db, "a", [w["w3"]])),
         lambda: (theirs.set_values("c", {w["w5"]: 9}), theirs.set_values("a", {w["w3"]: 1}))),
        ("revoke a from w1 (held) and w5 (not held)",
         lambda: grants.revoke(db, "a", [w["w1"], w["w5"]]),
         lambda: theirs.revoke("a", [w["w1"], w["w5"]])),
        ("grant a to w1 again after the revoke: a new row",
         lambda: grants.grant(db, "a", [w["w1"]], value=4),
         lambda: theirs.set_values("a", {w["w1"]: 4})),
        ("change b back and forth",
         lambda: (grants.set_values(db, "b", {w["w2"]: 5}), grants.set_values(db, "b", {w["w2"]: 5, w["w3"]: 1})),
         lambda: (theirs.set_values("b", {w["w2"]: 5}), theirs.set_values("b", {w["w2"]: 5, w["w3"]: 1}))),
        ("grant by provider name to workers Mephisto never saw, and to a known one",
         lambda: grants.set_values(db, "d", {"newbie": 1, "other": 2, "w0": 3}, provider="mock", create=True),
         lambda: (theirs.grant_by_name("d", "newbie", 1), theirs.grant_by_name("d", "other", 2),
                  theirs.grant_by_name("d", "w0", 3))),
        ("revoke everything from w2",
         lambda: (grants.revoke(db, "a", [w["w2"]]), grants.revoke(db, "b", [w["w2"]])),
         lambda: (theirs.revoke("a", [w["w2"]]), theirs.revoke("b", [w["w2"]]))),
        ("grant after revokes: ids continue from the same counter",
         lambda: grants.set_values(db, "b", {w["w2"]: 8, w["w0"]: 1}),
         lambda: theirs.set_values("b", {w["w2"]: 8, w["w0"]: 1})),
    ]
    for label, ours_step, their_step in steps:
        ours_step()
        their_step()
        assert_twins(db, twin, label)

    # The scenario really exercised updates in place, re-inserts and deletes.
    rows = table(db, "granted_qualifications")
    assert len(rows) == 13  # a: w0 w3 w1, b: w1 w3 w4 w5 w2 w0, c: w5, d: newbie other w0
    assert rows[-1]["granted_qualification_id"] == 16  # 16 inserts, 3 of them revoked
    held = {(r["worker_id"], r["qualification_id"]): r["value"] for r in rows}
    b_id = next(q["qualification_id"] for q in table(db, "qualifications") if q["qualification_name"] == "b")
    assert held[(int(w["w4"]), b_id)] == -2 and held[(int(w["w2"]), b_id)] == 8
    # Mephisto's own API reads our rows as its own.
    assert Worker.get(db, w["w1"]).get_granted_qualification("a").value == 4
    assert Worker.get(db, w["w2"]).get_granted_qualification("a") is None


def test_unseen_worker_gets_the_row_new_worker_would_make(db: LocalMephistoDB, twin: LocalMephistoDB) -> None:
    report = grants.grant(db, "vip", ["zoe"], provider="mock", create=True)
    assert report.counts() == {"granted": 1}
    find_or_create_qualification(twin, "vip")
    wid = twin.new_worker("zoe_sandbox", "mock")
    Worker.get(twin, wid).grant_qualification("vip", 1)
    assert_twins(db, twin, "unseen worker")

    (found,) = db.find_workers(worker_name="zoe_sandbox")
    assert isinstance(found, MockWorker) and found.provider_type == "mock"
    assert int(found.db_id) == report.outcomes[0].worker_id == int(wid)
    # Naming them again (with or without Mephisto's suffix) finds the same worker.
    again = grants.grant(db, "vip", ["zoe", "zoe_sandbox"], provider="mock", value=2)
    assert {o.worker_id for o in again.outcomes} == {int(found.db_id)}
    assert [o.status for o in again.outcomes] == ["updated", "unchanged"]
    both = grants.grant(db, "fresh", ["zoe_sandbox", "zoe"], provider="mock", create=True)
    assert [o.status for o in both.outcomes] == ["granted", "unchanged"]
    assert len(table(db, "workers")) == 1 and len(table(db, "granted_qualifications")) == 2


def test_mock_run_gates_workers_by_grants_made_before_they_ever_arrived(db: LocalMephistoDB, launch: Any) -> None:
    ok = grants.grant(db, "vip", ["alice", "mallory"], provider="mock", create=True, reason="pilot")
    assert ok.counts() == {"granted": 2}
    assert grants.grant(db, "blocked", ["mallory"], provider="mock", create=True).ok
    created = {w.worker_name: w.db_id for w in db.find_workers()}
    assert set(created) == {"alice_sandbox", "mallory_sandbox"}

    run = launch({"allowlists": ["vip"], "blocklists": ["blocked"]})
    alice = run.arrive("alice")
    mallory = run.arrive("mallory")
    bob = run.arrive("bob")  # never granted anything

    assert alice.got_unit and alice.failure is None
    assert mallory.failure == NOT_QUALIFIED and not mallory.got_unit
    assert bob.failure == NOT_QUALIFIED
    # Arriving by name found the worker our grant created: no second row, the unit went to it.
    after = {w.worker_name: w.db_id for w in db.find_workers()}
    assert after["alice_sandbox"] == created["alice_sandbox"]
    assert after["mallory_sandbox"] == created["mallory_sandbox"]
    assert set(after) == {"alice_sandbox", "mallory_sandbox", "bob_sandbox"}
    assert [a.worker_id for a in db.find_agents()] == [created["alice_sandbox"]]

    # Revoking the block by name lets mallory in on the next arrival.
    assert grants.revoke(db, "blocked", ["mallory"], provider="mock").counts() == {"revoked": 1}
    assert run.arrive("mallory").got_unit
