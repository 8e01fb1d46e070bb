"""Bad ``quals`` configs are refused with a message naming the path, the value and what is valid, before anything is written to the DB."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List

import pytest
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto.abstractions.providers.mturk.mturk_requester import MTurkRequester
from mephisto.abstractions.providers.mturk_sandbox.sandbox_mturk_requester import SandboxMTurkRequester
from mephisto.operations.operator import Operator

from conftest import mock_config, table_counts
from mephisto_quals import QualsConfigError
from mephisto_quals.compile.mturk import MASTERS_LIVE_ID, MASTERS_SANDBOX_ID
from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS

Q = "mephisto.blueprint.quals"
BLUEPRINT = QUALS_BLUEPRINTS["mock_quals"]
CUSTOM_ID = "3KRQQ1B9ZXYQGDDGFEEFL5VCZSYVRP"
COMPARATORS_HINT = "use one of > (GreaterThan), >= (GreaterThanOrEqualTo)"


@dataclass
class Bad:
    """One bad config: where the error must point, the bad value, and a phrase saying what is valid."""

    id: str
    quals: Dict[str, Any]
    path: str
    value: Any
    hint: str
    blueprint: Dict[str, Any] = field(default_factory=dict)
    provider: str = "mock"  # mock | mturk | mturk_sandbox
    via: str = "operator"  # operator: a full Operator launch; assert: the blueprint's assert_task_args


def one(qualification: str = "score", **rule: Any) -> Dict[str, Any]:
    return {"requirements": [{"qualification": qualification, **rule}]}


def system(**presets: Any) -> Dict[str, Any]:
    return {"mturk": {"system": presets}}


def raw(*dicts: Dict[str, Any]) -> Dict[str, Any]:
    return {"mturk": {"raw": list(dicts)}}


R0 = f"{Q}.requirements[0]"
LIST_FIELDS = ["require_onboarding_passed", "block_onboarding_failed", "allowlists", "blocklists", "block_qualifications"]
ELEVEN = {  # with block_qualification and the onboarding's failed list: 11 requirements on MTurk
    "allowlists": ["a1", "a2", "a3", "a4", "a5"],
    **system(approval_rate={"comparator": ">=", "value": 90}, approved_hits={"comparator": ">=", "value": 100}, masters=True),
}
MEPHISTO_BLOCKS = {"block_qualification": "blk", "use_onboarding": True, "onboarding_qualification": "onb"}

CASES: List[Bad] = [
    # comparators
    Bad("unknown-comparator", one(comparator="~=", value=1), f"{R0}.comparator", "~=", COMPARATORS_HINT),
    Bad("missing-comparator", one(value=1), f"{R0}.comparator", None, COMPARATORS_HINT),
    # value of the wrong type
    Bad("string-for->=", one(comparator=">=", value="3"), f"{R0}.value", "3", "'>=' needs one integer value"),
    Bad("float-for->=", one(comparator=">=", value=2.5), f"{R0}.value", 2.5, "'>=' needs one integer value"),
    Bad("bool-for-==", one(comparator="==", value=True), f"{R0}.value", True, "'==' needs one integer value"),
    Bad("bool-in-list", one(comparator="in", value=[1, True]), f"{R0}.value", [1, True], "'in' needs a list of integers"),
    # wrong count
    Bad("empty-list-for-in", one(comparator="in", value=[]), f"{R0}.value", [], "'in' needs a non-empty list of integers"),
    Bad("scalar-for-in", one(comparator="not in", value=3), f"{R0}.value", 3, "'not in' needs a non-empty list of integers"),
    Bad("list-for-==", one(comparator="==", value=[1, 2]), f"{R0}.value", [1, 2], "'==' needs one integer value"),
    Bad("16-values-in-on-mturk", one(comparator="in", value=list(range(16))), f"{R0}.value", list(range(16)),
        "MTurk takes at most 15 values", provider="mturk_sandbox", via="assert"),
    # a value where none belongs
    Bad("value-with-exists", one(comparator="exists", value=1), f"{R0}.value", 1, "'exists' takes no value; remove it"),
    Bad("value-with-not-exists", one(comparator="not exists", value=0), f"{R0}.value", 0, "'not exists' takes no value; remove it"),
    # empty / whitespace names in each list field, and in a requirement
    *[Bad(f"{kind}-name-in-{f}", {f: [name]}, f"{Q}.{f}[0]", name, "a qualification name must not be empty or whitespace",
          via="operator" if kind == "empty" else "assert")
      for f in LIST_FIELDS for kind, name in (("empty", ""), ("whitespace", "   "))],
    Bad("empty-requirement-name", one("", comparator="exists"), f"{R0}.qualification", "", "must not be empty or whitespace"),
    Bad("whitespace-requirement-name", one(" \t", comparator="exists"), f"{R0}.qualification", " \t", "must not be empty or whitespace",
        via="assert"),
    Bad("padded-name", {"allowlists": ["ok", " allow "]}, f"{Q}.allowlists[1]", " allow ", "remove the surrounding whitespace: 'allow'"),
    # required and blocked at once
    Bad("allowlist-and-blocklist", {"allowlists": ["x"], "blocklists": ["x"]}, f"{Q}.blocklists[0]", "x",
        f"also required at {Q}.allowlists[0]; a name cannot be both required and blocked"),
    Bad("allowlist-and-block_qualification", {"allowlists": ["x"]}, "mephisto.blueprint.block_qualification", "x",
        f"also required at {Q}.allowlists[0]", blueprint={"block_qualification": "x"}),
    Bad("requirement-and-soft-block", {"block_qualifications": ["s"], **one("s", comparator=">=", value=1)},
        f"{Q}.block_qualifications[0]", "s", f"also required at {R0}", via="assert"),
    Bad("onboarding-passed-and-blocklist", {"require_onboarding_passed": ["o"], "blocklists": ["o"]}, f"{Q}.blocklists[0]", "o",
        f"also required at {Q}.require_onboarding_passed[0]", via="assert"),
    Bad("allowlist-and-onboarding-failed-list", {"allowlists": ["onb-failed"]}, "mephisto.blueprint.onboarding_qualification",
        "onb-failed", f"also required at {Q}.allowlists[0]", blueprint={"use_onboarding": True, "onboarding_qualification": "onb"},
        via="assert"),
    # MTurk presets with impossible values
    Bad("approval_rate-120", system(approval_rate={"comparator": ">=", "value": 120}), f"{Q}.mturk.system.approval_rate.value", 120,
        "a percentage from 0 to 100"),
    Bad("approval_rate-minus-1", system(approval_rate={"comparator": ">=", "value": -1}), f"{Q}.mturk.system.approval_rate.value", -1,
        "a percentage from 0 to 100", via="assert"),
    Bad("approval_rate-float", system(approval_rate={"comparator": ">=", "value": 95.5}), f"{Q}.mturk.system.approval_rate.value", 95.5,
        "needs one integer value", via="assert"),
    Bad("approval_rate-without-spec", system(approval_rate=True), f"{Q}.mturk.system.approval_rate", True,
        "needs {comparator, value}, e.g. {comparator: '>=', value: 98}", via="assert"),
    Bad("approved_hits-negative", system(approved_hits={"comparator": ">", "value": -5}), f"{Q}.mturk.system.approved_hits.value", -5,
        "a count of 0 or more", via="assert"),
    Bad("country-USA", system(locale={"comparator": "in", "value": ["GB", "USA"]}), f"{Q}.mturk.system.locale.value[1]", "USA",
        "ISO 3166-1 alpha-2 country code"),
    Bad("country-lowercase", system(locale={"comparator": "==", "value": "us"}), f"{Q}.mturk.system.locale.value", "us",
        "ISO 3166-1 alpha-2 country code (US, GB, IN)", via="assert"),
    Bad("subdivision-US-XX", system(locale={"comparator": "in", "value": ["US-XX"]}), f"{Q}.mturk.system.locale.value[0]", "US-XX",
        "ISO 3166-2 subdivision (US-NY)"),
    Bad("subdivision-lowercase", system(locale={"comparator": "in", "value": ["US-ny"]}), f"{Q}.mturk.system.locale.value[0]", "US-ny",
        "ISO 3166-2 subdivision (US-NY)", via="assert"),
    Bad("subdivision-lowercase-mapping", system(locale={"comparator": "in", "value": [{"Country": "US", "Subdivision": "ny"}]}),
        f"{Q}.mturk.system.locale.value[0].Subdivision", "ny", "ISO 3166-2 subdivision of US, e.g. NY", via="assert"),
    Bad("locale-==-two-values", system(locale={"comparator": "==", "value": ["US", "GB"]}), f"{Q}.mturk.system.locale.value",
        ["US", "GB"], "takes exactly one locale; use 'in' for several"),
    Bad("locale->=", system(locale={"comparator": ">=", "value": "US"}), f"{Q}.mturk.system.locale.comparator", ">=",
        "use one of == (EqualTo), != (NotEqualTo), in (In), not in (NotIn) here", via="assert"),
    Bad("masters->=", system(masters={"comparator": ">=", "value": 1}), f"{Q}.mturk.system.masters.comparator", ">=",
        "Masters only takes 'exists' (write `masters: true`)"),
    Bad("masters-with-value", system(masters={"comparator": "exists", "value": 1}), f"{Q}.mturk.system.masters.value", 1,
        "Masters takes no value", via="assert"),
    Bad("adult-2", system(adult={"comparator": "==", "value": 2}), f"{Q}.mturk.system.adult.value", 2, "adult content is 1"),
    Bad("adult-true-value", system(adult={"comparator": "==", "value": True}), f"{Q}.mturk.system.adult.value", True,
        "adult content is 1", via="assert"),
    Bad("unknown-preset", system(approvalrate={"comparator": ">=", "value": 90}), f"{Q}.mturk.system.approvalrate", "approvalrate",
        "use one of approval_rate, approved_hits, locale, masters, adult"),
    Bad("actions_guarded", {"mturk": {"actions_guarded": "Discover"}}, f"{Q}.mturk.actions_guarded", "Discover",
        "use one of Accept, PreviewAndAccept, DiscoverPreviewAndAccept", via="assert"),
    # more than 10 MTurk requirements once Mephisto's own are added
    Bad("eleven-on-live", ELEVEN, f"{Q}.mturk", "11 requirements",
        "MTurk takes at most 10 per HIT; these would be sent: a1 exists;", blueprint=MEPHISTO_BLOCKS,
        provider="mturk"),
    Bad("eleven-on-sandbox", {**ELEVEN, "allowlists": ELEVEN["allowlists"] + ["a6"]}, f"{Q}.mturk", "11 requirements",
        "MTurk takes at most 10 per HIT", blueprint=MEPHISTO_BLOCKS, provider="mturk_sandbox", via="assert"),
    # Masters IDs of the other side
    Bad("sandbox-masters-id-on-live", raw({"QualificationTypeId": MASTERS_SANDBOX_ID, "Comparator": "Exists"}),
        f"{Q}.mturk.raw[0].QualificationTypeId", MASTERS_SANDBOX_ID, f"the requester is live, use {MASTERS_LIVE_ID}", provider="mturk"),
    Bad("live-masters-id-on-sandbox", raw({"QualificationTypeId": MASTERS_LIVE_ID, "Comparator": "Exists"}),
        f"{Q}.mturk.raw[0].QualificationTypeId", MASTERS_LIVE_ID, f"the requester is a sandbox one, use {MASTERS_SANDBOX_ID}",
        provider="mturk_sandbox"),
    Bad("live-masters-id-on-sandbox-assert", raw({"QualificationTypeId": MASTERS_LIVE_ID, "Comparator": "Exists"}),
        f"{Q}.mturk.raw[0].QualificationTypeId", MASTERS_LIVE_ID, f"use {MASTERS_SANDBOX_ID} (or the 'masters' preset)",
        provider="mturk_sandbox", via="assert"),
    # unknown keys
    Bad("unknown-key-in-requirement", one(comparator=">=", value=1, values=2), R0,
        {"qualification": "score", "comparator": ">=", "value": 1, "values": 2}, "unknown keys ['values']; use qualification, comparator, value"),
    Bad("unknown-key-in-preset", system(approval_rate={"comparator": ">=", "value": 90, "min": 1}), f"{Q}.mturk.system.approval_rate",
        {"comparator": ">=", "value": 90, "min": 1}, "unknown keys ['min']; use comparator, value, actions_guarded", via="assert"),
    Bad("unknown-key-in-raw", raw({"QualificationTypeId": CUSTOM_ID, "Comparator": "Exists", "Required": True}), f"{Q}.mturk.raw[0]",
        {"QualificationTypeId": CUSTOM_ID, "Comparator": "Exists", "Required": True},
        'Unknown parameter in input: "Required", must be one of: QualificationTypeId, Comparator'),
    Bad("deprecated-IntegerValue-in-raw", raw({"QualificationTypeId": CUSTOM_ID, "Comparator": "EqualTo", "IntegerValue": 1}),
        f"{Q}.mturk.raw[0]", {"QualificationTypeId": CUSTOM_ID, "Comparator": "EqualTo", "IntegerValue": 1},
        "must be one of: QualificationTypeId, Comparator, IntegerValues", via="assert"),
    Bad("raw-RequiredToPreview-and-ActionsGuarded",
        raw({"QualificationTypeId": CUSTOM_ID, "Comparator": "Exists", "RequiredToPreview": True, "ActionsGuarded": "Accept"}),
        f"{Q}.mturk.raw[0].RequiredToPreview", True, "do not combine the deprecated RequiredToPreview with ActionsGuarded", via="assert"),
    Bad("raw-symbol-comparator", raw({"QualificationTypeId": CUSTOM_ID, "Comparator": ">=", "IntegerValues": [1]}),
        f"{Q}.mturk.raw[0].Comparator", ">=", "use one of LessThan, LessThanOrEqualTo, GreaterThan, GreaterThanOrEqualTo", via="assert"),
    # Prolific
    Bad("prolific-unknown-name", {"prolific": [{"name": "AgeEligibility", "min_age": 18}]}, f"{Q}.prolific[0].name", "AgeEligibility",
        "use one of AgeRangeEligibilityRequirement, ApprovalNumbersEligibilityRequirement"),
    Bad("prolific-unknown-key", {"prolific": [{"name": "AgeRangeEligibilityRequirement", "min_agee": 18}]}, f"{Q}.prolific[0]",
        {"name": "AgeRangeEligibilityRequirement", "min_agee": 18}, "unknown keys ['min_agee']; AgeRangeEligibilityRequirement takes min_age, max_age",
        via="assert"),
]


def requester_for(db: LocalMephistoDB, provider: str, mock_name: str) -> str:
    """A requester of the provider type (the Operator checks they match); nothing on MTurk is called."""
    if provider == "mturk":
        return MTurkRequester.new(db, "bad-input").requester_name
    if provider == "mturk_sandbox":
        return SandboxMTurkRequester.new(db, "bad-input").requester_name
    return mock_name


def refused_by_operator(operator: Operator, cfg: Any, caplog: pytest.LogCaptureFixture) -> QualsConfigError:
    """Launch through the real Operator, which logs the error and returns None; return that error."""
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert operator.launch_task_run(cfg, BLUEPRINT.SharedStateClass()) is None
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info and r.getMessage().startswith("Ran into error while launching")]
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]
    assert isinstance(errors[0], QualsConfigError), errors[0]
    return errors[0]


def refused_by_blueprint(cfg: Any) -> QualsConfigError:
    """The check the Operator runs first, before it writes anything."""
    with pytest.raises(QualsConfigError) as raised:
        BLUEPRINT.assert_task_args(cfg, BLUEPRINT.SharedStateClass())
    return raised.value


def test_cases_cover_both_routes_and_every_provider() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    launched = [c for c in CASES if c.via == "operator"]
    assert len(launched) >= 10 and {c.provider for c in launched} == {"mock", "mturk", "mturk_sandbox"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_before_anything_is_created(
    case: Bad, db: LocalMephistoDB, operator: Operator, requester_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = mock_config(requester_for(db, case.provider, requester_name), case.quals, provider_type=case.provider, **case.blueprint)
    before = table_counts(db)
    error = refused_by_operator(operator, cfg, caplog) if case.via == "operator" else refused_by_blueprint(cfg)

    assert table_counts(db) == before, "a refused launch must not write to the DB"
    assert before["tasks"] == before["task_runs"] == before["qualifications"] == 0
    assert operator.get_running_task_runs() == {}
    matching = [p for p in error.problems if p.path == case.path]
    assert matching, f"no problem at {case.path}: {error.problems}"
    assert any(p.value == case.value and type(p.value) is type(case.value) for p in matching), matching
    message = str(error)
    assert f"{case.path}: {case.value!r} is not valid; " in message, message  # the path and the bad value
    assert case.hint in message, message  # what would be valid


def test_every_problem_is_reported_at_once(db: LocalMephistoDB, operator: Operator, requester_name: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    quals = {"allowlists": [""], "blocklists": ["  "], **one(comparator="~", value=1),
             **system(approval_rate={"comparator": ">=", "value": 101}), "prolific": [{"name": "Nope"}]}
    before = table_counts(db)
    error = refused_by_operator(operator, mock_config(requester_name, quals), caplog)
    assert table_counts(db) == before
    assert [p.path for p in error.problems] == [
        f"{Q}.allowlists[0]", f"{Q}.blocklists[0]", f"{R0}.comparator", f"{Q}.mturk.system.approval_rate.value", f"{Q}.prolific[0].name"]
    assert str(error).startswith("invalid qualification config (5 problems):")


def test_control_a_valid_config_does_launch_and_write(db: LocalMephistoDB, operator: Operator, requester_name: str) -> None:
    """The DB check above can fail: the same launch with valid values writes a task, a run and qualifications."""
    before = table_counts(db)
    quals = {"allowlists": ["allow"], "blocklists": ["blocked"], **one(comparator=">=", value=3),
             **system(approval_rate={"comparator": ">=", "value": 100}, locale={"comparator": "in", "value": ["US-NY"]})}
    run_id = operator.launch_task_run(mock_config(requester_name, quals), BLUEPRINT.SharedStateClass())
    assert run_id is not None
    after = table_counts(db)
    assert (after["tasks"], after["task_runs"]) == (before["tasks"] + 1, before["task_runs"] + 1)
    assert after["qualifications"] == before["qualifications"] + 3


@pytest.mark.parametrize("provider", ["mturk", "mturk_sandbox"])
def test_control_valid_mturk_configs_pass_the_blueprint_check(db: LocalMephistoDB, requester_name: str, provider: str) -> None:
    """The assert_task_args route can pass: a valid MTurk config (exactly 10 requirements) is accepted."""
    quals = {**ELEVEN, "allowlists": ELEVEN["allowlists"][: 4 if provider == "mturk" else 5]}
    BLUEPRINT.assert_task_args(mock_config(requester_for(db, provider, requester_name), quals, provider_type=provider,
                                           **MEPHISTO_BLOCKS), BLUEPRINT.SharedStateClass())
