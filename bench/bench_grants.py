"""Benchmarks: mephisto-quals' bulk grant, eligibility and gate against Mephisto's own API.

Run with ``./run python bench/bench_grants.py [--workers 10000] [--calls 300]``. Every
comparison is measured in the same run, on the same data, and reported as a ratio
(Mephisto's time / ours); each also checks that both sides give the same result. Exits
non-zero when a goal or a check is missed.

1. Bulk grant: ``grants.grant(db, "q", ids)`` against a loop of ``Worker.grant_qualification``
   (Mephisto's default call, crowd sync included; the mock provider's is a no-op and the
   bench checks nothing touched the network) on twin databases with the same workers.
   Goal: >= 100x, and identical ``granted_qualifications`` rows.
2. Eligibility: ``eligibility.eligible_workers`` against a loop of Mephisto's
   ``worker_is_qualified`` over every worker, 5 requirements; every worker holds the
   value-compared qualifications so Mephisto's version cannot hit its IndexError.
   Goal: >= 50x, same verdict per worker.
3. Gate: ``gate.qualified`` against ``worker_is_qualified``, per call, for a realistic list
   of 7 requirement dicts (what a ``quals`` config with a blocklist, an onboarding, an
   allowlist and a score compiles to). Goal: ours costs no more per call, same answers.

Mephisto's side gets its best case: its Worker objects are built before the clock starts.
Our side is short, so it is timed best of three (best of five for the grant, each on a fresh
database copy);
Mephisto's loops last seconds to minutes and run once.
The databases live in a temporary directory on the same disk as /tmp (``--dir`` to choose).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

# ``import mephisto`` writes ~/.mephisto/config.yml: keep the bench off the user's set-up.
assert "mephisto" not in sys.modules
_HOME = tempfile.mkdtemp(prefix="mephisto-quals-bench-home-")
os.environ["HOME"] = _HOME

from mephisto.abstractions.databases.local_database import LocalMephistoDB  # noqa: E402
from mephisto.data_model.worker import Worker  # noqa: E402
from mephisto.utils.qualifications import find_or_create_qualification, worker_is_qualified  # noqa: E402

from mephisto_quals.admin import eligibility, grants  # noqa: E402
from mephisto_quals.compile import comparators as cmp  # noqa: E402
from mephisto_quals.compile.requirements import Requirement, compile_local  # noqa: E402
from mephisto_quals.integration import gate  # noqa: E402
from mephisto_quals.store import Session, schema  # noqa: E402
from mephisto_quals.store import eligibility as eligibility_store  # noqa: E402
from mephisto_quals.store import qualifications as qual_store  # noqa: E402

GRANT_GOAL = 150.0
FORECAST_LIMIT = 0.25  # seconds for 100,000 workers x 10 requirements
FORECAST_SAMPLE = 200  # Mephisto's loop runs on this many workers (~0.2 s each); its total is extrapolated
ELIGIBILITY_GOAL = 50.0
GATE_GOAL = 1.0
ROUNDS = 3  # our side is timed best-of-ROUNDS (it is short); Mephisto's long loops run once
#: The bulk grant's rounds: one 50-80 ms call ends in two fsyncs, whose latency on a shared VM
#: varied a 10,000-worker grant by up to 60% between rounds (measured), so take the best of more.
GRANT_ROUNDS = 5


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


class NetworkWatch:
    """Record (and refuse) any non-loopback connection or DNS lookup while active."""

    def __init__(self) -> None:
        self.attempts: List[Any] = []

    def __enter__(self) -> NetworkWatch:
        self._saved = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)
        real_connect, real_connect_ex, real_getaddrinfo = self._saved

        def check(address: Any) -> None:
            if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost", "::1"):
                self.attempts.append(address)
                raise RuntimeError(f"benchmark tried to reach {address!r}")

        def connect(sock: socket.socket, address: Any) -> Any:
            check(address)
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            check(address)
            return real_connect_ex(sock, address)

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            check((host, port))
            return real_getaddrinfo(host, port, *args, **kwargs)

        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo  # type: ignore
        return self

    def __exit__(self, *exc: Any) -> None:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = self._saved  # type: ignore


def new_db(folder: str, name: str, n_workers: int) -> Tuple[LocalMephistoDB, List[str]]:
    """A fresh Mephisto DB holding n mock workers, inserted as ``db.new_worker`` would."""
    path = os.path.join(folder, name)
    os.makedirs(path)
    db = LocalMephistoDB(database_path=os.path.join(path, "database.db"))
    conn = sqlite3.connect(db.db_path)
    with conn:
        conn.executemany(
            "INSERT INTO workers(worker_name, provider_type) VALUES (?, ?);",
            [(f"bench{i:06d}_sandbox", "mock") for i in range(n_workers)],
        )
    ids = [str(r[0]) for r in conn.execute("SELECT worker_id FROM workers ORDER BY worker_id")]
    conn.close()
    return db, ids


def granted_rows(db: LocalMephistoDB) -> List[Tuple[Any, ...]]:
    conn = sqlite3.connect(db.db_path)
    try:
        return conn.execute(
            """SELECT granted_qualification_id, worker_id, qualification_id, value, creation_date
               FROM granted_qualifications ORDER BY granted_qualification_id"""
        ).fetchall()
    finally:
        conn.close()


class Result:
    def __init__(self, name: str, mephisto: float, ours: float, goal: float, unit: str, checks: Dict[str, bool]):
        self.name, self.mephisto, self.ours, self.goal, self.unit, self.checks = (
            name,
            mephisto,
            ours,
            goal,
            unit,
            checks,
        )

    @property
    def ratio(self) -> float:
        return self.mephisto / self.ours if self.ours > 0 else float("inf")

    @property
    def passed(self) -> bool:
        return self.ratio >= self.goal and all(self.checks.values())


def bench_grant(folder: str, n: int) -> Tuple[Result, LocalMephistoDB, List[str]]:
    print(f"\n[1] bulk grant of 'q' to {n:,} workers (twin databases, same workers)")
    ours_db, ids = new_db(folder, "ours", n)
    meph_db, meph_ids = new_db(folder, "mephisto", n)
    assert ids == meph_ids
    for d in (ours_db, meph_db):
        find_or_create_qualification(d, "q")
    workers = [Worker.get(meph_db, wid) for wid in meph_ids]  # not timed: Mephisto's best case

    with NetworkWatch() as net:
        start = time.perf_counter()
        crowd_ok = [w.grant_qualification("q", 1) for w in workers]
        t_meph = time.perf_counter() - start

        # Ours is short, so one run is at the mercy of the machine's other load: take the best
        # of GRANT_ROUNDS, each on a fresh copy of the same pre-grant database (the last one is kept).
        t_ours = float("inf")
        for attempt in range(GRANT_ROUNDS):
            target: Any = ours_db
            if attempt < GRANT_ROUNDS - 1:
                target = os.path.join(folder, f"ours-copy-{attempt}.db")
                shutil.copyfile(ours_db.db_path, target)
            start = time.perf_counter()
            report = grants.grant(target, "q", ids)
            t_ours = min(t_ours, time.perf_counter() - start)
            assert report.counts() == {"granted": n}, report.summary()

    ours_rows, meph_rows = granted_rows(ours_db), granted_rows(meph_db)
    same_rows = [r[:4] for r in ours_rows] == [r[:4] for r in meph_rows] and len(ours_rows) == n
    dates = all(r[4] for r in ours_rows) and all(r[4] for r in meph_rows)
    checks = {
        "ours reports every worker granted": report.ok and report.counts() == {"granted": n},
        "Mephisto's crowd sync answered True for all": all(crowd_ok),
        "identical granted_qualifications rows (id, worker, qualification, value)": same_rows,
        "creation_date present on every row": bool(dates),
        "nothing contacted the network": not net.attempts,
    }
    print(f"    Mephisto loop of Worker.grant_qualification: {fmt_time(t_meph)} ({fmt_time(t_meph / n)} per worker)")
    print(f"    grants.grant (one transaction, best of {GRANT_ROUNDS}):      {fmt_time(t_ours)}")
    print(f"    ratio: {t_meph / t_ours:.0f}x (goal >= {GRANT_GOAL:.0f}x)")
    for label, ok in checks.items():
        print(f"    {'ok  ' if ok else 'FAIL'} {label}")
    return Result(f"bulk grant, {n:,} workers", t_meph, t_ours, GRANT_GOAL, "total", checks), ours_db, ids


def populate(db: LocalMephistoDB, ids: Sequence[str], rng: random.Random) -> None:
    """Qualifications for the eligibility and gate benchmarks, granted with our bulk API."""

    def some(fraction: float) -> List[str]:
        return [w for w in ids if rng.random() < fraction]

    for name, values in (
        ("score", {w: rng.randint(0, 5) for w in ids}),
        ("level", {w: rng.randint(0, 4) for w in ids}),
        ("rating", {w: rng.randint(0, 9) for w in ids}),
        ("onb", {w: int(rng.random() < 0.8) for w in some(0.85)}),
        ("onb-failed", {w: 1 for w in some(0.1)}),
        ("allow", {w: 1 for w in some(0.8)}),
        ("blocked", {w: 1 for w in some(0.05)}),
    ):
        report = grants.set_values(db, name, values, create=True)
        assert report.ok, report.summary()


def bench_eligibility(db: LocalMephistoDB, ids: Sequence[str]) -> Result:
    n = len(ids)
    reqs = [
        Requirement("blocked", cmp.NOT_EXIST, None, "bench", "blocklist"),
        Requirement("allow", cmp.EXISTS, None, "bench", "allowlist"),
        Requirement("score", cmp.GREATER_EQUAL, 3, "bench", "score >= 3"),
        Requirement("level", cmp.IN, (1, 2, 3), "bench", "level in [1, 2, 3]"),
        Requirement("rating", cmp.LESS, 8, "bench", "rating < 8"),
    ]
    dicts = [r.to_mephisto_dict() for r in reqs]
    print(f"\n[2] eligibility of {n:,} workers x {len(reqs)} requirements: " + ", ".join(r.describe() for r in reqs))
    workers = [Worker.get(db, wid) for wid in ids]  # not timed

    start = time.perf_counter()
    theirs = {w.db_id: worker_is_qualified(w, dicts) for w in workers}
    t_meph = time.perf_counter() - start

    t_ours = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        verdict, per_requirement = eligibility.eligible_workers(db, reqs)
        t_ours = min(t_ours, time.perf_counter() - start)

    same = len(verdict) == n and all(verdict.get(int(wid)) == theirs[wid] for wid in ids)
    passing = sum(theirs.values())
    checks = {
        "same verdict for every worker": same,
        "some pass, some fail (the data is not trivial)": 0 < passing < n,
    }
    print(f"    Mephisto worker_is_qualified loop: {fmt_time(t_meph)} ({fmt_time(t_meph / n)} per worker)")
    print(f"    eligibility.eligible_workers (best of {ROUNDS}): {fmt_time(t_ours)}")
    print(
        f"    ratio: {t_meph / t_ours:.0f}x (goal >= {ELIGIBILITY_GOAL:.0f}x); {passing:,} of {n:,} pass; "
        f"per requirement {per_requirement}"
    )
    for label, ok in checks.items():
        print(f"    {'ok  ' if ok else 'FAIL'} {label}")
    return Result(f"eligibility, {n:,} x {len(reqs)} reqs", t_meph, t_ours, ELIGIBILITY_GOAL, "total", checks)


def best_of(rounds: int, fn: Callable[[], List[bool]]) -> Tuple[float, List[bool]]:
    best, answers = float("inf"), []
    for _ in range(rounds):
        start = time.perf_counter()
        answers = fn()
        best = min(best, time.perf_counter() - start)
    return best, answers


def bench_gate(db: LocalMephistoDB, ids: Sequence[str], calls: int, rng: random.Random) -> Result:
    reqs, problems = compile_local(
        {
            "blocklists": ["blocked"],
            "block_onboarding_failed": ["onb"],
            "allowlists": ["allow"],
            "require_onboarding_passed": ["onb"],
            "requirements": [{"qualification": "score", "comparator": ">=", "value": 3}],
        },
        "mephisto.blueprint.quals",
    )
    assert not problems, problems
    dicts = [r.to_mephisto_dict() for r in reqs]
    print(
        f"\n[3] gate on a worker's accept, {len(dicts)} requirement dicts, {calls:,} calls each: "
        + ", ".join(r.describe() for r in reqs)
    )
    sample = [Worker.get(db, rng.choice(ids)) for _ in range(calls)]  # not timed

    def theirs() -> List[bool]:
        return [worker_is_qualified(w, dicts) for w in sample]

    def ours() -> List[bool]:
        return [gate.qualified(w, dicts) for w in sample]

    for w in sample[:20]:  # warm both paths (statement caches filled)
        worker_is_qualified(w, dicts)
        gate.qualified(w, dicts)
    t_meph, their_answers = best_of(1, theirs)  # ~20 ms a call on 10,000 workers: one round
    t_ours, our_answers = best_of(ROUNDS, ours)
    checks = {
        "same answer on every call": our_answers == their_answers,
        "some admitted, some refused": 0 < sum(our_answers) < calls,
    }
    per_meph, per_ours = t_meph / calls, t_ours / calls
    print(f"    Mephisto worker_is_qualified: {fmt_time(per_meph)} per call")
    print(f"    gate.qualified:               {fmt_time(per_ours)} per call")
    print(
        f"    ratio: {per_meph / per_ours:.1f}x (goal: ours costs no more, >= {GATE_GOAL:.0f}x); "
        f"{sum(our_answers):,} of {calls:,} admitted"
    )
    for label, ok in checks.items():
        print(f"    {'ok  ' if ok else 'FAIL'} {label}")
    return Result(f"gate, {len(dicts)} dicts", per_meph, per_ours, GATE_GOAL, "per call", checks)


FORECAST_ROUNDS = 5  # the forecast calls are short: best of five


def _best(rounds: int, fn: Callable[[], Any]) -> Tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _forecast_config(reqs: Sequence[Requirement]) -> Dict[str, Any]:
    """A task config whose local requirements are ``reqs`` (forecast adds an exists guard per value one)."""
    sym = {cmp.GREATER_EQUAL: ">=", cmp.IN: "in", cmp.LESS: "<"}
    quals: Dict[str, Any] = {
        "allowlists": [r.qualification for r in reqs if r.comparator == cmp.EXISTS],
        "blocklists": [r.qualification for r in reqs if r.comparator == cmp.NOT_EXIST],
        "requirements": [
            {"qualification": r.qualification, "comparator": sym[r.comparator],
             "value": list(r.value) if isinstance(r.value, tuple) else r.value}
            for r in reqs if r.comparator in sym
        ],
    }
    return {"mephisto": {"blueprint": {"_blueprint_type": "mock_quals", "quals": quals},
                         "provider": {"_provider_type": "mock"}}}


def _drop_grants_index(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)  # bench set-up: what Mephisto 1.4+'s table rebuild does to it
    try:
        conn.execute(f"DROP INDEX IF EXISTS {schema.GRANTS_INDEX}")
    finally:
        conn.close()


def _grant_once(folder: str, source: str, ids: Sequence[str], indexed: bool, attempt: int) -> float:
    """``grants.grant`` of a new qualification to 10,000 of the workers on a fresh copy of ``source``;
    without the index (0.2.0's writer: it never makes one) when not indexed."""
    target = os.path.join(folder, f"grant-copy-{int(indexed)}-{attempt}.db")
    shutil.copyfile(source, target)
    saved = schema.missing_indexes
    if not indexed:
        _drop_grants_index(target)
        schema.missing_indexes = lambda conn: False  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        report = grants.grant(target, "fresh", ids[:10_000], create=True, crowd=False)
        took = time.perf_counter() - start
    finally:
        schema.missing_indexes = saved  # type: ignore[assignment]
    assert report.ok and report.counts() == {"granted": min(10_000, len(ids))}, report.summary()
    check = sqlite3.connect(target)
    try:
        assert schema.has_grants_index(check) == indexed
    finally:
        check.close()
    os.remove(target)
    return took


def _insert_once(folder: str, source: str, rows: Sequence[Tuple[int, int, int]], indexed: bool, attempt: int) -> float:
    """One transaction inserting ``rows`` (qualification, worker, value) straight into
    ``granted_qualifications`` of a fresh copy, with or without our index: its maintenance cost alone."""
    target = os.path.join(folder, f"insert-copy-{int(indexed)}-{attempt}.db")
    shutil.copyfile(source, target)
    if not indexed:
        _drop_grants_index(target)
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO granted_qualifications (qualification_id, worker_id, value) VALUES (?, ?, ?)", rows
        )
        conn.execute("COMMIT")
        took = time.perf_counter() - start
    finally:
        conn.close()
    os.remove(target)
    return took


def _with_and_without(rounds: int, once: Callable[[bool, int], float]) -> Tuple[float, float]:
    """Best of ``rounds`` with the index and without, the rounds interleaved (the machine's load hits both)."""
    times: Dict[bool, List[float]] = {True: [], False: []}
    for attempt in range(rounds):
        for indexed in (True, False):
            times[indexed].append(once(indexed, attempt))
    return min(times[True]), min(times[False])


def bench_forecast(folder: str, n: int, rng: random.Random) -> Result:
    """eligible_workers / eligible_counts / forecast over n workers x 10 requirements (~0.7 grants per
    worker and qualification), with our index and without it; the index's cost to build and to insert."""
    print(f"\n[4] forecast of {n:,} workers x 10 requirements (set-based: a statement per qualification, one walk)")
    db, ids = new_db(folder, "forecast", n)
    names = [f"f{i}" for i in range(10)]
    for name in names:
        find_or_create_qualification(db, name)
    conn = sqlite3.connect(db.db_path)  # bench set-up: bulk rows straight in, as grants would leave them
    with conn:
        qids = dict(conn.execute("SELECT qualification_name, qualification_id FROM qualifications"))
        conn.executemany(
            "INSERT INTO granted_qualifications (qualification_id, worker_id, value) VALUES (?, ?, ?)",
            [(qids[q], int(w), rng.randint(0, 9)) for q in names for w in ids if rng.random() < 0.7],
        )
        grants_made = conn.execute("SELECT COUNT(*) FROM granted_qualifications").fetchone()[0]
    conn.close()
    comparators = [
        (cmp.GREATER_EQUAL, 3),
        (cmp.EXISTS, None),
        (cmp.IN, (1, 2, 3)),
        (cmp.LESS, 8),
        (cmp.NOT_EXIST, None),
    ]
    reqs = [Requirement(name, *comparators[i % 5], "bench", "") for i, name in enumerate(names)]
    config = _forecast_config(reqs)
    rounds = FORECAST_ROUNDS

    # Our tables, then the index alone, as the first writing session after Mephisto rebuilt the table builds it.
    Session.open(db.db_path).close()
    _drop_grants_index(db.db_path)
    start = time.perf_counter()
    with Session.open(db.db_path) as s:
        t_index = time.perf_counter() - start
        index_hold = sum(s.write_holds)
        assert schema.has_grants_index(s.conn)
    pristine = os.path.join(folder, "forecast-pristine.db")
    shutil.copyfile(db.db_path, pristine)

    def timings(label: str) -> Dict[str, Tuple[float, Any]]:
        out = {
            "eligible_workers": _best(rounds, lambda: eligibility.eligible_workers(db, reqs)),
            "eligible_counts": _best(rounds, lambda: eligibility.eligible_counts(db, reqs)),
            "forecast": _best(rounds, lambda: eligibility.forecast(db, config=config)),
        }
        print(f"    {label}: " + ", ".join(f"{k} {fmt_time(t)}" for k, (t, _) in out.items()) + f" (best of {rounds})")
        return out

    with_index = timings("with our index   ")
    _drop_grants_index(db.db_path)
    without_index = timings("without the index")
    with Session.open(db.db_path, readonly=True) as s:
        ids_of = qual_store.find_ids(s.conn, names)
        checks = [eligibility_store.Check(ids_of.get(r.qualification), r.comparator, r.value) for r in reqs]
        t_masks, masks = _best(1, lambda: eligibility_store.passing_masks(s.conn, checks, time.time()))
    print(f"    0.2.0's statement (a bit mask per worker, correlated sums), same data: {fmt_time(t_masks)}")

    verdict, per_requirement = with_index["eligible_workers"][1]
    counts = with_index["eligible_counts"][1]
    fc = with_index["forecast"][1]
    full = (1 << len(checks)) - 1
    dicts = [r.to_mephisto_dict() for r in reqs]
    # Mephisto's loop runs on workers holding every value-compared qualification (1.1.1 raises for the
    # others); found with one query here, as each of Mephisto's look-ups scans the grant table.
    valued = [qids[r.qualification] for r in reqs if r.comparator in cmp.VALUE_COMPARATORS]
    conn = sqlite3.connect(db.db_path)
    try:
        holding = [str(r[0]) for r in conn.execute(
            f"SELECT worker_id FROM granted_qualifications WHERE qualification_id IN ({', '.join('?' * len(valued))})"
            " GROUP BY worker_id HAVING COUNT(*) = ? ORDER BY worker_id", [*valued, len(valued)])]
    finally:
        conn.close()
    held_all = [Worker.get(db, wid) for wid in rng.sample(holding, min(FORECAST_SAMPLE, len(holding)))]  # not timed
    start = time.perf_counter()
    theirs = {w.db_id: worker_is_qualified(w, dicts) for w in held_all}  # 1.1.1 raises for the others
    t_sample = time.perf_counter() - start
    t_meph = t_sample / max(len(held_all), 1) * n

    t_grant_idx, t_grant_plain = _with_and_without(
        FORECAST_ROUNDS, lambda indexed, attempt: _grant_once(folder, pristine, ids, indexed, attempt)
    )
    conn = sqlite3.connect(pristine)
    try:  # 10,000 workers who lack f0: their rows go into the middle of f0's range of the index
        lacking = [r[0] for r in conn.execute(
            "SELECT worker_id FROM workers WHERE worker_id NOT IN"
            " (SELECT worker_id FROM granted_qualifications WHERE qualification_id = ?) ORDER BY worker_id LIMIT 10000",
            (qids["f0"],))]
    finally:
        conn.close()
    inserts = {
        "a new qualification": [(max(qids.values()) + 1, int(w), 1) for w in ids[:10_000]],
        "an existing one (f0)": [(qids["f0"], w, 1) for w in lacking],
    }
    t_inserts = {
        what: _with_and_without(
            FORECAST_ROUNDS, lambda indexed, attempt, rows=rows: _insert_once(folder, pristine, rows, indexed, attempt)
        )
        for what, rows in inserts.items()
    }
    os.remove(pristine)

    checks_ok = {
        **{f"{k} under {FORECAST_LIMIT} s (with the index)": t < FORECAST_LIMIT for k, (t, _) in with_index.items()},
        "same verdict as Mephisto on the sample where it is defined": all(
            verdict[int(k)] == v for k, v in theirs.items()
        ),
        "same verdicts and counts as 0.2.0's statement": verdict == {w: m[0] == full for w, m in masks.items()}
        and per_requirement == [sum(m[0] >> i & 1 for m in masks.values()) for i in range(len(checks))],
        "same answers without the index": all(
            without_index[k][1] == with_index[k][1] for k in ("eligible_workers", "eligible_counts")
        ) and (without_index["forecast"][1].passing, without_index["forecast"][1].per_requirement)
        == (fc.passing, fc.per_requirement),
        "counts agree with the per-worker verdicts": tuple(counts) == (n, sum(verdict.values()), per_requirement),
        "forecast() agrees": (fc.known_workers, fc.passing) == (n, counts.passing),
        "some pass, some fail": 0 < sum(verdict.values()) < n,
    }
    print(
        f"    {grants_made:,} grant rows; Mephisto worker_is_qualified on {len(held_all):,} sampled workers: "
        f"{fmt_time(t_sample)}, extrapolated to {n:,}: {fmt_time(t_meph)}"
    )
    print(f"    {sum(verdict.values()):,} pass all; per requirement {per_requirement}; forecast() checks "
          f"{len(fc.per_requirement)} (an exists guard per value comparison)")
    print(f"    our index on {grants_made:,} grant rows: built in {fmt_time(t_index)} by the first writing session "
          f"(write lock held {fmt_time(index_hold)})")
    print(f"    grants.grant of a new qualification to 10,000 workers (best of {FORECAST_ROUNDS}): "
          f"{fmt_time(t_grant_idx)} "
          f"with the index, {fmt_time(t_grant_plain)} without ({t_grant_idx / t_grant_plain:.2f}x)")
    for what, (t_idx, t_plain) in t_inserts.items():
        print(f"    raw INSERT of {len(inserts[what]):,} grant rows of {what} (one transaction, "
              f"best of {FORECAST_ROUNDS}): {fmt_time(t_idx)} with the index, {fmt_time(t_plain)} without "
              f"({t_idx / t_plain:.2f}x)")
    for label, ok in checks_ok.items():
        print(f"    {'ok  ' if ok else 'FAIL'} {label}")
    return Result(f"forecast, {n:,} x 10 (extrap.)", t_meph, with_index["eligible_workers"][0], 1.0, "total", checks_ok)


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=10_000, help="workers in each database (default 10000)")
    parser.add_argument("--calls", type=int, default=300, help="gate calls per side (default 300)")
    parser.add_argument("--dir", default=None, help="where to put the databases (default: a temp dir, removed)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--forecast-workers", type=int, default=100_000, help="workers in the forecast case")
    parser.add_argument("--forecast-only", action="store_true", help="run only the forecast case [4]")
    args = parser.parse_args(list(argv))
    if args.workers < 10 or args.calls < 10:
        parser.error("use at least 10 workers and 10 calls")

    folder = tempfile.mkdtemp(prefix="mephisto-quals-bench-", dir=args.dir)
    rng = random.Random(args.seed)
    print(f"mephisto-quals benchmarks: {args.workers:,} workers, {os.cpu_count()} CPUs, databases in {folder}")
    started = time.perf_counter()
    try:
        if args.forecast_only:
            results = [bench_forecast(folder, args.forecast_workers, rng)]
        else:
            grant_result, db, ids = bench_grant(folder, args.workers)
            populate(db, ids, rng)
            results = [
                grant_result,
                bench_eligibility(db, ids),
                bench_gate(db, ids, args.calls, rng),
                bench_forecast(folder, args.forecast_workers, rng),
            ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(_HOME, ignore_errors=True)

    print(f"\nsummary ({time.perf_counter() - started:.0f} s in all)")
    header = f"{'benchmark':<30} {'Mephisto':>10} {'ours':>10} {'':>9} {'ratio':>8} {'goal':>7}  result"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<30} {fmt_time(r.mephisto):>10} {fmt_time(r.ours):>10} {r.unit:>9} "
            f"{r.ratio:>7.1f}x {'>=' + format(r.goal, 'g') + 'x':>7}  {'PASS' if r.passed else 'FAIL'}"
        )
        for label, ok in r.checks.items():
            if not ok:
                print(f"{'':<30} check failed: {label}")
    ok = all(r.passed for r in results)
    print("all goals met" if ok else "a goal or a check was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
