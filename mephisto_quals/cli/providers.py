"""Provider-side commands: MTurk qualification types and requests, Prolific lists.

Standalone click commands for the ``mephisto-quals`` group (``cli.add_command(...)``):

- ``qual-types apply FILE --requester NAME [--live [--yes]] [--dry-run]``
- ``requests list --requester NAME [--qualification Q ...] [--live]``
- ``requests decide --requester NAME [--accept-allowlisted Q] [--reject-blocklisted Q]
  [--accept ID ...] [--reject ID ... --reason TEXT] [--value N] [--dry-run] [--live [--yes]]``
- ``export-prolific QUAL [--block] [--format yaml|json]``

MTurk commands use the sandbox unless the requester is a live one *and* ``--live`` is given;
a command that changes live MTurk also asks for confirmation (``--yes`` for scripts; a dry
run and ``requests list`` only read, so they do not ask). A ready MTurk client can be
injected through the click context object (``obj={"mturk_client": client}``, and ``"db"``
for the database when ``--db`` is not given), which is how the tests run these commands
against ``botocore.stub.Stubber``.
"""

from __future__ import annotations

import sqlite3
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Tuple

import click

from mephisto_quals.errors import QualsError

__all__ = ["qual_types", "requests_group", "export_prolific_command", "COMMANDS"]


class InputError(click.ClickException):
    """Bad input or set-up (unknown requester, bad YAML, live without --live): nothing sent. Exit 2."""

    exit_code = 2


class OperationFailed(click.ClickException):
    """MTurk or the database refused something. Exit 1."""

    exit_code = 1


@contextmanager
def _errors() -> Iterator[None]:
    """The package's errors as clean messages with the main CLI's exit codes."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (QualsError, ValueError, FileNotFoundError) as e:
        raise InputError(str(e)) from e
    except ClientError as e:
        from mephisto_quals.providers.mturk.client import error_text

        raise OperationFailed(f"MTurk refused: {error_text(e)}") from e
    except BotoCoreError as e:
        raise OperationFailed(f"MTurk call failed: {e}") from e
    except sqlite3.Error as e:
        raise OperationFailed(f"database error: {e}") from e


def _db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db", "db", metavar="PATH",
        help="Mephisto database.db to use. Default: <core.main_data_directory>/database.db from Mephisto's config.",
    )(f)


def _requester_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--yes", "-y", is_flag=True, help="Do not ask before changing live MTurk (for scripts).")(f)
    f = click.option("--live", is_flag=True, help="Allow a live (real money, real workers) requester.")(f)
    return click.option("--requester", required=True, metavar="NAME",
                        help="Mephisto MTurk requester (sandbox unless it is a live one and --live is given).")(f)


def _resolve_db(db: Optional[str]) -> str:
    """--db, else a ``db`` in the context object (path or LocalMephistoDB), else Mephisto's configured one."""
    obj = click.get_current_context().obj
    if not db and isinstance(obj, dict) and obj.get("db") is not None:
        from mephisto_quals.store.session import database_path

        return database_path(obj["db"])
    from mephisto_quals.cli.main import resolve_db

    return resolve_db(db)


def _client(db: str, requester: str, live: bool, yes: bool, writes: bool) -> Tuple[Any, bool]:
    """(client, sandbox) for the requester; confirms before live writes unless --yes."""
    from mephisto_quals.providers.mturk.client import client_for

    obj = click.get_current_context().obj
    injected = obj.get("mturk_client") if isinstance(obj, dict) else None
    client, sandbox = client_for(db, requester, live_ok=live, client=injected)
    if not sandbox and writes and not yes:
        click.confirm(f"'{requester}' is a LIVE MTurk requester: this changes real qualifications seen by real "
                      "workers. Continue?", abort=True, err=True)
    return client, sandbox


def _side(sandbox: bool) -> str:
    return "sandbox" if sandbox else "LIVE"


# --- qual-types -----------------------------------------------------------------------------------

@click.group("qual-types")
def qual_types() -> None:
    """MTurk qualification types declared in YAML."""


@qual_types.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@_requester_options
@click.option("--dry-run", is_flag=True, help="Show what would be created or updated; send no change.")
@_db_option
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

    with _errors():
        specs = load_types(file)  # validate before touching MTurk
        path = _resolve_db(db)
        client, sandbox = _client(path, requester, live, yes, writes=not dry_run)
        results = ensure_types(client, specs, sandbox, dry_run=dry_run)
    ok = True
    for r in results:
        click.echo(r.summary())
        for w in r.warnings:
            click.secho(f"  warning: {w}", fg="yellow", err=True)
        for e in r.errors:
            ok = False
            click.secho(f"  error: {e}", fg="red", err=True)
    counts: dict = {}
    for r in results:
        counts[r.action] = counts.get(r.action, 0) + 1
    prefix = "dry run, nothing sent: " if dry_run else ""
    click.echo(f"{prefix}{_side(sandbox)} requester '{requester}': "
               + ", ".join(f"{n} {a}" for a, n in sorted(counts.items())))
    if not ok:
        sys.exit(1)


# --- requests -------------------------------------------------------------------------------------

@click.group("requests")
def requests_group() -> None:
    """Workers' requests for your MTurk qualification types."""


@requests_group.command("list")
@click.option("--requester", required=True, metavar="NAME", help="Mephisto MTurk requester.")
@click.option("--live", is_flag=True, help="Allow a live requester (listing only reads).")
@click.option("--qualification", "-q", "qualifications", multiple=True, metavar="Q",
              help="Only requests for this type (name as declared, or an MTurk type id); repeatable. Default: all your types.")
@_db_option
def list_command(requester: str, live: bool, qualifications: Tuple[str, ...], db: Optional[str]) -> None:
    """List pending qualification requests (every page).

    \b
    Examples:
      mephisto-quals requests list --requester me
      mephisto-quals requests list --requester me -q screening_test
    """
    from mephisto_quals.providers.mturk.requests import list_requests

    with _errors():
        path = _resolve_db(db)
        client, sandbox = _client(path, requester, live, yes=True, writes=False)
        found = list_requests(client, qualifications, sandbox)
    for r in found:
        when = r.submitted.isoformat() if hasattr(r.submitted, "isoformat") else (r.submitted or "")
        click.echo(f"{r.request_id}\t{r.qualification}\t{r.worker_id}\t{when}")
    click.echo(f"{len(found)} pending request(s) ({_side(sandbox)} requester '{requester}')")


@requests_group.command("decide")
@_requester_options
@click.option("--qualification", "-q", "qualifications", multiple=True, metavar="Q",
              help="Only requests for this type; repeatable. Default: all your types.")
@click.option("--accept-allowlisted", "allowlists", multiple=True, metavar="QUAL",
              help="Accept requests from workers holding this local qualification (live grants); repeatable: any of them.")
@click.option("--reject-blocklisted", "blocklists", multiple=True, metavar="QUAL",
              help="Reject requests from workers holding this local qualification; repeatable. Wins over --accept-allowlisted.")
@click.option("--accept", "accept_ids", multiple=True, metavar="ID", help="Accept this request; repeatable.")
@click.option("--reject", "reject_ids", multiple=True, metavar="ID", help="Reject this request; repeatable.")
@click.option("--reason", help="Shown to rejected workers (default: a neutral sentence).")
@click.option("--value", type=int, default=1, show_default=True, help="Qualification value for accepted requests.")
@click.option("--dry-run", is_flag=True, help="Show the decisions; send and write nothing.")
@_db_option
def decide_command(
    requester: str, live: bool, yes: bool, qualifications: Tuple[str, ...], allowlists: Tuple[str, ...],
    blocklists: Tuple[str, ...], accept_ids: Tuple[str, ...], reject_ids: Tuple[str, ...], reason: Optional[str],
    value: int, dry_run: bool, db: Optional[str],
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
    from mephisto_quals.providers.mturk.requests import DEFAULT_REJECT_REASON, Rule, accept, decide, list_requests, reject

    if not (allowlists or blocklists or accept_ids or reject_ids):
        raise click.UsageError("say what to decide: --accept-allowlisted, --reject-blocklisted, --accept or --reject")
    both = sorted(set(accept_ids) & set(reject_ids))
    if both:
        raise click.UsageError(f"both accepted and rejected: {', '.join(both)}")
    with _errors():
        path = _resolve_db(db)
        client, sandbox = _client(path, requester, live, yes, writes=not dry_run)
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
    click.echo(f"{report.summary()} ({_side(sandbox)} requester '{requester}')")
    if not report.ok:
        sys.exit(1)


# --- Prolific -------------------------------------------------------------------------------------

@click.command("export-prolific")
@click.argument("qualification")
@click.option("--block", is_flag=True, help="Export a black list (keep holders out) instead of a white list.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--strict", is_flag=True, help="Fail (exit 2) when a holder's name is not a Prolific participant id.")
@_db_option
def export_prolific_command(qualification: str, block: bool, fmt: str, strict: bool, db: Optional[str]) -> None:
    """Print a local list as Prolific eligibility requirements.

    Holders (live grants) who are Prolific participants become a
    CustomWhitelistEligibilityRequirement (or, with --block, a
    CustomBlacklistEligibilityRequirement). Paste the output as the value of
    mephisto.blueprint.quals.prolific. It is a snapshot: export again after changes.

    \b
    Examples:
      mephisto-quals export-prolific trusted > prolific.yaml
      mephisto-quals export-prolific banned --block --format json
    """
    from mephisto_quals.providers.prolific.lists import format_requirements, prolific_lists

    with _errors():
        path = _resolve_db(db)
        lists = prolific_lists(path, [] if block else [qualification], [qualification] if block else [])
        if strict and lists.invalid:
            from mephisto_quals.errors import QualsConfigError

            raise QualsConfigError(lists.invalid)
    for w in lists.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    for p in lists.invalid:
        click.secho(f"left out: {p}", fg="yellow", err=True)
    click.echo(format_requirements(lists.requirements, fmt), nl=False)


#: Everything to attach to the main group.
COMMANDS = (qual_types, requests_group, export_prolific_command)
