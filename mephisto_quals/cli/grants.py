"""Writing commands: ``grant``, ``revoke``, ``reset-onboarding`` and ``prune`` (``import`` is in
:mod:`mephisto_quals.cli.imports`).

They call the grants API (:mod:`mephisto_quals.admin.grants`), imported inside the command
bodies so ``--help`` does not import Mephisto. Every change is audited with source ``cli``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import rich_click as click

from mephisto_quals.cli.base import RichQualsCommand
from mephisto_quals.cli.database import resolve_db
from mephisto_quals.cli.options import (
    db_option,
    dry_run_option,
    files_option,
    mturk_options,
    progress_option,
    provider_option,
    verbose_option,
)
from mephisto_quals.cli.output import Progress, finish, out, print_report, show_value, table
from mephisto_quals.cli.sync import prolific_options
from mephisto_quals.errors import InputError

__all__ = ["grant", "revoke", "reset_onboarding", "prune", "COMMANDS", "SOURCE"]

#: The audit's source for changes made from the command line.
SOURCE = "cli"


def read_worker_file(handle: Any) -> List[str]:
    """One worker per line; blank lines and # comments are skipped."""
    names = []
    for line in handle:
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line)
    return names


def workers_from(given: Sequence[str], files: Sequence[Any]) -> List[str]:
    """Workers named as arguments and in --file files; at least one, or a usage error."""
    workers = list(given)
    for handle in files:
        workers += read_worker_file(handle)
    if not workers:
        raise click.UsageError("name at least one worker (as arguments or with --file)")
    return workers


def expiry(expires_in: Optional[str], expires_at: Optional[str], now: float) -> Optional[float]:
    """--expires-in / --expires-at as Unix seconds (whole, so exports round-trip exactly), None for permanent."""
    from mephisto_quals.compile.durations import check_expiry, parse_duration, parse_instant

    if expires_in is not None and expires_at is not None:
        raise click.UsageError("give --expires-in or --expires-at, not both")
    if expires_in is not None:
        try:
            seconds = parse_duration(expires_in, "--expires-in")
            moment = None if seconds is None else check_expiry(float(round(now + seconds)), "--expires-in", expires_in)
        except (ValueError, OverflowError) as e:
            raise click.BadParameter(str(e), param_hint="--expires-in") from None
        return moment
    if expires_at is not None:
        try:
            moment = parse_instant(expires_at, "--expires-at")
            check_expiry(moment, "--expires-at", expires_at)
        except (ValueError, OverflowError) as e:
            raise click.BadParameter(str(e), param_hint="--expires-at") from None
        if moment <= now:
            raise click.BadParameter(f"{expires_at!r} is in the past", param_hint="--expires-at")
        return moment
    return None


@contextmanager
def must_exist(name: str, kind: str = "qualification") -> Iterator[None]:
    """For commands that never create: an unknown name is just a typo to report."""
    from mephisto_quals.errors import UnknownQualificationError

    try:
        yield
    except UnknownQualificationError:
        raise InputError(f"{kind} {name!r} does not exist; list them with 'mephisto-quals list'") from None


def on_mturk(
    action: str, path: str, qualification: str, names: List[str], requester: str, live: bool, yes: bool,
    provider: Optional[str], dry_run: bool, **kwargs: Any,
) -> Any:
    """Grant or revoke on MTurk and record locally: sandbox by default, live only with --live and consent."""
    from mephisto_quals.cli.mturk import confirm_live_writes, require_live_flag
    from mephisto_quals.providers.mturk.sync import grant_on_mturk, revoke_on_mturk

    info = require_live_flag(path, requester, live)
    if provider and provider != info.provider_type:
        raise InputError(f"--provider {provider} but requester '{requester}' is {info.provider_type}")
    if not dry_run:
        confirm_live_writes(info, len(names), f"{action} '{qualification}'", yes)
    run = grant_on_mturk if action == "grant" else revoke_on_mturk
    return run(path, qualification, names, requester=requester, live_ok=live, dry_run=dry_run, **kwargs)


def on_prolific(action: str, path: str, qualification: str, names: List[str], workspace: str, requester: Optional[str],
                live: bool, yes: bool, provider: Optional[str], dry_run: bool, **kwargs: Any) -> Any:
    """Grant or revoke in the list's Prolific group and record locally; the real Prolific needs --live and consent."""
    from mephisto_quals.cli.sync import confirm_prolific_writes, prolific_client
    from mephisto_quals.providers.prolific.sync import grant_on_prolific, revoke_on_prolific

    if provider and provider != "prolific":
        raise InputError(f"--provider {provider} with --prolific: Prolific workers are named by participant id")
    client = prolific_client(live, requester)
    if not dry_run:
        confirm_prolific_writes(client, len(names), f"{action} '{qualification}'", yes)
    run = grant_on_prolific if action == "grant" else revoke_on_prolific
    return run(path, qualification, names, workspace=workspace, client=client, live_ok=live, dry_run=dry_run, **kwargs)


@click.command(cls=RichQualsCommand)
@click.argument("qualification")
@click.argument("workers", nargs=-1)
@click.option("--value", type=click.IntRange(-(2**63), 2**63 - 1), default=1, show_default=True,
              help="Value to grant (an integer from -2^63 to 2^63-1).")
@provider_option
@click.option("--reason", help="Why; kept with the grant and in the audit.")
@click.option("--expires-in", metavar="DURATION",
              help="Grant expires after this long: 30m, 12h, 7d, 2w or 'permanent'.")
@click.option("--expires-at", metavar="ISO",
              help="Grant expires at this time, e.g. 2026-12-31 or 2026-12-31T18:00:00+00:00 (UTC if no zone).")
@click.option("--create", is_flag=True, help="Create the qualification if it does not exist.")
@click.option("--description", metavar="TEXT",
              help="With --create: the new qualification's description (Mephisto 1.5.2 databases; up to 500 "
                   "characters, shown by the review app).")
@files_option
@mturk_options
@prolific_options
@dry_run_option
@verbose_option
@progress_option
@db_option
def grant(
    qualification: str, workers: Tuple[str, ...], value: int, provider: Optional[str], reason: Optional[str],
    expires_in: Optional[str], expires_at: Optional[str], create: bool, description: Optional[str],
    files: Tuple[Any, ...],
    requester: Optional[str], live: bool, yes: bool, dry_run: bool,
    verbose: bool, progress: Optional[bool], db: Optional[str],
    prolific: bool = False, workspace: str = "My Workspace", prolific_requester: Optional[str] = None,
) -> None:
    """Grant a qualification (one value) to workers.

    Workers are Mephisto worker ids, or provider worker names with --provider (a worker
    Mephisto has not seen yet gets a record, so the grant applies when they arrive).
    Re-granting updates the value in place. An unknown qualification is an error unless
    --create is given.

    \b
    Examples:
      mephisto-quals grant trusted 12 15 18
      mephisto-quals grant score alice bob --provider mock --value 3 --create
      mephisto-quals grant trusted alice --provider inhouse --create --description "passed the pilot"
      mephisto-quals grant pilot --file workers.txt --provider mturk --expires-in 7d --reason "pilot batch"
      mephisto-quals grant trusted 12 --dry-run
      mephisto-quals grant blocked A1B2C3D4 --requester my_sandbox   # on MTurk too, before they connect
    """
    from mephisto_quals.admin import grants

    names = workers_from(workers, files)
    path = resolve_db(db)
    now = time.time()
    expires = expiry(expires_in, expires_at, now)
    if prolific and requester:
        raise click.UsageError("--prolific or --requester (MTurk), not both")
    if description is not None and (prolific or requester):
        raise click.UsageError("--description works with local grants only (not with --prolific or --requester)")
    if prolific:
        finish(print_report(on_prolific("grant", path, qualification, names, workspace, prolific_requester, live, yes,
                                        provider, dry_run, value=value, reason=reason, expires_at=expires), verbose))
        return
    if requester:
        report = on_mturk("grant", path, qualification, names, requester, live, yes, provider, dry_run,
                          value=value, reason=reason, expires_at=expires)
        finish(print_report(report, verbose))
        return
    with Progress(len(names), progress, f"grant {qualification}") as bar:
        report = grants.grant(
            path, qualification, names, value, provider=provider, reason=reason, expires_at=expires,
            source=SOURCE, create=create, description=description, dry_run=dry_run, progress=bar, now=now,
        )
    finish(print_report(report, verbose))


@click.command(cls=RichQualsCommand)
@click.argument("qualification")
@click.argument("workers", nargs=-1)
@provider_option
@click.option("--reason", help="Why; recorded in the audit.")
@files_option
@mturk_options
@prolific_options
@dry_run_option
@verbose_option
@progress_option
@db_option
def revoke(
    qualification: str, workers: Tuple[str, ...], provider: Optional[str], reason: Optional[str],
    files: Tuple[Any, ...], requester: Optional[str], live: bool, yes: bool, dry_run: bool, verbose: bool,
    progress: Optional[bool], db: Optional[str],
    prolific: bool = False, workspace: str = "My Workspace", prolific_requester: Optional[str] = None,
) -> None:
    """Revoke a qualification from workers.

    A worker who does not hold it is reported as 'not held' (not an error); an unknown
    Mephisto worker id is a failure (exit 1).

    \b
    Examples:
      mephisto-quals revoke trusted 12 15
      mephisto-quals revoke trusted A1B2C3D4 --provider mturk --reason "low agreement"
      mephisto-quals revoke trusted A1B2C3D4 --requester my_live --live --yes
    """
    from mephisto_quals.admin import grants

    names = workers_from(workers, files)
    path = resolve_db(db)
    if prolific and requester:
        raise click.UsageError("--prolific or --requester (MTurk), not both")
    if prolific:
        finish(print_report(on_prolific("revoke", path, qualification, names, workspace, prolific_requester, live, yes,
                                        provider, dry_run, reason=reason), verbose))
        return
    if requester:
        report = on_mturk("revoke", path, qualification, names, requester, live, yes, provider, dry_run, reason=reason)
        finish(print_report(report, verbose))
        return
    with Progress(len(names), progress, f"revoke {qualification}") as bar, must_exist(qualification):
        report = grants.revoke(
            path, qualification, names, provider=provider, reason=reason, source=SOURCE, dry_run=dry_run, progress=bar
        )
    finish(print_report(report, verbose))


@click.command("reset-onboarding", cls=RichQualsCommand)
@click.argument("onboarding")
@click.argument("workers", nargs=-1)
@provider_option
@click.option("--reason", help="Why; recorded in the audit.")
@files_option
@dry_run_option
@verbose_option
@db_option
def reset_onboarding(
    onboarding: str, workers: Tuple[str, ...], provider: Optional[str], reason: Optional[str], files: Tuple[Any, ...],
    dry_run: bool, verbose: bool, db: Optional[str],
) -> None:
    """Clear workers' onboarding result so they can take the onboarding again.

    ONBOARDING is the task's onboarding_qualification; both its pass record and its
    '<name>-failed' record are removed.

    \b
    Examples:
      mephisto-quals reset-onboarding my_onboarding 12
      mephisto-quals reset-onboarding my_onboarding alice --provider mock --reason "retake after fix"
    """
    from mephisto_quals.admin import grants

    names = workers_from(workers, files)
    path = resolve_db(db)
    with must_exist(onboarding, "onboarding qualification"):
        report = grants.reset_onboarding(
            path, onboarding, names, provider=provider, reason=reason, source=SOURCE, dry_run=dry_run
        )
    finish(print_report(report, verbose))


@click.command(cls=RichQualsCommand)
@dry_run_option
@db_option
def prune(dry_run: bool, db: Optional[str]) -> None:
    """Delete expired grants (they already stopped counting at the gate).

    Every removal is recorded in the audit as 'expire'.

    \b
    Examples:
      mephisto-quals prune --dry-run
      mephisto-quals prune
    """
    from mephisto_quals.admin import grants, queries

    path = resolve_db(db)
    now = time.time()
    expired = []
    for summary in queries.list_qualifications(path, now=now):
        if summary.expired:
            for h in queries.holders(path, summary.name, include_expired=True, now=now):
                if h.expires_at is not None and h.expires_at <= now:
                    expired.append((summary.name, h))
    report = grants.prune(path, now=now, source=SOURCE, dry_run=dry_run)
    if expired:
        shown = table("qualification", "worker", "id", "value", "expired at",
                      title="expired grants to remove" if dry_run else "expired grants removed")
        for name, h in expired:
            shown.add_row(name, h.worker_name, str(h.worker_id), show_value(h.value), h.expires)
        out(shown)
    finish(print_report(report, False, changes=False))


#: In the order the root group lists them.
COMMANDS = (grant, revoke, reset_onboarding, prune)
