"""The FastAPI application: sessions, messages, the answer stream, health, docs and the UI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from concierge.api.loader import describe_errors
from concierge.edge import problems
from concierge.edge.hub import Frame, SessionHub
from concierge.edge.problems import Problem, grpc_problem
from concierge.edge.routes import Channels, Routes
from concierge.edge.schemas import (
    AgentList,
    AgentOut,
    MessageAccepted,
    MessageCreate,
    MessageOut,
    MessagePage,
    SessionCreate,
    SessionOut,
    message_out,
    session_out,
)
from concierge.edge.settings import EdgeSettings
from concierge.edge.turns import TurnRunner
from concierge.v1 import agent_pb2_grpc, memory_pb2, memory_pb2_grpc

log = logging.getLogger(__name__)
TENANT_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Close codes: 4404 the session does not exist for this tenant, 4400 a bad request, 1013 try later.
WS_CLOSE_CODES = {"not_found": 4404, "bad_request": 4400, "unavailable": 1013}


@dataclass
class Backend:
    """Long-lived clients and state shared by every request."""

    settings: EdgeSettings
    routes: Routes
    channels: Channels
    hub: SessionHub
    turns: TurnRunner = field(init=False)

    def __post_init__(self) -> None:
        self.turns = TurnRunner(self.agent, self.hub, self.settings.turn_timeout_seconds)

    def agents_of(self, tenant: str) -> list[AgentOut]:
        return [
            AgentOut(name=r.name, namespace=r.tenant, display_name=r.display_name, greeting=r.greeting)
            for r in self.routes.agents_of(tenant)
        ]

    def memory(self, tenant: str) -> memory_pb2_grpc.MemoryServiceAsyncStub:
        address = self.routes.memory_address(tenant)
        if address is None:
            raise Problem(404, "Tenant not found", f"tenant {tenant!r} has no support agents")
        return memory_pb2_grpc.MemoryServiceStub(self.channels.get(address))

    def agent(self, tenant: str, name: str) -> agent_pb2_grpc.AgentServiceAsyncStub | None:
        route = self.routes.agent(tenant, name)
        return agent_pb2_grpc.AgentServiceStub(self.channels.get(route.agent_address)) if route else None


def routes_of(settings: EdgeSettings) -> Routes:
    if settings.routes_file is not None:
        return Routes.from_file(settings.routes_file)
    return Routes.from_resources(*settings.laptop())


def resolve_tenant(explicit: str | None, default: str | None) -> str:
    tenant = explicit or default
    if not tenant:
        raise Problem(
            400,
            "Tenant required",
            "Name the tenant (the namespace of your agents) in the X-Concierge-Tenant header "
            "or the `tenant` query parameter.",
        )
    if not TENANT_RE.match(tenant) or len(tenant) > 63:
        raise Problem(400, "Invalid tenant", f"tenant {tenant!r} is not a namespace name (a DNS-1123 label)")
    return tenant


def backend(request: Request) -> Backend:
    b: Backend = request.app.state.backend
    return b


def tenant_dep(
    request: Request,
    x_concierge_tenant: Annotated[str | None, Header(description="Tenant (namespace).")] = None,
    tenant: Annotated[str | None, Query(description="Tenant, when a header cannot be set.")] = None,
) -> str:
    return resolve_tenant(x_concierge_tenant or tenant, backend(request).settings.default_tenant)


BackendDep = Annotated[Backend, Depends(backend)]
TenantDep = Annotated[str, Depends(tenant_dep)]


async def _call(what: str, coro: Any) -> Any:
    try:
        return await coro
    except grpc.aio.AioRpcError as err:
        raise grpc_problem(err, what) from err


async def accept_message(b: Backend, tenant: str, session: memory_pb2.Session, body: MessageCreate) -> MessageAccepted:
    """Store the customer's message (acknowledged only once stored) and start the answer if new."""
    reply = await _call(
        "memory service",
        b.memory(tenant).AppendMessage(
            memory_pb2.AppendMessageRequest(
                tenant=tenant,
                session_id=session.id,
                role=memory_pb2.ROLE_USER,
                text=body.text,
                client_message_id=str(body.client_message_id),
            ),
            timeout=b.settings.rpc_timeout_seconds,
        ),
    )
    # A resend (created=false) may follow an ack that never arrived: answer it unless an answer is
    # already on its way; the agent replays a stored answer instead of writing a second one.
    b.turns.start(tenant, session.agent, reply.message)
    return MessageAccepted(message=message_out(reply.message), created=reply.created)


async def get_session(b: Backend, tenant: str, session_id: str) -> memory_pb2.Session:
    reply = await _call(
        "memory service",
        b.memory(tenant).GetSession(
            memory_pb2.GetSessionRequest(tenant=tenant, session_id=session_id), timeout=b.settings.rpc_timeout_seconds
        ),
    )
    session: memory_pb2.Session = reply.session
    return session


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
    reply = await _call(
        "memory service",
        b.memory(tenant).CreateSession(
            memory_pb2.CreateSessionRequest(tenant=tenant, agent=body.agent), timeout=b.settings.rpc_timeout_seconds
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
    """Store a customer message; the answer streams on the session's WebSocket."""
    session = await get_session(b, tenant, session_id)
    return await accept_message(b, tenant, session, body)


@router.get("/sessions/{session_id}/messages", response_model=MessagePage, response_model_by_alias=True)
async def list_messages(
    session_id: str,
    b: BackendDep,
    tenant: TenantDep,
    after: Annotated[int, Query(ge=0, description="Return messages with seq greater than this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
) -> MessagePage:
    """The conversation, oldest first, paged by sequence number."""
    reply = await _call(
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
    """Answer events of the session; the client may also send `user_message` frames here."""
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
            await _read_frames(websocket, b, tenant_name, session, send)
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
            accepted = await accept_message(b, tenant, session, body)
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
