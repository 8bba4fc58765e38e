"""The human side of escalation: the inbox, taking a conversation over, replying, handing it back.

There is no staff authentication yet: these endpoints (`/api/v1/inbox…` and
`/api/v1/sessions/{id}/takeover|replies|handback`) must sit behind the staff auth a gateway puts in
front of them, never be exposed to customers as they are. The customer and a human agent share
the session's WebSocket; while a human holds a session the bot does not answer it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

import grpc
from fastapi import APIRouter, Query

from concierge.edge.backend import Backend, BackendDep, TenantDep, append_message, call, get_session
from concierge.edge.problems import Problem, grpc_problem
from concierge.edge.schemas import (
    HandoffOut,
    HumanReply,
    MessageAccepted,
    SessionList,
    SessionOut,
    StaffAction,
    human_frame,
    message_frame,
    message_out,
    session_out,
    status_name,
)
from concierge.v1 import memory_pb2

log = logging.getLogger(__name__)
STAFF_TAG = "human agents (staff only)"
INBOX_STATUSES: dict[str, list[memory_pb2.SessionStatus.ValueType]] = {
    "escalated": [memory_pb2.SESSION_STATUS_ESCALATED],
    "human": [memory_pb2.SESSION_STATUS_HUMAN],
    "all": [memory_pb2.SESSION_STATUS_ESCALATED, memory_pb2.SESSION_STATUS_HUMAN],
}
# What memory answers when a compare-and-set on the status finds another status.
_CAS_FAILED = (grpc.StatusCode.FAILED_PRECONDITION,)

router = APIRouter(prefix="/api/v1", tags=[STAFF_TAG])


def joined_text(name: str) -> str:
    return f"{name} joined the conversation"


def left_text(name: str) -> str:
    return f"{name} left; the assistant is back"


def holder_problem(session: memory_pb2.Session, name: str, action: str) -> Problem:
    """409 naming who holds the session, or saying that nobody does."""
    if session.status == memory_pb2.SESSION_STATUS_HUMAN:
        return Problem(
            409,
            "Held by another human agent",
            f"{session.handler} is handling session {session.id}, not {name}; {action} only after "
            f"{session.handler} hands it back",
            handler=session.handler,
            sessionStatus=status_name(session.status),
        )
    return Problem(
        409,
        "Not taken over",
        f"session {session.id} is {status_name(session.status)}, not held by a human agent; "
        "take it over (POST …/takeover) first",
        handler="",
        sessionStatus=status_name(session.status),
    )


async def _set_status(
    b: Backend,
    tenant: str,
    session_id: str,
    status: memory_pb2.SessionStatus.ValueType,
    handler: str,
    expect: list[memory_pb2.SessionStatus.ValueType],
    expect_handler: str = "",
) -> memory_pb2.SetSessionStatusResponse | None:
    """Compare-and-set the status; None when the session's status is not one of `expect` (or another
    human than `expect_handler` holds it)."""
    try:
        reply: memory_pb2.SetSessionStatusResponse = await b.memory(tenant).SetSessionStatus(
            memory_pb2.SetSessionStatusRequest(
                tenant=tenant,
                session_id=session_id,
                status=status,
                handler=handler,
                expect=expect,
                expect_handler=expect_handler,
            ),
            timeout=b.settings.rpc_timeout_seconds,
        )
    except grpc.aio.AioRpcError as err:
        if err.code() in _CAS_FAILED:
            return None
        raise grpc_problem(err, "memory service") from err
    return reply


async def _note(b: Backend, tenant: str, session_id: str, text: str, key: str) -> memory_pb2.Message:
    """Store a system message for the customer and the agent's history, once per key."""
    stored, _ = await append_message(
        b,
        tenant,
        memory_pb2.AppendMessageRequest(
            tenant=tenant, session_id=session_id, role=memory_pb2.ROLE_SYSTEM, text=text, client_message_id=key
        ),
    )
    return stored


@router.get("/inbox", response_model=SessionList, response_model_by_alias=True)
async def inbox(
    b: BackendDep,
    tenant: TenantDep,
    status: Annotated[
        Literal["escalated", "human", "all"],
        Query(description="`escalated`: waiting for a human; `human`: held by one; `all`: both."),
    ] = "all",
    agent: Annotated[str | None, Query(max_length=63, description="Only this SupportAgent's sessions.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many sessions.")] = 100,
) -> SessionList:
    """Conversations waiting for or held by a human agent, newest escalation first.

    Staff only: serve it behind staff authentication (the edge does not check it yet)."""
    reply = await call(
        "memory service",
        b.memory(tenant).ListSessions(
            memory_pb2.ListSessionsRequest(
                tenant=tenant, statuses=INBOX_STATUSES[status], agent=agent or "", limit=limit
            ),
            timeout=b.settings.rpc_timeout_seconds,
        ),
    )
    items: list[SessionOut] = [session_out(s) for s in reply.sessions]
    return SessionList(items=items)


@router.post("/sessions/{session_id}/takeover", response_model=HandoffOut, response_model_by_alias=True)
async def take_over(session_id: str, body: StaffAction, b: BackendDep, tenant: TenantDep) -> HandoffOut:
    """A human agent takes the conversation over: the bot stops answering, the customer is told
    who joined. Retrying is safe; 409 when another human agent holds it.

    Staff only: serve it behind staff authentication (the edge does not check it yet)."""
    name = body.agent_name
    reply = await _set_status(
        b,
        tenant,
        session_id,
        memory_pb2.SESSION_STATUS_HUMAN,
        name,
        [memory_pb2.SESSION_STATUS_ESCALATED, memory_pb2.SESSION_STATUS_BOT],
    )
    if reply is None or not reply.changed:
        session = reply.session if reply is not None else await get_session(b, tenant, session_id)
        if session.status == memory_pb2.SESSION_STATUS_HUMAN and session.handler == name:
            return HandoffOut(session=session_out(session), changed=False, message=None)
        raise holder_problem(session, name, "take it over")
    session = reply.session
    # Keyed by the moment of the change: a retry finds the session already held (above), and a later
    # take-over by the same person is a new note.
    note = await _note(b, tenant, session_id, joined_text(name), f"takeover:{session.updated_at}")
    b.hub.publish(session_id, human_frame("human_joined", name, note))
    log.info("human took over tenant=%s session=%s", tenant, session_id)
    return HandoffOut(session=session_out(session), changed=True, message=message_out(note))


@router.post(
    "/sessions/{session_id}/replies", status_code=201, response_model=MessageAccepted, response_model_by_alias=True
)
async def reply(session_id: str, body: HumanReply, b: BackendDep, tenant: TenantDep) -> MessageAccepted:
    """The human agent holding the conversation writes to the customer; it reaches the customer's
    WebSocket as a `message` frame. Idempotent on clientMessageId; 409 unless the sender holds it.

    Staff only: serve it behind staff authentication (the edge does not check it yet)."""
    session = await get_session(b, tenant, session_id)
    if session.status != memory_pb2.SESSION_STATUS_HUMAN or session.handler != body.agent_name:
        raise holder_problem(session, body.agent_name, "reply")
    stored, created = await append_message(
        b,
        tenant,
        memory_pb2.AppendMessageRequest(
            tenant=tenant,
            session_id=session_id,
            role=memory_pb2.ROLE_HUMAN,
            text=body.text,
            client_message_id=str(body.client_message_id),
            author=body.agent_name,
        ),
    )
    if created:
        b.hub.publish(session_id, message_frame(stored))
    return MessageAccepted(message=message_out(stored), created=created, session_status=status_name(session.status))


@router.post("/sessions/{session_id}/handback", response_model=HandoffOut, response_model_by_alias=True)
async def hand_back(session_id: str, body: StaffAction, b: BackendDep, tenant: TenantDep) -> HandoffOut:
    """The human agent holding the conversation gives it back to the bot; the customer is told.
    A session the bot already holds is left as it is; 409 when someone else holds it.

    Staff only: serve it behind staff authentication (the edge does not check it yet)."""
    name = body.agent_name
    session = await get_session(b, tenant, session_id)
    if session.status in (memory_pb2.SESSION_STATUS_BOT, memory_pb2.SESSION_STATUS_UNSPECIFIED):
        return HandoffOut(session=session_out(session), changed=False, message=None)
    if session.status != memory_pb2.SESSION_STATUS_HUMAN or session.handler != name:
        raise holder_problem(session, name, "hand it back")
    # The read above may be stale: the compare-and-set also names the holder it expects.
    reply = await _set_status(
        b, tenant, session_id, memory_pb2.SESSION_STATUS_BOT, "", [memory_pb2.SESSION_STATUS_HUMAN], name
    )
    if reply is None or not reply.changed:
        current = reply.session if reply is not None else await get_session(b, tenant, session_id)
        if current.status == memory_pb2.SESSION_STATUS_BOT:
            return HandoffOut(session=session_out(current), changed=False, message=None)
        raise holder_problem(current, name, "hand it back")
    session = reply.session
    note = await _note(b, tenant, session_id, left_text(name), f"handback:{session.updated_at}")
    b.hub.publish(session_id, human_frame("human_left", name, note))
    log.info("human handed back tenant=%s session=%s", tenant, session_id)
    return HandoffOut(session=session_out(session), changed=True, message=message_out(note))
