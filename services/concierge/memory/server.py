"""gRPC wiring of the memory service: validate, call the store, map failures to status codes.

`run()` is what `concierge serve memory` calls: migrate, open the pool, serve until SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from concierge.common import logs
from concierge.common.grpcio import serve
from concierge.db import migrate, open_pool
from concierge.memory import store, validation
from concierge.memory.config import Settings, load_settings
from concierge.memory.validation import InvalidArgument
from concierge.v1 import memory_pb2, memory_pb2_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]


async def _guard(context: Context, rpc: str, tenant: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run one RPC body, turning our exceptions into precise gRPC statuses."""
    try:
        return await call()
    except InvalidArgument as err:
        log.info("request rejected rpc=%s tenant=%s reason=invalid_argument", rpc, tenant)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
    except store.SessionNotFound as err:
        await context.abort(grpc.StatusCode.NOT_FOUND, str(err))
    except (psycopg.OperationalError, PoolTimeout) as err:
        log.warning("database unavailable rpc=%s tenant=%s error=%s", rpc, tenant, type(err).__name__)
        await context.abort(
            grpc.StatusCode.UNAVAILABLE, f"memory database unavailable ({type(err).__name__}); retry shortly"
        )


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    async def CreateSession(
        self, request: memory_pb2.CreateSessionRequest, context: Context
    ) -> memory_pb2.CreateSessionResponse:
        async def body() -> memory_pb2.CreateSessionResponse:
            tenant = validation.tenant(request.tenant)
            session = await store.create_session(self._pool, tenant, validation.agent(request.agent))
            log.info("session created tenant=%s session=%s agent=%s", tenant, session.id, session.agent)
            return memory_pb2.CreateSessionResponse(session=session)

        return await _guard(context, "CreateSession", request.tenant, body)

    async def GetSession(
        self, request: memory_pb2.GetSessionRequest, context: Context
    ) -> memory_pb2.GetSessionResponse:
        async def body() -> memory_pb2.GetSessionResponse:
            tenant = validation.tenant(request.tenant)
            session = await store.get_session(self._pool, tenant, validation.session_id(request.session_id))
            return memory_pb2.GetSessionResponse(session=session)

        return await _guard(context, "GetSession", request.tenant, body)

    async def AppendMessage(
        self, request: memory_pb2.AppendMessageRequest, context: Context
    ) -> memory_pb2.AppendMessageResponse:
        async def body() -> memory_pb2.AppendMessageResponse:
            new = validation.append_message(request, max_chars=self._settings.max_message_chars)
            message, created = await store.append_message(self._pool, new)
            log.info(
                "message %s tenant=%s session=%s message=%s seq=%d role=%s",
                "stored" if created else "resend",
                new.tenant,
                message.session_id,
                message.id,
                message.seq,
                new.role,
            )
            return memory_pb2.AppendMessageResponse(message=message, created=created)

        return await _guard(context, "AppendMessage", request.tenant, body)

    async def ListMessages(
        self, request: memory_pb2.ListMessagesRequest, context: Context
    ) -> memory_pb2.ListMessagesResponse:
        async def body() -> memory_pb2.ListMessagesResponse:
            messages, next_after_seq = await store.list_messages(self._pool, validation.list_messages(request))
            return memory_pb2.ListMessagesResponse(messages=messages, next_after_seq=next_after_seq)

        return await _guard(context, "ListMessages", request.tenant, body)


async def main(host: str, port: int, settings: Settings) -> None:
    pool = await open_pool(
        settings.database_url, role=settings.database_role or None, max_size=settings.database_pool_size
    )
    servicer = MemoryServicer(pool, settings)

    def register(server: grpc.aio.Server) -> list[str]:
        memory_pb2_grpc.add_MemoryServiceServicer_to_server(servicer, server)
        return [memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name]

    await serve(name="memory", host=host, port=port, register=register, on_stop=pool.close)


def run(*, host: str, port: int) -> None:
    logs.configure("memory")
    settings = load_settings()
    if not settings.database_role:
        log.warning("CONCIERGE_DATABASE_ROLE is empty: connections keep the login role, which may bypass RLS")
    try:
        applied = migrate(settings.database_url)
    except psycopg.OperationalError as err:
        raise SystemExit(f"memory: cannot reach the database at CONCIERGE_DATABASE_URL to migrate it: {err}") from None
    log.info("database ready migrations_applied=%d", len(applied))
    asyncio.run(main(host, port, settings))
