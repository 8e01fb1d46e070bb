"""Reading commands: ``list``, ``show``, ``export`` and ``history`` (they never write the database)."""

from __future__ import annotations

import sys
import time
from typing import Optional

import rich_click as click

from mephisto_quals.cli.base import RichQualsCommand
from mephisto_quals.cli.database import resolve_db
from mephisto_quals.cli.options import db_option
from mephisto_quals.cli.output import change, err, out, show_value, table

__all__ = ["list_qualifications", "show", "export_csv", "history", "COMMANDS"]


@click.command("list", cls=RichQualsCommand)
@db_option
def list_qualifications(db: Optional[str]) -> None:
    """List qualifications with how many workers hold each (and how many grants expired), and
    their descriptions where the database keeps them (Mephisto 1.5.2).

    \b
    Example:
      mephisto-quals list --db ~/mephisto/data/database.db
    """
    from mephisto_quals.admin import queries

    rows = queries.list_qualifications(resolve_db(db))
    if not rows:
        out("no qualifications in this database")
        return
    described = any(q.description for q in rows)  # only Mephisto 1.5.2 databases keep descriptions
    shown = table("qualification", "holders", "expired", *(["description"] if described else []))
    for q in rows:
        shown.add_row(q.name, str(q.holders), str(q.expired), *([q.description or ""] if described else []))
    out(shown)


@click.command(cls=RichQualsCommand)
@click.argument("qualification")
@click.option("--include-expired", is_flag=True, help="Also list grants whose expiry has passed.")
@db_option
def show(qualification: str, include_expired: bool, db: Optional[str]) -> None:
    """Show who holds a qualification: worker, id, provider, value, expiry and reason (and its
    description first, where the database keeps one).

    \b
    Examples:
      mephisto-quals show trusted
      mephisto-quals show trusted --include-expired
    """
    from mephisto_quals.admin import queries

    now = time.time()
    path = resolve_db(db)
    rows = queries.holders(path, qualification, include_expired=include_expired, now=now)
    about = queries.description(path, qualification)
    if about:
        out(f"{qualification}: {about}")
    shown = table("worker", "id", "provider", "value", "expires", "reason", title=f"holders of '{qualification}'")
    for h in rows:
        expires = h.expires or "never"
        if h.expires_at is not None and h.expires_at <= now:
            expires += " (expired)"
        shown.add_row(
            h.worker_name, str(h.worker_id), h.provider_type or "", show_value(h.value), expires, h.reason or ""
        )
    if rows:
        out(shown)
    out(f"{len(rows)} worker(s) hold '{qualification}'" + ("" if include_expired else " (expired grants not shown)"))


@click.command("export", cls=RichQualsCommand)
@click.argument("qualification")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to FILE (default: stdout).")
@click.option(
    "--include-expired",
    is_flag=True,
    help="Also export grants whose expiry has passed (those rows cannot be imported again).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "prolific"]),
    default="csv",
    show_default=True,
    help="csv: holders for 'import'; prolific: a Prolific filter (YAML) for "
    "mephisto.blueprint.quals.prolific: the list's participant group when it is mapped "
    "(participant_group_allowlist), else its participants (custom_allowlist).",
)
@click.option(
    "--block",
    is_flag=True,
    help="With --format prolific: the blocklist filter (participant_group_blocklist / custom_blocklist) instead.",
)
@db_option
def export_csv(
    qualification: str, output: Optional[str], include_expired: bool, fmt: str, block: bool, db: Optional[str]
) -> None:
    """Write a qualification's holders as CSV: worker,worker_id,provider,value,expires_at,reason.

    'worker' is the provider's worker name (without Mephisto's _sandbox suffix), so the file
    imports into this or another Mephisto database with 'import'. Empty cells mean unset.
    With --format prolific, the list becomes a Prolific filter to paste under
    mephisto.blueprint.quals.prolific: its participant group's id when the list is mapped to
    one (sync or a launch made it), else the ids of the holders who are Prolific participants.

    \b
    Examples:
      mephisto-quals export trusted --output trusted.csv
      mephisto-quals export score > score.csv
      mephisto-quals export banned --format prolific --block > prolific.yaml
    """
    from mephisto_quals.admin import queries
    from mephisto_quals.admin.csv_io import write_holders

    if fmt == "prolific":
        from mephisto_quals.providers.prolific.lists import export_prolific

        text = export_prolific(resolve_db(db), qualification, block=block, fmt="yaml")
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            sys.stdout.write(text)
        return
    rows = queries.holders(resolve_db(db), qualification, include_expired=include_expired)
    if output:
        with open(output, "w", newline="", encoding="utf-8") as handle:
            write_holders(handle, rows)
        err(f"exported {len(rows)} grant(s) of '{qualification}' to {output}")
    else:
        write_holders(sys.stdout, rows)


@click.command(cls=RichQualsCommand)
@click.option("--qualification", "-q", help="Only changes to this qualification.")
@click.option("--worker", "-w", help="Only changes to this worker (Mephisto id or worker name).")
@click.option(
    "--limit", type=click.IntRange(min=0), default=100, show_default=True, help="Show the newest N changes (0: all)."
)
@db_option
def history(qualification: Optional[str], worker: Optional[str], limit: int, db: Optional[str]) -> None:
    """Show the audit of recorded changes, newest first.

    Columns: time (UTC), qualification, worker, old → new value, action, reason, source
    (cli, api, review, ...) and the OS user who made the change. On Mephisto 1.5.2 the
    grants and revokes made in Mephisto's review app are merged in, as source review_app
    with the reviewer's note as reason (their old value and OS user are not known).

    \b
    Examples:
      mephisto-quals history --qualification trusted
      mephisto-quals history --worker alice_sandbox --limit 20
    """
    from mephisto_quals.admin import queries

    entries = queries.history(resolve_db(db), qualification, worker, limit or None)
    if not entries:
        out("no recorded changes" + (" match" if qualification or worker else ""))
        return
    shown = table("time (UTC)", "qualification", "worker", "old → new", "action", "reason", "source", "os user")
    for e in entries:
        shown.add_row(
            e.when,
            e.qualification,
            f"{e.worker_name} ({e.worker_id})",
            change(e.old_value, e.new_value),
            e.action,
            e.reason or "",
            e.source,
            e.os_user,
        )
    out(shown)
    if limit and len(entries) == limit:
        out(f"newest {limit} shown; --limit 0 shows all", style="dim")


#: In the order the root group lists them.
COMMANDS = (list_qualifications, show, export_csv, history)
