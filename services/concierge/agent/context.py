"""What a turn knows about its conversation: the session, the newest messages, and a running summary.

Reads only the newest messages (two calls for any session length), and folds whatever slid out
of the prompt window into the session's summary before the model sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from concierge.agent import history, summary
from concierge.agent.escalation import TurnHistory, TurnSignal
from concierge.v1 import memory_pb2, memory_pb2_grpc

MAX_PAGE = 200
LAST_SEQ = 2**62  # beyond any message's seq: read_range(…, 0, LAST_SEQ) reads a whole session


@dataclass(frozen=True)
class Conversation:
    session: memory_pb2.Session
    turn: history.Turn
    # Messages before the question that the model reads in full (oldest first).
    recent: list[memory_pb2.Message]
    summary: str
    # Customer turns, oldest first, the question last: what the escalation rules look at.
    signals: TurnHistory

    @property
    def customer_texts(self) -> list[str]:
        return [s.text for s in self.signals]

    @property
    def notes(self) -> list[str]:
        """System notes (attachments, people joining) of the recent messages."""
        return [m.text for m in self.recent if m.role == memory_pb2.ROLE_SYSTEM]


def signals(messages: Sequence[memory_pb2.Message], question: memory_pb2.Message) -> list[TurnSignal]:
    """Each customer message up to the question with the retrieval confidence of the answer it got."""
    answered = {m.reply_to: m for m in messages if m.role == memory_pb2.ROLE_ASSISTANT and m.reply_to}
    out = []
    for m in messages:
        if m.role != memory_pb2.ROLE_USER or m.seq > question.seq:
            continue
        reply = answered.get(m.id)
        confidence = reply.confidence if reply is not None and reply.HasField("confidence") else None
        out.append(TurnSignal(text=m.text, confidence=None if m.id == question.id else confidence))
    return out


async def load(
    memory: memory_pb2_grpc.MemoryServiceAsyncStub,
    session: memory_pb2.Session,
    user_message_id: str,
    *,
    history_turns: int,
    signal_turns: int,
    rpc_timeout: float,
) -> Conversation:
    """The conversation around `user_message_id`; updates the stored summary when messages left the window."""
    tenant = session.tenant
    newest = min(MAX_PAGE, max(history_turns, 2 * signal_turns) + 2)
    page = await memory.ListMessages(
        memory_pb2.ListMessagesRequest(tenant=tenant, session_id=session.id, newest=newest), timeout=rpc_timeout
    )
    messages = list(page.messages)
    turn = history.find_turn(messages, user_message_id)
    if turn.question is None and len(messages) == newest:
        # An old message retried late: read the whole session once.
        messages = await read_all(memory, session, rpc_timeout)
        turn = history.find_turn(messages, user_message_id)
    if turn.question is None:
        return Conversation(session, turn, [], session.summary, TurnHistory([], session.customer_turns))
    earlier = turn.earlier
    recent = earlier[-history_turns:] if history_turns > 0 else []
    first_recent_seq = recent[0].seq if recent else turn.question.seq
    text = session.summary
    if first_recent_seq - 1 > session.summary_through_seq:
        in_window = [m for m in earlier if session.summary_through_seq < m.seq < first_recent_seq]
        missing_below = min((m.seq for m in in_window), default=first_recent_seq) - 1
        older = (
            await read_range(memory, session, session.summary_through_seq, missing_below, rpc_timeout)
            if missing_below > session.summary_through_seq
            else []
        )
        text = summary.extend(session.summary, [*older, *in_window])
        await memory.UpdateSummary(
            memory_pb2.UpdateSummaryRequest(
                tenant=tenant, session_id=session.id, summary=text, through_seq=first_recent_seq - 1
            ),
            timeout=rpc_timeout,
        )
    recent_signals = signals(messages, turn.question)
    # The stored count includes the question (its append came first); a window may hold fewer.
    return Conversation(session, turn, recent, text, TurnHistory(recent_signals, session.customer_turns))


async def read_range(
    memory: memory_pb2_grpc.MemoryServiceAsyncStub,
    session: memory_pb2.Session,
    after_seq: int,
    through_seq: int,
    rpc_timeout: float,
) -> list[memory_pb2.Message]:
    """Messages with after_seq < seq <= through_seq, oldest first."""
    out: list[memory_pb2.Message] = []
    while after_seq < through_seq:
        page = await memory.ListMessages(
            memory_pb2.ListMessagesRequest(
                tenant=session.tenant,
                session_id=session.id,
                after_seq=after_seq,
                limit=min(MAX_PAGE, through_seq - after_seq),
            ),
            timeout=rpc_timeout,
        )
        out.extend(m for m in page.messages if m.seq <= through_seq)
        if not page.messages or not page.next_after_seq:
            break
        after_seq = page.next_after_seq
    return out


async def read_all(
    memory: memory_pb2_grpc.MemoryServiceAsyncStub, session: memory_pb2.Session, rpc_timeout: float
) -> list[memory_pb2.Message]:
    return await read_range(memory, session, 0, LAST_SEQ, rpc_timeout)
