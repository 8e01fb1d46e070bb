"""The set-based eligibility (one SQL statement for everyone) gives the gate's per-worker verdicts.

A randomized population: holders, non-holders and holders whose grant expired, every
comparator, a qualification missing from the database, workers of two provider types, and a
list longer than one statement's batch of requirements. The per-worker reference is the
gate's ``check_worker`` (its one-worker query and ``passes``); where Mephisto's own
``worker_is_qualified`` is defined (no expiry, the worker holds every value-compared
qualification, every qualification exists) it must agree too.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Sequence

import pytest
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto.data_model.worker import Worker
from mephisto.utils.qualifications import worker_is_qualified

from mephisto_quals.admin import eligibility, grants
from mephisto_quals.compile import comparators as cmp
from mephisto_quals.compile.requirements import Requirement
from mephisto_quals.integration.gate import check_worker
from mephisto_quals.store import eligibility as eligibility_store

T0 = 1_900_000_000.0
QUALS = ["q0", "q1", "q2", "q3", "q4"]
MISSING = "never-created"


def populate(db: LocalMephistoDB, rng: random.Random, n: int = 160) -> List[int]:
    """n workers (mock and mturk_sandbox), each qualification held by about 60% with values 0..5, a
    third of the grants expiring between T0+100 and T0+900."""
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


def reference(db: LocalMephistoDB, ids: Sequence[int], reqs: Sequence[Requirement], now: float) -> Dict[int, List[bool]]:
    return {wid: [r.passed for r in check_worker(db, str(wid), reqs, now=now)] for wid in ids}


@pytest.fixture
def population(db: LocalMephistoDB) -> List[int]:
    return populate(db, random.Random(12))


@pytest.mark.parametrize("now", [T0 + 1, T0 + 500, T0 + 10_000], ids=["none-expired", "some-expired", "all-expired"])
def test_each_requirement_alone_matches_the_gate(db, population, now):
    reqs = every_requirement()
    ref = reference(db, population, reqs, now)
    for i, r in enumerate(reqs):
        verdict, per = eligibility.eligible_workers(db, [r], now=now)
        assert verdict == {wid: ref[wid][i] for wid in population}, r.describe()
        assert per == [sum(ref[wid][i] for wid in population)]
    # not trivial: some requirements pass some workers and fail others
    assert any(0 < sum(ref[w][i] for w in population) < len(population) for i in range(len(reqs)))


def test_random_lists_match_the_gate_per_worker_and_per_requirement(db, population):
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
        passing_some += 0 < sum(expected.values()) < len(population)
    assert passing_some >= 5


def test_a_list_longer_than_one_batch(db, population):
    reqs = every_requirement() * 2  # 120 requirements: two statements
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


def test_provider_type_and_given_ids_choose_the_population(db, population):
    req = [Requirement("q1", cmp.GREATER_EQUAL, 2, "t", "")]
    now = T0 + 500
    ref = reference(db, population, req, now)
    mock_ids = {int(w.db_id) for w in db.find_workers(provider_type="mock")}
    verdict, per = eligibility.eligible_workers(db, req, provider_type="mock", now=now)
    assert set(verdict) == mock_ids and 0 < len(mock_ids) < len(population)
    assert verdict == {w: ref[w][0] for w in mock_ids}
    some = sorted(population)[:30]
    unknown = 10**15  # a worker Mephisto never saw holds nothing
    verdict, per = eligibility.eligible_workers(db, req, worker_ids=[*some, some[0], unknown], now=now)
    assert verdict == {**{w: ref[w][0] for w in some}, unknown: False}
    verdict, _ = eligibility.eligible_workers(db, [Requirement("q1", cmp.NOT_EXIST, None, "t", "")],
                                              worker_ids=[unknown], now=now)
    assert verdict == {unknown: True}


def test_agrees_with_mephistos_worker_is_qualified_where_it_is_defined(db, population):
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
