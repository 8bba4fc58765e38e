"""Memory request validation: what is refused, and that the message says why and how to fix it."""

from __future__ import annotations

import uuid

import pytest

from concierge.memory import validation
from concierge.memory.validation import InvalidArgument
from concierge.v1 import common_pb2, memory_pb2

SESSION = str(uuid.uuid4())


def request(**change: object) -> memory_pb2.AppendMessageRequest:
    r = memory_pb2.AppendMessageRequest(
        tenant="acme", session_id=SESSION, role=memory_pb2.ROLE_USER, text="Where is my order?", client_message_id="c1"
    )
    for key, value in change.items():
        if key == "citations":
            r.citations.extend(value)  # type: ignore[call-overload]  # repeated fields cannot be assigned
        else:
            setattr(r, key, value)
    return r


def test_valid_append_is_normalised() -> None:
    new = validation.append_message(
        request(citations=[common_pb2.Citation(index=1, chunk_id="k", score=0.5)]), max_chars=100
    )
    assert new.role == "user"
    assert new.session_id == uuid.UUID(SESSION)
    assert new.reply_to is None
    assert new.citations == [{"index": 1, "chunk_id": "k", "score": 0.5}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"text": ""}, "text is empty: a message needs at least one non-whitespace character"),
        ({"text": " \n\t"}, "text is empty"),
        ({"text": "x" * 101}, "text is 101 characters long; the limit is 100 characters"),
        ({"client_message_id": ""}, "client_message_id is required"),
        ({"client_message_id": "x" * 201}, "client_message_id is 201 characters long; the limit is 200"),
        ({"session_id": ""}, "session_id is required"),
        ({"session_id": "1234"}, "session_id '1234' is not a valid UUID"),
        ({"reply_to": "nope"}, "reply_to 'nope' is not a valid UUID"),
        ({"role": memory_pb2.ROLE_UNSPECIFIED}, "role 0 is not allowed: set ROLE_USER, ROLE_ASSISTANT or ROLE_SYSTEM"),
        ({"tenant": ""}, "tenant is required"),
        ({"tenant": "Acme_Corp"}, "tenant 'Acme_Corp' is not a valid namespace name"),
        ({"citations": [common_pb2.Citation(index=0)]}, "citations[0].index is 0"),
    ],
)
def test_invalid_append_names_the_field_and_the_fix(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.append_message(request(**change), max_chars=100)
    assert message in str(caught.value)


def test_text_exactly_at_the_limit_is_accepted() -> None:
    assert validation.append_message(request(text="x" * 100), max_chars=100).text == "x" * 100


def test_page_size_defaults_to_fifty_and_is_capped_at_two_hundred() -> None:
    def page(limit: int) -> int:
        r = memory_pb2.ListMessagesRequest(tenant="acme", session_id=SESSION, limit=limit)
        return validation.list_messages(r).limit

    assert page(0) == 50
    assert page(7) == 7
    assert page(5000) == 200


def test_negative_paging_values_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="after_seq is -1"):
        validation.list_messages(memory_pb2.ListMessagesRequest(tenant="acme", session_id=SESSION, after_seq=-1))
    with pytest.raises(InvalidArgument, match="limit is -5"):
        validation.list_messages(memory_pb2.ListMessagesRequest(tenant="acme", session_id=SESSION, limit=-5))


def test_create_session_needs_a_valid_agent_name() -> None:
    with pytest.raises(InvalidArgument, match="agent is required"):
        validation.agent("")
    with pytest.raises(InvalidArgument, match="not a valid SupportAgent name"):
        validation.agent("Acme Support")
