"""Process B: the public CLI's commands run one after another on the live run's database, each
one's window and write-lock holds recorded."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, List

from mephisto_quals.devtools.live_load.records import ALLOW, StepRecord


def run_writer(plan_file: str, out_file: str) -> int:
    """Run the plan's commands in this process; record each one's window and write-lock holds."""
    from mephisto_quals.admin import grants
    from mephisto_quals.cli.main import cli
    from mephisto_quals.store import Session

    plan = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    target = os.path.realpath(plan["db"])
    opened: List[Session] = []
    real_open = Session.open.__func__  # type: ignore[attr-defined]

    def recording_open(cls: Any, db: Any, **kwargs: Any) -> Session:
        session = real_open(cls, db, **kwargs)
        opened.append(session)
        return session

    Session.open = classmethod(recording_open)  # type: ignore[method-assign,assignment]
    records = []
    code = 0
    for i, step in enumerate(plan["steps"]):
        if i:
            time.sleep(plan["gap"])
        first = len(opened)
        output = io.StringIO()
        started = time.time()
        if step["name"] == "hold":
            exit_code = 0
            with Session.open(plan["db"]) as s, s.transaction():
                grants.grant(plan["db"], ALLOW, ["hold_probe"], provider="mock", session=s, crowd=False)
                time.sleep(step["seconds"])
        else:
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                try:
                    cli(args=step["argv"], prog_name="mephisto-quals")
                    exit_code = 0
                except SystemExit as e:
                    exit_code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        ended = time.time()
        holds = [h for s in opened[first:] if os.path.realpath(s.path) == target for h in s.write_holds]
        records.append(asdict(StepRecord(step["name"], started, ended, exit_code, holds, output.getvalue()[-3000:])))
        code = code or exit_code
        print(f"{step['name']}: exit {exit_code}, {ended - started:.2f} s, longest hold {max(holds, default=0):.3f} s",
              flush=True)
    Path(out_file).write_text(json.dumps(records), encoding="utf-8")
    return code
