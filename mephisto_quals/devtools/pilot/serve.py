"""The pilot's test workers, their links, and serving a launched run until Ctrl-C.

Importing this module does not import Mephisto.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, TextIO

from mephisto_quals.devtools.mock_crowd import stop_operator as stop  # (public: pilot.stop)

if TYPE_CHECKING:
    from mephisto.operations.operator import Operator

__all__ = [
    "PilotWorker",
    "pilot_workers",
    "seed_workers",
    "worker_url",
    "server_url",
    "print_urls",
    "wait_for_launch",
    "stop",
    "serve_until_interrupted",
]


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
        PilotWorker(
            "alice",
            "allowed" + (", passed the onboarding before" if onboarding else ""),
            "task",
            grant=allow,
            revoke=block,
            onboarding=True if onboarding else None,
        ),
    ]
    if block:
        crowd.append(
            PilotWorker(
                "bob",
                f"allowed but on the blocklist ({block[0]})",
                "not qualified",
                grant=allow + block[:1],
                onboarding=True if onboarding else None,
            )
        )
    if onboarding:
        crowd.append(
            PilotWorker(
                "carol",
                "allowed, has not taken the onboarding yet",
                "onboarding",
                grant=allow,
                revoke=block,
                onboarding=False,
            )
        )
    if allow:
        crowd.append(
            PilotWorker(
                "dave",
                f"not on the allowlist ({allow[0]})",
                "not qualified",
                revoke=allow + block,
                onboarding=True if onboarding else None,
            )
        )
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
        grants.grant(
            db,
            qual,
            names([w for w in workers if qual in w.grant]),
            provider=provider,
            reason="pilot test worker",
            source="pilot",
        )
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
    print(
        "A new visit of the same worker: change assignment_id in the link. Ctrl-C stops the pilot.",
        file=out,
        flush=True,
    )
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
