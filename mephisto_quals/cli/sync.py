"""``sync plan|apply|pull``: keep a provider's copy of a local list equal to it (local grants are the truth).

Two providers: MTurk (``--requester NAME``: the qualification type's grants, sandbox unless
``--live``) and Prolific (``--prolific``: the list's participant group in ``--workspace``).

**Real money.** Prolific has no sandbox: when ``$PROLIFIC_BASE_URL`` (or the default
``https://api.prolific.com/api/v1/``) is not a loopback address, every ``--prolific``
command needs ``--live`` (else exit 2, nothing sent), and one that writes asks first, naming
the host (``--yes`` answers for scripts). The API key comes from ``$PROLIFIC_API_KEY`` or
Mephisto's ``~/.prolific/credentials`` (``--prolific-requester`` picks an entry).

``apply`` sends only the difference, so after an interruption running it again resumes.
Tests inject clients through click's context object: ``obj={"mturk_client": ..., "prolific_client": ...}``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import click

from mephisto_quals.cli.base import QualsGroup
from mephisto_quals.cli.database import context_value, open_database, resolve_db
from mephisto_quals.cli.options import db_option

__all__ = [
    "sync", "prolific_options", "prolific_write_options", "prolific_client", "confirm_prolific_writes", "COMMANDS",
]

SHOW_DEFAULT = 20
Decorator = Callable[..., Any]


def prolific_options(f: Decorator) -> Decorator:
    """--prolific / --workspace / --prolific-requester: send the change to the list's Prolific participant group."""
    f = click.option(
        "--prolific-requester",
        metavar="NAME",
        help="Entry of ~/.prolific/credentials to use (default: $PROLIFIC_API_KEY, or the only entry).",
    )(f)
    f = click.option(
        "--workspace",
        default="My Workspace",
        show_default=True,
        metavar="NAME",
        help="Prolific workspace (title or id) holding the list's participant group.",
    )(f)
    return click.option(
        "--prolific",
        is_flag=True,
        help="Also make the change in the list's Prolific participant group (participant ids; "
        "a non-loopback Prolific needs --live).",
    )(f)


def prolific_write_options(f: Decorator) -> Decorator:
    """:func:`prolific_options` plus --live / --yes, for commands that write to Prolific but
    have no other --live of their own (import, review)."""
    f = click.option("--yes", is_flag=True, help="With --prolific: do not ask before writing to the real Prolific.")(f)
    f = click.option("--live", is_flag=True, help="With --prolific: allow the real (non-loopback) Prolific.")(f)
    return prolific_options(f)


def prolific_client(live: bool, requester: Optional[str] = None) -> Any:
    """Our Prolific client (an injected one in tests); a live Prolific without --live stops here (exit 2)."""
    from mephisto_quals.providers.prolific.sync import connect

    return connect(context_value("prolific_client"), live_ok=live, requester=requester)


def confirm_prolific_writes(client: Any, writes: int, what: str, yes: bool) -> None:
    """On the live Prolific, ask before ``writes`` write calls (``--yes`` answers for scripts)."""
    from urllib.parse import urlsplit

    from mephisto_quals.providers.prolific.client import is_loopback_url

    if writes == 0 or yes or is_loopback_url(client.base_url):
        return
    click.confirm(
        f"{what} on LIVE Prolific ({urlsplit(client.base_url).hostname}; real participants, real money): "
        f"{writes} write call{'s' if writes != 1 else ''}. Go ahead?",
        abort=True,
        err=True,
    )


def show_plan(plan: Any, show: int) -> None:
    """The plan's summary and its first ``show`` writes (MTurk items or Prolific (action, id) pairs)."""
    click.echo(plan.summary())
    items = plan.items
    for item in items[:show]:
        click.echo(f"  {item.describe() if hasattr(item, 'describe') else ' '.join(item)}")
    if len(items) > show:
        click.echo(f"  ... and {len(items) - show} more (--show N)")


def sync_target(f: Decorator) -> Decorator:
    """QUALIFICATION, --requester (MTurk) or --prolific, --live, --no-revoke, --db."""
    f = db_option(f)
    f = click.option(
        "--no-revoke",
        is_flag=True,
        help="Keep grants / members the provider has and Mephisto does not (default: remove them).",
    )(f)
    f = click.option("--live", is_flag=True, help="Allow a live MTurk requester / the real (non-loopback) Prolific.")(f)
    f = prolific_options(f)
    f = click.option("--requester", help="MTurk: Mephisto requester name (alice finds alice_sandbox too).")(f)
    return click.argument("qualification")(f)


def provider_of(requester: Optional[str], prolific: bool) -> str:
    if bool(requester) == prolific:
        raise click.UsageError("say where to sync: --requester NAME (MTurk) or --prolific, one of them")
    return "prolific" if prolific else "mturk"


@click.group(cls=QualsGroup)
def sync() -> None:
    """Make a provider's copy of a qualification equal Mephisto's (MTurk grants, Prolific participant groups)."""


@sync.command("plan")
@sync_target
@click.option("--show", type=int, default=SHOW_DEFAULT, show_default=True, help="List at most N planned writes.")
def sync_plan(
    qualification: str,
    requester: Optional[str],
    prolific: bool,
    workspace: str,
    prolific_requester: Optional[str],
    live: bool,
    no_revoke: bool,
    db: Optional[str],
    show: int,
) -> None:
    """Show what 'sync apply' would send for QUALIFICATION (reads the provider, writes nothing).

    \b
    Examples:
      mephisto-quals sync plan trusted --requester me_sandbox
      mephisto-quals sync plan trusted --prolific --workspace "My Workspace" --live
    """
    if provider_of(requester, prolific) == "prolific":
        from mephisto_quals.providers.prolific.sync import plan_sync as prolific_plan

        client = prolific_client(live, prolific_requester)
        show_plan(
            prolific_plan(
                resolve_db(db), qualification, workspace=workspace, client=client, live_ok=live, revoke=not no_revoke
            ),
            show,
        )
        return
    from mephisto_quals.cli.mturk import require_live_flag, resumable
    from mephisto_quals.providers.mturk.sync import plan_sync

    assert requester is not None  # provider_of said MTurk
    database = open_database(db)
    require_live_flag(database, requester, live)
    with resumable():
        plan = plan_sync(
            database, qualification, requester, client=context_value("mturk_client"), live_ok=live, revoke=not no_revoke
        )
    show_plan(plan, show)


@sync.command("apply")
@sync_target
@click.option("--yes", is_flag=True, help="Do not ask before writing to a live requester / the real Prolific.")
@click.option("--dry-run", is_flag=True, help="Plan and print; write nothing.")
@click.option("--reason", default=None, help="MTurk: message shown to workers whose grant is revoked.")
@click.option("--show", type=int, default=SHOW_DEFAULT, show_default=True, help="List at most N planned writes.")
def sync_apply(
    qualification: str,
    requester: Optional[str],
    prolific: bool,
    workspace: str,
    prolific_requester: Optional[str],
    live: bool,
    no_revoke: bool,
    db: Optional[str],
    yes: bool,
    dry_run: bool,
    reason: Optional[str],
    show: int,
) -> None:
    """Send only the difference for QUALIFICATION; run it again to resume an interrupted apply.

    \b
    Examples:
      mephisto-quals sync apply trusted --requester me_sandbox
      mephisto-quals sync apply banned --prolific --live --yes
    """
    if provider_of(requester, prolific) == "prolific":
        from mephisto_quals.providers.prolific.sync import apply_sync as prolific_apply
        from mephisto_quals.providers.prolific.sync import plan_sync as prolific_plan

        path, client = resolve_db(db), prolific_client(live, prolific_requester)
        plan = prolific_plan(
            path, qualification, workspace=workspace, client=client, live_ok=live, revoke=not no_revoke
        )
        show_plan(plan, show)
        if dry_run or plan.write_calls == 0:
            click.echo("dry run: nothing written" if dry_run else "Prolific already matches: nothing to write")
            return
        confirm_prolific_writes(client, plan.write_calls, f"sync '{qualification}'", yes)
        finish_report(prolific_apply(path, plan, client=client, live_ok=live))
        return
    from mephisto_quals.cli.mturk import confirm_live_writes, require_live_flag, resumable
    from mephisto_quals.providers.mturk.sync import apply_sync, plan_sync

    assert requester is not None  # provider_of said MTurk
    database = open_database(db)
    info = require_live_flag(database, requester, live)
    mturk = context_value("mturk_client")
    with resumable():
        mplan = plan_sync(database, qualification, requester, client=mturk, live_ok=live, revoke=not no_revoke)
    show_plan(mplan, show)
    if dry_run:
        click.echo("dry run: nothing written")
        return
    if mplan.write_calls == 0:
        click.echo("MTurk already matches: nothing to write")
        return
    confirm_live_writes(info, mplan.write_calls, f"sync '{qualification}'", yes)
    with resumable():
        report = apply_sync(database, mplan, client=mturk, live_ok=live, reason=reason)
    finish_report(report)


def finish_report(report: Any) -> None:
    """The summary, each failure on stderr, exit 1 if any failed."""
    click.echo(report.summary())
    for outcome in report.failed:
        click.echo(f"  failed {outcome.worker}: {outcome.error}", err=True)
    if report.failed:
        sys.exit(1)


@sync.command("pull")
@click.argument("qualification")
@click.option("--prolific", is_flag=True, required=True, help="Pull from the list's Prolific participant group.")
@click.option(
    "--workspace",
    default="My Workspace",
    show_default=True,
    metavar="NAME",
    help="Prolific workspace (title or id) holding the group.",
)
@click.option("--prolific-requester", metavar="NAME", help="Entry of ~/.prolific/credentials to use.")
@click.option("--live", is_flag=True, help="Allow the real (non-loopback) Prolific (pull only reads it).")
@click.option("--reason", help="Reason kept with the local grants.")
@click.option("--dry-run", is_flag=True, help="Show what would be granted; write nothing.")
@db_option
def sync_pull(
    qualification: str,
    prolific: bool,
    workspace: str,
    prolific_requester: Optional[str],
    live: bool,
    reason: Optional[str],
    dry_run: bool,
    db: Optional[str],
) -> None:
    """Copy the members of QUALIFICATION's Prolific group into the local list (e.g. on another machine).

    Members become local grants (provider prolific, worker records created, source
    prolific-pull; the qualification is created if needed). Local holders not in the group are kept.

    \b
    Example:
      mephisto-quals sync pull trusted --prolific --db other-machine.db
    """
    from mephisto_quals.providers.prolific.sync import pull

    client = prolific_client(live, prolific_requester)
    finish_report(
        pull(
            resolve_db(db),
            qualification,
            workspace=workspace,
            client=client,
            live_ok=live,
            reason=reason,
            dry_run=dry_run,
        )
    )


#: In the order the root group lists them.
COMMANDS = (sync,)
