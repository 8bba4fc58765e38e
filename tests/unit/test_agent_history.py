"""Finding the turn being answered in a session's messages and shaping history for the model."""

from __future__ import annotations

from concierge.agent.history import find_turn, reply_client_id, to_messages
from concierge.v1 import memory_pb2

USER, ASSISTANT, SYSTEM = memory_pb2.ROLE_USER, memory_pb2.ROLE_ASSISTANT, memory_pb2.ROLE_SYSTEM


def message(id: str, role: int, text: str, client_id: str = "") -> memory_pb2.Message:
    return memory_pb2.Message(id=id, role=role, text=text, client_message_id=client_id or id)  # type: ignore[arg-type]


SESSION = [
    message("m1", USER, "Hi"),
    message("m2", ASSISTANT, "Hello! How can I help?", reply_client_id("m1")),
    message("m3", SYSTEM, "escalation check passed"),
    message("m4", USER, "How long is the warranty?"),
]


def test_the_turn_is_the_user_message_with_everything_before_it() -> None:
    turn = find_turn(SESSION, "m4")
    assert turn.question is not None
    assert turn.question.text == "How long is the warranty?"
    assert [m.id for m in turn.earlier] == ["m1", "m2", "m3"]
    assert turn.stored_reply is None


def test_an_already_answered_turn_finds_its_stored_reply() -> None:
    turn = find_turn(SESSION, "m1")
    assert turn.stored_reply is not None
    assert turn.stored_reply.id == "m2"


def test_an_unknown_message_has_no_question() -> None:
    assert find_turn(SESSION, "nope").question is None


def test_history_keeps_the_last_user_and_assistant_messages_only() -> None:
    earlier = find_turn(SESSION, "m4").earlier
    assert [(m.role, m.text) for m in to_messages(earlier, 20)] == [
        ("user", "Hi"),
        ("assistant", "Hello! How can I help?"),
    ]
    assert [m.text for m in to_messages(earlier, 1)] == ["Hello! How can I help?"]
    assert to_messages(earlier, 0) == []
