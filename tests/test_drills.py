"""Failure drills: a full disk during a bulk grant, a review apply or a Prolific sync apply, and a
missing or read-only database file, each give one clear error and leave no partial state; a rerun
finishes the job with nothing counted twice. (kill -9 drills: tests/test_review.py,
tests/test_prolific_sync.py and tests/test_grants_faults.py.)"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from mephisto_quals.admin import grants
from mephisto_quals.providers.prolific.groups import group_name
from prolific_standin import StandIn
from test_store import read_only_folder

#: The loopback Prolific stand-in's fixtures (prolific, ...).
pytest_plugins = ("prolific_fixtures",)


def counts(path: Path) -> Dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("workers", "qualifications", "granted_qualifications", "mephisto_quals_grant_meta",
                          "mephisto_quals_audit_change")}


@pytest.mark.subprocess
def test_a_full_disk_during_a_bulk_grant_fails_cleanly_and_writes_nothing(db, tmp_path):
    grants.grant(db, "before", ["alice"], provider="mock", create=True)  # our tables exist, one grant
    path = Path(db.db_path)
    before = counts(path)
    size = path.stat().st_size
    names = tmp_path / "workers.txt"
    names.write_text("\n".join(f"w{i}" for i in range(20_000)) + "\n")
    limit = size + 64 * 1024  # room for a little, not for 20,000 workers, grants and audit rows

    def small_disk() -> None:
        # Writes past the limit fail with EFBIG (SQLite: "database or disk is full") instead of killing us.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    script = shutil.which("mephisto-quals") or str(Path(sys.executable).with_name("mephisto-quals"))
    proc = subprocess.run(
        [script, "grant", "big", "--file", str(names), "--provider", "mock", "--create", "--db", str(path)],
        env={**os.environ, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120, preexec_fn=small_disk,
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("Error") == 1 and "is the disk full" in proc.stderr, proc.stderr
    assert "rolled back" in proc.stderr
    assert counts(path) == before  # all or nothing
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not Path(str(path) + "-journal").exists()
    # With room again, the same command succeeds.
    again = subprocess.run(
        [script, "grant", "big", "--file", str(names), "--provider", "mock", "--create", "--db", str(path)],
        env={**os.environ, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert counts(path)["granted_qualifications"] == before["granted_qualifications"] + 20_000


# --- missing and read-only databases: writing commands refuse up front ---------------------------
# Every writing command (Mephisto's grants, review --apply, sync apply to Prolific) must name the
# file and exit 2 before writing anything there or sending anything to Prolific.

SCRIPT = shutil.which("mephisto-quals") or str(Path(sys.executable).with_name("mephisto-quals"))
RULES = "rules:\n  - when: approved\n    grant: reviewed_ok\n  - when: rejected\n    grant: reviewed_bad\n"


def pid(i: int) -> str:
    return f"5f{i:022x}"


def reviewed_run(db: Any, n: int) -> str:
    """A task run of n workers' units, approved and rejected alternately (as the review reads them)."""
    from mephisto.utils.testing import get_mock_requester

    from conftest import worker

    requester = get_mock_requester(db)
    task_id = db.new_task("drilled-task", "mock")
    run_id = db.new_task_run(task_id, requester.db_id, "{}", "mock", "mock", True)
    for i in range(n):
        assignment = db.new_assignment(task_id, run_id, requester.db_id, "mock", "mock", True)
        unit = db.new_unit(task_id, run_id, requester.db_id, assignment, 0, 0.3, "mock", "mock", True)
        agent = db.new_agent(worker(db, f"r{i}").db_id, unit, task_id, run_id, assignment, "mock", "mock")
        db.update_agent(agent, status="approved" if i % 2 == 0 else "rejected")
    return run_id


def prolific_list(db: Any, standin: StandIn, n_local: int, in_group: int) -> None:
    """A local Prolific list 'plist' of n_local participants; its group on the stand-in holds the first in_group."""
    local = [pid(i) for i in range(n_local)]
    assert grants.grant(db, "plist", local, provider="prolific", create=True).ok
    standin.add_group(standin.workspace_id, group_name("plist"), local[:in_group])  # type: ignore[attr-defined]


def writing_commands(folder: Path) -> List[List[str]]:
    rules = folder.parent / "rules.yaml"
    rules.write_text(RULES)
    return [["grant", "trusted", "bob", "--provider", "mock"], ["revoke", "trusted", "alice", "--provider", "mock"],
            ["grant", "brand-new", "bob", "--provider", "mock", "--create"], ["prune"],
            ["reset-onboarding", "screen", "alice", "--provider", "mock"],
            ["review", "--task", "drilled-task", "--rules", str(rules), "--apply"],
            ["review", "--task", "drilled-task", "--rules", str(rules), "--apply", "--prolific"],
            ["sync", "apply", "plist", "--prolific"]]


def run(args: List[str], env: Dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], env={**env, "COLUMNS": "250"}, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, **kwargs)


def one_error(proc: subprocess.CompletedProcess) -> str:
    """The command's single error message, as one line (rich boxes it)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("Error") == 1, proc.stderr
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", proc.stderr).split())


@pytest.fixture
def prolific_env(prolific: StandIn, tmp_path: Path) -> Dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {**os.environ, "HOME": str(home), "PROLIFIC_BASE_URL": prolific.base_url,
            "PROLIFIC_API_KEY": prolific.api_key}


@pytest.mark.subprocess
def test_writing_commands_on_a_missing_database_exit_2_naming_it_and_create_nothing(
        tmp_path: Path, prolific: StandIn, prolific_env: Dict[str, str]) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    missing = folder / "database.db"
    for args in writing_commands(folder):
        proc = run([*args, "--db", str(missing)], prolific_env)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        message = one_error(proc)
        assert f"--db {missing}: no such file" in message, (args, message)
        assert list(folder.iterdir()) == [], (args, list(folder.iterdir()))  # no file, no journal
    assert prolific.writes() == []


@pytest.mark.subprocess
def test_writing_commands_on_a_read_only_database_exit_2_naming_it_and_change_nothing(
        db: Any, tmp_path: Path, prolific: StandIn, prolific_env: Dict[str, str]) -> None:
    grants.grant(db, "trusted", ["alice"], provider="mock", create=True)
    grants.grant(db, "screen", ["alice"], provider="mock", create=True)
    grants.grant(db, "expiring", ["alice"], provider="mock", create=True, expires_in="1s", now=time.time() - 60)
    reviewed_run(db, 4)
    prolific_list(db, prolific, n_local=30, in_group=10)
    folder = tmp_path / "ro-data"
    folder.mkdir()
    shutil.copy(db.db_path, folder / "database.db")
    before = digest(folder / "database.db")
    with read_only_folder(folder) as view:
        path = view / "database.db"
        for args in writing_commands(tmp_path / "x"):
            proc = run([*args, "--db", str(path)], prolific_env)
            assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
            message = one_error(proc)
            assert f"{path} is read-only" in message and "nothing was written" in message, (args, message)
            assert sorted(p.name for p in view.iterdir()) == ["database.db"], args
    assert digest(folder / "database.db") == before
    assert prolific.writes() == []  # nothing reached Prolific either


def digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- a full disk during a review apply and during a Prolific sync apply -------------------------

def tiny_disk(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG ("database or disk is full"), not death
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def vacuumed_size(path: Path) -> int:
    """Compact the file (no free pages left to fill), so any growth needs new space; its size."""
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
    return path.stat().st_size


@pytest.mark.subprocess
def test_a_full_disk_during_a_review_apply_fails_cleanly_then_a_rerun_counts_each_unit_once(db: Any,
                                                                                          tmp_path: Path) -> None:
    reviewed_run(db, 300)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    path = Path(db.db_path)
    env = {**os.environ, "HOME": str(tmp_path)}
    args = ["review", "--task", "drilled-task", "--rules", str(rules), "--apply", "--db", str(path)]
    assert run(["migrate", "--db", str(path)], env).returncode == 0  # our tables exist: the apply's own rows must grow
    before = counts(path)
    proc = run(args, env, preexec_fn=tiny_disk(vacuumed_size(path)))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    message = one_error(proc)
    assert "is the disk full" in message and "rolled back" in message, message
    assert counts(path) == before  # no grant, audit or applied row
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not Path(str(path) + "-journal").exists()
    again = run(args, env)
    assert again.returncode == 0, again.stderr
    after = counts(path)
    assert after["granted_qualifications"] == before["granted_qualifications"] + 300  # 150 ok + 150 bad
    third = run(args, env)
    assert third.returncode == 0 and counts(path) == after, third.stdout  # each unit counted once


@pytest.mark.subprocess
def test_a_full_disk_during_a_prolific_sync_apply_then_a_rerun_sends_nobody_twice(
        db: Any, prolific: StandIn, prolific_env: Dict[str, str], tmp_path: Path) -> None:
    prolific_list(db, prolific, n_local=50, in_group=50)
    args = ["sync", "apply", "plist", "--prolific", "--db", str(db.db_path)]
    assert run(args, prolific_env).returncode == 0  # the group is mapped and in step
    assert prolific.writes("/participants/") == []
    more = [pid(i) for i in range(50, 450)]  # 400 adds: 4 batches of 100, each journalled after it is sent
    assert grants.grant(db, "plist", more, provider="prolific").ok
    path = Path(db.db_path)
    before = counts(path)
    proc = run(args, prolific_env, preexec_fn=tiny_disk(vacuumed_size(path)))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    message = one_error(proc)
    assert "is the disk full" in message, message
    sent_first = len(prolific.writes("/participants/"))
    assert sent_first == 1  # the first batch went out; its journal row could not be written, so it stopped there
    assert counts(path) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = run(args, prolific_env)
    assert again.returncode == 0, again.stderr
    added = Counter(p for c in prolific.writes("/participants/") if c.method == "POST" for p in c.body["participant_ids"])
    assert added == Counter(more)  # everyone once: the rerun re-planned from the group and skipped the first batch
    gid = prolific.group_named(group_name("plist"))
    assert set(prolific.members[gid]) == {pid(i) for i in range(450)}
