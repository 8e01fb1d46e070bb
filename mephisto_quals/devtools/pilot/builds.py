"""The pilot's cached builds of Mephisto's static frontend and node router (npm once, then the cache).

Builds are keyed on the content of Mephisto's sources and this recipe, so a Mephisto
upgrade rebuilds them; see :mod:`mephisto_quals.devtools.pilot` for what is built and why.
Importing this module does not import Mephisto.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, TextIO

from mephisto_quals.errors import QualsError

__all__ = [
    "CACHE_ENV",
    "MEPHISTO_TASK_VERSION",
    "RECIPE",
    "Builds",
    "PilotSetupError",
    "cache_dir",
    "prepare_builds",
    "main",
]

#: Environment variable naming the cache folder (``./run`` sets it to the project's ``.cache/mephisto-quals``).
CACHE_ENV = "MEPHISTO_QUALS_CACHE"
#: Mephisto 1.1.1 pins mephisto-task 2.0.3, which the npm registry no longer serves.
MEPHISTO_TASK_VERSION = "2.0.4"
#: Bump when the build recipe below changes: cached builds are keyed on it.
RECIPE = "2"
#: Dev dependencies of the static frontend that only its Cypress tests use.
_CYPRESS_PACKAGES = ("cypress", "cypress-file-upload")


class PilotSetupError(QualsError, RuntimeError):
    """Something the pilot builds need is missing or failed; the message says what to do."""


def cache_dir(path: Optional[os.PathLike] = None) -> Path:
    """The cache folder: ``path``, else ``$MEPHISTO_QUALS_CACHE``, else the XDG cache."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return (Path(base) / "mephisto-quals").resolve()


@dataclass(frozen=True)
class Builds:
    """Prepared builds: the frontend copy (``build/bundle.js`` inside) and the node router."""

    frontend: Path
    router: Path  # server.js and its static files, without node_modules
    router_modules: Path  # the router's installed node_modules

    @property
    def bundle(self) -> Path:
        return self.frontend / "build" / "bundle.js"


# ---------------------------------------------------------------- building


def _mephisto_dir() -> Path:
    """Where the installed Mephisto package is, found without importing it (which writes ~/.mephisto)."""
    spec = importlib.util.find_spec("mephisto")
    if spec is None or not spec.submodule_search_locations:
        raise PilotSetupError("Mephisto is not installed in this Python environment ('./run setup' installs it)")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def _frontend_source() -> Path:
    """Mephisto's own static frontend source (static_html_task_builder's FRONTEND_SOURCE_DIR, unpatched)."""
    return _mephisto_dir() / "abstractions" / "blueprints" / "static_html_task" / "source"


def _router_source() -> Path:
    """Mephisto's node router (build_router's NODE_SERVER_SOURCE_ROOT)."""
    return _mephisto_dir() / "abstractions" / "architects" / "router" / "node"


_SKIP = {"node_modules", "build", "cypress", "cypress.config.js", "__pycache__"}


def _tree_key(root: Path, *extra: str) -> str:
    """A short hash of a source tree's files (minus installs and builds) and the recipe."""
    digest = hashlib.sha256("\0".join((RECIPE, MEPHISTO_TASK_VERSION) + extra).encode())
    files: List[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP]  # never descend into an npm install
        files.extend(Path(folder, n) for n in names if n not in _SKIP)
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _npm_env(cache: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        CYPRESS_INSTALL_BINARY="0",  # belt and braces: the copy has no Cypress dependency
        npm_config_fund="false",
        npm_config_audit="false",
        npm_config_update_notifier="false",
        npm_config_loglevel="warn",
    )
    # npm's download cache follows HOME, which tests and the demo redirect: keep it stable.
    env.setdefault("npm_config_cache", str(cache / "npm"))
    return env


def _run_logged(cmd: Sequence[str], cwd: Path, cache: Path, log: Path, what: str) -> None:
    with log.open("a") as out:
        out.write(f"\n$ (cd {cwd} && {' '.join(cmd)})\n")
        out.flush()
        code = subprocess.call(
            list(cmd), cwd=cwd, env=_npm_env(cache), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise PilotSetupError(
            f"{what} failed ({' '.join(cmd)} exited {code}; full log: {log}).\n{tail}\n"
            "The builds need the npm registry once; later launches use the cache."
        )


def _require_npm() -> str:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise PilotSetupError(
            "Node.js and npm are needed to build Mephisto's frontend and router once: install them "
            "(Debian/Ubuntu: 'apt-get install nodejs npm'; './run setup-browser' does it when run as root)."
        )
    return npm


@contextlib.contextmanager
def _lock(cache: Path) -> Iterator[None]:
    """One build at a time per cache (parallel test runs, a pilot and a test run)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _copy_source(src: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=lambda _d, names: [n for n in names if n in _SKIP])


def _pin_frontend(package_json: Path) -> None:
    package = json.loads(package_json.read_text())
    package["dependencies"]["mephisto-task"] = MEPHISTO_TASK_VERSION
    for name in _CYPRESS_PACKAGES:
        package.get("devDependencies", {}).pop(name, None)
    package.get("scripts", {}).pop("test", None)  # "cypress open"
    package_json.write_text(json.dumps(package, indent=2) + "\n")


def _say(log: Optional[TextIO], message: str) -> None:
    if log is not None:
        print(message, file=log, flush=True)


def _prune(cache: Path, prefix: str, keep: Path) -> None:
    """Remove builds for other Mephisto sources or recipes (a new one was just made)."""
    for old in cache.glob(f"{prefix}*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _prepare_frontend(cache: Path, out: Optional[TextIO]) -> Path:
    src = _frontend_source()
    target = cache / f"frontend-{_tree_key(src)}"
    if (target / "build" / "bundle.js").is_file():
        return target
    npm = _require_npm()
    work = cache / f".{target.name}.partial"
    log = cache / "build.log"
    started = time.monotonic()
    _say(
        out,
        f"mephisto-quals: building Mephisto's static frontend once into {target} "
        f"(mephisto-task {MEPHISTO_TASK_VERSION}, no Cypress; log: {log})...",
    )
    _copy_source(src, work)
    _pin_frontend(work / "package.json")
    _run_logged([npm, "install"], work, cache, log, "npm install for Mephisto's static frontend")
    _run_logged([npm, "run", "dev"], work, cache, log, "webpack build of Mephisto's static frontend")
    if not (work / "build" / "bundle.js").is_file():
        raise PilotSetupError(f"webpack ran but wrote no build/bundle.js in {work} (log: {log})")
    shutil.rmtree(work / "node_modules")  # only bundle.js is used; keeps the cache ~2 MB
    if target.exists():
        shutil.rmtree(target)
    work.rename(target)
    _prune(cache, "frontend-", keep=target)
    _say(out, f"mephisto-quals: frontend built in {time.monotonic() - started:.0f} s")
    return target


def _prepare_router(cache: Path, out: Optional[TextIO]) -> Path:
    src = _router_source()
    target = cache / f"router-{_tree_key(src)}"
    if (target / ".complete").is_file():
        return target / "app"
    npm = _require_npm()
    work = cache / f".{target.name}.partial"
    log = cache / "build.log"
    started = time.monotonic()
    _say(out, f"mephisto-quals: installing Mephisto's node router once into {target} (log: {log})...")
    _copy_source(src, work / "app")
    _run_logged([npm, "install", "--omit=dev"], work / "app", cache, log, "npm install for Mephisto's node router")
    (work / "app" / "node_modules").rename(work / "node_modules")
    (work / ".complete").write_text("built\n")
    if target.exists():
        shutil.rmtree(target)
    work.rename(target)
    _prune(cache, "router-", keep=target)
    _say(out, f"mephisto-quals: router installed in {time.monotonic() - started:.0f} s")
    return target / "app"


def prepare_builds(cache: Optional[os.PathLike] = None, out: Optional[TextIO] = sys.stderr) -> Builds:
    """Build (once) and return the frontend and router that launches then reuse.

    Runs npm only when a build for the installed Mephisto is not in the cache yet; says so
    on ``out``. Raises :class:`PilotSetupError` with what to install or fix.
    """
    root = cache_dir(cache)
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root):
        frontend = _prepare_frontend(root, out)
        router = _prepare_router(root, out)
    return Builds(frontend=frontend, router=router, router_modules=router.parent / "node_modules")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m mephisto_quals.devtools.pilot prepare [--cache DIR]``: build the cache (used by ./run)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m mephisto_quals.devtools.pilot",
        description="Prepare the cached Mephisto frontend and router builds.",
    )
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("--cache", help=f"cache folder (default: ${CACHE_ENV} or ~/.cache/mephisto-quals)")
    args = parser.parse_args(argv)
    try:
        prepare_builds(args.cache)  # says what it builds; silent when everything is cached
    except PilotSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
