"""Runs agent turns for stored user messages and publishes their events to the hub.

Turns of one session run one after another, so answers arrive in the order asked.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.json_format import MessageToDict

from concierge.edge.hub import Frame, SessionHub
from concierge.edge.schemas import citation_out, message_out
from concierge.v1 import agent_pb2, agent_pb2_grpc, memory_pb2

log = logging.getLogger(__name__)


def event_frame(event: agent_pb2.ChatResponse, reply_to: str) -> Frame | None:
    """The WebSocket frame for one agent event (camelCase JSON); None for unknown events."""
    kind = event.WhichOneof("event")
    if kind == "text_delta":
        return {"type": "text_delta", "replyTo": reply_to, "text": event.text_delta.text}
    if kind == "tool_call":
        call = event.tool_call
        return {
            "type": "tool_call",
            "replyTo": reply_to,
            "callId": call.call_id,
            "name": call.name,
            "finished": call.finished,
            "resultSummary": call.result_summary,
        }
    if kind == "citation":
        return {
            "type": "citation",
            "replyTo": reply_to,
            "citation": citation_out(event.citation).model_dump(by_alias=True),
        }
    if kind == "escalation":
        return {
            "type": "escalation",
            "replyTo": reply_to,
            "reason": event.escalation.reason,
            "message": event.escalation.message,
        }
    if kind == "done":
        done = event.done
        return {
            "type": "done",
            "replyTo": reply_to,
            "message": message_out(done.message).model_dump(by_alias=True),
            "usage": MessageToDict(done, preserving_proto_field_name=False, always_print_fields_with_no_presence=True)
            | {"message": None},
        }
    if kind == "error":
        code = event.error.code
        return {"type": "error", "replyTo": reply_to, "code": code.lower(), "message": customer_text(code)}
    return None


@dataclass(frozen=True)
class _Turn:
    tenant: str
    agent: str
    message: memory_pb2.Message


class TurnRunner:
    """One worker per session with pending turns, so answers stream one at a time, in order.

    A message already queued or answering is not queued again; a message whose answer is
    stored gets that answer replayed by the agent (a client resending after a lost ack).
    """

    def __init__(
        self,
        agent: Callable[[str, str], agent_pb2_grpc.AgentServiceAsyncStub | None],
        hub: SessionHub,
        timeout: float,
    ) -> None:
        self._agent, self._hub, self._timeout = agent, hub, timeout
        self._queues: dict[str, deque[_Turn]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending: set[str] = set()

    def start(self, tenant: str, agent: str, message: memory_pb2.Message) -> bool:
        """Queue an answer to `message`; False when one is already queued or running."""
        if message.id in self._pending:
            return False
        self._pending.add(message.id)
        session_id = message.session_id
        self._queues.setdefault(session_id, deque()).append(_Turn(tenant, agent, message))
        if session_id not in self._workers:
            self._workers[session_id] = asyncio.create_task(self._work(session_id), name=f"turns-{session_id}")
        return True

    async def _work(self, session_id: str) -> None:
        queue = self._queues[session_id]
        try:
            while queue:
                turn = queue.popleft()
                try:
                    await self._run(turn)
                finally:
                    self._pending.discard(turn.message.id)
        finally:
            # No await between the empty check above and here: start() cannot slip in between.
            del self._queues[session_id]
            del self._workers[session_id]

    async def _run(self, turn: _Turn) -> None:
        message = turn.message
        session_id, reply_to = message.session_id, message.id
        request = agent_pb2.ChatRequest(
            tenant=turn.tenant, agent=turn.agent, session_id=session_id, user_message_id=message.id, text=message.text
        )
        finished = False
        offset = 0
        agent = self._agent(turn.tenant, turn.agent)
        if agent is None:
            self._hub.publish(session_id, _error(reply_to, "not_found", customer_text("NOT_FOUND")))
            return
        try:
            async for event in agent.Chat(request, timeout=self._timeout):
                frame = event_frame(event, reply_to)
                if frame is None:
                    continue
                if frame["type"] == "text_delta":
                    # Lets a client that reconnects mid-answer skip what it already shows.
                    frame["offset"] = offset
                    offset += len(frame["text"])
                elif frame["type"] == "error":
                    log.warning(
                        "agent error tenant=%s session=%s code=%s detail=%s",
                        turn.tenant,
                        session_id,
                        frame["code"],
                        event.error.message,
                    )
                finished = finished or frame["type"] in ("done", "error")
                self._hub.publish(session_id, frame)
            if not finished:
                self._hub.publish(
                    session_id, _error(reply_to, "incomplete", "The answer was cut off; please ask again.")
                )
        except grpc.aio.AioRpcError as err:
            log.warning(
                "turn failed tenant=%s session=%s code=%s detail=%s",
                turn.tenant,
                session_id,
                err.code().name,
                err.details(),
            )
            self._hub.publish(session_id, _error(reply_to, err.code().name.lower(), customer_text(err.code().name)))
        except Exception:
            log.exception("turn crashed tenant=%s session=%s", turn.tenant, session_id)
            self._hub.publish(session_id, _error(reply_to, "internal", customer_text("INTERNAL")))

    async def drain(self) -> None:
        """Let running turns finish (shutdown)."""
        if self._workers:
            await asyncio.wait(list(self._workers.values()), timeout=self._timeout)


def _error(reply_to: str, code: str, message: str) -> Frame:
    return {"type": "error", "replyTo": reply_to, "code": code, "message": message}


def customer_text(code: str) -> str:
    """What a customer is told when an answer fails; details stay in the logs."""
    if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"):
        return "The assistant is unavailable right now. Your message is saved; please try again in a moment."
    if code in ("NOT_FOUND", "FAILED_PRECONDITION"):
        return "This conversation cannot be answered any more; please start a new chat."
    return "Something went wrong while answering. Your message is saved; please try again."
