"""Click option decorators shared by the ``mephisto-quals`` commands (one definition each).

Only click is imported here, so attaching every command stays cheap for ``--help``.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from mephisto_quals.cli.database import DB_ENVVAR

__all__ = [
    "PROVIDERS",
    "db_option",
    "provider_option",
    "progress_option",
    "dry_run_option",
    "verbose_option",
    "files_option",
    "mturk_options",
    "requester_options",
    "sync_options",
    "task_options",
]

Decorator = Callable[..., Any]

#: Provider types a worker can be named by (``--provider``).
PROVIDERS = ("mock", "mturk", "mturk_sandbox", "prolific", "inhouse")


def db_option(f: Decorator) -> Decorator:
    """--db PATH: the Mephisto database.db (see :func:`mephisto_quals.cli.database.resolve_db`)."""
    return click.option(
        "--db",
        "db",
        metavar="PATH",
        help=f"Mephisto database.db to use. Default: ${DB_ENVVAR}, else <core.main_data_directory>/database.db "
        "from Mephisto's config.",
    )(f)


def provider_option(f: Decorator) -> Decorator:
    """--provider TYPE: workers are provider worker names, not Mephisto worker ids."""
    return click.option(
        "--provider",
        type=click.Choice(PROVIDERS),
        help="Name workers by their provider worker name (e.g. an MTurk worker id) instead of Mephisto worker id.",
    )(f)


def progress_option(f: Decorator) -> Decorator:
    """--progress/--no-progress: a bar on stderr, by default only on a terminal."""
    return click.option(
        "--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal)."
    )(f)


def dry_run_option(f: Decorator) -> Decorator:
    """--dry-run: show what would change, write nothing."""
    return click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")(f)


def verbose_option(f: Decorator) -> Decorator:
    """-v/--verbose: every worker's outcome, not only failures."""
    return click.option("-v", "--verbose", is_flag=True, help="Print every worker's outcome, not only failures.")(f)


def files_option(f: Decorator) -> Decorator:
    """--file FILE: workers one per line, in addition to those on the command line."""
    return click.option(
        "--file",
        "files",
        type=click.File("r"),
        multiple=True,
        metavar="FILE",
        help="Read workers from FILE, one per line ('-' for stdin); # starts a comment.",
    )(f)


def mturk_options(f: Decorator) -> Decorator:
    """--requester / --live / --yes for grant and revoke: make the change on MTurk too (sandbox unless --live)."""
    f = click.option("--yes", is_flag=True, help="Do not ask before writing to a live MTurk requester (for scripts).")(
        f
    )
    f = click.option("--live", is_flag=True, help="Allow a live (real money) MTurk requester.")(f)
    f = click.option(
        "--requester",
        metavar="NAME",
        help="Also make the change on MTurk through this Mephisto requester (sandbox unless --live); "
        "workers are MTurk worker ids.",
    )(f)
    return f


def requester_options(f: Decorator) -> Decorator:
    """--requester (required) / --live / --yes for qual-types apply and requests decide."""
    f = click.option("--yes", "-y", is_flag=True, help="Do not ask before changing live MTurk (for scripts).")(f)
    f = click.option("--live", is_flag=True, help="Allow a live (real money, real workers) requester.")(f)
    return click.option(
        "--requester",
        required=True,
        metavar="NAME",
        help="Mephisto MTurk requester (sandbox unless it is a live one and --live is given).",
    )(f)


def sync_options(f: Decorator) -> Decorator:
    """QUALIFICATION --requester --live --no-revoke --db for sync plan and sync apply."""
    f = db_option(f)
    f = click.option(
        "--no-revoke", is_flag=True, help="Keep grants MTurk has and Mephisto does not (default: revoke them)."
    )(f)
    f = click.option("--live", is_flag=True, help="Allow a live (real money, real workers) MTurk requester.")(f)
    f = click.option("--requester", required=True, help="Mephisto requester name (alice finds alice_sandbox too).")(f)
    return click.argument("qualification")(f)


def task_options(f: Decorator) -> Decorator:
    """--task NAME / --config FILE: the task whose requirements explain and forecast read."""
    f = click.option(
        "--config",
        type=click.Path(exists=True, dir_okay=False),
        help="Task config YAML (with a mephisto node, or a run config).",
    )(f)
    return click.option("--task", help="Mephisto task name (the args of its newest run are used).")(f)
