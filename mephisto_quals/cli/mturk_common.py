"""``mephisto-quals sync plan|apply``: push a qualification's local grants to MTurk.

Standalone click objects for the main ``mephisto-quals`` group to attach
(``main.add_command(sync)``). Heavy imports stay inside the command bodies so ``--help``
stays fast and does not import Mephisto.

Exit codes as the main CLI's: 0 success, 1 an MTurk call or a worker failed (what succeeded
is kept; run again to resume), 2 bad usage or input (nothing written).

Safety: a live requester needs ``--live`` (else exit 2, nothing read or written); with
``--live`` an apply that would write asks for confirmation naming the requester and the
number of write calls (``--yes`` skips it in scripts; no answer on stdin aborts, exit 1).

``ctx.obj`` may be a dict with ``db`` (a LocalMephistoDB or a path) and ``mturk_client``
(an injected, e.g. stubbed, boto3 client): that is how the tests drive these commands.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import click

__all__ = ["sync", "sync_plan", "sync_apply", "open_db", "require_live_flag", "confirm_live_writes", "DB_ENVVAR"]

#: Where the commands find the Mephisto DB when --db is not given (before Mephisto's own config).
DB_ENVVAR = "MEPHISTO_QUALS_DB"
_SHOW_DEFAULT = 20


def _obj(ctx: click.Context, key: str) -> Any:
    obj = ctx.find_root().obj
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def open_db(ctx: click.Context, path: Optional[str]) -> Any:
    """The Mephisto DB: ``--db``, else ``ctx.obj['db']``, else $MEPHISTO_QUALS_DB, else Mephisto's configured data dir.

    Never lets Mephisto prompt for a data directory (it would hang a script).
    """
    given = path or _obj(ctx, "db") or os.environ.get(DB_ENVVAR)
    if given is not None and not isinstance(given, (str, os.PathLike)):
        return given  # already a database object
    if given is None:
        from mephisto.operations.config_handler import get_config_arg

        data_dir = get_config_arg("core", "main_data_directory")
        if not data_dir:
            raise click.UsageError(f"no Mephisto data directory is configured; pass --db PATH or set ${DB_ENVVAR}")
        given = os.path.join(os.path.expanduser(data_dir), "database.db")
    if not os.path.exists(given):
        raise click.UsageError(f"no Mephisto database at {given}")
    from mephisto.abstractions.databases.local_database import LocalMephistoDB

    return LocalMephistoDB(database_path=os.fspath(given))


def require_live_flag(db: Any, requester: str, live: bool) -> Any:
    """Find the requester; a live one without ``--live`` stops here with exit 2. Returns its RequesterInfo."""
    from mephisto_quals.providers.mturk.client import MTurkError, find_requester

    try:
        info = find_requester(db, requester)
    except MTurkError as e:
        raise click.UsageError(str(e))
    if not info.sandbox and not live:
        twin = f" (its sandbox requester is '{info.sandbox_twin}')" if info.sandbox_twin else ""
        raise click.UsageError(
            f"'{info.name}' is a LIVE MTurk requester: real workers, real qualifications{twin}. "
            "Add --live to use it."
        )
    return info


def confirm_live_writes(info: Any, writes: int, what: str, yes: bool) -> None:
    """On a live requester, ask before ``writes`` MTurk write calls (``--yes`` answers for scripts)."""
    if info.sandbox or writes == 0 or yes:
        return
    click.confirm(
        f"{what} on LIVE MTurk requester '{info.name}': {writes} write call{'s' if writes != 1 else ''}. Go ahead?",
        abort=True,
    )


def _common(f: Any) -> Any:
    f = click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
                     help=f"Mephisto database file (default: ${DB_ENVVAR}, then Mephisto's data directory).")(f)
    f = click.option("--no-revoke", is_flag=True, help="Keep grants MTurk has and Mephisto does not (default: revoke them).")(f)
    f = click.option("--live", is_flag=True, help="Allow a live (real money, real workers) MTurk requester.")(f)
    f = click.option("--requester", required=True, help="Mephisto requester name (alice finds alice_sandbox too).")(f)
    f = click.argument("qualification")(f)
    return f


def _show_plan(plan: Any, show: int) -> None:
    click.echo(plan.summary())
    items = plan.items
    for item in items[:show]:
        click.echo(f"  {item.describe()}")
    if len(items) > show:
        click.echo(f"  ... and {len(items) - show} more (--show N)")


class InputError(click.ClickException):
    """Bad input or set-up (unknown qualification or requester, no AWS profile): nothing written. Exit 2."""

    exit_code = 2


def _errors(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` with the main CLI's exit codes: 2 bad input / set-up (nothing written), 1 MTurk failed."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mephisto_quals.errors import QualsError
    from mephisto_quals.providers.mturk.client import error_text

    try:
        return fn(*args, **kwargs)
    except (QualsError, ValueError) as e:
        raise InputError(str(e))
    except ClientError as e:
        raise click.ClickException(f"MTurk refused: {error_text(e)} (run the command again to resume)")
    except BotoCoreError as e:
        raise click.ClickException(f"could not reach MTurk: {e} (run the command again to resume)")


@click.group()
def sync() -> None:
    """Make MTurk's grants of a qualification equal Mephisto's (local grants are the truth)."""


@sync.command("plan")
@_common
@click.option("--show", type=int, default=_SHOW_DEFAULT, show_default=True, help="List at most N planned writes.")
@click.pass_context
def sync_plan(ctx: click.Context, qualification: str, requester: str, live: bool, no_revoke: bool,
              db_path: Optional[str], show: int) -> None:
    """Show what 'sync apply' would send to MTurk for QUALIFICATION (reads MTurk, writes nothing)."""
    from mephisto_quals.providers.mturk.sync import plan_sync

    db = open_db(ctx, db_path)
    require_live_flag(db, requester, live)
    plan = _errors(plan_sync, db, qualification, requester, client=_obj(ctx, "mturk_client"), live_ok=live,
                   revoke=not no_revoke)
    _show_plan(plan, show)


@sync.command("apply")
@_common
@click.option("--yes", is_flag=True, help="Do not ask before writing to a live requester.")
@click.option("--dry-run", is_flag=True, help="Plan and print; write nothing.")
@click.option("--reason", default=None, help="Message MTurk shows the workers whose grant is revoked (its Reason).")
@click.option("--show", type=int, default=_SHOW_DEFAULT, show_default=True, help="List at most N planned writes.")
@click.pass_context
def sync_apply(ctx: click.Context, qualification: str, requester: str, live: bool, no_revoke: bool,
               db_path: Optional[str], yes: bool, dry_run: bool, reason: Optional[str], show: int) -> None:
    """Send MTurk only the difference for QUALIFICATION; run it again to resume an interrupted apply."""
    from mephisto_quals.providers.mturk.sync import apply_sync, plan_sync

    db = open_db(ctx, db_path)
    info = require_live_flag(db, requester, live)
    client = _obj(ctx, "mturk_client")
    plan = _errors(plan_sync, db, qualification, requester, client=client, live_ok=live, revoke=not no_revoke)
    _show_plan(plan, show)
    if dry_run:
        click.echo("dry run: nothing written")
        return
    if plan.write_calls == 0:
        click.echo("MTurk already matches: nothing to write")
        return
    confirm_live_writes(info, plan.write_calls, f"sync '{qualification}'", yes)
    report = _errors(apply_sync, db, plan, client=client, live_ok=live, reason=reason)
    click.echo(report.summary())
    for outcome in report.failed:
        click.echo(f"  failed {outcome.worker}: {outcome.error}", err=True)
    if report.failed:
        ctx.exit(1)
