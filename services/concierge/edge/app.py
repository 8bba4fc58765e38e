"""The FastAPI application: sessions, messages, the answer stream, health, docs and the UI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, FastAPI, Query, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from concierge.api.loader import describe_errors
from concierge.edge import attachments, handoff, problems
from concierge.edge.backend import (
    Backend,
    BackendDep,
    TenantDep,
    append_message,
    backend,
    bot_answers,
    call,
    get_session,
    resolve_tenant,
    routes_of,
)
from concierge.edge.hub import Frame, SessionHub
from concierge.edge.problems import Problem
from concierge.edge.routes import Channels
from concierge.edge.schemas import (
    AgentList,
    MessageAccepted,
    MessageCreate,
    MessageOut,
    MessagePage,
    SessionCreate,
    SessionOut,
    message_frame,
    message_out,
    session_out,
    status_name,
)
from concierge.edge.settings import EdgeSettings
from concierge.v1 import memory_pb2

__all__ = ["Backend", "accept_message", "create_app", "resolve_tenant"]

log = logging.getLogger(__name__)
# Close codes: 4404 the session does not exist for this tenant, 4400 a bad request, 1013 try later.
WS_CLOSE_CODES = {"not_found": 4404, "bad_request": 4400, "unavailable": 1013}


async def accept_message(
    b: Backend,
    tenant: str,
    session_id: str,
    body: MessageCreate,
    origin: asyncio.Queue[Frame] | None = None,
) -> MessageAccepted:
    """Store the customer's message (acknowledged only once stored) and, while the bot holds the
    session, start the answer. Everyone else on the session (a human agent) sees the message as a
    `message` frame; the socket it came from (`origin`) gets the ack instead."""
    stored, created = await append_message(
        b,
        tenant,
        memory_pb2.AppendMessageRequest(
            tenant=tenant,
            session_id=session_id,
            role=memory_pb2.ROLE_USER,
            text=body.text,
            client_message_id=str(body.client_message_id),
        ),
    )
    if created:
        b.hub.publish(session_id, message_frame(stored), skip=origin)
    # The status now, read after the message is stored: a WebSocket's session is as old as the socket,
    # and a take-over that lands before this read keeps the bot out of the message it raced with.
    current = await get_session(b, tenant, session_id)
    if bot_answers(current):
        # A resend (created=false) may follow an ack that never arrived: answer it unless an answer is
        # already on its way; the agent replays a stored answer instead of writing a second one.
        b.turns.start(tenant, current.agent, stored)
    return MessageAccepted(message=message_out(stored), created=created, session_status=status_name(current.status))


router = APIRouter(prefix="/api/v1")


@router.get("/agents", response_model=AgentList, response_model_by_alias=True)
async def list_agents(b: BackendDep, tenant: TenantDep) -> AgentList:
    """Support agents of the tenant that customers can chat with."""
    return AgentList(items=b.agents_of(tenant))


@router.post("/sessions", status_code=201, response_model=SessionOut, response_model_by_alias=True)
async def create_session(body: SessionCreate, b: BackendDep, tenant: TenantDep) -> SessionOut:
    """Start a conversation with one of the tenant's agents."""
    names = [a.name for a in b.agents_of(tenant)]
    if body.agent not in names:
        raise Problem(
            404,
            "Agent not found",
            f"no SupportAgent {body.agent!r} in tenant {tenant!r}; available: {', '.join(names) or 'none'}",
        )
    reply = await call(
        "memory service",
        b.memory(tenant).CreateSession(
            memory_pb2.CreateSessionRequest(tenant=tenant, agent=body.agent, customer_id=body.customer_id),
            timeout=b.settings.rpc_timeout_seconds,
        ),
    )
    return session_out(reply.session)


@router.get("/sessions/{session_id}", response_model=SessionOut, response_model_by_alias=True)
async def read_session(session_id: str, b: BackendDep, tenant: TenantDep) -> SessionOut:
    return session_out(await get_session(b, tenant, session_id))


@router.post(
    "/sessions/{session_id}/messages", status_code=202, response_model=MessageAccepted, response_model_by_alias=True
)
async def post_message(session_id: str, body: MessageCreate, b: BackendDep, tenant: TenantDep) -> MessageAccepted:
    """Store a customer message; the answer streams on the session's WebSocket.

    No session read first: storing the message finds an unknown session (404) by itself."""
    return await accept_message(b, tenant, session_id, body)


@router.get("/sessions/{session_id}/messages", response_model=MessagePage, response_model_by_alias=True)
async def list_messages(
    session_id: str,
    b: BackendDep,
    tenant: TenantDep,
    after: Annotated[int, Query(ge=0, description="Return messages with seq greater than this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
) -> MessagePage:
    """The conversation, oldest first, paged by sequence number."""
    reply = await call(
        "memory service",
        b.memory(tenant).ListMessages(
            memory_pb2.ListMessagesRequest(tenant=tenant, session_id=session_id, after_seq=after, limit=limit),
            timeout=b.settings.rpc_timeout_seconds,
        ),
    )
    items: list[MessageOut] = [message_out(m) for m in reply.messages]
    return MessagePage(items=items, next_after=reply.next_after_seq or None)


@router.websocket("/sessions/{session_id}/stream")
async def stream(websocket: WebSocket, session_id: str, tenant: str | None = None) -> None:
    """The session's live frames: answer events, stored messages (`message`), `human_joined`,
    `human_left`. The customer may send `user_message` frames here; a human agent watching the
    session replies through `POST /sessions/{id}/replies`."""
    b: Backend = websocket.app.state.backend
    await websocket.accept()
    try:
        tenant_name = resolve_tenant(websocket.headers.get("x-concierge-tenant") or tenant, b.settings.default_tenant)
        session = await get_session(b, tenant_name, session_id)
    except Problem as p:
        code = "not_found" if p.status == 404 else "unavailable" if p.status >= 500 else "bad_request"
        await websocket.send_json({"type": "error", "code": code, "message": p.detail})
        await websocket.close(WS_CLOSE_CODES[code])
        return
    send_lock = asyncio.Lock()

    async def send(frame: Frame) -> None:
        async with send_lock:
            await websocket.send_json(frame)

    with b.hub.subscribe(session_id) as sub:
        for frame in sub.replay:
            await send(frame)
        forwarder = asyncio.create_task(_forward(sub.queue, send))
        try:
            await _read_frames(websocket, b, tenant_name, session, send, sub.queue)
        finally:
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await forwarder


async def _forward(queue: asyncio.Queue[Frame], send: Callable[[Frame], Awaitable[None]]) -> None:
    while True:
        await send(await queue.get())


async def _read_frames(
    websocket: WebSocket,
    b: Backend,
    tenant: str,
    session: memory_pb2.Session,
    send: Callable[[Frame], Awaitable[None]],
    own_queue: asyncio.Queue[Frame],
) -> None:
    """Handle client frames until the socket closes."""
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        try:
            data = json.loads(message["text"]) if message.get("text") is not None else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("type") != "user_message":
            await send(
                {
                    "type": "error",
                    "code": "invalid_frame",
                    "retryable": False,
                    "message": 'expected a JSON text frame {"type": "user_message", "clientMessageId": "<uuid>", '
                    '"text": "..."}',
                }
            )
            continue
        client_id = data.get("clientMessageId")
        try:
            body = MessageCreate.model_validate({k: v for k, v in data.items() if k != "type"})
            accepted = await accept_message(b, tenant, session.id, body, origin=own_queue)
        except ValidationError as err:
            await send(_not_sent(client_id, "invalid_message", describe_errors(err), retryable=False))
            continue
        except Problem as p:
            await send(_not_sent(client_id, "not_stored", p.detail, retryable=p.status >= 500 or p.status == 429))
            continue
        await send({"type": "ack", **accepted.model_dump(by_alias=True, mode="json")})


def _not_sent(client_message_id: object, code: str, message: str, *, retryable: bool) -> Frame:
    return {
        "type": "error",
        "code": code,
        "clientMessageId": client_message_id if isinstance(client_message_id, str) else None,
        "retryable": retryable,
        "message": message,
    }


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: EdgeSettings = app.state.settings
    channels = Channels()
    backend = Backend(settings=settings, routes=routes_of(settings), channels=channels, hub=SessionHub())
    app.state.backend = backend
    yield
    await backend.turns.drain()
    await channels.close()


def create_app(settings: EdgeSettings) -> FastAPI:
    app = FastAPI(
        title="Concierge edge API",
        version="v1",
        description="Customer chat with Concierge support agents: sessions, messages and streamed answers.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    problems.install(app)
    app.include_router(router)
    app.include_router(attachments.router)
    app.include_router(handoff.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=None)
    async def readyz(request: Request) -> JSONResponse | dict[str, Any]:
        """Readiness: on a laptop the agent and memory services answer their health checks; in a
        cluster the route table is readable (one tenant's services being down must not take the
        edge out of every tenant's rotation)."""
        b = backend(request)
        checks: dict[str, str] = {}
        if b.settings.routes_file is not None:
            b.routes.agents_of("")
            checks["routes"] = b.routes.problem or "SERVING"
        else:
            _, agent_address, memory_address = b.settings.laptop()
            for name, address in (("memory", memory_address), ("agent", agent_address)):
                stub = health_pb2_grpc.HealthStub(b.channels.get(address))
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
                    checks[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                except grpc.aio.AioRpcError as err:
                    checks[name] = err.code().name
        ready = all(v == "SERVING" for v in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return body if ready else JSONResponse(body, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    if settings.ui_dir and (settings.ui_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=settings.ui_dir, html=True), name="ui")
    else:

        @app.get("/", include_in_schema=False)
        async def no_ui() -> HTMLResponse:
            return HTMLResponse(
                "<h1>Concierge</h1><p>The web UI is not built. Run <code>make ui</code> "
                "(or <code>make up</code>), or use the API: <a href='/docs'>/docs</a>.</p>"
            )

    return app
