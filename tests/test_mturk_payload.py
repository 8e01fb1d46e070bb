"""The MTurk payload, after Mephisto's own conversion, validates against botocore's real MTurk model (stubbed, offline)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Tuple

import boto3
import pytest
from botocore.stub import Stubber
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto.abstractions.providers.mturk import mturk_utils
from mephisto.abstractions.providers.mturk.mturk_provider import MTurkProvider
from mephisto.abstractions.providers.mturk.mturk_requester import MTurkRequester
from mephisto.abstractions.providers.mturk_sandbox.sandbox_mturk_provider import SandboxMTurkProvider
from mephisto.abstractions.providers.mturk_sandbox.sandbox_mturk_requester import SandboxMTurkRequester
from mephisto.data_model.qualification import QUAL_NOT_EXIST
from mephisto.data_model.task_run import TaskRunArgs
from mephisto.operations.config_handler import get_config_arg
from mephisto.utils.qualifications import make_qualification_dict
from omegaconf import OmegaConf

from conftest import NetworkBlocked, mock_config
from mephisto_quals import QualsConfigError, plan_from_quals
from mephisto_quals.compile.mturk import LOCALE_ID, MASTERS_LIVE_ID, MASTERS_SANDBOX_ID, MAX_REQUIREMENTS, SYSTEM_QUALS
from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS
from mephisto_quals.integration.mixin import QualsRequired

SANDBOX_URL = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
GUARD = "DiscoverPreviewAndAccept"
DEFAULT_LOCALE = {
    "QualificationTypeId": LOCALE_ID,
    "Comparator": "In",
    "LocaleValues": [{"Country": c} for c in ("US", "CA", "GB", "AU", "NZ")],
    "ActionsGuarded": GUARD,
}
PROVIDERS = ["mturk", "mturk_sandbox"]


def test_network_guard_stops_an_unstubbed_mturk_call(no_network: List[Any]) -> None:
    from botocore.config import Config
    from botocore.exceptions import HTTPClientError

    client = boto3.client(
        "mturk", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(HTTPClientError) as raised:
        client.get_account_balance()
    assert isinstance(raised.value.__context__, NetworkBlocked)
    assert no_network == [("mturk-requester.us-east-1.amazonaws.com", 443)]
    no_network.clear()  # the attempt was the point of this test


# --- helpers ----------------------------------------------------------------------------------

def mturk_client(provider_type: str) -> Any:
    """A real boto3 MTurk client with dummy keys, on the endpoint Mephisto uses for the provider."""
    kwargs: Dict[str, Any] = {"endpoint_url": SANDBOX_URL} if provider_type == "mturk_sandbox" else {}
    client = boto3.client("mturk", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x", **kwargs)
    assert mturk_utils.client_is_sandbox(client) == (provider_type == "mturk_sandbox")
    return client


def task_args() -> Any:
    return OmegaConf.structured(
        TaskRunArgs(task_name="t", task_title="title", task_description="description", task_reward=0.3, task_tags="test")
    )


def hit_type_params(requirements: List[Dict[str, Any]]) -> Dict[str, Any]:
    """What Mephisto's create_hit_type sends for task_args(), with these requirements."""
    return {
        "AutoApprovalDelayInSeconds": 7 * 24 * 3600,
        "AssignmentDurationInSeconds": 30 * 60,
        "Reward": "0.3",
        "Title": "title",
        "Keywords": "test",
        "Description": "description",
        "QualificationRequirements": requirements,
    }


def send_hit_type(provider_type: str, payload: List[Dict[str, Any]], expected: List[Dict[str, Any]]) -> None:
    """Run Mephisto's real create_hit_type on ``payload``; the stub checks params and the model."""
    client = mturk_client(provider_type)
    with Stubber(client) as stubber:
        stubber.add_response("create_hit_type", {"HITTypeId": "X"}, hit_type_params(expected))
        assert mturk_utils.create_hit_type(client, task_args(), payload) == "X"
        stubber.assert_no_pending_responses()


@pytest.fixture(autouse=True)
def no_allowed_locales_configured() -> None:
    """Mephisto reads ~/.mephisto/config.yml for its default Locale; the test HOME sets none."""
    assert get_config_arg("mturk", "allowed_locales") is None


def req(type_id: str, comparator: str, guard: str = GUARD, **values: Any) -> Dict[str, Any]:
    return {"QualificationTypeId": type_id, "Comparator": comparator, **values, "ActionsGuarded": guard}


# --- every system preset ----------------------------------------------------------------------

# (case id, preset name, spec, expected live requirement, expected sandbox requirement or None = same)
PRESET_CASES: List[Tuple[str, str, Any, Dict[str, Any], Optional[Dict[str, Any]]]] = [
    ("approval_rate>=", "approval_rate", {"comparator": ">=", "value": 98},
     req("000000000000000000L0", "GreaterThanOrEqualTo", IntegerValues=[98]), None),
    ("approval_rate-guard", "approval_rate", {"comparator": "gt", "value": 0, "actions_guarded": "Accept"},
     req("000000000000000000L0", "GreaterThan", "Accept", IntegerValues=[0]), None),
    ("approved_hits>", "approved_hits", {"comparator": ">", "value": 1000},
     req("00000000000000000040", "GreaterThan", IntegerValues=[1000]), None),
    ("approved_hits-not-in", "approved_hits", {"comparator": "not in", "value": [0, 1]},
     req("00000000000000000040", "NotIn", IntegerValues=[0, 1]), None),
    ("locale-in-subdivisions", "locale", {"comparator": "in", "value": ["US-NY", "US-CA", "GB", "IN"]},
     req(LOCALE_ID, "In", LocaleValues=[{"Country": "US", "Subdivision": "NY"}, {"Country": "US", "Subdivision": "CA"},
                                        {"Country": "GB"}, {"Country": "IN"}]), None),
    ("locale==", "locale", {"comparator": "==", "value": "DE"}, req(LOCALE_ID, "EqualTo", LocaleValues=[{"Country": "DE"}]), None),
    ("locale-not-in", "locale", {"comparator": "not in", "value": ["FR"]}, req(LOCALE_ID, "NotIn", LocaleValues=[{"Country": "FR"}]), None),
    ("locale-mapping", "locale", {"comparator": "!=", "value": {"Country": "US", "Subdivision": "TX"}},
     req(LOCALE_ID, "NotEqualTo", LocaleValues=[{"Country": "US", "Subdivision": "TX"}]), None),
    ("masters", "masters", True, req(MASTERS_LIVE_ID, "Exists"), req(MASTERS_SANDBOX_ID, "Exists")),
    ("masters-exists", "masters", {"comparator": "exists", "actions_guarded": "PreviewAndAccept"},
     req(MASTERS_LIVE_ID, "Exists", "PreviewAndAccept"), req(MASTERS_SANDBOX_ID, "Exists", "PreviewAndAccept")),
    ("adult", "adult", True, req("00000000000000000060", "EqualTo", IntegerValues=[1]), None),
    ("adult-0", "adult", {"comparator": "==", "value": 0}, req("00000000000000000060", "EqualTo", IntegerValues=[0]), None),
    ("adult-exists", "adult", {"comparator": "exists"}, req("00000000000000000060", "Exists"), None),
    ("abandonment_rate", "abandonment_rate", {"comparator": "<", "value": 5}, req("00000000000000000070", "LessThan", IntegerValues=[5]), None),
    ("return_rate", "return_rate", {"comparator": "<=", "value": 10}, req("000000000000000000E0", "LessThanOrEqualTo", IntegerValues=[10]), None),
    ("rejection_rate", "rejection_rate", {"comparator": "<", "value": 2}, req("000000000000000000S0", "LessThan", IntegerValues=[2]), None),
    ("submission_rate", "submission_rate", {"comparator": ">=", "value": 90},
     req("00000000000000000000", "GreaterThanOrEqualTo", IntegerValues=[90]), None),
]


def test_every_system_preset_has_a_payload_case() -> None:
    assert {case[1] for case in PRESET_CASES} == set(SYSTEM_QUALS)


@pytest.mark.parametrize("provider_type", PROVIDERS)
@pytest.mark.parametrize("case_id,name,spec,live,sandbox", PRESET_CASES, ids=[c[0] for c in PRESET_CASES])
def test_system_preset_reaches_create_hit_type_valid(
    provider_type: str, case_id: str, name: str, spec: Any, live: Dict[str, Any], sandbox: Optional[Dict[str, Any]]
) -> None:
    plan = plan_from_quals({"mturk": {"system": {name: spec}}}, provider_type=provider_type)
    ours = live if provider_type == "mturk" or sandbox is None else sandbox
    assert plan.mturk == [ours]
    assert (len(plan.warnings) == 1) == SYSTEM_QUALS[name].legacy
    # Live: Mephisto adds its default Locale unless ours is a Locale requirement; sandbox: never.
    appended = [DEFAULT_LOCALE] if provider_type == "mturk" and name != "locale" else []
    send_hit_type(provider_type, plan.mturk, [ours] + appended)


@pytest.mark.parametrize("provider_type", PROVIDERS)
def test_all_presets_at_once_fit_and_validate(provider_type: str) -> None:
    system = {"approval_rate": {"comparator": ">=", "value": 95}, "approved_hits": {"comparator": ">=", "value": 500},
              "locale": {"comparator": "in", "value": ["US-NY", "CA"]}, "masters": True, "adult": True,
              "abandonment_rate": {"comparator": "<", "value": 10}, "return_rate": {"comparator": "<", "value": 10},
              "rejection_rate": {"comparator": "<", "value": 3}, "submission_rate": {"comparator": ">", "value": 80}}
    plan = plan_from_quals({"mturk": {"system": system}}, provider_type=provider_type)
    masters = MASTERS_SANDBOX_ID if provider_type == "mturk_sandbox" else MASTERS_LIVE_ID
    assert [r["QualificationTypeId"] for r in plan.mturk] == [
        "000000000000000000L0", "00000000000000000040", LOCALE_ID, masters, "00000000000000000060",
        "00000000000000000070", "000000000000000000E0", "000000000000000000S0", "00000000000000000000"]
    assert len(plan.warnings) == 4  # the legacy rates
    send_hit_type(provider_type, plan.mturk, plan.mturk)  # our Locale: no default one appended


@pytest.mark.parametrize("provider_type,masters", [("mturk", MASTERS_LIVE_ID), ("mturk_sandbox", MASTERS_SANDBOX_ID),
                                                   ("mock", MASTERS_LIVE_ID), (None, MASTERS_LIVE_ID)])
def test_masters_id_follows_the_provider_type(provider_type: Optional[str], masters: str) -> None:
    plan = plan_from_quals({"mturk": {"system": {"masters": True}}}, provider_type=provider_type)
    assert plan.mturk == [req(masters, "Exists")]


def test_disabled_presets_send_nothing_but_mephistos_default_locale() -> None:
    plan = plan_from_quals({"mturk": {"system": {"masters": None, "adult": False}}}, provider_type="mturk")
    assert plan.mturk == []
    send_hit_type("mturk", plan.mturk, [DEFAULT_LOCALE])
    send_hit_type("mturk_sandbox", plan.mturk, [])


# --- raw QualificationRequirement dicts -------------------------------------------------------

CUSTOM_ID = "3KRQQ1B9ZXYQGDDGFEEFL5VCZSYVRP"

RAW_CASES: List[Tuple[str, Dict[str, Any], Dict[str, Any]]] = [
    ("integer", {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [95]},
     req("000000000000000000L0", "GreaterThanOrEqualTo", IntegerValues=[95])),
    ("custom-exists-guarded", {"QualificationTypeId": CUSTOM_ID, "Comparator": "Exists", "ActionsGuarded": "Accept"},
     req(CUSTOM_ID, "Exists", "Accept")),
    ("custom-in", {"QualificationTypeId": CUSTOM_ID, "Comparator": "In", "IntegerValues": [1, 2, 3]},
     req(CUSTOM_ID, "In", IntegerValues=[1, 2, 3])),
    ("custom-does-not-exist", {"QualificationTypeId": CUSTOM_ID, "Comparator": "DoesNotExist"}, req(CUSTOM_ID, "DoesNotExist")),
    ("locale", {"QualificationTypeId": LOCALE_ID, "Comparator": "In", "LocaleValues": [{"Country": "US", "Subdivision": "WA"}]},
     req(LOCALE_ID, "In", LocaleValues=[{"Country": "US", "Subdivision": "WA"}])),
    # Mephisto's conversion drops the deprecated RequiredToPreview, so its meaning must travel as ActionsGuarded.
    ("required-to-preview-true", {"QualificationTypeId": CUSTOM_ID, "Comparator": "Exists", "RequiredToPreview": True},
     req(CUSTOM_ID, "Exists", "PreviewAndAccept")),
    ("required-to-preview-false", {"QualificationTypeId": CUSTOM_ID, "Comparator": "Exists", "RequiredToPreview": False},
     req(CUSTOM_ID, "Exists", "Accept")),
]


@pytest.mark.parametrize("provider_type", PROVIDERS)
@pytest.mark.parametrize("case_id,raw,expected", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_dict_reaches_create_hit_type_valid(provider_type: str, case_id: str, raw: Dict[str, Any], expected: Dict[str, Any]) -> None:
    plan = plan_from_quals({"mturk": {"raw": [raw]}}, provider_type=provider_type)
    appended = [DEFAULT_LOCALE] if provider_type == "mturk" and raw["QualificationTypeId"] != LOCALE_ID else []
    send_hit_type(provider_type, plan.mturk, [expected] + appended)


@pytest.mark.parametrize("provider_type,masters", [("mturk", MASTERS_LIVE_ID), ("mturk_sandbox", MASTERS_SANDBOX_ID)])
def test_raw_masters_id_of_the_right_side_is_sent(provider_type: str, masters: str) -> None:
    plan = plan_from_quals({"mturk": {"raw": [{"QualificationTypeId": masters, "Comparator": "Exists"}]},
                            "requirements": []}, provider_type=provider_type)
    send_hit_type(provider_type, plan.mturk, [req(masters, "Exists")] + ([DEFAULT_LOCALE] if provider_type == "mturk" else []))


def test_mturk_level_actions_guarded_applies_to_presets_and_raw() -> None:
    plan = plan_from_quals({"mturk": {"actions_guarded": "PreviewAndAccept",
                                      "system": {"approval_rate": {"comparator": ">=", "value": 90}},
                                      "raw": [{"QualificationTypeId": CUSTOM_ID, "Comparator": "Exists"}]}},
                           provider_type="mturk_sandbox")
    send_hit_type("mturk_sandbox", plan.mturk, [req("000000000000000000L0", "GreaterThanOrEqualTo", "PreviewAndAccept", IntegerValues=[90]),
                                                req(CUSTOM_ID, "Exists", "PreviewAndAccept")])


def test_a_malformed_payload_is_refused_by_the_stub() -> None:
    """The stub really validates against the model: the check above can fail."""
    from botocore.exceptions import ParamValidationError

    bad = [{"QualificationTypeId": CUSTOM_ID, "Comparator": "Exists", "IntegerValues": ["one"]}]
    client = mturk_client("mturk_sandbox")
    with Stubber(client) as stubber:
        stubber.add_response("create_hit_type", {"HITTypeId": "X"}, hit_type_params([{**bad[0], "ActionsGuarded": GUARD}]))
        with pytest.raises(ParamValidationError):
            mturk_utils.create_hit_type(client, task_args(), bad)


# --- local requirements through Mephisto's MTurk provider -------------------------------------

def qid(name: str) -> str:
    """The MTurk QualificationTypeId the stubbed MTurk gives the qualification created for ``name``."""
    return ("3" + "".join(c for c in name.upper() if c.isalnum())).ljust(30, "0")


def provider_run(
    db: LocalMephistoDB,
    monkeypatch: pytest.MonkeyPatch,
    provider_type: str,
    quals: Dict[str, Any],
    created: List[str],
    expected: Optional[List[Dict[str, Any]]],
    **blueprint: Any,
) -> Tuple[Any, List[Dict[str, Any]]]:
    """Validate, apply the plan, append what the Operator appends, then run the MTurk provider's setup.

    ``created`` are the Mephisto qualification names the provider must create on MTurk, in
    order; ``expected`` the exact QualificationRequirements (None: only capture them).
    Returns the shared state and the requirements sent.
    """
    sandbox = provider_type == "mturk_sandbox"
    requester = (SandboxMTurkRequester if sandbox else MTurkRequester).new(db, "quals-requester")
    cfg = mock_config(requester.requester_name, quals, provider_type=provider_type, **blueprint)
    blueprint_cls = QUALS_BLUEPRINTS["mock_quals"]
    state = blueprint_cls.SharedStateClass()
    blueprint_cls.assert_task_args(cfg, state)  # what the Operator calls first
    QualsRequired.init_mixin_config(SimpleNamespace(), SimpleNamespace(db=db), cfg, state)  # type: ignore[arg-type]
    # Operator._create_live_task_run then appends these itself:
    if cfg.blueprint.get("block_qualification", None) is not None:
        state.qualifications.append(make_qualification_dict(cfg.blueprint.block_qualification, QUAL_NOT_EXIST, None))
    if cfg.blueprint.get("onboarding_qualification", None) is not None:
        state.qualifications.append(make_qualification_dict(f"{cfg.blueprint.onboarding_qualification}-failed", QUAL_NOT_EXIST, None))

    provider = (SandboxMTurkProvider if sandbox else MTurkProvider)(db)
    client = mturk_client(provider_type)
    monkeypatch.setattr(provider.datastore, "get_client_for_requester", lambda name: client)
    monkeypatch.setattr(provider.datastore, "get_sandbox_client_for_requester", lambda name: client)
    provider.datastore.session_storage[requester._requester_name] = boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    sent: List[Dict[str, Any]] = []

    def capture(params: Dict[str, Any], **_: Any) -> None:
        sent.extend(params.get("QualificationRequirements", []))

    client.meta.events.register("provide-client-params.mturk.CreateHITType", capture)
    task_run = SimpleNamespace(db_id="run-1", get_requester=lambda: requester,
                               get_blueprint=lambda: SimpleNamespace(get_frontend_args=lambda: {}))
    with Stubber(client) as stubber:
        for name in created:
            mturk_name = f"{name}_sandbox" if sandbox else name
            for owned in (True, False):
                stubber.add_response("list_qualification_types", {"NumResults": 0, "QualificationTypes": []},
                                     {"Query": mturk_name, "MustBeRequestable": True, "MustBeOwnedByCaller": owned})
            stubber.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": qid(name)}},
                                 {"Name": mturk_name, "Description": f"Equivalent qualification for {mturk_name}.",
                                  "QualificationTypeStatus": "Active"})
        stubber.add_response("create_hit_type", {"HITTypeId": "X"}, None if expected is None else hit_type_params(expected))
        provider.setup_resources_for_task_run(task_run, cfg, state, "https://example.invalid")  # type: ignore[arg-type]
        stubber.assert_no_pending_responses()
    return state, sent


@pytest.mark.parametrize("provider_type", PROVIDERS)
def test_local_requirements_through_the_mturk_provider(db: LocalMephistoDB, monkeypatch: pytest.MonkeyPatch, provider_type: str) -> None:
    quals = {"blocklists": ["blocked"], "allowlists": ["allow"], "require_onboarding_passed": ["onb"],
             "requirements": [{"qualification": "score", "comparator": ">=", "value": 3}],
             "mturk": {"system": {"approval_rate": {"comparator": ">=", "value": 97}}}}
    expected = [
        req(qid("blocked"), "DoesNotExist"),
        req(qid("allow"), "Exists"),
        req(qid("onb"), "EqualTo", IntegerValues=[1]),
        req(qid("score"), "GreaterThanOrEqualTo", IntegerValues=[3]),
        req(qid("blk"), "DoesNotExist"),  # Mephisto's own block_qualification
        req("000000000000000000L0", "GreaterThanOrEqualTo", IntegerValues=[97]),
    ] + ([DEFAULT_LOCALE] if provider_type == "mturk" else [])
    state, sent = provider_run(db, monkeypatch, provider_type, quals, ["blocked", "allow", "onb", "score", "blk"], expected,
                               block_qualification="blk")
    assert sent == expected
    # The "must hold it to be compared" guards stay local: in the shared state for other
    # providers, never sent to MTurk (where a worker without it fails the comparison anyway).
    local_only = [q for q in state.qualifications if q["applicable_providers"] is not None]
    assert sorted((q["qualification_name"], q["comparator"]) for q in local_only) == [("onb", "Exists"), ("score", "Exists")]
    assert all(not p.startswith("mturk") for q in local_only for p in q["applicable_providers"])
    assert not [r for r in sent if r["QualificationTypeId"] in (qid("onb"), qid("score")) and r["Comparator"] == "Exists"]


def test_onboarding_failed_list_through_the_live_provider(db: LocalMephistoDB, monkeypatch: pytest.MonkeyPatch) -> None:
    quals = {"mturk": {"system": {"locale": {"comparator": "in", "value": ["US"]}}}}
    expected = [req(qid("onb-failed"), "DoesNotExist"), req(LOCALE_ID, "In", LocaleValues=[{"Country": "US"}])]
    _, sent = provider_run(db, monkeypatch, "mturk", quals, ["onb-failed"], expected,
                           use_onboarding=True, onboarding_qualification="onb")
    assert sent == expected  # our Locale replaces Mephisto's default one


# --- the 10-requirement limit -----------------------------------------------------------------

NINE_WITH_MEPHISTOS = {  # 2 appended by Mephisto + 4 allowlists + 3 system = 9
    "allowlists": ["a1", "a2", "a3", "a4"],
    "mturk": {"system": {"approval_rate": {"comparator": ">=", "value": 90}, "approved_hits": {"comparator": ">=", "value": 100},
                         "masters": True}},
}
MEPHISTO_ARGS = {"block_qualification": "blk", "onboarding_qualification": "onb"}


def with_extra_allowlist(quals: Dict[str, Any], name: str) -> Dict[str, Any]:
    return {**quals, "allowlists": quals["allowlists"] + [name]}


@pytest.mark.parametrize("provider_type,quals", [
    ("mturk", NINE_WITH_MEPHISTOS),  # 9 + Mephisto's default Locale = 10
    ("mturk_sandbox", with_extra_allowlist(NINE_WITH_MEPHISTOS, "a5")),  # 10, no Locale on sandbox
], ids=["live-10", "sandbox-10"])
def test_exactly_ten_is_accepted(provider_type: str, quals: Dict[str, Any]) -> None:
    plan = plan_from_quals(quals, provider_type=provider_type, blueprint_args=MEPHISTO_ARGS)
    assert len(plan.mturk) == 3


@pytest.mark.parametrize("provider_type,quals", [
    ("mturk", with_extra_allowlist(NINE_WITH_MEPHISTOS, "a5")),  # 10 + default Locale
    ("mturk_sandbox", with_extra_allowlist(with_extra_allowlist(NINE_WITH_MEPHISTOS, "a5"), "a6")),  # 11, no Locale
    ("mturk", {**NINE_WITH_MEPHISTOS, "blocklists": ["b1"]}),  # a blocklist counts too
    ("mturk", {**NINE_WITH_MEPHISTOS, "require_onboarding_passed": ["p"]}),  # its EqualTo 1 counts, not its local Exists
    ("mturk", {**NINE_WITH_MEPHISTOS, "mturk": {"system": NINE_WITH_MEPHISTOS["mturk"]["system"],
                                                 "raw": [{"QualificationTypeId": CUSTOM_ID, "Comparator": "Exists"}]}}),
], ids=["live-11", "sandbox-11", "blocklist", "onboarding-passed", "raw"])
def test_more_than_ten_mturk_requirements_are_refused(provider_type: str, quals: Dict[str, Any]) -> None:
    with pytest.raises(QualsConfigError) as raised:
        plan_from_quals(quals, provider_type=provider_type, blueprint_args=MEPHISTO_ARGS)
    problems = [p for p in raised.value.problems if p.path == "mephisto.blueprint.quals.mturk"]
    assert len(problems) == 1 and len(raised.value.problems) == 1, raised.value.problems
    message = str(raised.value)
    assert "mephisto.blueprint.quals.mturk: '11 requirements'" in message and f"at most {MAX_REQUIREMENTS}" in message
    assert "blk not exists" in message and "onb-failed not exists" in message  # Mephisto's own, named
    assert ("Locale" in message) == (provider_type == "mturk")


def test_the_limit_is_only_checked_for_mturk_providers() -> None:
    plan = plan_from_quals(with_extra_allowlist(NINE_WITH_MEPHISTOS, "a5"), provider_type="mock", blueprint_args=MEPHISTO_ARGS)
    assert len(plan.mturk) == 3


def test_a_locale_preset_replaces_mephistos_default_in_the_count() -> None:
    quals = {**NINE_WITH_MEPHISTOS, "mturk": {"system": {**NINE_WITH_MEPHISTOS["mturk"]["system"],
                                                         "locale": {"comparator": "in", "value": ["US"]}}}}
    plan = plan_from_quals(quals, provider_type="mturk", blueprint_args=MEPHISTO_ARGS)  # 10, no default Locale
    assert len(plan.mturk) == 4
    with pytest.raises(QualsConfigError, match=r"mephisto\.blueprint\.quals\.mturk: '11 requirements'"):
        plan_from_quals(with_extra_allowlist(quals, "a5"), provider_type="mturk", blueprint_args=MEPHISTO_ARGS)


def test_the_count_is_what_mephisto_really_sends(db: LocalMephistoDB, monkeypatch: pytest.MonkeyPatch) -> None:
    """The largest accepted live payload, through the real provider, is exactly MTurk's limit."""
    names = ["a1", "a2", "a3", "a4", "blk", "onb-failed"]
    _, sent = provider_run(db, monkeypatch, "mturk", NINE_WITH_MEPHISTOS, names, None, **MEPHISTO_ARGS)
    assert len(sent) == MAX_REQUIREMENTS
    assert sent[-1] == DEFAULT_LOCALE


@pytest.mark.parametrize("quals,blueprint,twice", [
    ({"blocklists": ["blk"], "allowlists": ["allow"]}, {"block_qualification": "blk"}, "blk"),
    ({"block_onboarding_failed": ["onb"], "allowlists": ["allow"]},
     {"use_onboarding": True, "onboarding_qualification": "onb"}, "onb-failed"),
], ids=["blocklist=block_qualification", "block_onboarding_failed=onboarding_qualification"])
def test_a_name_mephisto_also_blocks_is_sent_once(
    db: LocalMephistoDB, monkeypatch: pytest.MonkeyPatch, quals: Dict[str, Any], blueprint: Dict[str, Any], twice: str
) -> None:
    """A block Mephisto appends itself is not sent to MTurk a second time (which the count would miss)."""
    plan = plan_from_quals(quals, provider_type="mturk", blueprint_args=blueprint)
    assert (twice, "DoesNotExist") in [(r.qualification, r.comparator) for r in plan.local]  # still gated locally
    expected = [req(qid("allow"), "Exists"), req(qid(twice), "DoesNotExist"), DEFAULT_LOCALE]
    state, sent = provider_run(db, monkeypatch, "mturk", quals, ["allow", twice], expected, **blueprint)
    assert sent == expected
    assert [q["qualification_name"] for q in state.qualifications].count(twice) == 1
