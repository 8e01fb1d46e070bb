"""Qualification requests: listing across pages, accept/reject by rule or one by one, audit and local grants (stubbed MTurk)."""

from __future__ import annotations

import datetime
import time
from typing import Any, Dict, List, Optional, Tuple

import boto3
import pytest
from botocore.stub import Stubber
from mephisto.abstractions.databases.local_database import LocalMephistoDB

from conftest import cli_runner
from mephisto_quals.admin import grants
from mephisto_quals.admin.queries import history, holders
from mephisto_quals.errors import QualsError
from mephisto_quals.providers.mturk.client import SANDBOX_ENDPOINT, MTurkCalls, Retry
from mephisto_quals.providers.mturk.requests import (
    DEFAULT_REJECT_REASON,
    QualRequest,
    Rule,
    accept,
    decide,
    list_requests,
    reject,
)

SUBMITTED = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
READER_ID = "3READER" + "0" * 23
SCREEN_ID = "3SCREEN" + "0" * 23
NOW = float(int(time.time()))


def client(sandbox: bool = True) -> Any:
    kwargs: Dict[str, Any] = {"endpoint_url": SANDBOX_ENDPOINT} if sandbox else {}
    return boto3.client("mturk", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x", **kwargs)


def qtype(type_id: str, name: str) -> Dict[str, Any]:
    return {"QualificationTypeId": type_id, "Name": name, "Description": "d", "QualificationTypeStatus": "Active",
            "AutoGranted": False}


def list_types_params(name: str) -> Dict[str, Any]:
    return {"Query": name, "MustBeRequestable": False, "MustBeOwnedByCaller": True, "MaxResults": 100}


def raw_request(request_id: str, worker: str, type_id: str = READER_ID) -> Dict[str, Any]:
    return {"QualificationRequestId": request_id, "QualificationTypeId": type_id, "WorkerId": worker, "SubmitTime": SUBMITTED}


def page(requests: List[Dict[str, Any]], token: Optional[str] = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {"NumResults": len(requests), "QualificationRequests": requests}
    if token:
        out["NextToken"] = token
    return out


def request_params(type_id: Optional[str] = READER_ID, token: Optional[str] = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {"MaxResults": 100}
    if type_id:
        out["QualificationTypeId"] = type_id
    if token:
        out["NextToken"] = token
    return out


def req(request_id: str, worker: str, qualification: str = "careful_reader", sandbox: bool = True) -> QualRequest:
    return QualRequest(request_id, READER_ID, qualification, worker, sandbox, SUBMITTED)


# --- listing ----------------------------------------------------------------------------------------

def test_lists_every_page_for_a_named_type() -> None:
    c = client()
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", {"QualificationTypes": [qtype(READER_ID, "careful_reader_sandbox")]},
                          list_types_params("careful_reader_sandbox"))
        stub.add_response("list_qualification_requests", page([raw_request("R1", "A1"), raw_request("R2", "A2")], "t2"),
                          request_params())
        stub.add_response("list_qualification_requests", page([raw_request("R3", "A3")], "t3"), request_params(token="t2"))
        stub.add_response("list_qualification_requests", page([]), request_params(token="t3"))
        found = list_requests(c, ["careful_reader"], sandbox=True)
        stub.assert_no_pending_responses()
    assert [(r.request_id, r.worker_id, r.qualification, r.type_id, r.provider) for r in found] == [
        ("R1", "A1", "careful_reader", READER_ID, "mturk_sandbox"),
        ("R2", "A2", "careful_reader", READER_ID, "mturk_sandbox"),
        ("R3", "A3", "careful_reader", READER_ID, "mturk_sandbox"),
    ]
    assert found[0].submitted == SUBMITTED


def test_lists_by_type_id_and_for_all_types() -> None:
    c = client(sandbox=False)
    with Stubber(c) as stub:
        stub.add_response("get_qualification_type", {"QualificationType": qtype(SCREEN_ID, "screening_test")},
                          {"QualificationTypeId": SCREEN_ID})
        stub.add_response("list_qualification_requests", page([raw_request("R9", "A9", SCREEN_ID)]), request_params(SCREEN_ID))
        by_id = list_requests(c, [SCREEN_ID], sandbox=False)
        # No types named: every request of the caller's types, each type's name looked up once.
        stub.add_response("list_qualification_requests",
                          page([raw_request("R1", "A1"), raw_request("R9", "A9", SCREEN_ID), raw_request("R2", "A2")]),
                          request_params(None))
        stub.add_response("get_qualification_type", {"QualificationType": qtype(READER_ID, "careful_reader")},
                          {"QualificationTypeId": READER_ID})
        stub.add_response("get_qualification_type", {"QualificationType": qtype(SCREEN_ID, "screening_test")},
                          {"QualificationTypeId": SCREEN_ID})
        everything = list_requests(c, sandbox=False)
        stub.assert_no_pending_responses()
    assert [(r.request_id, r.qualification, r.provider) for r in by_id] == [("R9", "screening_test", "mturk")]
    assert [(r.request_id, r.qualification) for r in everything] == [
        ("R1", "careful_reader"), ("R9", "screening_test"), ("R2", "careful_reader")]


def test_an_unknown_type_name_is_an_error() -> None:
    c = client()
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", {"QualificationTypes": [qtype(READER_ID, "careful_reader_v2_sandbox")]},
                          list_types_params("careful_reader_sandbox"))
        with pytest.raises(QualsError, match="'careful_reader_sandbox' is not one of this requester's sandbox"):
            list_requests(c, ["careful_reader"], sandbox=True)
        stub.assert_no_pending_responses()


# --- deciding ------------------------------------------------------------------------------------------

@pytest.fixture
def lists(db: LocalMephistoDB) -> LocalMephistoDB:
    """Local lists on the sandbox provider, plus decoys that must not count."""
    sandbox = {"provider": "mturk_sandbox", "create": True, "now": NOW}
    grants.grant(db, "trusted", ["A1ALLOW", "A4BOTH"], **sandbox)
    grants.grant(db, "banned", ["A2BLOCK", "A4BOTH"], **sandbox)
    # Expired an hour ago: no longer on the list.
    grants.grant(db, "trusted", ["A5EXPIRED"], provider="mturk_sandbox", expires_in="1h", now=NOW - 7200)
    # On the live provider only: not the sandbox worker of the same id.
    grants.grant(db, "trusted", ["A7LIVE"], provider="mturk", now=NOW)
    return db


RULE_REQUESTS = [req("R1", "A1ALLOW"), req("R2", "A2BLOCK"), req("R3", "A3OTHER"), req("R4", "A4BOTH"),
                 req("R5", "A5EXPIRED"), req("R7", "A7LIVE")]


def decisions_of(report: Any) -> List[Tuple[str, str, Optional[str]]]:
    return [(o.request_id, o.status, o.why) for o in report.outcomes]


def audit_rows(db: LocalMephistoDB) -> List[Tuple[str, str, str, Optional[int], str]]:
    return sorted((e.action, e.qualification, e.worker_name, e.new_value, e.source) for e in history(db))


def test_decide_by_rule_accepts_allowlisted_rejects_blocklisted_and_records_everything(lists: LocalMephistoDB) -> None:
    db = lists
    before = len(history(db))
    c = client()
    with Stubber(c) as stub:
        stub.add_response("accept_qualification_request", {}, {"QualificationRequestId": "R1", "IntegerValue": 1})
        stub.add_response("reject_qualification_request", {}, {"QualificationRequestId": "R2", "Reason": "Not this time."})
        stub.add_response("reject_qualification_request", {}, {"QualificationRequestId": "R4", "Reason": "Not this time."})
        report = decide(db, c, RULE_REQUESTS, rule=Rule(["trusted"], ["banned"], reject_reason="Not this time."), now=NOW)
        stub.assert_no_pending_responses()
    assert decisions_of(report) == [
        ("R1", "accepted", "on allowlist 'trusted'"),
        ("R2", "rejected", "on blocklist 'banned'"),
        ("R3", "pending", None),
        ("R4", "rejected", "on blocklist 'banned'"),  # the blocklist wins
        ("R5", "pending", None),
        ("R7", "pending", None),
    ]
    assert report.ok and report.summary() == "qualification requests: 1 accepted, 3 pending, 2 rejected"
    # The accepted worker now holds the requested qualification locally, on the sandbox provider.
    (holder,) = holders(db, "careful_reader", now=NOW)
    assert (holder.worker_name, holder.provider_type, holder.value) == ("A1ALLOW_sandbox", "mturk_sandbox", 1)
    assert report.outcomes[0].local == "granted"
    new = history(db)[: len(history(db)) - before]
    assert sorted((e.action, e.qualification, e.worker_name, e.new_value, e.source) for e in new) == [
        ("accept-request", "careful_reader", "A1ALLOW_sandbox", 1, "mturk-request"),
        ("grant", "careful_reader", "A1ALLOW_sandbox", 1, "mturk-request"),
        ("reject-request", "careful_reader", "A2BLOCK_sandbox", None, "mturk-request"),
        ("reject-request", "careful_reader", "A4BOTH_sandbox", None, "mturk-request"),
    ]
    reject_row = next(e for e in new if e.worker_name == "A2BLOCK_sandbox")
    assert reject_row.reason == "MTurk request R2: on blocklist 'banned'; told: Not this time."


def test_explicit_decisions_win_over_the_rule(lists: LocalMephistoDB) -> None:
    c = client()
    with Stubber(c) as stub:
        stub.add_response("reject_qualification_request", {}, {"QualificationRequestId": "R1", "Reason": DEFAULT_REJECT_REASON})
        stub.add_response("accept_qualification_request", {}, {"QualificationRequestId": "R3", "IntegerValue": 5})
        report = decide(lists, c, [req("R1", "A1ALLOW"), req("R3", "A3OTHER")], rule=Rule(["trusted"]),
                        decisions=[reject("R1"), accept("R3", 5), accept("R404")], now=NOW)
        stub.assert_no_pending_responses()
    assert [(o.request_id, o.status, o.value) for o in report.outcomes] == [
        ("R404", "failed", None), ("R1", "rejected", None), ("R3", "accepted", 5)]
    assert "no pending request with this id" in (report.outcomes[0].error or "")
    assert not report.ok
    assert [(h.worker_name, h.value) for h in holders(lists, "careful_reader", now=NOW)] == [("A3OTHER_sandbox", 5)]


def worker_value(db: LocalMephistoDB, qualification: str, name: str) -> int:
    from mephisto_quals.admin.queries import holders

    return next(h.value for h in holders(db, qualification) if h.worker_name == name)


def test_an_accept_for_a_worker_already_holding_it_is_still_audited(db: LocalMephistoDB) -> None:
    grants.grant(db, "careful_reader", ["A1ALLOW"], provider="mturk_sandbox", create=True, now=NOW)
    c = client()
    with Stubber(c) as stub:
        stub.add_response("accept_qualification_request", {}, {"QualificationRequestId": "R1", "IntegerValue": 1})
        report = decide(db, c, [req("R1", "A1ALLOW")], rule=Rule(["careful_reader"]), now=NOW)
        stub.assert_no_pending_responses()
    # Same value: Mephisto's row is untouched; the accept's reason is recorded on the grant.
    assert report.outcomes[0].local == "updated"
    assert worker_value(db, "careful_reader", "A1ALLOW_sandbox") == 1
    actions = [(e.action, e.source) for e in history(db)]
    assert actions[0] == ("accept-request", "mturk-request") and actions[-1] == ("grant", "api")


def test_dry_run_sends_and_writes_nothing(lists: LocalMephistoDB) -> None:
    rows = audit_rows(lists)
    c = client()
    with Stubber(c) as stub:  # nothing queued: any call fails
        report = decide(lists, c, RULE_REQUESTS, rule=Rule(["trusted"], ["banned"]), dry_run=True, now=NOW)
        stub.assert_no_pending_responses()
    assert [o.status for o in report.outcomes] == ["would accept", "would reject", "pending", "would reject", "pending", "pending"]
    assert report.summary().startswith("dry run, nothing sent or written")
    assert audit_rows(lists) == rows
    from mephisto_quals.admin.queries import list_qualifications

    assert "careful_reader" not in [q.name for q in list_qualifications(lists)]


def test_a_refused_accept_records_nothing(lists: LocalMephistoDB) -> None:
    rows = audit_rows(lists)
    c = client()
    with Stubber(c) as stub:
        stub.add_client_error("accept_qualification_request", "RequestError", "This request has already been processed",
                              expected_params={"QualificationRequestId": "R1", "IntegerValue": 1})
        stub.add_response("reject_qualification_request", {}, {"QualificationRequestId": "R2", "Reason": DEFAULT_REJECT_REASON})
        report = decide(lists, c, [req("R1", "A1ALLOW"), req("R2", "A2BLOCK")], rule=Rule(["trusted"], ["banned"]), now=NOW)
        stub.assert_no_pending_responses()
    assert [o.status for o in report.outcomes] == ["failed", "rejected"]
    assert "RequestError: This request has already been processed" in (report.outcomes[0].error or "")
    assert [r for r in audit_rows(lists) if r not in rows] == [
        ("reject-request", "careful_reader", "A2BLOCK_sandbox", None, "mturk-request")]


def test_throttling_is_retried(db: LocalMephistoDB) -> None:
    waits: List[float] = []
    c = client()
    with Stubber(c) as stub:
        stub.add_client_error("accept_qualification_request", "ThrottlingException", "Rate exceeded", http_status_code=400)
        stub.add_response("accept_qualification_request", {}, {"QualificationRequestId": "R1", "IntegerValue": 2})
        report = decide(db, c, [req("R1", "A1NEW")], decisions=[accept("R1", 2)], now=NOW,
                        retry=Retry(sleep=waits.append, jitter=False))
        stub.assert_no_pending_responses()
    assert report.ok and waits == [0.5]
    assert [(h.worker_name, h.value) for h in holders(db, "careful_reader", now=NOW)] == [("A1NEW_sandbox", 2)]


def test_live_requests_grant_on_the_live_provider(db: LocalMephistoDB) -> None:
    grants.grant(db, "trusted", ["A1ALLOW"], provider="mturk", create=True, now=NOW)
    grants.grant(db, "trusted", ["A2SANDBOXONLY"], provider="mturk_sandbox", now=NOW)
    c = client(sandbox=False)
    calls = MTurkCalls(c)
    with Stubber(c) as stub:
        stub.add_response("accept_qualification_request", {}, {"QualificationRequestId": "R1", "IntegerValue": 1})
        report = decide(db, calls, [req("R1", "A1ALLOW", sandbox=False), req("R2", "A2SANDBOXONLY", sandbox=False)],
                        rule=Rule(["trusted"]), now=NOW)
        stub.assert_no_pending_responses()
    assert [o.status for o in report.outcomes] == ["accepted", "pending"] and calls.writes == 1
    (holder,) = holders(db, "careful_reader", now=NOW)
    assert (holder.worker_name, holder.provider_type) == ("A1ALLOW", "mturk")


def test_an_unknown_rule_list_is_an_error(db: LocalMephistoDB) -> None:
    from mephisto_quals.admin.grants import UnknownQualificationError

    with pytest.raises(UnknownQualificationError, match="'trustd' does not exist"):
        decide(db, client(), [req("R1", "A1")], rule=Rule(["trustd"]), now=NOW)


def test_accept_values_must_be_integers() -> None:
    with pytest.raises(ValueError, match="integers"):
        accept("R1", "high")  # type: ignore[arg-type]


# --- the commands ---------------------------------------------------------------------------------------

@pytest.fixture
def requester(lists: LocalMephistoDB) -> str:
    from mephisto.abstractions.providers.mturk_sandbox.sandbox_mturk_requester import SandboxMTurkRequester

    SandboxMTurkRequester.new(lists, "me")
    return "me"


def queue_listing(stub: Stubber, requests: List[Dict[str, Any]]) -> None:
    stub.add_response("list_qualification_types", {"QualificationTypes": [qtype(READER_ID, "careful_reader_sandbox")]},
                      list_types_params("careful_reader_sandbox"))
    stub.add_response("list_qualification_requests", page(requests), request_params())


def test_requests_list_command(lists: LocalMephistoDB, requester: str) -> None:
    from mephisto_quals.cli.mturk import requests_group

    c = client()
    with Stubber(c) as stub:
        queue_listing(stub, [raw_request("R1", "A1ALLOW"), raw_request("R3", "A3OTHER")])
        result = cli_runner().invoke(
            requests_group, ["list", "--requester", requester, "-q", "careful_reader", "--db", lists.db_path],
            obj={"mturk_client": c})
        stub.assert_no_pending_responses()
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stdout.splitlines() == [
        f"R1\tcareful_reader\tA1ALLOW\t{SUBMITTED.isoformat()}",
        f"R3\tcareful_reader\tA3OTHER\t{SUBMITTED.isoformat()}",
        "2 pending request(s) (sandbox requester 'me')",
    ]


def test_requests_decide_command(lists: LocalMephistoDB, requester: str) -> None:
    from mephisto_quals.cli.mturk import requests_group

    c = client()
    with Stubber(c) as stub:
        queue_listing(stub, [raw_request("R1", "A1ALLOW"), raw_request("R2", "A2BLOCK"), raw_request("R3", "A3OTHER")])
        stub.add_response("accept_qualification_request", {}, {"QualificationRequestId": "R1", "IntegerValue": 1})
        stub.add_response("reject_qualification_request", {}, {"QualificationRequestId": "R2", "Reason": "Sorry"})
        stub.add_response("reject_qualification_request", {}, {"QualificationRequestId": "R3", "Reason": "Sorry"})
        result = cli_runner().invoke(
            requests_group,
            ["decide", "--requester", requester, "-q", "careful_reader", "--accept-allowlisted", "trusted",
             "--reject-blocklisted", "banned", "--reject", "R3", "--reason", "Sorry", "--db", lists.db_path],
            obj={"mturk_client": c})
        stub.assert_no_pending_responses()
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "accepted: R1 careful_reader A1ALLOW (on allowlist 'trusted')" in result.stdout
    assert "rejected: R3 careful_reader A3OTHER (explicit)" in result.stdout
    assert "qualification requests: 1 accepted, 2 rejected (sandbox requester 'me')" in result.stdout
    assert [h.worker_name for h in holders(lists, "careful_reader")] == ["A1ALLOW_sandbox"]


def test_requests_decide_needs_something_to_decide(lists: LocalMephistoDB, requester: str) -> None:
    from mephisto_quals.cli.mturk import requests_group

    result = cli_runner().invoke(requests_group, ["decide", "--requester", requester, "--db", lists.db_path])
    assert result.exit_code == 2 and "say what to decide" in result.stderr
