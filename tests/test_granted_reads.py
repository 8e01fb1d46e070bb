"""Mephisto's grant reads through an index (``integration.granted_reads``): the same objects in the
same order as Mephisto's own full scan for every combination of filters, in effect in a real
``_quals`` run's worker pool, and working on databases Mephisto 1.5.2 created or migrated."""

from __future__ import annotations

import random
import shutil
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto.operations.datatypes import WorkerFailureReasons

from conftest import worker
from mephisto_quals.integration import granted_reads
from mephisto_quals.integration.granted_reads import granted_qualifications, in_effect, original_granted_read
from mephisto_quals.store.mephisto import (
    GRANTED_READ,
    find_granted,
    granted_sql,
    mephisto_connection,
    mephisto_migrations,
)
from test_upgrade import built_on_1_1_1, migration_status, needs_migrating_mephisto  # noqa: F401 (a fixture)

MEPHISTO_STATEMENT = """SELECT * from granted_qualifications WHERE (?1 IS NULL OR qualification_id = ?1)
    AND (?2 IS NULL OR worker_id = ?2) AND (?3 IS NULL OR value = ?3)"""
PATTERNS = [(q, w, v) for q in (False, True) for w in (False, True) for v in (False, True)]


def as_seen(result: List[Any]) -> List[Tuple[type, Dict[str, Any]]]:
    """What a caller sees of each GrantedQualification: its class and every attribute (``db`` by identity)."""
    return [(type(g), {k: (id(v) if k == "db" else v) for k, v in vars(g).items()}) for g in result]


def mephisto_reads(db: Any, *args: Any) -> List[Any]:
    """Mephisto's own function (whatever the class holds now)."""
    return original_granted_read()(db, *args)


def random_grants(db: Any, seed: int, workers: int = 30, quals: int = 8) -> Tuple[List[str], List[str]]:
    """Workers and qualifications with grants written in random order (so rowid order is not
    (worker, qualification) order), some revoked and granted again; returns (qualification ids, worker ids)."""
    rng = random.Random(seed)
    qids = [db.make_qualification(f"q{seed}-{i}") for i in range(quals)]
    wids = [db.new_worker(f"w{seed}-{i}_sandbox", "mock") for i in range(workers)]
    pairs = [(q, w) for q in qids for w in wids if rng.random() < 0.45]
    rng.shuffle(pairs)
    for q, w in pairs:
        db.grant_qualification(q, w, rng.choice([-1, 0, 1, 1, 2, 3]))
    for q, w in rng.sample(pairs, len(pairs) // 10):
        db.revoke_qualification(q, w)
        if rng.random() < 0.5:
            db.grant_qualification(q, w, rng.choice([0, 1, 5]))
    return qids, wids


def id_forms(ids: List[str], rng: random.Random) -> List[Any]:
    """Ids as Mephisto passes them (strings) and as others might: ints, padded and decimal text,
    floats, text that only starts with an id (a CAST would take it), and ids that exist nowhere."""
    i = rng.choice(ids)
    return [rng.choice(ids), rng.choice(ids), int(i), f"0{i}", f"{i}.0", f" {i} ", float(int(i)) if len(i) < 15 else int(i),
            f"{i}abc", f"{i}.5", "999999999", 999999999, "x", "", "-1"]


VALUES = [0, 1, 2, 3, -1, 5, 7, "1", "1x", "x", 1.0, 1.5]


def parity(db: Any, qids: List[str], wids: List[str], seed: int, per_pattern: int = 40) -> int:
    """Compare ours with Mephisto's on ``per_pattern`` random argument sets for each given/None pattern."""
    rng = random.Random(seed)
    compared = 0
    for q_given, w_given, v_given in PATTERNS:
        for _ in range(per_pattern if any((q_given, w_given, v_given)) else 1):
            args = (rng.choice(id_forms(qids, rng)) if q_given else None,
                    rng.choice(id_forms(wids, rng)) if w_given else None,
                    rng.choice(VALUES) if v_given else None)
            theirs, ours = mephisto_reads(db, *args), granted_qualifications(db, *args)
            assert as_seen(ours) == as_seen(theirs), args
            compared += 1
    return compared


def test_same_objects_same_order_as_mephisto_for_every_filter_combination(db: Any) -> None:
    qids, wids = random_grants(db, seed=7)
    with db.table_access_condition:
        rows = mephisto_connection(db).execute(
            "SELECT rowid, worker_id, qualification_id FROM granted_qualifications ORDER BY rowid").fetchall()
    by_worker: Dict[str, List[Any]] = {}
    for r in rows:
        by_worker.setdefault(str(r["worker_id"]), []).append(int(r["qualification_id"]))
    # The data can tell an index's order from the scan's: some worker's grants are not in qualification order.
    assert any(quals != sorted(quals) for quals in by_worker.values())
    assert parity(db, qids, wids, seed=11) == 7 * 40 + 1
    # Some answers are non-empty for each pattern (else the comparison proves little).
    for w in wids[:5]:
        assert granted_qualifications(db, None, w) and granted_qualifications(db, None, int(w))
        assert as_seen(granted_qualifications(db, None, w)) == as_seen(mephisto_reads(db, None, w))
    assert as_seen(granted_qualifications(db, qids[0], None, "1")) == as_seen(mephisto_reads(db, qids[0], None, 1))


def test_every_combination_exhaustively_on_a_small_table(db: Any) -> None:
    qids, wids = random_grants(db, seed=3, workers=6, quals=4)
    rng = random.Random(5)
    for q in [None, *qids, *id_forms(qids, rng)]:
        for w in [None, *wids, *id_forms(wids, rng)]:
            for v in (None, 0, 1, "2", 9):
                assert as_seen(granted_qualifications(db, q, w, v)) == as_seen(mephisto_reads(db, q, w, v)), (q, w, v)


def plan(db: Any, sql: str, params: List[Any]) -> str:
    with db.table_access_condition:
        return " | ".join(str(r["detail"]) for r in mephisto_connection(db).execute("EXPLAIN QUERY PLAN " + sql, params))


def test_a_workers_reads_use_mephistos_unique_index_where_mephistos_statement_scans(db: Any) -> None:
    qids, wids = random_grants(db, seed=1, workers=5, quals=3)
    for args in ((qids[0], wids[0], None), (None, wids[0], None), (qids[0], wids[0], 1), (None, wids[0], 1)):
        detail = plan(db, *granted_sql(*args))
        assert "USING INDEX" in detail and "worker_id=?" in detail, (args, detail)
        assert "SCAN" in plan(db, MEPHISTO_STATEMENT, list(args)), args


def test_install_is_idempotent_and_keeps_mephistos_function(monkeypatch: pytest.MonkeyPatch) -> None:
    mephisto_fn = original_granted_read()
    assert mephisto_fn.__module__ == "mephisto.abstractions.databases.local_database"
    monkeypatch.setattr(LocalMephistoDB, GRANTED_READ, mephisto_fn)
    assert granted_reads.install_granted_reads() and granted_reads.install_granted_reads()
    assert LocalMephistoDB.__dict__[GRANTED_READ] is granted_qualifications
    assert original_granted_read() is mephisto_fn


def test_loading_the_plugin_leaves_mephistos_read_in_place() -> None:
    import subprocess
    import sys

    code = ("import mephisto_quals.integration.blueprints, mephisto_quals.integration.granted_reads\n"
            "from mephisto.abstractions.databases.local_database import LocalMephistoDB\n"
            f"fn = LocalMephistoDB.__dict__[{GRANTED_READ!r}]\n"
            "assert fn.__module__ == 'mephisto.abstractions.databases.local_database', fn\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_quals_run_puts_it_where_the_worker_pool_reads(db: Any, launch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Start from Mephisto's own function: only the run's launch may put ours in place.
    monkeypatch.setattr(LocalMephistoDB, GRANTED_READ, original_granted_read())
    assert not in_effect(db)
    calls: List[Tuple[Any, Any, Any, bool]] = []
    real = granted_reads.granted_rows

    def recording(conn: Any, qualification_id: Any = None, worker_id: Any = None, value: Any = None) -> List[Any]:
        from_pool = any(f.filename.endswith("worker_pool.py") for f in traceback.extract_stack())
        calls.append((qualification_id, worker_id, value, from_pool))
        return real(conn, qualification_id, worker_id, value)

    monkeypatch.setattr(granted_reads, "granted_rows", recording)
    run = launch(None, task_name="arrivals", use_onboarding=True, onboarding_qualification="screen")
    assert in_effect(db) and in_effect(run.operator.db)
    screen = db.find_qualifications("screen")[0].db_id

    first = run.arrive("newcomer")
    assert first.got_onboarding, first.details
    newcomer = worker(db, "newcomer").db_id
    pool_reads = [c for c in calls if c[3]]
    assert (screen, newcomer, None, True) in pool_reads, calls  # is_disqualified / is_qualified
    assert run.submit_onboarding(first, passed=True).got_unit
    assert run.arrive("newcomer").got_unit  # passed: is_qualified now reads value 1 through ours
    flunked = run.arrive("flunker")
    assert run.submit_onboarding(flunked, passed=False).failure == WorkerFailureReasons.NOT_QUALIFIED
    assert run.arrive("flunker").failure == WorkerFailureReasons.NOT_QUALIFIED  # is_disqualified, through ours
    assert len([c for c in calls if c[3] and c[0] == screen]) >= 6, calls


def check_database(db: Any) -> None:
    """Ours installed answers Mephisto's worker API as Mephisto does, on whatever database ``db`` is."""
    assert granted_reads.install_granted_reads() and in_effect(db)
    with db.table_access_condition:
        conn = mephisto_connection(db)
        qids = [str(r["qualification_id"]) for r in conn.execute("SELECT qualification_id FROM qualifications")]
        wids = [str(r["worker_id"]) for r in conn.execute("SELECT worker_id FROM workers")]
    rng = random.Random(2)
    for q in [None, *qids, *id_forms(qids, rng)]:
        for w in [None, *wids, *id_forms(wids, rng)]:
            for v in (None, 1, 5):
                ours = find_granted(db, q, w) if v is None else granted_qualifications(db, q, w, v)  # the former via Mephisto's API
                assert as_seen(ours) == as_seen(mephisto_reads(db, q, w, v)), (q, w, v)
    for w in wids:
        for q in qids:
            detail = plan(db, *granted_sql(q, w))
            assert "USING INDEX" in detail, detail


@needs_migrating_mephisto
def test_a_database_created_and_migrated_by_mephisto_works(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalMephistoDB, GRANTED_READ, original_granted_read())
    assert migration_status(Path(db.db_path)) == {name: "completed" for name in mephisto_migrations()}
    random_grants(db, seed=9, workers=8, quals=4)
    w = worker(db, "w9-0")
    before = [(q, w.is_qualified(q), w.is_disqualified(q)) for q in ("q9-0", "q9-1", "q9-2", "q9-3", "absent")]
    check_database(db)
    assert [(q, w.is_qualified(q), w.is_disqualified(q)) for q in ("q9-0", "q9-1", "q9-2", "q9-3", "absent")] == before


@pytest.mark.subprocess
@pytest.mark.timeout(900)
@needs_migrating_mephisto
def test_a_1_1_1_database_migrated_by_mephisto_works(built_on_1_1_1: Path, tmp_path: Path,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalMephistoDB, GRANTED_READ, original_granted_read())
    path = tmp_path / "data" / "database.db"
    path.parent.mkdir()
    shutil.copy(built_on_1_1_1 / "plugin.db", path)
    db: Optional[LocalMephistoDB] = LocalMephistoDB(database_path=str(path))  # Mephisto migrates it here
    assert db is not None
    try:
        assert migration_status(path) == {name: "completed" for name in mephisto_migrations()}
        check_database(db)
        alice = worker(db, "alice")
        assert alice.is_qualified("mephisto_own") and not alice.is_disqualified("mephisto_own")
    finally:
        db.shutdown()
