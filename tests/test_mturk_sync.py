"""MTurk sync and direct MTurk grants, against botocore's Stubber only (every request checked
against the real MTurk API model and against the exact parameters a correct sync sends).

A :class:`Turk` queues, in order, the calls a correct run makes; a missing, extra or
repeated call fails the Stubber (UnStubbedResponseError / StubResponseError), so "exactly
the difference" and "no duplicate write" are checked call by call, and every test ends
with ``assert_no_pending_responses``.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.stub import Stubber
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto.abstractions.providers.mturk.mturk_requester import MTurkRequester
from mephisto.abstractions.providers.mturk_sandbox.sandbox_mturk_requester import SandboxMTurkRequester
from mephisto.data_model.qualification import QUAL_EXISTS
from mephisto.utils.qualifications import make_qualification_dict, worker_is_qualified

from conftest import NetworkBlocked, cli_runner
from mephisto_quals.admin import grants
from mephisto_quals.admin.grants import UnknownQualificationError
from mephisto_quals.admin.queries import history, holders
from mephisto_quals.cli.mturk import sync
from mephisto_quals.providers.mturk.client import (
    RETRY_CONFIG,
    SANDBOX_ENDPOINT,
    LiveRequesterRefused,
    MTurkCalls,
    MTurkError,
    Retry,
    client_for,
    find_qualification_type,
    mturk_qualification_name,
)
from mephisto_quals.providers.mturk.sync import apply_sync, grant_on_mturk, journal, plan_sync, revoke_on_mturk

WRITES = {"AssociateQualificationWithWorker", "DisassociateQualificationFromWorker", "CreateQualificationType"}
TYPE_ID = "3SYNCTYPE0000000000000000000AA"
NEW_TYPE_ID = "3CREATEDTYPE000000000000000BB"
FAST = Retry(base_delay=0.001, max_delay=0.01, jitter=False, sleep=lambda s: None)


class SimulatedCrash(BaseException):
    """The process dying mid-apply (like KeyboardInterrupt or a kill): not an MTurk error."""


def wid(i: int) -> str:
    return f"A{i:06d}TEST"


def mturk_client(sandbox: bool = True) -> Any:
    kwargs: Dict[str, Any] = {"endpoint_url": SANDBOX_ENDPOINT} if sandbox else {}
    return boto3.client("mturk", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x", **kwargs)


class Turk:
    """A scripted MTurk: a client, its Stubber, and a log of every request sent (retries included)."""

    def __init__(self, sandbox: bool = True, crash_after_writes: Optional[int] = None):
        self.client = mturk_client(sandbox)
        self.stubber = Stubber(self.client)
        self.sent: List[Tuple[str, Dict[str, Any]]] = []
        self.crash_after_writes = crash_after_writes
        self.client.meta.events.register("provide-client-params.mturk.*", self._record)
        self.stubber.activate()

    def _record(self, params: Dict[str, Any], model: Any, **_: Any) -> None:
        if self.crash_after_writes is not None and model.name in WRITES and len(self.writes) >= self.crash_after_writes:
            raise SimulatedCrash(f"killed before write {len(self.writes) + 1}")
        self.sent.append((model.name, dict(params)))

    @property
    def writes(self) -> List[Tuple[str, Dict[str, Any]]]:
        return [s for s in self.sent if s[0] in WRITES]

    @property
    def reads(self) -> List[Tuple[str, Dict[str, Any]]]:
        return [s for s in self.sent if s[0] not in WRITES]

    def done(self) -> None:
        self.stubber.assert_no_pending_responses()
        self.stubber.deactivate()

    # -- queueing the calls a correct run makes ---------------------------------------------

    def find_type(self, name: str, type_id: Optional[str] = TYPE_ID, status: str = "Active", pages: int = 1) -> None:
        """ListQualificationTypes for ``name``: substring look-alikes on every page, the exact one last."""
        token = None
        for page in range(pages):
            found = [{"QualificationTypeId": f"3LOOKALIKE{page}".ljust(30, "0"), "Name": f"{name}_old{page}",
                      "QualificationTypeStatus": "Active"}]
            last = page == pages - 1
            if last and type_id:
                found.append({"QualificationTypeId": type_id, "Name": name, "QualificationTypeStatus": status})
            params = {"Query": name, "MustBeRequestable": False, "MustBeOwnedByCaller": True, "MaxResults": 100}
            if token:
                params["NextToken"] = token
            response: Dict[str, Any] = {"NumResults": len(found), "QualificationTypes": found}
            token = None if last else f"types-{page + 1}"
            if token:
                response["NextToken"] = token
            self.stubber.add_response("list_qualification_types", response, params)

    def holders(self, values: Dict[str, Optional[int]], type_id: str = TYPE_ID, page_size: int = 100) -> int:
        """ListWorkersWithQualificationType pages for MTurk's current grants; returns the page count."""
        workers = sorted(values)
        random.Random(len(workers)).shuffle(workers)  # MTurk's order is its own
        pages = [workers[i:i + page_size] for i in range(0, len(workers), page_size)] or [[]]
        for n, page in enumerate(pages):
            params: Dict[str, Any] = {"QualificationTypeId": type_id, "Status": "Granted", "MaxResults": 100}
            if n:
                params["NextToken"] = f"page-{n}"
            quals = []
            for w in page:
                q: Dict[str, Any] = {"QualificationTypeId": type_id, "WorkerId": w, "Status": "Granted"}
                if values[w] is not None:
                    q["IntegerValue"] = values[w]
                quals.append(q)
            response: Dict[str, Any] = {"NumResults": len(quals), "Qualifications": quals}
            if n < len(pages) - 1:
                response["NextToken"] = f"page-{n + 1}"
            self.stubber.add_response("list_workers_with_qualification_type", response, params)
        return len(pages)

    def grant(self, worker: str, value: int, type_id: str = TYPE_ID, error: Optional[str] = None, throttles: int = 0) -> None:
        params = {"QualificationTypeId": type_id, "WorkerId": worker, "IntegerValue": value, "SendNotification": False}
        self._write("associate_qualification_with_worker", params, error, throttles)

    def revoke(self, worker: str, type_id: str = TYPE_ID, error: Optional[str] = None, reason: Optional[str] = None) -> None:
        params = {"QualificationTypeId": type_id, "WorkerId": worker, **({"Reason": reason} if reason else {})}
        self._write("disassociate_qualification_from_worker", params, error, 0)

    def score(self, worker: str, status: Optional[str], type_id: str = TYPE_ID) -> None:
        """GetQualificationScore after a refused revoke: status None = MTurk knows no such grant."""
        params = {"QualificationTypeId": type_id, "WorkerId": worker}
        if status is None:
            self.stubber.add_client_error("get_qualification_score", "RequestError", "no such qualification for worker", 400,
                                          expected_params=params)
        else:
            self.stubber.add_response("get_qualification_score", {"Qualification": {
                "QualificationTypeId": type_id, "WorkerId": worker, "Status": status, "IntegerValue": 1}}, params)

    def create(self, name: str, type_id: str = NEW_TYPE_ID) -> None:
        self.stubber.add_response(
            "create_qualification_type",
            {"QualificationType": {"QualificationTypeId": type_id, "Name": name, "QualificationTypeStatus": "Active"}},
            {"Name": name, "Description": f"Equivalent qualification for {name}.", "QualificationTypeStatus": "Active",
             "AutoGranted": False},
        )

    def _write(self, method: str, params: Dict[str, Any], error: Optional[str], throttles: int) -> None:
        for _ in range(throttles):
            self.stubber.add_client_error(method, "ThrottlingException", "Rate exceeded", 400, expected_params=params)
        if error == "throttled out":
            return  # the caller gives up after the throttles: nothing more is sent
        if error:
            self.stubber.add_client_error(method, "RequestError", error, 400, expected_params=params)
        else:
            self.stubber.add_response(method, {}, params)

    def expect_writes(self, plan_items: Sequence[Tuple[str, str, Optional[int]]], type_id: str = TYPE_ID) -> None:
        for action, worker, value in plan_items:
            if action == "revoke":
                self.revoke(worker, type_id)
            else:
                self.grant(worker, value, type_id)  # type: ignore[arg-type]


# --- fixtures and helpers ------------------------------------------------------------------------

@pytest.fixture
def alice(db: LocalMephistoDB) -> str:
    """A sandbox requester (stored as alice_sandbox); creating it calls nothing on AWS."""
    return SandboxMTurkRequester.new(db, "alice").requester_name


@pytest.fixture
def bob(db: LocalMephistoDB) -> str:
    """A live requester."""
    return MTurkRequester.new(db, "bob").requester_name


def local_grants(db: LocalMephistoDB, qualification: str, values: Dict[str, int], provider: str = "mturk_sandbox") -> None:
    report = grants.set_values(db, qualification, values, provider=provider, create=True, source="test")
    assert report.ok, report.failed


def difference(local: Dict[str, int], remote: Dict[str, Optional[int]]) -> List[Tuple[str, str, Optional[int]]]:
    """The writes a correct sync sends, in its order: grants, changes, revokes, each by worker id."""
    grants_ = [("grant", w, local[w]) for w in sorted(local) if w not in remote]
    changes = [("change", w, local[w]) for w in sorted(local) if w in remote and remote[w] != local[w]]
    revokes = [("revoke", w, None) for w in sorted(set(remote) - set(local))]
    return grants_ + changes + revokes


def scenario(n: int = 250) -> Tuple[Dict[str, int], Dict[str, Optional[int]]]:
    """Local holders and MTurk holders: 10 only local, 5 changed values, 1 with no value on MTurk, 20 only on MTurk."""
    local = {wid(i): 1 + i % 3 for i in range(n)}
    remote: Dict[str, Optional[int]] = {w: v for w, v in local.items()}
    for i in range(10):
        del remote[wid(i)]
    for i in range(10, 15):
        remote[wid(i)] = local[wid(i)] + 7
    remote[wid(15)] = None
    for i in range(n, n + 20):
        remote[wid(i)] = 1
    return local, remote


def write_keys(sent: List[Tuple[str, Dict[str, Any]]]) -> List[Tuple[str, str]]:
    return [(op, p.get("WorkerId", p.get("Name"))) for op, p in sent]


# --- plan ----------------------------------------------------------------------------------------

def test_plan_counts_from_several_pages(db: LocalMephistoDB, alice: str) -> None:
    local, remote = scenario(250)
    local_grants(db, "q", local)
    # Not in the sandbox requester's view: live MTurk workers, mock workers, an expired grant.
    local_grants(db, "q", {wid(900): 1}, provider="mturk")
    local_grants(db, "q", {"mockworker": 1}, provider="mock")
    grants.grant(db, "q", [wid(901)], provider="mturk_sandbox", expires_in="1h", now=0)
    remote[wid(901)] = 1  # still held on MTurk: the sync revokes what expired locally
    turk = Turk()
    turk.find_type("q_sandbox", pages=2)
    pages = turk.holders(remote)
    assert pages == 3  # 261 grants: 100 + 100 + 61

    plan = plan_sync(db, "q", "alice", client=turk.client, retry=FAST)
    turk.done()

    assert (len(plan.grants), len(plan.changes), len(plan.revokes)) == (10, 6, 21)
    assert plan.write_calls == 37 and not plan.create_type
    assert (plan.local_holders, plan.mturk_holders) == (250, 261)
    assert plan.read_calls == 2 + 3 == len(turk.reads)
    assert turk.writes == []
    assert plan.mturk_name == "q_sandbox" and plan.qualification_type_id == TYPE_ID
    assert [(i.action, i.worker, i.value) for i in plan.items] == difference(local, remote)
    assert {i.worker: i.old_value for i in plan.changes}[wid(15)] is None


def test_plan_live_requester_uses_the_plain_name_and_live_workers(db: LocalMephistoDB, bob: str) -> None:
    local_grants(db, "q", {wid(1): 2, wid(2): 1}, provider="mturk")
    local_grants(db, "q", {wid(3): 1}, provider="mturk_sandbox")
    turk = Turk(sandbox=False)
    turk.find_type("q")
    turk.holders({wid(2): 1})
    plan = plan_sync(db, "q", "bob", client=turk.client, live_ok=True, retry=FAST)
    turk.done()
    assert plan.mturk_name == "q" and not plan.sandbox
    assert [(i.action, i.worker, i.value) for i in plan.items] == [("grant", wid(1), 2)]


def test_plan_skips_local_workers_mturk_cannot_hold(db: LocalMephistoDB, alice: str) -> None:
    local_grants(db, "q", {wid(1): 1})
    odd = db.new_worker("not-a-turker_sandbox", "mturk_sandbox")
    assert grants.grant(db, "q", [odd]).ok
    turk = Turk()
    turk.find_type("q_sandbox")
    turk.holders({wid(1): 1})
    plan = plan_sync(db, "q", "alice", client=turk.client)
    turk.done()
    assert plan.items == [] and list(plan.skipped) == ["not-a-turker_sandbox"]
    assert "skipped not-a-turker_sandbox" in plan.summary()


def test_plan_with_revoke_off_keeps_mturk_only_grants(db: LocalMephistoDB, alice: str) -> None:
    local, remote = scenario(40)
    local_grants(db, "q", local)
    turk = Turk()
    turk.find_type("q_sandbox")
    turk.holders(remote)
    plan = plan_sync(db, "q", "alice", client=turk.client, revoke=False)
    turk.done()
    assert plan.revokes == [] and plan.kept == 20 and len(plan.grants) == 10


# --- apply ---------------------------------------------------------------------------------------

def test_apply_sends_exactly_the_difference_and_a_second_apply_sends_nothing(db: LocalMephistoDB, alice: str) -> None:
    local, remote = scenario(250)
    local_grants(db, "q", local)
    diff = difference(local, remote)
    turk = Turk()
    turk.find_type("q_sandbox")
    turk.holders(remote)
    turk.expect_writes(diff)

    report = apply_sync(db, "q", "alice", client=turk.client, retry=FAST)
    turk.done()
    assert report.ok, report.failed
    assert len(turk.writes) == report.write_calls == len(diff) == 36
    assert write_keys(turk.writes) == [
        ("DisassociateQualificationFromWorker" if a == "revoke" else "AssociateQualificationWithWorker", w) for a, w, _ in diff]
    assert report.counts() == {"granted": 10, "updated": 6, "revoked": 20}
    assert len(journal(db, report.plan.plan_id)) == 36  # type: ignore[union-attr]

    # MTurk now holds exactly the local grants: a second apply reads and writes nothing.
    again = Turk()
    again.find_type("q_sandbox")
    again.holders(dict(local))
    second = apply_sync(db, "q", "alice", client=again.client, retry=FAST)
    again.done()
    assert again.writes == [] and second.write_calls == 0 and second.outcomes == []


def test_apply_creates_a_missing_type_and_tells_mephisto(db: LocalMephistoDB, alice: str) -> None:
    local_grants(db, "newq", {wid(1): 1, wid(2): 5})
    turk = Turk()
    turk.find_type("newq_sandbox", type_id=None)
    plan = plan_sync(db, "newq", "alice", client=turk.client)
    assert plan.create_type and plan.write_calls == 3 and "apply creates it" in plan.summary()
    turk.create("newq_sandbox")
    turk.grant(wid(1), 1, NEW_TYPE_ID)
    turk.grant(wid(2), 5, NEW_TYPE_ID)
    report = apply_sync(db, plan, client=turk.client)
    turk.done()
    assert report.created_type and report.qualification_type_id == NEW_TYPE_ID
    assert len(turk.writes) == plan.write_calls == 3
    # Mephisto's own MTurk datastore now maps the name to the same type, so its grants agree with ours.
    mapping = db.get_datastore_for_provider("mturk_sandbox").get_qualification_mapping("newq_sandbox")
    assert mapping["mturk_qualification_id"] == NEW_TYPE_ID


def test_nothing_to_sync_creates_nothing(db: LocalMephistoDB, alice: str) -> None:
    grants.grant(db, "empty", [], create=True)
    turk = Turk()
    turk.find_type("empty_sandbox", type_id=None)
    report = apply_sync(db, "empty", "alice", client=turk.client)
    turk.done()
    assert turk.writes == [] and report.plan.write_calls == 0  # type: ignore[union-attr]


def test_crash_mid_apply_then_a_new_apply_resumes_from_mturks_state(db: LocalMephistoDB, alice: str) -> None:
    local, remote = scenario(60)
    local_grants(db, "q", local)
    diff = difference(local, remote)
    k = 13
    turk = Turk(crash_after_writes=k)
    turk.find_type("q_sandbox")
    turk.holders(remote)
    turk.expect_writes(diff[: k + 1])  # the (k+1)th is queued but never sent: the process dies first
    with pytest.raises(SimulatedCrash):
        apply_sync(db, "q", "alice", client=turk.client, retry=FAST)
    first = write_keys(turk.writes)
    assert len(first) == k

    # MTurk's state after the first k writes; a new apply re-plans from it.
    after = dict(remote)
    for action, worker, value in diff[:k]:
        if action == "revoke":
            del after[worker]
        else:
            after[worker] = value
    resume = Turk()
    resume.find_type("q_sandbox")
    resume.holders(after)
    resume.expect_writes(diff[k:])
    report = apply_sync(db, "q", "alice", client=resume.client, retry=FAST)
    resume.done()
    second = write_keys(resume.writes)
    assert report.ok and len(second) == len(diff) - k
    assert not set(first) & set(second), "a write was sent twice"
    assert sorted(first + second) == sorted(write_keys(turk.writes) + write_keys(resume.writes))
    assert len(first) + len(second) == len(diff)


def test_reapplying_the_same_plan_skips_what_the_journal_records(db: LocalMephistoDB, alice: str) -> None:
    local = {wid(i): 1 for i in range(8)}
    local_grants(db, "fresh", local)
    turk = Turk(crash_after_writes=4)  # create + 3 grants, then killed
    turk.find_type("fresh_sandbox", type_id=None)
    plan = plan_sync(db, "fresh", "alice", client=turk.client)
    turk.create("fresh_sandbox")
    for i in range(4):
        turk.grant(wid(i), 1, NEW_TYPE_ID)
    with pytest.raises(SimulatedCrash):
        apply_sync(db, plan, client=turk.client)
    assert [r["item"] for r in journal(db, plan.plan_id)] == ["*create-type*", wid(0), wid(1), wid(2)]

    # The same plan object again: no reads, no second CreateQualificationType, only the rest.
    again = Turk()
    for i in range(3, 8):
        again.grant(wid(i), 1, NEW_TYPE_ID)
    report = apply_sync(db, plan, client=again.client)
    again.done()
    assert again.reads == [] and [p["WorkerId"] for _, p in again.writes] == [wid(i) for i in range(3, 8)]
    assert report.counts() == {"already applied": 3, "granted": 5}
    assert not report.created_type and report.qualification_type_id == NEW_TYPE_ID


def test_throttling_and_service_errors_are_retried_until_the_sync_converges(db: LocalMephistoDB, alice: str) -> None:
    local, remote = scenario(250)
    local_grants(db, "q", local)
    diff = difference(local, remote)
    turk = Turk()
    rng = random.Random(2024)
    injected = 0

    def flaky(method: str, params: Dict[str, Any]) -> None:
        nonlocal injected
        while rng.random() < 0.3:
            turk.stubber.add_client_error(method, "ThrottlingException", "Rate exceeded", 400, expected_params=params)
            injected += 1

    # Every call may be throttled, repeatedly; one list page fails with ServiceUnavailable.
    name_params = {"Query": "q_sandbox", "MustBeRequestable": False, "MustBeOwnedByCaller": True, "MaxResults": 100}
    flaky("list_qualification_types", name_params)
    turk.find_type("q_sandbox")
    turk.stubber.add_client_error("list_workers_with_qualification_type", "ServiceUnavailable", "try later", 503,
                                  expected_params={"QualificationTypeId": TYPE_ID, "Status": "Granted", "MaxResults": 100})
    injected += 1
    turk.holders(remote)
    for action, worker, value in diff:
        if action == "revoke":
            flaky("disassociate_qualification_from_worker", {"QualificationTypeId": TYPE_ID, "WorkerId": worker})
            turk.revoke(worker)
        else:
            flaky("associate_qualification_with_worker", {"QualificationTypeId": TYPE_ID, "WorkerId": worker,
                                                          "IntegerValue": value, "SendNotification": False})
            turk.grant(worker, value)  # type: ignore[arg-type]
    waits: List[float] = []
    retry = Retry(max_attempts=8, base_delay=0.01, max_delay=1.0, jitter=False, sleep=waits.append)

    report = apply_sync(db, "q", "alice", client=turk.client, retry=retry)
    turk.done()
    assert injected > 0.25 * len(turk.sent) - 1, "the test must really throttle about 30% of calls"
    assert report.ok and report.counts() == {"granted": 10, "updated": 6, "revoked": 20}
    assert report.retries == injected == len(turk.sent) - (report.read_calls + report.write_calls)
    assert report.write_calls == len(diff)
    assert len(waits) == injected and max(waits) > min(waits)  # backoff grew on repeated throttles
    assert all(w in (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64) for w in waits)


def test_stubber_bypasses_botocores_retries_which_is_why_we_retry_ourselves() -> None:
    """Checked, not assumed: a stubbed throttle reaches the caller even with botocore retries on."""
    client = boto3.client("mturk", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
                          endpoint_url=SANDBOX_ENDPOINT, config=Config(retries=dict(RETRY_CONFIG)))
    with Stubber(client) as stubber:
        stubber.add_client_error("get_account_balance", "ThrottlingException", "Rate exceeded", 400)
        stubber.add_response("get_account_balance", {"AvailableBalance": "1.00"})
        with pytest.raises(ClientError, match="ThrottlingException"):
            client.get_account_balance()
        with pytest.raises(AssertionError):
            stubber.assert_no_pending_responses()  # botocore did not retry: the success is still queued
    with Stubber(client) as stubber:
        stubber.add_client_error("get_account_balance", "ThrottlingException", "Rate exceeded", 400)
        stubber.add_response("get_account_balance", {"AvailableBalance": "1.00"})
        calls = MTurkCalls(client, FAST)
        assert calls.read("get_account_balance")["AvailableBalance"] == "1.00"
        assert calls.retries == 1
        stubber.assert_no_pending_responses()


def test_per_worker_failures_are_reported_at_the_end_and_the_rest_is_applied(db: LocalMephistoDB, alice: str) -> None:
    local = {wid(i): 1 for i in range(6)}
    local_grants(db, "q", local)
    remote: Dict[str, Optional[int]] = {wid(90): 1, wid(91): 1, wid(92): 1}
    turk = Turk()
    turk.find_type("q_sandbox")
    turk.holders(remote)
    turk.grant(wid(0), 1)
    turk.grant(wid(1), 1, error="Worker A000001TEST does not exist.")  # MTurk refuses this worker
    turk.grant(wid(2), 1)
    turk.grant(wid(3), 1, error="throttled out", throttles=FAST.max_attempts)  # every attempt: gives up on this one only
    turk.grant(wid(4), 1)
    turk.grant(wid(5), 1)
    turk.revoke(wid(90), error="cannot revoke")
    turk.score(wid(90), "Granted")  # still held: a real failure
    turk.revoke(wid(91), error="not granted")
    turk.score(wid(91), None)  # MTurk knows no such grant: already revoked, not a failure
    turk.revoke(wid(92))

    report = apply_sync(db, "q", "alice", client=turk.client, retry=FAST)
    turk.done()
    failed = {o.worker: o.error for o in report.failed}
    assert set(failed) == {wid(1), wid(3), wid(90)}
    assert "RequestError" in failed[wid(1)] and "does not exist" in failed[wid(1)]
    assert "ThrottlingException" in failed[wid(3)] and f"after {FAST.max_attempts} attempts" in failed[wid(3)]
    assert report.counts() == {"granted": 4, "failed": 3, "revoked": 1, "not held": 1}
    assert {r["item"] for r in journal(db, report.plan.plan_id)} == {wid(0), wid(2), wid(4), wid(5), wid(91), wid(92)}  # type: ignore[union-attr]
    assert "3 failed" in report.summary()

    # A new apply tries exactly the failed ones again.
    again = Turk()
    again.find_type("q_sandbox")
    again.holders({wid(0): 1, wid(2): 1, wid(4): 1, wid(5): 1, wid(90): 1})
    again.grant(wid(1), 1)
    again.grant(wid(3), 1)
    again.revoke(wid(90))
    assert apply_sync(db, "q", "alice", client=again.client, retry=FAST).ok
    again.done()


def test_dry_run_apply_writes_nothing(db: LocalMephistoDB, alice: str) -> None:
    local, remote = scenario(30)
    local_grants(db, "q", local)
    turk = Turk()
    turk.find_type("q_sandbox")
    turk.holders(remote)
    report = apply_sync(db, "q", "alice", client=turk.client, dry_run=True)
    turk.done()
    assert turk.writes == [] and report.dry_run and len(report.outcomes) == len(difference(local, remote))
    assert journal(db) == []


# --- direct grants on MTurk ----------------------------------------------------------------------

def test_direct_grant_on_mturk_is_bookkept_and_gates_the_worker(db: LocalMephistoDB, alice: str) -> None:
    turk = Turk()
    turk.find_type("vip_sandbox", type_id=None)
    turk.create("vip_sandbox")
    turk.grant(wid(1), 3, NEW_TYPE_ID)
    turk.grant(wid(2), 3, NEW_TYPE_ID, error="Worker does not exist")
    turk.grant(wid(3), 3, NEW_TYPE_ID)
    report = grant_on_mturk(db, "vip", [wid(1), wid(2), wid(3), "not a worker"], value=3, requester="alice",
                            client=turk.client, reason="pilot crew", retry=FAST)
    turk.done()
    assert {o.worker: o.status for o in report.outcomes} == {
        wid(1): "granted", wid(2): "failed", wid(3): "granted", "not a worker": "failed"}
    assert report.created_type and report.write_calls == 4  # no MTurk call for the malformed id

    # Later, without any stub: Mephisto itself sees the worker records and the grants.
    for name in (f"{wid(1)}_sandbox", f"{wid(3)}_sandbox"):
        (worker,) = db.find_workers(worker_name=name)
        assert worker.provider_type == "mturk_sandbox"
        assert worker.get_granted_qualification("vip").value == 3
        assert worker_is_qualified(worker, [make_qualification_dict("vip", QUAL_EXISTS, None)])
    assert db.find_workers(worker_name=f"{wid(2)}_sandbox") == []  # MTurk refused: nothing recorded
    assert [(h.worker_name, h.value, h.reason) for h in holders(db, "vip")] == [
        (f"{wid(1)}_sandbox", 3, "pilot crew"), (f"{wid(3)}_sandbox", 3, "pilot crew")]
    assert {e.source for e in history(db, "vip")} == {"mturk"}

    # A sync now finds both sides equal.
    check = Turk()
    check.find_type("vip_sandbox", type_id=NEW_TYPE_ID)
    check.holders({wid(1): 3, wid(3): 3}, type_id=NEW_TYPE_ID)
    assert plan_sync(db, "vip", "alice", client=check.client).write_calls == 0
    check.done()


def test_direct_revoke_on_mturk(db: LocalMephistoDB, alice: str) -> None:
    local_grants(db, "vip", {wid(1): 1, wid(2): 1, wid(3): 1})
    turk = Turk()
    turk.find_type("vip_sandbox")
    turk.revoke(wid(1), reason="done")
    turk.revoke(wid(2), error="no", reason="done")
    turk.score(wid(2), None)  # MTurk never had it: revoked locally all the same
    turk.revoke(wid(9), reason="done")  # never seen by Mephisto, held on MTurk
    report = revoke_on_mturk(db, "vip", [wid(1), wid(2), wid(9)], requester="alice", client=turk.client, reason="done")
    turk.done()
    assert report.ok and {o.worker: o.status for o in report.outcomes} == {
        wid(1): "revoked", wid(2): "revoked", wid(9): "not held"}
    assert [h.worker_name for h in holders(db, "vip")] == [f"{wid(3)}_sandbox"]


def test_direct_grant_dry_run_and_bad_input_send_no_writes(db: LocalMephistoDB, alice: str) -> None:
    turk = Turk()
    turk.find_type("vip_sandbox")
    report = grant_on_mturk(db, "vip", [wid(1)], requester="alice", client=turk.client, dry_run=True)
    assert report.dry_run and report.counts() == {"granted": 1}
    with pytest.raises(UnknownQualificationError):
        holders(db, "vip")  # the dry run created neither the qualification nor the worker
    assert db.find_workers(worker_name=f"{wid(1)}_sandbox") == []
    with pytest.raises(ValueError):
        grant_on_mturk(db, "vip", [wid(1)], value="high", requester="alice", client=turk.client)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        grant_on_mturk(db, " vip", [wid(1)], requester="alice", client=turk.client)
    turk.done()
    assert turk.writes == []


# --- safety: sandbox by default, no network ------------------------------------------------------

def test_live_requester_is_refused_without_live_ok(db: LocalMephistoDB, bob: str) -> None:
    SandboxMTurkRequester.new(db, "bob")
    local_grants(db, "q", {wid(1): 1}, provider="mturk")
    turk = Turk(sandbox=False)
    for attempt in (
        lambda: client_for(db, "bob"),
        lambda: plan_sync(db, "q", "bob", client=turk.client),
        lambda: apply_sync(db, "q", "bob", client=turk.client),
        lambda: grant_on_mturk(db, "q", [wid(2)], requester="bob", client=turk.client),
        lambda: revoke_on_mturk(db, "q", [wid(1)], requester="bob", client=turk.client),
    ):
        with pytest.raises(LiveRequesterRefused, match="LIVE MTurk requester 'bob'.*live_ok=True.*bob_sandbox"):
            attempt()
    turk.done()
    assert turk.sent == [] and [h.worker_name for h in holders(db, "q")] == [wid(1)]
    # 'bob_sandbox' is the sandbox one; a live client cannot stand in for it, nor a sandbox one for bob.
    with pytest.raises(MTurkError, match="talks to live MTurk"):
        client_for(db, "bob_sandbox", client=mturk_client(sandbox=False))
    with pytest.raises(MTurkError, match="talks to the sandbox"):
        client_for(db, "bob", live_ok=True, client=mturk_client(sandbox=True))
    assert client_for(db, "bob", live_ok=True, client=turk.client) == (turk.client, False)


def test_client_for_makes_mephistos_client_with_retries(db: LocalMephistoDB, alice: str, bob: str, tmp_path: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[alice]\naws_access_key_id = AKIAALICE\naws_secret_access_key = s\n"
                           "[bob]\naws_access_key_id = AKIABOB\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    client, sandbox = client_for(db, "alice")  # finds alice_sandbox, profile 'alice' as Mephisto uses
    assert sandbox and client.meta.endpoint_url == SANDBOX_ENDPOINT and client.meta.region_name == "us-east-1"
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 11}
    assert client._request_signer._credentials.access_key == "AKIAALICE"
    live, sandbox = client_for(db, "bob", live_ok=True)
    assert not sandbox and live.meta.endpoint_url == "https://mturk-requester.us-east-1.amazonaws.com"
    assert live._request_signer._credentials.access_key == "AKIABOB"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing"))
    with pytest.raises(MTurkError, match="no AWS profile 'alice'.*mephisto register mturk_sandbox"):
        client_for(db, "alice")
    with pytest.raises(MTurkError, match="no MTurk requester 'carol'.*alice_sandbox, bob"):
        client_for(db, "carol")


def test_an_unstubbed_call_is_stopped_by_the_network_guard(db: LocalMephistoDB, alice: str, no_network: List[Any]) -> None:
    local_grants(db, "q", {wid(1): 1})
    client = boto3.client("mturk", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
                          endpoint_url=SANDBOX_ENDPOINT, config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(HTTPClientError) as raised:
        plan_sync(db, "q", "alice", client=client)
    assert isinstance(raised.value.__context__, NetworkBlocked)
    assert no_network == [("mturk-requester-sandbox.us-east-1.amazonaws.com", 443)]
    no_network.clear()  # the attempt was the point of this test


def test_helpers_name_things_as_mephisto_does() -> None:
    assert mturk_qualification_name("q", True) == "q_sandbox" and mturk_qualification_name("q", False) == "q"
    turk = Turk()
    turk.find_type("q", status="Inactive", pages=3)
    found = find_qualification_type(turk.client, "q", FAST)
    turk.done()
    assert found is not None and found["QualificationTypeId"] == TYPE_ID and len(turk.reads) == 3


# --- CLI -----------------------------------------------------------------------------------------

def run_cli(db: LocalMephistoDB, turk: Optional[Turk], args: List[str], stdin: Optional[str] = None) -> Any:
    obj = {"db": db, "mturk_client": turk.client if turk else None}
    return cli_runner().invoke(sync, args, obj=obj, input=stdin)


def test_cli_plan_and_apply_on_the_sandbox(db: LocalMephistoDB, alice: str) -> None:
    local, remote = scenario(40)
    local_grants(db, "q", local)
    turk = Turk()
    turk.find_type("q_sandbox")
    turk.holders(remote)
    result = run_cli(db, turk, ["plan", "q", "--requester", "alice", "--show", "2"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "grant 10, change value 6, revoke 20 -> 36 write calls" in result.output
    assert "... and 34 more" in result.output
    turk.find_type("q_sandbox")
    turk.holders(remote)
    turk.expect_writes(difference(local, remote))
    result = run_cli(db, turk, ["apply", "q", "--requester", "alice"])  # sandbox: no question asked
    turk.done()
    assert result.exit_code == 0, result.output + result.stderr
    assert "10 granted, 20 revoked, 6 updated" in result.output and len(turk.writes) == 36


def test_cli_live_requester_needs_live_then_confirmation(db: LocalMephistoDB, bob: str) -> None:
    local_grants(db, "q", {wid(1): 1, wid(2): 1}, provider="mturk")
    turk = Turk(sandbox=False)
    result = run_cli(db, turk, ["apply", "q", "--requester", "bob"])
    assert result.exit_code == 2 and "LIVE MTurk requester" in result.stderr and "--live" in result.stderr
    assert turk.sent == []

    turk.find_type("q")
    turk.holders({})
    result = run_cli(db, turk, ["apply", "q", "--requester", "bob", "--live"])  # no stdin: no answer
    assert result.exit_code == 1 and "LIVE MTurk requester 'bob': 2 write calls" in result.output
    assert "Aborted" in result.stderr and turk.writes == []

    turk.find_type("q")
    turk.holders({})
    result = run_cli(db, turk, ["apply", "q", "--requester", "bob", "--live"], stdin="n\n")
    assert result.exit_code == 1 and turk.writes == []

    turk.find_type("q")
    turk.holders({})
    result = run_cli(db, turk, ["apply", "q", "--requester", "bob", "--live", "--dry-run"])
    assert result.exit_code == 0 and "dry run" in result.output and turk.writes == []

    turk.find_type("q")
    turk.holders({})
    turk.grant(wid(1), 1)
    turk.grant(wid(2), 1)
    result = run_cli(db, turk, ["apply", "q", "--requester", "bob", "--live", "--yes"])
    turk.done()
    assert result.exit_code == 0, result.output + result.stderr
    assert "2 granted" in result.output and len(turk.writes) == 2


def test_cli_reports_failures_with_exit_1(db: LocalMephistoDB, alice: str) -> None:
    local_grants(db, "q", {wid(1): 1, wid(2): 1})
    turk = Turk()
    turk.find_type("q_sandbox")
    turk.holders({})
    turk.grant(wid(1), 1, error="Worker does not exist")
    turk.grant(wid(2), 1)
    result = run_cli(db, turk, ["apply", "q", "--requester", "alice"])
    turk.done()
    assert result.exit_code == 1 and f"failed {wid(1)}: MTurk RequestError: Worker does not exist" in result.stderr
    result = run_cli(db, None, ["plan", "nope", "--requester", "alice"])
    assert result.exit_code == 2 and "qualification 'nope' does not exist" in result.stderr  # before any AWS set-up
