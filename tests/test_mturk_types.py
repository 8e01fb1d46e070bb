"""MTurk qualification types from YAML: validation, and idempotent create/update through a stubbed client."""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional

import boto3
import pytest
from botocore.stub import Stubber
from mephisto.abstractions.databases.local_database import LocalMephistoDB

from conftest import cli_runner
from mephisto_quals.errors import QualsConfigError
from mephisto_quals.providers.mturk.client import SANDBOX_ENDPOINT, MTurkCalls
from mephisto_quals.providers.mturk.types import QualTypeSpec, ensure_types, load_types, parse_types

QUESTION_FORM = """<QuestionForm xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2017-11-06/QuestionForm.xsd">
  <Question>
    <QuestionIdentifier>q1</QuestionIdentifier>
    <QuestionContent><Text>What is 2 + 2?</Text></QuestionContent>
    <AnswerSpecification><FreeTextAnswer/></AnswerSpecification>
  </Question>
</QuestionForm>
"""
ANSWER_KEY = """<AnswerKey xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/AnswerKey.xsd">
  <Question>
    <QuestionIdentifier>q1</QuestionIdentifier>
    <AnswerOption><SelectionIdentifier>four</SelectionIdentifier><AnswerScore>1</AnswerScore></AnswerOption>
  </Question>
</AnswerKey>
"""
TYPES_YAML = """
qualification_types:
  - name: careful_reader
    description: Passed our careful-reading test
    keywords: [reading, test]
    auto_granted: true
  - name: screening_test
    description: Screening test
    test: {question_form: screening.xml, answer_key: answers.xml, duration: 20m, retake_delay: 7d}
"""
CREATED = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def client(sandbox: bool = True) -> Any:
    kwargs: Dict[str, Any] = {"endpoint_url": SANDBOX_ENDPOINT} if sandbox else {}
    return boto3.client("mturk", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x", **kwargs)


@pytest.fixture
def types_file(tmp_path: Path) -> Path:
    (tmp_path / "screening.xml").write_text(QUESTION_FORM)
    (tmp_path / "answers.xml").write_text(ANSWER_KEY)
    path = tmp_path / "types.yaml"
    path.write_text(TYPES_YAML)
    return path


def list_params(name: str, token: Optional[str] = None) -> Dict[str, Any]:
    params: Dict[str, Any] = {"Query": name, "MustBeRequestable": False, "MustBeOwnedByCaller": True, "MaxResults": 100}
    if token:
        params["NextToken"] = token
    return params


def listing(types: List[Dict[str, Any]], token: Optional[str] = None) -> Dict[str, Any]:
    response: Dict[str, Any] = {"NumResults": len(types), "QualificationTypes": types}
    if token:
        response["NextToken"] = token
    return response


def as_on_mturk(params: Dict[str, Any], type_id: str) -> Dict[str, Any]:
    """What MTurk returns for a type created with ``params``."""
    out = {k: v for k, v in params.items()}
    out.update({"QualificationTypeId": type_id, "CreationTime": CREATED, "IsRequestable": True})
    if out.get("AutoGranted"):
        out.setdefault("AutoGrantedValue", 1)
    else:
        out["AutoGranted"] = False
    return out


def type_id(name: str) -> str:
    return ("3" + "".join(c for c in name.upper() if c.isalnum())).ljust(30, "0")[:30]


# --- loading ----------------------------------------------------------------------------------------

def test_load_types_reads_both_forms(types_file: Path) -> None:
    specs = load_types(types_file)
    reader, screening = specs
    assert reader == QualTypeSpec("careful_reader", "Passed our careful-reading test", ("reading", "test"), None, True, None,
                                  None, None, "qualification_types[0]")
    assert screening.test is not None
    assert screening.test.question_form == QUESTION_FORM and screening.test.answer_key == ANSWER_KEY
    assert screening.test.duration == 20 * 60 and screening.retry_delay == 7 * 86400
    assert screening.test.question_form_path == str(types_file.parent / "screening.xml")  # relative to the YAML
    assert screening.create_params("screening_test") == {
        "Name": "screening_test", "Description": "Screening test", "QualificationTypeStatus": "Active",
        "Test": QUESTION_FORM, "TestDurationInSeconds": 1200, "AnswerKey": ANSWER_KEY, "RetryDelayInSeconds": 604800,
    }


def test_auto_granted_value_implies_auto_granted_and_keywords_may_be_a_string() -> None:
    (spec,) = parse_types({"qualification_types": [
        {"name": "q", "description": "d", "auto_granted_value": 3, "keywords": "a, b ,c", "status": "inactive",
         "retry_delay": "1h"}]})
    assert spec.auto_granted and spec.auto_granted_value == 3 and spec.keywords == ("a", "b", "c")
    assert spec.create_params("q") == {"Name": "q", "Description": "d", "QualificationTypeStatus": "Inactive",
                                       "Keywords": "a, b, c", "RetryDelayInSeconds": 3600, "AutoGranted": True,
                                       "AutoGrantedValue": 3}


TEST = "{question_form: screening.xml, answer_key: answers.xml, duration: 20m}"

BAD_YAML = [
    ("not-yaml", "qualification_types: [\n  - name: x\n", "{file}", "not valid YAML"),
    ("no-root", "types: []\n", "qualification_types", "'qualification_types' list"),
    ("empty-list", "qualification_types: []\n", "qualification_types", "non-empty list"),
    ("unknown-top-key", "qualification_types: [{name: a, description: d}]\nextra: 1\n", "<top level>", "unknown keys"),
    ("item-not-mapping", "qualification_types: [careful]\n", "qualification_types[0]", "mapping with name"),
    ("no-name", "qualification_types: [{description: d}]\n", "qualification_types[0].name", "must be a string"),
    ("sandbox-suffix", "qualification_types: [{name: a_sandbox, description: d}]\n", "qualification_types[0].name", "leave out '_sandbox'"),
    ("no-description", "qualification_types: [{name: a}]\n", "qualification_types[0].description", "non-empty description"),
    ("unknown-key", "qualification_types: [{name: a, description: d, colour: red}]\n", "qualification_types[0]", "unknown keys"),
    ("keywords-int", "qualification_types: [{name: a, description: d, keywords: 5}]\n", "qualification_types[0].keywords", "list of words"),
    ("keyword-comma", "qualification_types: [{name: a, description: d, keywords: ['a,b']}]\n", "qualification_types[0].keywords", "cannot contain"),
    ("auto-not-bool", "qualification_types: [{name: a, description: d, auto_granted: 'yes'}]\n", "qualification_types[0].auto_granted", "true or false"),
    ("value-without-auto", "qualification_types: [{name: a, description: d, auto_granted: false, auto_granted_value: 2}]\n",
     "qualification_types[0].auto_granted_value", "only used with auto_granted"),
    ("value-not-int", "qualification_types: [{name: a, description: d, auto_granted_value: high}]\n",
     "qualification_types[0].auto_granted_value", "integers"),
    ("auto-with-test", f"qualification_types: [{{name: a, description: d, auto_granted: true, test: {TEST}}}]\n",
     "qualification_types[0].auto_granted", "does not auto-grant a type with a test"),
    ("bad-duration", "qualification_types:\n  - {name: a, description: d}\n"
     "  - {name: b, description: d, test: {question_form: screening.xml, duration: 20 minutes}}\n",
     "qualification_types[1].test.duration", "number and a unit"),
    ("no-duration", "qualification_types: [{name: a, description: d, test: {question_form: screening.xml}}]\n",
     "qualification_types[0].test.duration", "give a duration"),
    ("permanent-duration", "qualification_types: [{name: a, description: d, test: {question_form: screening.xml, duration: permanent}}]\n",
     "qualification_types[0].test.duration", "finite duration"),
    ("fractional-seconds", "qualification_types: [{name: a, description: d, test: {question_form: screening.xml, duration: 0.5s}}]\n",
     "qualification_types[0].test.duration", "whole seconds"),
    ("bad-retake", "qualification_types: [{name: a, description: d, test: {question_form: screening.xml, duration: 5m, retake_delay: soon}}]\n",
     "qualification_types[0].test.retake_delay", "number and a unit"),
    ("retake-twice", "qualification_types: [{name: a, description: d, retry_delay: 1d, test: {question_form: screening.xml, duration: 5m, retake_delay: 2d}}]\n",
     "qualification_types[0].test.retake_delay", "give the delay once"),
    ("missing-form", "qualification_types: [{name: a, description: d, test: {question_form: nowhere.xml, duration: 5m}}]\n",
     "qualification_types[0].test.question_form", "does not exist"),
    ("form-not-xml", "qualification_types: [{name: a, description: d, test: {question_form: notes.txt, duration: 5m}}]\n",
     "qualification_types[0].test.question_form", "well-formed"),
    ("form-wrong-root", "qualification_types: [{name: a, description: d, test: {question_form: answers.xml, duration: 5m}}]\n",
     "qualification_types[0].test.question_form", "must be <QuestionForm>, not <AnswerKey>"),
    ("key-wrong-root", "qualification_types: [{name: a, description: d, test: {question_form: screening.xml, answer_key: screening.xml, duration: 5m}}]\n",
     "qualification_types[0].test.answer_key", "must be <AnswerKey>"),
    ("form-too-big", "qualification_types: [{name: a, description: d, test: {question_form: huge.xml, duration: 5m}}]\n",
     "qualification_types[0].test.question_form", "at most 65535 bytes"),
    ("test-not-mapping", "qualification_types: [{name: a, description: d, test: screening.xml}]\n",
     "qualification_types[0].test", "question_form, duration"),
    ("duplicate-names", "qualification_types: [{name: a, description: d}, {name: a, description: e}]\n",
     "qualification_types[1].name", "unique"),
    ("bad-status", "qualification_types: [{name: a, description: d, status: paused}]\n", "qualification_types[0].status", "Active or Inactive"),
]


@pytest.mark.parametrize("text,path,expected", [c[1:] for c in BAD_YAML], ids=[c[0] for c in BAD_YAML])
def test_bad_type_files_are_refused_naming_the_path(types_file: Path, text: str, path: str, expected: str) -> None:
    folder = types_file.parent
    (folder / "notes.txt").write_text("not <xml")
    (folder / "huge.xml").write_text("<QuestionForm>" + "x" * 70000 + "</QuestionForm>")
    bad = folder / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(QualsConfigError) as raised:
        load_types(bad)
    paths = [p.path for p in raised.value.problems]
    assert path.format(file=bad) in paths, raised.value.problems
    problem = raised.value.problems[paths.index(path.format(file=bad))]
    assert expected in str(problem), str(problem)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(QualsConfigError) as raised:
        parse_types({"qualification_types": [{"name": "a"}, {"description": "d", "test": {"duration": "x"}}]})
    assert [p.path for p in raised.value.problems] == [
        "qualification_types[0].description", "qualification_types[1].name",
        "qualification_types[1].test.question_form", "qualification_types[1].test.duration",
    ]


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(QualsConfigError, match="readable YAML file"):
        load_types(tmp_path / "missing.yaml")


# --- what MTurk can change: the claims come from botocore's own model ------------------------------

def test_the_unchangeable_fields_are_what_the_mturk_model_documents() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("mturk")
    update = model.operation_model("UpdateQualificationType")
    assert "Name" not in update.input_shape.members and "Keywords" not in update.input_shape.members
    assert "the Name and Keywords fields cannot be modified" in update.documentation
    assert "RetryDelayInSeconds cannot be used to disable retries" in update.documentation
    assert "can be modified or added to change the delay or to enable retries" in update.documentation
    assert "There is no way to remove a test from a Qualification type that has one" in update.documentation
    assert "If the type already has a test, you cannot update it to be AutoGranted" in update.documentation


# --- ensure_types -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox", "live"])
def test_creates_missing_types_with_mephistos_names(types_file: Path, sandbox: bool) -> None:
    specs = load_types(types_file)
    c = client(sandbox)
    suffix = "_sandbox" if sandbox else ""
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", listing([]), list_params(f"careful_reader{suffix}"))
        stub.add_response("create_qualification_type",
                          {"QualificationType": {"QualificationTypeId": type_id("careful_reader")}},
                          {"Name": f"careful_reader{suffix}", "Description": "Passed our careful-reading test",
                           "QualificationTypeStatus": "Active", "Keywords": "reading, test", "AutoGranted": True})
        stub.add_response("list_qualification_types", listing([]), list_params(f"screening_test{suffix}"))
        stub.add_response("create_qualification_type",
                          {"QualificationType": {"QualificationTypeId": type_id("screening_test")}},
                          {"Name": f"screening_test{suffix}", "Description": "Screening test", "QualificationTypeStatus": "Active",
                           "Test": QUESTION_FORM, "TestDurationInSeconds": 1200, "AnswerKey": ANSWER_KEY,
                           "RetryDelayInSeconds": 604800})
        results = ensure_types(c, specs, sandbox)
        stub.assert_no_pending_responses()
    assert [(r.mturk_name, r.action, r.type_id) for r in results] == [
        (f"careful_reader{suffix}", "created", type_id("careful_reader")),
        (f"screening_test{suffix}", "created", type_id("screening_test")),
    ]
    assert all(r.ok for r in results)


def test_a_second_run_makes_no_write_call(types_file: Path) -> None:
    """Apply twice against the same (stubbed) MTurk state: the second run only reads."""
    specs = load_types(types_file)
    c = client()
    calls = MTurkCalls(c)
    created: List[Dict[str, Any]] = []

    def remember(params: Dict[str, Any], **_: Any) -> None:
        created.append(dict(params))

    c.meta.events.register("provide-client-params.mturk.CreateQualificationType", remember)
    with Stubber(c) as stub:
        for spec in specs:
            stub.add_response("list_qualification_types", listing([]), list_params(f"{spec.name}_sandbox"))
            stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": type_id(spec.name)}})
        first = ensure_types(calls, specs, sandbox=True)
        stub.assert_no_pending_responses()
    assert calls.writes == 2 and [r.action for r in first] == ["created", "created"]
    on_mturk = [as_on_mturk(p, type_id(p["Name"])) for p in created]
    # MTurk may hand the XML back formatted differently: that is not a difference.
    on_mturk[1]["Test"] = on_mturk[1]["Test"].replace("\n  ", "\n")
    calls = MTurkCalls(c)
    with Stubber(c) as stub:
        for spec, existing in zip(specs, on_mturk, strict=True):
            stub.add_response("list_qualification_types", listing([existing]), list_params(f"{spec.name}_sandbox"))
        second = ensure_types(calls, specs, sandbox=True)
        stub.assert_no_pending_responses()
    assert calls.writes == 0 and calls.reads == 2
    assert [(r.action, r.changed, r.warnings, r.errors) for r in second] == [("unchanged", [], [], [])] * 2


def test_only_changed_fields_are_updated(types_file: Path) -> None:
    reader, screening = load_types(types_file)
    existing_reader = as_on_mturk(reader.create_params("careful_reader_sandbox"), type_id("careful_reader"))
    existing_reader["Description"] = "Old description"
    existing_reader["AutoGrantedValue"] = 2
    existing_screening = as_on_mturk(screening.create_params("screening_test_sandbox"), type_id("screening_test"))
    existing_screening["TestDurationInSeconds"] = 600
    existing_screening["RetryDelayInSeconds"] = 86400
    c = client()
    calls = MTurkCalls(c)
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", listing([existing_reader]), list_params("careful_reader_sandbox"))
        stub.add_response("update_qualification_type", {"QualificationType": existing_reader},
                          {"QualificationTypeId": type_id("careful_reader"), "Description": "Passed our careful-reading test",
                           "AutoGranted": True, "AutoGrantedValue": 1})
        stub.add_response("list_qualification_types", listing([existing_screening]), list_params("screening_test_sandbox"))
        # A new duration means sending the test again, with its answer key (else the key is dropped).
        stub.add_response("update_qualification_type", {"QualificationType": existing_screening},
                          {"QualificationTypeId": type_id("screening_test"), "Test": QUESTION_FORM,
                           "TestDurationInSeconds": 1200, "AnswerKey": ANSWER_KEY, "RetryDelayInSeconds": 604800})
        results = ensure_types(calls, [reader, screening], sandbox=True)
        stub.assert_no_pending_responses()
    assert [(r.action, r.changed) for r in results] == [
        ("updated", ["Description", "AutoGrantedValue"]),
        ("updated", ["TestDurationInSeconds", "RetryDelayInSeconds"]),
    ]
    assert calls.writes == 2


def test_existing_types_are_found_on_later_pages_by_exact_name(types_file: Path) -> None:
    reader, _ = load_types(types_file)
    near = as_on_mturk(reader.create_params("careful_reader_v2_sandbox"), type_id("v2"))
    near["Description"] = "something else"
    exact = as_on_mturk(reader.create_params("careful_reader_sandbox"), type_id("careful_reader"))
    c = client()
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", listing([near], token="page-2"), list_params("careful_reader_sandbox"))
        stub.add_response("list_qualification_types", listing([exact]), list_params("careful_reader_sandbox", "page-2"))
        (result,) = ensure_types(c, [reader], sandbox=True)
        stub.assert_no_pending_responses()
    assert (result.action, result.type_id) == ("unchanged", type_id("careful_reader"))


def spec(**kw: Any) -> QualTypeSpec:
    base: Dict[str, Any] = {"name": "q", "description": "d", "path": "qualification_types[0]"}
    base.update(kw)
    return QualTypeSpec(**base)


def existing(**kw: Any) -> Dict[str, Any]:
    base = {"QualificationTypeId": type_id("q"), "Name": "q_sandbox", "Description": "d", "QualificationTypeStatus": "Active",
            "CreationTime": CREATED, "IsRequestable": True, "AutoGranted": False}
    base.update(kw)
    return base


def run_without_writes(specs: List[QualTypeSpec], on_mturk: Dict[str, Any]) -> Any:
    """ensure_types where the stub allows only the listing: any write call would fail the test."""
    c = client()
    calls = MTurkCalls(c)
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", listing([on_mturk]), list_params("q_sandbox"))
        (result,) = ensure_types(calls, specs, sandbox=True)
        stub.assert_no_pending_responses()
    assert calls.writes == 0
    return result


TEST_SPEC_KW = {"question_form": QUESTION_FORM, "duration": 600}


@pytest.mark.parametrize("wanted,on_mturk,message", [
    (spec(description="new"), existing(Test=QUESTION_FORM, TestDurationInSeconds=600),
     "MTurk cannot remove a test"),
    (spec(auto_granted=True), existing(Test=QUESTION_FORM, TestDurationInSeconds=600),
     "cannot make such a type auto-granted"),
    (spec(description="new"), existing(RetryDelayInSeconds=3600), "MTurk cannot disable retries"),
], ids=["remove-test", "auto-grant-with-test", "disable-retries"])
def test_what_mturk_cannot_change_is_an_error_and_nothing_is_written(wanted: QualTypeSpec, on_mturk: Dict[str, Any], message: str) -> None:
    result = run_without_writes([wanted], on_mturk)
    assert result.action == "conflict" and not result.ok
    assert any(message in e for e in result.errors), result.errors
    assert result.errors[0].startswith("qualification_types[0]")


def test_keywords_cannot_change_a_warning_and_no_write() -> None:
    result = run_without_writes([spec(keywords=("new", "words"))], existing(Keywords="old, words"))
    assert result.action == "unchanged" and result.ok
    assert len(result.warnings) == 1 and "cannot change keywords" in result.warnings[0]
    assert "'old, words'" in result.warnings[0] and "'new, words'" in result.warnings[0]


def test_retries_can_be_enabled_later_and_a_test_added() -> None:
    """The model allows enabling retries and adding a test to a type without one."""
    from mephisto_quals.providers.mturk.types import TestSpec

    wanted = spec(retry_delay=3600, test=TestSpec(QUESTION_FORM, 600))
    c = client()
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", listing([existing(AutoGranted=True)]), list_params("q_sandbox"))
        stub.add_response("update_qualification_type", {"QualificationType": existing()},
                          {"QualificationTypeId": type_id("q"), "Test": QUESTION_FORM, "TestDurationInSeconds": 600,
                           "RetryDelayInSeconds": 3600, "AutoGranted": False})
        (result,) = ensure_types(c, [wanted], sandbox=True)
        stub.assert_no_pending_responses()
    assert result.action == "updated" and result.changed == ["Test", "TestDurationInSeconds", "RetryDelayInSeconds", "AutoGranted"]


def test_status_is_left_alone_unless_the_yaml_sets_it() -> None:
    assert run_without_writes([spec()], existing(QualificationTypeStatus="Inactive")).action == "unchanged"
    c = client()
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", listing([existing(QualificationTypeStatus="Inactive")]), list_params("q_sandbox"))
        stub.add_response("update_qualification_type", {"QualificationType": existing()},
                          {"QualificationTypeId": type_id("q"), "QualificationTypeStatus": "Active"})
        (result,) = ensure_types(c, [spec(status="Active")], sandbox=True)
        stub.assert_no_pending_responses()
    assert result.changed == ["QualificationTypeStatus"]


def test_dry_run_only_reads(types_file: Path) -> None:
    specs = load_types(types_file)
    c = client()
    calls = MTurkCalls(c)
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", listing([]), list_params("careful_reader_sandbox"))
        stub.add_response("list_qualification_types", listing([]), list_params("screening_test_sandbox"))
        results = ensure_types(calls, specs, sandbox=True, dry_run=True)
        stub.assert_no_pending_responses()
    assert calls.writes == 0
    assert [r.summary() for r in results] == ["careful_reader_sandbox: would create", "screening_test_sandbox: would create"]


def test_a_refused_call_fails_that_type_only(types_file: Path) -> None:
    specs = load_types(types_file)
    c = client()
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", listing([]), list_params("careful_reader_sandbox"))
        stub.add_client_error("create_qualification_type", "RequestError", "You have already created a type with this name")
        stub.add_response("list_qualification_types", listing([]), list_params("screening_test_sandbox"))
        stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": type_id("screening_test")}})
        results = ensure_types(c, specs, sandbox=True)
        stub.assert_no_pending_responses()
    assert [r.action for r in results] == ["failed", "created"]
    assert "RequestError: You have already created" in results[0].errors[0]


# --- the command --------------------------------------------------------------------------------------

def sandbox_requester(db: LocalMephistoDB) -> str:
    from mephisto.abstractions.providers.mturk_sandbox.sandbox_mturk_requester import SandboxMTurkRequester

    SandboxMTurkRequester.new(db, "me")
    return "me"


def test_apply_command_on_the_sandbox(db: LocalMephistoDB, types_file: Path) -> None:
    from mephisto_quals.cli.mturk import qual_types

    name = sandbox_requester(db)
    c = client()
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", listing([]), list_params("careful_reader_sandbox"))
        stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": type_id("careful_reader")}})
        stub.add_response("list_qualification_types", listing([]), list_params("screening_test_sandbox"))
        stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": type_id("screening_test")}})
        result = cli_runner().invoke(
            qual_types, ["apply", str(types_file), "--requester", name, "--db", db.db_path], obj={"mturk_client": c})
        stub.assert_no_pending_responses()
    assert result.exit_code == 0, (result.output, result.stderr)
    assert f"careful_reader_sandbox: created ({type_id('careful_reader')})" in result.stdout
    assert "sandbox requester 'me': 2 created" in result.stdout


def test_apply_command_refuses_a_live_requester_without_live_and_asks_with_it(db: LocalMephistoDB, types_file: Path) -> None:
    from mephisto.abstractions.providers.mturk.mturk_requester import MTurkRequester

    from mephisto_quals.cli.mturk import qual_types

    MTurkRequester.new(db, "boss")
    c = client(sandbox=False)
    runner = cli_runner()
    with Stubber(c) as stub:  # nothing queued: any call would fail
        refused = runner.invoke(qual_types, ["apply", str(types_file), "--requester", "boss", "--db", db.db_path],
                                obj={"mturk_client": c})
        declined = runner.invoke(qual_types, ["apply", str(types_file), "--requester", "boss", "--db", db.db_path, "--live"],
                                 obj={"mturk_client": c}, input="n\n")
        stub.assert_no_pending_responses()
    assert refused.exit_code == 2 and "pass --live" in refused.stderr
    assert declined.exit_code == 1 and "LIVE MTurk requester" in declined.stderr and "Aborted" in declined.stderr


def test_apply_command_reports_conflicts_with_exit_1(db: LocalMephistoDB, tmp_path: Path) -> None:
    from mephisto_quals.cli.mturk import qual_types

    name = sandbox_requester(db)
    path = tmp_path / "q.yaml"
    path.write_text("qualification_types: [{name: q, description: d}]\n")
    c = client()
    with Stubber(c) as stub:
        stub.add_response("list_qualification_types", listing([existing(RetryDelayInSeconds=60)]), list_params("q_sandbox"))
        result = cli_runner().invoke(
            qual_types, ["apply", str(path), "--requester", name, "--db", db.db_path], obj={"mturk_client": c})
        stub.assert_no_pending_responses()
    assert result.exit_code == 1
    assert "q_sandbox: conflict" in result.stdout and "cannot disable retries" in result.stderr


def test_apply_command_refuses_a_bad_file_before_any_call(db: LocalMephistoDB, tmp_path: Path) -> None:
    from mephisto_quals.cli.mturk import qual_types

    name = sandbox_requester(db)
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""
        qualification_types:
          - {name: q, description: d, test: {question_form: missing.xml, duration: 5m}}
    """))
    c = client()
    with Stubber(c) as stub:
        result = cli_runner().invoke(
            qual_types, ["apply", str(path), "--requester", name, "--db", db.db_path], obj={"mturk_client": c})
        stub.assert_no_pending_responses()
    assert result.exit_code == 2 and "qualification_types[0].test.question_form" in result.stderr
