"""The ``mephisto-quals`` command line: grant, revoke, inspect and review qualifications.

Every command works on one Mephisto ``database.db``: ``--db PATH``, or the one Mephisto's own
tools use (``<core.main_data_directory>/database.db`` from ``~/.mephisto/config.yml``).
Heavy imports (Mephisto, OmegaConf, the grants API) happen inside the commands, so ``--help``
stays fast. Exit codes: 0 success, 1 when a worker or an operation failed (whatever succeeded
is kept), 2 for bad usage or bad input (nothing is written).
"""

from __future__ import annotations

import csv
import os
import sqlite3
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import rich_click as click

from mephisto_quals.errors import QualsError

__all__ = ["cli", "main"]

PROVIDERS = ("mock", "mturk", "mturk_sandbox", "prolific")
SOURCE = "cli"
CSV_COLUMNS = ("worker", "worker_id", "provider", "value", "expires_at", "reason")

click.rich_click.SHOW_ARGUMENTS = True
click.rich_click.USE_RICH_MARKUP = False  # worker names and reasons may contain [brackets]


class InputError(click.ClickException):
    """Bad input (unknown qualification, bad file, bad config): nothing was written. Exit 2."""

    exit_code = 2


class OperationFailed(click.ClickException):
    """The database refused an operation. Exit 1."""

    exit_code = 1


class QualsGroup(click.RichGroup):
    """Turns the package's own errors into clean messages with the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (QualsError, ValueError, FileNotFoundError) as e:
            if isinstance(e, RuntimeError):  # e.g. another review apply of the same units is under way
                raise OperationFailed(str(e)) from e
            # UnknownQualificationError, QualsConfigError, bad durations/dates, missing DB file.
            raise InputError(str(e)) from e
        except sqlite3.Error as e:
            raise OperationFailed(f"database error: {e}") from e
        except Exception as e:  # MTurk (botocore) failures: the operation failed, not the input
            if type(e).__module__.startswith("botocore"):
                raise OperationFailed(f"MTurk error: {e}") from e
            raise


# ---------------------------------------------------------------------------------------------
# Shared options and helpers


def mturk_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--requester / --live / --yes: make the change on MTurk too (sandbox unless --live)."""
    f = click.option("--yes", is_flag=True, help="Do not ask before writing to a live MTurk requester (for scripts).")(f)
    f = click.option("--live", is_flag=True, help="Allow a live (real money) MTurk requester.")(f)
    f = click.option("--requester", metavar="NAME",
                     help="Also make the change on MTurk through this Mephisto requester (sandbox unless --live); "
                          "workers are MTurk worker ids.")(f)
    return f


def _on_mturk(
    action: str, path: str, qualification: str, names: List[str], requester: str, live: bool, yes: bool,
    provider: Optional[str], dry_run: bool, **kwargs: Any,
) -> Any:
    """Grant or revoke on MTurk and record locally: sandbox by default, live only with --live and consent."""
    from mephisto_quals.cli.mturk_common import confirm_live_writes, require_live_flag
    from mephisto_quals.providers.mturk.sync import grant_on_mturk, revoke_on_mturk

    info = require_live_flag(path, requester, live)
    if provider and provider != info.provider_type:
        raise InputError(f"--provider {provider} but requester '{requester}' is {info.provider_type}")
    if not dry_run:
        confirm_live_writes(info, len(names), f"{action} '{qualification}'", yes)
    run = grant_on_mturk if action == "grant" else revoke_on_mturk
    return run(path, qualification, names, requester=requester, live_ok=live, dry_run=dry_run, **kwargs)


def files_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--file FILE: workers one per line, in addition to those on the command line."""
    return click.option("--file", "files", type=click.File("r"), multiple=True, metavar="FILE",
                        help="Read workers from FILE, one per line ('-' for stdin); # starts a comment.")(f)


def db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db",
        "db",
        metavar="PATH",
        help="Mephisto database.db to use. Default: <core.main_data_directory>/database.db from Mephisto's config.",
    )(f)


def provider_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--provider",
        type=click.Choice(PROVIDERS),
        help="Name workers by their provider worker name (e.g. an MTurk worker id) instead of Mephisto worker id.",
    )(f)


def progress_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Progress bar on stderr (default: when stderr is a terminal).",
    )(f)


def dry_run_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")(f)


def verbose_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-v", "--verbose", is_flag=True, help="Print every worker's outcome, not only failures.")(f)


def resolve_db(db: Optional[str]) -> str:
    """The database file: --db, or where Mephisto's config says its data lives. Never prompts."""
    if db:
        if not os.path.isfile(db):
            raise InputError(f"--db {db}: no such file (give the path of a Mephisto database.db)")
        return db
    from mephisto.operations.config_handler import DEFAULT_CONFIG_FILE, get_config_arg

    data_dir = get_config_arg("core", "main_data_directory")
    if not data_dir:
        raise InputError(
            f"no Mephisto data directory is configured ({DEFAULT_CONFIG_FILE} has no core.main_data_directory): "
            "pass --db PATH/TO/database.db, or run 'mephisto config core.main_data_directory DIR'"
        )
    path = os.path.join(os.path.expanduser(str(data_dir)), "database.db")
    if not os.path.isfile(path):
        raise InputError(
            f"no Mephisto database at {path} (core.main_data_directory in {DEFAULT_CONFIG_FILE}); "
            "pass --db PATH/TO/database.db"
        )
    return path


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty():
        # Piped output: do not squeeze tables into 80 columns.
        width = int(os.environ.get("COLUMNS") or 0) or 200
    return Console(file=stream, width=width, markup=False, emoji=False, highlight=False, soft_wrap=False)


def out(text: Any = "", style: Optional[str] = None) -> None:
    _console().print(text, style=style)


def err(text: Any, style: Optional[str] = None) -> None:
    _console(stderr=True).print(text, style=style)


def _table(*columns: str, title: Optional[str] = None) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _verdict(text: str) -> Any:
    from rich.text import Text

    return Text(text, style={"pass": "green", "fail": "bold red", "unknown": "yellow"}.get(text, ""))


def _show_value(value: Any) -> str:
    return "" if value is None else str(value)


def _change(old: Any, new: Any) -> str:
    return f"{'-' if old is None else old} → {'-' if new is None else new}"


class _Progress:
    """A tqdm bar on stderr fed by the grants API's ``progress(n)`` callback."""

    def __init__(self, total: int, enabled: Optional[bool], desc: str):
        show = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
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

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _read_worker_file(handle: Any) -> List[str]:
    """One worker per line; blank lines and # comments are skipped."""
    names = []
    for line in handle:
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line)
    return names


def _workers(given: Sequence[str], files: Sequence[Any]) -> List[str]:
    workers = list(given)
    for handle in files:
        workers += _read_worker_file(handle)
    if not workers:
        raise click.UsageError("name at least one worker (as arguments or with --file)")
    return workers


def _outcome_line(o: Any, dry_run: bool) -> str:
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
    return f"{status}: {who}: {_change(o.old_value, o.new_value)}"


def _print_report(report: Any, verbose: bool, changes: bool = True) -> bool:
    """Failures (stderr), changes (when asked, or in a dry run) and the summary line; True if all ok."""
    for o in report.outcomes:
        if not o.ok:
            err(_outcome_line(o, report.dry_run), style="red")
        elif changes and (verbose or (report.dry_run and o.status not in ("unchanged", "not held"))):
            out(_outcome_line(o, report.dry_run))
    out(report.summary())
    return bool(report.ok)


@contextmanager
def _must_exist(name: str, kind: str = "qualification") -> Iterator[None]:
    """For commands that never create: an unknown name is just a typo to report."""
    from mephisto_quals.admin.grants import UnknownQualificationError

    try:
        yield
    except UnknownQualificationError:
        raise InputError(f"{kind} {name!r} does not exist; list them with 'mephisto-quals list'") from None


def _finish(ok: bool) -> None:
    if not ok:
        sys.exit(1)


def _expiry(expires_in: Optional[str], expires_at: Optional[str], now: float) -> Optional[float]:
    """Unix seconds (whole, so exports round-trip exactly) or None for permanent."""
    from mephisto_quals.compile.durations import parse_duration, parse_instant

    if expires_in is not None and expires_at is not None:
        raise click.UsageError("give --expires-in or --expires-at, not both")
    if expires_in is not None:
        try:
            seconds = parse_duration(expires_in, "--expires-in")
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--expires-in") from None
        return None if seconds is None else float(round(now + seconds))
    if expires_at is not None:
        try:
            moment = parse_instant(expires_at, "--expires-at")
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--expires-at") from None
        if moment <= now:
            raise click.BadParameter(f"{expires_at!r} is in the past", param_hint="--expires-at")
        return moment
    return None


# ---------------------------------------------------------------------------------------------
# The group


@click.group(cls=QualsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Grant, revoke, inspect and review Mephisto qualifications, with an audit of every change.

    Every command takes --db PATH (a Mephisto database.db); without it the database in
    Mephisto's configured data directory is used. Exit codes: 0 success, 1 a worker or an
    operation failed (what succeeded is kept), 2 bad usage or input (nothing written).

    \b
    Examples:
      mephisto-quals list
      mephisto-quals grant trusted 12 15 --reason "pilot ok"
      mephisto-quals grant trusted A1B2C3D4 --provider mturk --expires-in 30d
      mephisto-quals explain alice --provider mock --task my-task
    """


def main() -> None:
    cli(prog_name="mephisto-quals")


@cli.command("wut", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
def wut(args: Tuple[str, ...]) -> None:
    """Mephisto's 'wut' with the _quals blueprints registered: their arguments, with help.

    Mephisto's own 'mephisto wut' does not load plugins, so it does not know the _quals
    blueprints; this runs the same command after registering them.

    \b
    Examples:
      mephisto-quals wut blueprint=static_task_quals
      mephisto-quals wut blueprint=mock_quals quals
    """
    import mephisto_quals.integration.blueprints  # noqa: F401  (registers the _quals blueprints)
    from mephisto.client.cli import get_wut_arguments

    get_wut_arguments(args)


def _attach_provider_commands() -> None:
    """MTurk / Prolific commands live in their own modules (plain click, imported lazily inside)."""
    from mephisto_quals.cli.mturk_common import sync
    from mephisto_quals.cli.providers import COMMANDS

    cli.add_command(sync)
    for command in COMMANDS:  # qual-types, requests, export-prolific
        cli.add_command(command)


# ---------------------------------------------------------------------------------------------
# Writing commands


@cli.command()
@click.argument("qualification")
@click.argument("workers", nargs=-1)
@click.option("--value", type=int, default=1, show_default=True, help="Value to grant (an integer).")
@provider_option
@click.option("--reason", help="Why; kept with the grant and in the audit.")
@click.option("--expires-in", metavar="DURATION", help="Grant expires after this long: 30m, 12h, 7d, 2w or 'permanent'.")
@click.option("--expires-at", metavar="ISO", help="Grant expires at this time, e.g. 2026-12-31 or 2026-12-31T18:00:00+00:00 (UTC if no zone).")
@click.option("--create", is_flag=True, help="Create the qualification if it does not exist.")
@files_option
@mturk_options
@dry_run_option
@verbose_option
@progress_option
@db_option
def grant(
    qualification: str, workers: Tuple[str, ...], value: int, provider: Optional[str], reason: Optional[str],
    expires_in: Optional[str], expires_at: Optional[str], create: bool, files: Tuple[Any, ...],
    requester: Optional[str], live: bool, yes: bool, dry_run: bool,
    verbose: bool, progress: Optional[bool], db: Optional[str],
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
      mephisto-quals grant pilot --file workers.txt --provider mturk --expires-in 7d --reason "pilot batch"
      mephisto-quals grant trusted 12 --dry-run
      mephisto-quals grant blocked A1B2C3D4 --requester my_sandbox   # on MTurk too, before they connect
    """
    from mephisto_quals.admin import grants

    names = _workers(workers, files)
    path = resolve_db(db)
    now = time.time()
    expiry = _expiry(expires_in, expires_at, now)
    if requester:
        report = _on_mturk("grant", path, qualification, names, requester, live, yes, provider, dry_run,
                           value=value, reason=reason, expires_at=expiry)
        _finish(_print_report(report, verbose))
        return
    with _Progress(len(names), progress, f"grant {qualification}") as bar:
        report = grants.grant(
            path, qualification, names, value, provider=provider, reason=reason, expires_at=expiry,
            source=SOURCE, create=create, dry_run=dry_run, progress=bar, now=now,
        )
    _finish(_print_report(report, verbose))


@cli.command()
@click.argument("qualification")
@click.argument("workers", nargs=-1)
@provider_option
@click.option("--reason", help="Why; recorded in the audit.")
@files_option
@mturk_options
@dry_run_option
@verbose_option
@progress_option
@db_option
def revoke(
    qualification: str, workers: Tuple[str, ...], provider: Optional[str], reason: Optional[str], files: Tuple[Any, ...],
    requester: Optional[str], live: bool, yes: bool, dry_run: bool, verbose: bool, progress: Optional[bool],
    db: Optional[str],
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

    names = _workers(workers, files)
    path = resolve_db(db)
    if requester:
        report = _on_mturk("revoke", path, qualification, names, requester, live, yes, provider, dry_run, reason=reason)
        _finish(_print_report(report, verbose))
        return
    with _Progress(len(names), progress, f"revoke {qualification}") as bar, _must_exist(qualification):
        report = grants.revoke(
            path, qualification, names, provider=provider, reason=reason, source=SOURCE, dry_run=dry_run, progress=bar
        )
    _finish(_print_report(report, verbose))


@cli.command("reset-onboarding")
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

    names = _workers(workers, files)
    path = resolve_db(db)
    with _must_exist(onboarding, "onboarding qualification"):
        report = grants.reset_onboarding(
            path, onboarding, names, provider=provider, reason=reason, source=SOURCE, dry_run=dry_run
        )
    _finish(_print_report(report, verbose))


@cli.command()
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
    from mephisto_quals.admin import grants
    from mephisto_quals.admin import queries

    path = resolve_db(db)
    now = time.time()
    expired = []
    for summary in queries.list_qualifications(path, now=now):
        if summary.expired:
            for h in queries.holders(path, summary.name, include_expired=True, now=now):
                if h.expires_at is not None and h.expires_at <= now:
                    expired.append((summary.name, h))
    if expired:
        table = _table("qualification", "worker", "id", "value", "expired at",
                       title="expired grants to remove" if dry_run else "expired grants removed")
        for name, h in expired:
            table.add_row(name, h.worker_name, str(h.worker_id), _show_value(h.value), h.expires)
        report = grants.prune(path, now=now, source=SOURCE, dry_run=dry_run)
        out(table)
    else:
        report = grants.prune(path, now=now, source=SOURCE, dry_run=dry_run)
    _finish(_print_report(report, False, changes=False))


# ---------------------------------------------------------------------------------------------
# Reading commands


@cli.command("list")
@db_option
def list_qualifications(db: Optional[str]) -> None:
    """List qualifications with how many workers hold each (and how many grants expired).

    \b
    Example:
      mephisto-quals list --db ~/mephisto/data/database.db
    """
    from mephisto_quals.admin import queries

    rows = queries.list_qualifications(resolve_db(db))
    if not rows:
        out("no qualifications in this database")
        return
    table = _table("qualification", "holders", "expired")
    for q in rows:
        table.add_row(q.name, str(q.holders), str(q.expired))
    out(table)


@cli.command()
@click.argument("qualification")
@click.option("--include-expired", is_flag=True, help="Also list grants whose expiry has passed.")
@db_option
def show(qualification: str, include_expired: bool, db: Optional[str]) -> None:
    """Show who holds a qualification: worker, id, provider, value, expiry and reason.

    \b
    Examples:
      mephisto-quals show trusted
      mephisto-quals show trusted --include-expired
    """
    from mephisto_quals.admin import queries

    now = time.time()
    rows = queries.holders(resolve_db(db), qualification, include_expired=include_expired, now=now)
    table = _table("worker", "id", "provider", "value", "expires", "reason", title=f"holders of '{qualification}'")
    for h in rows:
        expires = h.expires or "never"
        if h.expires_at is not None and h.expires_at <= now:
            expires += " (expired)"
        table.add_row(h.worker_name, str(h.worker_id), h.provider_type or "", _show_value(h.value), expires, h.reason or "")
    if rows:
        out(table)
    out(f"{len(rows)} worker(s) hold '{qualification}'" + ("" if include_expired else " (expired grants not shown)"))


@cli.command()
@click.option("--qualification", "-q", help="Only changes to this qualification.")
@click.option("--worker", "-w", help="Only changes to this worker (Mephisto id or worker name).")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True,
              help="Show the newest N changes (0: all).")
@db_option
def history(qualification: Optional[str], worker: Optional[str], limit: int, db: Optional[str]) -> None:
    """Show the audit of recorded changes, newest first.

    Columns: time (UTC), qualification, worker, old → new value, action, reason, source
    (cli, api, review, ...) and the OS user who made the change.

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
    table = _table("time (UTC)", "qualification", "worker", "old → new", "action", "reason", "source", "os user")
    for e in entries:
        table.add_row(e.when, e.qualification, f"{e.worker_name} ({e.worker_id})", _change(e.old_value, e.new_value),
                      e.action, e.reason or "", e.source, e.os_user)
    out(table)
    if limit and len(entries) == limit:
        out(f"newest {limit} shown; --limit 0 shows all", style="dim")


# ---------------------------------------------------------------------------------------------
# CSV import / export


@dataclass
class CsvRow:
    line: int
    worker: str
    provider: Optional[str]
    value: int
    expires_at: Optional[float]
    reason: Optional[str]


def _provider_name(worker_name: str, provider: Optional[str]) -> str:
    """The name the provider knows (Mephisto adds ``_sandbox`` for sandbox providers)."""
    from mephisto_quals.store.workers import SANDBOX_PROVIDERS

    if provider in SANDBOX_PROVIDERS and worker_name.endswith("_sandbox"):
        return worker_name[: -len("_sandbox")]
    return worker_name


def read_grant_csv(handle: Any, provider: Optional[str], reason: Optional[str], now: float) -> List[CsvRow]:
    """Parse and validate a whole grant CSV; raise InputError listing every bad line."""
    from mephisto_quals.compile.durations import parse_instant
    from mephisto_quals.store.workers import KNOWN_PROVIDERS, mephisto_worker_name, parse_refs

    problems: List[str] = []
    reader = csv.reader(handle)
    header: Optional[List[str]] = None
    for cells in reader:
        if any(c.strip() for c in cells):
            header = [c.strip().lower() for c in cells]
            break
    if header is None:
        raise InputError("the CSV is empty; its first line must be a header such as: worker,value,expires_at,reason")
    header_line = reader.line_num
    unknown = [c for c in header if c not in CSV_COLUMNS]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if unknown or dupes or not ({"worker", "worker_id"} & set(header)):
        why = []
        if unknown:
            why.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}")
        if dupes:
            why.append(f"repeated column(s) {', '.join(dupes)}")
        if not ({"worker", "worker_id"} & set(header)):
            why.append("no 'worker' or 'worker_id' column")
        raise InputError(
            f"line {header_line}: bad CSV header ({'; '.join(why)}); the first line must be a header with a "
            f"'worker' or 'worker_id' column and optionally {', '.join(c for c in CSV_COLUMNS if c not in ('worker', 'worker_id'))}"
        )

    rows: List[CsvRow] = []
    seen: Dict[Tuple[Optional[str], str], CsvRow] = {}
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            problems.append(f"line {line}: {len(cells)} fields but the header has {len(header)}")
            continue
        cell = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
        bad: List[str] = []
        row_provider = cell.get("provider") or None
        if row_provider is not None and row_provider not in KNOWN_PROVIDERS:
            bad.append(f"provider {row_provider!r} is not one of {', '.join(sorted(KNOWN_PROVIDERS))}")
        elif row_provider and provider and row_provider != provider:
            bad.append(f"provider {row_provider!r} differs from --provider {provider}")
        row_provider = row_provider or provider
        name, worker_id = cell.get("worker", ""), cell.get("worker_id", "")
        if name and row_provider:
            given, ref_provider = name, row_provider  # a provider worker name: portable across databases
        elif worker_id:
            given, ref_provider = worker_id, None  # a Mephisto worker id
        elif name:
            given, ref_provider = name, None
        else:
            given, ref_provider = "", None
            bad.append("empty worker id")
        if given:
            _, refused = parse_refs([given], ref_provider)
            if refused:
                bad.append(f"worker {given!r}: {next(iter(refused.values()))}")
        value_text = cell.get("value", "")
        value = 1
        if value_text:
            try:
                value = int(value_text)
            except ValueError:
                bad.append(f"value {value_text!r} is not an integer")
        expires: Optional[float] = None
        if cell.get("expires_at"):
            try:
                expires = parse_instant(cell["expires_at"], "expires_at")
            except ValueError as e:
                bad.append(str(e))
            else:
                if expires <= now:
                    bad.append(f"expires_at {cell['expires_at']!r} is in the past")
        row = CsvRow(line, given, ref_provider, value, expires, cell.get("reason") or reason)
        if given and not bad:
            key = (ref_provider, mephisto_worker_name(given, ref_provider) if ref_provider else str(int(given)))
            first = seen.get(key)
            if first is not None:
                if (first.value, first.expires_at, first.reason) != (row.value, row.expires_at, row.reason):
                    bad.append(f"worker {given!r} is also on line {first.line} with a different value, expiry or reason")
                else:
                    continue  # an exact repeat: harmless
            else:
                seen[key] = row
        if bad:
            problems.append(f"line {line}: {'; '.join(bad)}")
        else:
            rows.append(row)
    if problems:
        raise InputError(
            f"{len(problems)} bad line(s) in the CSV; nothing was imported:\n" + "\n".join(f"  {p}" for p in problems)
        )
    if not rows:
        raise InputError("the CSV has a header but no rows")
    return rows


@cli.command("import")
@click.argument("qualification")
@click.argument("csv_file", metavar="FILE.csv", type=click.File("r", encoding="utf-8-sig"))
@provider_option
@click.option("--reason", help="Reason for rows whose reason column is empty.")
@click.option("--create", is_flag=True, help="Create the qualification if it does not exist.")
@dry_run_option
@verbose_option
@progress_option
@db_option
def import_csv(
    qualification: str, csv_file: Any, provider: Optional[str], reason: Optional[str], create: bool, dry_run: bool,
    verbose: bool, progress: Optional[bool], db: Optional[str],
) -> None:
    """Grant a qualification from a CSV file, one value (and expiry, reason) per worker.

    The first line is a header. Columns: 'worker' (a Mephisto worker id, or a provider
    worker name when the row has a provider), or 'worker_id' (a Mephisto worker id);
    optional 'provider', 'value' (default 1), 'expires_at' (ISO time, UTC if no zone) and
    'reason'. The output of 'export' imports as it is. The whole file is checked first:
    any bad line stops the import with every bad line listed, and nothing is written.

    \b
    Example file:
      worker,value,expires_at,reason
      alice,3,2030-01-01,gold standard
      bob,1,,
    \b
    Examples:
      mephisto-quals import score scores.csv --provider mock --create
      mephisto-quals export trusted --output trusted.csv && mephisto-quals import trusted trusted.csv --db other.db --create
    """
    from mephisto_quals.admin import grants

    now = time.time()
    rows = read_grant_csv(csv_file, provider, reason, now)
    path = resolve_db(db)
    grant_rows = [grants.GrantRow(r.worker, r.value, r.provider, r.expires_at, r.reason) for r in rows]
    with _Progress(len(rows), progress, f"import {qualification}") as bar:  # one transaction: all or nothing
        report = grants.grant_rows(path, qualification, grant_rows, source=SOURCE, create=create, dry_run=dry_run,
                                   progress=bar, now=now)
    _finish(_print_report(report, verbose))


@cli.command("export")
@click.argument("qualification")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to FILE (default: stdout).")
@click.option("--include-expired", is_flag=True, help="Also export grants whose expiry has passed (those rows cannot be imported again).")
@click.option("--format", "fmt", type=click.Choice(["csv", "prolific"]), default="csv", show_default=True,
              help="csv: holders for 'import'; prolific: a CustomWhitelistEligibilityRequirement (YAML) for "
                   "mephisto.blueprint.quals.prolific.")
@click.option("--block", is_flag=True, help="With --format prolific: a CustomBlacklistEligibilityRequirement instead.")
@db_option
def export_csv(
    qualification: str, output: Optional[str], include_expired: bool, fmt: str, block: bool, db: Optional[str]
) -> None:
    """Write a qualification's holders as CSV: worker,worker_id,provider,value,expires_at,reason.

    'worker' is the provider's worker name (without Mephisto's _sandbox suffix), so the file
    imports into this or another Mephisto database with 'import'. Empty cells mean unset.
    With --format prolific, the holders who are Prolific participants become an eligibility
    requirement to paste under mephisto.blueprint.quals.prolific.

    \b
    Examples:
      mephisto-quals export trusted --output trusted.csv
      mephisto-quals export score > score.csv
      mephisto-quals export banned --format prolific --block > prolific.yaml
    """
    from mephisto_quals.admin import queries

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

    def write(handle: Any) -> None:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for h in rows:
            writer.writerow([_provider_name(h.worker_name, h.provider_type), h.worker_id, h.provider_type or "",
                             _show_value(h.value), h.expires, h.reason or ""])

    if output:
        with open(output, "w", newline="", encoding="utf-8") as handle:
            write(handle)
        err(f"exported {len(rows)} grant(s) of '{qualification}' to {output}")
    else:
        write(sys.stdout)


# ---------------------------------------------------------------------------------------------
# Task questions


def _task_source(task: Optional[str], config: Optional[str]) -> None:
    if (task is None) == (config is None):
        raise click.UsageError("give --task NAME or --config FILE (one of them)")


def _print_notes(notes: Iterable[str]) -> None:
    for note in notes:
        out(f"cost: {note}", style="yellow")


@cli.command()
@click.argument("worker")
@click.option("--task", help="Mephisto task name (the args of its newest run are used).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="Task config YAML (with a mephisto node, or a run config).")
@provider_option
@db_option
def explain(worker: str, task: Optional[str], config: Optional[str], provider: Optional[str], db: Optional[str]) -> None:
    """Explain every requirement of a task for one worker: their value and pass / fail / unknown.

    'local' rows come from mephisto.blueprint.quals, 'mephisto' rows from Mephisto's own
    settings (block_qualification, onboarding); 'mturk' / 'prolific' rows are decided by the
    provider and show as unknown.

    \b
    Examples:
      mephisto-quals explain 12 --task my-task
      mephisto-quals explain A1B2C3D4 --provider mturk --config hydra_configs/conf/example.yaml
    """
    from mephisto_quals.admin import eligibility

    _task_source(task, config)
    result = eligibility.explain(resolve_db(db), worker, provider=provider, task=task, config=config)
    who = result.worker if result.worker_id is None else f"{result.worker} (id {result.worker_id})"
    out(f"worker {who}, {result.task.source}" + ("; Mephisto has never seen this worker" if result.worker_id is None else ""))
    table = _table("where", "requirement", "config path", "worker's value", "verdict")
    for r in result.rows:
        table.add_row(r.where, r.requirement, r.source, r.actual, _verdict(r.verdict))
    if result.rows:
        out(table)
    else:
        out("this task has no requirements: every worker may work on it")
    verdict = result.local_verdict
    unknown = sum(r.verdict == "unknown" for r in result.rows)
    line = f"local verdict: {verdict.upper()}"
    if verdict == "pass":
        line += " (passes every requirement Mephisto checks"
        line += f"; {unknown} provider-side requirement(s) only the provider can check)" if unknown else ")"
    else:
        failed = [r.requirement for r in result.rows if r.verdict == "fail"]
        line += f" (fails: {', '.join(failed)})"
    out(line, style="bold green" if verdict == "pass" else "bold red")
    _print_notes(eligibility.cost_notes(result.task.plan))


@cli.command()
@click.option("--task", help="Mephisto task name (the args of its newest run are used).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="Task config YAML (with a mephisto node, or a run config).")
@db_option
def forecast(task: Optional[str], config: Optional[str], db: Optional[str]) -> None:
    """Forecast how many known workers could work on a task, and which requirement limits it.

    Counts workers Mephisto knows (of the task's provider type) who pass every local
    requirement, and how many pass each one alone. MTurk / Prolific requirements are not
    counted: only the provider knows them.

    \b
    Examples:
      mephisto-quals forecast --task my-task
      mephisto-quals forecast --config hydra_configs/conf/example.yaml
    """
    from mephisto_quals.admin import eligibility

    _task_source(task, config)
    result = eligibility.forecast(resolve_db(db), task=task, config=config)
    kind = f"{result.task.provider_type} " if result.task.provider_type else ""
    out(f"{result.task.source}: {result.passing} of {result.known_workers} known {kind}worker(s) pass every local requirement",
        style="bold")
    if result.per_requirement:
        table = _table("requirement", "config path", "workers passing")
        for req, n in result.per_requirement:
            table.add_row(req.describe(), req.source, f"{n} of {result.known_workers}")
        out(table)
    else:
        out("this task has no local requirements")
    for warning in result.warnings:
        if warning.startswith("cost: "):
            out(warning, style="yellow")
        elif result.passing == 0 and "nobody" in warning:
            out(f"WARNING: {warning}", style="bold red")
            if not sys.stdout.isatty() and sys.stderr.isatty():
                err(f"WARNING: {warning}", style="bold red")
        else:
            out(f"warning: {warning}", style="yellow")


# ---------------------------------------------------------------------------------------------
# Review


@cli.command()
@click.option("--task", help="Review the units of this task's runs.")
@click.option("--run", "run_ids", multiple=True, metavar="RUN_ID", help="Review the units of this task run (repeatable).")
@click.option("--rules", required=True, type=click.Path(exists=True, dir_okay=False), help="Review rules YAML.")
@click.option("--apply", "apply_", is_flag=True, help="Make the changes (default: only show them).")
@verbose_option
@progress_option
@db_option
def review(
    task: Optional[str], run_ids: Tuple[str, ...], rules: str, apply_: bool, verbose: bool, progress: Optional[bool],
    db: Optional[str],
) -> None:
    """Apply review rules to a task's workers: grant, update or revoke qualifications.

    A dry run by default: prints the planned changes; --apply writes them (audited with
    the rule as the reason).

    \b
    Examples:
      mephisto-quals review --task my-task --rules rules.yaml
      mephisto-quals review --run 17 --run 18 --rules rules.yaml --apply
    """
    if (task is None) == (not run_ids):
        raise click.UsageError("give --task NAME or --run RUN_ID (one of them)")
    try:
        from mephisto_quals.admin import review as reviewing
    except ImportError as e:
        raise OperationFailed(f"review is not available in this install ({e})") from e

    rule_list = reviewing.load_rules(rules)
    path = resolve_db(db)
    plan = reviewing.plan_review(path, task_name=task, run_ids=list(run_ids) or None, rules=rule_list)
    shown = [c for c in plan.changes if verbose or getattr(c, "changed", True)]
    if shown:
        table = _table("rule", "qualification", "worker", "old → new", "action",
                       title="changes" if apply_ else "planned changes")
        for c in shown:
            rule = c.rule if not isinstance(c.rule, int) else f"rules[{c.rule}]"
            table.add_row(str(rule), c.qualification, f"{c.worker_name} ({c.worker_id})", _change(c.old_value, c.new_value),
                          c.action)
        out(table)
    out(plan.summary())
    if not apply_:
        out("dry run: nothing written; run again with --apply to make these changes", style="bold")
        return
    with _Progress(len(plan.changes), progress, "review") as bar:
        reports = reviewing.apply_review(path, plan, progress=bar)
    ok = True
    for report in reports:
        ok = _print_report(report, verbose) and ok
    if not reports:
        out("nothing to apply")
    _finish(ok)


if __name__ == "__main__":  # pragma: no cover
    main()


_attach_provider_commands()
