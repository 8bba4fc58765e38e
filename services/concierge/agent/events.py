"""Maps Agent Framework stream updates to the ChatResponse events of agent.proto.

Pure: text deltas pass through, tool calls become started/finished pairs (with streamed argument
fragments joined first), usage is totalled; citations are built from the finished text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_framework import AgentResponseUpdate, Content

from concierge.agent.knowledge import passages_of
from concierge.agent.passages import Passage, citations_for, summarize
from concierge.v1 import agent_pb2, common_pb2

MAX_SUMMARY_CHARS = 300


@dataclass
class _Call:
    call_id: str
    name: str = ""
    arguments: str = ""
    parsed: dict[str, Any] | None = None
    announced: bool = False


def _as_object(arguments: str) -> dict[str, Any] | None:
    try:
        value = json.loads(arguments)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass
class EventMapper:
    """Turns the updates of one agent run into events; keeps the answer text and token counts."""

    text_parts: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    _calls: dict[str, _Call] = field(default_factory=dict)
    _last_call: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def map(self, update: AgentResponseUpdate) -> list[agent_pb2.ChatResponse]:
        events: list[agent_pb2.ChatResponse] = []
        for content in update.contents:
            events.extend(self._map_content(content))
        return events

    def _map_content(self, content: Content) -> Iterable[agent_pb2.ChatResponse]:
        match content.type:
            case "text" if content.text:
                self.text_parts.append(content.text)
                yield agent_pb2.ChatResponse(text_delta=agent_pb2.TextDelta(text=content.text))
            case "function_call":
                yield from self._function_call(content)
            case "function_result":
                yield from self._function_result(content)
            case "usage":
                self._usage(content)
            case _:
                return

    def _function_call(self, content: Content) -> Iterable[agent_pb2.ChatResponse]:
        # Streaming LLM clients send a call in fragments: name and id first, then pieces of the
        # JSON arguments (sometimes without the id). Announce it once the arguments are complete.
        call_id = content.call_id or self._last_call or ""
        call = self._calls.setdefault(call_id, _Call(call_id))
        self._last_call = call_id
        if content.name:
            call.name = content.name
        if isinstance(content.arguments, Mapping):
            call.parsed = dict(content.arguments)
            call.arguments = json.dumps(call.parsed)
        elif content.arguments:
            call.arguments += content.arguments
            call.parsed = _as_object(call.arguments)
        if call.parsed is not None and call.name and not call.announced:
            yield self._started(call)

    def _started(self, call: _Call) -> agent_pb2.ChatResponse:
        call.announced = True
        return agent_pb2.ChatResponse(
            tool_call=agent_pb2.ToolCall(
                call_id=call.call_id, name=call.name, arguments_json=json.dumps(call.parsed or {}), finished=False
            )
        )

    def _function_result(self, content: Content) -> Iterable[agent_pb2.ChatResponse]:
        call = self._calls.setdefault(content.call_id or "", _Call(content.call_id or ""))
        if not call.announced:
            call.parsed = call.parsed or _as_object(call.arguments) or {}
            yield self._started(call)
        passages = passages_of(content)
        if content.exception:
            summary = f"failed: {content.exception}"[:MAX_SUMMARY_CHARS]
            details: Any = {"error": content.exception}
        elif passages:
            summary = summarize(passages)[:MAX_SUMMARY_CHARS]
            details = {"passages": [_passage_summary(p) for p in passages]}
        else:
            text = str(content.result or "")
            summary = text[:MAX_SUMMARY_CHARS]
            details = {"result_chars": len(text)}
        yield agent_pb2.ChatResponse(
            tool_call=agent_pb2.ToolCall(
                call_id=call.call_id,
                name=call.name,
                arguments_json=json.dumps(details),
                finished=True,
                result_summary=summary,
            )
        )

    def _usage(self, content: Content) -> None:
        usage = content.usage_details or {}
        inputs, outputs = int(usage.get("input_token_count") or 0), int(usage.get("output_token_count") or 0)
        if content.merge_mode == "replace":
            # The function loop re-states the running total of all model calls so far.
            self.input_tokens, self.output_tokens = inputs, outputs
        else:
            self.input_tokens += inputs
            self.output_tokens += outputs

    def citations(self, passages: Iterable[Passage]) -> list[common_pb2.Citation]:
        """One Citation per passage the final text cites, in order of first mention."""
        return citations_for(self.text, passages)


def _passage_summary(p: Passage) -> dict[str, Any]:
    return {
        "index": p.index,
        "title": p.title,
        "section": p.section,
        "source_uri": p.source_uri,
        "score": round(p.score, 4),
        "vector_score": round(p.vector_score, 4),
    }
