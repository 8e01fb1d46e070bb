"""The set-based eligibility (a few statements for everyone) gives the gate's per-worker verdicts.

A randomized population: holders, non-holders and holders whose grant expired, every
comparator, a qualification missing from the database, workers of two provider types, a list
longer than one statement's batch of requirements, a grant whose expiry of ours belongs to an
earlier grant that had the same row id (Mephisto 1.5 reuses ids: the grant is permanent), and
grant rows of a worker id Mephisto does not know (no one's: never counted). The per-worker
reference is the gate's ``check_worker`` (its one-worker query and ``passes``); where Mephisto's
own ``worker_is_qualified`` is defined (no expiry, the worker holds every value-compared
qualification, every qualification exists) it must agree too.

Every comparison runs the three ways the store can take: with our index, reading each
qualification's grants (``scan``) or looking each worker up (``lookups``, what it does for a
small population), and without the index (a database no writing session of this version opened
since Mephisto rebuilt its grant table).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import pytest
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto.data_model.worker import Worker
from mephisto.utils.qualifications import worker_is_qualified

from mephisto_quals.admin import eligibility, grants
from mephisto_quals.compile import comparators as cmp
from mephisto_quals.compile.requirements import Requirement
from mephisto_quals.integration.gate import check_worker
from mephisto_quals.store import Session, schema
from mephisto_quals.store import eligibility as eligibility_store
from mephisto_quals.store import qualifications as qual_store

T0 = 1_900_000_000.0
QUALS = ["q0", "q1", "q2", "q3", "q4"]
MISSING = "never-created"
STRANGER = 987_654_321  # a worker id with grant rows but no row in Mephisto's workers table
MODES = ["scan", "lookups", "no-index"]


def populate(db: LocalMephistoDB, rng: random.Random, n: int = 160) -> List[int]:
    """n workers (mock and mturk_sandbox), each qualification held by about 60% with values 0..5, a
    third of the grants expiring between T0+100 and T0+900; then the two oddities of the docstring."""
    names = {(f"w{i:03d}" if i % 4 else f"AW{i:03d}"): ("mock" if i % 4 else "mturk_sandbox") for i in range(n)}
    for q in QUALS:
        for provider in ("mock", "mturk_sandbox"):
            holders = [w for w, p in names.items() if p == provider and rng.random() < 0.6]
            permanent = {w: rng.randint(0, 5) for w in holders if rng.random() < 0.67}
            expiring = [w for w in holders if w not in permanent]
            report = grants.set_values(db, q, permanent, provider=provider, create=True, now=T0, crowd=False)
            assert report.ok, report.summary()
            for w in expiring:
                report = grants.grant(db, q, [w], rng.randint(0, 5), provider=provider, create=True, now=T0, crowd=False,
                                      expires_at=T0 + rng.randint(100, 900))
                assert report.ok, report.summary()
    conn = sqlite3.connect(db.db_path, isolation_level=None)
    try:
        # Expiring grants replaced by hand under the same row id (what a revoke and a re-grant can do
        # on 1.5): the meta row still names the id, but the creation date is another grant's.
        reused = conn.execute(
            """SELECT g.granted_qualification_id, g.worker_id, g.qualification_id FROM granted_qualifications g
               JOIN mephisto_quals_grant_meta m ON m.granted_qualification_id = g.granted_qualification_id
               WHERE m.expires_at IS NOT NULL ORDER BY g.granted_qualification_id LIMIT 6""").fetchall()
        for row_id, worker_id, qual_id in reused:
            conn.execute("DELETE FROM granted_qualifications WHERE granted_qualification_id = ?", (row_id,))
            conn.execute("INSERT INTO granted_qualifications (granted_qualification_id, worker_id, qualification_id,"
                         " value, creation_date) VALUES (?, ?, ?, ?, '2999-01-01 00:00:00')",
                         (row_id, worker_id, qual_id, rng.randint(0, 5)))
        for (qual_id,) in conn.execute("SELECT qualification_id FROM qualifications").fetchall():
            conn.execute("INSERT INTO granted_qualifications (worker_id, qualification_id, value) VALUES (?, ?, 3)",
                         (STRANGER, qual_id))
    finally:
        conn.close()
    return [int(w.db_id) for w in db.find_workers()]  # the crowd providers are left alone: crowd=False


def every_requirement() -> List[Requirement]:
    """Each comparator on each qualification (and on one that does not exist)."""
    out = []
    for q in [*QUALS, MISSING]:
        out += [Requirement(q, cmp.EXISTS, None, "t", ""), Requirement(q, cmp.NOT_EXIST, None, "t", "")]
        for c in cmp.SCALAR_COMPARATORS:
            out.append(Requirement(q, c, 2, "t", ""))
        out += [Requirement(q, cmp.IN, (1, 3, 5), "t", ""), Requirement(q, cmp.NOT_IN, (0, 4), "t", "")]
    return out


def reference(db: Any, ids: Sequence[int], reqs: Sequence[Requirement], now: float) -> Dict[int, List[bool]]:
    return {wid: [r.passed for r in check_worker(db, str(wid), reqs, now=now)] for wid in ids}


def has_index(path: str) -> bool:
    conn = sqlite3.connect(path)
    try:
        return schema.has_grants_index(conn)
    finally:
        conn.close()


def drop_index(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"DROP INDEX {schema.GRANTS_INDEX}")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, List[int]]:
    """The population, built once per module (it takes seconds); each test works on a copy."""
    folder = tmp_path_factory.mktemp("eligibility-sets")
    db = LocalMephistoDB(database_path=str(folder / "database.db"))
    try:
        ids = populate(db, random.Random(12))
    finally:
        db.shutdown()
    assert has_index(str(folder / "database.db"))  # our writing sessions made it
    return folder / "database.db", ids


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "scan":
        monkeypatch.setattr(eligibility_store, "SMALL_POPULATION", 0)
    return str(request.param)


@pytest.fixture
def pop(built: Tuple[Path, List[int]], tmp_path: Path, mode: str) -> Iterator[Tuple[LocalMephistoDB, List[int]]]:
    """(a LocalMephistoDB on a copy of the population, its worker ids), in the test's mode."""
    path = tmp_path / "data" / "database.db"
    path.parent.mkdir()
    shutil.copy(built[0], path)
    if mode == "no-index":
        drop_index(str(path))
    db = LocalMephistoDB(database_path=str(path))
    assert has_index(str(path)) == (mode != "no-index")
    yield db, built[1]
    db.shutdown()


@pytest.mark.parametrize("now", [T0 + 1, T0 + 500, T0 + 10_000], ids=["none-expired", "some-expired", "all-expired"])
def test_each_requirement_alone_matches_the_gate(pop, now):
    db, population = pop
    reqs = every_requirement()
    ref = reference(db, population, reqs, now)
    for i, r in enumerate(reqs):
        verdict, per = eligibility.eligible_workers(db, [r], now=now)
        assert verdict == {wid: ref[wid][i] for wid in population}, r.describe()
        assert per == [sum(ref[wid][i] for wid in population)], r.describe()
        assert eligibility.eligible_counts(db, [r], now=now) == (len(population), per[0], per), r.describe()
    # not trivial: some requirements pass some workers and fail others
    assert any(0 < sum(ref[w][i] for w in population) < len(population) for i in range(len(reqs)))


def test_random_lists_match_the_gate_per_worker_and_per_requirement(pop):
    db, population = pop
    rng = random.Random(3)
    reqs = every_requirement()
    now = T0 + 500
    ref = reference(db, population, reqs, now)
    passing_some = 0
    for _ in range(25):
        chosen = sorted(rng.sample(range(len(reqs)), rng.randint(1, 6)))
        verdict, per = eligibility.eligible_workers(db, [reqs[i] for i in chosen], now=now)
        expected = {wid: all(ref[wid][i] for i in chosen) for wid in population}
        assert verdict == expected, [reqs[i].describe() for i in chosen]
        assert per == [sum(ref[wid][i] for wid in population) for i in chosen]
        counts = eligibility.eligible_counts(db, [reqs[i] for i in chosen], now=now)
        assert counts == (len(population), sum(expected.values()), per)
        passing_some += 0 < sum(expected.values()) < len(population)
    assert passing_some >= 5


def test_long_lists_of_one_kind_match_the_gate(pop):
    """Lists where many workers pass everything (the walk keeps them through every term), and lists
    of only 'does not hold' terms (the walk starts from the population)."""
    db, population = pop
    now = T0 + 500
    reqs = every_requirement()
    ref = reference(db, population, reqs, now)
    loose = [i for i, r in enumerate(reqs) if r.comparator in (cmp.NOT_EXIST, cmp.NOT_IN, cmp.LESS_EQUAL)]
    negative = [i for i, r in enumerate(reqs) if r.comparator == cmp.NOT_EXIST]
    for chosen in (loose, negative, negative[:2]):
        verdict, per = eligibility.eligible_workers(db, [reqs[i] for i in chosen], now=now)
        expected = {wid: all(ref[wid][i] for i in chosen) for wid in population}
        assert verdict == expected and per == [sum(ref[w][i] for w in population) for i in chosen]
        assert eligibility.eligible_counts(db, [reqs[i] for i in chosen], now=now).passing == sum(expected.values())
    assert sum(all(ref[w][i] for i in negative[:2]) for w in population) > 10


def test_a_list_longer_than_one_batch(pop):
    db, population = pop
    reqs = every_requirement() * 2  # 120 requirements: two statements of the mask form
    assert len(reqs) > eligibility_store.BATCH
    now = T0 + 500
    ref = reference(db, population, reqs, now)
    verdict, per = eligibility.eligible_workers(db, reqs, now=now)
    assert verdict == {wid: all(ref[wid]) for wid in population}
    assert per == [sum(ref[wid][i] for wid in population) for i in range(len(reqs))]
    loose = [r for r in reqs if r.qualification != MISSING and r.comparator in (cmp.NOT_EXIST, cmp.NOT_IN)]
    loose = [r for r in loose if r.qualification == "q0"] * 40  # repeats, across the batch boundary
    verdict, per = eligibility.eligible_workers(db, loose, now=now)
    assert verdict == {wid: all(ok for ok, r in zip(ref[wid], reqs, strict=True) if r in loose) for wid in population}


def test_provider_type_and_given_ids_choose_the_population(pop):
    db, population = pop
    req = [Requirement("q1", cmp.GREATER_EQUAL, 2, "t", "")]
    now = T0 + 500
    ref = reference(db, population, req, now)
    mock_ids = {int(w.db_id) for w in db.find_workers(provider_type="mock")}
    verdict, per = eligibility.eligible_workers(db, req, provider_type="mock", now=now)
    assert set(verdict) == mock_ids and 0 < len(mock_ids) < len(population)
    assert verdict == {w: ref[w][0] for w in mock_ids}
    assert eligibility.eligible_counts(db, req, provider_type="mock", now=now) == (len(mock_ids), per[0], per)
    some = sorted(population)[:30]
    unknown = 10**15  # a worker Mephisto never saw holds nothing
    verdict, per = eligibility.eligible_workers(db, req, worker_ids=[*some, some[0], unknown], now=now)
    assert verdict == {**{w: ref[w][0] for w in some}, unknown: False}
    assert eligibility.eligible_counts(db, req, worker_ids=[*some, some[0], unknown], now=now) == (31, per[0], per)
    verdict, _ = eligibility.eligible_workers(db, [Requirement("q1", cmp.NOT_EXIST, None, "t", "")],
                                              worker_ids=[unknown], now=now)
    assert verdict == {unknown: True}
    # Grant rows of a worker id Mephisto does not know count only where that id is asked about.
    verdict, per = eligibility.eligible_workers(db, req, worker_ids=[STRANGER], now=now)
    assert (verdict, per) == ({STRANGER: True}, [1])
    assert eligibility.eligible_workers(db, [], worker_ids=[], now=now) == ({}, [])


def test_the_set_form_agrees_with_the_mask_form(pop):
    """store.counts / store.verdicts against store.passing_masks (the correlated-sum statement)."""
    db, population = pop
    rng = random.Random(5)
    reqs = every_requirement()
    now = T0 + 500
    with Session.open(db, readonly=True) as s, s.transaction():
        ids = qual_store.find_ids(s.conn, [*QUALS, MISSING])
        checks = [eligibility_store.Check(ids.get(r.qualification), r.comparator, r.value) for r in reqs]
        for _ in range(15):
            chosen = [checks[i] for i in sorted(rng.sample(range(len(checks)), rng.randint(1, 8)))]
            masks = eligibility_store.passing_masks(s.conn, chosen, now)
            full = (1 << len(chosen)) - 1
            verdict, per = eligibility_store.verdicts(s.conn, chosen, now)
            assert verdict == {w: m[0] == full for w, m in masks.items()}
            assert per == [sum(m[0] >> i & 1 for m in masks.values()) for i in range(len(chosen))]
            assert eligibility_store.counts(s.conn, chosen, now) == (len(masks), sum(verdict.values()), per)
        leftovers = s.conn.execute("SELECT name FROM sqlite_temp_master WHERE name LIKE 'mephisto_quals_eligible%'")
        assert leftovers.fetchall() == []  # each call drops its TEMP tables


def test_agrees_with_mephistos_worker_is_qualified_where_it_is_defined(pop):
    db, population = pop
    now = T0 + 1  # nothing expired yet: Mephisto does not know our expiry
    reqs = [r for r in every_requirement() if r.qualification != MISSING]
    ref = reference(db, population, reqs, now)
    compared = 0
    for i, r in enumerate(reqs):
        verdict, _ = eligibility.eligible_workers(db, [r], now=now)
        needs_value = r.comparator in cmp.VALUE_COMPARATORS
        for wid in population:
            worker: Any = Worker.get(db, str(wid))
            if needs_value and not worker.get_granted_qualification(r.qualification):
                continue  # Mephisto 1.1.1 raises IndexError here; the gate says "fails"
            assert verdict[wid] == worker_is_qualified(worker, [r.to_mephisto_dict()]) == ref[wid][i], r.describe()
            compared += 1
    assert compared > len(population) * len(reqs) // 2


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("mode", ["no-index"], indirect=True)
def test_reading_without_the_index_changes_nothing_and_a_writer_puts_it_back(pop):
    """forecast reads through a read-only session (its TEMP tables are the connection's own): the
    file is untouched. The next writing session of ours recreates the index, and nothing else."""
    db, population = pop
    req = [Requirement("q2", cmp.IN, (1, 3, 5), "t", ""), Requirement("q3", cmp.NOT_EXIST, None, "t", "")]
    before = digest(db.db_path)
    found = eligibility.eligible_workers(db, req, now=T0 + 500)
    assert eligibility.eligible_counts(db, req, now=T0 + 500).passing == sum(found[0].values())
    assert digest(db.db_path) == before and not has_index(db.db_path)

    with Session.open(db) as s:
        assert s.write_holds and schema.has_grants_index(s.conn)
    assert has_index(db.db_path)
    assert eligibility.eligible_workers(db, req, now=T0 + 500) == found
    with Session.open(db) as s:
        assert s.write_holds == []  # present: the next writing session has nothing to do


@pytest.mark.parametrize("mode", ["lookups"], indirect=True)
def test_an_index_of_that_name_on_other_columns_is_not_trusted(pop):
    """Eligibility reads values through the index; one that does not carry them is rebuilt by a writer
    and ignored (no INDEXED BY) by readers meanwhile."""
    db, population = pop
    req = [Requirement("q4", cmp.GREATER, 2, "t", "")]
    expected = eligibility.eligible_workers(db, req, now=T0 + 500)
    conn = sqlite3.connect(db.db_path, isolation_level=None)
    conn.execute(f"DROP INDEX {schema.GRANTS_INDEX}")
    conn.execute(f"CREATE INDEX {schema.GRANTS_INDEX} ON granted_qualifications (value)")
    conn.close()
    assert not has_index(db.db_path)
    assert eligibility.eligible_workers(db, req, now=T0 + 500) == expected
    Session.open(db).close()
    assert has_index(db.db_path)
    assert eligibility.eligible_workers(db, req, now=T0 + 500) == expected
