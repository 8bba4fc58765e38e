"""Fans a session's answer events out to its WebSockets and replays a turn in progress.

In one edge process this is all in memory; with several edge replicas a Redis channel
carries the same frames (a later issue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Frame = dict[str, Any]
_TERMINAL = ("done", "error")


@dataclass
class Subscription:
    queue: asyncio.Queue[Frame]
    # Frames of answers still streaming when the subscriber joined, oldest first.
    replay: list[Frame] = field(default_factory=list)


class SessionHub:
    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Frame]]] = {}
        self._in_flight: dict[str, dict[str, list[Frame]]] = {}
        self._queue_size = queue_size

    @contextmanager
    def subscribe(self, session_id: str) -> Iterator[Subscription]:
        queue: asyncio.Queue[Frame] = asyncio.Queue(self._queue_size)
        replay = [f for frames in self._in_flight.get(session_id, {}).values() for f in frames]
        self._subscribers.setdefault(session_id, set()).add(queue)
        try:
            yield Subscription(queue, replay)
        finally:
            subs = self._subscribers.get(session_id, set())
            subs.discard(queue)
            if not subs:
                self._subscribers.pop(session_id, None)

    def publish(self, session_id: str, frame: Frame) -> None:
        """Deliver to every subscriber; remember the frame until its answer is done."""
        reply_to = str(frame.get("replyTo", ""))
        turns = self._in_flight.setdefault(session_id, {})
        if frame["type"] in _TERMINAL:
            turns.pop(reply_to, None)
            if not turns:
                self._in_flight.pop(session_id, None)
        else:
            turns.setdefault(reply_to, []).append(frame)
        for queue in list(self._subscribers.get(session_id, ())):
            if queue.full():
                # A subscriber that stopped reading loses its oldest frames, never blocks others;
                # it recovers the final answer from the stored messages.
                queue.get_nowait()
            queue.put_nowait(frame)

    def in_flight(self, session_id: str) -> bool:
        return bool(self._in_flight.get(session_id))
