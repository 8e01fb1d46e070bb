"""A live task run while another process imports, revokes and applies reviews on the same database.

Process A is this test: a real Operator runs a ``mock_quals`` task (mock architect, onboarding on,
an allowlist and a blocklist) while mock workers arrive every 60-140 ms, take the onboarding, get
a unit and submit it. Process B is a separate Python running the CLI on the same database file:
``import`` of 20,000 new grants from a CSV, ``revoke`` of 10,000 members from a file, and
``review --apply`` on an earlier finished run (the bench, ``bench/bench_live_run.py``, runs
100,000 / 50,000 and reports the latencies). The harness is
:mod:`mephisto_quals.devtools.live_load`, whose docstring says how verdicts are judged: each
change must appear to every arrival at one instant inside its command's window (never half a
list). Nothing here is timed: the machine is shared and slow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mephisto_quals.devtools.live_load import ALLOW, BLOCK, CATEGORIES, LoadConfig, run_live

pytestmark = [pytest.mark.subprocess, pytest.mark.slow, pytest.mark.timeout(300)]


def test_live_run_beside_bulk_grants_has_no_lock_errors_and_every_verdict_right(tmp_path: Path) -> None:
    config = LoadConfig(str(tmp_path / "live"), grants=20_000, revokes=10_000, earlier_workers=30, arrivals=60,
                        tail=2.0)
    result = run_live(config)

    assert result.locked == [], f"the live run met a locked database: {result.locked}"
    assert result.errors == [], f"arrivals that went wrong: {result.errors}"
    assert result.problems == [], "\n".join(result.problems)
    steps = {s.name: s for s in result.steps}
    assert list(steps) == ["import", "revoke", "review"] and all(s.exit_code == 0 for s in steps.values()), steps
    assert "20000 granted" in steps["import"].output and "10000 revoked" in steps["revoke"].output, steps
    # Everything B did committed: 200 stable + 50 blocked + 15 rejected + 10,000 revoked, then
    # +20,000 imported, -10,000 revoked, +15 approved; the blocklist gains the 15 rejected.
    assert result.counts == result.expected_counts == {ALLOW: 20_280, BLOCK: 65}
    assert all(s.holds for s in steps.values()), "process B's write holds were not recorded"

    # The stream really straddled each change: for every command some arrivals whose verdict it
    # flips saw the list before it and some after, and every admitted worker submitted a unit.
    for step in steps:
        flipping = [a for a in result.arrivals if CATEGORIES[a.category][0] == step]
        before = [a for a in flipping if (a.verdict == "admitted") == CATEGORIES[a.category][1]]
        assert before and len(before) < len(flipping), f"{step}: no arrival on one side of the change"
    admitted = [a for a in result.arrivals if a.verdict == "admitted"]
    assert admitted and all(a.completed for a in admitted)
    assert {a.verdict for a in result.arrivals} == {"admitted", "refused"}


def test_a_writer_holding_the_lock_past_mephistos_timeout_is_caught(tmp_path: Path) -> None:
    """The control: process B keeps one write transaction open for 6.5 s, longer than the 5 s
    Mephisto's sqlite connection waits, and the harness reports the live run's lock error."""
    config = LoadConfig(str(tmp_path / "held"), grants=100, revokes=100, earlier_workers=4, arrivals=20,
                        hold_lock=6.5, answer_timeout=9.0)
    result = run_live(config)

    assert [(s.name, s.exit_code) for s in result.steps] == [("hold", 0)]
    assert max(result.steps[0].holds) >= 6.5
    assert result.locked, "a write lock held past Mephisto's timeout went unnoticed"
    assert any("database is locked" in p for p in result.problems), result.problems
