"""The servers' connection options: an aged connection must not cut a long stream (a KB sync)."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from concierge.common.grpcio import SERVER_OPTIONS, create_channel


async def test_a_stream_outlives_the_servers_max_connection_age() -> None:
    """With the servers' options, but connections aged out after 0.3 s, a stream that runs 2.5 s
    still delivers every message: a grace limit would have closed it with UNAVAILABLE."""
    options = [(k, 300 if k == "grpc.max_connection_age_ms" else v) for k, v in SERVER_OPTIONS]
    server = grpc.aio.server(options=options)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = create_channel(f"127.0.0.1:{port}")
    try:
        await servicer.set("sync", health_pb2.HealthCheckResponse.SERVING)
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service="sync"))
        statuses = []
        async for response in stream:
            statuses.append(response.status)
            if len(statuses) == 3:
                break
            await asyncio.sleep(1.25)  # well past the connection's age
            await servicer.set(
                "sync",
                health_pb2.HealthCheckResponse.NOT_SERVING
                if response.status == health_pb2.HealthCheckResponse.SERVING
                else health_pb2.HealthCheckResponse.SERVING,
            )
        assert statuses == [
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
            health_pb2.HealthCheckResponse.SERVING,
        ]
        # New calls still work: they go over a fresh connection.
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="sync"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()
        await server.stop(grace=None)
