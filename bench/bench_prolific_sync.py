"""Benchmark: syncing a 10,000-participant list to a Prolific participant group when 1% differs.

Run with ``./run python bench/bench_prolific_sync.py [--participants 10000] [--differ 0.01] [--batch 100]``.

The Mephisto DB holds ``--participants`` Prolific workers with the qualification; the
Prolific stand-in (tests/prolific_standin.py, a real HTTP server on loopback, 100 members per
page) holds the list's group with the same members except for the differing 1%: 60% of them
only local (adds), 40% only in the group (removes). The bench times ``apply_sync`` (plan from
both sides + writes) three times: clean, a second apply (nothing to do), and a fresh copy
with 30% of requests answered 429/503 (no real waiting: Retry-After 0). It counts the
requests on the server's log and checks:

* participants changed == the difference, and each was sent exactly once;
* write calls == the batches of the difference (ceil(adds/batch) + ceil(removes/batch));
* member read calls == the pages of the group's member list (ceil(members/100));
* the second apply writes nothing; the faulty run writes the same and converges.

Nothing leaves the machine (sockets to non-loopback addresses raise). Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Tuple

# ``import mephisto`` writes ~/.mephisto/config.yml: keep the bench off the user's set-up.
assert "mephisto" not in sys.modules
os.environ["HOME"] = tempfile.mkdtemp(prefix="mephisto-quals-bench-home-")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mephisto.abstractions.databases.local_database import LocalMephistoDB  # noqa: E402

from mephisto_quals.admin import grants  # noqa: E402
from mephisto_quals.providers.prolific.client import ProlificClient, Retry  # noqa: E402
from mephisto_quals.providers.prolific.groups import group_name  # noqa: E402
from mephisto_quals.providers.prolific.sync import apply_sync  # noqa: E402
from prolific_standin import StandIn  # noqa: E402

QUAL = "trusted"


def block_network() -> None:
    """Any connection or lookup beyond loopback raises: the bench must stay offline."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def local_only(host: Any) -> None:
        if host not in ("localhost", "127.0.0.1", "::1", None) and not str(host).startswith("127."):
            raise RuntimeError(f"the bench tried to reach {host!r}")

    def connect(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple):
            local_only(address[0])
        return real_connect(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        local_only(host)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[assignment]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def pid(i: int) -> str:
    return f"6a{i:022x}"


def scenario(n: int, share: float) -> Tuple[List[str], List[str], List[str]]:
    """(local ids, adds, removes): ``share`` of n differ, 60% only local, 40% only on Prolific."""
    differ = max(1, round(n * share))
    n_add = round(differ * 0.6)
    local = [pid(i) for i in range(n)]
    adds = local[:n_add]
    removes = [pid(n + i) for i in range(differ - n_add)]
    return local, adds, removes


def standin_for(local: List[str], adds: List[str], removes: List[str], **faults: Any) -> StandIn:
    standin = StandIn(**faults).start()
    workspace = standin.add_workspace("My Workspace")
    present = set(adds)
    standin.add_group(workspace, group_name(QUAL), [p for p in local if p not in present] + removes)
    return standin


def run(db: LocalMephistoDB, standin: StandIn, batch: int) -> Dict[str, Any]:
    """One apply against the stand-in: time, the report and the server's counts."""
    client = ProlificClient(standin.base_url, standin.api_key, Retry(attempts=15, sleep=lambda s: None))
    before = len(standin.calls)
    start = time.perf_counter()
    report = apply_sync(db, QUAL, client=client, batch_size=batch)
    elapsed = time.perf_counter() - start
    calls = standin.calls[before:]
    ok = [c for c in calls if c.ok]
    writes = [c for c in ok if c.write]
    member_reads = [c for c in ok if not c.write and c.path.endswith("/participants/")]
    sent = Counter(p for c in writes for p in (c.body or {}).get("participant_ids", []))
    return {"seconds": elapsed, "report": report, "writes": len(writes), "member_pages": len(member_reads),
            "other_reads": len(ok) - len(writes) - len(member_reads), "failed": len(calls) - len(ok), "sent": sent,
            "members": set(standin.members[standin.group_named(group_name(QUAL)) or ""])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--differ", type=float, default=0.01)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    block_network()
    local, adds, removes = scenario(args.participants, args.differ)
    expected_writes = math.ceil(len(adds) / args.batch) + math.ceil(len(removes) / args.batch)
    remote_size = len(local) - len(adds) + len(removes)
    expected_pages = max(1, math.ceil(remote_size / 100))
    rows, problems = [], []
    with tempfile.TemporaryDirectory(prefix="mephisto-quals-bench-") as tmp:
        results = {}
        for label, faults in (("clean", {}), ("30% 429/503", {"fail_rate": 0.3, "retry_after": "0", "seed": 3})):
            directory = Path(tmp) / label.split()[0].strip("%")
            directory.mkdir()
            db = LocalMephistoDB(database_path=str(directory / "database.db"))
            report = grants.grant(db, QUAL, local, provider="prolific", create=True)
            assert report.ok, report.failed[:3]
            standin = standin_for(local, adds, removes, **faults)
            try:
                results[label] = run(db, standin, args.batch)
                if label == "clean":
                    results["second apply"] = run(db, standin, args.batch)
            finally:
                standin.stop()
        for label, r in results.items():
            second = label == "second apply"
            want_changed = 0 if second else len(adds) + len(removes)
            want_writes = 0 if second else expected_writes
            checks = {
                "participants changed = difference": r["report"].changed == want_changed,
                "each sent once, only the difference": r["sent"] == (Counter() if second else Counter(adds + removes)),
                "write calls = batches of the difference": r["writes"] == want_writes == r["report"].write_calls,
                "member read calls = pages": r["member_pages"] == (math.ceil(len(local) / 100) if second
                                                                   else expected_pages),
                "group = local list": r["members"] == set(local),
            }
            problems += [f"{label}: {name}" for name, ok in checks.items() if not ok]
            rows.append((label, r["seconds"], r["report"].changed, r["writes"], r["member_pages"], r["other_reads"],
                         r["failed"], r["report"].retries, all(checks.values())))
    print(f"{args.participants:,} participants, {args.differ:.0%} differ: {len(adds)} adds + {len(removes)} removes, "
          f"batches of {args.batch}; group member list pages of 100")
    header = ("run", "time", "changed", "write calls", "member pages", "other reads", "429/503", "retries", "checks")
    print(f"{header[0]:<14}{header[1]:>9}{header[2]:>9}{header[3]:>13}{header[4]:>14}{header[5]:>13}{header[6]:>9}"
          f"{header[7]:>9}{header[8]:>8}")
    print("-" * 98)
    for label, seconds, changed, writes, pages, other, failed, retries, ok in rows:
        print(f"{label:<14}{seconds:>8.2f}s{changed:>9}{writes:>13}{pages:>14}{other:>13}{failed:>9}{retries:>9}"
              f"{'PASS' if ok else 'FAIL':>8}")
    print(f"expected: write calls {expected_writes}, member pages {expected_pages} "
          f"({remote_size:,} members before), then {math.ceil(len(local) / 100)} on the second apply")
    for p in problems:
        print(f"FAILED: {p}")
    print("all checks passed" if not problems else f"{len(problems)} check(s) failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
