"""``import``: grant a qualification from a CSV file, streamed and all-or-nothing.

The file streams through the CSV check (:class:`mephisto_quals.admin.csv_io.GrantCsv`) into the
grants stage, so memory stays flat in its size; nothing is written unless every line is good.
With ``--prolific`` the rows go to the list's Prolific group first, then locally.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import rich_click as click

from mephisto_quals.cli.base import RichQualsCommand
from mephisto_quals.cli.database import resolve_db
from mephisto_quals.cli.grants import SOURCE
from mephisto_quals.cli.options import db_option, dry_run_option, progress_option, provider_option, verbose_option
from mephisto_quals.cli.output import Progress, finish, print_report
from mephisto_quals.cli.sync import prolific_write_options

__all__ = ["import_csv", "import_to_prolific", "COMMANDS"]


def import_to_prolific(path: str, qualification: str, rows: List[Any], workspace: str, requester: Optional[str],
                       live: bool, yes: bool, create: bool, dry_run: bool, now: float) -> Any:
    """An import's rows into the list's Prolific group, then locally (as ``on_prolific``)."""
    from mephisto_quals.cli.sync import confirm_prolific_writes, prolific_client
    from mephisto_quals.providers.prolific.sync import import_on_prolific

    client = prolific_client(live, requester)
    if not dry_run:
        confirm_prolific_writes(client, len(rows), f"import '{qualification}'", yes)
    return import_on_prolific(path, qualification, rows, create=create, source=SOURCE, dry_run=dry_run, now=now,
                              workspace=workspace, client=client, live_ok=live)


@click.command("import", cls=RichQualsCommand)
@click.argument("qualification")
@click.argument("csv_file", metavar="FILE.csv", type=click.File("r", encoding="utf-8-sig"))
@provider_option
@click.option("--reason", help="Reason for rows whose reason column is empty.")
@click.option("--create", is_flag=True, help="Create the qualification if it does not exist.")
@click.option("--description", metavar="TEXT",
              help="With --create: the new qualification's description (Mephisto 1.5.2 databases; up to 500 "
                   "characters, shown by the review app).")
@prolific_write_options
@dry_run_option
@verbose_option
@progress_option
@db_option
def import_csv(
    qualification: str, csv_file: Any, provider: Optional[str], reason: Optional[str], create: bool,
    description: Optional[str], dry_run: bool, verbose: bool, progress: Optional[bool], db: Optional[str],
    prolific: bool = False, workspace: str = "My Workspace", prolific_requester: Optional[str] = None,
    live: bool = False, yes: bool = False,
) -> None:
    """Grant a qualification from a CSV file, one value (and expiry, reason) per worker.

    The first line is a header. Columns: 'worker' (a Mephisto worker id, or a provider
    worker name when the row has a provider), or 'worker_id' (a Mephisto worker id);
    optional 'provider', 'value' (default 1), 'expires_at' (ISO time, UTC if no zone) and
    'reason'. The output of 'export' imports as it is. The whole file is checked first (it
    streams: memory stays flat in its size): any bad line stops the import with the bad lines
    listed (the first 200, and how many in all), and nothing is written.

    \b
    Example file:
      worker,value,expires_at,reason
      alice,3,2030-01-01,gold standard
      bob,1,,
    \b
    Examples:
      mephisto-quals import score scores.csv --provider mock --create
      mephisto-quals export trusted --output trusted.csv
      mephisto-quals import trusted trusted.csv --db other.db --create
    """
    from mephisto_quals.admin import grants
    from mephisto_quals.admin.csv_io import GrantCsv, read_grant_csv

    now = time.time()
    path = resolve_db(db)
    if prolific:
        rows = read_grant_csv(csv_file, provider or "prolific", reason, now)
        grant_rows = [grants.GrantRow(r.worker, r.value, r.provider, r.expires_at, r.reason) for r in rows]
        finish(print_report(import_to_prolific(path, qualification, grant_rows, workspace, prolific_requester, live,
                                               yes, create, dry_run, now), verbose))
        return
    # The file streams through the check into the grants stage: memory stays flat in its size, and
    # nothing is written unless every line is good (one transaction: all or nothing).
    streamed = GrantCsv(csv_file, provider, reason, now)

    def precheck(refused: Dict[str, str], lines: Dict[str, int]) -> None:
        for worker_given, why in refused.items():
            streamed.add_problem(lines.get(worker_given, 0), f"worker {worker_given!r}: {why}")
        streamed.refuse()

    with Progress(lambda: _data_lines(csv_file), progress, f"import {qualification}") as bar:
        report = grants.grant_rows(path, qualification, streamed, source=SOURCE, create=create,
                                   description=description, dry_run=dry_run, progress=bar, now=now,
                                   all_or_nothing=True, keep_outcomes=verbose or dry_run, precheck=precheck)
    finish(print_report(report, verbose))


def _data_lines(handle: Any) -> int:
    """Lines after the header, for the progress bar (0, no bar, when the file cannot be re-read;
    a file that is not text is left for the CSV reader to report)."""
    try:
        start = handle.tell()
    except (OSError, ValueError):
        return 0
    try:
        return max(sum(1 for _ in handle) - 1, 0)
    except ValueError:  # undecodable bytes
        return 0
    finally:
        handle.seek(start)


#: In the order the root group lists them.
COMMANDS = (import_csv,)
