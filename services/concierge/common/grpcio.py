"""gRPC server and channel setup shared by the services.

Every server exposes the standard health service and reflection; every channel and server
sets keepalive so idle connections through proxies stay usable.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)

KEEPALIVE_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
# Clients spread calls over every address a (headless) Service name resolves to ...
CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    *KEEPALIVE_OPTIONS,
    ("grpc.lb_policy_name", "round_robin"),
    # A restarted service is reached again within a few seconds (gRPC's default waits up to 2 min).
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 3_000),
]
SERVER_OPTIONS: list[tuple[str, int | str]] = [
    *KEEPALIVE_OPTIONS,
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    # ... and reconnect now and then, re-resolving it, so pods an autoscaler adds get traffic too.
    # No grace limit (gRPC's default is none): calls already running on an aged connection finish
    # there, only new ones move. A one-minute grace cut every knowledge-base sync stream longer
    # than six minutes (a first sync of a large corpus takes half an hour).
    ("grpc.max_connection_age_ms", 5 * 60_000),
]


def create_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel with keepalive (loopback and in-cluster traffic)."""
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)


async def serve(
    *,
    name: str,
    host: str,
    port: int,
    register: Callable[[grpc.aio.Server], Iterable[str]],
    on_stop: Callable[[], object] | None = None,
) -> None:
    """Run a grpc.aio server until SIGTERM/SIGINT, then drain in-flight calls.

    `register` adds the servicers and returns their full service names, which are
    announced through health checking and reflection.
    """
    server = grpc.aio.server(options=SERVER_OPTIONS)
    service_names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise SystemExit(f"{name}: cannot listen on {host}:{port}; choose a free port with --port")
    await server.start()
    for service in ["", *service_names]:
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("service started service=%s address=%s:%d", name, host, bound)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("service stopping service=%s", name)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace=5)
    if on_stop is not None:
        result = on_stop()
        if asyncio.iscoroutine(result):
            await result
