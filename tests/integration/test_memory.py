"""The memory service as a real process on real Postgres: idempotency, ordering, tenant isolation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import psycopg
import pytest

from concierge.common.grpcio import create_channel
from concierge.local.processes import ServiceProcess
from concierge.v1 import common_pb2, memory_pb2, memory_pb2_grpc

TENANT = "memtest-a"
OTHER = "memtest-b"


@pytest.fixture
async def memory(memory_service: ServiceProcess) -> AsyncIterator[Any]:
    async with create_channel(memory_service.address) as channel:
        yield memory_pb2_grpc.MemoryServiceStub(channel)


async def new_session(memory: Any, tenant: str = TENANT) -> str:
    reply = await memory.CreateSession(memory_pb2.CreateSessionRequest(tenant=tenant, agent="acme-support"), timeout=10)
    return str(reply.session.id)


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
