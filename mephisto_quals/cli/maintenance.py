"""``migrate``: bring mephisto-quals' own tables in a database to this version's layout."""

from __future__ import annotations

from typing import Optional

import rich_click as click

from mephisto_quals.cli.base import RichQualsCommand
from mephisto_quals.cli.database import resolve_db
from mephisto_quals.cli.options import db_option, dry_run_option
from mephisto_quals.cli.output import out

__all__ = ["migrate", "COMMANDS"]


@click.command(cls=RichQualsCommand)
@dry_run_option
@db_option
def migrate(dry_run: bool, db: Optional[str]) -> None:
    """Upgrade mephisto-quals' tables in the database to this version (Mephisto's own tables are
    never touched).

    Every writing command does this by itself; reading commands (list, show, history, explain,
    forecast) open the database read-only and ask for it instead. Run it before upgrading
    Mephisto itself: Mephisto 1.4+'s first migration fails on a database that still has
    mephisto-quals 0.1's audit view.

    \b
    Examples:
      mephisto-quals migrate --dry-run
      mephisto-quals migrate --db ~/mephisto/data/database.db
    """
    from mephisto_quals.store import Session, schema

    path = resolve_db(db)
    with Session.open(path, readonly=True, upgradable=True) as s:
        before = schema.schema_version(s.conn)
        no_index = schema.missing_indexes(s.conn)
    shown = "none (no mephisto-quals tables yet)" if before is None else str(before)
    index = f"; our index {schema.GRANTS_INDEX} on granted_qualifications is missing" if no_index else ""
    if before == schema.SCHEMA_VERSION and not no_index:
        out(f"{path}: mephisto-quals schema is at version {before}; nothing to do")
        return
    if dry_run:
        if before == schema.SCHEMA_VERSION:
            out(f"dry run, nothing written: {path} is at schema version {before}{index}; migrate would rebuild it")
        else:
            out(f"dry run, nothing written: {path} would go from schema version {shown} to {schema.SCHEMA_VERSION}")
        return
    Session.open(path).close()  # a writing session upgrades our tables and builds the index
    if before == schema.SCHEMA_VERSION:
        out(f"{path}: mephisto-quals schema is at version {before}; rebuilt our index {schema.GRANTS_INDEX}")
    else:
        out(f"{path}: mephisto-quals schema upgraded from version {shown} to {schema.SCHEMA_VERSION}")


COMMANDS = [migrate]
