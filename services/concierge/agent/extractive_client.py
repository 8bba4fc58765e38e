"""The `extractive` provider as an Agent Framework chat client: offline, deterministic, tool-using.

First call: ask for `search_knowledge` with the customer's words; call with the result: answer
from those passages only (see `extractive.py`), streamed in small word groups.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any

from agent_framework import (
    BaseChatClient,
    ChatResponse,
    ChatResponseUpdate,
    Content,
    FunctionInvocationConfiguration,
    FunctionInvocationLayer,
    Message,
    ResponseStream,
)

from concierge.agent import extractive
from concierge.agent.knowledge import TOOL_NAME, passages_of
from concierge.agent.passages import Passage

MODEL_NAME = "extractive"
SEARCH_FAILED_TEXT = (
    "I'm sorry, I couldn't search our help center just now. "
    "Would you like me to connect you with a member of our support team?"
)


class ExtractiveChatClient(FunctionInvocationLayer[Any], BaseChatClient[Any]):
    """A chat client that quotes the knowledge base instead of generating text."""

    OTEL_PROVIDER_NAME = "concierge.extractive"

    def __init__(
        self,
        *,
        min_vector_score: float,
        greeting: str,
        words_per_delta: int = 3,
        function_invocation_configuration: FunctionInvocationConfiguration | None = None,
    ) -> None:
        super().__init__(function_invocation_configuration=function_invocation_configuration)
        self.model = MODEL_NAME
        self.min_vector_score = min_vector_score
        self.greeting = greeting
        self.words_per_delta = words_per_delta

    def _inner_get_response(
        self,
        *,
        messages: Sequence[Message],
        stream: bool,
        options: Mapping[str, Any],
        **kwargs: Any,
    ) -> Awaitable[ChatResponse] | ResponseStream[ChatResponseUpdate, ChatResponse]:
        contents = self.decide(messages, options)
        if stream:
            return self._build_response_stream(self._stream(contents))

        async def respond() -> ChatResponse:
            return ChatResponse(messages=[Message(role="assistant", contents=contents)], model=MODEL_NAME)

        return respond()

    async def _stream(self, contents: list[Content]) -> AsyncIterator[ChatResponseUpdate]:
        response_id = f"extractive-{uuid.uuid4().hex}"
        for content in contents:
            if content.type != "text" or not content.text:
                yield ChatResponseUpdate(role="assistant", contents=[content], response_id=response_id)
                continue
            for delta in extractive.word_groups(content.text, self.words_per_delta):
                yield ChatResponseUpdate(
                    role="assistant", contents=[Content.from_text(delta)], response_id=response_id, model=MODEL_NAME
                )
                # Let the server flush each delta to the client as it is produced.
                await asyncio.sleep(0)

    def decide(self, messages: Sequence[Message], options: Mapping[str, Any]) -> list[Content]:
        """What the model says next: a search call, an answer from search results, or a short reply."""
        last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
        if last_user is None:
            return [Content.from_text(extractive.CLARIFY_TEXT)]
        question = messages[last_user].text
        results = [c for m in messages[last_user + 1 :] for c in m.contents if c.type == "function_result"]
        if results:
            if any(c.exception for c in results):
                return [Content.from_text(SEARCH_FAILED_TEXT)]
            passages: list[Passage] = [p for c in results for p in passages_of(c)]
            reply = extractive.answer(question, passages, min_vector_score=self.min_vector_score)
            return [Content.from_text(reply.text)]
        if (small_talk := extractive.small_talk_reply(question, self.greeting)) is not None:
            return [Content.from_text(small_talk)]
        tools = {getattr(t, "name", None) for t in options.get("tools") or []}
        if TOOL_NAME not in tools or options.get("tool_choice") == "none":
            return [Content.from_text(extractive.ABSTAIN_TEXT)]
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        return [Content.from_function_call(call_id, TOOL_NAME, arguments={"query": question})]
