"""The data layer on a real LocalMephistoDB: read-only sessions, schema versions and migrations,
transactions that compose, and grant meta that belongs to one grant row."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import pytest

from conftest import worker
from mephisto_quals.admin import grants, queries
from mephisto_quals.compile.requirements import Requirement
from mephisto_quals.errors import DatabaseError, SchemaError
from mephisto_quals.integration.gate import check_worker
from mephisto_quals.store import Session, schema
from mephisto_quals.store import grants as grant_store

MEPHISTO_TABLES = ("workers", "qualifications", "granted_qualifications", "units", "agents", "tasks", "task_runs")

#: The 0.1 layout of our tables, as mephisto-quals 0.1.0 created it (its audit view joined ``workers``).
LAYOUT_0_1 = [
    """CREATE TABLE mephisto_quals_grant_meta (granted_qualification_id INTEGER PRIMARY KEY, worker_id INTEGER NOT NULL,
       qualification_id INTEGER NOT NULL, expires_at REAL, reason TEXT, granted_at REAL NOT NULL)""",
    """CREATE TABLE mephisto_quals_audit_batch (batch_id INTEGER PRIMARY KEY, at REAL NOT NULL, qualification TEXT NOT NULL,
       action TEXT NOT NULL, expires_at REAL, reason TEXT, source TEXT NOT NULL, os_user TEXT NOT NULL)""",
    """CREATE TABLE mephisto_quals_audit_change (change_id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL,
       worker_id INTEGER NOT NULL, old_value INTEGER, new_value INTEGER)""",
    """CREATE VIEW mephisto_quals_audit AS
       SELECT c.change_id AS audit_id, b.at, b.qualification, c.worker_id, w.worker_name, b.action,
              c.old_value, c.new_value, b.expires_at, b.reason, b.source, b.os_user
       FROM mephisto_quals_audit_change c JOIN mephisto_quals_audit_batch b ON b.batch_id = c.batch_id
       LEFT JOIN workers w ON w.worker_id = c.worker_id""",
]


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ours_naming_mephisto(path: str) -> List[str]:
    """Views and triggers of ours whose SQL names a Mephisto table."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('view', 'trigger') AND name LIKE 'mephisto_quals%'"
        ).fetchall()
    return [name for name, sql in rows if any(f" {t}" in sql.lower() or f".{t}" in sql.lower() for t in MEPHISTO_TABLES)]


def test_a_read_only_session_on_an_untouched_database_reads_empty_tables_and_writes_nothing(db):
    alice = worker(db, "alice")
    db.grant_qualification(db.make_qualification("trusted"), alice.db_id, 1)
    before = digest(db.db_path)
    with Session.open(db, readonly=True) as s:
        assert schema.schema_version(s.conn) is None  # we never wrote here
        assert [h.worker_name for h in queries.holders(db, "trusted", session=s)] == ["alice_sandbox"]
        assert queries.history(db, session=s) == []
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            s.conn.execute("DELETE FROM granted_qualifications")
    assert [q.holders for q in queries.list_qualifications(db)] == [1]
    assert check_worker(db.db_path, alice.db_id, [Requirement("trusted", "Exists", None, "", "")])[0].passed
    assert digest(db.db_path) == before


def test_missing_or_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(DatabaseError, match="no Mephisto database at"):
        Session.open(tmp_path / "nope.db")
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all " * 100)
    with pytest.raises(DatabaseError, match="not a readable SQLite database"):
        Session.open(text, readonly=True)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(DatabaseError, match="not a Mephisto database"):
        Session.open(empty)


def test_transactions_compose_and_roll_back_as_one(db):
    worker(db, "alice")
    with Session.open(db) as s:
        with pytest.raises(RuntimeError):
            with s.transaction():
                grants.grant(db, "a", ["alice"], provider="mock", create=True, session=s)
                grants.grant(db, "b", ["alice"], provider="mock", create=True, session=s)
                raise RuntimeError("after both grants")
        assert queries.list_qualifications(db) == []
        with s.transaction():
            grants.grant(db, "a", ["alice"], provider="mock", create=True, session=s)
            grants.grant(db, "b", ["alice"], provider="mock", create=True, session=s)
    assert [(q.name, q.holders) for q in queries.list_qualifications(db)] == [("a", 1), ("b", 1)]
    assert len(queries.history(db)) == 2


def _make_0_1_database(db, tmp_path: Path) -> None:
    """Our tables as 0.1 left them, with a grant that has an expiry and an audit row."""
    alice = worker(db, "alice")
    qid = db.make_qualification("trusted")
    db.grant_qualification(qid, alice.db_id, 1)
    with sqlite3.connect(db.db_path) as conn:
        for statement in LAYOUT_0_1:
            conn.execute(statement)
        row_id = conn.execute("SELECT granted_qualification_id FROM granted_qualifications").fetchone()[0]
        conn.execute("INSERT INTO mephisto_quals_grant_meta VALUES (?, ?, ?, ?, ?, ?)",
                     (row_id, alice.db_id, qid, time.time() + 3600, "pilot", time.time()))
        conn.execute("INSERT INTO mephisto_quals_audit_batch VALUES (1, ?, 'trusted', 'grant', NULL, 'pilot', 'api', 'me')",
                     (time.time(),))
        conn.execute("INSERT INTO mephisto_quals_audit_change VALUES (1, 1, ?, NULL, 1)", (alice.db_id,))


def test_a_0_1_database_is_refused_read_only_and_migrated_by_writers_keeping_every_row(db, tmp_path):
    _make_0_1_database(db, tmp_path)
    assert ours_naming_mephisto(db.db_path) == ["mephisto_quals_audit"]
    with pytest.raises(SchemaError, match="mephisto-quals migrate"):
        queries.history(db)
    Session.open(db).close()
    assert ours_naming_mephisto(db.db_path) == []
    with Session.open(db, readonly=True) as s:
        assert schema.schema_version(s.conn) == schema.SCHEMA_VERSION
    [entry] = queries.history(db)
    assert (entry.worker_name, entry.new_value, entry.reason) == ("alice_sandbox", 1, "pilot")
    [holder] = queries.holders(db, "trusted")
    assert holder.reason == "pilot" and holder.expires_at is not None  # the expiry still belongs to the grant
    later = holder.expires_at + 1
    assert queries.holders(db, "trusted", now=later) == []


def test_migrate_command_reports_and_upgrades(db, tmp_path):
    _make_0_1_database(db, tmp_path)
    from click.testing import CliRunner

    from mephisto_quals.cli.main import cli

    runner = CliRunner()
    dry = runner.invoke(cli, ["migrate", "--dry-run", "--db", db.db_path])
    assert dry.exit_code == 0, dry.output
    assert f"from schema version 1 to {schema.SCHEMA_VERSION}" in dry.output and ours_naming_mephisto(db.db_path)
    done = runner.invoke(cli, ["migrate", "--db", db.db_path])
    assert done.exit_code == 0 and "upgraded" in done.output and ours_naming_mephisto(db.db_path) == []
    again = runner.invoke(cli, ["migrate", "--db", db.db_path])
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_migrate_rebuilds_our_index_that_a_mephisto_table_rebuild_dropped(db):
    """Mephisto 1.4+'s first migration rebuilds granted_qualifications, and our index goes with it."""
    from click.testing import CliRunner

    from mephisto_quals.cli.main import cli

    grants.grant(db, "trusted", ["alice"], provider="mock", create=True)
    conn = sqlite3.connect(db.db_path)
    with conn:
        conn.execute(f"DROP INDEX {schema.GRANTS_INDEX}")
    conn.close()
    runner = CliRunner()
    dry = runner.invoke(cli, ["migrate", "--dry-run", "--db", db.db_path])
    assert dry.exit_code == 0 and schema.GRANTS_INDEX in dry.output and "would rebuild" in dry.output, dry.output
    done = runner.invoke(cli, ["migrate", "--db", db.db_path])
    assert done.exit_code == 0 and f"rebuilt our index {schema.GRANTS_INDEX}" in done.output, done.output
    with Session.open(db, readonly=True) as s:
        assert schema.has_grants_index(s.conn)
    again = runner.invoke(cli, ["migrate", "--db", db.db_path])
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_every_view_and_trigger_of_ours_names_only_our_tables(db):
    grants.grant(db, "q", ["alice"], provider="mock", create=True, expires_in="1d")
    with sqlite3.connect(db.db_path) as conn:
        ours = conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger') "
                            "AND name LIKE 'mephisto_quals%'").fetchall()
    assert {name for _, name in ours} >= {"mephisto_quals_audit", "mephisto_quals_schema"}
    assert ours_naming_mephisto(db.db_path) == []


def test_an_expiry_stays_with_its_grant_when_mephisto_reuses_the_row_id(db):
    """Mephisto 1.5 has no AUTOINCREMENT: a revoke and a re-grant can reuse the id. Done here by
    hand, the same on either Mephisto line: the new grant is permanent and prune leaves it."""
    alice = worker(db, "alice")
    grants.grant(db, "trusted", ["alice"], provider="mock", create=True, expires_in="1h")
    with sqlite3.connect(db.db_path) as conn:
        row_id, qid = conn.execute("SELECT granted_qualification_id, qualification_id FROM granted_qualifications").fetchone()
        conn.execute("DELETE FROM granted_qualifications WHERE granted_qualification_id = ?", (row_id,))
        conn.execute("INSERT INTO granted_qualifications (granted_qualification_id, worker_id, qualification_id, value,"
                     " creation_date) VALUES (?, ?, ?, 1, '2999-01-01 00:00:00')", (row_id, alice.db_id, qid))
    later = time.time() + 2 * 3600
    req = Requirement("trusted", "Exists", None, "", "")
    assert check_worker(db, alice.db_id, [req], now=later)[0].passed
    assert [h.expires_at for h in queries.holders(db, "trusted", now=later)] == [None]
    report = grants.prune(db, now=later)
    assert report.outcomes == []
    with Session.open(db, readonly=True) as s:
        assert grant_store.current(s.conn, qid, [int(alice.db_id)])[int(alice.db_id)].expires_at is None
        assert s.conn.execute("SELECT COUNT(*) FROM mephisto_quals_grant_meta").fetchone()[0] == 0  # stale meta gone


READ_COMMANDS = [["list"], ["show", "trusted"], ["history"], ["export", "trusted"]]


@contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """``folder`` seen through a path nobody may write: a read-only bind mount as root (root
    ignores file modes), file modes otherwise."""
    if os.getuid() != 0:
        for p in [*folder.iterdir(), folder]:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        try:
            yield folder
        finally:
            for p in [folder, *folder.iterdir()]:
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
        return
    view = folder.with_name(folder.name + "-ro")
    view.mkdir()
    mount = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.fail(f"cannot make a read-only view for this test (mount --bind as root failed: {mount.stderr.strip()})")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True, capture_output=True)
        yield view
    finally:
        subprocess.run(["umount", str(view)], capture_output=True)


@pytest.mark.subprocess
def test_read_commands_work_on_a_database_file_nobody_may_write(db, tmp_path):
    grants.grant(db, "trusted", ["alice"], provider="mock", create=True, reason="ok")
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(db.db_path, folder / "database.db")
    before = digest(str(folder / "database.db"))
    script = shutil.which("mephisto-quals") or str(Path(sys.executable).with_name("mephisto-quals"))
    env = {**os.environ, "HOME": str(tmp_path)}
    config = tmp_path / "task.yaml"
    config.write_text("mephisto:\n  blueprint:\n    quals: {allowlists: [trusted]}\n")
    commands = READ_COMMANDS + [["explain", "alice", "--provider", "mock", "--config", str(config)],
                                ["forecast", "--config", str(config)]]
    with read_only_folder(folder) as view:
        path = view / "database.db"
        with pytest.raises(OSError):
            path.open("r+b")
        for args in commands:
            proc = subprocess.run([script, *args, "--db", str(path)], env=env, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
            assert "Traceback" not in proc.stderr
            assert "alice" in proc.stdout or args[0] in ("list", "forecast"), (args, proc.stdout)
        write = subprocess.run([script, "grant", "trusted", "bob", "--provider", "mock", "--db", str(path)], env=env,
                               capture_output=True, text=True, timeout=60)
        assert write.returncode != 0 and "Traceback" not in write.stderr, write.stderr
    assert digest(str(folder / "database.db")) == before
