"""``wut``: Mephisto's own ``wut`` with the ``_quals`` blueprints registered.

``get_wut_arguments`` lives in ``mephisto.client.cli_wut_commands`` on Mephisto 1.5.x and in
``mephisto.client.cli_commands`` (re-exported by ``mephisto.client.cli``) on 1.1.1.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

import rich_click as click

from mephisto_quals.cli.base import RichQualsCommand

__all__ = ["wut", "find_wut", "COMMANDS"]


def find_wut() -> Callable[[Any], Any]:
    """Mephisto's ``get_wut_arguments``: the 1.5.x module first, then 1.1.1's."""
    try:
        from mephisto.client.cli_wut_commands import get_wut_arguments
    except ImportError:
        try:
            from mephisto.client.cli_commands import get_wut_arguments
        except ImportError:
            from mephisto.client.cli import get_wut_arguments
    return get_wut_arguments


@click.command("wut", cls=RichQualsCommand, context_settings={"ignore_unknown_options": True})
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

    find_wut()(args)


#: In the order the root group lists them.
COMMANDS = (wut,)
