"""The running summary of a long conversation: what left the prompt window, in a few lines.

Deterministic and offline (no model call): one line per message, the first sentence of each,
newest kept when the summary would grow past its budget. Every provider reads the same summary,
and a replayed turn rebuilds exactly the same text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from concierge.v1 import memory_pb2

MAX_SUMMARY_CHARS = 2000
MAX_LINE_CHARS = 180
OMITTED = "- (earlier turns omitted)"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_SPEAKERS = {memory_pb2.ROLE_USER: "Customer", memory_pb2.ROLE_ASSISTANT: "Assistant"}


def line(message: memory_pb2.Message) -> str | None:
    """`- Speaker: first sentence` for customer, assistant and human-agent messages; None for others."""
    if message.role == memory_pb2.ROLE_HUMAN:
        speaker = f"Support agent {message.author}".strip()
    elif message.role in _SPEAKERS:
        speaker = _SPEAKERS[message.role]
    else:
        return None
    text = " ".join(message.text.split())
    first = _SENTENCE_END.split(text, maxsplit=1)[0]
    if len(first) > MAX_LINE_CHARS:
        first = first[: MAX_LINE_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return f"- {speaker}: {first}" if first else None


def extend(previous: str, messages: Sequence[memory_pb2.Message], budget: int = MAX_SUMMARY_CHARS) -> str:
    """`previous` with a line per message appended; the oldest lines go first when over `budget`."""
    lines = [entry for entry in previous.splitlines() if entry and entry != OMITTED]
    lines += [entry for m in messages if (entry := line(m))]
    dropped = False
    while lines and sum(len(entry) + 1 for entry in lines) > budget - len(OMITTED) - 1:
        lines.pop(0)
        dropped = True
    return "\n".join([OMITTED, *lines] if dropped or previous.startswith(OMITTED) else lines)
