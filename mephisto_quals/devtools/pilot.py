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

Importing this module does not import Mephisto (which writes ``~/.mephisto`` on import).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO

from mephisto_quals.devtools.mock_crowd import stop_operator as stop  # noqa: F401  (public: pilot.stop)
from mephisto_quals.errors import QualsError

if TYPE_CHECKING:
    from mephisto.operations.operator import Operator

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
        code = subprocess.call(list(cmd), cwd=cwd, env=_npm_env(cache), stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
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
    _say(out, f"mephisto-quals: building Mephisto's static frontend once into {target} "
              f"(mephisto-task {MEPHISTO_TASK_VERSION}, no Cypress; log: {log})...")
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


# ---------------------------------------------------------------- using them in-process

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
    builder.StaticHTMLTaskBuilder.rebuild_core = rebuild_core  # type: ignore[assignment]
    build_router.build_node_router = lambda build_dir, task_run: str(builds.router)

    if servers is None:
        servers = tempfile.mkdtemp(prefix="mephisto-quals-servers-")
        atexit.register(shutil.rmtree, servers, True)
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
    local_architect.LocalArchitect.deploy = deploy  # type: ignore[assignment]
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


# ---------------------------------------------------------------- test workers and URLs


@dataclass(frozen=True)
class PilotWorker:
    """A named test worker and what the pilot sets up for them before launch."""

    name: str
    story: str
    expect: str  # what they should see: "task", "onboarding" or "not qualified"
    grant: List[str] = field(default_factory=list)
    revoke: List[str] = field(default_factory=list)
    onboarding: Optional[bool] = None  # True: passed before; False: not taken yet; None: leave as is


def _names(node: Any, key: str) -> List[str]:
    value = node.get(key) if node is not None else None
    return [str(v) for v in (value or [])]


def pilot_workers(blueprint: Any) -> List[PilotWorker]:
    """Test workers for a ``*_quals`` blueprint config (``cfg.mephisto.blueprint``).

    ``alice`` is allowed (and has passed the onboarding, if any), ``bob`` is on the
    blocklist, ``carol`` is allowed but has not taken the onboarding, ``dave`` is not on the
    allowlist. Workers whose story the config cannot produce are left out.
    """
    quals = blueprint.get("quals")
    allow = _names(quals, "allowlists")
    block = _names(quals, "blocklists") + _names(quals, "block_qualifications")
    onboarding = blueprint.get("onboarding_qualification")  # Mephisto's OnboardingRequired: set = used
    crowd: List[PilotWorker] = [
        PilotWorker("alice", "allowed" + (", passed the onboarding before" if onboarding else ""),
                    "task", grant=allow, revoke=block, onboarding=True if onboarding else None),
    ]
    if block:
        crowd.append(PilotWorker("bob", f"allowed but on the blocklist ({block[0]})", "not qualified",
                                 grant=allow + block[:1], onboarding=True if onboarding else None))
    if onboarding:
        crowd.append(PilotWorker("carol", "allowed, has not taken the onboarding yet", "onboarding",
                                 grant=allow, revoke=block, onboarding=False))
    if allow:
        crowd.append(PilotWorker("dave", f"not on the allowlist ({allow[0]})", "not qualified",
                                 revoke=allow + block, onboarding=True if onboarding else None))
    return crowd


def seed_workers(db: Any, workers: Sequence[PilotWorker], onboarding: Optional[str], provider: str = "mock") -> None:
    """Give each test worker exactly their story's grants (idempotent: run before every launch)."""
    from mephisto.utils.qualifications import find_or_create_qualification

    from mephisto_quals.admin import grants
    from mephisto_quals.compile.requirements import failed_name

    # Revoking needs the qualification to exist; a first launch has not created them yet.
    wanted = {q for w in workers for q in w.grant + w.revoke}
    if onboarding:
        wanted |= {onboarding, failed_name(onboarding)}
    for qual in sorted(wanted):
        find_or_create_qualification(db, qual)

    def names(ws: Sequence[PilotWorker]) -> List[str]:
        return [w.name for w in ws]

    for qual in sorted({q for w in workers for q in w.grant}):
        grants.grant(db, qual, names([w for w in workers if qual in w.grant]), provider=provider,
                     reason="pilot test worker", source="pilot")
    for qual in sorted({q for w in workers for q in w.revoke}):
        grants.revoke(db, qual, names([w for w in workers if qual in w.revoke]), provider=provider, source="pilot")
    if onboarding:
        fresh = names([w for w in workers if w.onboarding is not None])
        if fresh:
            grants.reset_onboarding(db, onboarding, fresh, provider=provider, source="pilot")
        passed = names([w for w in workers if w.onboarding])
        if passed:
            grants.grant(db, onboarding, passed, provider=provider, reason="pilot: passed before", source="pilot")


def server_url(architect: Any) -> str:
    """The local architect's address, e.g. ``http://localhost:3000/``."""
    host = str(architect.get("hostname") or "localhost")
    if "://" not in host:
        host = f"http://{host}"
    return f"{host.rstrip('/')}:{architect.get('port')}/"


def worker_url(base: str, worker: str, visit: str) -> str:
    """A worker's link on the mock provider; a new ``visit`` (assignment id) is a new arrival."""
    return f"{base}?worker_id={worker}&assignment_id={visit}"


def print_urls(base: str, workers: Sequence[PilotWorker], out: TextIO = sys.stdout) -> Dict[str, str]:
    """Print the preview link and one link per test worker; returns {name: url}."""
    urls = {w.name: worker_url(base, w.name, f"pilot-{w.name}") for w in workers}
    width = max([len(w.name) for w in workers] + [7])
    print("", file=out)
    print("Open these in a browser (mock provider, local server):", file=out)
    print(f"  {'preview':<{width}}  {base}", file=out)
    print(f"  {'':<{width}}  (what a worker sees before accepting: no worker id)", file=out)
    for w in workers:
        print(f"  {w.name:<{width}}  {urls[w.name]}", file=out)
        print(f"  {'':<{width}}  {w.story} -> sees {w.expect}", file=out)
    print("A new visit of the same worker: change assignment_id in the link. Ctrl-C stops the pilot.", file=out,
          flush=True)
    return urls


def wait_for_launch(operator: Operator, task_run_id: str, timeout: float = 5.0) -> bool:
    """Run the event loop until the run's units are launched (so their log lines come first)."""
    live_run = operator.get_running_task_runs().get(task_run_id)
    if live_run is None:
        return False
    launcher = live_run.task_launcher
    return operator._run_loop_until(lambda: bool(getattr(launcher, "finished_generators", False)), timeout)


def serve_until_interrupted(operator: Operator, out: TextIO = sys.stdout, poll: float = 1.0) -> None:
    """Keep the run serving until its units are done or Ctrl-C (or SIGTERM); then stop it fast.

    Mephisto's own ``wait_for_runs_then_shutdown`` waits 30 s at a time for in-flight
    assignments after Ctrl-C; this expires them and stops the server at once. The signal
    only sets a flag that the event loop checks: a KeyboardInterrupt raised inside one of
    Mephisto's asyncio tasks would leave that task failed ("Task exception was never
    retrieved"). A second Ctrl-C during the one-second clean-up is ignored.
    """
    requested: List[int] = []

    def _request_stop(signum: int, frame: Any) -> None:
        requested.append(signum)

    def _should_return() -> bool:
        return bool(requested) or not operator.get_running_task_runs()

    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not _should_return():
            operator._run_loop_until(_should_return, poll)
        if requested:
            print("\nStopping the pilot (expiring units, stopping the server)...", file=out, flush=True)
        else:
            print("All units are done.", file=out, flush=True)
    finally:
        try:
            stop(operator)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    print("Pilot stopped.", file=out, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m mephisto_quals.devtools.pilot prepare [--cache DIR]``: build the cache (used by ./run)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mephisto_quals.devtools.pilot",
                                     description="Prepare the cached Mephisto frontend and router builds.")
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("--cache", help=f"cache folder (default: ${CACHE_ENV} or ~/.cache/mephisto-quals)")
    args = parser.parse_args(argv)
    try:
        prepare_builds(args.cache)  # says what it builds; silent when everything is cached
    except PilotSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
