"""``python -m mephisto_quals.devtools.live_load run|writer``: process A with a JSON result, or
process B."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

from mephisto_quals.devtools.live_load.harness import run_live
from mephisto_quals.devtools.live_load.records import LoadConfig
from mephisto_quals.devtools.live_load.writer import run_writer


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mephisto_quals.devtools.live_load",
                                     description="A live Mephisto run beside bulk grants on the same database.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="process A: the live run (starts process B itself)")
    run.add_argument("--data-dir", required=True, help="folder for the database, files and HOME (must be empty)")
    run.add_argument("--json", required=True, help="where to write the result")
    for name in ("grants", "revokes", "earlier-workers", "arrivals", "seed"):
        run.add_argument(f"--{name}", type=int, default=getattr(LoadConfig, name.replace("-", "_")))
    run.add_argument("--no-writer", action="store_true", help="the same stream without process B")
    run.add_argument("--hold-lock", type=float, help="control: process B only holds the write lock this long")
    writer = sub.add_parser("writer", help="process B (started by 'run')")
    writer.add_argument("plan")
    writer.add_argument("out")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = _parse(argv)
    if args.command == "writer":
        code = run_writer(args.plan, args.out)
    else:
        folder = Path(args.data_dir)
        home = folder / "home"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["HOME"] = str(home)  # before the first 'import mephisto'
        config = LoadConfig(str(folder), grants=args.grants, revokes=args.revokes,
                            earlier_workers=args.earlier_workers, arrivals=args.arrivals, seed=args.seed,
                            writer=not args.no_writer, hold_lock=args.hold_lock)
        result = run_live(config)
        Path(args.json).write_text(json.dumps(result.to_json()), encoding="utf-8")
        code = 1 if result.problems else 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # Mephisto leaves non-daemon threads behind (metrics server, tornado)
