"""Local allow/block lists as Prolific eligibility requirements, validated by the quals plan."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import pytest
import yaml
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from omegaconf import OmegaConf

from conftest import cli_runner
from mephisto_quals import QualsConfigError, plan_from_quals
from mephisto_quals.admin.grants import UnknownQualificationError, grant
from mephisto_quals.errors import QualsError
from mephisto_quals.providers.prolific.lists import (
    export_prolific,
    format_requirements,
    is_participant_id,
    prolific_lists,
    prolific_requirements,
)
from prolific_fixtures import prolific, prolific_client  # noqa: F401  (pytest fixtures)

NOW = float(int(time.time()))  # real time: the commands use the clock
P1, P2, P3, P4 = ("5f0c" + c * 20 for c in "1234")
EXPIRED = "60aa" + "e" * 20
BAD = "alice-on-prolific"


def bad_worker(db: LocalMephistoDB) -> str:
    """A Prolific worker named BAD, as an older Mephisto or another tool could have left it (grants refuse the name)."""
    with sqlite3.connect(db.db_path) as conn:
        cursor = conn.execute("INSERT INTO workers (worker_name, provider_type) VALUES (?, 'prolific')", (BAD,))
        return str(cursor.lastrowid)


@pytest.fixture
def lists(db: LocalMephistoDB) -> LocalMephistoDB:
    on_prolific = {"provider": "prolific", "now": NOW}
    grant(db, "trusted", [P1, P2, P3], create=True, **on_prolific)
    grant(db, "trained", [P2, P3, P4], create=True, **on_prolific)
    grant(db, "banned", [P4], create=True, **on_prolific)
    grant(db, "spammers", [P1], create=True, **on_prolific)
    grant(db, "trusted", [EXPIRED], provider="prolific", expires_in="1h", now=NOW - 7200)
    grant(db, "trusted", ["alice"], provider="mock", now=NOW)  # not a Prolific participant
    grant(db, "nobody_on_prolific", ["bob"], provider="mock", create=True, now=NOW)
    return db


def test_participant_ids_are_24_lowercase_hex() -> None:
    assert is_participant_id(P1) and is_participant_id("0123456789abcdef01234567")
    for bad in ("0123456789abcdef0123456", "0123456789abcdef012345678", "0123456789ABCDEF01234567",
                "0123456789abcdef0123456g", "", None, 5):
        assert not is_participant_id(bad), bad


def test_an_allowlist_becomes_a_white_list(lists: LocalMephistoDB) -> None:
    result = prolific_lists(lists, allowlists=["trusted"], now=NOW)
    assert result.requirements == [{"filter": "custom_allowlist", "values": sorted([P1, P2, P3])}]
    assert result.other_providers == {"trusted": 1} and result.invalid == []
    assert result.warnings == ["trusted: 1 holder(s) are not Prolific participants and are left out"]


def test_allowlists_intersect_and_blocklists_unite(lists: LocalMephistoDB) -> None:
    reqs = prolific_requirements(lists, allowlists=["trusted", "trained"], blocklists=["banned", "spammers"], now=NOW)
    assert reqs == [
        {"filter": "custom_allowlist", "values": sorted([P2, P3])},
        {"filter": "custom_blocklist", "values": sorted([P1, P4])},
    ]


def test_the_requirements_validate_in_a_quals_plan(lists: LocalMephistoDB) -> None:
    reqs = prolific_requirements(lists, allowlists=["trusted"], blocklists=["banned"], now=NOW)
    plan = plan_from_quals({"prolific": reqs}, provider_type="prolific")
    assert plan.prolific == [{"filter_id": r["filter"], "selected_values": r["values"]} for r in reqs]
    # The same check refuses a broken list, so the validation above is real.
    broken = [dict(reqs[0], values=[])]
    with pytest.raises(QualsConfigError, match=r"mephisto\.blueprint\.quals\.prolific\[0\]\.values"):
        plan_from_quals({"prolific": broken}, provider_type="prolific")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_formatted_text_pastes_into_a_task_config(lists: LocalMephistoDB, fmt: str) -> None:
    reqs = prolific_requirements(lists, allowlists=["trusted"], blocklists=["banned"], now=NOW)
    text = format_requirements(reqs, fmt)
    pasted = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
    assert pasted == reqs
    if fmt == "yaml":
        assert text.startswith("# paste as the value of mephisto.blueprint.quals.prolific\n")
        indented = "\n".join("        " + line for line in text.splitlines())
        config = OmegaConf.create(yaml.safe_load(f"mephisto:\n  blueprint:\n    quals:\n      prolific:\n{indented}\n"))
        plan = plan_from_quals(config.mephisto.blueprint.quals, provider_type="prolific")
        assert [p["selected_values"] for p in plan.prolific] == [r["values"] for r in reqs]


def test_holders_who_are_not_participant_ids_are_reported(lists: LocalMephistoDB) -> None:
    grant(lists, "trusted", [bad_worker(lists)], now=NOW)  # --provider prolific refuses BAD now
    with pytest.raises(QualsConfigError) as raised:
        prolific_requirements(lists, allowlists=["trusted"], now=NOW)
    (problem,) = raised.value.problems
    assert problem.value == BAD and problem.path.startswith("allowlists[0] (trusted) holder ")
    assert "24 lowercase hexadecimal characters" in str(problem)
    # Not strict: left out, and said so.
    assert prolific_requirements(lists, allowlists=["trusted"], strict=False, now=NOW)[0]["values"] == sorted([P1, P2, P3])
    text = export_prolific(lists, "trusted", now=NOW)
    assert "# left out: allowlists[0] (trusted) holder" in text and BAD in text
    assert yaml.safe_load(text)[0]["values"] == sorted([P1, P2, P3])


def test_an_allowlist_nobody_on_prolific_holds_is_an_error(lists: LocalMephistoDB) -> None:
    with pytest.raises(QualsError, match="no Prolific participant holds 'nobody_on_prolific'"):
        prolific_requirements(lists, allowlists=["nobody_on_prolific"], now=NOW)
    with pytest.raises(QualsError, match="holds all of 'banned', 'spammers'"):
        prolific_requirements(lists, allowlists=["banned", "spammers"], now=NOW)


def test_an_empty_blocklist_adds_nothing(lists: LocalMephistoDB) -> None:
    result = prolific_lists(lists, blocklists=["nobody_on_prolific"], now=NOW)
    assert result.requirements == []
    assert "no black list needed" in result.warnings[0]


def test_an_unknown_qualification_is_an_error(lists: LocalMephistoDB) -> None:
    with pytest.raises(UnknownQualificationError):
        prolific_requirements(lists, allowlists=["trustd"], now=NOW)
    with pytest.raises(TypeError):
        prolific_requirements(lists, allowlists="trusted", now=NOW)  # type: ignore[arg-type]


def test_export_block(lists: LocalMephistoDB) -> None:
    text = export_prolific(lists, "banned", block=True, fmt="json", now=NOW)
    assert json.loads(text) == [{"filter": "custom_blocklist", "values": [P4]}]


def invoke(db: LocalMephistoDB, *args: str) -> Any:
    from mephisto_quals.cli.prolific import export_prolific_command

    return cli_runner().invoke(export_prolific_command, [*args, "--db", db.db_path])


def test_export_prolific_command(lists: LocalMephistoDB) -> None:
    allow = invoke(lists, "trusted")
    assert allow.exit_code == 0, allow.stderr
    assert yaml.safe_load(allow.stdout) == [{"filter": "custom_allowlist", "values": sorted([P1, P2, P3])}]
    assert "1 holder(s) are not Prolific participants" in allow.stderr
    block = invoke(lists, "banned", "--block", "--format", "json")
    assert block.exit_code == 0 and json.loads(block.stdout) == [{"filter": "custom_blocklist", "values": [P4]}]
    grant(lists, "trusted", [bad_worker(lists)])
    strict = invoke(lists, "trusted", "--strict")
    assert strict.exit_code == 2 and BAD in strict.stderr and strict.stdout == ""
    unknown = invoke(lists, "trustd")
    assert unknown.exit_code == 2 and "'trustd' does not exist" in unknown.stderr


def test_export_writes_the_group_filter_once_the_list_is_mapped(
    lists: LocalMephistoDB, prolific_client: Any, prolific: Any,  # noqa: F811  (fixtures)
) -> None:
    """After a sync (or a launch) maps the list to a participant group, export names the group, which
    stays current as it is synced, instead of a snapshot of ids."""
    from mephisto_quals.providers.prolific.sync import apply_sync

    apply_sync(lists, "trusted", client=prolific_client, now=NOW)
    gid = prolific.group_named("mephisto-quals:trusted")
    text = export_prolific(lists, "trusted", now=NOW)
    assert yaml.safe_load(text) == [{"filter": "participant_group_allowlist", "values": [gid]}]
    assert f"Prolific participant group {gid}" in text and "last synced" in text and "3 member(s)" in text
    blocked = yaml.safe_load(export_prolific(lists, "trusted", block=True, fmt="json", now=NOW))
    assert blocked == [{"filter": "participant_group_blocklist", "values": [gid]}]
    assert plan_from_quals({"prolific": blocked}).prolific == [
        {"filter_id": "participant_group_blocklist", "selected_values": [gid]}]
