"""Failure drills: a full disk during a bulk grant gives one clear error and leaves no partial state."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from mephisto_quals.admin import grants


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
