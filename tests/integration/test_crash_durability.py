"""SIGKILL the memory or the agent process mid-conversation: no acknowledged message is lost or doubled.

The tests run their own memory, agent and edge processes and restart a killed one on the same port,
so clients' gRPC channels reconnect by themselves; Postgres, retrieval and embedding are the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc
import httpx
import pytest
import websockets
from llm_server import LLMServer, Text

from concierge.common.grpcio import create_channel
from concierge.local.processes import ServiceProcess, free_port, start_service
from concierge.v1 import agent_pb2, agent_pb2_grpc, memory_pb2, memory_pb2_grpc

pytestmark = pytest.mark.usefixtures("acme_synced")

ROOT = Path(__file__).resolve().parents[2]
ACME_DIR = ROOT / "examples" / "acme"
TENANT = "acme"
EXTRACTIVE = "acme-support"
SCRIPTED = "acme-scripted"
SCRIPTED_MODEL = "crash-scripted"
QUESTION = "How much do I have to spend to get free delivery in the US?"
ANSWER = "Orders over $49 ship free within the contiguous US, and smaller orders pay a flat rate."
SEED = 20240611
# Waits for a condition that a healthy system reaches in well under a second; generous for slow CI.
DEADLINE_S = 60.0


# --- processes that can be killed and started again on the same port ----------------------------


@dataclass
class Restartable:
    """A service process of this module; `kill()` is SIGKILL, `restart()` brings it back on its port."""

    name: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    service: ServiceProcess | None = None
    kills: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.service = start_service(self.name, env=self.env, log_dir=self.log_dir, port=self.port)
        # wait_ready polls with time.sleep: off the event loop, so writers and relays keep running.
        await asyncio.to_thread(self.service.wait_ready)

    async def kill(self) -> None:
        assert self.service is not None
        os.kill(self.service.process.pid, signal.SIGKILL)
        await asyncio.to_thread(self.service.process.wait, 30)
        assert self.service.process.returncode == -signal.SIGKILL
        self.kills += 1

    async def restart(self) -> None:
        await self.kill()
        await self.start()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


class Relay:
    """A TCP relay from the agent to memory that can cut the agent off around its answer store.

    It watches the bytes the agent sends for the answer's client_message_id (`reply:<user message
    id>`; gRPC does not compress by default, so the protobuf field travels verbatim). Armed with
    `withhold`, that request never reaches memory; with `hold_replies`, memory gets it (and commits)
    but its replies never reach the agent. Either way `tripped` is set and the agent is then killed.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self.port = 0
        self.tripped = asyncio.Event()
        self._needle = b""
        self._mode: Literal["withhold", "hold_replies"] = "withhold"
        self._cut = self._holding = False
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        # Handlers end on their own once their sockets close; none is left for the loop to cancel.
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def arm(self, user_message_id: str, mode: Literal["withhold", "hold_replies"]) -> asyncio.Event:
        self._needle = f"reply:{user_message_id}".encode()
        self._mode = mode
        self.tripped = asyncio.Event()
        return self.tripped

    def disarm(self) -> None:
        """Pass everything again (for the restarted agent's new connections)."""
        self._needle = b""
        self._cut = self._holding = False

    async def _accept(self, agent_reader: asyncio.StreamReader, agent_writer: asyncio.StreamWriter) -> None:
        try:
            memory_reader, memory_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:  # memory is down: the agent's channel sees a closed connection and backs off
            agent_writer.close()
            return
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.update((agent_writer, memory_writer))
        pumps = [
            asyncio.create_task(self._to_memory(agent_reader, memory_writer)),
            asyncio.create_task(self._to_agent(memory_reader, agent_writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (agent_writer, memory_writer):
                writer.close()
                self._writers.discard(writer)
            self._handlers.discard(handler)

    async def _to_memory(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tail = b""
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                needle = self._needle
                if needle and not self.tripped.is_set() and needle in tail + data:
                    # Decided before the bytes move on, so memory's reply cannot slip past.
                    self._cut = self._mode == "withhold"
                    self._holding = self._mode == "hold_replies"
                    self.tripped.set()
                tail = (tail + data)[-max(len(needle), 1) :]
                if self._cut:
                    continue
                writer.write(data)
                await writer.drain()

    async def _to_agent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self._holding:
                    continue  # the agent is about to be killed; it never reads these
                writer.write(data)
                await writer.drain()


def scripted_agent_yaml(llm: LLMServer) -> str:
    doc = {
        "apiVersion": "concierge.dev/v1alpha1",
        "kind": "SupportAgent",
        "metadata": {"name": SCRIPTED, "namespace": TENANT},
        "spec": {
            "displayName": "Acme on a scripted model",
            "instructions": "You are Acme Support. Answer from the help center.",
            "model": {"provider": "openai-compatible", "model": SCRIPTED_MODEL, "endpoint": llm.base_url},
            "knowledgeBases": ["acme-help-center"],
        },
    }
    return json.dumps(doc)  # JSON is YAML


@pytest.fixture(scope="module")
def llm() -> Iterator[LLMServer]:
    with LLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def resources_dir(tmp_path_factory: pytest.TempPathFactory, llm: LLMServer) -> Path:
    """The Acme resources plus an agent on a scripted model, whose stream the test can stall."""
    folder = tmp_path_factory.mktemp("crash-resources")
    for name in ("knowledgebase.yaml", "supportagent.yaml", "escalationpolicy.yaml"):
        shutil.copy(ACME_DIR / name, folder / name)
    (folder / "scripted-agent.yaml").write_text(scripted_agent_yaml(llm))
    return folder


@pytest.fixture(scope="module")
async def memory_process(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> AsyncIterator[Restartable]:
    service = Restartable("memory", {"CONCIERGE_DATABASE_URL": postgres_url}, tmp_path_factory.mktemp("crash-logs"))
    await service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
async def relay(memory_process: Restartable) -> AsyncIterator[Relay]:
    relay = Relay(memory_process.port)
    await relay.start()
    yield relay
    await relay.close()


@pytest.fixture(scope="module")
async def agent_process(
    tmp_path_factory: pytest.TempPathFactory,
    resources_dir: Path,
    relay: Relay,
    retrieval_service: ServiceProcess,
    embedding_service: ServiceProcess,
) -> AsyncIterator[Restartable]:
    env = {
        "CONCIERGE_RETRIEVAL_ADDRESS": retrieval_service.address,
        "CONCIERGE_MEMORY_ADDRESS": relay.address,
        "CONCIERGE_EMBEDDING_ADDRESS": embedding_service.address,
        "CONCIERGE_RESOURCES_DIR": str(resources_dir),
    }
    service = Restartable("agent", env, tmp_path_factory.mktemp("crash-logs"))
    await service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
async def memory(memory_process: Restartable) -> AsyncIterator[Any]:
    async with create_channel(memory_process.address) as channel:
        yield memory_pb2_grpc.MemoryServiceStub(channel)


@pytest.fixture
async def agent(agent_process: Restartable) -> AsyncIterator[Any]:
    async with create_channel(agent_process.address) as channel:
        yield agent_pb2_grpc.AgentServiceStub(channel)


@pytest.fixture(autouse=True)
def fresh(llm: LLMServer, relay: Relay) -> None:
    llm.reset()
    relay.disarm()


# --- helpers -------------------------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll `check` until it returns something truthy (a condition with a deadline, not a sleep)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {DEADLINE_S:.0f}s: {what}")


async def new_session(memory: Any, agent_name: str) -> str:
    reply = await memory.CreateSession(
        memory_pb2.CreateSessionRequest(tenant=TENANT, agent=agent_name), timeout=10, wait_for_ready=True
    )
    return str(reply.session.id)


async def store_question(memory: Any, session_id: str, text: str = QUESTION) -> memory_pb2.Message:
    reply = await memory.AppendMessage(
        memory_pb2.AppendMessageRequest(
            tenant=TENANT,
            session_id=session_id,
            role=memory_pb2.ROLE_USER,
            text=text,
            client_message_id=str(uuid.uuid4()),
        ),
        timeout=10,
        wait_for_ready=True,
    )
    assert reply.created
    return reply.message


async def all_messages(memory: Any, session_id: str) -> list[memory_pb2.Message]:
    out: list[memory_pb2.Message] = []
    after = 0
    while True:
        page = await memory.ListMessages(
            memory_pb2.ListMessagesRequest(tenant=TENANT, session_id=session_id, after_seq=after, limit=200),
            timeout=10,
            wait_for_ready=True,
        )
        out.extend(page.messages)
        if not page.next_after_seq:
            return out
        after = page.next_after_seq


def chat_request(agent_name: str, session_id: str, question: memory_pb2.Message) -> agent_pb2.ChatRequest:
    return agent_pb2.ChatRequest(
        tenant=TENANT, agent=agent_name, session_id=session_id, user_message_id=question.id, text=question.text
    )


@dataclass
class Turn:
    events: list[agent_pb2.ChatResponse] = field(default_factory=list)
    failure: grpc.aio.AioRpcError | None = None

    def kinds(self) -> list[str]:
        return [str(e.WhichOneof("event")) for e in self.events]

    @property
    def done(self) -> agent_pb2.Done:
        assert self.kinds()[-1:] == ["done"], (self.kinds(), self.failure)
        return self.events[-1].done


async def run_turn(
    agent: Any, request: agent_pb2.ChatRequest, *, stop_after: Callable[[Turn], bool] | None = None
) -> Turn:
    """Read the turn's events (until `stop_after` says so); a failed call is kept, not raised."""
    turn = Turn()
    try:
        async for event in agent.Chat(request, timeout=DEADLINE_S, wait_for_ready=True):
            turn.events.append(event)
            if stop_after is not None and stop_after(turn):
                break
    except grpc.aio.AioRpcError as err:
        turn.failure = err
    return turn


async def kill_during(
    agent_process: Restartable, agent: Any, request: agent_pb2.ChatRequest, moment: Callable[[Turn], bool]
) -> Turn:
    """Run a turn and SIGKILL the agent at `moment` (checked after each event); the caller restarts it."""
    turn = Turn()
    reached = asyncio.Event()

    async def read() -> None:
        try:
            async for event in agent.Chat(request, timeout=DEADLINE_S, wait_for_ready=True):
                turn.events.append(event)
                if moment(turn):
                    reached.set()
        except grpc.aio.AioRpcError as err:
            turn.failure = err
        finally:
            reached.set()

    reader = asyncio.create_task(read())
    await asyncio.wait_for(reached.wait(), DEADLINE_S)
    await agent_process.kill()
    await asyncio.wait_for(reader, DEADLINE_S)
    return turn


def answers_to(messages: list[memory_pb2.Message], question: memory_pb2.Message) -> list[memory_pb2.Message]:
    return [m for m in messages if m.role == memory_pb2.ROLE_ASSISTANT and m.reply_to == question.id]


async def assert_answered_once_then_replayed(
    agent: Any, memory: Any, agent_name: str, session_id: str, question: memory_pb2.Message
) -> memory_pb2.Message:
    """After the crash: the question is stored once, a re-run stores one answer, a second re-run replays it."""
    before = await all_messages(memory, session_id)
    assert [m.id for m in before if m.role == memory_pb2.ROLE_USER] == [question.id]
    stored_before = answers_to(before, question)
    assert len(stored_before) <= 1

    rerun = await run_turn(agent, chat_request(agent_name, session_id, question))
    answer = rerun.done.message
    if stored_before:  # the answer was stored before the kill: the re-run replays it, it does not answer again
        assert answer == stored_before[0]
    again = await run_turn(agent, chat_request(agent_name, session_id, question))
    assert again.done.message == answer  # the same message id: a replay
    after = await all_messages(memory, session_id)
    assert [m.id for m in after] == [question.id, answer.id]
    assert [m.seq for m in after] == [1, 2]
    assert answer.reply_to == question.id
    return answer


# --- memory killed while customer messages are being written --------------------------------------


@dataclass
class WriteLog:
    """What the writers saw: every acknowledged message by client id, and the retries it took."""

    acked: dict[str, memory_pb2.Message] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # client id -> session id
    failed_attempts: Counter[str] = field(default_factory=Counter)  # gRPC status name -> count
    found_stored_on_resend: int = 0  # a retry answered created=false: stored before the lost ack
    in_flight: int = 0
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)


async def write_until_stopped(memory: Any, writer: int, session_id: str, log: WriteLog, stop: asyncio.Event) -> None:
    """Send customer messages one after another; retry each with the SAME client id until acknowledged."""
    n = 0
    while not stop.is_set():
        client_id = str(uuid.uuid4())
        log.sessions[client_id] = session_id
        request = memory_pb2.AppendMessageRequest(
            tenant=TENANT,
            session_id=session_id,
            role=memory_pb2.ROLE_USER,
            text=f"writer {writer} message {n}",
            client_message_id=client_id,
        )
        attempt = 0
        while True:
            attempt += 1
            log.in_flight += 1
            try:
                reply = await memory.AppendMessage(request, timeout=5, wait_for_ready=True)
            except grpc.aio.AioRpcError as err:
                log.failed_attempts[err.code().name] += 1
                continue
            finally:
                log.in_flight -= 1
            break
        # A first attempt always creates; a retry may find what an attempt before the crash committed.
        assert reply.created or attempt > 1, f"a new client id {client_id} was reported as a resend"
        log.found_stored_on_resend += not reply.created
        async with log.progress:
            log.acked[client_id] = reply.message
            log.progress.notify_all()
        n += 1


async def test_memory_killed_mid_conversation_loses_no_acknowledged_message(
    memory_process: Restartable, memory: Any
) -> None:
    rng = random.Random(SEED)
    writers, kills = 4, 5
    sessions = [await new_session(memory, EXTRACTIVE) for _ in range(2)]
    log = WriteLog()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(write_until_stopped(memory, w, sessions[w % len(sessions)], log, stop))
        for w in range(writers)
    ]

    async def acked_at_least(count: int) -> None:
        async with log.progress:
            await asyncio.wait_for(log.progress.wait_for(lambda: len(log.acked) >= count), DEADLINE_S)

    in_flight_at_kill = []
    try:
        for _ in range(kills):
            # A random point of the conversation; writes from every writer are in flight there.
            await acked_at_least(len(log.acked) + rng.randint(5, 60))
            in_flight_at_kill.append(log.in_flight)
            await memory_process.restart()
        await acked_at_least(len(log.acked) + 20)  # the writers got through to the restarted service
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    stored = {s: await all_messages(memory, s) for s in sessions}
    by_client_id = Counter(m.client_message_id for messages in stored.values() for m in messages)
    duplicates = sum(n - 1 for n in by_client_id.values())
    lost = [cid for cid in log.acked if by_client_id[cid] == 0]
    print(
        f"\ncrash durability (memory): {memory_process.kills} SIGKILLs with {in_flight_at_kill} writes in flight, "
        f"{writers} writers, {len(log.acked)} acknowledged, {sum(log.failed_attempts.values())} failed attempts "
        f"{dict(log.failed_attempts)}, {log.found_stored_on_resend} resends found already stored, "
        f"lost {len(lost)}, duplicates {duplicates}"
    )
    assert memory_process.kills >= kills
    assert lost == []
    assert duplicates == 0
    assert set(by_client_id) == set(log.acked)  # nothing stored that no writer had sent
    for session_id, messages in stored.items():
        assert [m.seq for m in messages] == list(range(1, len(messages) + 1)), f"seq gaps in {session_id}"
        for m in messages:
            # The ack named the stored row: same id, same seq, same session.
            ack = log.acked[m.client_message_id]
            assert (ack.id, ack.seq, ack.session_id) == (m.id, m.seq, session_id)
            assert log.sessions[m.client_message_id] == session_id

    # A client that never saw its acks resends everything: each is stored already, nothing doubles.
    for client_id, ack in log.acked.items():
        reply = await memory.AppendMessage(
            memory_pb2.AppendMessageRequest(
                tenant=TENANT,
                session_id=ack.session_id,
                role=memory_pb2.ROLE_USER,
                text=ack.text,
                client_message_id=client_id,
            ),
            timeout=10,
        )
        assert (reply.created, reply.message.id) == (False, ack.id)
    assert [len(await all_messages(memory, s)) for s in sessions] == [len(stored[s]) for s in sessions]


# --- agent killed mid-answer ----------------------------------------------------------------------


async def test_agent_killed_mid_answer_answers_the_stored_question_once(
    agent_process: Restartable, agent: Any, memory: Any, llm: LLMServer
) -> None:
    # The model streams a few words and then stalls until its client hangs up: the kill lands mid-answer.
    llm.script(SCRIPTED_MODEL, Text(ANSWER, stall_after_chunks=3, stall_seconds=DEADLINE_S), Text(ANSWER))
    session_id = await new_session(memory, SCRIPTED)
    question = await store_question(memory, session_id)

    turn = await kill_during(
        agent_process, agent, chat_request(SCRIPTED, session_id, question), lambda t: "text_delta" in t.kinds()
    )
    await agent_process.start()

    assert "text_delta" in turn.kinds()
    assert "done" not in turn.kinds()
    assert turn.failure is not None
    assert turn.failure.code() == grpc.StatusCode.UNAVAILABLE
    # Acknowledged before the turn, so still there; the half answer was never stored.
    assert [m.id for m in await all_messages(memory, session_id)] == [question.id]
    answer = await assert_answered_once_then_replayed(agent, memory, SCRIPTED, session_id, question)
    assert answer.text == ANSWER
    assert len(llm.requests(SCRIPTED_MODEL)) == 2  # the crashed turn and the re-run; the replay asked no model
    print(f"\ncrash durability (agent mid-answer): killed after {turn.kinds()}, 1 answer stored, replayed")


async def test_agent_killed_before_its_answer_reached_memory_answers_once(
    agent_process: Restartable, agent: Any, memory: Any, relay: Relay
) -> None:
    session_id = await new_session(memory, EXTRACTIVE)
    question = await store_question(memory, session_id)
    tripped = relay.arm(question.id, "withhold")

    reader = asyncio.create_task(run_turn(agent, chat_request(EXTRACTIVE, session_id, question)))
    await asyncio.wait_for(tripped.wait(), DEADLINE_S)
    await agent_process.kill()  # the answer's AppendMessage is on its way and never reaches memory
    turn = await asyncio.wait_for(reader, DEADLINE_S)
    relay.disarm()
    await agent_process.start()

    assert "done" not in turn.kinds()
    assert [m.id for m in await all_messages(memory, session_id)] == [question.id]
    answer = await assert_answered_once_then_replayed(agent, memory, EXTRACTIVE, session_id, question)
    assert "$49" in answer.text
    print(f"\ncrash durability (agent storing its answer): killed after {len(turn.events)} events, 1 answer")


async def test_agent_killed_after_its_answer_was_stored_replays_it(
    agent_process: Restartable, agent: Any, memory: Any, relay: Relay
) -> None:
    session_id = await new_session(memory, EXTRACTIVE)
    question = await store_question(memory, session_id)
    tripped = relay.arm(question.id, "hold_replies")

    async def answer_committed() -> list[memory_pb2.Message]:
        return answers_to(await all_messages(memory, session_id), question) if tripped.is_set() else []

    reader = asyncio.create_task(run_turn(agent, chat_request(EXTRACTIVE, session_id, question)))
    (stored,) = await eventually(answer_committed, "the agent's answer committed by memory")
    await agent_process.kill()  # memory committed the answer; the agent never heard back
    turn = await asyncio.wait_for(reader, DEADLINE_S)
    relay.disarm()
    await agent_process.start()

    assert "done" not in turn.kinds()
    answer = await assert_answered_once_then_replayed(agent, memory, EXTRACTIVE, session_id, question)
    assert answer == stored
    print("\ncrash durability (agent after its answer was stored): answer replayed with the same id")


async def test_agent_killed_at_random_points_of_a_turn_stores_one_answer(
    agent_process: Restartable, agent: Any, memory: Any
) -> None:
    rng = random.Random(SEED + 1)
    outcomes = []
    for _ in range(2):
        session_id = await new_session(memory, EXTRACTIVE)
        question = await store_question(memory, session_id)
        # An extractive turn is about a dozen events (tool calls, text, citations, done); the agent
        # may outrun the kill, so either outcome can happen: the answer stored or not.
        kill_after = rng.randint(1, 12)
        turn = await kill_during(
            agent_process,
            agent,
            chat_request(EXTRACTIVE, session_id, question),
            lambda t, k=kill_after: len(t.events) >= k,
        )
        await agent_process.start()
        stored_before = answers_to(await all_messages(memory, session_id), question)
        await assert_answered_once_then_replayed(agent, memory, EXTRACTIVE, session_id, question)
        outcomes.append(f"after {len(turn.events)} events: {'stored' if stored_before else 'not stored'}")
    print(f"\ncrash durability (agent at random points): {outcomes}; each question answered once")


# --- through the edge: the customer resends after the crash --------------------------------------


@pytest.fixture(scope="module")
async def edge_process(
    tmp_path_factory: pytest.TempPathFactory,
    resources_dir: Path,
    agent_process: Restartable,
    memory_process: Restartable,
) -> AsyncIterator[Restartable]:
    env = {
        "CONCIERGE_AGENT_ADDRESS": agent_process.address,
        "CONCIERGE_MEMORY_ADDRESS": memory_process.address,
        "CONCIERGE_RESOURCES_DIR": str(resources_dir),
        "CONCIERGE_DEFAULT_TENANT": TENANT,
    }
    service = Restartable("edge", env, tmp_path_factory.mktemp("crash-logs"))
    await service.start()
    try:
        yield service
    finally:
        service.stop()


async def edge_ready(api: httpx.AsyncClient) -> bool:
    return (await api.get("/readyz")).status_code == 200


async def next_frame(ws: Any, *types: str) -> dict[str, Any]:
    """The next frame of one of `types`, skipping the others."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE_S))
        if frame["type"] in types:
            return frame


async def test_customer_resend_after_an_agent_crash_is_stored_once_and_answered_once(
    edge_process: Restartable, agent_process: Restartable, memory: Any, llm: LLMServer
) -> None:
    llm.script(SCRIPTED_MODEL, Text(ANSWER, stall_after_chunks=3, stall_seconds=DEADLINE_S), Text(ANSWER))
    async with httpx.AsyncClient(base_url=edge_process.url, timeout=30) as api:
        await customer_resends_after_a_crash(api, edge_process, agent_process, memory, llm)


async def customer_resends_after_a_crash(
    api: httpx.AsyncClient, edge_process: Restartable, agent_process: Restartable, memory: Any, llm: LLMServer
) -> None:
    created = await api.post("/api/v1/sessions", json={"agent": SCRIPTED})
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    frame = {"type": "user_message", "clientMessageId": str(uuid.uuid4()), "text": QUESTION}
    url = f"ws://127.0.0.1:{edge_process.port}/api/v1/sessions/{session_id}/stream"

    async with websockets.connect(url) as ws:
        await ws.send(json.dumps(frame))
        ack = await next_frame(ws, "ack")
        assert ack["created"] is True
        question_id = ack["message"]["id"]
        await next_frame(ws, "text_delta")
        await agent_process.kill()
        cut = await next_frame(ws, "error", "done")
        assert (cut["type"], cut["replyTo"]) == ("error", question_id), cut
        await agent_process.start()

        # The customer tries again once the edge reports the agent reachable (its channel to the
        # restarted agent reconnects with backoff; until then a try ends in an `unavailable` error).
        resends = 0
        while True:
            await eventually(lambda: edge_ready(api), "the edge reaching the restarted agent")
            resends += 1
            await ws.send(json.dumps(frame))
            again = await next_frame(ws, "ack")
            assert (again["created"], again["message"]["id"]) == (False, question_id)
            outcome = await next_frame(ws, "done", "error")
            if outcome["type"] == "done":
                break
            assert resends < 5, outcome
        answer = outcome["message"]

        # One more resend (an ack lost after the answer): the stored answer is replayed, not re-asked.
        await ws.send(json.dumps(frame))
        assert (await next_frame(ws, "ack"))["created"] is False
        replay = await next_frame(ws, "done", "error")
        assert (replay["type"], replay["message"]["id"]) == ("done", answer["id"]), replay

    stored = await all_messages(memory, session_id)
    assert [(m.role, m.id) for m in stored] == [
        (memory_pb2.ROLE_USER, question_id),
        (memory_pb2.ROLE_ASSISTANT, answer["id"]),
    ]
    assert (stored[1].text, stored[1].reply_to) == (ANSWER, question_id)
    assert len(llm.requests(SCRIPTED_MODEL)) == 2
    print(f"\ncrash durability (edge): agent killed mid-stream, {resends} resends, 1 user message, 1 answer")
