"""What every edge request shares: the backend clients, the tenant of the request, and memory calls.

The routers (app.py for customers, handoff.py for human agents, attachments.py for uploads) use it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import grpc
from fastapi import Depends, Header, Query, Request

from concierge.api.routes import Route
from concierge.edge.hub import SessionHub
from concierge.edge.problems import Problem, grpc_problem
from concierge.edge.routes import Channels, Routes
from concierge.edge.schemas import AgentOut
from concierge.edge.settings import EdgeSettings
from concierge.edge.turns import TurnRunner
from concierge.v1 import agent_pb2_grpc, memory_pb2, memory_pb2_grpc

TENANT_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
T = TypeVar("T")


@dataclass
class Backend:
    """Long-lived clients and state shared by every request."""

    settings: EdgeSettings
    routes: Routes
    channels: Channels
    hub: SessionHub
    turns: TurnRunner = field(init=False)
    # MarkItDown is CPU-bound: a few uploads convert at once, the rest wait their turn.
    conversions: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.turns = TurnRunner(self.agent, self.hub, self.settings.turn_timeout_seconds)
        self.conversions = asyncio.Semaphore(self.settings.attachment_conversions)

    def agents_of(self, tenant: str) -> list[AgentOut]:
        return [
            AgentOut(
                name=r.name,
                namespace=r.tenant,
                display_name=r.display_name,
                greeting=r.greeting,
                attachments_enabled=r.attachments_enabled,
                attachments_max_bytes=r.attachments_max_bytes,
            )
            for r in self.routes.agents_of(tenant)
        ]

    def route(self, tenant: str, name: str) -> Route:
        route = self.routes.agent(tenant, name)
        if route is None:
            raise Problem(
                404,
                "Agent not found",
                f"no SupportAgent {name!r} in tenant {tenant!r} any more; start a chat with another agent",
            )
        return route

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


async def call(what: str, coro: Awaitable[T]) -> T:
    """Await a backend call; its gRPC error becomes the matching problem."""
    try:
        return await coro
    except grpc.aio.AioRpcError as err:
        raise grpc_problem(err, what) from err


async def get_session(b: Backend, tenant: str, session_id: str) -> memory_pb2.Session:
    reply = await call(
        "memory service",
        b.memory(tenant).GetSession(
            memory_pb2.GetSessionRequest(tenant=tenant, session_id=session_id), timeout=b.settings.rpc_timeout_seconds
        ),
    )
    session: memory_pb2.Session = reply.session
    return session


async def append_message(
    b: Backend, tenant: str, request: memory_pb2.AppendMessageRequest
) -> tuple[memory_pb2.Message, bool]:
    """Store a message (idempotent on its client_message_id); the stored message and whether it is new."""
    reply = await call(
        "memory service", b.memory(tenant).AppendMessage(request, timeout=b.settings.rpc_timeout_seconds)
    )
    return reply.message, reply.created


def bot_answers(session: memory_pb2.Session) -> bool:
    """While a session is escalated or held by a human, the bot stays silent."""
    return session.status in (memory_pb2.SESSION_STATUS_UNSPECIFIED, memory_pb2.SESSION_STATUS_BOT)
