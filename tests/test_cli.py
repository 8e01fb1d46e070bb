"""The ``mephisto-quals`` command line on a real LocalMephistoDB created in the test's temp dir.

Most tests run the root group in-process with click's ``CliRunner`` (conftest has already
pointed HOME at a temp dir before Mephisto was imported). A few smoke tests run the
installed ``mephisto-quals`` script and ``python -m mephisto_quals.cli`` in a subprocess with
their own HOME, the way users run them.
"""

from __future__ import annotations

import csv
import inspect
import io
import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from click.testing import CliRunner
from mephisto.abstractions.databases.local_database import LocalMephistoDB

from conftest import grant, worker
from mephisto_quals.admin import grants, queries
from mephisto_quals.admin.grants import os_user
from mephisto_quals.cli.main import cli as root

EXE = Path(sys.executable).with_name("mephisto-quals")
COMMANDS = ["grant", "revoke", "list", "show", "import", "export", "explain", "forecast", "history", "prune",
            "review", "reset-onboarding"]
PROVIDER_COMMANDS = ["sync", "qual-types", "requests", "export-prolific"]
CONFIG_YAML = """
mephisto:
  blueprint:
    _blueprint_type: mock_quals
    block_qualification: task-block
    quals:
      allowlists: [allow]
      requirements:
        - {qualification: score, comparator: ">=", value: 3}
      mturk:
        system:
          masters: true
  provider:
    _provider_type: mock
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """stdout + stderr with rich's panel borders and line breaks folded into single spaces."""
        return " ".join(re.sub(r"[│╭╮╰╯─]", " ", self.out + "\n" + self.err).split())


def separate_runner() -> CliRunner:
    """A CliRunner keeping stdout and stderr apart on every click version.

    click < 8.2 mixes them unless ``mix_stderr=False``; click 8.2 dropped the argument and
    always keeps ``result.stderr`` apart.
    """
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


Run = Callable[..., Result]


@pytest.fixture
def run_cli() -> Run:
    """Run the root group in-process: ``run_cli(*args, env={...}, stdin=..., obj=...)``; MEPHISTO_QUALS_DB
    unset unless given; ``obj`` may inject a stubbed MTurk client. stdin is empty, so a prompt would
    abort. An unexpected exception fails the test."""

    def run(*args: str, stdin: Optional[str] = None, env: Optional[Dict[str, Optional[str]]] = None,
            obj: Optional[Dict[str, Any]] = None) -> Result:
        environment: Dict[str, Optional[str]] = {"COLUMNS": "250", "MEPHISTO_QUALS_DB": None, **(env or {})}
        result = separate_runner().invoke(root, list(args), input=stdin, env=environment, obj=obj,
                                          prog_name="mephisto-quals")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Result(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def cli(run_cli: Run, db: LocalMephistoDB) -> Run:
    """``mephisto-quals ARGS --db <the test DB>`` in-process (``use_db=False`` leaves --db out)."""

    def run(*args: str, use_db: bool = True, stdin: Optional[str] = None,
            env: Optional[Dict[str, Optional[str]]] = None, obj: Optional[Dict[str, Any]] = None) -> Result:
        return run_cli(*args, *(["--db", db.db_path] if use_db else []), stdin=stdin, env=env, obj=obj)

    return run


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def script(home: Path) -> Run:
    """Run the installed ``mephisto-quals ARGS`` in a subprocess with its own HOME; stdin is closed."""

    def run(*args: str, exe: Optional[List[str]] = None, timeout: float = 60) -> Result:
        env = {**os.environ, "HOME": str(home), "COLUMNS": "250"}
        env.pop("MEPHISTO_QUALS_DB", None)
        proc = subprocess.run([*(exe or [str(EXE)]), *args], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def mephisto_config() -> Iterator[Callable[[Optional[str]], None]]:
    """Set (or clear) core.main_data_directory in Mephisto's config of this test process; restored after."""
    from mephisto.operations.config_handler import DEFAULT_CONFIG_FILE, add_config_arg, get_config, write_config

    config = Path(DEFAULT_CONFIG_FILE)
    saved = config.read_text() if config.exists() else None

    def set_data_dir(data_dir: Optional[str]) -> None:
        if data_dir is None:
            data = get_config() or {}
            data.get("core", {}).pop("main_data_directory", None)
            write_config(data)
        else:
            add_config_arg("core", "main_data_directory", data_dir)

    set_data_dir(None)
    yield set_data_dir
    if saved is None:
        config.unlink()
    else:
        config.write_text(saved)


def dump(db: LocalMephistoDB) -> List[str]:
    """Every row of every table, to prove a command wrote nothing (our empty tables may appear)."""
    conn = sqlite3.connect(db.db_path)
    try:
        return [line for line in conn.iterdump() if line.startswith("INSERT")]
    finally:
        conn.close()


def held(db: LocalMephistoDB, qualification: str) -> Dict[str, int]:
    """worker name -> value of the live grants of a qualification (read outside the CLI)."""
    return {h.worker_name: h.value for h in queries.holders(db, qualification)}


def qualification_names(db: LocalMephistoDB) -> List[str]:
    conn = sqlite3.connect(db.db_path)
    try:
        return [r[0] for r in conn.execute("SELECT qualification_name FROM qualifications ORDER BY 1")]
    finally:
        conn.close()


# --------------------------------------------------------------------------- the installed script (subprocess)


def test_top_level_help_is_fast_and_does_not_import_mephisto(script, home):
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        result = script("--help")
        timings.append(time.perf_counter() - start)
        assert result.code == 0, result.err
    assert min(timings) < 1.0, f"mephisto-quals --help took {min(timings):.2f}s"
    assert all(command in result.out for command in COMMANDS + PROVIDER_COMMANDS + ["wut"])
    # importing mephisto writes ~/.mephisto/config.yml: --help must not have done so
    assert not (home / ".mephisto").exists()


def test_python_m_lists_every_command(script, home):
    result = script("--help", exe=[sys.executable, "-m", "mephisto_quals.cli"])
    assert result.code == 0, result.err
    assert all(command in result.out for command in COMMANDS + PROVIDER_COMMANDS + ["wut"]), result.out
    assert not (home / ".mephisto").exists()


def test_script_grant_and_show_round_trip(script, db):
    worker(db, "alice")
    result = script("grant", "trusted", "alice", "--provider", "mock", "--create", "--reason", "smoke", "--db", db.db_path)
    assert result.code == 0, result.text
    assert "grant 'trusted': 1 granted" in result.out
    show = script("show", "trusted", "--db", db.db_path)
    assert show.code == 0, show.text
    line = next(line for line in show.out.splitlines() if "alice_sandbox" in line)
    assert "mock" in line and "smoke" in line, line
    assert held(db, "trusted") == {"alice_sandbox": 1}


def test_script_bad_input_exits_2_with_a_clean_message(script, db, tmp_path):
    worker(db, "alice")
    before = dump(db)
    result = script("grant", "nope", "alice", "--provider", "mock", "--db", db.db_path)
    assert result.code == 2, result.text
    assert "'nope' does not exist" in result.text and "--create" in result.text
    assert "Traceback" not in result.err
    missing = tmp_path / "missing.db"
    result = script("list", "--db", str(missing))
    assert result.code == 2 and f"--db {missing}: no such file" in result.text, result.text
    assert "Traceback" not in result.err
    assert dump(db) == before


def test_one_translation_of_errors_to_exit_codes():
    from botocore.exceptions import ClientError, EndpointConnectionError

    from mephisto_quals.admin.grants import UnknownQualificationError
    from mephisto_quals.cli.base import translate
    from mephisto_quals.errors import InputError, OperationFailed, QualsError

    refused = ClientError({"Error": {"Code": "RequestError", "Message": "no such worker"}}, "AssociateQualificationWithWorker")
    cases = [
        (InputError("bad input"), 2, "bad input"),
        (OperationFailed("it broke"), 1, "it broke"),
        (UnknownQualificationError("qualification 'q' does not exist"), 2, "qualification 'q' does not exist"),
        (ValueError("not a number"), 2, "not a number"),
        (sqlite3.OperationalError("database is locked"), 1, "database error: database is locked"),
        (refused, 1, "MTurk refused: RequestError: no such worker"),
        (EndpointConnectionError(endpoint_url="https://mturk.invalid"), 1, "could not reach MTurk"),
    ]
    for error, code, message in cases:
        failure = translate(error)
        assert failure is not None and failure.exit_code == code and message in failure.message, (error, failure)
    assert isinstance(InputError("x"), (QualsError, ValueError)) and isinstance(OperationFailed("x"), RuntimeError)
    assert translate(KeyError("a bug")) is None  # bugs keep their traceback


def test_an_mturk_failure_in_sync_exits_1_and_says_running_again_resumes(cli, db):
    import boto3
    from botocore.stub import Stubber
    from mephisto.abstractions.providers.mturk_sandbox.sandbox_mturk_requester import SandboxMTurkRequester

    from mephisto_quals.providers.mturk.client import SANDBOX_ENDPOINT

    SandboxMTurkRequester.new(db, "me")
    grant(db, "alice", "q")
    client = boto3.client("mturk", region_name="us-east-1", endpoint_url=SANDBOX_ENDPOINT,
                          aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("list_qualification_types", service_error_code="RequestError", service_message="no access")
        result = cli("sync", "apply", "q", "--requester", "me", obj={"mturk_client": client})
        stub.assert_no_pending_responses()
    assert result.code == 1, result.text
    assert "MTurk refused: RequestError: no access (run the command again to resume)" in result.text
    assert "Traceback" not in result.err


# --------------------------------------------------------------------------- help


def test_every_command_help_has_a_description_and_an_example(cli):
    for command in COMMANDS:
        result = cli(command, "--help", use_db=False)
        assert result.code == 0, (command, result.err)
        assert "Example" in result.out, command
        assert f"mephisto-quals {command}" in result.out, command


# --------------------------------------------------------------------------- grant / revoke / show / list


def test_grant_show_list_revoke(cli, db):
    worker(db, "alice")
    worker(db, "bob")
    result = cli("grant", "trusted", "alice", "bob", "--provider", "mock", "--create", "--reason", "pilot [ok]",
                 "--expires-in", "7d")
    assert result.code == 0, result.text
    assert "grant 'trusted': 2 granted" in result.out
    assert held(db, "trusted") == {"alice_sandbox": 1, "bob_sandbox": 1}

    # a worker Mephisto never saw gets a record, so the grant applies when they arrive
    result = cli("grant", "score", "carol", "--provider", "mock", "--value", "3", "--create")
    assert result.code == 0 and held(db, "score") == {"carol_sandbox": 3}
    carol = db.find_workers(worker_name="carol_sandbox")[0]
    # by Mephisto worker id, re-granting updates the value in place
    result = cli("grant", "score", carol.db_id, "--value", "4", "-v")
    assert result.code == 0 and "updated" in result.out and "3 → 4" in result.out
    assert held(db, "score") == {"carol_sandbox": 4}

    show = cli("show", "trusted")
    assert show.code == 0
    expiry = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 7 * 86400))
    for row in ("alice_sandbox", "bob_sandbox"):
        line = next(line for line in show.out.splitlines() if row in line)
        assert "mock" in line and expiry in line and "pilot [ok]" in line, line

    listing = cli("list")
    assert listing.code == 0
    assert re.search(r"score\s+1\s+0", listing.out) and re.search(r"trusted\s+2\s+0", listing.out), listing.out

    result = cli("revoke", "trusted", "bob", "never-seen", "--provider", "mock", "--reason", "left the lab")
    assert result.code == 0, result.text
    assert "revoke 'trusted': 1 not held, 1 revoked" in result.out
    assert held(db, "trusted") == {"alice_sandbox": 1}


def test_unknown_qualification_is_a_clear_error_unless_create(cli, db, tmp_path):
    alice = worker(db, "alice")
    before = dump(db)
    (tmp_path / "in.csv").write_text("worker\n1\n")
    for args in (("grant", "nope", alice.db_id), ("revoke", "nope", alice.db_id), ("show", "nope"),
                 ("export", "nope"), ("import", "nope", str(tmp_path / "in.csv")),
                 ("reset-onboarding", "nope", alice.db_id)):
        result = cli(*args)
        assert result.code == 2, (args, result.text)
        assert "'nope' does not exist" in result.text, (args, result.text)
        assert "Traceback" not in result.err
    assert "--create" in cli("grant", "nope", alice.db_id).text
    assert dump(db) == before
    result = cli("grant", "nope", alice.db_id, "--create")
    assert result.code == 0 and held(db, "nope") == {"alice_sandbox": 1}


def test_bad_options_exit_2_and_write_nothing(cli, db):
    worker(db, "alice")
    grant(db, "alice", "q")
    before = dump(db)
    cases = [
        (("grant", "q", "alice", "--provider", "mock", "--expires-in", "7 days"), "not a duration"),
        (("grant", "q", "alice", "--provider", "mock", "--expires-at", "2001-01-01"), "in the past"),
        (("grant", "q", "alice", "--provider", "mock", "--expires-in", "7d", "--expires-at", "2099-01-01"), "not both"),
        (("grant", "q", "alice", "--provider", "nowhere"), "nowhere"),
        (("grant", "q"), "at least one worker"),
        (("explain", "alice", "--provider", "mock"), "--task NAME or --config FILE"),
        (("forecast", "--task", "ghost-task"), "task 'ghost-task' has no runs"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.code == 2, (args, result.text)
        assert message in result.text, (args, result.text)
    assert dump(db) == before


def test_partial_failure_exits_1_and_keeps_the_successful_grants(cli, db, tmp_path):
    alice, bob = worker(db, "alice"), worker(db, "bob")
    ids = tmp_path / "ids.txt"
    ids.write_text(f"# workers to trust\n{alice.db_id}\n\n999999\n{bob.db_id}\nnot-an-id\n")
    result = cli("grant", "trusted", "--file", str(ids), "--create")
    assert result.code == 1, result.text
    assert "failed: 999999: no Mephisto worker has this id" in result.err
    assert "failed: not-an-id" in result.err
    assert "grant 'trusted': 2 failed, 2 granted" in result.out
    assert held(db, "trusted") == {"alice_sandbox": 1, "bob_sandbox": 1}


def test_dry_run_writes_nothing(cli, db, tmp_path):
    worker(db, "alice")
    grant(db, "alice", "onb")
    grant(db, "alice", "onb-failed")
    grants.grant(db, "temp", ["alice"], provider="mock", create=True, expires_in="1h", now=time.time() - 7200)  # expired
    before = dump(db)
    (tmp_path / "in.csv").write_text("worker,value\nalice,5\nnewcomer,2\n")
    runs = [
        ("grant", "fresh", "alice", "dave", "--provider", "mock", "--create", "--dry-run"),
        ("import", "fresh", str(tmp_path / "in.csv"), "--provider", "mock", "--create", "--dry-run"),
        ("revoke", "onb", "alice", "--provider", "mock", "--dry-run"),
        ("reset-onboarding", "onb", "alice", "--provider", "mock", "--dry-run"),
        ("prune", "--dry-run"),
    ]
    for args in runs:
        result = cli(*args)
        assert result.code == 0, (args, result.text)
        assert "dry run, nothing written" in result.out, (args, result.out)
    grant_run = cli(*runs[0])
    assert "would be granted: dave" in grant_run.out and "would be granted: alice" in grant_run.out
    assert dump(db) == before
    assert "fresh" not in qualification_names(db) and not db.find_workers(worker_name="dave_sandbox")


# --------------------------------------------------------------------------- CSV import / export


def test_export_import_round_trip(cli, db, tmp_path):
    worker(db, "alice")
    assert cli("grant", "gold", "alice", "bob", "--provider", "mock", "--create", "--value", "3",
               "--expires-at", "2099-06-30T12:00:00+00:00", "--reason", "gold, \"standard\"").code == 0
    assert cli("grant", "gold", "A1B2C3D4E5", "--provider", "mturk_sandbox", "--value", "7").code == 0
    exported = tmp_path / "gold.csv"
    result = cli("export", "gold", "--output", str(exported))
    assert result.code == 0, result.text
    rows = list(csv.DictReader(io.StringIO(exported.read_text())))
    assert exported.read_text().splitlines()[0] == "worker,worker_id,provider,value,expires_at,reason"
    by_worker = {r["worker"]: r for r in rows}
    assert set(by_worker) == {"alice", "bob", "A1B2C3D4E5"}  # provider names, without Mephisto's _sandbox
    assert by_worker["alice"]["provider"] == "mock" and by_worker["alice"]["value"] == "3"
    assert by_worker["alice"]["expires_at"].startswith("2099-06-30T12:00:00")
    assert by_worker["alice"]["reason"] == 'gold, "standard"'
    assert by_worker["A1B2C3D4E5"] == {**by_worker["A1B2C3D4E5"], "provider": "mturk_sandbox", "value": "7",
                                       "expires_at": "", "reason": ""}
    assert cli("export", "gold").out == exported.read_text()  # stdout by default

    # the same file into the same database changes nothing
    again = cli("import", "gold", str(exported))
    assert again.code == 0 and "grant 'gold': 3 unchanged" in again.out, again.text

    # and into another database recreates the same grants (workers named by provider name)
    other = LocalMephistoDB(database_path=str(tmp_path / "other.db"))
    try:
        result = cli("import", "gold", str(exported), "--create", "--db", other.db_path, "--progress", use_db=False)
        assert result.code == 0 and "3 granted" in result.out, result.text
        assert "100%" in result.err  # the progress bar, forced on (stderr is not a terminal here)
        ours = {(h.worker_name, h.provider_type, h.value, h.expires_at, h.reason) for h in queries.holders(db, "gold")}
        theirs = {(h.worker_name, h.provider_type, h.value, h.expires_at, h.reason) for h in queries.holders(other, "gold")}
        assert theirs == ours
    finally:
        other.shutdown()


def test_import_per_row_values_expiry_and_reason(cli, db, tmp_path):
    worker(db, "alice")
    grant(db, "alice", "score", 1)
    bob = worker(db, "bob")
    path = tmp_path / "scores.csv"
    path.write_text(
        "worker,value,expires_at,reason\n"
        "alice,5,2099-01-01,double checked\n"
        "carol,2,,\n"
        "alice,5,2099-01-01,double checked\n"  # an exact repeat is harmless
    )
    result = cli("import", "score", str(path), "--provider", "mock", "--reason", "batch 7")
    assert result.code == 0, result.text
    assert "grant 'score': 1 granted, 1 updated" in result.out
    got = {h.worker_name: (h.value, h.expires, h.reason) for h in queries.holders(db, "score")}
    assert got == {"alice_sandbox": (5, "2099-01-01T00:00:00+00:00", "double checked"),
                   "carol_sandbox": (2, "", "batch 7")}
    # worker_id column: Mephisto ids; value defaults to 1
    (tmp_path / "ids.csv").write_text(f"worker_id\n{bob.db_id}\n")
    assert cli("import", "score", str(tmp_path / "ids.csv")).code == 0
    assert held(db, "score")["bob_sandbox"] == 1


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            "worker,value,expires_at,reason\n"
            "alice,9,,\n"          # line 2: fine
            ",3,,\n"               # line 3: empty id
            "bob,lots,,\n"         # line 4: bad value
            "carol,1,someday,\n"   # line 5: bad date
            "alice,8,,\n"          # line 6: conflicts with line 2
            "dave,1,2001-01-01,\n"  # line 7: expiry in the past
            "erin,1,,,extra\n",    # line 8: too many fields
            ["line 3: empty worker id", "line 4: value 'lots' is not an integer", "line 5: expires_at: 'someday'",
             "line 6: worker 'alice': also on line 2", "line 7: expires_at '2001-01-01' is in the past",
             "line 8: 5 fields", "6 bad line(s)"],
        ),
        ("wrker,value\nalice,9\n", ["line 1: bad CSV header", "'wrker'"]),
        ("alice,9\nbob,3\n", ["line 1: bad CSV header", "no 'worker' or 'worker_id' column"]),
        ("", ["the CSV is empty"]),
    ],
    ids=["bad-rows", "wrong-header", "missing-header", "empty"],
)
def test_import_refuses_a_bad_csv_whole(cli, db, tmp_path, content, expected):
    worker(db, "alice")
    grant(db, "alice", "score", 1)
    before = dump(db)
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = cli("import", "score", str(path), "--provider", "mock")
    assert result.code == 2, result.text
    for phrase in expected:
        assert phrase in result.text, (phrase, result.text)
    assert result.text.count("Error") == 1  # one error, every bad line in it
    assert dump(db) == before and held(db, "score") == {"alice_sandbox": 1}


# --------------------------------------------------------------------------- explain / forecast


def test_explain_and_forecast_from_a_config_file(cli, db, tmp_path):
    config = tmp_path / "task.yaml"
    config.write_text(CONFIG_YAML)
    for name, score in (("ann", 5), ("ben", 3), ("cat", 1)):
        grant(db, name, "allow")
        grant(db, name, "score", score)
    grant(db, "ben", "task-block")

    result = cli("explain", "ann", "--provider", "mock", "--config", str(config))
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    assert any(re.search(r"local\s+allow exists\s+mephisto\.blueprint\.quals\.allowlists\[0\]\s+1\s+pass", x) for x in lines)
    assert any(re.search(r"local\s+score >= 3\s+mephisto\.blueprint\.quals\.requirements\[0\]\s+5\s+pass", x) for x in lines)
    assert any(re.search(r"mephisto\s+task-block not exists\s+\S+block_qualification\s+not held\s+pass", x) for x in lines)
    assert any(re.search(r"mturk\s+Masters.*only MTurk knows\s+unknown", x) for x in lines)
    assert "local verdict: PASS" in result.out and "5%" in result.out

    failing = cli("explain", "cat", "--provider", "mock", "--config", str(config))
    assert failing.code == 0 and "local verdict: FAIL (fails: score >= 3)" in failing.out, failing.text

    forecast = cli("forecast", "--config", str(config))
    assert forecast.code == 0, forecast.text
    assert "1 of 3 known mock worker(s) pass every local requirement" in forecast.out
    assert re.search(r"score >= 3\s+\S+requirements\[0\]\s+2 of 3", forecast.out), forecast.out
    assert re.search(r"task-block not exists\s+\S+\s+2 of 3", forecast.out), forecast.out
    assert "5%" in forecast.out and "WARNING" not in forecast.out


def test_forecast_warns_prominently_when_nobody_passes(cli, db, tmp_path):
    worker(db, "lonely")
    config = tmp_path / "task.yaml"
    config.write_text(CONFIG_YAML)
    result = cli("forecast", "--config", str(config))
    assert result.code == 0, result.text
    assert "0 of 1 known mock worker(s)" in result.out
    assert "WARNING: no known worker passes every local requirement" in result.out


# --------------------------------------------------------------------------- history / prune / onboarding


def test_history_shows_cli_changes(cli, db):
    worker(db, "alice")
    worker(db, "bob")
    assert cli("grant", "trusted", "alice", "bob", "--provider", "mock", "--create", "--reason", "pilot").code == 0
    assert cli("revoke", "trusted", "alice", "--provider", "mock", "--reason", "spam").code == 0
    result = cli("history", "--qualification", "trusted")
    assert result.code == 0, result.text
    lines = [line for line in result.out.splitlines() if "trusted" in line]
    assert len(lines) == 3
    assert re.search(r"trusted\s+alice_sandbox \(\d+\)\s+1 → -\s+revoke\s+spam\s+cli\s+" + re.escape(os_user()), lines[0])
    assert all(re.search(r"- → 1\s+grant\s+pilot\s+cli", line) for line in lines[1:])
    only_bob = cli("history", "--worker", "bob_sandbox")
    assert "bob_sandbox" in only_bob.out and "alice_sandbox" not in only_bob.out
    newest = cli("history", "--limit", "1")
    assert len([line for line in newest.out.splitlines() if "trusted" in line]) == 1 and "revoke" in newest.out


def test_prune_removes_expired_grants(cli, db):
    worker(db, "alice")
    worker(db, "bob")
    grants.grant(db, "temp", ["alice"], provider="mock", create=True, expires_in="1h", now=time.time() - 7200)
    grants.grant(db, "temp", ["bob"], provider="mock", expires_in="1h")
    assert re.search(r"temp\s+1\s+1", cli("list").out)
    dry = cli("prune", "--dry-run")
    assert dry.code == 0 and "alice_sandbox" in dry.out and "bob_sandbox" not in dry.out
    assert "prune '*': 1 pruned" in dry.out
    assert len(queries.holders(db, "temp", include_expired=True)) == 2
    result = cli("prune")
    assert result.code == 0 and "prune '*': 1 pruned" in result.out, result.text
    assert {h.worker_name for h in queries.holders(db, "temp", include_expired=True)} == {"bob_sandbox"}
    assert "expire" in cli("history", "--qualification", "temp").out


def test_reset_onboarding(cli, db):
    passed, failed, other = worker(db, "passed"), worker(db, "failed"), worker(db, "other")
    grant(db, "passed", "onb")
    grant(db, "failed", "onb-failed")
    grant(db, "other", "onb")
    result = cli("reset-onboarding", "onb", "passed", "failed", "--provider", "mock", "--reason", "retake")
    assert result.code == 0, result.text
    assert "reset-onboarding 'onb': 2 revoked" in result.out
    assert passed.get_granted_qualification("onb") is None
    assert failed.get_granted_qualification("onb-failed") is None
    assert other.get_granted_qualification("onb") is not None
    # an onboarding nobody ever failed (no '-failed' list in the DB) resets too
    grant(db, "other", "onb2")
    result = cli("reset-onboarding", "onb2", other.db_id)
    assert result.code == 0 and "1 revoked" in result.out, result.text


# --------------------------------------------------------------------------- finding the database


def test_without_db_and_without_a_data_dir_exits_2_without_prompting(cli, db, mephisto_config):
    result = cli("list", use_db=False)
    assert result.code == 2, result.text
    assert "pass --db" in result.text and "mephisto config core.main_data_directory DIR" in result.text
    assert "MEPHISTO_QUALS_DB" in result.text
    # once Mephisto's config names the data directory, its database.db is used
    grant(db, "alice", "found-it")
    mephisto_config(str(Path(db.db_path).parent))
    result = cli("list", use_db=False)
    assert result.code == 0 and "found-it" in result.out, result.text


#: One command of each group, and what it prints once it has found the test database.
FOUND = {
    "queries": (["list"], 0, "found-it"),
    "grants": (["grant", "found-it", "bob", "--provider", "mock"], 0, "grant 'found-it': 1 granted"),
    "eligibility": (["forecast", "--task", "ghost-task"], 2, "task 'ghost-task' has no runs"),
    "mturk": (["sync", "plan", "found-it", "--requester", "nobody"], 2, "no MTurk requester 'nobody'"),
    "prolific": (["export-prolific", "found-it"], 2, "no Prolific participant holds 'found-it'"),
}


@pytest.mark.parametrize("source", ["--db", "env", "config"])
@pytest.mark.parametrize("group", sorted(FOUND))
def test_every_group_finds_the_database_the_same_way(run_cli, db, tmp_path, mephisto_config, group, source):
    args, code, expected = FOUND[group]
    grant(db, "alice", "found-it")
    decoy = LocalMephistoDB(database_path=str(tmp_path / "decoy.db"))  # a database --db beats the others with
    decoy.shutdown()
    env: Dict[str, Optional[str]] = {}
    if source == "--db":
        args = [*args, "--db", db.db_path]
        env["MEPHISTO_QUALS_DB"] = decoy.db_path  # --db wins over the environment
    elif source == "env":
        env["MEPHISTO_QUALS_DB"] = db.db_path
        mephisto_config(str(tmp_path))  # the environment wins over Mephisto's config (decoy.db is not database.db)
    else:
        mephisto_config(str(Path(db.db_path).parent))
    result = run_cli(*args, env=env)
    assert result.code == code and expected in result.text, result.text
    if group == "grants":
        assert held(db, "found-it") == {"alice_sandbox": 1, "bob_sandbox": 1}


@pytest.mark.parametrize("source", ["--db", "env", "config"])
@pytest.mark.parametrize("group", sorted(FOUND))
def test_a_missing_database_exits_2_naming_the_path(run_cli, db, tmp_path, mephisto_config, group, source):
    args, _, _ = FOUND[group]
    missing = tmp_path / "nowhere" / "database.db"
    env: Dict[str, Optional[str]] = {}
    if source == "--db":
        args, message = [*args, "--db", str(missing)], f"--db {missing}: no such file"
    elif source == "env":
        env["MEPHISTO_QUALS_DB"] = str(missing)
        message = f"$MEPHISTO_QUALS_DB={missing}: no such file"
    else:
        mephisto_config(str(missing.parent))
        message = f"no Mephisto database at {missing}"
    before = dump(db)
    result = run_cli(*args, env=env)
    assert result.code == 2, result.text
    assert message in result.text, result.text
    assert dump(db) == before and not missing.parent.exists()


# --------------------------------------------------------------------------- review


def reviewed_run(db: LocalMephistoDB, outcomes: Dict[str, str]) -> str:
    """A task run whose units were worked and reviewed: worker name -> agent status."""
    from mephisto.utils.testing import get_mock_requester

    requester = get_mock_requester(db)
    task_id = db.new_task("reviewed-task", "mock")
    run_id = db.new_task_run(task_id, requester.db_id, "{}", "mock", "mock", True)
    for name, status in outcomes.items():
        assignment = db.new_assignment(task_id, run_id, requester.db_id, "mock", "mock", True)
        unit = db.new_unit(task_id, run_id, requester.db_id, assignment, 0, 0.3, "mock", "mock", True)
        agent = db.new_agent(worker(db, name).db_id, unit, task_id, run_id, assignment, "mock", "mock")
        db.update_agent(agent, status=status)
    return run_id


def test_review_is_a_dry_run_until_apply(cli, db, tmp_path):
    pytest.importorskip("mephisto_quals.admin.review")
    run_id = reviewed_run(db, {"good": "approved", "bad": "rejected"})
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - when: approved\n    grant: trusted\n  - when: rejected\n    grant: blocked\n")
    before = dump(db)
    result = cli("review", "--task", "reviewed-task", "--rules", str(rules))
    assert result.code == 0, result.text
    assert re.search(r"rules\[0\]\s+trusted\s+good_sandbox \(\d+\)\s+- → 1\s+grant", result.out), result.out
    assert "dry run: nothing written" in result.out
    assert dump(db) == before
    result = cli("review", "--run", run_id, "--rules", str(rules), "--apply")
    assert result.code == 0, result.text
    assert held(db, "trusted") == {"good_sandbox": 1} and held(db, "blocked") == {"bad_sandbox": 1}
    bad_rules = tmp_path / "bad.yaml"
    bad_rules.write_text("rules:\n  - when: sometimes\n    grant: trusted\n")
    result = cli("review", "--task", "reviewed-task", "--rules", str(bad_rules))
    assert result.code == 2 and "rules[0].when" in result.text, result.text


def test_export_format_prolific_gives_a_requirement_for_the_quals_node(cli, db):
    import yaml

    from mephisto_quals.compile.plan import plan_from_quals

    ids = ["0123456789abcdef01234567", "89abcdef0123456789abcdef"]
    assert cli("grant", "vetted", *ids, "--provider", "prolific", "--create").code == 0
    done = cli("export", "vetted", "--format", "prolific")
    assert done.code == 0, done.err
    reqs = yaml.safe_load(done.out)
    assert reqs == [{"filter": "custom_allowlist", "values": sorted(ids)}]
    assert plan_from_quals({"prolific": reqs}).prolific == [{"filter_id": "custom_allowlist", "selected_values": sorted(ids)}]
    blocked = yaml.safe_load(cli("export", "vetted", "--format", "prolific", "--block").out)
    assert blocked[0]["filter"] == "custom_blocklist"


def test_wut_shows_the_quals_field_with_help(cli):
    done = cli("wut", "blueprint=static_task_quals", use_db=False)
    assert done.code == 0, done.err
    assert "QualsConfig" in done.text and "Qualification control from mephisto-quals" in done.text
