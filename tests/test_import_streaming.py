"""A big CSV import streams: its peak memory does not grow with the file's size.

Two imports through the real command line, each its own process reporting its own peak
resident memory (``ru_maxrss`` at exit): 10,000 and 100,000 rows. Reading the whole file
first (what 0.2's early code did) costs about 0.5 GB per million rows, so 90,000 more
rows would show as ~43 MB more; streamed, the two peaks are within a few MB.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

#: Peak RSS the bigger import may add over the smaller one (the old whole-file read adds ~43 MB).
ALLOWED_GROWTH_MB = 15

MEASURED = (
    "import atexit, resource, sys; atexit.register(lambda: print('peak-rss-kb', "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)); "
    "from mephisto_quals.cli.main import main; sys.argv[0] = 'mephisto-quals'; main()"
)


def import_peak_mb(tmp_path: Path, rows: int) -> float:
    """Import a CSV of ``rows`` new mock workers into a fresh database; the import's peak RSS in MB."""
    home = tmp_path / f"home{rows}"
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    db = tmp_path / f"db{rows}" / "database.db"
    db.parent.mkdir()
    make = ("from mephisto.abstractions.databases.local_database import LocalMephistoDB as L; import sys; "
            "L(database_path=sys.argv[1]).shutdown()")
    subprocess.run([sys.executable, "-c", make, str(db)], check=True, env=env, capture_output=True)
    csv_path = tmp_path / f"grants{rows}.csv"
    with open(csv_path, "w") as f:
        f.write("worker,value\n")
        f.writelines(f"w{i:07d},{i % 10}\n" for i in range(rows))
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, "import", "score", str(csv_path), "--provider", "mock", "--create",
         "--db", str(db), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"{rows} granted" in done.stdout, done.stdout
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM granted_qualifications").fetchone()[0] == rows
    finally:
        conn.close()
    return int(done.stderr.rsplit("peak-rss-kb", 1)[1].split()[0]) / 1024


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_ten_times_bigger_csv_imports_in_the_same_memory(tmp_path: Path) -> None:
    small = import_peak_mb(tmp_path, 10_000)
    big = import_peak_mb(tmp_path, 100_000)
    print(f"peak RSS: 10,000 rows {small:.0f} MB, 100,000 rows {big:.0f} MB")
    assert big - small < ALLOWED_GROWTH_MB, (small, big)
