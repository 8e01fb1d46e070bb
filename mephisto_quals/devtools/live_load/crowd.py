"""The arrival stream's workers: packets to the mock server's websocket without blocking, answers
timestamped as the server files them, and one worker's flow from arrival to submission."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import Any, Dict, Optional, Tuple

from mephisto_quals.devtools.live_load.records import ArrivalRecord


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Answers(Dict[str, Any]):
    """The mock server's answers by request id (filed on the server's thread), with their arrival
    time, waking the coroutine that waits for each."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.times: Dict[str, float] = {}
        self.waiters: Dict[str, asyncio.Future[None]] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.times[key] = time.time()
        super().__setitem__(key, value)
        waiter = self.waiters.get(key)
        if waiter is not None:
            self.loop.call_soon_threadsafe(_wake, waiter)


#: What a request got: when it was sent, when the answer came (unix seconds), the answer (None: none came).
Answer = Tuple[float, float, Optional[Dict[str, Any]]]


class Crowd:
    """Sends mock workers' packets without blocking and awaits Mephisto's answers, on the
    Operator's own event loop."""

    def __init__(self, operator: Any, task_run_id: str, timeout: float) -> None:
        from mephisto_quals.devtools import mock_crowd

        self.operator = operator
        self.loop: asyncio.AbstractEventLoop = operator._event_loop
        self.server = operator.get_running_task_runs()[task_run_id].architect.server
        self.timeout = timeout
        mock_crowd._install_recorder()
        self.answers = _Answers(self.loop)
        setattr(self.server, mock_crowd._ANSWERS_ATTR, self.answers)
        if not operator._run_loop_until(lambda: len(self.server.subs) > 0, timeout):
            raise TimeoutError("the mock server's channel did not come up")
        operator._run_loop_until(lambda: False, 1.0)  # let the channel settle

    def send(self, packet: Dict[str, Any]) -> float:
        """Queue a packet on the server's thread (thread-safe); returns when it was sent."""
        text = json.dumps(packet)
        sub = list(self.server.subs.values())[0]
        self.server.running_instance.add_callback(sub.write_message, text)
        return time.time()

    async def request(self, packet: Dict[str, Any], request_id: str) -> Answer:
        """Send and wait for the answer: (sent, answered, answer); answer None on timeout."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.answers.waiters[request_id] = waiter
        sent = self.send(packet)
        try:
            if request_id not in self.answers:
                try:
                    await asyncio.wait_for(waiter, self.timeout)
                except asyncio.TimeoutError:
                    return sent, time.time(), None
        finally:
            del self.answers.waiters[request_id]
        return sent, self.answers.times[request_id], self.answers[request_id]

    async def register(self, worker: str) -> Answer:
        from mephisto.data_model.packet import PACKET_TYPE_REGISTER_AGENT

        rid = f"register-{uuid.uuid4()}"
        return await self.request({"packet_type": PACKET_TYPE_REGISTER_AGENT, "subject_id": "MockServer",
                                   "data": {"request_id": rid, "provider_data": {
                                       "worker_name": worker, "agent_registration_id": rid}}}, rid)

    async def onboard(self, agent_id: str, passed: bool) -> Answer:
        from mephisto.data_model.packet import PACKET_TYPE_SUBMIT_ONBOARDING

        rid = f"onboard-{uuid.uuid4()}"
        return await self.request({"packet_type": PACKET_TYPE_SUBMIT_ONBOARDING, "subject_id": agent_id,
                                   "data": {"request_id": rid, "onboarding_data": {"should_pass": passed}}}, rid)

    def work_and_submit(self, agent_id: str) -> None:
        """The worker's act (the mock runner waits for one) and the unit's submission."""
        from mephisto.data_model.packet import PACKET_TYPE_MEPHISTO_BOUND_LIVE_UPDATE, PACKET_TYPE_SUBMIT_UNIT

        self.send({"packet_type": PACKET_TYPE_MEPHISTO_BOUND_LIVE_UPDATE, "subject_id": agent_id,
                   "data": {"text": "done"}})
        self.send({"packet_type": PACKET_TYPE_SUBMIT_UNIT, "subject_id": agent_id, "data": {"completed": True}})


async def flow(crowd: Crowd, rec: ArrivalRecord, rng: random.Random, onboarding: bool) -> Optional[str]:
    """One worker from arrival to submission; returns the agent id of their unit, if any."""
    from mephisto.operations.datatypes import WorkerFailureReasons

    rec.sent, answered, answer = await crowd.register(rec.worker)
    if answer is None:
        rec.verdict, rec.detail = "error", "no answer to register"
        return None
    rec.answered = answered
    agent_id = answer.get("agent_id")
    failure = answer.get("failure_reason")
    if failure == WorkerFailureReasons.NOT_QUALIFIED:
        rec.verdict = "refused"
        return None
    if not agent_id or (onboarding and not str(agent_id).startswith("onboarding")):
        rec.verdict, rec.detail = "error", f"unexpected answer to register: {answer}"
        return None
    rec.verdict = "admitted"
    if onboarding:
        await asyncio.sleep(rng.uniform(0.05, 0.15))  # the worker does the onboarding
        sent, answered, answer = await crowd.onboard(agent_id, passed=True)
        if answer is None:
            rec.detail = "no answer to the onboarding submission"
            return None
        rec.onboarding_latency = answered - sent
        agent_id = answer.get("agent_id")
        if not agent_id or str(agent_id).startswith("onboarding"):
            rec.detail = f"admitted, passed onboarding, but got no unit: {answer}"
            return None
    rec.got_unit = True
    await asyncio.sleep(rng.uniform(0.05, 0.15))  # the worker does the task
    crowd.work_and_submit(agent_id)
    rec.submitted = True
    rec.agent_id = str(agent_id)
    return rec.agent_id
