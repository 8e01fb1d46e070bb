"""Prolific participant groups as the shared lists: sync plan/apply/pull, direct grants, the live rule.

Everything runs against the loopback Prolific stand-in (tests/prolific_standin.py) through
our own client only, so it is the same on Mephisto 1.1.1 and 1.5.2. "Exactly the
difference" and "no duplicate write" are checked on the stand-in's log of every request.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

import pytest
from click.testing import CliRunner
from mephisto.abstractions.databases.local_database import LocalMephistoDB

from mephisto_quals.admin.grants import grant
from mephisto_quals.admin.queries import holders
from mephisto_quals.cli.main import cli
from mephisto_quals.errors import ProlificError, ProlificLiveRefused, UnknownQualificationError
from mephisto_quals.providers.prolific.client import ProlificClient, Retry, find_api_key
from mephisto_quals.providers.prolific.groups import group_name, mapped_groups
from mephisto_quals.providers.prolific.sync import (
    apply_sync,
    grant_on_prolific,
    journal,
    plan_sync,
    pull,
    revoke_on_prolific,
)
from mephisto_quals.store import Session, schema
from prolific_fixtures import WORKSPACE, RecordingRetry
from prolific_standin import StandIn

#: The stand-in's fixtures (prolific, prolific_env, prolific_client).
pytest_plugins = ("prolific_fixtures",)

LIVE_URL = "https://api.prolific.com/api/v1/"


def pid(i: int) -> str:
    return f"5f{i:022x}"


def flat(output: str) -> str:
    """Rich's boxed error output as one line of words."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def fresh_db(path: Path) -> LocalMephistoDB:
    path.mkdir(parents=True)
    return LocalMephistoDB(database_path=str(path / "database.db"))


def local_list(db: LocalMephistoDB, qualification: str, ids: List[str]) -> None:
    report = grant(db, qualification, ids, provider="prolific", create=True)
    assert report.ok, report.failed


def sent_ids(standin: StandIn, method: str) -> Counter:
    """How often each participant was in a successful add (POST) / remove (DELETE) call."""
    return Counter(p for c in standin.writes("/participants/") if c.method == method
                   for p in c.body["participant_ids"])


def members(standin: StandIn, qualification: str) -> set:
    gid = standin.group_named(group_name(qualification))
    return set(standin.members[gid]) if gid else set()


def scenario(db: LocalMephistoDB, standin: StandIn, n_local: int = 40, keep: int = 25, extra: int = 5) -> Dict[str, set]:
    """Local holders 0..n_local-1; the group holds the first ``keep`` of them plus ``extra`` others."""
    local = [pid(i) for i in range(n_local)]
    local_list(db, "trusted", local)
    grant(db, "trusted", ["alice"], provider="mock")  # not a Prolific worker: ignored
    others = [pid(1000 + i) for i in range(extra)]
    standin.add_group(standin.workspace_id, group_name("trusted"), local[:keep] + others)  # type: ignore[attr-defined]
    return {"adds": set(local[keep:]), "removes": set(others), "local": set(local)}


def test_plan_reads_only_and_finds_the_difference(db: LocalMephistoDB, prolific: StandIn,
                                                  prolific_client: ProlificClient) -> None:
    expected = scenario(db, prolific)
    plan = plan_sync(db, "trusted", client=prolific_client, batch_size=4)
    assert set(plan.adds) == expected["adds"] and set(plan.removes) == expected["removes"]
    assert plan.local_holders == 40 and plan.group_members == 30 and plan.group.how == "adopted"
    assert plan.write_calls == 4 + 2  # 15 adds in batches of 4, 5 removes
    assert not prolific.writes(ok=False)
    assert "add 15, remove 5 -> 6 write calls" in plan.summary()


def test_sync_with_30_percent_429_503_converges_writing_only_the_difference(
        db: LocalMephistoDB, prolific: StandIn) -> None:
    expected = scenario(db, prolific)
    prolific.fail_rate, prolific.retry_after = 0.3, "1.5"
    retry = RecordingRetry(attempts=12)
    client = ProlificClient(prolific.base_url, prolific.api_key, retry)
    report = apply_sync(db, "trusted", client=client, batch_size=4)
    assert report.ok and report.changed == 20
    assert members(prolific, "trusted") == expected["local"]
    assert sent_ids(prolific, "POST") == Counter(expected["adds"])  # each once, nobody else
    assert sent_ids(prolific, "DELETE") == Counter(expected["removes"])
    assert report.write_calls == len(prolific.writes("/participants/")) == 6
    failed = [c for c in prolific.calls if not c.ok]
    assert failed and {c.status for c in failed} <= {429, 503} and report.retries == len(failed)
    assert 1.5 in retry.waits  # the 429s' Retry-After
    before = len(prolific.writes(ok=False))
    again = apply_sync(db, "trusted", client=client, batch_size=4)
    assert again.write_calls == 0 and again.changed == 0 and len(prolific.writes(ok=False)) == before
    assert mapped_groups(db, "trusted")[0]["synced_members"] == 40


def test_retry_after_is_honoured_and_capped(prolific: StandIn) -> None:
    prolific.script = [(429, {"Retry-After": "7"}), (503, {"Retry-After": "2"}), (429, {"Retry-After": "9999"}),
                       (503, {})]
    retry = RecordingRetry()
    retry.max_delay = 30.0
    client = ProlificClient(prolific.base_url, prolific.api_key, retry)
    assert client.me()["name"] == "Test Researcher"
    assert retry.waits == [7.0, 2.0, 30.0, retry.base_delay * 8] and client.retries == 4 and client.reads == 1


def test_retries_used_up_stop_with_a_prolific_error(prolific: StandIn) -> None:
    prolific.script = [(503, {})] * 3
    client = ProlificClient(prolific.base_url, prolific.api_key, Retry(attempts=3, sleep=lambda s: None))
    with pytest.raises(ProlificError, match="HTTP 503"):
        client.me()


def test_group_members_follow_every_page(prolific: StandIn, prolific_client: ProlificClient) -> None:
    gid = prolific.add_group(prolific.workspace_id, "big", [pid(i) for i in range(250)])  # type: ignore[attr-defined]
    assert prolific_client.group_members(gid) == [pid(i) for i in range(250)]
    pages = prolific.reads(f"participant-groups/{gid}/participants/")
    assert len(pages) == 3 and prolific_client.reads == 3
    assert [c.query.get("offset") for c in pages] == [None, "100", "200"]


def test_a_crash_mid_apply_then_reapply_has_no_duplicates(db: LocalMephistoDB, prolific: StandIn) -> None:
    expected = scenario(db, prolific)
    prolific.crash_after_writes = 2  # the network dies after two batches
    client = ProlificClient(prolific.base_url, prolific.api_key, RecordingRetry(attempts=3))
    plan = plan_sync(db, "trusted", client=client, batch_size=4)
    with pytest.raises(ProlificError, match="HTTP 503"):
        apply_sync(db, plan, client=client)
    assert len(journal(db, plan.plan_id)) == 8  # the two accepted batches
    prolific.crash_after_writes = None
    resumed = apply_sync(db, plan, client=client)  # the same plan: the journal skips what was sent
    assert resumed.counts()["already applied"] == 8 and resumed.changed == 12
    assert sent_ids(prolific, "POST") == Counter(expected["adds"])
    assert sent_ids(prolific, "DELETE") == Counter(expected["removes"])
    assert members(prolific, "trusted") == expected["local"]
    assert apply_sync(db, "trusted", client=client).write_calls == 0


@pytest.mark.subprocess
def test_kill_9_mid_apply_then_reapply_has_no_duplicates(db: LocalMephistoDB, prolific: StandIn,
                                                         tmp_path: Path) -> None:
    expected = scenario(db, prolific, n_local=450, keep=0, extra=0)  # 450 adds: 5 batches of 100
    env = {**os.environ, "PROLIFIC_BASE_URL": prolific.base_url, "PROLIFIC_API_KEY": prolific.api_key,
           "HOME": str(tmp_path)}
    child: List[subprocess.Popen] = []
    prolific.after_write = lambda n, call: os.kill(child[0].pid, signal.SIGKILL) if n == 3 else None
    command = [sys.executable, "-m", "mephisto_quals.cli", "sync", "apply", "trusted", "--prolific",
               "--db", db.db_path]
    child.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    child[0].communicate(timeout=120)
    assert child[0].returncode == -signal.SIGKILL
    assert len(prolific.writes("/participants/")) == 3  # killed while the 3rd of 5 batches was being answered
    prolific.after_write = None
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sent_ids(prolific, "POST") == Counter(expected["adds"])  # nobody twice
    assert members(prolific, "trusted") == expected["local"]
    assert len(prolific.writes("/participants/")) == 5 and len(prolific.groups) == 1


def test_a_participant_prolific_refuses_fails_alone(db: LocalMephistoDB, prolific: StandIn,
                                                   prolific_client: ProlificClient) -> None:
    expected = scenario(db, prolific)
    refused = sorted(expected["adds"])[3]
    prolific.unknown_participants = {refused}
    report = apply_sync(db, "trusted", client=prolific_client, batch_size=4)
    assert [(o.worker, o.status) for o in report.failed] == [(refused, "failed")]
    assert "not a valid participant id" in report.failed[0].error and report.changed == 19
    assert members(prolific, "trusted") == expected["local"] - {refused}
    assert mapped_groups(db, "trusted")[0]["synced_at"] is None  # not in step: not marked synced
    prolific.unknown_participants = set()
    assert apply_sync(db, "trusted", client=prolific_client).changed == 1


def test_pull_on_a_fresh_database_reproduces_the_list(db: LocalMephistoDB, prolific: StandIn,
                                                      prolific_client: ProlificClient, tmp_path: Path) -> None:
    ids = [pid(i) for i in range(130)]
    report = grant_on_prolific(db, "trusted", ids, client=prolific_client)
    assert report.ok and report.created_group and report.write_calls == 1 + 2  # create + 2 batches
    other = fresh_db(tmp_path / "other")
    pulled = pull(other, "trusted", client=prolific_client)
    assert pulled.ok and pulled.counts() == {"granted": 130}
    assert {h.worker_name for h in holders(other, "trusted")} == set(ids)
    assert {h.provider_type for h in holders(other, "trusted")} == {"prolific"}
    assert mapped_groups(other, "trusted")[0]["group_id"] == prolific.group_named(group_name("trusted"))
    assert plan_sync(other, "trusted", client=prolific_client).write_calls == 0


def test_revoke_on_prolific_removes_from_group_and_locally(db: LocalMephistoDB, prolific: StandIn,
                                                           prolific_client: ProlificClient) -> None:
    ids = [pid(i) for i in range(5)]
    grant_on_prolific(db, "banned", ids, client=prolific_client, reason="spam")
    report = revoke_on_prolific(db, "banned", ids[:2], client=prolific_client)
    assert report.ok and report.counts() == {"revoked": 2}
    assert members(prolific, "banned") == set(ids[2:])
    assert {h.worker_name for h in holders(db, "banned")} == set(ids[2:])


def test_live_prolific_without_live_ok_refuses_before_any_request(db: LocalMephistoDB,
                                                                  no_network: List[Any]) -> None:
    local_list(db, "trusted", [pid(1)])
    for call in (lambda: plan_sync(db, "trusted", base_url=LIVE_URL, api_key="k"),
                 lambda: apply_sync(db, "trusted", base_url=LIVE_URL, api_key="k"),
                 lambda: grant_on_prolific(db, "trusted", [pid(2)], base_url=LIVE_URL, api_key="k"),
                 lambda: pull(db, "trusted", client=ProlificClient(LIVE_URL, "k"))):
        with pytest.raises(ProlificLiveRefused, match=r"api\.prolific\.com.*--live"):
            call()
    assert no_network == []  # nothing was even looked up


def test_cli_live_without_live_exits_2(db: LocalMephistoDB, no_network: List[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROLIFIC_BASE_URL", LIVE_URL)
    monkeypatch.setenv("PROLIFIC_API_KEY", "k")
    local_list(db, "trusted", [pid(1)])
    for args in (["sync", "plan", "trusted", "--prolific"], ["sync", "apply", "trusted", "--prolific", "--yes"],
                 ["sync", "pull", "trusted", "--prolific"], ["grant", "trusted", pid(2), "--prolific"]):
        result = CliRunner().invoke(cli, args + ["--db", db.db_path])
        assert result.exit_code == 2, result.output
        assert "api.prolific.com" in flat(result.output) and "--live" in flat(result.output)
    assert no_network == []


def test_cli_live_with_live_still_asks_before_writing(db: LocalMephistoDB, no_network: List[Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROLIFIC_BASE_URL", LIVE_URL)
    monkeypatch.setenv("PROLIFIC_API_KEY", "k")
    result = CliRunner().invoke(cli, ["grant", "trusted", pid(2), "--prolific", "--live", "--create", "--db", db.db_path],
                                input="n\n")
    assert result.exit_code == 1 and "LIVE Prolific (api.prolific.com" in result.output
    assert no_network == []  # asked before any request: nothing sent, nothing granted
    with pytest.raises(UnknownQualificationError):
        holders(db, "trusted")


def test_cli_bad_participant_ids_exit_2_naming_the_id(db: LocalMephistoDB, prolific_env: StandIn) -> None:
    result = CliRunner().invoke(cli, ["grant", "trusted", pid(1), "alice-on-prolific", "--prolific", "--db", db.db_path])
    assert result.exit_code == 2
    assert "'alice-on-prolific'" in flat(result.output) and "24 lowercase hexadecimal" in flat(result.output)
    assert prolific_env.calls == []
    local = CliRunner().invoke(cli, ["grant", "trusted", "5F0C", "--provider", "prolific", "--create", "--db", db.db_path])
    assert local.exit_code == 1 and "24 lowercase hexadecimal" in flat(local.output)


def test_cli_round_trip(db: LocalMephistoDB, prolific_env: StandIn, tmp_path: Path) -> None:
    run = CliRunner().invoke
    ids = [pid(i) for i in range(6)]
    out = run(cli, ["grant", "trusted", *ids[:4], "--prolific", "--create", "--db", db.db_path])
    assert out.exit_code == 0, out.output
    assert members(prolific_env, "trusted") == set(ids[:4])
    local_list(db, "trusted", ids[4:])  # granted locally only
    plan = run(cli, ["sync", "plan", "trusted", "--prolific", "--db", db.db_path])
    assert plan.exit_code == 0 and "add 2, remove 0 -> 1 write calls" in plan.output, plan.output
    applied = run(cli, ["sync", "apply", "trusted", "--prolific", "--db", db.db_path])
    assert applied.exit_code == 0 and "2 added" in applied.output, applied.output
    assert "nothing to write" in run(cli, ["sync", "apply", "trusted", "--prolific", "--db", db.db_path]).output
    out = run(cli, ["revoke", "trusted", ids[0], "--prolific", "--db", db.db_path])
    assert out.exit_code == 0 and members(prolific_env, "trusted") == set(ids[1:])
    csv = tmp_path / "more.csv"
    csv.write_text(f"worker,value\n{pid(50)},2\n")
    out = run(cli, ["import", "trusted", str(csv), "--prolific", "--db", db.db_path])
    assert out.exit_code == 0, out.output
    assert pid(50) in members(prolific_env, "trusted")
    other = fresh_db(tmp_path / "b")
    out = run(cli, ["sync", "pull", "trusted", "--prolific", "--db", other.db_path])
    assert out.exit_code == 0, out.output
    assert {h.worker_name: h.value for h in holders(other, "trusted")} == {p: 1 for p in ids[1:] + [pid(50)]}
    assert run(cli, ["sync", "plan", "trusted", "--db", db.db_path]).exit_code == 2  # neither --requester nor --prolific


def test_api_key_from_mephisto_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROLIFIC_API_KEY", raising=False)
    (tmp_path / ".prolific").mkdir()
    (tmp_path / ".prolific" / "credentials").write_text('{"lab": "key-lab", "other": "key-other"}')
    assert find_api_key(requester="lab", home=tmp_path) == "key-lab"
    with pytest.raises(Exception, match="lab, other"):
        find_api_key(home=tmp_path)


def test_schema_3_adds_the_group_table_to_a_version_2_database(db: LocalMephistoDB) -> None:
    with Session.open(db) as s:
        assert schema.schema_version(s.conn) == 3
        with s.transaction() as conn:
            conn.execute("DROP TABLE mephisto_quals_prolific_groups")
            conn.execute("DROP VIEW mephisto_quals_schema")
            conn.execute("CREATE VIEW mephisto_quals_schema AS SELECT 2 AS version")
    with Session.open(db) as s:
        assert schema.schema_version(s.conn) == 3
        assert "mephisto_quals_prolific_groups" in schema.our_objects(s.conn)


def test_mephisto_s_own_prolific_client_talks_to_the_stand_in(mephisto_on_prolific: StandIn) -> None:
    """For the launch tests (1.5.2 only): Mephisto's provider code works against the stand-in."""
    from mephisto.abstractions.providers.prolific import prolific_utils
    from mephisto.abstractions.providers.prolific.api.client import ProlificClient as MephistoClient

    client = MephistoClient(api_key=mephisto_on_prolific.api_key)
    workspace = prolific_utils.find_or_create_prolific_workspace(client, WORKSPACE)
    assert workspace.id == mephisto_on_prolific.workspace_id  # type: ignore[attr-defined]
    project = prolific_utils.find_or_create_prolific_project(client, workspace.id, "Project")
    group = prolific_utils.create_qualification(client, project.id, "PG test")
    prolific_utils.add_workers_to_qualification(client, [pid(1)], group.id)
    assert set(mephisto_on_prolific.members[group.id]) == {pid(1)}
    assert [c.path for c in mephisto_on_prolific.writes()] == [
        f"workspaces/{workspace.id}/projects/", "participant-groups/", f"participant-groups/{group.id}/participants/"]
