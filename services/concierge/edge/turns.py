"""Runs an agent turn for a stored user message and publishes its events to the hub.

Turns of one session run one after another, so answers arrive in the order asked.
"""

from __future__ import annotations

import asyncio
import logging

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
        return {"type": "error", "replyTo": reply_to, "code": event.error.code, "message": event.error.message}
    return None


class TurnRunner:
    def __init__(self, agent: agent_pb2_grpc.AgentServiceAsyncStub, hub: SessionHub, timeout: float) -> None:
        self._agent, self._hub, self._timeout = agent, hub, timeout
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, tenant: str, agent: str, message: memory_pb2.Message) -> None:
        task = asyncio.create_task(self._run(tenant, agent, message), name=f"turn-{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, tenant: str, agent: str, message: memory_pb2.Message) -> None:
        session_id, reply_to = message.session_id, message.id
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            request = agent_pb2.ChatRequest(
                tenant=tenant, agent=agent, session_id=session_id, user_message_id=message.id, text=message.text
            )
            finished = False
            try:
                async for event in self._agent.Chat(request, timeout=self._timeout):
                    frame = event_frame(event, reply_to)
                    if frame is not None:
                        finished = finished or frame["type"] in ("done", "error")
                        self._hub.publish(session_id, frame)
                if not finished:
                    self._hub.publish(session_id, _error(reply_to, "incomplete", "the agent ended without an answer"))
            except grpc.aio.AioRpcError as err:
                log.warning("turn failed tenant=%s session=%s code=%s", tenant, session_id, err.code().name)
                self._hub.publish(session_id, _error(reply_to, err.code().name.lower(), _customer_text(err)))
            except Exception:
                log.exception("turn crashed tenant=%s session=%s", tenant, session_id)
                self._hub.publish(
                    session_id, _error(reply_to, "internal", "Something went wrong answering; please try again.")
                )
        if not lock.locked() and session_id in self._locks and not self._hub.in_flight(session_id):
            self._locks.pop(session_id, None)

    async def drain(self) -> None:
        """Let running turns finish (shutdown)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._timeout)


def _error(reply_to: str, code: str, message: str) -> Frame:
    return {"type": "error", "replyTo": reply_to, "code": code, "message": message}


def _customer_text(err: grpc.aio.AioRpcError) -> str:
    if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return "The assistant is unavailable right now. Your message is saved; please try again in a moment."
    return err.details() or "The assistant could not answer."
