"""What the ``mephisto-quals`` commands print: rich console and tables, the progress bar, reports.

Rich and tqdm are imported when first used, so attaching the commands stays cheap.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable, Optional, Union

__all__ = [
    "console",
    "out",
    "err",
    "table",
    "verdict",
    "show_value",
    "change",
    "Progress",
    "outcome_line",
    "print_report",
    "print_notes",
    "finish",
]


def console(stderr: bool = False) -> Any:
    """A rich Console on stdout (or stderr) without markup: worker names may contain [brackets]."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty():
        # Piped output: do not squeeze tables into 80 columns.
        width = int(os.environ.get("COLUMNS") or 0) or 200
    return Console(file=stream, width=width, markup=False, emoji=False, highlight=False, soft_wrap=False)


def out(text: Any = "", style: Optional[str] = None) -> None:
    """Print to stdout."""
    console().print(text, style=style)


def err(text: Any, style: Optional[str] = None) -> None:
    """Print to stderr."""
    console(stderr=True).print(text, style=style)


def table(*columns: str, title: Optional[str] = None) -> Any:
    """A plain rich table with these column headers (long cells fold, never get cut)."""
    from rich import box
    from rich.table import Table

    result = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", title_justify="left")
    for column in columns:
        result.add_column(column, overflow="fold")
    return result


def verdict(text: str) -> Any:
    """pass / fail / unknown, coloured."""
    from rich.text import Text

    return Text(text, style={"pass": "green", "fail": "bold red", "unknown": "yellow"}.get(text, ""))


def show_value(value: Any) -> str:
    """A qualification value for a table cell ('' when unset)."""
    return "" if value is None else str(value)


def change(old: Any, new: Any) -> str:
    """old → new, '-' for none."""
    return f"{'-' if old is None else old} → {'-' if new is None else new}"


class Progress:
    """A tqdm bar on stderr fed by the grants API's ``progress(n)`` callback."""

    def __init__(self, total: Union[int, Callable[[], int]], enabled: Optional[bool], desc: str):
        """``total`` may be a function, called only when the bar is shown (counting may cost a pass)."""
        show = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if show and callable(total):
            total = total()
        if show and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="worker", file=sys.stderr, leave=True)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            # workers refused before the database (malformed ids) are done too
            self.bar.update(max(0, self.bar.total - self.bar.n))
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def outcome_line(o: Any, dry_run: bool) -> str:
    """One worker's outcome of a bulk operation, e.g. 'updated: 12 (id 12): 3 → 4'."""
    who = o.worker
    if o.worker_name and o.worker_name != o.worker:
        who += f" ({o.worker_name}, id {o.worker_id})"
    elif o.worker_id is not None and str(o.worker_id) != o.worker:
        who += f" (id {o.worker_id})"
    status = f"would be {o.status}" if dry_run and o.status not in ("unchanged", "not held", "failed") else o.status
    if o.status == "failed":
        return f"failed: {who}: {o.error}"
    if o.status in ("unchanged", "not held") or (o.old_value is None and o.new_value is None):
        return f"{status}: {who}"
    return f"{status}: {who}: {change(o.old_value, o.new_value)}"


def print_report(report: Any, verbose: bool, changes: bool = True) -> bool:
    """Failures (stderr), changes (when asked, or in a dry run) and the summary line; True if all ok."""
    for o in report.outcomes:
        if not o.ok:
            err(outcome_line(o, report.dry_run), style="red")
        elif changes and (verbose or (report.dry_run and o.status not in ("unchanged", "not held"))):
            out(outcome_line(o, report.dry_run))
    out(report.summary())
    return bool(report.ok)


def print_notes(notes: Iterable[str]) -> None:
    """Cost notes of a task plan, in yellow."""
    for note in notes:
        out(f"cost: {note}", style="yellow")


def finish(ok: bool) -> None:
    """Exit 1 when a worker or an operation failed (what succeeded is kept)."""
    if not ok:
        sys.exit(1)
