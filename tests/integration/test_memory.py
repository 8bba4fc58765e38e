"""The memory service as a real process on real Postgres: idempotency, ordering, tenant isolation,
hand-over to humans, facts, attachments, the hand-off outbox, export, erasure and retention."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import grpc
import psycopg
import pytest
from psycopg import sql

from concierge.db import MIGRATIONS_DIR, migration_files
from concierge.v1 import common_pb2, memory_pb2

TENANT = "memtest-a"
OTHER = "memtest-b"


async def new_session(memory: Any, tenant: str = TENANT, *, agent: str = "acme-support", customer_id: str = "") -> str:
    reply = await memory.CreateSession(
        memory_pb2.CreateSessionRequest(tenant=tenant, agent=agent, customer_id=customer_id), timeout=10
    )
    return str(reply.session.id)


def unique(prefix: str) -> str:
    """A fresh tenant or agent name, so a test sees only its own rows (the database is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def superuser(postgres_url: str, query: str | sql.Composed, params: Any = None) -> list[tuple[Any, ...]]:
    """Run `query` as the superuser (no row-level security): what is really stored, or a test's setup."""
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        cur = await conn.execute(query, params)
        return list(await cur.fetchall()) if cur.description else []


async def rpc_error(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


def user_message(session_id: str, text: str, client_id: str | None = None, tenant: str = TENANT) -> Any:
    return memory_pb2.AppendMessageRequest(
        tenant=tenant,
        session_id=session_id,
        role=memory_pb2.ROLE_USER,
        text=text,
        client_message_id=client_id or str(uuid.uuid4()),
    )


async def rows_of(postgres_url: str, session_id: str) -> list[tuple[int, str]]:
    # As the superuser: sees every row, so it proves what is really stored.
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute(
            "SELECT seq, client_message_id FROM messages WHERE session_id = %s ORDER BY seq", [session_id]
        )
        return [(int(r[0]), str(r[1])) for r in await cur.fetchall()]


async def test_created_session_can_be_read_back_by_its_tenant(memory: Any) -> None:
    session_id = await new_session(memory)
    reply = await memory.GetSession(memory_pb2.GetSessionRequest(tenant=TENANT, session_id=session_id), timeout=10)
    assert reply.session.id == session_id
    assert reply.session.tenant == TENANT
    assert reply.session.agent == "acme-support"
    assert reply.session.created_at.endswith("Z")


async def test_appended_message_is_committed_before_the_reply(memory: Any, postgres_url: str) -> None:
    session_id = await new_session(memory)
    reply = await memory.AppendMessage(user_message(session_id, "Where is my order?", "c-1"), timeout=10)
    assert reply.created
    assert reply.message.seq == 1
    assert reply.message.role == memory_pb2.ROLE_USER
    assert await rows_of(postgres_url, session_id) == [(1, "c-1")]


async def test_resend_with_same_client_message_id_returns_stored_message_and_adds_no_row(
    memory: Any, postgres_url: str
) -> None:
    session_id = await new_session(memory)
    first = await memory.AppendMessage(user_message(session_id, "Hello there", "same-id"), timeout=10)
    again = await memory.AppendMessage(user_message(session_id, "Hello there", "same-id"), timeout=10)
    assert first.created
    assert not again.created
    assert again.message == first.message
    assert await rows_of(postgres_url, session_id) == [(1, "same-id")]


async def test_concurrent_resends_store_exactly_one_row(memory: Any, postgres_url: str) -> None:
    session_id = await new_session(memory)
    replies = await asyncio.gather(
        *[memory.AppendMessage(user_message(session_id, "Is it charging?", "dup"), timeout=10) for _ in range(12)]
    )
    assert sum(r.created for r in replies) == 1
    assert len({r.message.id for r in replies}) == 1
    assert await rows_of(postgres_url, session_id) == [(1, "dup")]


async def test_concurrent_appends_get_gap_free_sequence_numbers(memory: Any) -> None:
    session_id = await new_session(memory)
    replies = await asyncio.gather(
        *[memory.AppendMessage(user_message(session_id, f"message {i}"), timeout=10) for i in range(30)]
    )
    assert sorted(r.message.seq for r in replies) == list(range(1, 31))


async def test_list_messages_pages_by_seq_oldest_first(memory: Any) -> None:
    session_id = await new_session(memory)
    for i in range(7):
        await memory.AppendMessage(user_message(session_id, f"message {i}"), timeout=10)
    seen: list[str] = []
    after = 0
    pages = 0
    while True:
        page = await memory.ListMessages(
            memory_pb2.ListMessagesRequest(tenant=TENANT, session_id=session_id, after_seq=after, limit=3), timeout=10
        )
        pages += 1
        seen.extend(m.text for m in page.messages)
        if page.next_after_seq == 0:
            break
        after = page.next_after_seq
    assert seen == [f"message {i}" for i in range(7)]
    assert pages == 3


async def test_list_messages_defaults_to_fifty_and_caps_at_two_hundred(memory: Any) -> None:
    session_id = await new_session(memory)
    await asyncio.gather(*[memory.AppendMessage(user_message(session_id, f"m{i}"), timeout=10) for i in range(210)])
    default = await memory.ListMessages(
        memory_pb2.ListMessagesRequest(tenant=TENANT, session_id=session_id), timeout=10
    )
    assert len(default.messages) == 50
    assert default.next_after_seq == 50
    capped = await memory.ListMessages(
        memory_pb2.ListMessagesRequest(tenant=TENANT, session_id=session_id, limit=1000), timeout=10
    )
    assert len(capped.messages) == 200
    assert capped.next_after_seq == 200


async def test_assistant_reply_keeps_citations_and_reply_to(memory: Any) -> None:
    session_id = await new_session(memory)
    question = await memory.AppendMessage(user_message(session_id, "How long does charging take?"), timeout=10)
    citation = common_pb2.Citation(
        index=1,
        knowledge_base="acme-help-center",
        document_title="Battery and Charging",
        section="Runtime and charging time",
        snippet="Full charge from empty: about 4 hours",
        chunk_id="chunk-1",
        score=0.5,
    )
    answer = await memory.AppendMessage(
        memory_pb2.AppendMessageRequest(
            tenant=TENANT,
            session_id=session_id,
            role=memory_pb2.ROLE_ASSISTANT,
            text="About 4 hours [1].",
            client_message_id=f"reply:{question.message.id}",
            reply_to=question.message.id,
            citations=[citation],
        ),
        timeout=10,
    )
    listed = await memory.ListMessages(memory_pb2.ListMessagesRequest(tenant=TENANT, session_id=session_id), timeout=10)
    assert [m.id for m in listed.messages] == [question.message.id, answer.message.id]
    stored = listed.messages[1]
    assert stored.reply_to == question.message.id
    assert list(stored.citations) == [citation]


async def test_reply_to_must_name_a_message_of_the_same_session(memory: Any) -> None:
    session_id = await new_session(memory)
    request = user_message(session_id, "hi")
    request.reply_to = str(uuid.uuid4())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await memory.AppendMessage(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a message of session" in (caught.value.details() or "")


async def test_session_of_another_tenant_is_indistinguishable_from_a_missing_one(memory: Any) -> None:
    session_id = await new_session(memory, TENANT)
    await memory.AppendMessage(user_message(session_id, "my secret order AC-1234"), timeout=10)
    missing = str(uuid.uuid4())

    async def details(call: Any) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        return caught.value.code(), caught.value.details() or ""

    for sid in (session_id, missing):
        calls = [
            memory.GetSession(memory_pb2.GetSessionRequest(tenant=OTHER, session_id=sid), timeout=10),
            memory.ListMessages(memory_pb2.ListMessagesRequest(tenant=OTHER, session_id=sid), timeout=10),
            memory.AppendMessage(user_message(sid, "let me in", tenant=OTHER), timeout=10),
        ]
        for call in calls:
            code, text = await details(call)
            assert code == grpc.StatusCode.NOT_FOUND
            assert text == f"session {sid} not found in namespace {OTHER!r}"


async def test_row_level_security_hides_and_refuses_other_tenants_rows(memory: Any, postgres_url: str) -> None:
    session_id = await new_session(memory, TENANT)
    await memory.AppendMessage(user_message(session_id, "hello"), timeout=10)
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        await conn.execute("SET ROLE concierge_app")
        # No tenant set at all: nothing is visible.
        cur = await conn.execute("SELECT count(*) FROM messages WHERE session_id = %s", [session_id])
        assert (await cur.fetchone()) == (0,)
        async with conn.transaction():
            await conn.execute("SELECT set_config('concierge.tenant', %s, true)", [OTHER])
            cur = await conn.execute("SELECT count(*) FROM sessions WHERE id = %s", [session_id])
            assert (await cur.fetchone()) == (0,)
        async with conn.transaction(force_rollback=True):
            await conn.execute("SELECT set_config('concierge.tenant', %s, true)", [OTHER])
            insert = conn.execute("INSERT INTO sessions (tenant, agent) VALUES (%s, 'x')", [TENANT])
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                await insert


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"text": "   "}, "text is empty"),
        ({"client_message_id": ""}, "client_message_id is required"),
        ({"text": "x" * 20_001}, "text is 20001 characters long; the limit is 20000 characters"),
        ({"session_id": "not-a-uuid"}, "session_id 'not-a-uuid' is not a valid UUID"),
        ({"role": memory_pb2.ROLE_UNSPECIFIED}, "role 0 is not allowed"),
        ({"tenant": ""}, "tenant is required"),
    ],
)
async def test_invalid_append_is_refused_with_a_precise_message(
    memory: Any, change: dict[str, Any], expected: str
) -> None:
    session_id = await new_session(memory)
    request = user_message(session_id, "fine text")
    for key, value in change.items():
        setattr(request, key, value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await memory.AppendMessage(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in (caught.value.details() or "")


# Sessions: customer, status, summary ------------------------------------------------------------


async def test_new_session_keeps_its_customer_and_starts_with_the_bot(memory: Any) -> None:
    reply = await memory.CreateSession(
        memory_pb2.CreateSessionRequest(tenant=TENANT, agent="acme-support", customer_id="cust-42"), timeout=10
    )
    session = reply.session
    assert session.customer_id == "cust-42"
    assert session.status == memory_pb2.SESSION_STATUS_BOT
    assert (session.handler, session.escalation_reason, session.escalated_at) == ("", "", "")
    assert (session.summary, session.summary_through_seq) == ("", 0)
    assert session.updated_at.endswith("Z")
    read = await memory.GetSession(memory_pb2.GetSessionRequest(tenant=TENANT, session_id=session.id), timeout=10)
    assert read.session == session


async def test_human_reply_keeps_its_author_and_assistant_reply_its_confidence(memory: Any) -> None:
    session_id = await new_session(memory)
    question = await memory.AppendMessage(user_message(session_id, "Is my vacuum under warranty?"), timeout=10)
    answer = memory_pb2.AppendMessageRequest(
        tenant=TENANT,
        session_id=session_id,
        role=memory_pb2.ROLE_ASSISTANT,
        text="Two years [1].",
        client_message_id="a-1",
        reply_to=question.message.id,
        confidence=0.75,
    )
    await memory.AppendMessage(answer, timeout=10)
    unsure = memory_pb2.AppendMessageRequest(
        tenant=TENANT, session_id=session_id, role=memory_pb2.ROLE_ASSISTANT, text="Hello!", client_message_id="a-2"
    )
    await memory.AppendMessage(unsure, timeout=10)
    human = memory_pb2.AppendMessageRequest(
        tenant=TENANT,
        session_id=session_id,
        role=memory_pb2.ROLE_HUMAN,
        text="Ana here, let me check your order.",
        client_message_id="h-1",
        author="Ana",
    )
    await memory.AppendMessage(human, timeout=10)
    listed = await memory.ListMessages(memory_pb2.ListMessagesRequest(tenant=TENANT, session_id=session_id), timeout=10)
    _, with_confidence, without_confidence, by_human = listed.messages
    assert with_confidence.HasField("confidence")
    assert with_confidence.confidence == 0.75
    assert not without_confidence.HasField("confidence")
    assert by_human.role == memory_pb2.ROLE_HUMAN
    assert by_human.author == "Ana"


async def test_append_bumps_updated_at_but_a_resend_changes_nothing(memory: Any, postgres_url: str) -> None:
    session_id = await new_session(memory)
    await superuser(postgres_url, "UPDATE sessions SET updated_at = '2020-01-01Z' WHERE id = %s", [session_id])
    await memory.AppendMessage(user_message(session_id, "Hello", "once"), timeout=10)
    after_append = (await memory.GetSession(memory_pb2.GetSessionRequest(tenant=TENANT, session_id=session_id))).session
    assert after_append.updated_at > "2020-01-02"
    await superuser(postgres_url, "UPDATE sessions SET updated_at = '2020-01-01Z' WHERE id = %s", [session_id])
    again = await memory.AppendMessage(user_message(session_id, "Hello", "once"), timeout=10)
    assert not again.created
    after_resend = (await memory.GetSession(memory_pb2.GetSessionRequest(tenant=TENANT, session_id=session_id))).session
    assert after_resend.updated_at == "2020-01-01T00:00:00Z"
    assert await rows_of(postgres_url, session_id) == [(1, "once")]


async def test_newest_returns_the_last_messages_oldest_first(memory: Any) -> None:
    session_id = await new_session(memory)
    for i in range(7):
        await memory.AppendMessage(user_message(session_id, f"message {i}"), timeout=10)

    async def newest(n: int, **paging: int) -> Any:
        request = memory_pb2.ListMessagesRequest(tenant=TENANT, session_id=session_id, newest=n, **paging)
        return await memory.ListMessages(request, timeout=10)

    last_three = await newest(3, after_seq=1, limit=1)  # paging fields are ignored with newest
    assert [m.text for m in last_three.messages] == ["message 4", "message 5", "message 6"]
    assert [m.seq for m in last_three.messages] == [5, 6, 7]
    assert last_three.next_after_seq == 0
    everything = await newest(100)
    assert [m.seq for m in everything.messages] == list(range(1, 8))
    assert everything.next_after_seq == 0


async def test_summary_only_moves_forward(memory: Any) -> None:
    session_id = await new_session(memory)
    for i in range(4):
        await memory.AppendMessage(user_message(session_id, f"message {i}"), timeout=10)

    async def summarise(text: str, through: int) -> Any:
        request = memory_pb2.UpdateSummaryRequest(
            tenant=TENANT, session_id=session_id, summary=text, through_seq=through
        )
        return (await memory.UpdateSummary(request, timeout=10)).session

    assert (await summarise("up to 3", 3)).summary == "up to 3"
    late = await summarise("up to 2 (finished late)", 2)
    assert (late.summary, late.summary_through_seq) == ("up to 3", 3)
    refined = await summarise("up to 3, refined", 3)
    assert (refined.summary, refined.summary_through_seq) == ("up to 3, refined", 3)
    read = await memory.GetSession(memory_pb2.GetSessionRequest(tenant=TENANT, session_id=session_id), timeout=10)
    assert read.session.summary == "up to 3, refined"
    code, details = await rpc_error(summarise("from the future", 9))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "through_seq 9 is past the last message" in details
    assert "(seq 4)" in details


def set_status(
    session_id: str,
    status: int,
    *,
    handler: str = "",
    reason: str = "",
    expect: tuple[int, ...] = (),
    tenant: str = TENANT,
) -> Any:
    return memory_pb2.SetSessionStatusRequest(
        tenant=tenant, session_id=session_id, status=status, handler=handler, reason=reason, expect=expect
    )


BOT, ESCALATED, HUMAN = (
    memory_pb2.SESSION_STATUS_BOT,
    memory_pb2.SESSION_STATUS_ESCALATED,
    memory_pb2.SESSION_STATUS_HUMAN,
)


async def test_status_moves_bot_escalated_human_and_back_by_compare_and_set(memory: Any) -> None:
    session_id = await new_session(memory)
    escalated = await memory.SetSessionStatus(
        set_status(session_id, ESCALATED, reason="customer asked for a human", expect=(BOT,)), timeout=10
    )
    assert escalated.changed
    assert escalated.session.status == ESCALATED
    assert escalated.session.escalation_reason == "customer asked for a human"
    first_escalated_at = escalated.session.escalated_at
    assert first_escalated_at.endswith("Z")

    again = await memory.SetSessionStatus(set_status(session_id, ESCALATED, reason="second rule fired"), timeout=10)
    assert not again.changed
    assert again.session.escalated_at == first_escalated_at
    assert again.session.escalation_reason == "customer asked for a human"

    taken = await memory.SetSessionStatus(set_status(session_id, HUMAN, handler="Ana", expect=(ESCALATED,)), timeout=10)
    assert taken.changed
    assert (taken.session.status, taken.session.handler) == (HUMAN, "Ana")
    assert taken.session.escalated_at == first_escalated_at
    assert taken.session.escalation_reason == "customer asked for a human"

    code, details = await rpc_error(
        memory.SetSessionStatus(set_status(session_id, HUMAN, handler="Bob", expect=(ESCALATED,)), timeout=10)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.startswith(f"session {session_id} is held by human agent 'Ana' (status HUMAN); expected ESCALATED")

    retried = await memory.SetSessionStatus(
        set_status(session_id, HUMAN, handler="Ana", expect=(ESCALATED,)), timeout=10
    )
    assert not retried.changed  # Ana's own retry after a lost reply is not a conflict

    handed_back = await memory.SetSessionStatus(
        set_status(session_id, ESCALATED, reason="Ana's shift ended"), timeout=10
    )
    assert handed_back.changed
    assert (handed_back.session.handler, handed_back.session.escalated_at) == ("", first_escalated_at)
    assert handed_back.session.escalation_reason == "Ana's shift ended"

    released = await memory.SetSessionStatus(set_status(session_id, BOT, expect=(ESCALATED, HUMAN)), timeout=10)
    assert released.changed
    assert released.session.status == BOT
    assert (released.session.handler, released.session.escalation_reason, released.session.escalated_at) == ("", "", "")
    code, details = await rpc_error(
        memory.SetSessionStatus(set_status(session_id, HUMAN, handler="Ana", expect=(ESCALATED,)), timeout=10)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "is answered by the bot (status BOT); expected ESCALATED" in details


async def test_two_concurrent_takeovers_exactly_one_wins(memory: Any) -> None:
    session_id = await new_session(memory)
    await memory.SetSessionStatus(set_status(session_id, ESCALATED, reason="angry customer"), timeout=10)
    handlers = [f"Agent {i}" for i in range(8)]
    results = await asyncio.gather(
        *[
            memory.SetSessionStatus(set_status(session_id, HUMAN, handler=h, expect=(ESCALATED,)), timeout=10)
            for h in handlers
        ],
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert len(losers) == len(handlers) - 1
    winner = winners[0].session.handler
    for lost in losers:
        assert lost.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"is held by human agent {winner!r} (status HUMAN); expected ESCALATED" in (lost.details() or "")
    read = await memory.GetSession(memory_pb2.GetSessionRequest(tenant=TENANT, session_id=session_id), timeout=10)
    assert read.session.handler == winner


async def test_inbox_lists_newest_escalation_first_and_filters_by_status_and_agent(memory: Any) -> None:
    agent = unique("inbox")
    first, second, held, idle = [await new_session(memory, agent=agent) for _ in range(4)]
    elsewhere = await new_session(memory, agent=unique("other-agent"))
    await memory.SetSessionStatus(set_status(first, ESCALATED, reason="r1"), timeout=10)
    await memory.SetSessionStatus(set_status(second, ESCALATED, reason="r2"), timeout=10)
    await memory.SetSessionStatus(set_status(held, HUMAN, handler="Ana"), timeout=10)
    await memory.SetSessionStatus(set_status(elsewhere, ESCALATED, reason="r3"), timeout=10)

    async def inbox(*statuses: int, limit: int = 0, tenant: str = TENANT) -> list[str]:
        request = memory_pb2.ListSessionsRequest(tenant=tenant, statuses=statuses, agent=agent, limit=limit)
        return [s.id for s in (await memory.ListSessions(request, timeout=10)).sessions]

    assert await inbox(ESCALATED, HUMAN) == [held, second, first]
    assert await inbox(ESCALATED) == [second, first]
    assert await inbox() == [held, second, first, idle]
    assert await inbox(ESCALATED, HUMAN, limit=2) == [held, second]
    assert await inbox(tenant=OTHER) == []
    everyone = await memory.ListSessions(
        memory_pb2.ListSessionsRequest(tenant=TENANT, statuses=[ESCALATED]), timeout=10
    )
    assert elsewhere in [s.id for s in everyone.sessions]


# Facts ---------------------------------------------------------------------------------------------


def fact(text: str, customer: str, session_id: str = "", tenant: str = TENANT) -> Any:
    return memory_pb2.RememberFactRequest(
        tenant=tenant, customer_id=customer, agent="acme-support", session_id=session_id, text=text
    )


async def test_a_restated_fact_is_stored_once_and_recalled_in_any_session(memory: Any, postgres_url: str) -> None:
    customer = unique("cust")
    monday, tuesday = await new_session(memory, customer_id=customer), await new_session(memory, customer_id=customer)
    owns = await memory.RememberFact(fact("Owns a Roomba S9", customer, monday), timeout=10)
    prefers = await memory.RememberFact(fact("Prefers e-mail over phone", customer, monday), timeout=10)
    restated = await memory.RememberFact(fact("  owns a   ROOMBA s9\n", customer, tuesday), timeout=10)
    assert owns.created
    assert prefers.created
    assert not restated.created
    assert restated.fact == owns.fact  # the first wording and session are kept
    assert owns.fact.session_id == monday
    recalled = await memory.RecallFacts(memory_pb2.RecallFactsRequest(tenant=TENANT, customer_id=customer), timeout=10)
    # Newest first, and restating a fact makes it recent again.
    assert [f.text for f in recalled.facts] == ["Owns a Roomba S9", "Prefers e-mail over phone"]
    one = await memory.RecallFacts(
        memory_pb2.RecallFactsRequest(tenant=TENANT, customer_id=customer, limit=1), timeout=10
    )
    assert [f.text for f in one.facts] == ["Owns a Roomba S9"]
    stored = await superuser(postgres_url, "SELECT count(*) FROM customer_facts WHERE customer_id = %s", [customer])
    assert stored == [(2,)]


async def test_concurrent_identical_facts_store_one_row(memory: Any, postgres_url: str) -> None:
    customer = unique("cust")
    replies = await asyncio.gather(
        *[memory.RememberFact(fact("Lives in Lyon", customer), timeout=10) for _ in range(8)]
    )
    assert sum(r.created for r in replies) == 1
    assert len({r.fact.id for r in replies}) == 1
    assert await superuser(postgres_url, "SELECT count(*) FROM customer_facts WHERE customer_id = %s", [customer]) == [
        (1,)
    ]


async def test_facts_of_one_tenant_are_invisible_to_another(memory: Any) -> None:
    customer = unique("cust")
    await memory.RememberFact(fact("Card ending 4242", customer), timeout=10)
    theirs = await memory.RecallFacts(memory_pb2.RecallFactsRequest(tenant=OTHER, customer_id=customer), timeout=10)
    assert list(theirs.facts) == []
    same_text = await memory.RememberFact(fact("Card ending 4242", customer, tenant=OTHER), timeout=10)
    assert same_text.created  # a separate fact of the other tenant, not a duplicate of ours
    ours = await memory.RecallFacts(memory_pb2.RecallFactsRequest(tenant=TENANT, customer_id=customer), timeout=10)
    assert [f.id for f in ours.facts] != [same_text.fact.id]
    assert len(ours.facts) == 1


# Attachments ---------------------------------------------------------------------------------------


def attachment(session_id: str, text: str, tenant: str = TENANT) -> Any:
    return memory_pb2.AddAttachmentRequest(
        tenant=tenant,
        session_id=session_id,
        filename="receipt.pdf",
        content_type="application/pdf",
        size_bytes=48_213,
        text=text,
        truncated=True,
    )


async def test_attachment_round_trips_and_stays_with_its_session_and_tenant(memory: Any) -> None:
    session_id = await new_session(memory)
    added = (await memory.AddAttachment(attachment(session_id, "Order AC-1234\nTotal: 499 EUR"), timeout=10)).attachment
    assert added.session_id == session_id
    assert added.created_at.endswith("Z")
    got = await memory.GetAttachment(
        memory_pb2.GetAttachmentRequest(tenant=TENANT, session_id=session_id, attachment_id=added.id), timeout=10
    )
    assert got.attachment == added
    assert (got.attachment.filename, got.attachment.size_bytes, got.attachment.truncated) == (
        "receipt.pdf",
        48_213,
        True,
    )
    assert got.attachment.text == "Order AC-1234\nTotal: 499 EUR"

    other_session = await new_session(memory)
    code, details = await rpc_error(
        memory.GetAttachment(
            memory_pb2.GetAttachmentRequest(tenant=TENANT, session_id=other_session, attachment_id=added.id), timeout=10
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    assert details == f"attachment {added.id} not found in session {other_session}"
    code, details = await rpc_error(
        memory.GetAttachment(
            memory_pb2.GetAttachmentRequest(tenant=OTHER, session_id=session_id, attachment_id=added.id), timeout=10
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    assert details == f"session {session_id} not found in namespace {OTHER!r}"
    code, _ = await rpc_error(memory.AddAttachment(attachment(session_id, "planted", tenant=OTHER), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND


# Hand-off outbox -----------------------------------------------------------------------------------


def handoff(session_id: str, key: str, tenant: str) -> Any:
    return memory_pb2.EnqueueHandoffRequest(
        tenant=tenant,
        session_id=session_id,
        agent="acme-support",
        url="https://hooks.example.com/concierge",
        # Odd spacing on purpose: the stored payload must be byte for byte what was sent (it is signed).
        payload_json=f'{{"type": "concierge.escalation",  "sessionId": "{session_id}"}}',
        idempotency_key=key,
    )


def claim(tenant: str, limit: int = 10, lease_seconds: int = 60, agent: str = "acme-support") -> Any:
    return memory_pb2.ClaimHandoffsRequest(tenant=tenant, agents=[agent], limit=limit, lease_seconds=lease_seconds)


def finish(tenant: str, handoff_id: str, *, delivered: bool = False, error: str = "", retry: int = 0) -> Any:
    return memory_pb2.FinishHandoffRequest(
        tenant=tenant, handoff_id=handoff_id, delivered=delivered, error=error, retry_in_seconds=retry
    )


async def test_enqueue_is_idempotent_on_its_key_and_keeps_the_exact_payload(memory: Any) -> None:
    tenant = unique("memtest")
    session_id = await new_session(memory, tenant)
    replies = await asyncio.gather(
        *[memory.EnqueueHandoff(handoff(session_id, "escalation:1", tenant), timeout=10) for _ in range(6)]
    )
    assert sum(r.created for r in replies) == 1
    assert len({r.handoff.id for r in replies}) == 1
    stored = replies[0].handoff
    assert stored.payload_json == handoff(session_id, "k", tenant).payload_json
    assert (stored.state, stored.attempts, stored.delivered_at) == (memory_pb2.HANDOFF_STATE_PENDING, 0, "")
    listed = await memory.ListHandoffs(memory_pb2.ListHandoffsRequest(tenant=tenant), timeout=10)
    assert [h.id for h in listed.handoffs] == [stored.id]


async def test_concurrent_claims_lease_disjoint_handoffs(memory: Any) -> None:
    tenant = unique("memtest")
    session_id = await new_session(memory, tenant)
    enqueued = {
        (await memory.EnqueueHandoff(handoff(session_id, f"k{i}", tenant), timeout=10)).handoff.id for i in range(12)
    }
    claims = await asyncio.gather(*[memory.ClaimHandoffs(claim(tenant, limit=5), timeout=10) for _ in range(4)])
    claimed = [h.id for c in claims for h in c.handoffs]
    assert len(claimed) == len(set(claimed)) == 12
    assert set(claimed) == enqueued
    assert all(h.attempts == 1 for c in claims for h in c.handoffs)
    assert list((await memory.ClaimHandoffs(claim(tenant), timeout=10)).handoffs) == []  # all leased
    other = await memory.ClaimHandoffs(claim(unique("memtest")), timeout=10)
    assert list(other.handoffs) == []


async def test_an_expired_lease_makes_the_handoff_claimable_again(memory: Any, postgres_url: str) -> None:
    tenant = unique("memtest")
    session_id = await new_session(memory, tenant)
    queued = (await memory.EnqueueHandoff(handoff(session_id, "k", tenant), timeout=10)).handoff
    assert [h.id for h in (await memory.ClaimHandoffs(claim(tenant), timeout=10)).handoffs] == [queued.id]
    # The dispatcher died holding the lease; let the lease run out without waiting for it.
    await superuser(
        postgres_url, "UPDATE handoffs SET lease_until = now() - interval '1 second' WHERE id = %s", [queued.id]
    )
    again = (await memory.ClaimHandoffs(claim(tenant), timeout=10)).handoffs
    assert [(h.id, h.attempts) for h in again] == [(queued.id, 2)]


async def test_failed_delivery_is_retried_later_then_dead_lettered(memory: Any, postgres_url: str) -> None:
    tenant = unique("memtest")
    session_id = await new_session(memory, tenant)
    queued = (await memory.EnqueueHandoff(handoff(session_id, "k", tenant), timeout=10)).handoff
    await memory.ClaimHandoffs(claim(tenant), timeout=10)
    retry = (await memory.FinishHandoff(finish(tenant, queued.id, error="HTTP 503", retry=120), timeout=10)).handoff
    assert (retry.state, retry.attempts, retry.last_error) == (memory_pb2.HANDOFF_STATE_PENDING, 1, "HTTP 503")
    assert retry.next_attempt_at > queued.next_attempt_at
    assert list((await memory.ClaimHandoffs(claim(tenant), timeout=10)).handoffs) == []  # not due yet

    await superuser(postgres_url, "UPDATE handoffs SET next_attempt_at = now() WHERE id = %s", [queued.id])
    second = (await memory.ClaimHandoffs(claim(tenant), timeout=10)).handoffs
    assert [(h.id, h.attempts) for h in second] == [(queued.id, 2)]
    dead = (await memory.FinishHandoff(finish(tenant, queued.id, error="HTTP 410"), timeout=10)).handoff
    assert (dead.state, dead.attempts, dead.last_error) == (memory_pb2.HANDOFF_STATE_DEAD, 2, "HTTP 410")
    await superuser(
        postgres_url, "UPDATE handoffs SET next_attempt_at = now() - interval '1 hour' WHERE id = %s", [queued.id]
    )
    assert list((await memory.ClaimHandoffs(claim(tenant), timeout=10)).handoffs) == []  # dead letters stay put
    letters = await memory.ListHandoffs(
        memory_pb2.ListHandoffsRequest(tenant=tenant, states=[memory_pb2.HANDOFF_STATE_DEAD]), timeout=10
    )
    assert [h.id for h in letters.handoffs] == [queued.id]


async def test_delivered_is_final_even_against_a_late_failure_report(memory: Any) -> None:
    tenant = unique("memtest")
    session_id = await new_session(memory, tenant)
    queued = (await memory.EnqueueHandoff(handoff(session_id, "k", tenant), timeout=10)).handoff
    await memory.ClaimHandoffs(claim(tenant), timeout=10)
    done = (await memory.FinishHandoff(finish(tenant, queued.id, delivered=True), timeout=10)).handoff
    assert done.state == memory_pb2.HANDOFF_STATE_DELIVERED
    assert done.delivered_at.endswith("Z")
    late = (await memory.FinishHandoff(finish(tenant, queued.id, error="timeout", retry=5), timeout=10)).handoff
    assert late == done
    by_session = await memory.ListHandoffs(
        memory_pb2.ListHandoffsRequest(
            tenant=tenant, session_id=session_id, states=[memory_pb2.HANDOFF_STATE_DELIVERED]
        ),
        timeout=10,
    )
    assert [h.id for h in by_session.handoffs] == [queued.id]


async def test_unknown_handoff_is_not_found_also_from_another_tenant(memory: Any) -> None:
    tenant = unique("memtest")
    session_id = await new_session(memory, tenant)
    queued = (await memory.EnqueueHandoff(handoff(session_id, "k", tenant), timeout=10)).handoff
    for who, handoff_id in ((tenant, str(uuid.uuid4())), (OTHER, queued.id)):
        code, details = await rpc_error(memory.FinishHandoff(finish(who, handoff_id, delivered=True), timeout=10))
        assert code == grpc.StatusCode.NOT_FOUND
        assert details == f"hand-off {handoff_id} not found in namespace {who!r}"
    code, _ = await rpc_error(memory.EnqueueHandoff(handoff(session_id, "k", OTHER), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND


# Export, erasure, retention ------------------------------------------------------------------------


async def customer_with_everything(memory: Any, tenant: str, customer: str, secret: str) -> list[str]:
    """Two sessions with messages, an attachment, facts (named and anonymous) and a hand-off."""
    sessions = [await new_session(memory, tenant, customer_id=customer) for _ in range(2)]
    for i, session_id in enumerate(sessions):
        await memory.AppendMessage(user_message(session_id, f"{secret} message {i}", tenant=tenant), timeout=10)
    await memory.AddAttachment(attachment(sessions[0], f"{secret} receipt", tenant=tenant), timeout=10)
    await memory.RememberFact(fact(f"{secret} likes blue", customer, sessions[0], tenant=tenant), timeout=10)
    await memory.RememberFact(fact(f"{secret} anonymous fact", f"session:{sessions[1]}", tenant=tenant), timeout=10)
    await memory.EnqueueHandoff(handoff(sessions[1], f"escalation:{secret}", tenant), timeout=10)
    return sessions


async def test_export_holds_everything_about_the_customer_and_nothing_else(memory: Any) -> None:
    tenant, customer, secret = unique("memtest"), unique("cust"), unique("secret")
    sessions = await customer_with_everything(memory, tenant, customer, secret)
    bystander = await new_session(memory, tenant, customer_id=unique("cust"))
    await memory.AppendMessage(user_message(bystander, "someone else's words", tenant=tenant), timeout=10)

    reply = await memory.ExportCustomer(
        memory_pb2.ExportCustomerRequest(tenant=tenant, customer_id=customer), timeout=10
    )
    assert (reply.sessions, reply.messages, reply.facts) == (2, 2, 2)
    document = json.loads(reply.export_json)
    assert (document["tenant"], document["customer_id"]) == (tenant, customer)
    assert [s["id"] for s in document["sessions"]] == sessions
    assert [m["text"] for s in document["sessions"] for m in s["messages"]] == [
        f"{secret} message 0",
        f"{secret} message 1",
    ]
    (receipt,) = document["sessions"][0]["attachments"]
    assert (receipt["filename"], receipt["text"]) == ("receipt.pdf", f"{secret} receipt")
    assert document["sessions"][1]["attachments"] == []
    assert sorted(f["text"] for f in document["facts"]) == [f"{secret} anonymous fact", f"{secret} likes blue"]
    (sent,) = document["handoffs"]
    assert sent["session_id"] == sessions[1]
    assert bystander not in reply.export_json
    assert "someone else's words" not in reply.export_json


async def test_erasure_leaves_no_row_anywhere_that_mentions_the_customer(memory: Any, postgres_url: str) -> None:
    tenant, customer, secret = unique("memtest"), unique("cust"), unique("secret")
    sessions = await customer_with_everything(memory, tenant, customer, secret)
    bystander = await new_session(memory, tenant, customer_id=unique("cust"))
    await memory.AppendMessage(user_message(bystander, "someone else's words", tenant=tenant), timeout=10)

    erased = await memory.EraseCustomer(
        memory_pb2.EraseCustomerRequest(tenant=tenant, customer_id=customer), timeout=10
    )
    assert (erased.sessions, erased.messages, erased.facts, erased.attachments, erased.handoffs) == (2, 2, 2, 1, 1)

    tables = await superuser(
        postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    assert {"sessions", "messages", "customer_facts", "attachments", "handoffs"} <= {t for (t,) in tables}
    for (table,) in tables:
        for marker in (customer, secret, *sessions):
            found = await superuser(
                postgres_url,
                sql.SQL("SELECT count(*) FROM {} AS t WHERE t::text LIKE %s").format(sql.Identifier(table)),
                [f"%{marker}%"],
            )
            assert found == [(0,)], f"{table} still mentions {marker!r}"

    kept = await memory.ListMessages(memory_pb2.ListMessagesRequest(tenant=tenant, session_id=bystander), timeout=10)
    assert [m.text for m in kept.messages] == ["someone else's words"]
    again = await memory.EraseCustomer(memory_pb2.EraseCustomerRequest(tenant=tenant, customer_id=customer), timeout=10)
    assert (again.sessions, again.messages, again.facts, again.attachments, again.handoffs) == (0, 0, 0, 0, 0)


async def test_erasure_is_scoped_to_the_tenant(memory: Any) -> None:
    customer = unique("cust")
    ours = await new_session(memory, TENANT, customer_id=customer)
    erased = await memory.EraseCustomer(memory_pb2.EraseCustomerRequest(tenant=OTHER, customer_id=customer), timeout=10)
    assert erased.sessions == 0
    read = await memory.GetSession(memory_pb2.GetSessionRequest(tenant=TENANT, session_id=ours), timeout=10)
    assert read.session.customer_id == customer


async def test_purge_deletes_only_the_agents_sessions_idle_past_retention(memory: Any, postgres_url: str) -> None:
    tenant, agent = unique("memtest"), unique("short-memory")
    stale, fresh = await new_session(memory, tenant, agent=agent), await new_session(memory, tenant, agent=agent)
    other_agents = await new_session(memory, tenant, agent="acme-support")
    for session_id in (stale, fresh, other_agents):
        await memory.AppendMessage(user_message(session_id, "hello", tenant=tenant), timeout=10)
    await memory.RememberFact(
        memory_pb2.RememberFactRequest(
            tenant=tenant, customer_id=f"session:{stale}", agent=agent, session_id=stale, text="anonymous but stale"
        ),
        timeout=10,
    )
    await superuser(
        postgres_url,
        "UPDATE sessions SET updated_at = now() - interval '31 days' WHERE id = ANY(%s)",
        [[uuid.UUID(stale), uuid.UUID(other_agents)]],
    )
    await superuser(postgres_url, "UPDATE sessions SET updated_at = now() - interval '29 days' WHERE id = %s", [fresh])

    purged = await memory.PurgeExpired(
        memory_pb2.PurgeExpiredRequest(tenant=tenant, agent=agent, retention_days=30), timeout=10
    )
    assert purged.sessions == 1
    code, _ = await rpc_error(memory.GetSession(memory_pb2.GetSessionRequest(tenant=tenant, session_id=stale)))
    assert code == grpc.StatusCode.NOT_FOUND
    assert await rows_of(postgres_url, stale) == []
    assert await superuser(postgres_url, "SELECT count(*) FROM customer_facts WHERE session_id = %s", [stale]) == [(0,)]
    for kept in (fresh, other_agents):
        assert len(await rows_of(postgres_url, kept)) == 1
    again = await memory.PurgeExpired(
        memory_pb2.PurgeExpiredRequest(tenant=tenant, agent=agent, retention_days=30), timeout=10
    )
    assert again.sessions == 0


async def test_every_tenant_table_forces_row_level_security(postgres_url: str) -> None:
    tables = await superuser(
        postgres_url,
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               has_table_privilege('concierge_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r'
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant')
        """,
    )
    new_tables = {"customer_facts", "attachments", "handoffs"}
    assert new_tables <= {t[0] for t in tables}
    for name, enabled, forced, granted in tables:
        assert (enabled, forced, granted) == (True, True, True), name


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("EraseCustomer", "customer_id is required"),
        ("ExportCustomer", "customer_id is required"),
        ("PurgeExpired", "retention_days is 0; use 1 to 3650"),
    ],
)
async def test_privacy_calls_refuse_to_match_everyone(memory: Any, call: str, expected: str) -> None:
    request = {
        "EraseCustomer": memory_pb2.EraseCustomerRequest(tenant=TENANT),
        "ExportCustomer": memory_pb2.ExportCustomerRequest(tenant=TENANT),
        "PurgeExpired": memory_pb2.PurgeExpiredRequest(tenant=TENANT, agent="acme-support"),
    }[call]
    code, details = await rpc_error(getattr(memory, call)(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in details


async def test_upgrade_backfills_activity_time_even_when_a_non_superuser_owner_migrates(postgres_url: str) -> None:
    # A database at 0007 with a conversation in it, whose tables belong to an ordinary role (as on
    # managed Postgres); 0008 must still see the rows that FORCE row-level security hides from owners.
    database, owner = unique("memupgrade").replace("-", "_"), "memupgrade_owner"
    await superuser(
        postgres_url,
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{owner}') THEN "
        f"CREATE ROLE {owner} NOLOGIN NOSUPERUSER NOBYPASSRLS; END IF; END $$",
    )
    await superuser(postgres_url, f"CREATE DATABASE {database}")
    url = psycopg.conninfo.make_conninfo(postgres_url, dbname=database)
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for path in migration_files():
                if path.stem < "0008":
                    await conn.execute(path.read_text())
            await conn.execute(f"GRANT CREATE ON SCHEMA public TO {owner}")
            for table in ("sessions", "messages"):
                await conn.execute(f"ALTER TABLE {table} OWNER TO {owner}")
            cur = await conn.execute(
                "INSERT INTO sessions (tenant, agent, created_at) VALUES ('acme', 'acme-support', '2024-01-01Z'), "
                "('acme', 'acme-support', '2024-02-01Z') RETURNING id"
            )
            talked, silent = [r[0] for r in await cur.fetchall()]
            await conn.execute(
                "INSERT INTO messages (tenant, session_id, seq, role, text, client_message_id, created_at) "
                "VALUES ('acme', %s, 1, 'user', 'hi', 'c1', '2024-01-05Z')",
                [talked],
            )
            await conn.execute(f"SET ROLE {owner}")
            async with conn.transaction():
                await conn.execute((MIGRATIONS_DIR / "0008_memory_features.sql").read_text())
            await conn.execute("RESET ROLE")
            cur = await conn.execute(
                "SELECT id, updated_at::date::text, status, force FROM sessions, "
                "(SELECT relforcerowsecurity AS force FROM pg_class WHERE relname = 'sessions') f"
            )
            found = {r[0]: r[1:] for r in await cur.fetchall()}
            assert found == {talked: ("2024-01-05", "bot", True), silent: ("2024-02-01", "bot", True)}
            with pytest.raises(psycopg.errors.CheckViolation, match="messages_author_iff_human"):
                await conn.execute(
                    "INSERT INTO messages (tenant, session_id, seq, role, text, client_message_id) "
                    "VALUES ('acme', %s, 2, 'human', 'hello', 'c2')",
                    [talked],
                )
    finally:
        await superuser(postgres_url, f"DROP DATABASE {database} WITH (FORCE)")


async def test_session_counts_customer_turns_once_per_stored_customer_message(memory: Any) -> None:
    session = (await memory.CreateSession(memory_pb2.CreateSessionRequest(tenant="turns", agent="a"))).session
    for i, role in enumerate([memory_pb2.ROLE_USER, memory_pb2.ROLE_ASSISTANT, memory_pb2.ROLE_USER]):
        request = memory_pb2.AppendMessageRequest(
            tenant="turns", session_id=session.id, role=role, text=f"m{i}", client_message_id=f"c{i}"
        )
        await memory.AppendMessage(request)
        if i == 2:
            await memory.AppendMessage(request)  # a resend is not a second turn
    found = await memory.GetSession(memory_pb2.GetSessionRequest(tenant="turns", session_id=session.id))
    assert found.session.customer_turns == 2


async def test_a_dispatcher_claims_only_the_hand_offs_of_its_own_agents(memory: Any) -> None:
    tenant = "handoff-agents"
    session = (await memory.CreateSession(memory_pb2.CreateSessionRequest(tenant=tenant, agent="acme-support"))).session
    await memory.EnqueueHandoff(handoff(session.id, "k-own", tenant))
    other = await memory.ClaimHandoffs(claim(tenant, agent="another-agent"))
    assert list(other.handoffs) == []  # it holds no signing key for acme-support
    own = await memory.ClaimHandoffs(claim(tenant))
    assert [h.idempotency_key for h in own.handoffs] == ["k-own"]


async def test_a_stale_hand_back_naming_another_holder_changes_nothing(memory: Any) -> None:
    tenant = "handback-race"
    session = (await memory.CreateSession(memory_pb2.CreateSessionRequest(tenant=tenant, agent="a"))).session

    def change(status: Any, handler: str = "", expect_handler: str = "") -> Any:
        return memory_pb2.SetSessionStatusRequest(
            tenant=tenant,
            session_id=session.id,
            status=status,
            handler=handler,
            expect_handler=expect_handler,
            expect=[memory_pb2.SESSION_STATUS_HUMAN] if status == memory_pb2.SESSION_STATUS_BOT else [],
        )

    await memory.SetSessionStatus(change(memory_pb2.SESSION_STATUS_HUMAN, handler="Bob"))
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await memory.SetSessionStatus(change(memory_pb2.SESSION_STATUS_BOT, expect_handler="Ana"))
    assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "held by human agent 'Bob'" in (stale.value.details() or "")
    back = await memory.SetSessionStatus(change(memory_pb2.SESSION_STATUS_BOT, expect_handler="Bob"))
    assert (back.changed, back.session.status) == (True, memory_pb2.SESSION_STATUS_BOT)
