"""The `extractive` provider as an Agent Framework chat client: offline, deterministic, tool-using.

First call: ask for `search_knowledge` with the customer's words; call with the result: answer
from those passages only (see `extractive.py`), streamed in small word groups. With an embedding
service, sentences are scored by meaning too; without one (or when it fails), by shared words.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
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
from concierge.v1 import embedding_pb2, embedding_pb2_grpc

log = logging.getLogger(__name__)

MODEL_NAME = "extractive"
SEARCH_FAILED_TEXT = (
    "I'm sorry, I couldn't search our help center just now. "
    "Would you like me to connect you with a member of our support team?"
)
# `tenant=… session=…` of the turn being answered, set by the chat service: one client serves every turn.
turn_log_fields: ContextVar[str] = ContextVar("concierge_turn_log_fields", default="")

Vector = npt.NDArray[np.float32]
Key = tuple[embedding_pb2.EmbedKind.ValueType, str]
QUERY = embedding_pb2.EMBED_KIND_QUERY
DOCUMENT = embedding_pb2.EMBED_KIND_DOCUMENT


class EmbeddingFailed(Exception):
    """The embedding service failed, timed out or could not be reached; the message says which and where."""


class SentenceEmbedder:
    """Cosine similarities of candidate pieces to a question, from the embedding service.

    One long-lived channel, a deadline on every call. Vectors of recent texts are kept (bounded):
    the same help-center sentences come back turn after turn, and a follow-up search repeats most
    of the first one's pieces, so a turn usually embeds only what it has not seen.
    """

    def __init__(
        self,
        stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub,
        *,
        address: str,
        timeout_s: float,
        cache_size: int = 4096,
        batch_size: int = 128,
    ) -> None:
        self._stub = stub
        self._address = address
        self._timeout = timeout_s
        self._cache: OrderedDict[Key, Vector] = OrderedDict()
        self._cache_size = cache_size
        self._batch_size = batch_size
        self._model = ""

    async def similarities(self, question: str, texts: Sequence[str]) -> dict[str, float]:
        """Each of `texts` → its cosine similarity to `question`; raises EmbeddingFailed."""
        model = self._model
        await self._fill(question, texts)
        if model and self._model != model:
            # The service now runs another model: vectors cached from the old one are not comparable.
            log.warning("embedding model changed old=%s new=%s", model, self._model)
            self._cache.clear()
            await self._fill(question, texts)
        query = self._cache[(QUERY, question)]
        return {t: float(np.dot(self._cache[(DOCUMENT, t)], query)) for t in texts}

    async def _fill(self, question: str, texts: Sequence[str]) -> None:
        """Embed what the cache lacks, in concurrent calls of one kind each (a request carries one
        kind): the query and the pieces, which the service's micro-batcher takes up together."""
        wanted = [(QUERY, question), *((DOCUMENT, t) for t in dict.fromkeys(texts))]
        for key in wanted:
            if key in self._cache:
                self._cache.move_to_end(key)
        calls: list[list[Key]] = []
        for kind in (QUERY, DOCUMENT):
            # Similar lengths side by side: a forward pass pads every text to the longest of its batch
            # (measured: p95 of a turn's cold Embed 419 → 292 ms on 2 busy cores).
            keys = sorted((k for k in wanted if k[0] == kind and k not in self._cache), key=lambda k: len(k[1]))
            calls.extend(keys[i : i + self._batch_size] for i in range(0, len(keys), self._batch_size))
        replies = await asyncio.gather(*(self._embed(batch) for batch in calls))
        for batch, reply in zip(calls, replies, strict=True):
            self._model = reply.model
            for key, vector in zip(batch, reply.vectors, strict=True):
                self._cache[key] = np.asarray(vector.values, dtype=np.float32)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _embed(self, keys: list[Key]) -> embedding_pb2.EmbedResponse:
        request = embedding_pb2.EmbedRequest(texts=[text for _, text in keys], kind=keys[0][0])
        try:
            # No wait_for_ready: a service that is down should cost this turn nothing but the fallback.
            reply = await self._stub.Embed(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            raise EmbeddingFailed(
                f"embedding service at {self._address} failed Embed: {err.code().name}: {err.details()} "
                "(check CONCIERGE_EMBEDDING_ADDRESS and that `concierge serve embedding` is running)"
            ) from err
        if len(reply.vectors) != len(keys):
            raise EmbeddingFailed(
                f"embedding service at {self._address} returned {len(reply.vectors)} vectors for {len(keys)} texts"
            )
        return reply


class ExtractiveChatClient(FunctionInvocationLayer[Any], BaseChatClient[Any]):
    """A chat client that quotes the knowledge base instead of generating text."""

    OTEL_PROVIDER_NAME = "concierge.extractive"

    def __init__(
        self,
        *,
        min_vector_score: float,
        greeting: str,
        scope: str = "",
        embedder: SentenceEmbedder | None = None,
        words_per_delta: int = 3,
        function_invocation_configuration: FunctionInvocationConfiguration | None = None,
    ) -> None:
        super().__init__(function_invocation_configuration=function_invocation_configuration)
        self.model = MODEL_NAME
        self.min_vector_score = min_vector_score
        self.greeting = greeting
        # What the agent's knowledge bases say they cover (their descriptions); see `extractive.answer`.
        self.scope = scope
        self.embedder = embedder
        self.words_per_delta = words_per_delta

    def _inner_get_response(
        self,
        *,
        messages: Sequence[Message],
        stream: bool,
        options: Mapping[str, Any],
        **kwargs: Any,
    ) -> Awaitable[ChatResponse] | ResponseStream[ChatResponseUpdate, ChatResponse]:
        if stream:
            return self._build_response_stream(self._stream(messages, options))

        async def respond() -> ChatResponse:
            contents = await self.decide(messages, options)
            return ChatResponse(messages=[Message(role="assistant", contents=contents)], model=MODEL_NAME)

        return respond()

    async def _stream(
        self, messages: Sequence[Message], options: Mapping[str, Any]
    ) -> AsyncIterator[ChatResponseUpdate]:
        contents = await self.decide(messages, options)
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

    async def decide(self, messages: Sequence[Message], options: Mapping[str, Any]) -> list[Content]:
        """What the model says next: a search call, an answer from search results, or a short reply."""
        last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
        if last_user is None:
            return [Content.from_text(extractive.CLARIFY_TEXT)]
        question = messages[last_user].text
        turn = [c for m in messages[last_user + 1 :] for c in m.contents]
        results = [c for c in turn if c.type == "function_result"]
        can_search = self._can_search(options)
        if results:
            if any(c.exception for c in results):
                return [Content.from_text(SEARCH_FAILED_TEXT)]
            passages: list[Passage] = [p for c in results for p in passages_of(c)]
            similarities = await self._similarities(question, passages)
            searches = sum(1 for c in turn if c.type == "function_call" and c.name == TOOL_NAME)
            if similarities is not None and searches == 1 and can_search:
                follow_up = extractive.follow_up_query(question, passages, similarities)
                if follow_up is not None:
                    return [self._search(follow_up)]
            reply = extractive.answer(
                question,
                passages,
                min_vector_score=self.min_vector_score,
                similarities=similarities,
                scope=self.scope,
            )
            return [Content.from_text(reply.text)]
        if (small_talk := extractive.small_talk_reply(question, self.greeting)) is not None:
            return [Content.from_text(small_talk)]
        if not can_search:
            return [Content.from_text(extractive.ABSTAIN_TEXT)]
        return [self._search(question)]

    @staticmethod
    def _can_search(options: Mapping[str, Any]) -> bool:
        tools = {getattr(t, "name", None) for t in options.get("tools") or []}
        return TOOL_NAME in tools and options.get("tool_choice") != "none"

    @staticmethod
    def _search(query: str) -> Content:
        return Content.from_function_call(f"call_{uuid.uuid4().hex[:24]}", TOOL_NAME, arguments={"query": query})

    async def _similarities(self, question: str, passages: Sequence[Passage]) -> dict[str, float] | None:
        """Similarity of every candidate piece to the question, or None: score by shared words alone."""
        if self.embedder is None or not passages:
            return None
        texts = extractive.embedding_texts(passages)
        started = time.perf_counter()
        try:
            similarities = await self.embedder.similarities(question, texts)
        except EmbeddingFailed as err:
            log.warning("sentence scoring by word overlap only %s reason=%s", turn_log_fields.get(), err)
            return None
        log.info(
            "sentence scoring %s texts=%d embed_ms=%.1f",
            turn_log_fields.get(),
            len(texts),
            (time.perf_counter() - started) * 1000,
        )
        return similarities
