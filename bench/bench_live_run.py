"""Bench: a live Mephisto run's accept latency with and without bulk grants beside it.

Run with ``./run python bench/bench_live_run.py [--grants 100000] [--revokes 50000]``. It runs
the harness :mod:`mephisto_quals.devtools.live_load` twice, each in a fresh Python process:

1. with process B: a real Operator run (mock architect, onboarding on, an allowlist and a
   blocklist, one arrival every 60-140 ms) while another process runs ``mephisto-quals import``
   of a CSV of new grants (100,000), ``revoke`` of pre-granted members (50,000) and
   ``review --apply`` on an earlier finished run, on the same database file;
2. without it: the same stream (same seed, same workers, as many arrivals), nothing beside it.

It prints the accept latency (Mephisto's time to answer a worker's register, plus the
onboarding submission for admitted workers) as median, p95 and worst for both, the ratio
worst_with / worst_without (goal <= 2), process B's longest write-lock hold per command (from
``Session.write_holds`` of every session it opened on the database), the longest Mephisto
write call in process A (its lock waits) and any "database is locked" or wrong verdict.
Exits 1 when a check or the goal is missed. Timings depend on the machine: figures, not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from mephisto_quals.devtools.live_load import LiveResult, latency_stats

GOAL = 2.0


def scenario(folder: Path, name: str, args: argparse.Namespace, extra: List[str]) -> LiveResult:
    """One harness run in its own Python process (own HOME, own Operator); its result."""
    data, out = folder / name, folder / f"{name}.json"
    cmd = [sys.executable, "-I", "-m", "mephisto_quals.devtools.live_load", "run", "--data-dir", str(data),
           "--json", str(out), "--grants", str(args.grants), "--revokes", str(args.revokes),
           "--earlier-workers", str(args.earlier_workers), "--seed", str(args.seed), *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    started = time.time()
    proc = subprocess.run(cmd, cwd=str(folder), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not out.exists():
        sys.exit(f"{name}: the harness exited {proc.returncode} without a result:\n{proc.stdout[-3000:]}")
    result = LiveResult.from_json(json.loads(out.read_text(encoding="utf-8")))
    print(f"  {name}: {len(result.arrivals)} arrivals, {time.time() - started:.0f} s (phases {result.phases})")
    return result


def ms(value: float) -> str:
    return f"{value * 1000:,.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--revokes", type=int, default=50_000)
    parser.add_argument("--earlier-workers", type=int, default=60)
    parser.add_argument("--arrivals", type=int, default=120, help="arrivals at least (more while B runs)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", help="where the databases go (default: a temp dir, deleted afterwards)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-live-", dir=args.dir))
    try:
        print(f"live run beside {args.grants:,} imported grants, {args.revokes:,} revokes and a review apply")
        with_b = scenario(folder, "with", args, ["--arrivals", str(args.arrivals)])
        without = scenario(folder, "without", args, ["--arrivals", str(len(with_b.arrivals)), "--no-writer"])
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    report(with_b, without)


def report(with_b: LiveResult, without: LiveResult) -> None:
    stats: Dict[str, Dict[str, Any]] = {"without": latency_stats(without.arrivals),
                                        "with": latency_stats(with_b.arrivals)}
    window = with_b.window()
    if window:
        stats["with, sent while B ran"] = latency_stats(with_b.arrivals, *window)
    print(f"\n{'accept latency':<26}{'n':>6}{'median':>12}{'p95':>12}{'worst':>12}")
    for label, s in stats.items():
        print(f"{label:<26}{s['n']:>6}{ms(s['median']):>12}{ms(s['p95']):>12}{ms(s['worst']):>12}")
    ratio = stats["with"]["worst"] / stats["without"]["worst"]
    p95_ratio = stats["with"]["p95"] / stats["without"]["p95"]
    print(f"worst_with / worst_without = {ratio:.2f}x (goal <= {GOAL:.0f}x: {'PASS' if ratio <= GOAL else 'FAIL'}); "
          f"p95 ratio {p95_ratio:.2f}x")

    print(f"\n{'process B':<10}{'wall':>10}{'longest hold':>15}{'write txns':>12}  output")
    for s in with_b.steps:
        lines = [line.strip() for line in s.output.splitlines()]
        first = next((line for line in lines if line.startswith(("grant", "revoke"))), "")
        print(f"{s.name:<10}{s.ended - s.started:>9.2f}s{ms(s.longest_hold):>15}{len(s.holds):>12}  {first}")

    print("\nMephisto writes in process A (timed calls of the run's LocalMephistoDB)")
    for label, r in (("without", without), ("with", with_b)):
        writes = sorted(r.mephisto_writes, key=lambda w: -w[1])
        slow = sum(1 for _, t in writes if t >= 0.5)
        top = ", ".join(f"{n} {ms(t)}" for n, t in writes[:3])
        print(f"  {label:<8} {len(writes):>5} calls, {slow} took >= 0.5 s; longest: {top}")
    print(f"\n'database is locked' in process A: without {len(without.locked)}, with {len(with_b.locked)}")
    print(f"holders after the run: {with_b.counts} (expected {with_b.expected_counts})")
    problems = [f"with: {p}" for p in with_b.problems] + [f"without: {p}" for p in without.problems]
    for p in problems:
        print(f"PROBLEM {p}")
    if not problems:
        print("verdicts: every arrival saw the list before or after each change, never half")
    sys.stdout.flush()
    sys.exit(1 if problems or ratio > GOAL else 0)


if __name__ == "__main__":
    main()
