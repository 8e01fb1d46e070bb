"""Benchmark: syncing a 10,000-worker qualification to MTurk when 1% differs.

Run with ``./run python bench/bench_mturk_sync.py [--workers 10000] [--differ 0.01]``.

The Mephisto DB holds ``--workers`` sandbox MTurk workers with the qualification; MTurk
(a botocore Stubber on a real boto3 client: every request is checked against the MTurk API
model and the exact parameters expected) holds the same grants except for the differing
1%: some only local (grants), some with another value (changes), some only on MTurk
(revokes). The bench times ``apply_sync`` (plan from both sides + writes), counts every
request the client sent, and checks:

* write calls == the number of differing workers (nothing more is written);
* read calls == the pages of ListWorkersWithQualificationType (100 per page) + 1
  ListQualificationTypes to find the qualification type;
* a second apply writes nothing.

Nothing leaves the machine (sockets to non-loopback addresses raise). Exits non-zero when a
check fails.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

# ``import mephisto`` writes ~/.mephisto/config.yml: keep the bench off the user's set-up.
assert "mephisto" not in sys.modules
os.environ["HOME"] = tempfile.mkdtemp(prefix="mephisto-quals-bench-home-")

import boto3  # noqa: E402
from botocore.stub import Stubber  # noqa: E402
from mephisto.abstractions.databases.local_database import LocalMephistoDB  # noqa: E402
from mephisto.abstractions.providers.mturk_sandbox.sandbox_mturk_requester import SandboxMTurkRequester  # noqa: E402

from mephisto_quals.admin import grants  # noqa: E402
from mephisto_quals.providers.mturk.client import MAX_RESULTS, SANDBOX_ENDPOINT  # noqa: E402
from mephisto_quals.providers.mturk.sync import apply_sync  # noqa: E402

TYPE_ID = "3BENCHTYPE00000000000000000000"
WRITES = {"AssociateQualificationWithWorker", "DisassociateQualificationFromWorker", "CreateQualificationType"}


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


def worker(i: int) -> str:
    return f"A{i:08d}BENCH"


def scenario(n: int, share: float, seed: int = 1) -> Tuple[Dict[str, int], Dict[str, Optional[int]]]:
    """Local and MTurk holders; ``share`` of n differ, split about 40% grant / 30% change / 30% revoke."""
    rng = random.Random(seed)
    local = {worker(i): rng.choice((1, 2, 3)) for i in range(n)}
    differ = max(1, round(n * share))
    n_grant, n_change = round(differ * 0.4), round(differ * 0.3)
    n_revoke = differ - n_grant - n_change
    picked = rng.sample(sorted(local), n_grant + n_change)
    remote: Dict[str, Optional[int]] = dict(local)
    for w in picked[:n_grant]:
        del remote[w]
    for w in picked[n_grant:]:
        remote[w] = local[w] + 10
    for i in range(n, n + n_revoke):
        remote[worker(i)] = 1
    return local, remote


def stub(
    client: Any, local: Dict[str, int], remote: Dict[str, Optional[int]], writes: bool
) -> Tuple[Stubber, int, int]:
    """Queue MTurk's answers; returns the stubber, the page count and the expected write count."""
    stubber = Stubber(client)
    name = "bench_q_sandbox"
    stubber.add_response(
        "list_qualification_types",
        {
            "NumResults": 1,
            "QualificationTypes": [{"QualificationTypeId": TYPE_ID, "Name": name, "QualificationTypeStatus": "Active"}],
        },
        {"Query": name, "MustBeRequestable": False, "MustBeOwnedByCaller": True, "MaxResults": MAX_RESULTS},
    )
    order = list(remote)
    random.Random(2).shuffle(order)
    pages = [order[i : i + MAX_RESULTS] for i in range(0, len(order), MAX_RESULTS)] or [[]]
    for n, page in enumerate(pages):
        params: Dict[str, Any] = {"QualificationTypeId": TYPE_ID, "Status": "Granted", "MaxResults": MAX_RESULTS}
        if n:
            params["NextToken"] = f"t{n}"
        response: Dict[str, Any] = {
            "NumResults": len(page),
            "Qualifications": [
                {"QualificationTypeId": TYPE_ID, "WorkerId": w, "IntegerValue": remote[w], "Status": "Granted"}
                for w in page
            ],
        }
        if n < len(pages) - 1:
            response["NextToken"] = f"t{n + 1}"
        stubber.add_response("list_workers_with_qualification_type", response, params)
    expected = 0
    if writes:
        ups = [w for w in sorted(local) if w not in remote] + [
            w for w in sorted(local) if w in remote and remote[w] != local[w]
        ]
        for w in ups:
            stubber.add_response(
                "associate_qualification_with_worker",
                {},
                {"QualificationTypeId": TYPE_ID, "WorkerId": w, "IntegerValue": local[w], "SendNotification": False},
            )
        downs = sorted(set(remote) - set(local))
        for w in downs:
            stubber.add_response(
                "disassociate_qualification_from_worker", {}, {"QualificationTypeId": TYPE_ID, "WorkerId": w}
            )
        expected = len(ups) + len(downs)
    stubber.activate()
    return stubber, len(pages), expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--differ", type=float, default=0.01, help="share of workers that differ (default 1%%)")
    args = parser.parse_args()
    block_network()

    folder = tempfile.mkdtemp(prefix="mephisto-quals-bench-sync-")
    db = LocalMephistoDB(database_path=os.path.join(folder, "database.db"))
    SandboxMTurkRequester.new(db, "bench")
    local, remote = scenario(args.workers, args.differ)
    report = grants.set_values(db, "bench_q", local, provider="mturk_sandbox", create=True, source="bench")
    assert report.ok

    client = boto3.client(
        "mturk",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url=SANDBOX_ENDPOINT,
    )
    sent: List[str] = []
    client.meta.events.register("provide-client-params.mturk.*", lambda model, **_: sent.append(model.name))

    stubber, pages, expected_writes = stub(client, local, remote, writes=True)
    start = time.perf_counter()
    result = apply_sync(db, "bench_q", "bench", client=client)
    wall = time.perf_counter() - start
    stubber.assert_no_pending_responses()
    stubber.deactivate()
    write_calls = sum(1 for s in sent if s in WRITES)
    read_calls = len(sent) - write_calls
    plan = result.plan
    assert plan is not None

    sent.clear()
    stubber, _, _ = stub(client, local, dict(local), writes=False)
    start = time.perf_counter()
    second = apply_sync(db, "bench_q", "bench", client=client)
    wall2 = time.perf_counter() - start
    stubber.assert_no_pending_responses()
    stubber.deactivate()
    second_writes = sum(1 for s in sent if s in WRITES)

    print(
        f"workers: {args.workers} local, {plan.mturk_holders} on MTurk; differing: {expected_writes} "
        f"(grant {len(plan.grants)}, change {len(plan.changes)}, revoke {len(plan.revokes)})"
    )
    print(f"write calls: {write_calls} (difference: {expected_writes})")
    print(
        f"read calls:  {read_calls} ({pages} ListWorkersWithQualificationType pages of {MAX_RESULTS}"
        " + 1 ListQualificationTypes)"
    )
    print(f"wall time:   {wall:.2f} s (plan + apply, Stubber-backed client, journal rows committed one by one)")
    print(f"second apply: {second_writes} write calls, {len(sent) - second_writes} read calls, {wall2:.2f} s")
    print(f"outcomes: {result.summary()}")

    checks = {
        "write calls == difference": write_calls == expected_writes == result.write_calls,
        "read calls == pages + 1": read_calls == pages + 1 == result.read_calls,
        "no failure": result.ok,
        "second apply writes nothing": second_writes == 0 and second.write_calls == 0,
    }
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    db.shutdown()
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
