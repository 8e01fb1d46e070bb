"""Drive mock workers through a live Mephisto run on the mock architect, and stop it fast.

Used by the demo and the tests: the same websocket packets a browser would send, through
Mephisto's real Operator, worker pool and qualification gate.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional

if TYPE_CHECKING:
    from mephisto.operations.datatypes import LiveTaskRun
    from mephisto.operations.operator import Operator

__all__ = ["Arrival", "MockRun", "free_port", "speed_up_mephisto", "stop_operator"]


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def speed_up_mephisto() -> None:
    """Make in-process mock runs fast and safe: short polling sleeps, no tornado auto-reload.

    Call before creating the Operator: its run tracker reads the poll time as it loops.
    """
    import tornado.autoreload
    from mephisto.operations import operator, task_launcher

    task_launcher.UNIT_GENERATOR_WAIT_SECONDS = 0.2
    operator.RUN_STATUS_POLL_TIME = 0.2
    # The mock server runs tornado with debug=True, which turns on auto-reload: a module file
    # changing on disk would restart this process mid-run (and a test run would "pass").
    tornado.autoreload.start = lambda *args, **kwargs: None


def _cancel_tasks(operator: Operator) -> None:
    """Cancel everything pending on the Operator's loop and let the cancellations land."""
    import asyncio

    loop = operator._event_loop
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def stop_operator(operator: Operator) -> None:
    """Stop every run of ``operator`` now (about a second), without waiting for in-flight work.

    Mephisto 1.1.1 offers no safe fast path: ``Operator.shutdown`` waits 30 s at a time for
    in-flight assignments, and its run tracker (``_track_and_kill_runs``) deletes the wrong
    run on a forced shutdown of several runs and races any outside shutdown. So the tracker
    and the worker pool's in-flight handlers are cancelled first; then each run is stopped
    channels first (client channels close before the server, so no socket waits out its
    timeout), its units expired, and its server stopped.
    """
    operator.is_shutdown = True
    _cancel_tasks(operator)
    for live_run in list(operator._task_runs_tracked.values()):
        for step in (
            live_run.client_io.shutdown,
            live_run.task_launcher.shutdown,
            live_run.task_launcher.expire_units,
            live_run.architect.shutdown,
            live_run.task_runner.shutdown,
            live_run.worker_pool.shutdown,
        ):
            try:
                step()
            except Exception:  # best effort: keep stopping the rest
                pass
    operator._task_runs_tracked.clear()
    operator._event_loop.run_until_complete(_sleep(0.2))  # let closing sockets finish
    _cancel_tasks(operator)


@dataclass
class Arrival:
    """What Mephisto answered a worker who asked for work."""

    worker_name: str
    details: Dict[str, Any]

    @property
    def agent_id(self) -> Optional[str]:
        return self.details.get("agent_id")

    @property
    def failure(self) -> Optional[str]:
        return self.details.get("failure_reason")

    @property
    def got_onboarding(self) -> bool:
        return bool(self.agent_id) and str(self.agent_id).startswith("onboarding")

    @property
    def got_unit(self) -> bool:
        return bool(self.agent_id) and not self.got_onboarding


#: Attribute of a MockServer under which ``_record_answers`` files its answers.
_ANSWERS_ATTR = "_mephisto_quals_answers"
#: How many of 1.4+'s ``received_messages`` (every packet, 4-second status pings included) to keep.
_KEEP_RECEIVED = 200


def _install_recorder() -> None:
    """Wrap ``mock_architect.SocketHandler.on_message`` (same signature on 1.1.1 and 1.5.2) once.

    Mephisto 1.1.1's mock server keeps only its ``last_packet`` (a status update can overwrite
    an answer before we read it); 1.4+ appends every packet to ``received_messages`` without
    bound. Reading the packet as it arrives works on both: the wrapper files each answer that
    carries a ``request_id`` on servers that asked for it, and trims ``received_messages``.
    """
    import json

    from mephisto.abstractions.architects import mock_architect

    handler = mock_architect.SocketHandler
    if getattr(handler.on_message, "_mephisto_quals_recorder", False):
        return
    original = handler.on_message

    def on_message(self: Any, message_text: Any) -> Any:
        result = original(self, message_text)
        answers = getattr(self.app, _ANSWERS_ATTR, None)
        if answers is not None:
            data = json.loads(message_text).get("data")
            if isinstance(data, dict) and "request_id" in data:
                answers[data["request_id"]] = data
            received = getattr(self.app, "received_messages", None)
            if isinstance(received, list) and len(received) > 2 * _KEEP_RECEIVED:
                del received[:-_KEEP_RECEIVED]
        return result

    on_message._mephisto_quals_recorder = True  # type: ignore[attr-defined]
    handler.on_message = on_message


def _record_answers(server: Any) -> Dict[str, Dict[str, Any]]:
    """Keep every answer ``server`` (a MockServer) receives from now on, by request id."""
    _install_recorder()
    answers: Dict[str, Dict[str, Any]] = {}
    setattr(server, _ANSWERS_ATTR, answers)
    return answers


class MockRun:
    """One launched task run on the mock architect, and its mock workers."""

    def __init__(self, operator: Operator, task_run_id: str, timeout: float = 15.0):
        self.operator = operator
        self.task_run_id = task_run_id
        self.timeout = timeout
        self.live_run: LiveTaskRun = operator.get_running_task_runs()[task_run_id]
        self.server = self.live_run.architect.server
        self._answers: Dict[str, Dict[str, Any]] = _record_answers(self.server)
        self._wait_ready()

    def _wait_ready(self) -> None:
        # The channel must be up and settled before the first packet, or a request can be lost.
        if not self.operator._run_loop_until(lambda: len(self.server.subs) > 0, self.timeout):
            raise TimeoutError("the mock server's channel did not come up")
        self.operator._run_loop_until(lambda: False, 1.0)

    def _send(self, packet: Dict[str, Any]) -> None:
        self.server._send_message(packet)

    def _await_answer(self, request_id: str) -> Dict[str, Any]:
        if not self.operator._run_loop_until(lambda: request_id in self._answers, self.timeout):
            raise TimeoutError(f"no answer from Mephisto to request {request_id}")
        return self._answers[request_id]

    def arrive(self, worker_name: str) -> Arrival:
        """A worker opens the task and asks for work; returns Mephisto's answer."""
        from mephisto.data_model.packet import PACKET_TYPE_REGISTER_AGENT

        request_id = f"register-{uuid.uuid4()}"
        self._send(
            {
                "packet_type": PACKET_TYPE_REGISTER_AGENT,
                "subject_id": "MockServer",
                "data": {
                    "request_id": request_id,
                    "provider_data": {"worker_name": worker_name, "agent_registration_id": request_id},
                },
            }
        )
        return Arrival(worker_name, self._await_answer(request_id))

    def submit_onboarding(self, arrival: Arrival, passed: bool) -> Arrival:
        """Submit the mock onboarding (the mock blueprint passes on ``should_pass``)."""
        from mephisto.data_model.packet import PACKET_TYPE_SUBMIT_ONBOARDING

        request_id = f"onboard-{uuid.uuid4()}"
        self._send(
            {
                "packet_type": PACKET_TYPE_SUBMIT_ONBOARDING,
                "subject_id": arrival.agent_id,
                "data": {"request_id": request_id, "onboarding_data": {"should_pass": passed}},
            }
        )
        return Arrival(arrival.worker_name, self._await_answer(request_id))

    def pump(self, seconds: float) -> None:
        """Let the operator's event loop run for a while."""
        self.operator._run_loop_until(lambda: False, seconds)
