"""``review``: apply review rules to a task's workers (a dry run unless --apply)."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import rich_click as click

from mephisto_quals.cli.base import RichQualsCommand
from mephisto_quals.cli.database import resolve_db
from mephisto_quals.cli.options import db_option, progress_option, verbose_option
from mephisto_quals.cli.output import Progress, change, finish, out, print_report, table
from mephisto_quals.cli.sync import prolific_write_options
from mephisto_quals.errors import OperationFailed

__all__ = ["review", "COMMANDS"]


@click.command(cls=RichQualsCommand)
@click.option("--task", help="Review the units of this task's runs.")
@click.option(
    "--run", "run_ids", multiple=True, metavar="RUN_ID", help="Review the units of this task run (repeatable)."
)
@click.option("--rules", required=True, type=click.Path(exists=True, dir_okay=False), help="Review rules YAML.")
@click.option("--apply", "apply_", is_flag=True, help="Make the changes (default: only show them).")
@prolific_write_options
@verbose_option
@progress_option
@db_option
def review(
    task: Optional[str],
    run_ids: Tuple[str, ...],
    rules: str,
    apply_: bool,
    verbose: bool,
    progress: Optional[bool],
    db: Optional[str],
    prolific: bool = False,
    workspace: str = "My Workspace",
    prolific_requester: Optional[str] = None,
    live: bool = False,
    yes: bool = False,
) -> None:
    """Apply review rules to a task's workers: grant, update or revoke qualifications.

    A dry run by default: prints the planned changes; --apply writes them (audited with
    the rule as the reason). With --prolific, after the commit each qualification the apply
    changed is synced to its Prolific participant group (only the difference), so a
    participant a rule blocks is kept out of live studies at once.

    \b
    Examples:
      mephisto-quals review --task my-task --rules rules.yaml
      mephisto-quals review --run 17 --run 18 --rules rules.yaml --apply
      mephisto-quals review --task my-task --rules rules.yaml --apply --prolific
    """
    if (task is None) == (not run_ids):
        raise click.UsageError("give --task NAME or --run RUN_ID (one of them)")
    try:
        from mephisto_quals.admin import review as reviewing
    except ImportError as e:
        raise OperationFailed(f"review is not available in this install ({e})") from e

    rule_list = reviewing.load_rules(rules)
    path = resolve_db(db)
    client = None
    if prolific and apply_:
        from mephisto_quals.cli.sync import prolific_client

        client = prolific_client(live, prolific_requester)  # a live Prolific without --live stops before any write
    plan = reviewing.plan_review(path, task_name=task, run_ids=list(run_ids) or None, rules=rule_list)
    shown = [c for c in plan.changes if verbose or getattr(c, "changed", True)]
    if shown:
        changes = table(
            "rule", "qualification", "worker", "old → new", "action", title="changes" if apply_ else "planned changes"
        )
        for c in shown:
            rule = c.rule if not isinstance(c.rule, int) else f"rules[{c.rule}]"
            changes.add_row(
                str(rule),
                c.qualification,
                f"{c.worker_name} ({c.worker_id})",
                change(c.old_value, c.new_value),
                c.action,
            )
        out(changes)
    out(plan.summary())
    if not apply_:
        out("dry run: nothing written; run again with --apply to make these changes", style="bold")
        return
    with Progress(len(plan.changes), progress, "review") as bar:
        reports = reviewing.apply_review(path, plan, progress=bar)
    ok = True
    for report in reports:
        ok = print_report(report, verbose) and ok
    if not reports:
        out("nothing to apply")
    if client is not None:
        ok = _push(path, reports, client, workspace, live, yes, verbose) and ok
    finish(ok)


def _push(path: str, reports: List[Any], client: Any, workspace: str, live: bool, yes: bool, verbose: bool) -> bool:
    """--prolific: sync the touched qualifications' participant groups (after the apply committed)."""
    from mephisto_quals.admin.review.apply import push_to_prolific, touched_qualifications
    from mephisto_quals.cli.sync import confirm_prolific_writes

    touched = touched_qualifications(reports)
    if not touched:
        out("Prolific: no qualification changed, nothing to sync")
        return True
    confirm_prolific_writes(client, len(touched), f"sync {', '.join(map(repr, touched))} to their groups", yes)
    ok = True
    for report in push_to_prolific(path, reports, workspace=workspace, client=client, live_ok=live):
        ok = print_report(report, verbose) and ok
    return ok


#: In the order the root group lists them.
COMMANDS = (review,)
