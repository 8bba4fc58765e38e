"""The `search_knowledge` tool: one per chat turn, bound to the turn's tenant and the agent's KBs.

The model chooses only the query; where to search is fixed by the SupportAgent, never by the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Annotated, Any

import grpc
from agent_framework import Content, FunctionTool, MiddlewareFailure
from pydantic import BaseModel, Field

from concierge.agent.passages import Passage, format_passages
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

log = logging.getLogger(__name__)

TOOL_NAME = "search_knowledge"
TOOL_DESCRIPTION = (
    "Search the help-center knowledge base. Returns numbered passages ([1], [2], ...) with their "
    "title and section; cite the passages you use with their [n] marker."
)
# Passages travel to the model as text and, for the extractive model, as data on the result.
PASSAGES_PROPERTY = "concierge.passages"
MAX_QUERY_CHARS = 1000


class SearchArguments(BaseModel):
    query: Annotated[
        str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to look up, in the customer's words.")
    ]


class KnowledgeSearchFailed(MiddlewareFailure):
    """Retrieval failed: the turn stops (fail-closed) instead of the model answering without sources."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code


class KnowledgeSearch:
    """Searches the agent's own knowledge bases for one turn and remembers every passage it returned.

    Passage numbers continue across calls within the turn, so [n] in the answer is unambiguous
    even when a model searches twice.
    """

    def __init__(
        self,
        *,
        retrieval: retrieval_pb2_grpc.RetrievalServiceAsyncStub,
        retrieval_address: str,
        tenant: str,
        knowledge_bases: Sequence[str],
        top_k: int,
        timeout: float,
        session_id: str = "",
    ) -> None:
        self._retrieval = retrieval
        self._address = retrieval_address
        self._tenant = tenant
        self._knowledge_bases = list(knowledge_bases)
        self._top_k = top_k
        self._timeout = timeout
        self._session_id = session_id
        self.passages: list[Passage] = []
        self.searched = False

    @property
    def best_vector_score(self) -> float | None:
        """The best cosine similarity found this turn (0 when a search found nothing; None: no search)."""
        if not self.searched:
            return None
        return max((p.vector_score for p in self.passages), default=0.0)

    async def search(self, query: str) -> list[Passage]:
        if not self._knowledge_bases:
            # An empty list must never reach retrieval: no knowledge bases means nothing to search.
            return []
        started = time.monotonic()
        request = retrieval_pb2.SearchRequest(
            tenant=self._tenant, knowledge_bases=self._knowledge_bases, query=query[:MAX_QUERY_CHARS], top_k=self._top_k
        )
        try:
            reply = await self._retrieval.Search(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            log.warning(
                "knowledge search failed tenant=%s session=%s code=%s", self._tenant, self._session_id, err.code().name
            )
            raise KnowledgeSearchFailed(
                f"knowledge search failed: retrieval service at {self._address} returned "
                f"{err.code().name}: {err.details()}",
                err.code(),
            ) from err
        self.searched = True
        first = len(self.passages) + 1
        found = [Passage.from_hit(first + i, hit) for i, hit in enumerate(reply.hits)]
        self.passages.extend(found)
        log.info(
            "knowledge searched tenant=%s session=%s hits=%d best_vector_score=%.3f ms=%d",
            self._tenant,
            self._session_id,
            len(found),
            max((p.vector_score for p in found), default=0.0),
            (time.monotonic() - started) * 1000,
        )
        return found

    def tool(self) -> FunctionTool:
        """The AF function tool; only `query` comes from the model."""

        async def search_knowledge(query: str) -> list[Passage]:
            return await self.search(query)

        def to_contents(passages: Any) -> list[Content]:
            found: list[Passage] = list(passages)
            return [
                Content.from_text(
                    format_passages(found), additional_properties={PASSAGES_PROPERTY: [p.to_dict() for p in found]}
                )
            ]

        return FunctionTool(
            name=TOOL_NAME,
            description=TOOL_DESCRIPTION,
            func=search_knowledge,
            input_model=SearchArguments,
            result_parser=to_contents,
        )


def passages_of(result: Content) -> list[Passage]:
    """The passages carried by a `search_knowledge` function result (empty for other results)."""
    out: list[Passage] = []
    for item in result.items or []:
        for data in (item.additional_properties or {}).get(PASSAGES_PROPERTY, []):
            out.append(Passage.from_dict(data))
    return out
