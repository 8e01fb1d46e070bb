"""Bench: what Mephisto's own per-worker grant reads cost an arrival, with and without granted_reads.

Run with ``./run python bench/bench_arrivals.py`` (Mephisto 1.1.1) or
``MEPHISTO=1.5.2 ./run python bench/bench_arrivals.py`` (a database Mephisto 1.5.2 creates and
migrates); ``--from-1.1.1`` on the 1.5.2 line builds each database with Mephisto 1.1.1 (the
1.1.1 venv, in a subprocess) and lets 1.5.2 migrate it on open.

For each size (``--sizes 400,100000`` grant rows: a bulk grant of 5 qualifications to
size/5 mock workers with ``grants.set_values``), it times, per call, on the same database and
the same random workers:

- ``db.check_granted_qualifications(onboarding_id, worker_id)``: what ``Worker.is_qualified``
  and ``is_disqualified`` run, twice per arrival at a task with onboarding;
- ``worker.is_qualified(onboarding)``: that call as the worker pool makes it (it also looks the
  qualification up by name);
- ``find_granted(db, worker_id=...)``: every grant of one worker;

once with Mephisto's own ``LocalMephistoDB`` read and once with ``granted_reads`` installed,
and checks both return the same objects. Each variant is timed best of ``--rounds``,
alternating. It prints figures, not verdicts: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

# ``import mephisto`` writes ~/.mephisto/config.yml: keep the bench off the user's set-up.
assert "mephisto" not in sys.modules
_HOME = tempfile.mkdtemp(prefix="mephisto-quals-bench-home-")
os.environ["HOME"] = _HOME

from mephisto.abstractions.databases.local_database import LocalMephistoDB  # noqa: E402
from mephisto.data_model.worker import Worker  # noqa: E402

from mephisto_quals.admin import grants  # noqa: E402
from mephisto_quals.integration import granted_reads  # noqa: E402
from mephisto_quals.store.mephisto import GRANTED_READ, find_granted, mephisto_migrations  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUALS = ("onb", "allow", "score", "level", "batch")


def build(path: str, rows: int, seed: int = 1) -> None:
    """A database with ``rows`` grants: 5 qualifications bulk-granted to rows/5 mock workers."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    db = LocalMephistoDB(database_path=path)
    rng = random.Random(seed)
    names = [f"w{i:06d}" for i in range(rows // len(QUALS))]
    for q in QUALS:
        values: Dict[Any, int] = {n: (1 if rng.random() < 0.8 else 0) if q == "onb" else rng.randint(0, 5)
                                  for n in names}
        report = grants.set_values(db, q, values, provider="mock", create=True, source="bench")
        assert report.ok, report.summary()
    db.shutdown()


def build_with_1_1_1(path: str, rows: int) -> None:
    """The same database built by Mephisto 1.1.1 (its venv, through ./run), not yet migrated."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MEPHISTO_PIP_SPEC", "MEPHISTO_QUALS_CACHE", "MEPHISTO_QUALS_RUN_VENV")}
    env["MEPHISTO"] = "1.1.1"
    done = subprocess.run(["bash", str(ROOT / "run"), "python", __file__, "--build-only", path, "--rows", str(rows)],
                          env=env, capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit(f"building with Mephisto 1.1.1 failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def as_seen(result: Sequence[Any]) -> List[Tuple[Any, ...]]:
    return [tuple(sorted((k, v) for k, v in vars(g).items() if k != "db")) for g in result]


def per_call(fn: Callable[[Any], Any], args: Sequence[Any]) -> float:
    start = time.perf_counter()
    for a in args:
        fn(a)
    return (time.perf_counter() - start) / len(args)


def use(variant: str) -> None:
    """Put Mephisto's own read ("mephisto") or ours ("patched") on LocalMephistoDB."""
    if variant == "mephisto":
        setattr(LocalMephistoDB, GRANTED_READ, granted_reads.original_granted_read())
    else:
        assert granted_reads.install_granted_reads()


def measure(path: str, calls: int, rounds: int, seed: int = 2) -> List[Tuple[str, float, float, bool]]:
    db = LocalMephistoDB(database_path=path)  # Mephisto 1.4+ migrates a 1.1.1 database here
    try:
        rng = random.Random(seed)
        onb = db.find_qualifications("onb")[0].db_id
        conn = sqlite3.connect(path)
        all_workers = [str(r[0]) for r in conn.execute("SELECT worker_id FROM workers")]
        if mephisto_migrations():
            status = dict(conn.execute("SELECT name, status FROM migrations").fetchall())
            assert status == {m: "completed" for m in mephisto_migrations()}, status
            print(f"    migrations: {', '.join(f'{k} {v}' for k, v in status.items())}")
        conn.close()
        workers = [Worker.get(db, w) for w in rng.choices(all_workers, k=calls)]  # built before the clock
        cases: Dict[str, Callable[[Any], Any]] = {
            "check_granted_qualifications(q, w)": lambda w: db.check_granted_qualifications(onb, w.db_id),
            "worker.is_qualified(onboarding)": lambda w: w.is_qualified("onb"),
            "find_granted(worker only)": lambda w: find_granted(db, worker_id=w.db_id),
        }
        results = []
        for label, fn in cases.items():
            best = {"mephisto": float("inf"), "patched": float("inf")}
            answers: Dict[str, List[Any]] = {}
            for _ in range(rounds):
                for variant in ("mephisto", "patched"):
                    use(variant)
                    best[variant] = min(best[variant], per_call(fn, workers))
                    answers[variant] = [fn(w) for w in workers[:50]]
            same = [as_seen(a) if isinstance(a, list) else a for a in answers["mephisto"]] == \
                   [as_seen(a) if isinstance(a, list) else a for a in answers["patched"]]
            results.append((label, best["mephisto"], best["patched"], same))
        return results
    finally:
        use("mephisto")
        db.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="400,100000", help="grant row counts, comma-separated")
    parser.add_argument("--calls", type=int, default=300, help="calls per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the databases go (default: a temp dir)")
    parser.add_argument("--from-1.1.1", dest="from_111", action="store_true",
                        help="build with Mephisto 1.1.1, then open (migrate) with this line")
    parser.add_argument("--build-only", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # 1.5.2 warns on check_granted_qualifications
    if args.build_only:
        build(args.build_only, args.rows)
        print("BUILT")
        return 0
    if args.from_111 and not mephisto_migrations():
        sys.exit("--from-1.1.1 needs the migrating line: MEPHISTO=1.5.2 ./run python bench/bench_arrivals.py ...")
    folder = tempfile.mkdtemp(prefix="bench-arrivals-", dir=args.dir)
    line = "1.5.2-like (migrates on open)" if mephisto_migrations() else "1.1.1"
    made = "built by Mephisto 1.1.1, migrated on open by this line" if args.from_111 else "created by this line"
    print(f"Mephisto {line}; databases {made}; SQLite {sqlite3.sqlite_version}; "
          f"{args.calls} calls per variant, best of {args.rounds}")
    rows_out = []
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            path = os.path.join(folder, f"rows-{size}", "database.db")
            started = time.perf_counter()
            (build_with_1_1_1 if args.from_111 else build)(path, size)
            conn = sqlite3.connect(path)
            n = conn.execute("SELECT COUNT(*) FROM granted_qualifications").fetchone()[0]
            conn.close()
            print(f"  built {n:,} grant rows in {time.perf_counter() - started:.1f} s")
            for label, theirs, ours, same in measure(path, args.calls, args.rounds):
                rows_out.append((n, label, theirs, ours, same))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(_HOME, ignore_errors=True)
    print()
    print(f"{'grant rows':>10}  {'call':<36} {'Mephisto µs':>12} {'patched µs':>11} {'ratio':>7}  same")
    print("-" * 86)
    for n, label, theirs, ours, same in rows_out:
        print(f"{n:>10,}  {label:<36} {theirs * 1e6:>12.1f} {ours * 1e6:>11.1f} {theirs / ours:>6.1f}x  "
              f"{'yes' if same else 'NO'}")
    return 0 if all(r[4] for r in rows_out) else 1


if __name__ == "__main__":
    sys.exit(main())
