"""JSON shapes of the public API (camelCase on the wire) and their conversion from gRPC messages."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from concierge.v1 import common_pb2, memory_pb2

MAX_MESSAGE_CHARS = 8000


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class AgentOut(ApiModel):
    name: str
    namespace: str
    display_name: str
    greeting: str


class AgentList(ApiModel):
    items: list[AgentOut]


class SessionCreate(ApiModel):
    agent: str = Field(min_length=1, max_length=63, description="SupportAgent name in the tenant's namespace.")


class SessionOut(ApiModel):
    id: str
    tenant: str
    agent: str
    created_at: str


class MessageCreate(ApiModel):
    client_message_id: UUID = Field(description="UUID the client chose; resending it never duplicates the message.")
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="What the customer wrote.")


class CitationOut(ApiModel):
    index: int
    knowledge_base: str
    document_id: str
    document_title: str
    source_uri: str
    section: str
    snippet: str
    chunk_id: str
    score: float


Role = Literal["user", "assistant", "system"]
_ROLES: dict[int, Role] = {
    memory_pb2.ROLE_USER: "user",
    memory_pb2.ROLE_ASSISTANT: "assistant",
    memory_pb2.ROLE_SYSTEM: "system",
}


class MessageOut(ApiModel):
    id: str
    session_id: str
    role: Role
    text: str
    client_message_id: str
    seq: int
    created_at: str
    citations: list[CitationOut]
    reply_to: str


class MessageAccepted(ApiModel):
    message: MessageOut
    created: bool = Field(description="False when this clientMessageId was already stored (a resend).")


class MessagePage(ApiModel):
    items: list[MessageOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null on the last page.")


def citation_out(c: common_pb2.Citation) -> CitationOut:
    return CitationOut(
        index=c.index,
        knowledge_base=c.knowledge_base,
        document_id=c.document_id,
        document_title=c.document_title,
        source_uri=c.source_uri,
        section=c.section,
        snippet=c.snippet,
        chunk_id=c.chunk_id,
        score=round(c.score, 4),
    )


def message_out(m: memory_pb2.Message) -> MessageOut:
    return MessageOut(
        id=m.id,
        session_id=m.session_id,
        role=_ROLES.get(m.role, "system"),
        text=m.text,
        client_message_id=m.client_message_id,
        seq=m.seq,
        created_at=m.created_at,
        citations=[citation_out(c) for c in m.citations],
        reply_to=m.reply_to,
    )


def session_out(s: memory_pb2.Session) -> SessionOut:
    return SessionOut(id=s.id, tenant=s.tenant, agent=s.agent, created_at=s.created_at)
