"""What a worker sees: Debian's headless Chromium, driven by Selenium, on real local-architect runs.

Each test launches the example static task (examples/gated_static_task: its task.html,
onboarding.html and data.csv) on Mephisto's local architect (the node router) with the mock
provider, through a real Operator, and opens the worker links a crowd provider would hand
out. The Mephisto frontend and router come from mephisto_quals.devtools.pilot's cached builds (built
once by './run setup-browser', which tests/conftest.py runs when a browser test is selected).
The browser runs in a thread while the Operator's event loop keeps running in this one.

Screenshots of each worker's view go under pytest's tmp dir; the three the README shows
(task, not qualified, onboarding) also go to docs/screenshots/ when they are missing there or
MEPHISTO_QUALS_UPDATE_SCREENSHOTS=1 is set. Missing Chromium, ChromeDriver, Node.js or
Selenium fail the tests with one message saying what to install: never a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from omegaconf import OmegaConf

from conftest import worker
from mephisto_quals.admin import grants
from mephisto_quals.devtools import pilot
from mephisto_quals.devtools.mock_crowd import free_port
from mephisto_quals.integration.blueprints import QUALS_BLUEPRINTS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "gated_static_task"
README_SHOTS = ROOT / "docs" / "screenshots"
UPDATE_SHOTS = os.environ.get("MEPHISTO_QUALS_UPDATE_SCREENSHOTS", "") not in ("", "0")

NOT_QUALIFIED = "You are not currently qualified to work on this task..."  # Mephisto's WorkerFailureReasons
TASK_HEADING = "Is this review positive or negative?"  # examples/gated_static_task/task.html
ONBOARDING_HEADING = "Practice question"  # examples/gated_static_task/onboarding.html
WAIT = 15.0  # seconds for any one page state

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


# ------------------------------------------------------------------ set-up checks


def _find(*names: str) -> Optional[str]:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def _missing() -> List[str]:
    """What the browser tests need and this machine lacks, each with how to get it."""
    problems = []
    if _find("chromium", "chromium-browser") is None:
        problems.append("Chromium (Debian: apt-get install chromium)")
    if _find("chromedriver") is None:
        problems.append("ChromeDriver (Debian: apt-get install chromium-driver)")
    if _find("node") is None or _find("npm") is None:
        problems.append("Node.js and npm (Debian: apt-get install nodejs npm)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        problems.append("the selenium Python package (pinned in requirements/pins.txt: './run setup' installs it)")
    return problems


@pytest.fixture(scope="session")
def builds(browser_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[pilot.Builds]:
    """The cached Mephisto frontend and router, in use for the whole session.

    ``browser_setup`` (tests/conftest.py) has run './run setup-browser' by then, because these
    tests are selected; what is still missing is named here.
    """
    problems = _missing()
    if problems:
        pytest.fail(
            "The browser tests need " + "; ".join(problems) + ". As root, './run setup-browser' installs "
            "them (./run test runs it when browser tests are selected).",
            pytrace=False,
        )
    cache = os.environ.get(pilot.CACHE_ENV) or ROOT / ".cache" / "mephisto-quals"
    try:
        prepared = pilot.prepare_builds(cache)
    except pilot.PilotSetupError as exc:
        pytest.fail(f"Cannot prepare Mephisto's frontend and router builds: {exc}", pytrace=False)
    undo = pilot.use_builds(prepared, servers=tmp_path_factory.mktemp("servers"))
    yield prepared
    undo()


# ------------------------------------------------------------------ the browser


def _new_driver(width: int = 900, height: int = 380) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _find("chromium", "chromium-browser") or "chromium"
    for arg in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(_find("chromedriver") or "chromedriver"))
    # The page area itself at exactly width x height, for screenshots of a known size.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    return driver


class Browser:
    """One Chromium; every action runs in a thread while the caller keeps ``pump`` going."""

    def __init__(self, driver: Any, pump: Callable[[Callable[[], bool], float], Any], shots: Path):
        self.driver = driver
        self.pump = pump
        self.shots = shots
        self._pool = ThreadPoolExecutor(max_workers=1)

    def run(self, action: Callable[[Any], Any], timeout: float = 40.0) -> Any:
        future = self._pool.submit(action, self.driver)
        self.pump(future.done, timeout)
        if not future.done():
            raise TimeoutError(f"the browser did not finish within {timeout} s")
        return future.result()

    # ---- actions, each run inside ``run``
    def open_and_wait(self, url: str, text: str) -> Callable[[Any], str]:
        """Open a link and wait until the page shows ``text``; returns the page's text."""

        def action(driver: Any) -> str:
            driver.get(url)
            return _wait_for_text(driver, text)

        return action

    def screenshot(self, name: str, readme: bool = False) -> Path:
        """Save what the worker sees now under tmp (and for the README into docs/screenshots)."""
        path = self.shots / f"{name}.png"
        self.run(lambda d: d.save_screenshot(str(path)))
        assert path.stat().st_size > 2000, f"screenshot {path} looks empty"
        if readme and (UPDATE_SHOTS or not (README_SHOTS / path.name).exists()):
            README_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, README_SHOTS / path.name)
        return path

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        _reset(self.driver)


def _body(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _wait_for_text(driver: Any, text: str, timeout: float = WAIT) -> str:
    """Wait until the page (or a question in its task frame) shows ``text``; fail with what it shows."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.time() + timeout
    seen = ""
    while time.time() < deadline:
        try:
            seen = _body(driver)
        except WebDriverException:
            seen = ""
        if text in seen:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"the page never showed {text!r} within {timeout} s; it shows:\n{seen}")


def _answer_and_submit(field: str, value: str, comment: Optional[str] = None,
                       alert: bool = True) -> Callable[[Any], Optional[str]]:
    """Pick a radio answer, optionally type a comment, press Submit; returns the provider's alert text.

    The mock provider's wrap_crowd_source.js alerts after a task submit (``alert=True``: wait
    for it and accept it); an onboarding submit has none.
    """

    def action(driver: Any) -> Optional[str]:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait

        driver.find_element(By.CSS_SELECTOR, f"input[name={field}][value={value}]").click()
        if comment is not None:
            driver.find_element(By.CSS_SELECTOR, "input[name=comment]").send_keys(comment)
        driver.find_element(By.ID, "html-task-submit-button").click()
        if not alert:
            return None
        try:
            shown = WebDriverWait(driver, WAIT).until(EC.alert_is_present())
        except TimeoutException:
            return None
        text = shown.text
        shown.accept()
        return text

    return action


def _fill(field: str, value: str, comment: Optional[str] = None) -> Callable[[Any], None]:
    def action(driver: Any) -> None:
        from selenium.webdriver.common.by import By

        driver.find_element(By.CSS_SELECTOR, f"input[name={field}][value={value}]").click()
        if comment is not None:
            driver.find_element(By.CSS_SELECTOR, "input[name=comment]").send_keys(comment)

    return action


@pytest.fixture
def operator(db: Any) -> Iterator[Any]:
    """A real Operator on the test DB (replaces conftest's: stopped through Mephisto's run tracker)."""
    from mephisto.operations.operator import Operator

    op = Operator(db)
    yield op
    pilot.stop(op)


def _reset(driver: Any) -> None:
    """Leave the shared browser blank for the next test (an alert left open would block it)."""
    from selenium.common.exceptions import WebDriverException

    try:
        driver.switch_to.alert.accept()
    except WebDriverException:
        pass
    driver.get("about:blank")


@pytest.fixture(scope="session")
def chromium(builds: pilot.Builds) -> Iterator[Any]:
    """One headless Chromium for the session (each test starts it on about:blank)."""
    driver = _new_driver()
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium: Any, operator: Any, tmp_path: Path) -> Iterator[Browser]:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    b = Browser(chromium, operator._run_loop_until, shots)
    yield b
    b.close()


# ------------------------------------------------------------------ launching the example task


def _static_config(requester_name: str, quals: Optional[Dict[str, Any]], task_name: str, **blueprint: Any) -> Any:
    from mephisto.abstractions.architects.local_architect import LocalArchitectArgs
    from mephisto.abstractions.providers.mock.mock_provider import MockProviderArgs
    from mephisto.data_model.task_run import TaskRunArgs
    from mephisto.operations.hydra_config import MephistoConfig

    args_cls = QUALS_BLUEPRINTS["static_task_quals"].ArgsClass
    blueprint.setdefault("task_source", str(EXAMPLE / "task.html"))
    blueprint.setdefault("data_csv", str(EXAMPLE / "data.csv"))
    blueprint.setdefault("units_per_assignment", 1)
    config = MephistoConfig(
        blueprint=args_cls(**blueprint),
        provider=MockProviderArgs(requester_name=requester_name),
        architect=LocalArchitectArgs(hostname="localhost", port=str(free_port()), server_type="node"),
        task=TaskRunArgs(
            task_name=task_name,
            task_title="Is this review positive or negative?",
            task_description="Read one short product review.",
            task_reward=0.1,
            task_tags="browser,test",
        ),
    )
    cfg = OmegaConf.structured(config)
    if quals:
        cfg.blueprint.quals = OmegaConf.merge(cfg.blueprint.quals, quals)
    return cfg


def onboarding_is_valid(onboarding_data: Dict[str, Any]) -> bool:
    """As examples/gated_static_task/run_task.py: the practice question's answer is 'positive'."""
    return (onboarding_data.get("outputs") or {}).get("answer") == "positive"


class Run:
    """A launched local-architect run of the example task and its worker links."""

    def __init__(self, operator: Any, task_run_id: str, cfg: Any):
        self.operator = operator
        self.task_run_id = task_run_id
        self.base = pilot.server_url(cfg.architect)
        pilot.wait_for_launch(operator, task_run_id)

    def url(self, name: str, visit: str = "1") -> str:
        return pilot.worker_url(self.base, name, f"{visit}-{name}")

    def agents(self, db: Any, name: Optional[str] = None) -> List[Any]:
        found = db.find_agents(task_run_id=self.task_run_id)
        if name is not None:
            wid = worker(db, name).db_id
            found = [a for a in found if a.worker_id == wid]
        return found

    def wait_for(self, condition: Callable[[], bool], timeout: float = WAIT) -> bool:
        return self.operator._run_loop_until(condition, timeout)


@pytest.fixture
def launch(builds: pilot.Builds, operator: Any, requester_name: str) -> Callable[..., Run]:
    def _launch(quals: Optional[Dict[str, Any]] = None, task_name: str = "browser-task", **blueprint: Any) -> Run:
        cfg = _static_config(requester_name, quals, task_name, **blueprint)
        state = QUALS_BLUEPRINTS["static_task_quals"].SharedStateClass(validate_onboarding=onboarding_is_valid)
        task_run_id = operator.launch_task_run(cfg, state)
        assert task_run_id is not None, "the run did not launch"
        return Run(operator, task_run_id, cfg)

    return _launch


def _onboarding(task_name: str) -> Dict[str, Any]:
    return {"onboarding_source": str(EXAMPLE / "onboarding.html"), "onboarding_qualification": f"{task_name}-onb"}


def _grant(db: Any, qualification: str, *names: str) -> None:
    report = grants.grant(db, qualification, list(names), provider="mock", create=True)
    assert report.ok, report.summary()


# ------------------------------------------------------------------ the tests


def test_allowlisted_worker_sees_the_task_and_the_submission_is_in_the_db(db, launch, browser):
    _grant(db, "trusted", "alice")
    run = launch({"allowlists": ["trusted"], "blocklists": ["blocked"]})

    page = browser.run(browser.open_and_wait(run.url("alice"), TASK_HEADING))
    assert NOT_QUALIFIED not in page
    assert "Arrived quickly and works exactly as described" in page  # data.csv's first review, filled in
    browser.run(_fill("sentiment", "positive", comment="clear and short"))
    browser.screenshot("task", readme=True)
    alert = browser.run(_answer_and_submit("sentiment", "positive"))
    assert alert and "The task has been submitted" in alert and '"sentiment":"positive"' in alert

    assert run.wait_for(lambda: [a.get_status() for a in run.agents(db, "alice")] == ["completed"]), \
        [a.get_status() for a in run.agents(db, "alice")]
    outputs = run.agents(db, "alice")[0].state.get_data()["outputs"]
    assert outputs["sentiment"] == "positive" and outputs["comment"] == "clear and short"
    browser.screenshot("task-submitted")


def test_blocklisted_and_unlisted_workers_see_not_qualified_and_get_no_agent(db, launch, browser):
    _grant(db, "trusted", "bob", "alice")
    _grant(db, "blocked", "bob")
    worker(db, "dave")  # known to Mephisto, never allowlisted
    run = launch({"allowlists": ["trusted"], "blocklists": ["blocked"]})

    page = browser.run(browser.open_and_wait(run.url("bob"), NOT_QUALIFIED))
    assert TASK_HEADING not in page
    browser.screenshot("not-qualified", readme=True)
    page = browser.run(browser.open_and_wait(run.url("dave"), NOT_QUALIFIED))
    browser.screenshot("not-qualified-unlisted")
    run.wait_for(lambda: False, 0.5)  # anything in flight lands first
    assert run.agents(db, "bob") == [] and run.agents(db, "dave") == []
    # The same run serves an allowlisted worker, so the refusals are the gate's doing.
    browser.run(browser.open_and_wait(run.url("alice"), TASK_HEADING))
    assert run.wait_for(lambda: len(run.agents(db, "alice")) == 1)
    assert len(run.agents(db)) == 1


def test_failed_onboarding_refuses_the_return_visit_and_a_second_task(db, launch, browser):
    run_a = launch(task_name="task-a", **_onboarding("task-a"))

    page = browser.run(browser.open_and_wait(run_a.url("frank"), ONBOARDING_HEADING))
    assert TASK_HEADING not in page
    browser.screenshot("onboarding", readme=True)
    browser.run(_answer_and_submit("answer", "negative", alert=False))  # the wrong answer
    browser.run(lambda d: _wait_for_text(d, NOT_QUALIFIED))
    browser.screenshot("onboarding-failed")
    frank = worker(db, "frank")
    assert run_a.wait_for(lambda: frank.get_granted_qualification("task-a-onb-failed") is not None)
    assert frank.is_disqualified("task-a-onb")
    assert [a.get_status() for a in run_a.agents(db, "frank")] == []  # no task agent, only the onboarding

    # Coming back (a new visit) to the same task: refused at once, no onboarding again.
    page = browser.run(browser.open_and_wait(run_a.url("frank", visit="2"), NOT_QUALIFIED))
    assert ONBOARDING_HEADING not in page
    browser.screenshot("onboarding-failed-return")

    # A second task that keeps out who failed task A's onboarding.
    run_b = launch({"block_onboarding_failed": ["task-a-onb"]}, task_name="task-b")
    browser.run(browser.open_and_wait(run_b.url("frank"), NOT_QUALIFIED))
    browser.screenshot("second-task-refused")
    run_b.wait_for(lambda: False, 0.5)
    assert run_b.agents(db, "frank") == []
    browser.run(browser.open_and_wait(run_b.url("newcomer"), TASK_HEADING))  # task B itself is open
    assert run_b.wait_for(lambda: len(run_b.agents(db, "newcomer")) == 1)


def test_worker_who_passes_onboarding_continues_to_the_task(db, launch, browser):
    run = launch(task_name="task-p", **_onboarding("task-p"))

    browser.run(browser.open_and_wait(run.url("grace"), ONBOARDING_HEADING))
    browser.run(_answer_and_submit("answer", "positive", alert=False))
    page = browser.run(lambda d: _wait_for_text(d, TASK_HEADING))
    assert ONBOARDING_HEADING not in page and NOT_QUALIFIED not in page
    browser.screenshot("onboarding-passed-task")
    grace = worker(db, "grace")
    assert grace.is_qualified("task-p-onb")
    alert = browser.run(_answer_and_submit("sentiment", "mixed", comment="after onboarding"))
    assert alert and '"sentiment":"mixed"' in alert
    assert run.wait_for(lambda: [a.get_status() for a in run.agents(db, "grace")] == ["completed"])
    assert run.agents(db, "grace")[0].state.get_data()["outputs"]["comment"] == "after onboarding"


def test_block_with_an_expiry_stops_gating_after_it_expires(db, launch, browser):
    run = launch({"blocklists": ["cool-off"]})
    # Granted after launch: the gate reads grants when the worker arrives.
    report = grants.grant(db, "cool-off", ["henry"], provider="mock", create=True, expires_in="3s")
    assert report.ok, report.summary()
    expires = time.time() + 3

    browser.run(browser.open_and_wait(run.url("henry"), NOT_QUALIFIED))
    assert time.time() < expires, "the first visit took longer than the block lasts; the check proves nothing"
    browser.screenshot("blocked-until-expiry")
    run.wait_for(lambda: False, 0.3)
    assert run.agents(db, "henry") == []

    run.wait_for(lambda: time.time() > expires + 0.3, 10)
    page = browser.run(browser.open_and_wait(run.url("henry", visit="2"), TASK_HEADING))
    assert NOT_QUALIFIED not in page
    browser.screenshot("after-expiry")
    assert run.wait_for(lambda: len(run.agents(db, "henry")) == 1)


# ------------------------------------------------------------------ the pilot command itself


def _site_packages_state() -> Dict[str, List[str]]:
    """What Mephisto 1.1.1 would write into site-packages on a launch: its tmp dir and the two builds."""
    import mephisto

    pkg = Path(mephisto.__file__).resolve().parent
    places = {
        "tmp": pkg.parent / "tmp",
        "frontend": pkg / "abstractions" / "blueprints" / "static_html_task" / "source",
        "router": pkg / "abstractions" / "architects" / "router" / "node",
    }
    return {k: sorted(f"{p.name}:{p.stat().st_mtime_ns}" for p in v.iterdir()) if v.exists() else [] for k, v in places.items()}


def _read_until(proc: subprocess.Popen, marker: str, lines: List[str], timeout: float) -> None:
    done = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                done.set()
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    if not done.wait(timeout) or not any(marker in line for line in lines):
        proc.kill()
        raise AssertionError(f"the pilot never printed {marker!r}:\n" + "".join(lines[-60:]))


def _body_after(driver: Any, url: str, text: str) -> str:
    driver.get(url)
    return _wait_for_text(driver, text)


@pytest.mark.subprocess
def test_pilot_command_prints_working_links_and_stops_cleanly_on_ctrl_c(builds, chromium, tmp_path):
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PILOT_DATA": str(tmp_path / "pilot-data"), "PYTHONUNBUFFERED": "1",
           pilot.CACHE_ENV: str(builds.frontend.parent), "COLUMNS": "200"}
    before = _site_packages_state()
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "pilot.py"), f"mephisto.architect.port={port}"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    lines: List[str] = []
    try:
        _read_until(proc, "Ctrl-C stops the pilot", lines, timeout=60)
        startup = time.time() - started
        out = "".join(lines)
        urls = dict(re.findall(r"^  (preview|alice|bob|carol|dave) +(http://\S+)$", out, re.M))
        assert urls["preview"] == f"http://localhost:{port}/", out
        for name in ("alice", "bob", "carol", "dave"):
            assert urls[name] == f"http://localhost:{port}/?worker_id={name}&assignment_id=pilot-{name}", out
        # A cached launch builds nothing (the builds exist): no npm work in the launch itself. Its
        # time is reported, not asserted (a loaded CI machine varies; benchmarks live in bench/).
        assert "building Mephisto's static frontend" not in out and "installing Mephisto's node router" not in out, out
        print(f"cached pilot launch: {startup:.1f} s")

        driver = chromium
        try:
            seen = {name: _body_after(driver, urls[name], text) for name, text in (
                ("alice", TASK_HEADING), ("bob", NOT_QUALIFIED), ("carol", ONBOARDING_HEADING), ("dave", NOT_QUALIFIED))}
            driver.save_screenshot(str(tmp_path / "pilot-dave.png"))
            driver.get(urls["preview"])
            _wait_for_text(driver, "Before the first review")  # the example's preview.html
            driver.save_screenshot(str(tmp_path / "pilot-preview.png"))
        finally:
            _reset(driver)
        assert NOT_QUALIFIED not in seen["alice"] and NOT_QUALIFIED not in seen["carol"]

        stop = time.time()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in its terminal reaches the whole foreground group
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("the pilot did not stop within 20 s of Ctrl-C:\n" + "".join(lines[-40:])) from e
        stopping = time.time() - stop
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = "".join(lines)
    assert proc.returncode == 0, out[-3000:]
    assert "Stopping the pilot" in out and "Pilot stopped." in out, out[-3000:]
    # No error from the shutdown. (A traceback from Mephisto's metrics server, which cannot have
    # port 3031 while this test process's Operators hold it, is Mephisto's own and harmless.)
    for error in ("Task exception was never retrieved", "Error executing job", "Task was destroyed"):
        assert error not in out, out[-3000:]
    tracebacks = out.count("Traceback (most recent call last)")
    assert tracebacks == out.count("start_http_server(3031)"), out[-3000:]
    assert stopping < 10, f"stopping took {stopping:.1f} s"
    with socket.socket() as s:  # the node server is gone
        assert s.connect_ex(("127.0.0.1", port)) != 0, "something still listens on the pilot's port"
    assert _site_packages_state() == before, "the pilot wrote into Mephisto's installed files"
    assert (tmp_path / "pilot-data" / "database.db").exists()
    assert not (home / ".cache").exists() or not any((home / ".cache").iterdir()), "builds went to HOME's cache"
