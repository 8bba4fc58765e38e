"""JSON shapes of the public API (camelCase on the wire) and their conversion from gRPC messages."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from concierge.memory.validation import MAX_CUSTOMER_ID_CHARS
from concierge.v1 import common_pb2, memory_pb2

MAX_MESSAGE_CHARS = 8000
MAX_AGENT_NAME_CHARS = 100

# A human agent's display name, shown to the customer: one line, no control characters.
StaffName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_AGENT_NAME_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class AgentOut(ApiModel):
    name: str
    namespace: str
    display_name: str
    greeting: str
    attachments_enabled: bool = Field(default=True, description="Whether customers may upload files to this agent.")
    attachments_max_bytes: int = Field(default=10 * 1024 * 1024, description="Largest upload in bytes.")


class AgentList(ApiModel):
    items: list[AgentOut]


class SessionCreate(ApiModel):
    agent: str = Field(min_length=1, max_length=63, description="SupportAgent name in the tenant's namespace.")
    customer_id: str = Field(
        default="",
        max_length=MAX_CUSTOMER_ID_CHARS,
        description="The customer across sessions (remembered facts, export, erasure); empty for an anonymous chat.",
    )


SessionStatus = Literal["bot", "escalated", "human"]
_STATUSES: dict[int, SessionStatus] = {
    memory_pb2.SESSION_STATUS_BOT: "bot",
    memory_pb2.SESSION_STATUS_ESCALATED: "escalated",
    memory_pb2.SESSION_STATUS_HUMAN: "human",
}


def status_name(status: int) -> SessionStatus:
    """Sessions stored before hand-offs existed have no status: the bot answers them."""
    return _STATUSES.get(status, "bot")


class SessionOut(ApiModel):
    id: str
    tenant: str
    agent: str
    created_at: str
    customer_id: str = ""
    status: SessionStatus = Field(
        default="bot",
        description="Who answers: `bot`; `escalated` (waiting for a human, the bot is silent); "
        "`human` (a human agent, `handler`, holds it).",
    )
    handler: str = Field(default="", description="Display name of the human agent holding the session.")
    escalation_reason: str = ""
    escalated_at: str = ""
    updated_at: str = ""


class SessionList(ApiModel):
    items: list[SessionOut]


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


Role = Literal["user", "assistant", "system", "human"]
_ROLES: dict[int, Role] = {
    memory_pb2.ROLE_USER: "user",
    memory_pb2.ROLE_ASSISTANT: "assistant",
    memory_pb2.ROLE_SYSTEM: "system",
    memory_pb2.ROLE_HUMAN: "human",
}


class MessageOut(ApiModel):
    id: str
    session_id: str
    role: Role = Field(description="`user` the customer, `assistant` the bot, `human` a human agent, `system` notes.")
    text: str
    client_message_id: str
    seq: int
    created_at: str
    citations: list[CitationOut]
    reply_to: str
    author: str = Field(default="", description="Display name of the human agent (role `human`).")


class MessageAccepted(ApiModel):
    message: MessageOut
    created: bool = Field(description="False when this clientMessageId was already stored (a resend).")
    session_status: SessionStatus = Field(
        default="bot",
        description="`bot`: the answer streams on the session's WebSocket; `escalated`/`human`: the message "
        "waits for a human agent and the bot does not answer.",
    )


class HumanReply(ApiModel):
    client_message_id: UUID = Field(description="UUID the client chose; resending it never duplicates the reply.")
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="What the human agent writes.")
    agent_name: StaffName = Field(description="Display name of the human agent holding the session.")


class StaffAction(ApiModel):
    agent_name: StaffName = Field(description="Display name of the human agent, shown to the customer.")


class HandoffOut(ApiModel):
    session: SessionOut
    changed: bool = Field(description="False when the session already was in this state (a retried request).")
    message: MessageOut | None = Field(description="The system message telling the customer; null when unchanged.")


class AttachmentOut(ApiModel):
    id: str
    session_id: str
    filename: str
    content_type: str
    size_bytes: int
    format: str = Field(description="How the file was read: pdf, docx, pptx, xlsx, csv, json, markdown, text, html.")
    chars: int = Field(description="Characters of text extracted (before any cut).")
    pages: int | None = Field(description="Pages of a PDF; null for other formats.")
    truncated: bool = Field(description="The stored text was cut to the edge's limit.")
    created_at: str
    message: MessageOut = Field(description="The system message that tells the agent about the file.")


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
        author=m.author,
    )


def session_out(s: memory_pb2.Session) -> SessionOut:
    return SessionOut(
        id=s.id,
        tenant=s.tenant,
        agent=s.agent,
        created_at=s.created_at,
        customer_id=s.customer_id,
        status=status_name(s.status),
        handler=s.handler,
        escalation_reason=s.escalation_reason,
        escalated_at=s.escalated_at,
        updated_at=s.updated_at,
    )


# --- frames the hub fans out besides answer events (see turns.event_frame) ---------------


def message_frame(m: memory_pb2.Message) -> dict[str, Any]:
    """A stored message for everyone watching the session (customer, human agent)."""
    return {"type": "message", "message": message_out(m).model_dump(by_alias=True)}


def human_frame(kind: Literal["human_joined", "human_left"], name: str, m: memory_pb2.Message) -> dict[str, Any]:
    """A human agent took the session over or handed it back; `message` is the stored system note."""
    return {"type": kind, "name": name, "message": message_out(m).model_dump(by_alias=True)}
