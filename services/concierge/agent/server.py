"""gRPC wiring of the agent service: streams a chat turn's events and maps failures to statuses.

`run()` is what `concierge serve agent` calls: load the resource folder, build clients, serve.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from concierge.agent import handoff
from concierge.agent.chat import AgentRuntime, ChatError, ChatService, build_runtimes
from concierge.agent.config import Settings, load_settings
from concierge.agent.extractive_client import SentenceEmbedder
from concierge.api.loader import ResourceError, load_paths
from concierge.common import logs
from concierge.common.grpcio import create_channel, serve
from concierge.common.metrics import AgentMetrics, serve_metrics
from concierge.v1 import agent_pb2, agent_pb2_grpc, embedding_pb2_grpc, memory_pb2, memory_pb2_grpc, retrieval_pb2_grpc

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, chat: ChatService, metrics: AgentMetrics) -> None:
        self._chat = chat
        self._metrics = metrics

    async def Chat(self, request: agent_pb2.ChatRequest, context: Context) -> AsyncIterator[agent_pb2.ChatResponse]:
        sent = first_text = False
        started = time.monotonic()
        outcome = "error"
        self._metrics.active_sessions.touch(request.session_id)
        try:
            async for event in self._chat.chat(request):
                if not first_text and event.HasField("text_delta"):
                    first_text = True
                    self._metrics.first_token.observe(time.monotonic() - started)
                sent = True
                yield event
            outcome = "answered"
        except ChatError as err:
            log.info(
                "chat failed tenant=%s agent=%s session=%s code=%s after_events=%s",
                request.tenant,
                request.agent,
                request.session_id,
                err.code.name,
                sent,
            )
            if not sent:
                await context.abort(err.code, err.message)
            # The stream is open: the client is reading events, so the failure becomes one.
            yield agent_pb2.ChatResponse(error=agent_pb2.Error(code=err.code.name, message=err.message))
        finally:
            self._metrics.turns.labels(request.tenant, request.agent, outcome).inc()


async def purge_expired(
    memory: memory_pb2_grpc.MemoryServiceAsyncStub, runtimes: list[AgentRuntime], interval: float
) -> None:
    """Apply each agent's spec.memory.retentionDays now and then (the memory service deletes)."""
    while True:
        for runtime in runtimes:
            agent = runtime.resource
            try:
                reply = await memory.PurgeExpired(
                    memory_pb2.PurgeExpiredRequest(
                        tenant=agent.namespace, agent=agent.name, retention_days=agent.spec.memory.retention_days
                    ),
                    timeout=60,
                )
                if reply.sessions:
                    log.info(
                        "retention purged tenant=%s agent=%s sessions=%d", agent.namespace, agent.name, reply.sessions
                    )
            except grpc.aio.AioRpcError as err:
                log.warning(
                    "retention purge failed tenant=%s agent=%s code=%s", agent.namespace, agent.name, err.code().name
                )
        await asyncio.sleep(interval)


async def main(host: str, port: int, settings: Settings) -> None:
    try:
        resources = load_paths([settings.resources_dir])
    except ResourceError as err:
        raise SystemExit(f"agent: the resources in {settings.resources_dir} are invalid:\n{err}") from None
    if not resources.agents:
        raise SystemExit(f"agent: no SupportAgent in {settings.resources_dir}; nothing to serve")
    memory_channel = create_channel(settings.memory_address)
    retrieval_channel = create_channel(settings.retrieval_address)
    channels = [memory_channel, retrieval_channel]
    embedder = None
    if settings.embedding_address:
        embedding_channel = create_channel(settings.embedding_address)
        channels.append(embedding_channel)
        embedder = SentenceEmbedder(
            embedding_pb2_grpc.EmbeddingServiceStub(embedding_channel),
            address=settings.embedding_address,
            timeout_s=settings.embedding_timeout_seconds,
        )
    log.info("extractive sentence scoring embedding_address=%s", settings.embedding_address or "none")
    metrics = AgentMetrics()
    if settings.metrics_port is not None:
        serve_metrics(settings.metrics_port)
        log.info("metrics at http://0.0.0.0:%d/metrics", settings.metrics_port)
    memory = memory_pb2_grpc.MemoryServiceStub(memory_channel)
    runtimes = build_runtimes(resources, settings, embedder)
    dispatcher = handoff.Dispatcher(
        memory,
        secrets={f"{t}/{a}": handoff.signing_secret(r.policy) for (t, a), r in runtimes.items()},
        policy=handoff.DeliveryPolicy(
            max_attempts=settings.handoff_max_attempts, base_delay_seconds=settings.handoff_base_delay_seconds
        ),
        rpc_timeout=settings.rpc_timeout_seconds,
    )
    chat = ChatService(
        runtimes=runtimes,
        memory=memory,
        retrieval=retrieval_pb2_grpc.RetrievalServiceStub(retrieval_channel),
        settings=settings,
        dispatcher=dispatcher,
    )
    background = [
        asyncio.create_task(dispatcher.run(), name="handoff-dispatcher"),
        asyncio.create_task(
            purge_expired(memory, list(runtimes.values()), settings.retention_interval_seconds), name="retention"
        ),
    ]

    def register(server: grpc.aio.Server) -> list[str]:
        agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(chat, metrics), server)
        return [agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name]

    async def close() -> None:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await dispatcher.close()
        for channel in channels:
            await channel.close()

    await serve(name="agent", host=host, port=port, register=register, on_stop=close)


def run(*, host: str, port: int) -> None:
    logs.configure("agent")
    settings = load_settings()
    asyncio.run(main(host, port, settings))
