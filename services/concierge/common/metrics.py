"""Prometheus metrics of a service, served on their own port (scraped in a cluster).

`concierge_active_sessions` is what a SupportAgent's HorizontalPodAutoscaler scales on (a Pods
metric through a custom-metrics adapter): the sessions this pod answered recently.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ACTIVE_WINDOW_SECONDS = 300.0


class ActiveSessions(Collector):
    """Sessions with a turn in the last `window` seconds, counted when scraped."""

    def __init__(self, window: float = ACTIVE_WINDOW_SECONDS) -> None:
        self.window = window
        self._last_seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self, session_id: str) -> None:
        with self._lock:
            self._last_seen[session_id] = time.monotonic()

    def count(self) -> int:
        cutoff = time.monotonic() - self.window
        with self._lock:
            for session in [s for s, seen in self._last_seen.items() if seen < cutoff]:
                del self._last_seen[session]
            return len(self._last_seen)

    def collect(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "concierge_active_sessions",
                f"Sessions this pod answered in the last {self.window:.0f} seconds.",
                value=self.count(),
            )
        ]


class AgentMetrics:
    """What the agent service exports: active sessions, turns by outcome, answer latencies."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.active_sessions = ActiveSessions()
        registry.register(self.active_sessions)
        self.turns = Counter(
            "concierge_turns", "Chat turns by agent and outcome.", ["tenant", "agent", "outcome"], registry=registry
        )
        self.first_token = Histogram(
            "concierge_first_token_seconds",
            "Time from the request to the first streamed answer text.",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        )


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Serve /metrics in a background thread."""
    start_http_server(port, addr=host)
