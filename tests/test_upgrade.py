"""Upgrading Mephisto under a database the plugin used: every row survives, nothing half-migrates.

Mephisto 1.4+ rebuilds its tables on the first open (migration ``20240418_data_porter_feature``,
each table: create ``_x``, copy, drop ``x``, rename ``_x`` to ``x``). A view or trigger of ours
that names a Mephisto table makes the rename fail; the migration is then recorded ``errored``,
never retried, and ``workers`` is left renamed ``_workers``. The tests that need 1.1.1's database
shape on the 1.5.2 leg build it with a script run under the 1.1.1 line (``MEPHISTO=1.1.1 ./run
python``, which sets that venv up if it is missing). On the 1.1.1 leg those skip with a printed
reason; the tests below them (schema objects, an emulated table rebuild, Mephisto first and our
tables second) run on both lines.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from mephisto.abstractions.databases.local_database import LocalMephistoDB

from mephisto_quals.admin import grants
from mephisto_quals.admin.eligibility import eligible_counts
from mephisto_quals.compile import comparators as cmp
from mephisto_quals.compile.requirements import Requirement
from mephisto_quals.integration import gate
from mephisto_quals.integration.mixin import holder_count
from mephisto_quals.store.mephisto import RANDOM_ID_RANGE, mephisto_migrations, uses_random_ids
from mephisto_quals.store.schema import SCHEMA_VERSION, has_grants_index, schema_version
from mephisto_quals.store.session import Session

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = mephisto_migrations()
T0 = 1_900_000_000.0  # the builder's clock for expiries

needs_migrating_mephisto = pytest.mark.skipif(
    not MIGRATIONS,
    reason="needs a Mephisto that migrates databases on open (1.4+): runs on the 1.5.2 leg (MEPHISTO=1.5.2)",
)

#: mephisto-quals 0.1's objects (git 7730bd6, mephisto_quals/store.py SCHEMA): the audit view
#: joined Mephisto's ``workers``, which breaks Mephisto 1.4+'s first migration.
LAYOUT_0_1 = [
    """CREATE TABLE mephisto_quals_grant_meta (granted_qualification_id INTEGER PRIMARY KEY, worker_id INTEGER NOT NULL,
       qualification_id INTEGER NOT NULL, expires_at REAL, reason TEXT, granted_at REAL NOT NULL)""",
    "CREATE INDEX mephisto_quals_grant_meta_pair ON mephisto_quals_grant_meta (qualification_id, worker_id)",
    "CREATE INDEX mephisto_quals_grant_meta_expiry ON mephisto_quals_grant_meta (expires_at) WHERE expires_at IS NOT NULL",
    """CREATE TABLE mephisto_quals_audit_batch (batch_id INTEGER PRIMARY KEY, at REAL NOT NULL, qualification TEXT NOT NULL,
       action TEXT NOT NULL, expires_at REAL, reason TEXT, source TEXT NOT NULL, os_user TEXT NOT NULL)""",
    """CREATE TABLE mephisto_quals_audit_change (change_id INTEGER PRIMARY KEY,
       batch_id INTEGER NOT NULL REFERENCES mephisto_quals_audit_batch (batch_id), worker_id INTEGER NOT NULL,
       old_value INTEGER, new_value INTEGER)""",
    """CREATE VIEW mephisto_quals_audit AS
        SELECT c.change_id AS audit_id, b.at, b.qualification, c.worker_id, w.worker_name, b.action,
               c.old_value, c.new_value, b.expires_at, b.reason, b.source, b.os_user
        FROM mephisto_quals_audit_change c
        JOIN mephisto_quals_audit_batch b ON b.batch_id = c.batch_id
        LEFT JOIN workers w ON w.worker_id = c.worker_id""",
    """CREATE TRIGGER mephisto_quals_audit_insert INSTEAD OF INSERT ON mephisto_quals_audit
    BEGIN
        INSERT INTO mephisto_quals_audit_batch (at, qualification, action, expires_at, reason, source, os_user)
        VALUES (NEW.at, NEW.qualification, NEW.action, NEW.expires_at, NEW.reason, NEW.source, NEW.os_user);
        INSERT INTO mephisto_quals_audit_change (batch_id, worker_id, old_value, new_value)
        VALUES (last_insert_rowid(), NEW.worker_id, NEW.old_value, NEW.new_value);
    END""",
]

#: Builds the two databases with whatever Mephisto runs it: ``plugin.db`` used through today's
#: mephisto-quals, ``legacy.db`` with Mephisto's own grants and 0.1's objects and rows.
BUILDER = r'''
import json, os, sqlite3, sys

out, home = sys.argv[1:3]
os.environ["HOME"] = home
from mephisto.abstractions.databases.local_database import LocalMephistoDB
from mephisto.data_model.worker import Worker
from mephisto.utils.qualifications import find_or_create_qualification

T0 = %(t0)r
LAYOUT_0_1 = %(layout)r


def mephisto_rows(db):
    alice = Worker.get(db, db.new_worker("alice_sandbox", "mock"))
    bob = Worker.get(db, db.new_worker("bob_sandbox", "mock"))
    find_or_create_qualification(db, "mephisto_own")
    alice.grant_qualification("mephisto_own", 2)
    return alice, bob


def plugin(path):
    from mephisto_quals.admin import grants

    db = LocalMephistoDB(database_path=path)
    mephisto_rows(db)
    grants.grant(db, "trial", ["alice", "bob", "carol"], provider="mock", value=5, expires_in="10s", now=T0,
                 create=True, reason="pilot week")
    grants.grant(db, "trusted", ["dave", "alice"], provider="mock", create=True, reason="vetted")
    grants.revoke(db, "trusted", ["alice"], provider="mock", reason="left")
    db.shutdown()


def legacy(path):
    db = LocalMephistoDB(database_path=path)
    alice, bob = mephisto_rows(db)
    find_or_create_qualification(db, "trial")
    alice.grant_qualification("trial", 5)
    bob.grant_qualification("trial", 3)
    db.shutdown()
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in LAYOUT_0_1:
        conn.execute(statement)
    for name, expires, reason in (("alice_sandbox", T0 + 10, "pilot week"), ("bob_sandbox", None, "vetted")):
        gid, wid, qid = conn.execute(
            "SELECT g.granted_qualification_id, g.worker_id, g.qualification_id FROM granted_qualifications g"
            " JOIN workers w USING (worker_id) JOIN qualifications q USING (qualification_id)"
            " WHERE w.worker_name = ? AND q.qualification_name = 'trial'", (name,)).fetchone()
        conn.execute("INSERT INTO mephisto_quals_grant_meta VALUES (?, ?, ?, ?, ?, ?)", (gid, wid, qid, expires, reason, T0))
        conn.execute("INSERT INTO mephisto_quals_audit (at, qualification, worker_id, action, old_value, new_value,"
                     " expires_at, reason, source, os_user) VALUES (?, 'trial', ?, 'grant', NULL, 5, ?, ?, 'cli', 'ann')",
                     (T0, wid, expires, reason))
    conn.close()


plugin(os.path.join(out, "plugin.db"))
legacy(os.path.join(out, "legacy.db"))
print("BUILT")
'''


def builder_script(folder: Path) -> Path:
    script = folder / "build_dbs.py"
    script.write_text(BUILDER % {"t0": T0, "layout": LAYOUT_0_1})
    return script


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


def snapshot(path: Path) -> Dict[str, List[Dict[str, Any]]]:
    """Every row that must survive, as plain dicts (update_date left out: 1.4+ adds it)."""
    queries = {
        "workers": "SELECT worker_id, worker_name, provider_type, creation_date FROM workers ORDER BY worker_id",
        "qualifications": "SELECT qualification_id, qualification_name, creation_date FROM qualifications",
        "grants": "SELECT granted_qualification_id, worker_id, qualification_id, value, creation_date"
                  " FROM granted_qualifications ORDER BY granted_qualification_id",
        "meta": "SELECT * FROM mephisto_quals_grant_meta ORDER BY granted_qualification_id",
        "audit_batch": "SELECT * FROM mephisto_quals_audit_batch ORDER BY batch_id",
        "audit_change": "SELECT change_id, batch_id, worker_id, old_value, new_value FROM mephisto_quals_audit_change"
                        " ORDER BY change_id",
    }
    conn = connect(path)
    try:
        return {name: [dict(r) for r in conn.execute(sql)] for name, sql in queries.items()}
    finally:
        conn.close()


def migration_status(path: Path) -> Dict[str, str]:
    conn = connect(path)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'migrations'").fetchone():
            return {}
        return {r["name"]: r["status"] + (f": {r['error_message']}" if r["error_message"] else "")
                for r in conn.execute("SELECT name, status, error_message FROM migrations")}
    finally:
        conn.close()


def tables(path: Path) -> List[str]:
    conn = connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        conn.close()


def open_with_mephisto(path: Path) -> None:
    """What any Mephisto process does first: construct a LocalMephistoDB (1.4+ migrates here)."""
    LocalMephistoDB(database_path=str(path)).shutdown()


def worker_ids(path: Path) -> Dict[str, str]:
    conn = connect(path)
    try:
        return {r["worker_name"].removesuffix("_sandbox"): str(r["worker_id"]) for r in conn.execute("SELECT * FROM workers")}
    finally:
        conn.close()


def holds(path: Path, worker: str, qualification: str, at: float) -> bool:
    """The plugin's gate: does the worker hold the qualification (any value) at time ``at``?"""
    req = [Requirement(qualification, cmp.EXISTS, None, "test", "test")]
    return all(r.passed for r in gate.check_worker(str(path), worker_ids(path)[worker], req, now=at))


@pytest.fixture(scope="module")
def built_on_1_1_1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """plugin.db and legacy.db built by Mephisto 1.1.1 (the 1.1.1 venv, in a subprocess)."""
    folder = tmp_path_factory.mktemp("built-on-1.1.1")
    home = folder / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("MEPHISTO_PIP_SPEC", "MEPHISTO_QUALS_CACHE", "MEPHISTO_QUALS_RUN_VENV")}
    env["MEPHISTO"] = "1.1.1"
    done = subprocess.run(["bash", str(ROOT / "run"), "python", str(builder_script(folder)), str(folder), str(home)],
                          env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and "BUILT" in done.stdout, done.stdout + done.stderr[-3000:]
    for name in ("plugin.db", "legacy.db"):  # the 1.1.1 shape: AUTOINCREMENT, no migrations table
        assert migration_status(folder / name) == {} and "sqlite_sequence" in tables(folder / name)
    yield folder


def copy_of(folder: Path, name: str, tmp_path: Path) -> Path:
    target = tmp_path / "data" / "database.db"
    target.parent.mkdir()
    shutil.copy(folder / name, target)
    return target


@pytest.mark.subprocess
@pytest.mark.timeout(900)
@needs_migrating_mephisto
def test_plugin_database_from_1_1_1_keeps_every_row_when_mephisto_migrates_it(built_on_1_1_1: Path, tmp_path: Path) -> None:
    path = copy_of(built_on_1_1_1, "plugin.db", tmp_path)
    before = snapshot(path)
    assert {w["worker_name"] for w in before["workers"]} == {f"{n}_sandbox" for n in ("alice", "bob", "carol", "dave")}
    assert [b["reason"] for b in before["audit_batch"]] == ["pilot week", "vetted", "left"]
    assert sum(m["expires_at"] is not None for m in before["meta"]) == 3
    assert has_grants_index(connect(path))  # our index on Mephisto's grant table is there during the upgrade

    open_with_mephisto(path)
    assert migration_status(path) == {name: "completed" for name in MIGRATIONS}
    assert "workers" in tables(path) and "_workers" not in tables(path)
    assert snapshot(path) == before
    assert connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not has_grants_index(connect(path))  # the table rebuild dropped it, with no error
    trusted = [Requirement("trusted", cmp.EXISTS, None, "test", "test")]
    assert eligible_counts(str(path), trusted, now=T0).per_check == [1]  # dave; readers need no index
    conn = connect(path)
    try:
        dates = conn.execute("SELECT update_date, creation_date FROM granted_qualifications").fetchall()
    finally:
        conn.close()
    assert dates and all(r["update_date"] == r["creation_date"] for r in dates)

    # The gate still honours the expiry written on 1.1.1, and the revoke.
    assert holds(path, "carol", "trial", T0 + 9) and not holds(path, "carol", "trial", T0 + 10)
    assert holds(path, "dave", "trusted", T0 + 10**6) and not holds(path, "alice", "trusted", T0)
    assert holds(path, "alice", "mephisto_own", T0 + 10**6)

    # The old audit reads back through the CLI; new grants go on with 1.4+'s random worker ids.
    shown = run_history(path, tmp_path)
    for text in ("pilot week", "vetted", "left", "carol_sandbox", "dave_sandbox"):
        assert text in shown, shown
    assert grants.grant(str(path), "trusted", ["erin"], provider="mock").counts() == {"granted": 1}
    low, high = RANDOM_ID_RANGE
    assert low <= int(worker_ids(path)["erin"]) <= high
    assert has_grants_index(connect(path))  # our next writing session put the index back
    assert eligible_counts(str(path), trusted, now=T0).per_check == [2]  # dave and erin
    open_with_mephisto(path)  # a second open is clean too
    assert migration_status(path) == {name: "completed" for name in MIGRATIONS}
    assert has_grants_index(connect(path))  # and keeps it


def run_history(path: Path, tmp_path: Path) -> str:
    home = tmp_path / "cli-home"
    home.mkdir(exist_ok=True)
    done = subprocess.run([str(Path(sys.executable).with_name("mephisto-quals")), "history", "--db", str(path), "--limit", "0"],
                          env={**os.environ, "HOME": str(home), "COLUMNS": "250"}, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.subprocess
@pytest.mark.timeout(900)
@needs_migrating_mephisto
def test_0_1_layout_upgraded_by_us_first_then_migrated_by_mephisto(built_on_1_1_1: Path, tmp_path: Path) -> None:
    path = copy_of(built_on_1_1_1, "legacy.db", tmp_path)
    before = snapshot(path)
    Session.open(str(path)).close()  # our migration: drops 0.1's view, keeps the rows
    assert schema_version(connect(path)) == SCHEMA_VERSION and has_grants_index(connect(path))
    upgraded = snapshot(path)
    assert {k: v for k, v in upgraded.items() if k != "meta"} == {k: v for k, v in before.items() if k != "meta"}
    created = {g["granted_qualification_id"]: g["creation_date"] for g in before["grants"]}
    assert upgraded["meta"] == [{**m, "grant_created": created[m["granted_qualification_id"]]} for m in before["meta"]]

    open_with_mephisto(path)
    assert migration_status(path) == {name: "completed" for name in MIGRATIONS}
    assert "workers" in tables(path) and "_workers" not in tables(path)
    assert snapshot(path) == upgraded
    assert holds(path, "alice", "trial", T0 + 9) and not holds(path, "alice", "trial", T0 + 10)
    assert holds(path, "bob", "trial", T0 + 10**6)
    shown = run_history(path, tmp_path)
    assert "pilot week" in shown and "alice_sandbox" in shown and "bob_sandbox" in shown, shown


@pytest.mark.subprocess
@pytest.mark.timeout(900)
@needs_migrating_mephisto
def test_0_1_layout_opened_by_mephisto_first_breaks_its_migration(built_on_1_1_1: Path, tmp_path: Path) -> None:
    """Why the order matters (and proof the test above can fail): 0.1's view left in place."""
    path = copy_of(built_on_1_1_1, "legacy.db", tmp_path)
    open_with_mephisto(path)
    status = migration_status(path)
    assert status[MIGRATIONS[0]].startswith("errored") and "mephisto_quals_audit" in status[MIGRATIONS[0]]
    assert "_workers" in tables(path) and "workers" not in tables(path)


# ------------------------------------------------------------------ both lines


def mephisto_tables(conn: sqlite3.Connection) -> List[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'mephisto_quals%' AND name NOT LIKE 'sqlite_%'")]


def naming_mephisto_tables(path: Path) -> Dict[str, List[str]]:
    """Our views and triggers -> the Mephisto tables their SQL names (as whole words)."""
    import re

    conn = connect(path)
    try:
        theirs = mephisto_tables(conn)
        found = {}
        for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('view', 'trigger')"
                              " AND name LIKE 'mephisto_quals%'"):
            hits = [t for t in theirs if re.search(rf"(?<![\w.]){re.escape(t)}(?!\w)", r["sql"], re.IGNORECASE)]
            if hits:
                found[r["name"]] = hits
        return found
    finally:
        conn.close()


def rebuild_like_mephisto(path: Path) -> None:
    """Rebuild every Mephisto table the way 1.4+'s first migration does (create ``_x``, copy, drop,
    rename): the rename fails when a view or trigger names the table."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        script = "PRAGMA foreign_keys = off;\n" + "".join(
            f'CREATE TABLE "_{t}" AS SELECT * FROM "{t}"; DROP TABLE "{t}"; ALTER TABLE "_{t}" RENAME TO "{t}";\n'
            for t in mephisto_tables(conn))
        conn.executescript(script)
    finally:
        conn.close()


def legacy_here(db: LocalMephistoDB) -> Path:
    """0.1's objects (and a grant with expiry and audit) on this line's fresh database."""
    grants.grant(db, "trial", ["alice"], provider="mock", value=5, expires_in="10s", now=T0, create=True)
    conn = sqlite3.connect(db.db_path, isolation_level=None)
    try:
        for name, kind in conn.execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'mephisto_quals%'"
                                       " AND type IN ('view', 'trigger')").fetchall():
            conn.execute(f"DROP {kind} IF EXISTS {name}")  # a view's triggers go with it
        for name in [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'mephisto_quals%'"
                                                " AND type = 'table'")]:
            conn.execute(f"DROP TABLE {name}")
        for statement in LAYOUT_0_1:
            conn.execute(statement)
        gid, wid, qid = conn.execute("SELECT granted_qualification_id, worker_id, qualification_id"
                                     " FROM granted_qualifications").fetchone()
        conn.execute("INSERT INTO mephisto_quals_grant_meta VALUES (?, ?, ?, ?, 'pilot week', ?)", (gid, wid, qid, T0 + 10, T0))
        conn.execute("INSERT INTO mephisto_quals_audit (at, qualification, worker_id, action, old_value, new_value,"
                     " expires_at, reason, source, os_user) VALUES (?, 'trial', ?, 'grant', NULL, 5, ?, 'pilot week',"
                     " 'cli', 'ann')", (T0, wid, T0 + 10))
    finally:
        conn.close()
    return Path(db.db_path)


def test_no_view_or_trigger_of_ours_names_a_mephisto_table(db: LocalMephistoDB, tmp_path: Path) -> None:
    path = legacy_here(db)
    assert naming_mephisto_tables(path) == {"mephisto_quals_audit": ["workers"]}  # 0.1's view: the check can fail
    broken = tmp_path / "broken.db"
    shutil.copy(path, broken)
    with pytest.raises(sqlite3.OperationalError, match="mephisto_quals_audit"):
        rebuild_like_mephisto(broken)

    Session.open(str(path)).close()  # our migration
    assert naming_mephisto_tables(path) == {}
    kinds = dict(connect(path).execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'mephisto_quals%'"))
    assert kinds["mephisto_quals_audit"] == "view" and kinds["mephisto_quals_audit_insert"] == "trigger"
    before = snapshot(path)
    rebuild_like_mephisto(path)  # now every Mephisto table can be rebuilt, and every row stays
    assert snapshot(path) == before
    assert holds(path, "alice", "trial", T0 + 9) and not holds(path, "alice", "trial", T0 + 10)


def test_mephistos_database_first_then_our_tables_is_clean(tmp_path: Path) -> None:
    """A database Mephisto made (and on 1.4+ migrated), then our tables, then Mephisto again."""
    path = tmp_path / "data" / "database.db"
    path.parent.mkdir()
    db = LocalMephistoDB(database_path=str(path))
    try:
        assert migration_status(path) == {name: "completed" for name in MIGRATIONS}
        random_ids = uses_random_ids(connect(path), "workers")
        assert random_ids == bool(MIGRATIONS)
        grants.grant(db, "vip", ["alice"], provider="mock", create=True, reason="r", expires_in="1h")
        assert schema_version(connect(path)) == SCHEMA_VERSION and naming_mephisto_tables(path) == {}
        assert has_grants_index(connect(path))
        (qualification,) = db.find_qualifications("vip")
        assert holder_count(db, qualification.db_id) == 1
    finally:
        db.shutdown()
    rows = connect(path).execute("SELECT COUNT(*) FROM migrations").fetchone()[0] if MIGRATIONS else 0
    before = snapshot(path)
    open_with_mephisto(path)
    assert migration_status(path) == {name: "completed" for name in MIGRATIONS}
    assert (connect(path).execute("SELECT COUNT(*) FROM migrations").fetchone()[0] if MIGRATIONS else 0) == rows
    assert snapshot(path) == before
    assert connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert holds(path, "alice", "vip", 0.0)
    assert has_grants_index(connect(path))


def test_nothing_of_ours_calls_mephistos_deprecated_grant_lookup() -> None:
    """1.5.2 deprecates ``check_granted_qualifications`` (the suite filters the warning its own code
    raises): ours goes through ``store.mephisto.find_granted``, the one place that names it."""
    import mephisto_quals

    package = Path(mephisto_quals.__file__).parent
    callers = [str(p.relative_to(package)) for p in package.rglob("*.py") if "check_granted_qualifications" in p.read_text()]
    assert callers == ["store/mephisto.py"]
