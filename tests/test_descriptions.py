"""Qualification descriptions (``qualifications.description``, Mephisto 1.5.2): set on creation with
``--description`` / ``description=``, shown by ``list`` and ``show``; on a database without the
column (Mephisto 1.1.1) a clear error and nothing written.

Which half runs depends on the database the installed Mephisto creates, detected from the
database itself (as the code does), so each line runs the half it can and skips the other.
"""

from __future__ import annotations

import inspect
import re
import sqlite3
from typing import Any, Callable, Dict, Optional

import pytest
from click.testing import CliRunner
from mephisto.abstractions.databases.local_database import LocalMephistoDB

from mephisto_quals.admin import grants, queries
from mephisto_quals.cli.main import cli as root
from mephisto_quals.errors import InputError
from mephisto_quals.store.mephisto import has_column


def supported(db: LocalMephistoDB) -> bool:
    conn = sqlite3.connect(db.db_path)
    try:
        return has_column(conn, "qualifications", "description")
    finally:
        conn.close()


@pytest.fixture
def described_db(db: LocalMephistoDB) -> LocalMephistoDB:
    if not supported(db):
        pytest.skip("this Mephisto's database has no qualifications.description column (Mephisto 1.5.2 adds it)")
    return db


@pytest.fixture
def plain_db(db: LocalMephistoDB) -> LocalMephistoDB:
    if supported(db):
        pytest.skip("this Mephisto's database keeps descriptions (1.5.2); the refusal is tested on 1.1.1")
    return db


Cli = Callable[..., Any]


@pytest.fixture
def cli(db: LocalMephistoDB) -> Cli:
    """``mephisto-quals ARGS --db <the test DB>`` in-process: (exit code, stdout + stderr, one line)."""

    def run(*args: str, stdin: Optional[str] = None) -> Any:
        runner = CliRunner(mix_stderr=False) if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters \
            else CliRunner()
        env: Dict[str, Optional[str]] = {"COLUMNS": "250", "MEPHISTO_QUALS_DB": None}
        result = runner.invoke(root, [*args, "--db", db.db_path], input=stdin, env=env, prog_name="mephisto-quals")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout + "\n" + result.stderr).split())
        return result.exit_code, text

    return run


def rows(db: LocalMephistoDB) -> Dict[str, list]:
    """What a grant could write: qualifications, grants, workers and our audit."""
    conn = sqlite3.connect(db.db_path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        out = {t: conn.execute(f"SELECT * FROM {t}").fetchall()
               for t in ("qualifications", "granted_qualifications", "workers")}
        out["audit"] = conn.execute("SELECT * FROM mephisto_quals_audit").fetchall() \
            if "mephisto_quals_audit" in tables else []
        return out
    finally:
        conn.close()


# ------------------------------------------------------------------ Mephisto 1.5.2: descriptions kept


def test_grant_create_description_is_stored_as_mephisto_stores_it_and_listed(described_db, cli):
    code, text = cli("grant", "pilot", "alice", "--provider", "mock", "--create", "--description", "passed the pilot")
    assert code == 0, text
    # Mephisto's own model reads it back (what the review app shows).
    (qual,) = described_db.find_qualifications("pilot")
    assert qual.description == "passed the pilot"
    code, text = cli("list")
    assert code == 0 and "description" in text and "pilot 1 0 passed the pilot" in text, text
    code, text = cli("show", "pilot")
    assert code == 0 and "pilot: passed the pilot" in text and "alice_sandbox" in text, text
    assert [(q.name, q.description) for q in queries.list_qualifications(described_db)] == [("pilot", "passed the pilot")]
    assert queries.description(described_db, "pilot") == "passed the pilot"


def test_import_create_description_and_api_description(described_db, cli, tmp_path):
    csv_file = tmp_path / "scores.csv"
    csv_file.write_text("worker,value\nalice,3\nbob,5\n")
    code, text = cli("import", "score", str(csv_file), "--provider", "mock", "--create", "--description", "gold score")
    assert code == 0, text
    assert described_db.find_qualifications("score")[0].description == "gold score"

    long = "x" * 600
    report = grants.grant(described_db, "api-made", ["carol"], provider="mock", create=True, description=long)
    assert report.ok
    assert described_db.find_qualifications("api-made")[0].description == "x" * 500  # Mephisto's CHAR(500) cut
    # An existing qualification keeps its description: it is set on creation only.
    grants.grant(described_db, "api-made", ["dave"], provider="mock", create=True, description="other")
    assert queries.description(described_db, "api-made") == "x" * 500


def test_list_without_any_description_has_no_description_column(described_db, cli):
    assert cli("grant", "plain", "alice", "--provider", "mock", "--create")[0] == 0
    code, text = cli("list")
    assert code == 0 and "plain" in text and "description" not in text, text
    assert "plain:" not in cli("show", "plain")[1]


# ------------------------------------------------------------------ either line: description needs --create


def test_description_without_create_is_refused_and_writes_nothing(db, cli):
    before = rows(db)
    code, text = cli("grant", "pilot", "alice", "--provider", "mock", "--description", "why")
    assert code == 2, text
    assert "set when a qualification is created" in text and "--create" in text, text
    after = rows(db)
    assert (after["qualifications"], after["granted_qualifications"], after["workers"], after["audit"]) == (
        before["qualifications"], before["granted_qualifications"], before["workers"], [])


# ------------------------------------------------------------------ Mephisto 1.1.1: no description column


def test_description_on_a_database_without_the_column_is_a_clear_error(plain_db, cli, tmp_path):
    before = rows(plain_db)
    code, text = cli("grant", "pilot", "alice", "--provider", "mock", "--create", "--description", "passed the pilot")
    assert code == 2, text
    assert "no description column" in text and "Mephisto 1.5.2" in text and "nothing was written" in text, text
    csv_file = tmp_path / "scores.csv"
    csv_file.write_text("worker,value\nalice,3\n")
    code, text = cli("import", "score", str(csv_file), "--provider", "mock", "--create", "--description", "gold")
    assert code == 2 and "no description column" in text, text
    with pytest.raises(InputError, match="no description column"):
        grants.grant(plain_db, "pilot", ["alice"], provider="mock", create=True, description="x")
    after = rows(plain_db)
    assert after["qualifications"] == before["qualifications"] == []
    assert after["granted_qualifications"] == [] and after["workers"] == [] and after["audit"] == []
    # Without a description it works, and list shows no description column.
    assert cli("grant", "pilot", "alice", "--provider", "mock", "--create")[0] == 0
    code, text = cli("list")
    assert code == 0 and "pilot" in text and "description" not in text
    assert queries.list_qualifications(plain_db)[0].description is None
    assert queries.description(plain_db, "pilot") is None
