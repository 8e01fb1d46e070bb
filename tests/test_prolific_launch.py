"""Prolific at launch: the ``filters`` form of ``quals.prolific`` and a study gated at the source.

* Validation (both Mephisto lines): bad filters are refused with the config path, the value and
  what is valid; the deprecated eligibility-requirement form is converted with a warning.
* Presets (both lines): ``prolific_experienced`` / ``prolific_fluent_english`` compose through
  Hydra in a real task script (subprocess) and validate through Mephisto's own path.
* Launch (Mephisto 1.5.2; skipped on 1.1.1, which has no Prolific provider): a ``mock_quals`` run
  on Mephisto's real ``prolific`` provider (mock architect, a Prolific requester registered as
  ``mephisto register prolific`` does, its key in ``~/.prolific/credentials`` of a temp HOME)
  against the loopback stand-in. The study's filters hold the groups of the run's lists and the
  requirement filters; the groups hold exactly the local holders; no "PG <timestamp>" group is
  made for our run; an allowlist nobody on Prolific holds refuses the launch before any study.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple

import pytest
import yaml
from omegaconf import OmegaConf

from mephisto_quals.admin.grants import grant
from mephisto_quals.compile.plan import plan_from_quals
from mephisto_quals.errors import QualsConfigError
from mephisto_quals.providers.prolific.groups import group_name
from prolific_fixtures import mephisto_on_prolific, prolific, prolific_client, prolific_env  # noqa: F401  (pytest fixtures)
from prolific_standin import StandIn
from test_hydra import quals_of, result_of, run, runtime_args, sandbox, script  # noqa: F401  (helpers, fixtures)

Q = "mephisto.blueprint.quals.prolific"
HAS_PROLIFIC = importlib.util.find_spec("mephisto.abstractions.providers.prolific") is not None
NO_PROVIDER = "Mephisto 1.1.1 has no Prolific provider (it exists from 1.2 on: run with MEPHISTO=1.5.2)"
P = [f"{i:024x}" for i in range(0xA1, 0xAA)]  # participant ids P[0]..P[8]


# --- validation ----------------------------------------------------------------------------------


class Bad(NamedTuple):
    case: str
    prolific: Any
    path: str
    says: str


BAD = [
    Bad("rate-above-100", [{"filter": "approval_rate", "min": 101}], f"{Q}[0].min", "approval_rate takes 0–100"),
    Bad("rate-negative", [{"filter": "approval_rate", "max": -1}], f"{Q}[0].max", "approval_rate takes 0–100"),
    Bad("numbers-negative", [{"filter": "approval_numbers", "min": -5}], f"{Q}[0].min", "approval_numbers takes >= 0"),
    Bad("age-under-18", [{"filter": "age", "min": 16, "max": 65}], f"{Q}[0].min", "age takes 18–100"),
    Bad("age-over-100", [{"filter": "age", "max": 120}], f"{Q}[0].max", "age takes 18–100"),
    Bad("min-above-max", [{"filter": "age", "min": 65, "max": 18}], f"{Q}[0].min", "min must be <= max (18)"),
    Bad("range-not-number", [{"filter": "approval_rate", "min": "95"}], f"{Q}[0].min", "give a number"),
    Bad("range-bool", [{"filter": "approval_numbers", "min": True}], f"{Q}[0].min", "give a number"),
    Bad("range-no-bounds", [{"filter": "age"}], f"{Q}[0]", "a range filter needs min and/or max"),
    Bad("range-with-values", [{"filter": "age", "values": ["18"]}], f"{Q}[0]", "age is a range filter"),
    Bad("select-with-min", [{"filter": "fluent-languages", "min": 1}], f"{Q}[0]", "select filter: give values"),
    Bad("values-empty", [{"filter": "current-country-of-residence", "values": []}], f"{Q}[0].values",
        "give a non-empty list of strings"),
    Bad("values-not-list", [{"filter": "fluent-languages", "values": "English"}], f"{Q}[0].values",
        "give a non-empty list of strings"),
    Bad("values-not-strings", [{"filter": "fluent-languages", "values": [1, "English"]}], f"{Q}[0].values",
        "values are non-empty strings"),
    Bad("unknown-filter", [{"filter": "aproval_rate", "min": 95}], f"{Q}[0].filter",
        "use one of approval_rate, approval_numbers, age"),
    Bad("unknown-key", [{"filter": "age", "min": 18, "maximum": 30}], f"{Q}[0]", "unknown keys ['maximum']"),
    Bad("filter-and-filter-id", [{"filter": "age", "filter_id": "age", "min": 18}], f"{Q}[0]", "not both"),
    Bad("bad-filter-id", [{"filter_id": "hand edness", "values": ["1"]}], f"{Q}[0].filter_id", "Prolific filter id"),
    Bad("custom-allowlist-bad-id", [{"filter": "custom_allowlist", "values": ["alice"]}], f"{Q}[0].values",
        "24 lowercase hex"),
    Bad("not-a-mapping", ["approval_rate>=95"], f"{Q}[0]", "give a mapping"),
    Bad("not-a-list", {"filter": "age", "min": 18}, Q, "give a list of filters"),
    Bad("second-item", [{"filter": "age", "min": 18}, {"filter": "approval_rate", "min": 200}], f"{Q}[1].min",
        "0–100"),
    Bad("legacy-unknown-name", [{"name": "AgeEligibility", "min_age": 18}], f"{Q}[0].name",
        "use one of AgeRangeEligibilityRequirement, ApprovalNumbersEligibilityRequirement"),
    Bad("legacy-bad-range", [{"name": "AgeRangeEligibilityRequirement", "min_age": 10}], f"{Q}[0].min", "18–100"),
    Bad("legacy-joined-before", [{"name": "JoinedBeforeEligibilityRequirement", "joined_before": "2020-01-01"}],
        f"{Q}[0].name", "write {filter_id: ID"),
]


@pytest.mark.parametrize("bad", BAD, ids=[b.case for b in BAD])
def test_bad_filter_configs_are_refused_with_the_config_path(bad: Bad) -> None:
    with pytest.raises(QualsConfigError) as e:
        plan_from_quals({"prolific": bad.prolific})
    problems = [p for p in e.value.problems if p.path == bad.path]
    assert problems, f"no problem at {bad.path}: {e.value.problems}"
    assert bad.says in problems[0].expected, problems[0]
    assert bad.path in str(e.value)


def test_good_filters_become_prolific_payloads_in_order() -> None:
    plan = plan_from_quals({"prolific": [
        {"filter": "approval_rate", "min": 95},
        {"filter": "approval_numbers", "min": 100, "max": 100000},
        {"filter": "age", "min": 18, "max": 65},
        {"filter": "current-country-of-residence", "values": ["United Kingdom", "Ireland"]},
        {"filter_id": "handedness", "values": ["1"]},
        {"filter": "custom_blocklist", "values": [P[0], P[0], P[1]]},
    ]})
    assert plan.prolific == [
        {"filter_id": "approval_rate", "selected_range": {"lower": 95}},
        {"filter_id": "approval_numbers", "selected_range": {"lower": 100, "upper": 100000}},
        {"filter_id": "age", "selected_range": {"lower": 18, "upper": 65}},
        {"filter_id": "current-country-of-residence", "selected_values": ["United Kingdom", "Ireland"]},
        {"filter_id": "handedness", "selected_values": ["1"]},
        {"filter_id": "custom_blocklist", "selected_values": [P[0], P[1]]},
    ]
    assert plan.warnings == []


def test_the_deprecated_form_is_converted_with_a_warning_naming_the_filter_to_write() -> None:
    plan = plan_from_quals({"prolific": [
        {"name": "ApprovalRateEligibilityRequirement", "minimum_approval_rate": 95},
        {"name": "CustomWhitelistEligibilityRequirement", "white_list": [P[2]]},
    ]})
    assert plan.prolific == [{"filter_id": "approval_rate", "selected_range": {"lower": 95}},
                             {"filter_id": "custom_allowlist", "selected_values": [P[2]]}]
    assert len(plan.warnings) == 2
    assert f"{Q}[0]: ApprovalRateEligibilityRequirement is deprecated" in plan.warnings[0]
    assert "{filter: approval_rate, min: 95}: write that instead" in plan.warnings[0]
    assert "{filter: custom_allowlist, values: [" in plan.warnings[1]


# --- presets through Hydra -------------------------------------------------------------------------


@pytest.mark.subprocess
def test_prolific_presets_compose_through_hydra(sandbox: Dict[str, Any], script: Path) -> None:  # noqa: F811
    quals = quals_of(run(sandbox, str(script), "+quals=[prolific_experienced,prolific_fluent_english]", "--cfg", "job"))
    # Lists are replaced, not appended: the later preset's prolific list wins (as for every list field).
    assert quals["prolific"] == [{"filter": "fluent-languages", "values": ["English"]}]
    quals = quals_of(run(sandbox, str(script), "+quals=prolific_experienced", "--cfg", "job"))
    assert quals["prolific"] == [{"filter": "approval_rate", "min": 95}, {"filter": "approval_numbers", "min": 100}]
    for preset in ("prolific_experienced", "prolific_fluent_english"):
        text = yaml.safe_load((Path(__file__).parents[1] / "conf" / "quals" / f"{preset}.yaml").read_text())
        plan_from_quals(text)  # each preset validates as it stands


@pytest.mark.subprocess
def test_a_preset_validates_in_a_task_script_and_a_bad_override_is_refused(
    sandbox: Dict[str, Any], script: Path,  # noqa: F811
) -> None:
    result = result_of(run(sandbox, str(script), "+quals=prolific_experienced", *runtime_args(sandbox)))
    assert result["blueprint"] == "MockBlueprintWithQuals"
    bad = run(sandbox, str(script), "+quals=prolific_experienced", f"{Q}=[{{filter:approval_rate,min:101}}]",
              *runtime_args(sandbox))
    assert bad.returncode != 0
    assert f"{Q}[0].min: 101 is not valid; approval_rate takes 0–100" in bad.stdout + bad.stderr


# --- launch on Mephisto's prolific provider (1.5.2) ---------------------------------------------------

Launch = Callable[..., str]
REQUESTER = "prolific-lab"


def _skip_without_provider() -> None:
    if not HAS_PROLIFIC:
        print(f"skipped: {NO_PROVIDER}")
        pytest.skip(NO_PROVIDER)


@pytest.fixture
def prolaunch(mephisto_on_prolific: StandIn, db: Any, tmp_path: Path,  # noqa: F811
              monkeypatch: pytest.MonkeyPatch) -> Launch:
    """Launch a ``mock_quals`` run on the ``prolific`` provider; returns the run id (raises if refused)."""
    from mephisto.abstractions.architects.mock_architect import MockArchitectArgs
    from mephisto.abstractions.providers.prolific.prolific_provider import ProlificProviderArgs
    from mephisto.abstractions.providers.prolific.prolific_requester import ProlificRequester, ProlificRequesterArgs
    from mephisto.data_model.task_run import TaskRunArgs
    from mephisto.operations.hydra_config import MephistoConfig
    from mephisto.operations.operator import Operator

    from mephisto_quals.devtools.mock_crowd import free_port, stop_operator
    from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PROLIFIC_API_KEY", raising=False)  # the key comes from ~/.prolific/credentials only
    # As `mephisto register prolific name=prolific-lab api_key=...` does:
    ProlificRequester.new(db, REQUESTER).register(ProlificRequesterArgs(name=REQUESTER,
                                                                        api_key=mephisto_on_prolific.api_key))
    assert (home / ".prolific" / "credentials").exists()
    operators: List[Any] = []

    def _launch(quals: Dict[str, Any], blueprint_type: str = "mock_quals", **blueprint: Any) -> str:
        from mephisto.operations.registry import get_blueprint_from_type

        cls = QUALS_BLUEPRINTS.get(blueprint_type) or get_blueprint_from_type(blueprint_type)
        blueprint.setdefault("num_assignments", 1)
        blueprint.setdefault("timeout_time", 30)
        config = MephistoConfig(
            blueprint=cls.ArgsClass(**blueprint),
            provider=ProlificProviderArgs(requester_name=REQUESTER, prolific_external_study_url="http://127.0.0.1/task"),
            architect=MockArchitectArgs(should_run_server=True, port=str(free_port())),
            task=TaskRunArgs(task_name="prolific-task", task_title="title", task_description="description",
                             task_reward=0.3, task_tags="test"),
        )
        cfg = OmegaConf.structured(config)
        if quals:
            cfg.blueprint.quals = OmegaConf.merge(cfg.blueprint.quals, quals)
        operator = Operator(db)
        operators.append(operator)
        return str(operator.launch_task_run_or_die(cfg, cls.SharedStateClass()))

    yield _launch  # type: ignore[misc]
    for op in operators:
        stop_operator(op)


def _study(standin: StandIn) -> Dict[str, Any]:
    assert len(standin.studies) == 1, standin.studies
    return next(iter(standin.studies.values()))


def _filters(study: Dict[str, Any]) -> Dict[str, Any]:
    return {f["filter_id"]: f.get("selected_values", f.get("selected_range")) for f in study["filters"]}


def _members(standin: StandIn, qualification: str) -> set:
    gid = standin.group_named(group_name(qualification))
    assert gid is not None, f"no group for {qualification}: {[g['name'] for g in standin.groups.values()]}"
    return set(standin.members[gid])


def test_a_quals_run_on_prolific_gets_its_groups_and_filters_on_the_study(
    prolaunch: Launch, mephisto_on_prolific: StandIn, db: Any,  # noqa: F811
) -> None:
    _skip_without_provider()
    standin = mephisto_on_prolific
    grant(db, "trusted", [P[0], P[1], P[2]], provider="prolific", create=True)
    grant(db, "spammers", [P[2]], provider="prolific", create=True)
    grant(db, "lab_block", [P[3]], provider="prolific", create=True)
    grant(db, "screening-failed", [P[4]], provider="prolific", create=True)
    grant(db, "task_block", [P[5]], provider="prolific", create=True)
    grant(db, "trusted", ["mock_worker"], provider="mock")  # another provider's holder: not a participant
    prolaunch({"allowlists": ["trusted"], "blocklists": ["spammers"], "block_qualifications": ["lab_block"],
               "block_onboarding_failed": ["screening"],
               "prolific": [{"filter": "approval_rate", "min": 95}, {"filter": "approval_numbers", "min": 100},
                            {"filter": "current-country-of-residence", "values": ["United Kingdom", "4"]},
                            {"filter": "age", "min": 18, "max": 65}]},
              block_qualification="task_block", use_onboarding=True, onboarding_qualification="onb")
    study = _study(standin)
    assert study["eligibility_requirements"] == []
    gid = {q: standin.group_named(group_name(q)) for q in ("trusted", "spammers", "lab_block", "screening-failed",
                                                            "task_block", "onb-failed")}
    assert all(gid.values()), gid
    filters = _filters(study)
    assert filters["participant_group_allowlist"] == [gid["trusted"]]
    assert sorted(filters["participant_group_blocklist"]) == sorted(
        gid[q] for q in ("spammers", "lab_block", "screening-failed", "task_block", "onb-failed"))
    assert filters["approval_rate"] == {"lower": 95}
    assert filters["approval_numbers"] == {"lower": 100}
    assert filters["current-country-of-residence"] == ["0", "4"]  # the label mapped to Prolific's choice id
    assert filters["age"] == {"lower": 18, "upper": 65}
    assert _members(standin, "trusted") == {P[0], P[1], P[2]}  # P[2] is in, and blocked by spammers' group
    assert _members(standin, "spammers") == {P[2]}
    assert _members(standin, "lab_block") == {P[3]}
    assert _members(standin, "screening-failed") == {P[4]}
    assert _members(standin, "task_block") == {P[5]}
    # Mephisto's provider knows P[0..5] as workers, and would have made its "PG <timestamp>" group of them.
    assert not [g["name"] for g in standin.groups.values() if g["name"].startswith("PG ")]
    assert study["status"] == "ACTIVE"


def test_with_a_retake_delay_the_onboarding_failed_list_is_left_to_the_local_gate(
    prolaunch: Launch, mephisto_on_prolific: StandIn, db: Any,  # noqa: F811
) -> None:
    """A failed worker may come back after the delay, so Prolific must not hide the study from them."""
    _skip_without_provider()
    grant(db, "onb-failed", [P[4]], provider="prolific", create=True)
    prolaunch({"blocklists": ["spammers"], "onboarding_retake_delay": "7d"}, use_onboarding=True,
              onboarding_qualification="onb")
    blocked = _filters(_study(mephisto_on_prolific))["participant_group_blocklist"]
    assert blocked == [mephisto_on_prolific.group_named(group_name("spammers"))]
    assert mephisto_on_prolific.group_named(group_name("onb-failed")) is None


def test_the_launch_sync_sends_only_the_difference(
    prolaunch: Launch, mephisto_on_prolific: StandIn, db: Any,  # noqa: F811
) -> None:
    _skip_without_provider()
    standin = mephisto_on_prolific
    existing = standin.add_group(standin.workspace_id, group_name("trusted"), [P[0], P[8]])  # type: ignore[attr-defined]
    grant(db, "trusted", [P[0], P[1]], provider="prolific", create=True)
    prolaunch({"allowlists": ["trusted"]})
    assert _members(standin, "trusted") == {P[0], P[1]}
    member_writes = standin.writes("participants/")
    assert [(c.method, c.body["participant_ids"]) for c in member_writes] == [("POST", [P[1]]), ("DELETE", [P[8]])]
    assert _filters(_study(standin))["participant_group_allowlist"] == [existing]  # adopted by name, not a new one
    assert "participant_group_blocklist" not in _filters(_study(standin))


def test_an_empty_allowlist_refuses_the_launch_before_any_study(
    prolaunch: Launch, mephisto_on_prolific: StandIn, db: Any,  # noqa: F811
) -> None:
    _skip_without_provider()
    from mephisto_quals.integration.prolific_launch import ProlificLaunchRefused

    standin = mephisto_on_prolific
    grant(db, "trusted", ["mock_worker"], provider="mock", create=True)  # holders, but none on Prolific
    with pytest.raises(ProlificLaunchRefused) as e:
        prolaunch({"allowlists": ["trusted"], "blocklists": ["spammers"]})
    assert "mephisto.blueprint.quals.allowlists[0]: 'trusted' is not valid; no Prolific participant holds" in str(e.value)
    assert standin.studies == {}
    assert standin.writes() == []  # nothing written to Prolific: no group, no members, no study


def test_a_prolific_run_with_no_requirement_at_all_is_refused_early(
    prolaunch: Launch, mephisto_on_prolific: StandIn,  # noqa: F811
) -> None:
    _skip_without_provider()
    from mephisto_quals.integration.prolific_launch import ProlificLaunchRefused

    with pytest.raises(ProlificLaunchRefused, match="a Prolific run needs at least one requirement"):
        prolaunch({})
    assert mephisto_on_prolific.studies == {} and mephisto_on_prolific.writes() == []


def test_a_filter_prolific_does_not_list_refuses_the_launch(
    prolaunch: Launch, mephisto_on_prolific: StandIn,  # noqa: F811
) -> None:
    _skip_without_provider()
    from mephisto_quals.integration.prolific_launch import ProlificLaunchRefused

    with pytest.raises(ProlificLaunchRefused) as e:
        prolaunch({"prolific": [{"filter": "approval_rate", "min": 90}, {"filter_id": "handedness", "values": ["1"]},
                                {"filter": "fluent-languages", "values": ["Klingon"]}]})
    text = str(e.value)
    assert f"{Q}[1]: 'handedness' is not valid; Prolific lists no such filter" in text
    assert f"{Q}[2].values: ['Klingon'] is not valid; not a choice of fluent-languages" in text
    assert mephisto_on_prolific.studies == {}


def test_a_plain_run_on_prolific_is_left_to_mephisto(
    prolaunch: Launch, mephisto_on_prolific: StandIn, db: Any,  # noqa: F811
) -> None:
    """A run that is not ours gets Mephisto's own behaviour: its "PG <timestamp>" group, no filters of ours."""
    _skip_without_provider()
    from mephisto.utils.qualifications import make_qualification_dict

    standin = mephisto_on_prolific
    grant(db, "trusted", [P[0]], provider="prolific", create=True)
    prolaunch({"prolific": [{"filter": "approval_rate", "min": 90}]})  # a _quals run first: installs the wrappers
    before = set(standin.studies)
    from mephisto.abstractions.architects.mock_architect import MockArchitectArgs
    from mephisto.abstractions.blueprints.mock.mock_blueprint import MockBlueprint
    from mephisto.abstractions.providers.prolific.prolific_provider import ProlificProviderArgs
    from mephisto.data_model.task_run import TaskRunArgs
    from mephisto.operations.hydra_config import MephistoConfig
    from mephisto.operations.operator import Operator

    from mephisto_quals.devtools.mock_crowd import free_port, stop_operator

    config = MephistoConfig(
        blueprint=MockBlueprint.ArgsClass(num_assignments=1, timeout_time=30),
        provider=ProlificProviderArgs(requester_name=REQUESTER, prolific_external_study_url="http://127.0.0.1/task"),
        architect=MockArchitectArgs(should_run_server=True, port=str(free_port())),
        task=TaskRunArgs(task_name="plain-task", task_title="t", task_description="d", task_reward=0.3, task_tags="x"),
    )
    state = MockBlueprint.SharedStateClass()
    state.qualifications = [make_qualification_dict("trusted", "Exists", None)]
    operator = Operator(db)
    try:
        operator.launch_task_run_or_die(OmegaConf.structured(config), state)
    finally:
        stop_operator(operator)
    pg = [gid for gid, g in standin.groups.items() if g["name"].startswith("PG ")]
    assert len(pg) == 1 and set(standin.members[pg[0]]) == {P[0]}
    (plain,) = [s for sid, s in standin.studies.items() if sid not in before]
    assert not plain["filters"] and plain["eligibility_requirements"]  # Mephisto's own form, untouched


def test_on_mephisto_1_1_1_prolific_filters_validate_but_are_not_launched() -> None:
    """Both lines: the launch helpers know whether the provider exists, and say so."""
    from mephisto_quals.integration.prolific_launch import install, provider_available

    assert provider_available() == HAS_PROLIFIC
    assert install() == HAS_PROLIFIC
    if not HAS_PROLIFIC:
        print(f"launch not tested: {NO_PROVIDER}")
    plan = plan_from_quals({"prolific": [{"filter": "approval_rate", "min": 95}]}, provider_type="mock")
    assert plan.prolific == [{"filter_id": "approval_rate", "selected_range": {"lower": 95}}]



# --- explain / forecast: the Prolific side -------------------------------------------------------


def _prolific_rows(why: Any) -> List[Any]:
    return [r for r in why.rows if r.where == "prolific"]


def test_explain_and_forecast_show_groups_as_last_synced_and_filters_only_prolific_knows(
    db: Any, prolific: StandIn, prolific_client: Any,  # noqa: F811
) -> None:
    """Both lines (a config, no launch): before a sync the group is 'not yet'; after, its id and membership."""
    from mephisto_quals.admin.eligibility import explain, forecast
    from mephisto_quals.providers.prolific.sync import apply_sync

    grant(db, "trusted", [P[0], P[1]], provider="prolific", create=True)
    grant(db, "spammers", [P[1]], provider="prolific", create=True)
    config = {"blueprint": {"_blueprint_type": "mock_quals",
                            "quals": {"allowlists": ["trusted"], "blocklists": ["spammers"],
                                      "prolific": [{"filter": "approval_rate", "min": 95}]}},
              "provider": {"_provider_type": "prolific"}}
    before = _prolific_rows(explain(db, P[0], provider="prolific", config=config))
    assert [(r.source, r.verdict) for r in before] == [
        ("mephisto.blueprint.quals.allowlists[0]", "unknown"), ("mephisto.blueprint.quals.blocklists[0]", "unknown"),
        (f"{Q}[0]", "unknown")]
    assert "no group yet" in before[0].actual
    assert before[2].requirement == "{filter: approval_rate, min: 95}" and before[2].actual == "only Prolific knows"
    for q in ("trusted", "spammers"):
        apply_sync(db, q, client=prolific_client)
    gid = prolific.group_named(group_name("trusted"))
    alice = _prolific_rows(explain(db, P[0], provider="prolific", config=config))
    bob = _prolific_rows(explain(db, P[1], provider="prolific", config=config))
    assert [r.verdict for r in alice] == ["pass", "pass", "unknown"]
    assert [r.verdict for r in bob] == ["pass", "fail", "unknown"]  # in the allowlist group and the blocklist's
    assert gid in alice[0].requirement and alice[0].actual.startswith("member as last synced")
    assert bob[1].actual.startswith("member as last synced")
    live = _prolific_rows(explain(db, P[1], provider="prolific", config=config, prolific_client=prolific_client))
    assert live[1].actual == "member (read from Prolific now)" and live[1].verdict == "fail"
    fc = forecast(db, config=config)
    assert f"Prolific: allowlist 'trusted' is participant group {gid}, 2 member(s) as last synced" in "\n".join(fc.prolific)
    assert any("1 filter(s) not counted, only Prolific knows: {filter: approval_rate, min: 95}" in w for w in fc.warnings)


def test_explain_after_a_launch_reads_the_task_by_name(
    prolaunch: Launch, mephisto_on_prolific: StandIn, db: Any,  # noqa: F811
) -> None:
    _skip_without_provider()
    from mephisto_quals.admin.eligibility import explain

    grant(db, "trusted", [P[0]], provider="prolific", create=True)
    prolaunch({"allowlists": ["trusted"]}, block_qualification="task_block")
    rows = _prolific_rows(explain(db, P[0], provider="prolific", task="prolific-task"))
    assert [(r.source, r.verdict) for r in rows] == [("mephisto.blueprint.quals.allowlists[0]", "pass"),
                                                     ("mephisto.blueprint.block_qualification", "pass")]
    assert mephisto_on_prolific.group_named(group_name("task_block")) in rows[1].requirement


# --- review --apply --prolific -------------------------------------------------------------------


def test_review_apply_prolific_syncs_the_touched_qualifications_groups(
    db: Any, launch: Any, prolific_env: StandIn, tmp_path: Path,  # noqa: F811
) -> None:
    """A rule that grants a blocklist qualification pushes it to its Prolific group after the commit:
    the group then holds the list's Prolific participants; untouched lists are left alone."""
    from click.testing import CliRunner
    from mephisto.abstractions.blueprint import AgentState
    from mephisto.data_model.agent import Agent

    from mephisto_quals.cli.main import cli as root

    standin = prolific_env
    grant(db, "spammers", [P[7]], provider="prolific", create=True)  # a participant blocked earlier, not on Prolific
    grant(db, "untouched", [P[6]], provider="prolific", create=True)
    run = launch(task_name="labelling", num_assignments=2)
    arrival = run.arrive("bob")
    agent = Agent.get(db, arrival.agent_id)
    agent.update_status(AgentState.STATUS_COMPLETED)
    agent.reject_work("spam")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [{"when": "rejected", "grant": "spammers"}]}))
    runner = CliRunner()
    dry = runner.invoke(root, ["review", "--task", "labelling", "--rules", str(rules), "--prolific", "--db", db.db_path])
    assert dry.exit_code == 0, dry.output
    assert standin.calls == []  # a dry run never talks to Prolific
    done = runner.invoke(root, ["review", "--task", "labelling", "--rules", str(rules), "--apply", "--prolific",
                                "--db", db.db_path])
    assert done.exit_code == 0, done.output
    assert _members(standin, "spammers") == {P[7]}  # bob is a mock worker: locally blocked, not a participant
    assert standin.group_named(group_name("untouched")) is None
    again = runner.invoke(root, ["review", "--task", "labelling", "--rules", str(rules), "--apply", "--prolific",
                                 "--db", db.db_path])
    assert again.exit_code == 0 and "nothing to sync" in again.output
    assert len(standin.writes("participants/")) == 1
