"""Task questions: ``explain`` (one worker against a task's requirements) and ``forecast`` (how many pass)."""

from __future__ import annotations

import sys
from typing import Optional

import rich_click as click

from mephisto_quals.cli.base import RichQualsCommand
from mephisto_quals.cli.database import resolve_db
from mephisto_quals.cli.options import db_option, provider_option, task_options
from mephisto_quals.cli.output import err, out, print_notes, table, verdict

__all__ = ["explain", "forecast", "COMMANDS"]


def one_task_source(task: Optional[str], config: Optional[str]) -> None:
    """Exactly one of --task and --config, or a usage error."""
    if (task is None) == (config is None):
        raise click.UsageError("give --task NAME or --config FILE (one of them)")
    if config is not None:
        from mephisto_quals.compile.config import read_yaml_file

        read_yaml_file(config)  # bad YAML or bytes: one message naming the file and line, exit 2


@click.command(cls=RichQualsCommand)
@click.argument("worker")
@task_options
@provider_option
@db_option
def explain(
    worker: str, task: Optional[str], config: Optional[str], provider: Optional[str], db: Optional[str]
) -> None:
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

    one_task_source(task, config)
    result = eligibility.explain(resolve_db(db), worker, provider=provider, task=task, config=config)
    who = result.worker if result.worker_id is None else f"{result.worker} (id {result.worker_id})"
    out(
        f"worker {who}, {result.task.source}"
        + ("; Mephisto has never seen this worker" if result.worker_id is None else "")
    )
    shown = table("where", "requirement", "config path", "worker's value", "verdict")
    for r in result.rows:
        shown.add_row(r.where, r.requirement, r.source, r.actual, verdict(r.verdict))
    if result.rows:
        out(shown)
    else:
        out("this task has no requirements: every worker may work on it")
    local = result.local_verdict
    unknown = sum(r.verdict == "unknown" for r in result.rows)
    line = f"local verdict: {local.upper()}"
    if local == "pass":
        line += " (passes every requirement Mephisto checks"
        line += f"; {unknown} provider-side requirement(s) only the provider can check)" if unknown else ")"
    else:
        failed = [r.requirement for r in result.rows if r.verdict == "fail"]
        line += f" (fails: {', '.join(failed)})"
    out(line, style="bold green" if local == "pass" else "bold red")
    print_notes(eligibility.cost_notes(result.task.plan))


@click.command(cls=RichQualsCommand)
@task_options
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

    one_task_source(task, config)
    result = eligibility.forecast(resolve_db(db), task=task, config=config)
    kind = f"{result.task.provider_type} " if result.task.provider_type else ""
    out(
        f"{result.task.source}: {result.passing} of {result.known_workers} known {kind}worker(s) "
        "pass every local requirement",
        style="bold",
    )
    if result.per_requirement:
        shown = table("requirement", "config path", "workers passing")
        for req, n in result.per_requirement:
            shown.add_row(req.describe(), req.source, f"{n} of {result.known_workers}")
        out(shown)
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


#: In the order the root group lists them.
COMMANDS = (explain, forecast)
