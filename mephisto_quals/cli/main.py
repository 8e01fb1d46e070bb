"""The ``mephisto-quals`` command line: the root group, with every command attached from its module.

Laid out as Mephisto's own ``mephisto/client/cli.py``: this root is short, each group of
commands lives in its own module (``grants``, ``queries``, ``eligibility``, ``review``,
``sync``, ``mturk``, ``prolific``, ``wut``, ``maintenance``), and heavy imports (Mephisto, OmegaConf, the grants API)
happen inside the command bodies, so ``--help`` stays fast and does not import Mephisto.
Errors become clean messages in one place (:mod:`mephisto_quals.cli.base`). Exit codes: 0
success, 1 a worker or an operation failed (what succeeded is kept), 2 bad usage or input
(nothing written).
"""

from __future__ import annotations

import rich_click as click

from mephisto_quals.cli import eligibility, grants, imports, maintenance, mturk, prolific, queries, review, sync, wut
from mephisto_quals.cli.base import CONTEXT_SETTINGS, RichQualsGroup

__all__ = ["cli", "main", "attach_commands", "COMMAND_MODULES"]


@click.group(cls=RichQualsGroup, context_settings=CONTEXT_SETTINGS)
def cli() -> None:
    """Grant, revoke, inspect and review Mephisto qualifications, with an audit of every change.

    Every command takes --db PATH (a Mephisto database.db); without it $MEPHISTO_QUALS_DB,
    else the database in Mephisto's configured data directory is used. Exit codes: 0
    success, 1 a worker or an operation failed (what succeeded is kept), 2 bad usage or
    input (nothing written).

    \b
    Examples:
      mephisto-quals list
      mephisto-quals grant trusted 12 15 --reason "pilot ok"
      mephisto-quals grant trusted A1B2C3D4 --provider mturk --expires-in 30d
      mephisto-quals explain alice --provider mock --task my-task
    """


#: The modules whose ``COMMANDS`` the root group attaches.
COMMAND_MODULES = (wut, grants, imports, queries, eligibility, review, sync, mturk, prolific, maintenance)


def attach_commands(group: click.Group) -> None:
    """Attach every module's commands to ``group`` (cheap: the modules import only click)."""
    for module in COMMAND_MODULES:
        for command in module.COMMANDS:
            group.add_command(command)


attach_commands(cli)


def main() -> None:
    """The console script's entry point (``mephisto-quals``)."""
    cli(prog_name="mephisto-quals")


if __name__ == "__main__":  # pragma: no cover
    main()
