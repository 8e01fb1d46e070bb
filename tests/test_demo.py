"""The demo command, run as a user runs it: a subprocess with its own data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess


def test_demo_gates_as_configured_and_keeps_out_of_home(tmp_path: Path) -> None:
    home = tmp_path / "user-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "COLUMNS": "200"}
    data_dir = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "mephisto_quals.devtools.demo", "--data-dir", str(data_dir)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Gating behaved as configured for all 7 workers" in out
    for name in ("alice", "carol"):
        assert any(line.startswith(f"│ {name} ") and "got work" in line for line in out.splitlines()), out
    for name, path in (("bob", "blocklists[0]"), ("erin", "allowlists[0]"), ("grace", "requirements[0]")):
        line = next(line for line in out.splitlines() if line.startswith(f"│ {name} "))
        assert "refused" in line and path in line, line
    assert (data_dir / "mephisto" / "database.db").exists()
    assert not (home / ".mephisto").exists(), "the demo touched the user's ~/.mephisto"
    assert str(data_dir.resolve()) in out
