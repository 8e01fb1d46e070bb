"""Peak memory and time of ``mephisto-quals import`` for CSV files of growing size.

Run with ``./run python bench/bench_import_memory.py [--rows 100000 1000000 4500000]``. Each
size gets a fresh Mephisto database in a temp dir and a CSV of that many rows
(``worker,value`` with mock worker names, about 11 bytes a row, so 4.5 million rows are ~50 MB);
the import runs as its own process, whose peak resident memory (``ru_maxrss``) is reported.
Memory should stay flat in the file's size: the file streams through the check into a TEMP
table on disk, and the report keeps counts, not one object per row.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Sequence


def run_one(rows: int, folder: Path) -> List[str]:
    home = folder / f"home{rows}"
    home.mkdir()
    csv_path = folder / f"grants{rows}.csv"
    with open(csv_path, "w") as f:
        f.write("worker,value\n")
        for i in range(rows):
            f.write(f"w{i:07d},{i % 10}\n")
    db = folder / f"db{rows}" / "database.db"
    db.parent.mkdir()
    env = dict(os.environ, HOME=str(home))
    make = ("from mephisto.abstractions.databases.local_database import LocalMephistoDB as L; import sys; "
            "L(database_path=sys.argv[1]).shutdown()")
    subprocess.run([sys.executable, "-c", make, str(db)], check=True, env=env)
    # The import runs in a child of its own that reports its own peak (RUSAGE_SELF at exit), so no
    # other process (the database set-up above) can hide it.
    measured = ("import atexit, resource, sys; atexit.register(lambda: print('peak-rss-kb', "
                "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)); "
                "from mephisto_quals.cli.main import main; sys.argv[0] = 'mephisto-quals'; main()")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", measured, "import", "score", str(csv_path), "--provider", "mock",
         "--create", "--db", str(db), "--no-progress"],
        env=env, capture_output=True, text=True,
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"import of {rows:,} rows failed ({done.returncode}): {done.stderr[-2000:]}")
    peak = int(done.stderr.rsplit("peak-rss-kb", 1)[1].split()[0])
    note = ""
    return [f"{rows:>10,}", f"{csv_path.stat().st_size / 1e6:8.1f} MB", f"{peak / 1024:8.0f} MB{note}",
            f"{took:8.1f} s", done.stdout.strip().splitlines()[-1]]


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 4_500_000])
    parser.add_argument("--dir", help="where the databases and CSVs go (default: a temp dir)")
    args = parser.parse_args(list(argv) or None)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"{'rows':>10}  {'file':>11}  {'peak RSS':>11}  {'time':>10}  result")
        for rows in sorted(args.rows):
            print("  ".join(run_one(rows, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
