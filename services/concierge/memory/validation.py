"""Checks memory requests before they reach the database and says exactly what is wrong.

Pure functions: each takes a request message and returns the validated values or raises InvalidArgument.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from google.protobuf.json_format import MessageToDict

from concierge.v1 import memory_pb2

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_CLIENT_MESSAGE_ID_CHARS = 200
MAX_CITATIONS = 100
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

ROLE_NAMES: dict[int, str] = {
    memory_pb2.ROLE_USER: "user",
    memory_pb2.ROLE_ASSISTANT: "assistant",
    memory_pb2.ROLE_SYSTEM: "system",
}
ROLE_VALUES: dict[str, int] = {name: value for value, name in ROLE_NAMES.items()}


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


def session_id(value: str) -> uuid.UUID:
    parsed = uuid_field("session_id", value)
    assert parsed is not None  # required=True never returns None
    return parsed


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


def append_message(request: memory_pb2.AppendMessageRequest, *, max_chars: int) -> NewMessage:
    tenant_ = tenant(request.tenant)
    session = session_id(request.session_id)
    if request.role not in ROLE_NAMES:
        raise InvalidArgument(f"role {request.role} is not allowed: set ROLE_USER, ROLE_ASSISTANT or ROLE_SYSTEM")
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
        role=ROLE_NAMES[request.role],
        text=request.text,
        client_message_id=request.client_message_id,
        reply_to=reply_to,
        citations=[MessageToDict(c, preserving_proto_field_name=True) for c in request.citations],
    )


@dataclass(frozen=True)
class Page:
    """A validated ListMessagesRequest."""

    tenant: str
    session_id: uuid.UUID
    after_seq: int
    limit: int


def list_messages(request: memory_pb2.ListMessagesRequest) -> Page:
    if request.after_seq < 0:
        raise InvalidArgument(
            f"after_seq is {request.after_seq}; it must be 0 (from the start) or a seq returned earlier"
        )
    if request.limit < 0:
        raise InvalidArgument(f"limit is {request.limit}; use 1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}")
    # Larger pages are coerced rather than refused, as Google's AIP-158 recommends for page sizes.
    limit = min(request.limit or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return Page(tenant(request.tenant), session_id(request.session_id), request.after_seq, limit)
