"""Fans a session's frames out to its WebSockets (customer and human agent) and replays a turn in progress.

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

    def publish(self, session_id: str, frame: Frame, skip: asyncio.Queue[Frame] | None = None) -> None:
        """Deliver to every subscriber but `skip`; remember an answer's frames until it is done.

        Frames of no answer (a stored message, a human joining) are not replayed: a client that
        joins later reads them from the stored messages.
        """
        reply_to = frame.get("replyTo")
        if reply_to:
            turns = self._in_flight.setdefault(session_id, {})
            if frame["type"] in _TERMINAL:
                turns.pop(str(reply_to), None)
                if not turns:
                    self._in_flight.pop(session_id, None)
            else:
                turns.setdefault(str(reply_to), []).append(frame)
        for queue in list(self._subscribers.get(session_id, ())):
            if queue is skip:
                continue
            if queue.full():
                # A subscriber that stopped reading loses its oldest frames, never blocks others;
                # it recovers the final answer from the stored messages.
                queue.get_nowait()
            queue.put_nowait(frame)

    def in_flight(self, session_id: str) -> bool:
        return bool(self._in_flight.get(session_id))
