"""``review``: apply review rules to a task's workers (a dry run unless --apply)."""

from __future__ import annotations

from typing import Optional, Tuple

import rich_click as click

from mephisto_quals.cli.base import RichQualsCommand
from mephisto_quals.cli.database import resolve_db
from mephisto_quals.cli.options import db_option, progress_option, verbose_option
from mephisto_quals.cli.output import Progress, change, finish, out, print_report, table
from mephisto_quals.errors import OperationFailed

__all__ = ["review", "COMMANDS"]


@click.command(cls=RichQualsCommand)
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
        changes = table("rule", "qualification", "worker", "old → new", "action",
                        title="changes" if apply_ else "planned changes")
        for c in shown:
            rule = c.rule if not isinstance(c.rule, int) else f"rules[{c.rule}]"
            changes.add_row(str(rule), c.qualification, f"{c.worker_name} ({c.worker_id})",
                            change(c.old_value, c.new_value), c.action)
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
    finish(ok)


#: In the order the root group lists them.
COMMANDS = (review,)
