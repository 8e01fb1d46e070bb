"""Our bulk grants leave exactly the rows Mephisto's own Worker API leaves.

Twin databases: the same grants, re-grants (new value, same value), revokes and grants to
workers Mephisto never saw, done with ``mephisto_quals.admin.grants`` on one and with
``Worker.grant_qualification`` / ``revoke_qualification`` on the other. After every step
the ``workers``, ``qualifications`` and ``granted_qualifications`` tables must be identical,
dates aside (their format, and 1.5.2's ``update_date`` equal to ``creation_date``, checked).
Worker ids are compared as such where the table has AUTOINCREMENT (Mephisto 1.1.1, with the
counters behind every id); where Mephisto 1.4+ gives random ids, workers are matched by name
and both sides' ids must be random ids of Mephisto's range. Grant and qualification ids are
sequential on both lines and always compared.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto.abstractions.providers.mock.mock_worker import MockWorker
from mephisto.data_model.worker import Worker
from mephisto.operations.datatypes import WorkerFailureReasons
from mephisto.utils.qualifications import find_or_create_qualification

from conftest import worker
from mephisto_quals.admin import grants
from mephisto_quals.store.mephisto import RANDOM_ID_RANGE, uses_random_ids

NOT_QUALIFIED = WorkerFailureReasons.NOT_QUALIFIED
MEPHISTO_TABLES = {
    "workers": "worker_id",
    "qualifications": "qualification_id",
    "granted_qualifications": "granted_qualification_id",
}
DATES = ("creation_date", "update_date")


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[LocalMephistoDB]:
    """A second fresh Mephisto DB: Mephisto's own API works on this one."""
    folder = tmp_path / "twin"
    folder.mkdir()
    database = LocalMephistoDB(database_path=str(folder / "database.db"))
    yield database
    database.shutdown()


def _read(db: LocalMephistoDB, query: Callable[[sqlite3.Connection], Any]) -> Any:
    conn = sqlite3.connect(db.db_path)
    conn.row_factory = sqlite3.Row
    try:
        return query(conn)
    finally:
        conn.close()


def table(db: LocalMephistoDB, name: str) -> List[Dict[str, Any]]:
    return _read(db, lambda c: [dict(r) for r in c.execute(f"SELECT * FROM {name} ORDER BY {MEPHISTO_TABLES[name]}")])


def columns(db: LocalMephistoDB, name: str) -> List[Tuple[Any, ...]]:
    """The table's shape (name, type, not null, default, pk) as SQLite reports it."""
    return _read(db, lambda c: [tuple(r)[1:] for r in c.execute(f"PRAGMA table_info({name})")])


def random_worker_ids(db: LocalMephistoDB) -> bool:
    return bool(_read(db, lambda c: uses_random_ids(c, "workers")))


def sequences(db: LocalMephistoDB) -> Dict[str, int]:
    """The AUTOINCREMENT counters: equal counters mean the next ids will be equal too (none on 1.4+)."""
    return _read(db, lambda c: {n: s for n, s in c.execute("SELECT name, seq FROM sqlite_sequence") if n in MEPHISTO_TABLES})


def comparable(db: LocalMephistoDB, name: str, by_name: bool) -> List[Dict[str, Any]]:
    """Rows without dates; with ``by_name`` worker ids become worker names (and workers sort by name)."""
    names = {r["worker_id"]: r["worker_name"] for r in table(db, "workers")}
    rows = [{k: v for k, v in r.items() if k not in DATES} for r in table(db, name)]
    if by_name and "worker_id" in (rows[0] if rows else {}):
        rows = [{**r, "worker_id": names[r["worker_id"]]} for r in rows]
        if name == "workers":
            rows.sort(key=lambda r: r["worker_name"])
    return rows


def assert_dates(rows: List[Dict[str, Any]], where: str) -> None:
    """Every row has a creation date in one format; update_date (1.5.2) equals it, as Mephisto
    never touches it after the insert."""
    assert all(r["creation_date"] for r in rows), f"{where}: a row lacks creation_date"
    assert len({len(str(r["creation_date"])) for r in rows}) <= 1, f"{where}: creation dates in two formats"
    for r in rows:
        if "update_date" in r:
            assert r["update_date"] == r["creation_date"], f"{where}: update_date differs from creation_date in {r}"


def assert_twins(ours: LocalMephistoDB, theirs: LocalMephistoDB, step: str) -> None:
    by_name = random_worker_ids(ours)
    assert by_name == random_worker_ids(theirs), f"{step}: only one twin has random worker ids"
    for name in MEPHISTO_TABLES:
        assert columns(ours, name) == columns(theirs, name), f"{step}: {name} has another shape"
        a, b = table(ours, name), table(theirs, name)
        assert_dates(a, f"{step}: {name} (ours)")
        assert_dates(b, f"{step}: {name} (Mephisto's)")
        if a and b:
            assert len(str(a[0]["creation_date"])) == len(str(b[0]["creation_date"])), f"{step}: {name} date formats differ"
        assert comparable(ours, name, by_name) == comparable(theirs, name, by_name), f"{step}: {name} differs"
    if by_name:
        low, high = RANDOM_ID_RANGE
        for db in (ours, theirs):
            assert all(low <= r["worker_id"] <= high for r in table(db, "workers")), f"{step}: a worker id is not random"
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
    w = {n: worker(db, n).db_id for n in names}  # our database's ids
    t = {n: worker(twin, n).db_id for n in names}  # the twin's: the same on 1.1.1, random on 1.4+
    assert (w == t) != random_worker_ids(db)
    theirs = Mephisto(twin)
    assert_twins(db, twin, "workers only")

    steps: List[Tuple[str, Any, Any]] = [
        ("grant a=1 to w0..w2",
         lambda: grants.grant(db, "a", [w["w0"], w["w1"], w["w2"]], create=True),
         lambda: theirs.set_values("a", {t["w0"]: 1, t["w1"]: 1, t["w2"]: 1})),
        ("grant b with a value per worker, 0 and negative included",
         lambda: grants.set_values(db, "b", {w["w1"]: 3, w["w2"]: 5, w["w3"]: 0, w["w4"]: -2}, create=True),
         lambda: theirs.set_values("b", {t["w1"]: 3, t["w2"]: 5, t["w3"]: 0, t["w4"]: -2})),
        ("re-grant b: same value, new value, and a new worker",
         lambda: grants.set_values(db, "b", {w["w1"]: 3, w["w2"]: 7, w["w5"]: 2}),
         lambda: theirs.set_values("b", {t["w1"]: 3, t["w2"]: 7, t["w5"]: 2})),
        ("grant c, then more of a after an upsert that only updated",
         lambda: (grants.grant(db, "c", [w["w5"]], value=9, create=True), grants.grant(db, "a", [w["w3"]])),
         lambda: (theirs.set_values("c", {t["w5"]: 9}), theirs.set_values("a", {t["w3"]: 1}))),
        ("revoke a from w1 (held) and w5 (not held)",
         lambda: grants.revoke(db, "a", [w["w1"], w["w5"]]),
         lambda: theirs.revoke("a", [t["w1"], t["w5"]])),
        ("grant a to w1 again after the revoke: a new row",
         lambda: grants.grant(db, "a", [w["w1"]], value=4),
         lambda: theirs.set_values("a", {t["w1"]: 4})),
        ("change b back and forth",
         lambda: (grants.set_values(db, "b", {w["w2"]: 5}), grants.set_values(db, "b", {w["w2"]: 5, w["w3"]: 1})),
         lambda: (theirs.set_values("b", {t["w2"]: 5}), theirs.set_values("b", {t["w2"]: 5, t["w3"]: 1}))),
        ("grant by provider name to workers Mephisto never saw, and to a known one",
         lambda: grants.set_values(db, "d", {"newbie": 1, "other": 2, "w0": 3}, provider="mock", create=True),
         lambda: (theirs.grant_by_name("d", "newbie", 1), theirs.grant_by_name("d", "other", 2),
                  theirs.grant_by_name("d", "w0", 3))),
        ("revoke everything from w2",
         lambda: (grants.revoke(db, "a", [w["w2"]]), grants.revoke(db, "b", [w["w2"]])),
         lambda: (theirs.revoke("a", [t["w2"]]), theirs.revoke("b", [t["w2"]]))),
        ("grant after revokes: ids continue from the same counter",
         lambda: grants.set_values(db, "b", {w["w2"]: 8, w["w0"]: 1}),
         lambda: theirs.set_values("b", {t["w2"]: 8, t["w0"]: 1})),
        ("revoke the newest grant and grant it again: Mephisto 1.4+ reuses its id",
         lambda: (grants.revoke(db, "b", [w["w0"]]), grants.grant(db, "b", [w["w0"]], value=6)),
         lambda: (theirs.revoke("b", [t["w0"]]), theirs.set_values("b", {t["w0"]: 6}))),
    ]
    for label, ours_step, their_step in steps:
        ours_step()
        their_step()
        assert_twins(db, twin, label)

    # The scenario really exercised updates in place, re-inserts and deletes.
    rows = table(db, "granted_qualifications")
    assert len(rows) == 13  # a: w0 w3 w1, b: w1 w3 w4 w5 w2 w0, c: w5, d: newbie other w0
    # 17 inserts, 4 of them revoked; without AUTOINCREMENT the last insert took the freed id 16.
    reused = _read(db, lambda c: uses_random_ids(c, "granted_qualifications"))
    assert rows[-1]["granted_qualification_id"] == (16 if reused else 17)
    assert [r["granted_qualification_id"] for r in rows] == [r["granted_qualification_id"] for r in table(twin, "granted_qualifications")]
    held = {(r["worker_id"], r["qualification_id"]): r["value"] for r in rows}
    b_id = next(q["qualification_id"] for q in table(db, "qualifications") if q["qualification_name"] == "b")
    assert held[(int(w["w4"]), b_id)] == -2 and held[(int(w["w2"]), b_id)] == 8 and held[(int(w["w0"]), b_id)] == 6
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
    assert int(found.db_id) == report.outcomes[0].worker_id
    assert (int(found.db_id) == int(wid)) != random_worker_ids(db)  # the same id, or both random
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
