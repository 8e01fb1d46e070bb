"""Shared fixtures: a private HOME, a real LocalMephistoDB per test, fast mock Operators.

``import mephisto`` writes ``~/.mephisto/config.yml``, so HOME is redirected to a temp dir
before anything imports it: the tests never touch the user's real Mephisto set-up.
"""

from __future__ import annotations

import copy
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

assert "mephisto" not in sys.modules, "mephisto was imported before conftest could redirect HOME"
TEST_HOME = tempfile.mkdtemp(prefix="mephisto-quals-home-")
os.environ["HOME"] = TEST_HOME

import pytest  # noqa: E402
from mephisto.abstractions.architects.mock_architect import MockArchitectArgs  # noqa: E402
from mephisto.abstractions.databases.local_database import LocalMephistoDB  # noqa: E402
from mephisto.abstractions.providers.mock.mock_provider import MockProviderArgs  # noqa: E402
from mephisto.data_model.task_run import TaskRunArgs  # noqa: E402
from mephisto.data_model.worker import Worker  # noqa: E402
from mephisto.operations.hydra_config import MephistoConfig  # noqa: E402
from mephisto.operations.operator import Operator  # noqa: E402
from mephisto.utils.testing import get_mock_requester  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

import mephisto_quals  # noqa: E402
from mephisto_quals.devtools.mock_crowd import MockRun, free_port, speed_up_mephisto, stop_operator  # noqa: E402
from mephisto_quals.integration import gate, retake  # noqa: E402
from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS  # noqa: E402
from mephisto_quals.store.mephisto import mephisto_connection  # noqa: E402

speed_up_mephisto()


# Nothing in the suite may leave the machine (no AWS, no registry): every test runs guarded.

class NetworkBlocked(RuntimeError):
    """Raised when a test tries to reach a non-loopback address."""


_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}


def _is_loopback(host: Any) -> bool:
    return host in _LOOPBACK or (isinstance(host, str) and host.startswith("127."))


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[Any]]:
    """Refuse (and record) any DNS lookup or connection to a non-loopback address."""
    attempts: List[Any] = []
    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def check(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None  # AF_UNIX paths are local
        if isinstance(address, tuple) and not _is_loopback(host):
            attempts.append(address)
            raise NetworkBlocked(f"test tried to reach {address!r}")

    def connect(self: socket.socket, address: Any) -> Any:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        check((host.decode() if isinstance(host, bytes) else host, port))
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert attempts == [], f"these tests must not touch the network, but tried {attempts}"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[LocalMephistoDB]:
    """A fresh LocalMephistoDB in a temp dir (run data goes beside it)."""
    folder = tmp_path / "mephisto-data"
    folder.mkdir()
    database = LocalMephistoDB(database_path=str(folder / "database.db"))
    yield database
    database.shutdown()


@pytest.fixture
def restore_config_store() -> Iterator[None]:
    """Put Hydra's global ConfigStore back as it was after the test."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    saved = copy.deepcopy(store.repo)
    yield
    store.repo = saved


def worker(db: LocalMephistoDB, name: str) -> Worker:
    """A mock worker as Mephisto names it on the (sandbox) mock requester."""
    found = db.find_workers(worker_name=f"{name}_sandbox")
    if found:
        return found[0]
    return Worker.get(db, db.new_worker(f"{name}_sandbox", "mock"))


def grant(db: LocalMephistoDB, name: str, qualification: str, value: int = 1) -> None:
    """Grant through Mephisto's own API (creating the qualification if needed)."""
    from mephisto.utils.qualifications import find_or_create_qualification

    find_or_create_qualification(db, qualification)
    worker(db, name).grant_qualification(qualification, value)


def mock_config(
    requester_name: str,
    quals: Optional[Dict[str, Any]] = None,
    task_name: str = "quals-test",
    blueprint_type: str = "mock_quals",
    provider_type: Optional[str] = None,
    **blueprint: Any,
) -> Any:
    """A structured MephistoConfig for a ``<type>_quals`` mock run, as Hydra would build it."""
    args_cls = QUALS_BLUEPRINTS[blueprint_type].ArgsClass
    blueprint.setdefault("num_assignments", 3)
    blueprint.setdefault("timeout_time", 30)
    config = MephistoConfig(
        blueprint=args_cls(**blueprint),
        provider=MockProviderArgs(requester_name=requester_name),
        architect=MockArchitectArgs(should_run_server=True, port=str(free_port())),
        task=TaskRunArgs(
            task_name=task_name,
            task_title="title",
            task_description="description",
            task_reward=0.3,
            task_tags="test",
        ),
    )
    cfg = OmegaConf.structured(config)
    if quals:
        cfg.blueprint.quals = OmegaConf.merge(cfg.blueprint.quals, quals)
    if provider_type:
        cfg.provider._provider_type = provider_type
    return cfg


@pytest.fixture
def requester_name(db: LocalMephistoDB) -> str:
    return get_mock_requester(db).requester_name


@pytest.fixture
def operator(db: LocalMephistoDB) -> Iterator[Operator]:
    """A real Operator on the test DB, stopped fast afterwards."""
    op = Operator(db)
    yield op
    stop_operator(op)


LaunchFn = Callable[..., MockRun]


@pytest.fixture
def launch(operator: Operator, requester_name: str) -> LaunchFn:
    """Launch a ``mock_quals`` run through the real Operator; returns a driver for mock workers.

    Keyword args go to the blueprint args (``quals=...`` to the quals node); pass
    ``shared_state=`` to reuse one state.
    """

    def _launch(quals: Optional[Dict[str, Any]] = None, shared_state: Any = None, **kwargs: Any) -> MockRun:
        cfg = mock_config(requester_name, quals, **kwargs)
        state = shared_state if shared_state is not None else QUALS_BLUEPRINTS["mock_quals"].SharedStateClass()
        run_id = operator.launch_task_run(cfg, state)
        run = MockRun(operator, run_id)
        run.shared_state = state  # type: ignore[attr-defined]
        return run

    return _launch


def cli_runner() -> Any:
    """A click ``CliRunner`` that keeps stderr apart from stdout on either click line.

    Mephisto 1.1.1 pins click 7 (stderr mixed in unless ``mix_stderr=False``); 1.5.2 needs
    click 8.2+, which dropped the argument and always keeps them apart.
    """
    import inspect

    from click.testing import CliRunner

    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


def pytest_configure(config: pytest.Config) -> None:
    """Warnings that are not ours to fix: Mephisto 1.5.2's own code (``Worker.get_granted_qualification``,
    ``worker_is_qualified``) calls the method it deprecated, Mephisto 1.1.1 logs with ``logging.warn``,
    and rich-click warns about click 7 (1.1.1's pin) and imports names click 8.2+ deprecated (1.5.2's).
    Our code calls ``find_granted`` instead (tests/test_upgrade.py checks nothing of ours names the old one)."""
    for spec in (
        "ignore:Use 'find_granted_qualifications' instead.:DeprecationWarning",
        "ignore:The 'warn' function is deprecated:DeprecationWarning:mephisto",
        "ignore:rich-click support for click 7.x is deprecated:DeprecationWarning:rich_click",
        "ignore:'click.utils.*' is deprecated:DeprecationWarning:rich_click",
    ):
        config.addinivalue_line("filterwarnings", spec)


class FakeClock:
    """Real time plus an offset the test moves forward: no sleeping for expiry or retake delays."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """The gate's clock, replaced for one test and restored after it."""
    fake = FakeClock()
    monkeypatch.setattr(gate, "clock", fake)
    yield fake
    retake.drain()


def table_counts(db: LocalMephistoDB) -> Dict[str, int]:
    """Row counts of the tables a launch writes, to prove a refused launch wrote nothing."""
    with db.table_access_condition:
        conn = mephisto_connection(db)
        return {
            t: conn.execute(f"SELECT COUNT(*) AS n FROM {t}").fetchone()["n"]
            for t in ("tasks", "task_runs", "qualifications", "granted_qualifications", "units")
        }


__all__: List[str] = ["FakeClock", "worker", "grant", "mock_config", "table_counts", "cli_runner", "TEST_HOME", "NetworkBlocked", "mephisto_quals"]


# ------------------------------------------------------------------ browser set-up, only when selected
# './run test' does not install Chromium or build Mephisto's frontend up front. Once collection is
# done, and only when a selected test is marked 'browser', this runs './run setup-browser' once for
# the same Mephisto line and venv (apt-get as root, npm builds into the cache), with its output
# shown. If it fails, every browser test fails with its message; other tests are not affected.

_BROWSER_SETUP_ERROR = pytest.StashKey[Optional[str]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Prepare the browser tests' machine set-up when (and only when) one of them will run."""
    if session.config.option.collectonly or not any(item.get_closest_marker("browser") for item in session.items):
        return
    session.config.stash[_BROWSER_SETUP_ERROR] = _run_browser_setup(session.config)


def _run_browser_setup(config: pytest.Config) -> Optional[str]:
    """Run './run setup-browser' with live output: None when it worked, else the failure message."""
    import contextlib
    import subprocess

    command = ["bash", str(Path(__file__).resolve().parents[1] / "run"), "setup-browser"]
    capture = config.pluginmanager.getplugin("capturemanager")
    lines: List[str] = []
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\nbrowser tests selected: {' '.join(command)}", file=sys.stderr, flush=True)
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write(line)
            lines.append(line)
        code = proc.wait()
    if code == 0:
        return None
    return (f"The browser tests cannot run: './run setup-browser' exited {code}. As root it installs Chromium, "
            "ChromeDriver and Node.js/npm with apt-get; elsewhere install them yourself (Debian: apt-get install "
            "chromium chromium-driver nodejs npm). Its output:\n" + "".join(lines[-20:]))


@pytest.fixture(scope="session")
def browser_setup(request: pytest.FixtureRequest) -> None:
    """Fail a browser test with the set-up's message when './run setup-browser' did not succeed."""
    error = request.config.stash.get(_BROWSER_SETUP_ERROR, None)
    if error:
        pytest.fail(error, pytrace=False)
