"""Conversation history from memory, shaped for a model: the turn being answered and what came before.

Pure: splitting a session's messages around the user message and converting them to AF Messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent_framework import Message

from concierge.v1 import memory_pb2

REPLY_PREFIX = "reply:"


def reply_client_id(user_message_id: str) -> str:
    """The client_message_id of the answer to a user message: a retried turn stores it only once."""
    return f"{REPLY_PREFIX}{user_message_id}"


@dataclass(frozen=True)
class Turn:
    """The user message being answered, the messages before it, and a stored answer if one exists."""

    question: memory_pb2.Message | None
    earlier: list[memory_pb2.Message]
    stored_reply: memory_pb2.Message | None


def find_turn(messages: Sequence[memory_pb2.Message], user_message_id: str) -> Turn:
    """Locate `user_message_id` among a session's messages (oldest first)."""
    reply_id = reply_client_id(user_message_id)
    stored_reply = next((m for m in messages if m.client_message_id == reply_id), None)
    for position, message in enumerate(messages):
        if message.id == user_message_id:
            return Turn(message, list(messages[:position]), stored_reply)
    return Turn(None, list(messages), stored_reply)


def to_messages(earlier: Sequence[memory_pb2.Message], turns: int) -> list[Message]:
    """The last `turns` conversation messages as AF Messages; a human agent's replies read as the
    assistant side, labelled with their name. System notes are not replayed (the prompt lists them)."""
    if turns <= 0:
        return []
    roles = {memory_pb2.ROLE_USER: "user", memory_pb2.ROLE_ASSISTANT: "assistant", memory_pb2.ROLE_HUMAN: "assistant"}
    kept = [m for m in earlier if m.role in roles][-turns:]
    return [
        Message(
            role=roles[m.role],
            contents=[f"[Support agent {m.author}] {m.text}" if m.role == memory_pb2.ROLE_HUMAN else m.text],
        )
        for m in kept
    ]
