"""Drive a KnowledgeBase sync through the retrieval service and report its progress.

`concierge up`, `concierge kb sync` and the operator all build the request and read the result
here, so a knowledge base syncs the same way on a laptop and in a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from concierge.api.resources import KnowledgeBase
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc


@dataclass
class SyncResult:
    knowledge_base: str
    documents: int = 0
    changed: int = 0
    deleted: int = 0
    chunks_written: int = 0
    chunks_total: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, kb: KnowledgeBase, done: retrieval_pb2.SyncKnowledgeBaseResponse) -> SyncResult:
        """The result reported by the last (`done`) progress message of a sync."""
        return cls(
            knowledge_base=kb.key,
            documents=done.documents_total,
            changed=done.documents_changed,
            deleted=done.documents_deleted,
            chunks_written=done.chunks_written,
            chunks_total=done.chunks_total,
            errors=[(e.source, e.reason) for e in done.errors],
        )


def sync_request(kb: KnowledgeBase, base_dir: Path) -> retrieval_pb2.SyncKnowledgeBaseRequest:
    return retrieval_pb2.SyncKnowledgeBaseRequest(
        tenant=kb.namespace,
        knowledge_base=kb.name,
        spec_json=kb.spec.model_dump_json(by_alias=True),
        base_dir=str(base_dir.resolve()),
    )


async def sync_knowledge_base(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub,
    kb: KnowledgeBase,
    base_dir: Path,
    on_progress: Callable[[retrieval_pb2.SyncKnowledgeBaseResponse], None] | None = None,
    deadline_seconds: float = 3600.0,
) -> SyncResult:
    """Run one sync to completion; progress messages go to `on_progress`."""
    result = SyncResult(knowledge_base=kb.key)
    async for progress in stub.SyncKnowledgeBase(sync_request(kb, base_dir), timeout=deadline_seconds):
        if on_progress is not None:
            on_progress(progress)
        if progress.done:
            result = SyncResult.of(kb, progress)
    return result
