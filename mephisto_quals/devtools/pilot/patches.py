"""Point this process's Mephisto at the pilot's cached builds, and undo it.

Mephisto's installed files are never edited: :func:`use_builds` replaces a few module
attributes of Mephisto's static frontend builder, router builder and local architect in
memory (the originals are kept to restore them).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, TextIO

from mephisto_quals.devtools.pilot.builds import Builds, PilotSetupError, prepare_builds

__all__ = ["use_builds", "cached_builds"]

_ORIGINALS: Dict[str, Any] = {}


class _ServerWait:
    """Stands in for the ``time`` module inside ``local_architect``.

    ``LocalArchitect.deploy`` starts the node server and then sleeps a fixed second; here
    that sleep ends as soon as the server accepts connections on its port (still at most
    the second asked for).
    """

    def __init__(self) -> None:
        self.port: Optional[int] = None

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        port, self.port = self.port, None
        while port and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        time.sleep(max(0.0, deadline - time.monotonic()))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def use_builds(builds: Builds, servers: Optional[os.PathLike] = None) -> Callable[[], None]:
    """Point this process's Mephisto at the prepared builds; returns a function that undoes it.

    - ``static_html_task_builder.FRONTEND_SOURCE_DIR`` / ``FRONTEND_BUILD_DIR`` → the cached
      frontend, and ``StaticHTMLTaskBuilder.rebuild_core`` no longer runs npm and webpack (it
      only checks that ``bundle.js`` is there);
    - ``build_router.build_node_router`` returns the cached router instead of running
      ``npm install`` in site-packages (a config's own ``server_source_path`` still wins);
    - ``local_architect.get_mephisto_tmp_dir`` → ``servers``, by default a new temporary
      folder removed at exit (the architect runs each task run's server from
      ``local_server_<run id>/server`` there: per process, so parallel runs never collide);
      ``servers/node_modules`` links to the router's modules, which node finds from there;
    - ``LocalArchitect.deploy`` waits for its server to listen instead of a fixed second.
    """
    from mephisto.abstractions.architects import local_architect
    from mephisto.abstractions.architects.router import build_router
    from mephisto.abstractions.blueprints.static_html_task import static_html_task_builder as builder

    if not builds.bundle.is_file():
        raise PilotSetupError(f"no frontend build at {builds.bundle}: run prepare_builds() first")
    if not builds.router_modules.is_dir():
        raise PilotSetupError(f"no router modules at {builds.router_modules}: run prepare_builds() first")
    if not _ORIGINALS:
        _ORIGINALS.update(
            source=builder.FRONTEND_SOURCE_DIR,
            build=builder.FRONTEND_BUILD_DIR,
            rebuild_core=builder.StaticHTMLTaskBuilder.rebuild_core,
            build_node_router=build_router.build_node_router,
            tmp_dir=local_architect.get_mephisto_tmp_dir,
            time=local_architect.time,
            deploy=local_architect.LocalArchitect.deploy,
        )
    bundle = builds.bundle

    def rebuild_core(self: Any) -> None:
        if not bundle.is_file():
            raise PilotSetupError(f"the cached frontend build {bundle} disappeared: run prepare_builds() again")

    builder.FRONTEND_SOURCE_DIR = str(builds.frontend)
    builder.FRONTEND_BUILD_DIR = str(builds.frontend / "build")
    builder.StaticHTMLTaskBuilder.rebuild_core = rebuild_core
    build_router.build_node_router = lambda build_dir, task_run: str(builds.router)

    if servers is None:
        made = tempfile.mkdtemp(prefix="mephisto-quals-servers-")
        atexit.register(shutil.rmtree, made, True)
        servers_dir = Path(made)
    else:
        servers_dir = Path(servers)
    servers_dir.mkdir(parents=True, exist_ok=True)
    link = servers_dir / "node_modules"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(builds.router_modules, target_is_directory=True)
    local_architect.get_mephisto_tmp_dir = lambda: str(servers_dir)

    wait = _ServerWait()
    original_deploy = _ORIGINALS["deploy"]

    def deploy(self: Any) -> str:
        try:
            wait.port = int(self.port)
        except (TypeError, ValueError):
            wait.port = None
        return original_deploy(self)

    local_architect.time = wait
    local_architect.LocalArchitect.deploy = deploy
    return _restore


def _restore() -> None:
    if not _ORIGINALS:
        return
    from mephisto.abstractions.architects import local_architect
    from mephisto.abstractions.architects.router import build_router
    from mephisto.abstractions.blueprints.static_html_task import static_html_task_builder as builder

    builder.FRONTEND_SOURCE_DIR = _ORIGINALS["source"]
    builder.FRONTEND_BUILD_DIR = _ORIGINALS["build"]
    builder.StaticHTMLTaskBuilder.rebuild_core = _ORIGINALS["rebuild_core"]
    build_router.build_node_router = _ORIGINALS["build_node_router"]
    local_architect.get_mephisto_tmp_dir = _ORIGINALS["tmp_dir"]
    local_architect.time = _ORIGINALS["time"]
    local_architect.LocalArchitect.deploy = _ORIGINALS["deploy"]
    _ORIGINALS.clear()


@contextlib.contextmanager
def cached_builds(cache: Optional[os.PathLike] = None, out: Optional[TextIO] = sys.stderr) -> Iterator[Builds]:
    """``prepare_builds`` and ``use_builds`` for the duration of a ``with`` block."""
    builds = prepare_builds(cache, out)
    undo = use_builds(builds)
    try:
        yield builds
    finally:
        undo()
