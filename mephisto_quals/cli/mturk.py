"""MTurk commands: ``qual-types apply`` and ``requests list|decide`` (``sync`` is in :mod:`mephisto_quals.cli.sync`).

The sandbox is the default everywhere: a live requester needs ``--live`` (else exit 2,
nothing read or written), and a command that would change live MTurk asks first, naming the
requester (``--yes`` answers for scripts; no answer on stdin aborts, exit 1). A dry run and
``requests list`` only read, so they do not ask. ``sync apply`` sends only the difference,
so after an interruption or an MTurk failure running it again resumes.

Tests inject a ready (stubbed) MTurk client, and optionally the database, through click's
context object: ``obj={"mturk_client": client, "db": ...}``.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Tuple

import click

from mephisto_quals.cli.base import QualsGroup, is_botocore_error, mturk_failure
from mephisto_quals.cli.database import context_value, resolve_db
from mephisto_quals.cli.options import db_option, requester_options
from mephisto_quals.errors import InputError, OperationFailed

__all__ = ["qual_types", "requests_group", "require_live_flag", "confirm_live_writes", "COMMANDS"]


def require_live_flag(db: Any, requester: str, live: bool) -> Any:
    """Find the requester; a live one without ``--live`` stops here with exit 2. Returns its RequesterInfo."""
    from mephisto_quals.providers.mturk.client import MTurkError, find_requester

    try:
        info = find_requester(db, requester)
    except MTurkError as e:
        raise InputError(str(e)) from None
    if not info.sandbox and not live:
        twin = f" (its sandbox requester is '{info.sandbox_twin}')" if info.sandbox_twin else ""
        raise InputError(
            f"'{info.name}' is a LIVE MTurk requester: real workers, real qualifications{twin}. Add --live to use it."
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


@contextmanager
def resumable() -> Iterator[None]:
    """An MTurk failure during a sync: exit 1 and say that running it again resumes."""
    try:
        yield
    except Exception as e:
        if is_botocore_error(e):
            raise OperationFailed(f"{mturk_failure(e)} (run the command again to resume)") from e
        raise


def mturk_client(db: str, requester: str, live: bool, yes: bool, writes: bool) -> Tuple[Any, bool]:
    """(client, sandbox) for the requester (an injected one in tests); confirms before live writes unless --yes."""
    from mephisto_quals.providers.mturk.client import client_for

    client, sandbox = client_for(db, requester, live_ok=live, client=context_value("mturk_client"))
    if not sandbox and writes and not yes:
        click.confirm(
            f"'{requester}' is a LIVE MTurk requester: this changes real qualifications seen by real "
            "workers. Continue?",
            abort=True,
            err=True,
        )
    return client, sandbox


def side(sandbox: bool) -> str:
    """How a requester is named in summaries: sandbox or LIVE."""
    return "sandbox" if sandbox else "LIVE"


# --- qual-types -----------------------------------------------------------------------------------


@click.group("qual-types", cls=QualsGroup)
def qual_types() -> None:
    """MTurk qualification types declared in YAML."""


@qual_types.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@requester_options
@click.option("--dry-run", is_flag=True, help="Show what would be created or updated; send no change.")
@db_option
def apply_types(file: str, requester: str, live: bool, yes: bool, dry_run: bool, db: Optional[str]) -> None:
    """Create or update the MTurk qualification types declared in FILE.

    Idempotent: a type that already matches is left alone, and only fields that differ are
    updated. On the sandbox each type is named NAME_sandbox, as Mephisto names it.
    MTurk cannot change a type's name or keywords, remove its test or disable retakes:
    such differences are reported (exit 1) and that type is left untouched.

    \b
    FILE:
      qualification_types:
        - name: careful_reader
          description: Passed our careful-reading test
          keywords: [reading, test]
          auto_granted: true
        - name: screening_test
          description: Screening test
          test: {question_form: screening.xml, answer_key: answers.xml, duration: 20m, retake_delay: 7d}
    \b
    Examples:
      mephisto-quals qual-types apply types.yaml --requester me --dry-run
      mephisto-quals qual-types apply types.yaml --requester me_live --live
    """
    from mephisto_quals.providers.mturk.types import ensure_types, load_types

    specs = load_types(file)  # validate before touching MTurk
    path = resolve_db(db)
    client, sandbox = mturk_client(path, requester, live, yes, writes=not dry_run)
    results = ensure_types(client, specs, sandbox, dry_run=dry_run)
    ok = True
    for r in results:
        click.echo(r.summary())
        for w in r.warnings:
            click.secho(f"  warning: {w}", fg="yellow", err=True)
        for e in r.errors:
            ok = False
            click.secho(f"  error: {e}", fg="red", err=True)
    counts: Dict[str, int] = {}
    for r in results:
        counts[r.action] = counts.get(r.action, 0) + 1
    prefix = "dry run, nothing sent: " if dry_run else ""
    click.echo(
        f"{prefix}{side(sandbox)} requester '{requester}': " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    )
    if not ok:
        sys.exit(1)


# --- requests -------------------------------------------------------------------------------------


@click.group("requests", cls=QualsGroup)
def requests_group() -> None:
    """Workers' requests for your MTurk qualification types."""


@requests_group.command("list")
@click.option("--requester", required=True, metavar="NAME", help="Mephisto MTurk requester.")
@click.option("--live", is_flag=True, help="Allow a live requester (listing only reads).")
@click.option(
    "--qualification",
    "-q",
    "qualifications",
    multiple=True,
    metavar="Q",
    help="Only requests for this type (name as declared, or an MTurk type id); repeatable. Default: all your types.",
)
@db_option
def list_command(requester: str, live: bool, qualifications: Tuple[str, ...], db: Optional[str]) -> None:
    """List pending qualification requests (every page).

    \b
    Examples:
      mephisto-quals requests list --requester me
      mephisto-quals requests list --requester me -q screening_test
    """
    from mephisto_quals.providers.mturk.requests import list_requests

    path = resolve_db(db)
    client, sandbox = mturk_client(path, requester, live, yes=True, writes=False)
    found = list_requests(client, qualifications, sandbox)
    for r in found:
        when = r.submitted.isoformat() if r.submitted is not None else ""
        click.echo(f"{r.request_id}\t{r.qualification}\t{r.worker_id}\t{when}")
    click.echo(f"{len(found)} pending request(s) ({side(sandbox)} requester '{requester}')")


@requests_group.command("decide")
@requester_options
@click.option(
    "--qualification",
    "-q",
    "qualifications",
    multiple=True,
    metavar="Q",
    help="Only requests for this type; repeatable. Default: all your types.",
)
@click.option(
    "--accept-allowlisted",
    "allowlists",
    multiple=True,
    metavar="QUAL",
    help="Accept requests from workers holding this local qualification (live grants); repeatable: any of them.",
)
@click.option(
    "--reject-blocklisted",
    "blocklists",
    multiple=True,
    metavar="QUAL",
    help="Reject requests from workers holding this local qualification; repeatable. Wins over --accept-allowlisted.",
)
@click.option("--accept", "accept_ids", multiple=True, metavar="ID", help="Accept this request; repeatable.")
@click.option("--reject", "reject_ids", multiple=True, metavar="ID", help="Reject this request; repeatable.")
@click.option("--reason", help="Shown to rejected workers (default: a neutral sentence).")
@click.option("--value", type=int, default=1, show_default=True, help="Qualification value for accepted requests.")
@click.option("--dry-run", is_flag=True, help="Show the decisions; send and write nothing.")
@db_option
def decide_command(
    requester: str,
    live: bool,
    yes: bool,
    qualifications: Tuple[str, ...],
    allowlists: Tuple[str, ...],
    blocklists: Tuple[str, ...],
    accept_ids: Tuple[str, ...],
    reject_ids: Tuple[str, ...],
    reason: Optional[str],
    value: int,
    dry_run: bool,
    db: Optional[str],
) -> None:
    """Accept or reject pending qualification requests, and record every decision.

    Accepted workers are also granted the qualification locally (audited, source
    mturk-request); rejections are recorded in the audit. Requests no option covers stay
    pending. Explicit --accept/--reject win over the list rules.

    \b
    Examples:
      mephisto-quals requests decide --requester me --accept-allowlisted trusted --reject-blocklisted banned --dry-run
      mephisto-quals requests decide --requester me --accept 3ABC... --reject 3DEF... --reason "Please retake the test"
    """
    from mephisto_quals.providers.mturk.requests import (
        DEFAULT_REJECT_REASON,
        Rule,
        accept,
        decide,
        list_requests,
        reject,
    )

    if not (allowlists or blocklists or accept_ids or reject_ids):
        raise click.UsageError("say what to decide: --accept-allowlisted, --reject-blocklisted, --accept or --reject")
    both = sorted(set(accept_ids) & set(reject_ids))
    if both:
        raise click.UsageError(f"both accepted and rejected: {', '.join(both)}")
    path = resolve_db(db)
    client, sandbox = mturk_client(path, requester, live, yes, writes=not dry_run)
    pending = list_requests(client, qualifications, sandbox)
    rule = Rule(allowlists, blocklists, value, reason or DEFAULT_REJECT_REASON) if (allowlists or blocklists) else None
    explicit = [accept(i, value) for i in accept_ids] + [reject(i, reason) for i in reject_ids]
    report = decide(path, client, pending, rule=rule, decisions=explicit, dry_run=dry_run)
    for o in report.outcomes:
        line = f"{o.status}: {o.request_id} {o.qualification} {o.worker_id}".rstrip()
        if o.why and o.status != "pending":
            line += f" ({o.why})"
        if o.error:
            click.secho(f"{line}: {o.error}", fg="red", err=True)
        else:
            click.echo(line)
    click.echo(f"{report.summary()} ({side(sandbox)} requester '{requester}')")
    if not report.ok:
        sys.exit(1)


#: In the order the root group lists them.
COMMANDS = (qual_types, requests_group)


def __getattr__(name: str) -> Any:
    """``sync`` moved to :mod:`mephisto_quals.cli.sync`; still importable from here."""
    if name == "sync":
        from mephisto_quals.cli.sync import sync

        return sync
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
