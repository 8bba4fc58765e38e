"""Checks memory requests before they reach the database and says exactly what is wrong.

Pure functions: each takes a request message and returns the validated values or raises InvalidArgument.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from google.protobuf.json_format import MessageToDict

from concierge.v1 import memory_pb2

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_CLIENT_MESSAGE_ID_CHARS = 200
MAX_CITATIONS = 100
MAX_CUSTOMER_ID_CHARS = 200
MAX_AUTHOR_CHARS = 100
MAX_REASON_CHARS = 1000
MAX_SUMMARY_CHARS = 20_000
MAX_FACT_CHARS = 500
DEFAULT_FACTS = 20
MAX_FACTS = 200
MAX_ATTACHMENT_CHARS = 200_000
MAX_FILENAME_CHARS = 255
MAX_CONTENT_TYPE_CHARS = 255
MAX_URL_CHARS = 2048
MAX_PAYLOAD_CHARS = 1_000_000
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_ERROR_CHARS = 2000
DEFAULT_CLAIM = 10
MAX_CLAIM = 100
DEFAULT_LEASE_SECONDS = 60
MAX_LEASE_SECONDS = 3600
MAX_RETRY_SECONDS = 7 * 24 * 3600
MAX_RETENTION_DAYS = 3650
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

ROLE_NAMES: dict[int, str] = {
    memory_pb2.ROLE_USER: "user",
    memory_pb2.ROLE_ASSISTANT: "assistant",
    memory_pb2.ROLE_SYSTEM: "system",
    memory_pb2.ROLE_HUMAN: "human",
}
ROLE_VALUES: dict[str, int] = {name: value for value, name in ROLE_NAMES.items()}

STATUS_NAMES: dict[int, str] = {
    memory_pb2.SESSION_STATUS_BOT: "bot",
    memory_pb2.SESSION_STATUS_ESCALATED: "escalated",
    memory_pb2.SESSION_STATUS_HUMAN: "human",
}
STATUS_VALUES: dict[str, int] = {name: value for value, name in STATUS_NAMES.items()}

HANDOFF_STATE_NAMES: dict[int, str] = {
    memory_pb2.HANDOFF_STATE_PENDING: "pending",
    memory_pb2.HANDOFF_STATE_DELIVERED: "delivered",
    memory_pb2.HANDOFF_STATE_DEAD: "dead",
}
HANDOFF_STATE_VALUES: dict[str, int] = {name: value for value, name in HANDOFF_STATE_NAMES.items()}


class InvalidArgument(ValueError):
    """The request is malformed; the message names the field, the value and the fix."""


def tenant(value: str) -> str:
    if not value:
        raise InvalidArgument("tenant is required: set it to the namespace that owns the conversation")
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise InvalidArgument(
            f"tenant {value[:80]!r} is not a valid namespace name: use lower-case letters, digits and '-', "
            "at most 63 characters, starting and ending with a letter or digit"
        )
    return value


def agent(value: str) -> str:
    if not value:
        raise InvalidArgument("agent is required: set it to the name of the SupportAgent the session talks to")
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise InvalidArgument(
            f"agent {value[:80]!r} is not a valid SupportAgent name: use lower-case letters, digits and '-', "
            "at most 63 characters"
        )
    return value


def uuid_field(field: str, value: str, *, required: bool = True) -> uuid.UUID | None:
    if not value:
        if required:
            raise InvalidArgument(f"{field} is required")
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(
            f"{field} {value[:80]!r} is not a valid UUID (expected 32 hex digits such as "
            "'1b4e28ba-2fa1-11d2-883f-0016d3cca427')"
        ) from None


def required_uuid(field: str, value: str) -> uuid.UUID:
    parsed = uuid_field(field, value)
    assert parsed is not None  # required=True never returns None
    return parsed


def session_id(value: str) -> uuid.UUID:
    return required_uuid("session_id", value)


def customer_id(value: str, *, required: bool = False) -> str:
    """A customer id as the caller knows it (an account id, an e-mail hash, `session:<id>`)."""
    if not value:
        if required:
            raise InvalidArgument(
                "customer_id is required: name the customer (for an anonymous chat pass 'session:<session id>')"
            )
        return ""
    if len(value) > MAX_CUSTOMER_ID_CHARS:
        raise InvalidArgument(
            f"customer_id {value[:40]!r}… is {len(value)} characters long; the limit is {MAX_CUSTOMER_ID_CHARS}"
        )
    if not value.isprintable():
        raise InvalidArgument(
            f"customer_id {value[:80]!r} contains control or separator characters; use printable text only"
        )
    return value


def _display_name(field: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidArgument(f"{field} {value[:40]!r}… is {len(value)} characters long; the limit is {limit}")
    if not value.strip() or not value.isprintable():
        raise InvalidArgument(
            f"{field} {value[:80]!r} is not a display name: use printable text with at least one visible character"
        )
    return value


def _limit(field: str, value: int, *, default: int, maximum: int) -> int:
    if value < 0:
        raise InvalidArgument(f"{field} is {value}; use 1 to {maximum}, or 0 for {default}")
    # Larger values are coerced rather than refused, as Google's AIP-158 recommends for page sizes.
    return min(value or default, maximum)


def _enum_names(field: str, values: Iterable[int], names: dict[int, str], enum: str) -> tuple[str, ...]:
    chosen: list[str] = []
    for i, value in enumerate(values):
        if value not in names:
            allowed = ", ".join(f"{enum}_{name.upper()}" for name in names.values())
            raise InvalidArgument(f"{field}[{i}] is {value}, which is not one of {allowed}")
        if names[value] not in chosen:
            chosen.append(names[value])
    return tuple(chosen)


# Sessions and messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSession:
    """A validated CreateSessionRequest."""

    tenant: str
    agent: str
    customer_id: str


def create_session(request: memory_pb2.CreateSessionRequest) -> NewSession:
    return NewSession(tenant(request.tenant), agent(request.agent), customer_id(request.customer_id))


@dataclass(frozen=True)
class NewMessage:
    """A validated AppendMessageRequest."""

    tenant: str
    session_id: uuid.UUID
    role: str
    text: str
    client_message_id: str
    reply_to: uuid.UUID | None
    citations: list[dict[str, object]]
    author: str = ""
    confidence: float | None = None


def append_message(request: memory_pb2.AppendMessageRequest, *, max_chars: int) -> NewMessage:
    tenant_ = tenant(request.tenant)
    session = session_id(request.session_id)
    if request.role not in ROLE_NAMES:
        raise InvalidArgument(
            f"role {request.role} is not allowed: set ROLE_USER, ROLE_ASSISTANT, ROLE_SYSTEM or ROLE_HUMAN"
        )
    role = ROLE_NAMES[request.role]
    if not request.client_message_id:
        raise InvalidArgument(
            "client_message_id is required: give every message a unique id (a UUID works) so that a resend "
            "is recognised and stored only once"
        )
    if len(request.client_message_id) > MAX_CLIENT_MESSAGE_ID_CHARS:
        raise InvalidArgument(
            f"client_message_id is {len(request.client_message_id)} characters long; "
            f"the limit is {MAX_CLIENT_MESSAGE_ID_CHARS}"
        )
    if not request.text.strip():
        raise InvalidArgument("text is empty: a message needs at least one non-whitespace character")
    if len(request.text) > max_chars:
        raise InvalidArgument(
            f"text is {len(request.text)} characters long; the limit is {max_chars} characters — "
            "split the message or attach the content as a file"
        )
    if role == "human":
        if not request.author:
            raise InvalidArgument(
                "author is required for ROLE_HUMAN: set it to the display name of the support agent who wrote it"
            )
        author = _display_name("author", request.author, MAX_AUTHOR_CHARS)
    elif request.author:
        raise InvalidArgument(
            f"author {request.author[:80]!r} is only kept for ROLE_HUMAN messages; leave it empty for "
            f"{memory_pb2.Role.Name(request.role)}"
        )
    else:
        author = ""
    confidence: float | None = None
    if request.HasField("confidence"):
        if role != "assistant":
            raise InvalidArgument(
                f"confidence is only kept for ROLE_ASSISTANT messages; leave it unset for "
                f"{memory_pb2.Role.Name(request.role)}"
            )
        if math.isnan(request.confidence) or not -1.0 <= request.confidence <= 1.0:
            raise InvalidArgument(
                f"confidence is {request.confidence}; it must be a similarity between -1 and 1 "
                "(leave it unset when nothing was searched)"
            )
        confidence = request.confidence
    reply_to = uuid_field("reply_to", request.reply_to, required=False)
    if len(request.citations) > MAX_CITATIONS:
        raise InvalidArgument(f"{len(request.citations)} citations given; the limit is {MAX_CITATIONS}")
    for i, citation in enumerate(request.citations):
        if citation.index < 1:
            raise InvalidArgument(
                f"citations[{i}].index is {citation.index}; it must be the 1-based [n] marker used in the text"
            )
    return NewMessage(
        tenant=tenant_,
        session_id=session,
        role=role,
        text=request.text,
        client_message_id=request.client_message_id,
        reply_to=reply_to,
        citations=[MessageToDict(c, preserving_proto_field_name=True) for c in request.citations],
        author=author,
        confidence=confidence,
    )


@dataclass(frozen=True)
class Page:
    """A validated ListMessagesRequest: a page after `after_seq`, or the `newest` N when newest > 0."""

    tenant: str
    session_id: uuid.UUID
    after_seq: int
    limit: int
    newest: int = 0


def list_messages(request: memory_pb2.ListMessagesRequest) -> Page:
    tenant_, session = tenant(request.tenant), session_id(request.session_id)
    if request.newest < 0:
        raise InvalidArgument(
            f"newest is {request.newest}; use 1 to {MAX_PAGE_SIZE} for the latest messages, or 0 to page by after_seq"
        )
    if request.newest > 0:
        return Page(tenant_, session, 0, 0, newest=min(request.newest, MAX_PAGE_SIZE))
    if request.after_seq < 0:
        raise InvalidArgument(
            f"after_seq is {request.after_seq}; it must be 0 (from the start) or a seq returned earlier"
        )
    limit = _limit("limit", request.limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    return Page(tenant_, session, request.after_seq, limit)


@dataclass(frozen=True)
class SummaryUpdate:
    """A validated UpdateSummaryRequest."""

    tenant: str
    session_id: uuid.UUID
    summary: str
    through_seq: int


def update_summary(request: memory_pb2.UpdateSummaryRequest) -> SummaryUpdate:
    tenant_, session = tenant(request.tenant), session_id(request.session_id)
    if len(request.summary) > MAX_SUMMARY_CHARS:
        raise InvalidArgument(
            f"summary is {len(request.summary)} characters long; the limit is {MAX_SUMMARY_CHARS} — "
            "summarise further or drop the oldest lines"
        )
    if request.through_seq < 0:
        raise InvalidArgument(
            f"through_seq is {request.through_seq}; it must be the seq of the last message the summary covers"
        )
    return SummaryUpdate(tenant_, session, request.summary, request.through_seq)


@dataclass(frozen=True)
class StatusChange:
    """A validated SetSessionStatusRequest; `expect` empty means any current status."""

    tenant: str
    session_id: uuid.UUID
    status: str
    handler: str
    reason: str
    expect: tuple[str, ...]
    expect_handler: str = ""


def set_session_status(request: memory_pb2.SetSessionStatusRequest) -> StatusChange:
    tenant_, session = tenant(request.tenant), session_id(request.session_id)
    if request.status not in STATUS_NAMES:
        raise InvalidArgument(
            f"status {request.status} is not allowed: set SESSION_STATUS_BOT, SESSION_STATUS_ESCALATED "
            "or SESSION_STATUS_HUMAN"
        )
    status = STATUS_NAMES[request.status]
    if status == "human":
        if not request.handler:
            raise InvalidArgument(
                "handler is required for SESSION_STATUS_HUMAN: set it to the display name of the support agent "
                "taking over"
            )
        handler = _display_name("handler", request.handler, MAX_AUTHOR_CHARS)
    elif request.handler:
        raise InvalidArgument(
            f"handler {request.handler[:80]!r} is only kept with SESSION_STATUS_HUMAN; leave it empty for "
            f"{memory_pb2.SessionStatus.Name(request.status)}"
        )
    else:
        handler = ""
    if status == "bot" and request.reason:
        raise InvalidArgument(
            "reason is only kept while a session is escalated or held by a human; leave it empty with "
            "SESSION_STATUS_BOT"
        )
    if len(request.reason) > MAX_REASON_CHARS:
        raise InvalidArgument(f"reason is {len(request.reason)} characters long; the limit is {MAX_REASON_CHARS}")
    expect = _enum_names("expect", request.expect, STATUS_NAMES, "SESSION_STATUS")
    return StatusChange(tenant_, session, status, handler, request.reason, expect, request.expect_handler)


@dataclass(frozen=True)
class SessionQuery:
    """A validated ListSessionsRequest; empty `statuses` means all, empty `agent` all agents."""

    tenant: str
    statuses: tuple[str, ...]
    agent: str
    limit: int


def list_sessions(request: memory_pb2.ListSessionsRequest) -> SessionQuery:
    return SessionQuery(
        tenant(request.tenant),
        _enum_names("statuses", request.statuses, STATUS_NAMES, "SESSION_STATUS"),
        agent(request.agent) if request.agent else "",
        _limit("limit", request.limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE),
    )


# Facts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewFact:
    """A validated RememberFactRequest; `text` has its whitespace collapsed."""

    tenant: str
    customer_id: str
    agent: str
    session_id: uuid.UUID | None
    text: str


def fact_text(value: str) -> str:
    """The text as stored: runs of whitespace become one space, so a restated fact matches."""
    text = " ".join(value.split())
    if not text:
        raise InvalidArgument("text is empty: a fact needs at least one non-whitespace character")
    if len(text) > MAX_FACT_CHARS:
        raise InvalidArgument(
            f"text is {len(text)} characters long; the limit for a fact is {MAX_FACT_CHARS} — "
            "remember one short statement per fact"
        )
    return text


def remember_fact(request: memory_pb2.RememberFactRequest) -> NewFact:
    return NewFact(
        tenant(request.tenant),
        customer_id(request.customer_id, required=True),
        agent(request.agent),
        uuid_field("session_id", request.session_id, required=False),
        fact_text(request.text),
    )


@dataclass(frozen=True)
class FactQuery:
    """A validated RecallFactsRequest."""

    tenant: str
    customer_id: str
    limit: int


def recall_facts(request: memory_pb2.RecallFactsRequest) -> FactQuery:
    return FactQuery(
        tenant(request.tenant),
        customer_id(request.customer_id, required=True),
        _limit("limit", request.limit, default=DEFAULT_FACTS, maximum=MAX_FACTS),
    )


# Attachments ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewAttachment:
    """A validated AddAttachmentRequest."""

    tenant: str
    session_id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    text: str
    truncated: bool


def add_attachment(request: memory_pb2.AddAttachmentRequest) -> NewAttachment:
    tenant_, session = tenant(request.tenant), session_id(request.session_id)
    if not request.filename:
        raise InvalidArgument("filename is required: pass the name of the uploaded file")
    if len(request.filename) > MAX_FILENAME_CHARS or not request.filename.isprintable():
        raise InvalidArgument(
            f"filename {request.filename[:80]!r} is not usable: at most {MAX_FILENAME_CHARS} printable characters"
        )
    if len(request.content_type) > MAX_CONTENT_TYPE_CHARS or not request.content_type.isprintable():
        raise InvalidArgument(
            f"content_type {request.content_type[:80]!r} is not a media type such as 'application/pdf' "
            f"(at most {MAX_CONTENT_TYPE_CHARS} printable characters)"
        )
    if request.size_bytes < 0:
        raise InvalidArgument(f"size_bytes is {request.size_bytes}; it must be the upload's size, 0 or more")
    if len(request.text) > MAX_ATTACHMENT_CHARS:
        raise InvalidArgument(
            f"text is {len(request.text)} characters long; the limit is {MAX_ATTACHMENT_CHARS} — cut it and "
            "set truncated"
        )
    return NewAttachment(
        tenant_, session, request.filename, request.content_type, request.size_bytes, request.text, request.truncated
    )


@dataclass(frozen=True)
class AttachmentRef:
    """A validated GetAttachmentRequest."""

    tenant: str
    session_id: uuid.UUID
    attachment_id: uuid.UUID


def get_attachment(request: memory_pb2.GetAttachmentRequest) -> AttachmentRef:
    return AttachmentRef(
        tenant(request.tenant),
        session_id(request.session_id),
        required_uuid("attachment_id", request.attachment_id),
    )


# Hand-offs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewHandoff:
    """A validated EnqueueHandoffRequest."""

    tenant: str
    session_id: uuid.UUID
    agent: str
    url: str
    payload_json: str
    idempotency_key: str


def webhook_url(value: str) -> str:
    if not value:
        raise InvalidArgument("url is required: set it to the webhook that receives the hand-off")
    parts = urlsplit(value)
    if len(value) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"url {value[:120]!r} is not a webhook URL: use http:// or https:// with a host, "
            f"at most {MAX_URL_CHARS} characters"
        )
    return value


def enqueue_handoff(request: memory_pb2.EnqueueHandoffRequest) -> NewHandoff:
    tenant_, session = tenant(request.tenant), session_id(request.session_id)
    agent_ = agent(request.agent)
    url = webhook_url(request.url)
    if len(request.payload_json) > MAX_PAYLOAD_CHARS:
        raise InvalidArgument(
            f"payload_json is {len(request.payload_json)} characters long; the limit is {MAX_PAYLOAD_CHARS} — "
            "send fewer transcript messages"
        )
    try:
        payload = json.loads(request.payload_json)
    except ValueError as err:
        raise InvalidArgument(f"payload_json is not valid JSON ({err}); send the exact body to POST") from None
    if not isinstance(payload, dict):
        raise InvalidArgument(f"payload_json is a JSON {type(payload).__name__}; it must be a JSON object")
    key = request.idempotency_key
    if not key:
        raise InvalidArgument(
            "idempotency_key is required: derive it from what triggered the hand-off (e.g. "
            "'escalation:<session>:<message>') so a retried turn enqueues it once"
        )
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
        raise InvalidArgument(
            f"idempotency_key {key[:80]!r} is not usable as a header: at most {MAX_IDEMPOTENCY_KEY_CHARS} "
            "printable characters"
        )
    return NewHandoff(tenant_, session, agent_, url, request.payload_json, key)


@dataclass(frozen=True)
class HandoffClaim:
    """A validated ClaimHandoffsRequest."""

    tenant: str
    limit: int
    lease_seconds: int
    agents: tuple[str, ...]


def claim_handoffs(request: memory_pb2.ClaimHandoffsRequest) -> HandoffClaim:
    tenant_ = tenant(request.tenant)
    limit = _limit("limit", request.limit, default=DEFAULT_CLAIM, maximum=MAX_CLAIM)
    if not 0 <= request.lease_seconds <= MAX_LEASE_SECONDS:
        raise InvalidArgument(
            f"lease_seconds is {request.lease_seconds}; use 1 to {MAX_LEASE_SECONDS} (longer than one delivery "
            f"attempt may take), or 0 for {DEFAULT_LEASE_SECONDS}"
        )
    if not request.agents:
        raise InvalidArgument(
            "agents is required: name the SupportAgents whose hand-offs this dispatcher delivers (it signs them "
            "with their keys)"
        )
    names = tuple(agent(a) for a in request.agents)
    return HandoffClaim(tenant_, limit, request.lease_seconds or DEFAULT_LEASE_SECONDS, names)


@dataclass(frozen=True)
class HandoffOutcome:
    """A validated FinishHandoffRequest."""

    tenant: str
    handoff_id: uuid.UUID
    delivered: bool
    error: str
    retry_in_seconds: int


def finish_handoff(request: memory_pb2.FinishHandoffRequest) -> HandoffOutcome:
    tenant_ = tenant(request.tenant)
    handoff = required_uuid("handoff_id", request.handoff_id)
    if not 0 <= request.retry_in_seconds <= MAX_RETRY_SECONDS:
        raise InvalidArgument(
            f"retry_in_seconds is {request.retry_in_seconds}; use 1 to {MAX_RETRY_SECONDS} to try again later, "
            "or 0 to keep it as a dead letter"
        )
    if request.delivered and request.retry_in_seconds:
        raise InvalidArgument(
            f"retry_in_seconds is {request.retry_in_seconds} but delivered is true; a delivered hand-off is "
            "not retried — send 0"
        )
    # The error is diagnostic text (often an HTTP body): keep its start rather than refuse the outcome.
    return HandoffOutcome(
        tenant_, handoff, request.delivered, request.error[:MAX_ERROR_CHARS], request.retry_in_seconds
    )


@dataclass(frozen=True)
class HandoffQuery:
    """A validated ListHandoffsRequest; empty `states` means all."""

    tenant: str
    states: tuple[str, ...]
    session_id: uuid.UUID | None
    limit: int


def list_handoffs(request: memory_pb2.ListHandoffsRequest) -> HandoffQuery:
    return HandoffQuery(
        tenant(request.tenant),
        _enum_names("states", request.states, HANDOFF_STATE_NAMES, "HANDOFF_STATE"),
        uuid_field("session_id", request.session_id, required=False),
        _limit("limit", request.limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE),
    )


# Privacy and retention -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    """A validated ExportCustomerRequest or EraseCustomerRequest."""

    tenant: str
    customer_id: str


def customer(request: memory_pb2.ExportCustomerRequest | memory_pb2.EraseCustomerRequest) -> Customer:
    # Required: an empty id would match every anonymous session of the tenant.
    return Customer(tenant(request.tenant), customer_id(request.customer_id, required=True))


@dataclass(frozen=True)
class Retention:
    """A validated PurgeExpiredRequest."""

    tenant: str
    agent: str
    days: int


def purge_expired(request: memory_pb2.PurgeExpiredRequest) -> Retention:
    tenant_, agent_ = tenant(request.tenant), agent(request.agent)
    if not 1 <= request.retention_days <= MAX_RETENTION_DAYS:
        raise InvalidArgument(
            f"retention_days is {request.retention_days}; use 1 to {MAX_RETENTION_DAYS} "
            "(sessions idle for longer are deleted)"
        )
    return Retention(tenant_, agent_, request.retention_days)
