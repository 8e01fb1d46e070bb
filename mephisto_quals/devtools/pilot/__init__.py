"""Pilot a static task in a browser on this machine: cached Mephisto 1.1.1 builds, test workers, URLs.

Mephisto 1.1.1's local architect runs ``npm install`` and webpack inside site-packages on
every launch, and the static frontend's ``package.json`` pins ``mephisto-task@2.0.3``, which
the npm registry no longer has. This module builds both once, from copies, into a cache
folder, and points Mephisto at them in-process; Mephisto's installed files are never edited
and nothing is written into site-packages:

- the static frontend: a copy of ``static_html_task/source`` whose ``package.json`` pins
  ``mephisto-task`` 2.0.4 and drops the Cypress dev dependencies (their binary download
  needs the internet); only the built ``bundle.js`` is kept;
- the node router: a copy of ``router/node``, with its ``node_modules`` installed beside it
  (not inside: each launch copies the router twice, and node finds the modules through a
  link in the servers' folder instead);
- the local architect's running copies of the router go to a private temporary folder
  (removed at exit) instead of ``<site-packages>/tmp``, and its fixed 1 s wait for the
  server ends as soon as the server listens.

Builds are keyed on the content of Mephisto's sources and this recipe, so a Mephisto
upgrade rebuilds them. The cache is ``$MEPHISTO_QUALS_CACHE``, else
``$XDG_CACHE_HOME/mephisto-quals`` or ``~/.cache/mephisto-quals``.

    from mephisto_quals.devtools import pilot
    builds = pilot.prepare_builds()      # npm, once (about 20 s); instant when cached
    pilot.use_builds(builds)             # before operator.launch_task_run(...)

Importing this package does not import Mephisto (which writes ``~/.mephisto`` on import).

Modules: :mod:`.builds` (the cache and the npm builds), :mod:`.patches` (pointing this process's
Mephisto at them), :mod:`.serve` (test workers, their links, serving until Ctrl-C); ``python -m
mephisto_quals.devtools.pilot prepare`` builds the cache (:mod:`.__main__`).
"""

from __future__ import annotations

from mephisto_quals.devtools.pilot.builds import (
    CACHE_ENV,
    MEPHISTO_TASK_VERSION,
    Builds,
    PilotSetupError,
    cache_dir,
    prepare_builds,
)
from mephisto_quals.devtools.pilot.patches import cached_builds, use_builds
from mephisto_quals.devtools.pilot.serve import (
    PilotWorker,
    pilot_workers,
    print_urls,
    seed_workers,
    serve_until_interrupted,
    server_url,
    stop,
    wait_for_launch,
    worker_url,
)

__all__ = [
    "CACHE_ENV",
    "MEPHISTO_TASK_VERSION",
    "Builds",
    "PilotSetupError",
    "PilotWorker",
    "cache_dir",
    "prepare_builds",
    "use_builds",
    "cached_builds",
    "pilot_workers",
    "seed_workers",
    "worker_url",
    "server_url",
    "print_urls",
    "wait_for_launch",
    "stop",
    "serve_until_interrupted",
]
