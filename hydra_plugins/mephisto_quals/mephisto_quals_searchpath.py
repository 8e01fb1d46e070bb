"""Hydra SearchPathPlugin: puts mephisto-quals' presets on every Hydra app's search path.

It also registers the ``<type>_quals`` blueprints, so a Mephisto task script can select
``mephisto/blueprint: static_task_quals`` and ``+quals=...`` presets without importing
mephisto_quals, and provides ``hydra/job_logging/mephisto_default``, which Mephisto's
task scripts ask for but its PyPI wheel does not ship.
"""

import logging

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class MephistoQualsSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="mephisto-quals", path="pkg://mephisto_quals.conf")
        try:
            import mephisto_quals.integration.blueprints  # noqa: F401  (registers <type>_quals)
        except ImportError as e:  # Mephisto missing or broken: presets still load
            logging.getLogger("mephisto_quals").warning("mephisto-quals blueprints not registered: %s", e)
