"""The check of one run: locked errors, verdicts against the lists' single-commit timeline, units
not given and the holders' counts after the run."""

from __future__ import annotations

from mephisto_quals.devtools.live_load.population import CATEGORIES, Population
from mephisto_quals.devtools.live_load.records import LiveResult


def check_result(result: LiveResult, pop: Population, path: str) -> None:
    """Fill ``problems``: locked errors, wrong verdicts, units not given, missing commits."""
    from mephisto_quals.admin.queries import list_qualifications

    if result.locked:
        result.problems.append(f"{len(result.locked)} 'database is locked' in process A, e.g. {result.locked[0]}")
    for s in result.steps:
        if s.exit_code != 0:
            result.problems.append(f"process B's {s.name} exited {s.exit_code}: {s.output[-500:]}")
    for a in result.arrivals:
        if a.verdict == "error" or (a.verdict == "admitted" and not (a.got_unit and a.completed)):
            result.errors.append(f"{a.worker} ({a.category}): {a.verdict} {a.detail}")
    if result.errors:
        result.problems.append(f"{len(result.errors)} arrivals went wrong, e.g. {result.errors[0]}")
    windows = {s.name: (s.started, s.ended) for s in result.steps if s.exit_code == 0}
    for a in result.arrivals:
        flip, before = CATEGORIES[a.category]
        if a.verdict in ("admitted", "refused") and flip not in windows and (a.verdict == "admitted") != before:
            result.problems.append(f"{a.worker} ({a.category}) was {a.verdict}, but nothing changed their lists")
    for step, (start, end) in windows.items():
        old = [a for a in result.arrivals if CATEGORIES[a.category][0] == step and a.answered is not None
               and (a.verdict == "admitted") == CATEGORIES[a.category][1] and a.verdict != "error"]
        new = [a for a in result.arrivals if CATEGORIES[a.category][0] == step and a.answered is not None
               and (a.verdict == "admitted") != CATEGORIES[a.category][1] and a.verdict != "error"]
        lo = max([start] + [a.sent for a in old])
        hi = min([end] + [a.answered for a in new if a.answered is not None])
        result.commit_windows[step] = (lo, hi)
        if lo > hi:
            late_old = max(old, key=lambda a: a.sent)
            early_new = min(new, key=lambda a: a.answered or 0)
            result.problems.append(
                f"{step}: no single commit explains the verdicts (half a list seen): {early_new.worker} already had "
                f"the new list at {early_new.answered:.3f} but {late_old.worker} still had the old one after "
                f"{late_old.sent:.3f} (window {start:.3f}-{end:.3f})")
    expected = pop.expected_counts([s.name for s in result.steps if s.exit_code == 0])
    result.expected_counts = expected
    held = {q.name: q.holders for q in list_qualifications(path)}
    result.counts = {q: held.get(q, 0) for q in expected}
    if result.counts != expected:
        result.problems.append(f"holders after the run {result.counts}, expected {expected}")
