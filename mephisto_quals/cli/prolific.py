"""``export-prolific``: a local list as Prolific filters (YAML or JSON)."""

from __future__ import annotations

from typing import Optional

import click

from mephisto_quals.cli.base import QualsCommand
from mephisto_quals.cli.database import resolve_db
from mephisto_quals.cli.options import db_option

__all__ = ["export_prolific_command", "COMMANDS"]


@click.command("export-prolific", cls=QualsCommand)
@click.argument("qualification")
@click.option("--block", is_flag=True, help="Export a black list (keep holders out) instead of a white list.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--strict", is_flag=True, help="Fail (exit 2) when a holder's name is not a Prolific participant id.")
@db_option
def export_prolific_command(qualification: str, block: bool, fmt: str, strict: bool, db: Optional[str]) -> None:
    """Print a local list as Prolific filters (participant ids).

    Holders (live grants) who are Prolific participants become a custom_allowlist filter
    (or, with --block, custom_blocklist). Paste the output as the value of
    mephisto.blueprint.quals.prolific. It is a snapshot: export again after changes.

    \b
    Examples:
      mephisto-quals export-prolific trusted > prolific.yaml
      mephisto-quals export-prolific banned --block --format json
    """
    from mephisto_quals.errors import QualsConfigError
    from mephisto_quals.providers.prolific.lists import format_requirements, prolific_lists

    path = resolve_db(db)
    lists = prolific_lists(path, [] if block else [qualification], [qualification] if block else [])
    if strict and lists.invalid:
        raise QualsConfigError(lists.invalid)
    for w in lists.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    for p in lists.invalid:
        click.secho(f"left out: {p}", fg="yellow", err=True)
    click.echo(format_requirements(lists.requirements, fmt), nl=False)


#: In the order the root group lists them.
COMMANDS = (export_prolific_command,)
