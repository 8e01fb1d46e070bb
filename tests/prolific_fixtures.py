"""Pytest fixtures for the Prolific stand-in; import them into a test module::

    from prolific_fixtures import prolific, prolific_client  # noqa: F401  (pytest fixtures)

``prolific`` is a started :class:`~prolific_standin.StandIn` with one workspace ("My
Workspace", id in ``prolific.workspace_id``), stopped at teardown. ``prolific_env`` also
points ``PROLIFIC_BASE_URL`` / ``PROLIFIC_API_KEY`` at it, for code that reads the
environment (our CLI, Mephisto 1.5.2's client when imported after it is set).
``mephisto_on_prolific`` (Mephisto 1.5.2 only; skipped on 1.1.1) also points Mephisto's own
Prolific client at it: that client reads ``PROLIFIC_BASE_URL`` / ``PROLIFIC_API_KEY`` when
its module is imported, which Mephisto's provider registry does as soon as the test process
imports the Operator, so the fixture patches the module's ``BASE_URL`` / ``PROLIFIC_API_KEY``
as well (a subprocess launch only needs ``prolific_env``). Checked: Mephisto 1.5.2's
``find_or_create_prolific_workspace/project``, ``create_qualification``,
``add_workers_to_qualification``, ``Studies.create`` (with ``filters``), ``update``, ``publish``
all work against the stand-in.
``prolific_client`` is our client on it, with a Retry that records its waits instead of
sleeping (``prolific_client.retry.waits``).
"""

from __future__ import annotations

from typing import Iterator, List

import pytest

from mephisto_quals.providers.prolific.client import ProlificClient, Retry
from prolific_standin import StandIn

__all__ = ["prolific", "prolific_env", "mephisto_on_prolific", "prolific_client", "RecordingRetry", "WORKSPACE"]

WORKSPACE = "My Workspace"


class RecordingRetry(Retry):
    """A Retry whose sleep only records the wait (``waits``)."""

    def __init__(self, attempts: int = 8) -> None:
        self.waits: List[float] = []
        super().__init__(attempts=attempts, base_delay=0.01, max_delay=60.0, sleep=self.waits.append)


@pytest.fixture
def prolific() -> Iterator[StandIn]:
    standin = StandIn(max_seconds=300).start()
    standin.workspace_id = standin.add_workspace(WORKSPACE)  # type: ignore[attr-defined]
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def prolific_env(prolific: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    monkeypatch.setenv("PROLIFIC_BASE_URL", prolific.base_url)
    monkeypatch.setenv("PROLIFIC_API_KEY", prolific.api_key)
    return prolific


@pytest.fixture
def mephisto_on_prolific(prolific_env: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    base = pytest.importorskip("mephisto.abstractions.providers.prolific.api.base_api_resource",
                               reason="Mephisto's Prolific provider exists from 1.2 on (the 1.5.2 line)")
    monkeypatch.setattr(base, "BASE_URL", prolific_env.base_url)
    monkeypatch.setattr(base, "PROLIFIC_API_KEY", prolific_env.api_key)
    return prolific_env


@pytest.fixture
def prolific_client(prolific: StandIn) -> ProlificClient:
    return ProlificClient(prolific.base_url, prolific.api_key, RecordingRetry())
