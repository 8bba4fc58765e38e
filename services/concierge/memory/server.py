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
from concierge.memory import attachments, facts, handoffs, privacy, store, validation
from concierge.memory.config import Settings, load_settings
from concierge.memory.errors import NotFound, StatusConflict
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
    except NotFound as err:
        await context.abort(grpc.StatusCode.NOT_FOUND, str(err))
    except StatusConflict as err:
        log.info("request rejected rpc=%s tenant=%s reason=status_conflict current=%s", rpc, tenant, err.current)
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(err))
    except (psycopg.OperationalError, PoolTimeout) as err:
        log.warning("database unavailable rpc=%s tenant=%s error=%s", rpc, tenant, type(err).__name__)
        await context.abort(
            grpc.StatusCode.UNAVAILABLE, f"memory database unavailable ({type(err).__name__}); retry shortly"
        )


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    # Sessions and messages -------------------------------------------------------------------------

    async def CreateSession(
        self, request: memory_pb2.CreateSessionRequest, context: Context
    ) -> memory_pb2.CreateSessionResponse:
        async def body() -> memory_pb2.CreateSessionResponse:
            session = await store.create_session(self._pool, validation.create_session(request))
            log.info("session created tenant=%s session=%s agent=%s", session.tenant, session.id, session.agent)
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

    async def UpdateSummary(
        self, request: memory_pb2.UpdateSummaryRequest, context: Context
    ) -> memory_pb2.UpdateSummaryResponse:
        async def body() -> memory_pb2.UpdateSummaryResponse:
            update = validation.update_summary(request)
            session, applied = await store.update_summary(self._pool, update)
            log.info(
                "summary %s tenant=%s session=%s through_seq=%d stored_through_seq=%d",
                "stored" if applied else "ignored (older)",
                update.tenant,
                session.id,
                update.through_seq,
                session.summary_through_seq,
            )
            return memory_pb2.UpdateSummaryResponse(session=session)

        return await _guard(context, "UpdateSummary", request.tenant, body)

    async def SetSessionStatus(
        self, request: memory_pb2.SetSessionStatusRequest, context: Context
    ) -> memory_pb2.SetSessionStatusResponse:
        async def body() -> memory_pb2.SetSessionStatusResponse:
            change = validation.set_session_status(request)
            session, changed = await store.set_session_status(self._pool, change)
            log.info(
                "session status %s tenant=%s session=%s status=%s",
                "changed" if changed else "unchanged",
                change.tenant,
                session.id,
                change.status,
            )
            return memory_pb2.SetSessionStatusResponse(session=session, changed=changed)

        return await _guard(context, "SetSessionStatus", request.tenant, body)

    async def ListSessions(
        self, request: memory_pb2.ListSessionsRequest, context: Context
    ) -> memory_pb2.ListSessionsResponse:
        async def body() -> memory_pb2.ListSessionsResponse:
            sessions = await store.list_sessions(self._pool, validation.list_sessions(request))
            return memory_pb2.ListSessionsResponse(sessions=sessions)

        return await _guard(context, "ListSessions", request.tenant, body)

    # Facts and attachments ---------------------------------------------------------------------------

    async def RememberFact(
        self, request: memory_pb2.RememberFactRequest, context: Context
    ) -> memory_pb2.RememberFactResponse:
        async def body() -> memory_pb2.RememberFactResponse:
            new = validation.remember_fact(request)
            fact, created = await facts.remember(self._pool, new)
            log.info("fact %s tenant=%s fact=%s", "stored" if created else "restated", new.tenant, fact.id)
            return memory_pb2.RememberFactResponse(fact=fact, created=created)

        return await _guard(context, "RememberFact", request.tenant, body)

    async def RecallFacts(
        self, request: memory_pb2.RecallFactsRequest, context: Context
    ) -> memory_pb2.RecallFactsResponse:
        async def body() -> memory_pb2.RecallFactsResponse:
            return memory_pb2.RecallFactsResponse(
                facts=await facts.recall(self._pool, validation.recall_facts(request))
            )

        return await _guard(context, "RecallFacts", request.tenant, body)

    async def AddAttachment(
        self, request: memory_pb2.AddAttachmentRequest, context: Context
    ) -> memory_pb2.AddAttachmentResponse:
        async def body() -> memory_pb2.AddAttachmentResponse:
            new = validation.add_attachment(request)
            attachment = await attachments.add(self._pool, new)
            log.info(
                "attachment stored tenant=%s session=%s attachment=%s chars=%d truncated=%s",
                new.tenant,
                new.session_id,
                attachment.id,
                len(new.text),
                new.truncated,
            )
            return memory_pb2.AddAttachmentResponse(attachment=attachment)

        return await _guard(context, "AddAttachment", request.tenant, body)

    async def GetAttachment(
        self, request: memory_pb2.GetAttachmentRequest, context: Context
    ) -> memory_pb2.GetAttachmentResponse:
        async def body() -> memory_pb2.GetAttachmentResponse:
            attachment = await attachments.get(self._pool, validation.get_attachment(request))
            return memory_pb2.GetAttachmentResponse(attachment=attachment)

        return await _guard(context, "GetAttachment", request.tenant, body)

    # Hand-off outbox ---------------------------------------------------------------------------------

    async def EnqueueHandoff(
        self, request: memory_pb2.EnqueueHandoffRequest, context: Context
    ) -> memory_pb2.EnqueueHandoffResponse:
        async def body() -> memory_pb2.EnqueueHandoffResponse:
            new = validation.enqueue_handoff(request)
            handoff, created = await handoffs.enqueue(self._pool, new)
            log.info(
                "hand-off %s tenant=%s session=%s handoff=%s",
                "enqueued" if created else "already enqueued",
                new.tenant,
                handoff.session_id,
                handoff.id,
            )
            return memory_pb2.EnqueueHandoffResponse(handoff=handoff, created=created)

        return await _guard(context, "EnqueueHandoff", request.tenant, body)

    async def ClaimHandoffs(
        self, request: memory_pb2.ClaimHandoffsRequest, context: Context
    ) -> memory_pb2.ClaimHandoffsResponse:
        async def body() -> memory_pb2.ClaimHandoffsResponse:
            claimed = await handoffs.claim(self._pool, validation.claim_handoffs(request))
            return memory_pb2.ClaimHandoffsResponse(handoffs=claimed)

        return await _guard(context, "ClaimHandoffs", request.tenant, body)

    async def FinishHandoff(
        self, request: memory_pb2.FinishHandoffRequest, context: Context
    ) -> memory_pb2.FinishHandoffResponse:
        async def body() -> memory_pb2.FinishHandoffResponse:
            outcome = validation.finish_handoff(request)
            handoff = await handoffs.finish(self._pool, outcome)
            log.info(
                "hand-off finished tenant=%s handoff=%s state=%s attempts=%d",
                outcome.tenant,
                handoff.id,
                memory_pb2.HandoffState.Name(handoff.state),
                handoff.attempts,
            )
            return memory_pb2.FinishHandoffResponse(handoff=handoff)

        return await _guard(context, "FinishHandoff", request.tenant, body)

    async def ListHandoffs(
        self, request: memory_pb2.ListHandoffsRequest, context: Context
    ) -> memory_pb2.ListHandoffsResponse:
        async def body() -> memory_pb2.ListHandoffsResponse:
            found = await handoffs.list_handoffs(self._pool, validation.list_handoffs(request))
            return memory_pb2.ListHandoffsResponse(handoffs=found)

        return await _guard(context, "ListHandoffs", request.tenant, body)

    # Privacy and retention ---------------------------------------------------------------------------

    async def ExportCustomer(
        self, request: memory_pb2.ExportCustomerRequest, context: Context
    ) -> memory_pb2.ExportCustomerResponse:
        async def body() -> memory_pb2.ExportCustomerResponse:
            customer = validation.customer(request)
            export = await privacy.export_customer(self._pool, customer)
            # The customer id may itself be personal data: the log says only that an export happened.
            log.info("customer exported tenant=%s sessions=%d facts=%d", customer.tenant, export.sessions, export.facts)
            return memory_pb2.ExportCustomerResponse(
                export_json=export.json, sessions=export.sessions, messages=export.messages, facts=export.facts
            )

        return await _guard(context, "ExportCustomer", request.tenant, body)

    async def EraseCustomer(
        self, request: memory_pb2.EraseCustomerRequest, context: Context
    ) -> memory_pb2.EraseCustomerResponse:
        async def body() -> memory_pb2.EraseCustomerResponse:
            customer = validation.customer(request)
            erased = await privacy.erase_customer(self._pool, customer)
            log.info(
                "customer erased tenant=%s sessions=%d messages=%d facts=%d attachments=%d handoffs=%d",
                customer.tenant,
                erased.sessions,
                erased.messages,
                erased.facts,
                erased.attachments,
                erased.handoffs,
            )
            return memory_pb2.EraseCustomerResponse(
                sessions=erased.sessions,
                messages=erased.messages,
                facts=erased.facts,
                attachments=erased.attachments,
                handoffs=erased.handoffs,
            )

        return await _guard(context, "EraseCustomer", request.tenant, body)

    async def PurgeExpired(
        self, request: memory_pb2.PurgeExpiredRequest, context: Context
    ) -> memory_pb2.PurgeExpiredResponse:
        async def body() -> memory_pb2.PurgeExpiredResponse:
            retention = validation.purge_expired(request)
            purged = await privacy.purge_expired(self._pool, retention)
            log.info(
                "retention applied tenant=%s agent=%s days=%d sessions=%d facts=%d",
                retention.tenant,
                retention.agent,
                retention.days,
                purged.sessions,
                purged.facts,
            )
            return memory_pb2.PurgeExpiredResponse(sessions=purged.sessions)

        return await _guard(context, "PurgeExpired", request.tenant, body)


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
        applied = migrate(settings.database_url) if settings.database_migrate else []
    except psycopg.OperationalError as err:
        raise SystemExit(f"memory: cannot reach the database at CONCIERGE_DATABASE_URL to migrate it: {err}") from None
    log.info("database ready migrations_applied=%d", len(applied))
    asyncio.run(main(host, port, settings))
