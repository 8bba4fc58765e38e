"""The edge's hand-off rules in process: who may take over, reply and hand back; when the bot answers.

The memory service is an in-process stand-in with the contract's compare-and-set semantics; the
integration test `tests/integration/test_edge_handoff.py` runs the same flow against the real one.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient

from concierge.api.routes import Route
from concierge.edge.app import Backend, create_app
from concierge.edge.hub import SessionHub
from concierge.edge.routes import Channels, Routes
from concierge.edge.schemas import SessionCreate, message_out, session_out
from concierge.edge.settings import EdgeSettings
from concierge.v1 import agent_pb2, memory_pb2

TENANT = "acme"


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class FakeMemory:
    """Sessions and messages in dicts, with the proto's semantics for status changes and resends."""

    def __init__(self) -> None:
        self.sessions: dict[str, memory_pb2.Session] = {}
        self.messages: dict[str, list[memory_pb2.Message]] = {}
        self.attachments: list[memory_pb2.AddAttachmentRequest] = []
        self._clock = itertools.count(1)

    def _now(self) -> str:
        return f"2030-01-01T00:00:{next(self._clock):02d}Z"

    def _session(self, tenant: str, session_id: str) -> memory_pb2.Session:
        session = self.sessions.get(session_id)
        if session is None or session.tenant != tenant:
            raise rpc_error(grpc.StatusCode.NOT_FOUND, f"session {session_id} not found")
        return session

    async def CreateSession(self, request: memory_pb2.CreateSessionRequest, **_: float) -> Any:
        now = self._now()
        session = memory_pb2.Session(
            id=str(uuid.uuid4()),
            tenant=request.tenant,
            agent=request.agent,
            customer_id=request.customer_id,
            status=memory_pb2.SESSION_STATUS_BOT,
            created_at=now,
            updated_at=now,
        )
        self.sessions[session.id] = session
        self.messages[session.id] = []
        return memory_pb2.CreateSessionResponse(session=session)

    async def GetSession(self, request: memory_pb2.GetSessionRequest, **_: float) -> Any:
        return memory_pb2.GetSessionResponse(session=self._session(request.tenant, request.session_id))

    async def AppendMessage(self, request: memory_pb2.AppendMessageRequest, **_: float) -> Any:
        self._session(request.tenant, request.session_id)
        stored = self.messages[request.session_id]
        for m in stored:
            if m.client_message_id == request.client_message_id:
                return memory_pb2.AppendMessageResponse(message=m, created=False)
        message = memory_pb2.Message(
            id=str(uuid.uuid4()),
            session_id=request.session_id,
            role=request.role,
            text=request.text,
            client_message_id=request.client_message_id,
            seq=len(stored) + 1,
            created_at=self._now(),
            author=request.author,
        )
        stored.append(message)
        return memory_pb2.AppendMessageResponse(message=message, created=True)

    async def SetSessionStatus(self, request: memory_pb2.SetSessionStatusRequest, **_: float) -> Any:
        session = self._session(request.tenant, request.session_id)
        if session.status == request.status and session.handler == request.handler:
            return memory_pb2.SetSessionStatusResponse(session=session, changed=False)
        if (request.expect and session.status not in request.expect) or (
            request.expect_handler and session.handler != request.expect_handler
        ):
            raise rpc_error(grpc.StatusCode.FAILED_PRECONDITION, f"session is {session.status}")
        session.status, session.handler, session.updated_at = request.status, request.handler, self._now()
        if request.status == memory_pb2.SESSION_STATUS_ESCALATED:
            session.escalation_reason, session.escalated_at = request.reason, session.updated_at
        return memory_pb2.SetSessionStatusResponse(session=session, changed=True)

    async def ListSessions(self, request: memory_pb2.ListSessionsRequest, **_: float) -> Any:
        found = [
            s
            for s in self.sessions.values()
            if s.tenant == request.tenant
            and (not request.statuses or s.status in request.statuses)
            and (not request.agent or s.agent == request.agent)
        ]
        found.sort(key=lambda s: s.escalated_at, reverse=True)
        return memory_pb2.ListSessionsResponse(sessions=found[: request.limit or 100])

    async def AddAttachment(self, request: memory_pb2.AddAttachmentRequest, **_: float) -> Any:
        self._session(request.tenant, request.session_id)
        self.attachments.append(request)
        attachment = memory_pb2.Attachment(
            id=str(uuid.uuid4()),
            session_id=request.session_id,
            filename=request.filename,
            content_type=request.content_type,
            size_bytes=request.size_bytes,
            text=request.text,
            truncated=request.truncated,
            created_at=self._now(),
        )
        return memory_pb2.AddAttachmentResponse(attachment=attachment)

    def escalate(self, session_id: str) -> None:
        session = self.sessions[session_id]
        session.status, session.escalation_reason = memory_pb2.SESSION_STATUS_ESCALATED, "customer asked for a human"
        session.escalated_at = session.updated_at = self._now()


class EchoAgent:
    """Answers every question at once with a stored assistant message."""

    def __init__(self, memory: FakeMemory) -> None:
        self.memory = memory
        self.asked: list[str] = []

    def Chat(self, request: agent_pb2.ChatRequest, timeout: float) -> AsyncIterator[agent_pb2.ChatResponse]:
        return self._answer(request)

    async def _answer(self, request: agent_pb2.ChatRequest) -> AsyncIterator[agent_pb2.ChatResponse]:
        self.asked.append(request.text)
        reply = await self.memory.AppendMessage(
            memory_pb2.AppendMessageRequest(
                tenant=request.tenant,
                session_id=request.session_id,
                role=memory_pb2.ROLE_ASSISTANT,
                text=f"answer to {request.text}",
                client_message_id=f"answer:{request.user_message_id}",
            ),
            timeout=1,
        )
        yield agent_pb2.ChatResponse(text_delta=agent_pb2.TextDelta(text=reply.message.text))
        yield agent_pb2.ChatResponse(done=agent_pb2.Done(message=reply.message))


class FakeBackend(Backend):
    fake_memory: FakeMemory
    fake_agent: EchoAgent

    def memory(self, tenant: str) -> Any:
        return self.fake_memory

    def agent(self, tenant: str, name: str) -> Any:
        return self.fake_agent


ROUTES = [
    Route(tenant=TENANT, name="acme-support", display_name="Acme", agent_address="x:1", memory_address="x:2"),
    Route(
        tenant=TENANT,
        name="acme-small",
        display_name="Small",
        agent_address="x:1",
        memory_address="x:2",
        attachments_max_bytes=2048,
    ),
    Route(
        tenant=TENANT,
        name="acme-locked",
        display_name="Locked",
        agent_address="x:1",
        memory_address="x:2",
        attachments_enabled=False,
    ),
]


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[TestClient, FakeMemory, EchoAgent]]:
    settings = EdgeSettings(routes_file=tmp_path / "routes.json", default_tenant=TENANT)
    app = create_app(settings)
    memory = FakeMemory()
    agent = EchoAgent(memory)
    backend = FakeBackend(settings=settings, routes=Routes(lambda: ROUTES), channels=Channels(), hub=SessionHub())
    backend.fake_memory, backend.fake_agent = memory, agent
    app.state.backend = backend  # no lifespan: the stand-ins replace the gRPC clients
    with TestClient(app, base_url="http://edge/api/v1") as client:
        app.state.backend = backend
        yield client, memory, agent


def new_session(client: TestClient, agent: str = "acme-support") -> str:
    reply = client.post("/sessions", json={"agent": agent, "customerId": "cust-7"})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


def say(client: TestClient, session_id: str, text: str) -> dict[str, Any]:
    reply = client.post(f"/sessions/{session_id}/messages", json={"clientMessageId": str(uuid.uuid4()), "text": text})
    assert reply.status_code == 202, reply.text
    body: dict[str, Any] = reply.json()
    return body


def roles(memory: FakeMemory, session_id: str) -> list[tuple[str, str]]:
    return [(message_out(m).role, m.text) for m in memory.messages[session_id]]


def wait_for(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        asyncio.run(asyncio.sleep(0.01))
    raise AssertionError("condition not met within 5 s")


def test_session_carries_customer_id_and_status(edge: tuple[TestClient, FakeMemory, EchoAgent]) -> None:
    client, memory, _ = edge
    session_id = new_session(client)
    body = client.get(f"/sessions/{session_id}").json()
    assert (body["customerId"], body["status"], body["handler"]) == ("cust-7", "bot", "")
    too_long = client.post("/sessions", json={"agent": "acme-support", "customerId": "c" * 201})
    assert too_long.status_code == 422
    assert memory.sessions[session_id].customer_id == "cust-7"


def test_full_takeover_reply_and_handback(edge: tuple[TestClient, FakeMemory, EchoAgent]) -> None:
    client, memory, agent = edge
    session_id = new_session(client)
    assert say(client, session_id, "hello")["sessionStatus"] == "bot"
    wait_for(lambda: agent.asked == ["hello"])
    memory.escalate(session_id)

    inbox = client.get("/inbox", params={"status": "escalated"}).json()["items"]
    assert [(s["id"], s["status"], s["escalationReason"]) for s in inbox] == [
        (session_id, "escalated", "customer asked for a human")
    ]
    waiting = say(client, session_id, "is anyone there?")
    assert waiting["sessionStatus"] == "escalated"

    taken = client.post(f"/sessions/{session_id}/takeover", json={"agentName": "Ana"})
    assert taken.status_code == 200, taken.text
    assert taken.json()["session"]["handler"] == "Ana"
    assert taken.json()["message"]["text"] == "Ana joined the conversation"
    again = client.post(f"/sessions/{session_id}/takeover", json={"agentName": "Ana"})
    assert (again.status_code, again.json()["changed"]) == (200, False)
    other = client.post(f"/sessions/{session_id}/takeover", json={"agentName": "Bob"})
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert "Ana is handling" in other.json()["detail"]
    assert other.json()["handler"] == "Ana"

    assert say(client, session_id, "my Sweepy beeps")["sessionStatus"] == "human"
    not_holder = client.post(
        f"/sessions/{session_id}/replies", json={"clientMessageId": str(uuid.uuid4()), "text": "hi", "agentName": "Bob"}
    )
    assert not_holder.status_code == 409
    assert "Ana" in not_holder.json()["detail"]
    body = {"clientMessageId": str(uuid.uuid4()), "text": "Hi, Ana here. Which error code?", "agentName": "Ana"}
    first = client.post(f"/sessions/{session_id}/replies", json=body)
    resent = client.post(f"/sessions/{session_id}/replies", json=body)
    assert (first.status_code, resent.status_code) == (201, 201)
    assert (first.json()["created"], resent.json()["created"]) == (True, False)
    assert first.json()["message"]["role"] == "human"
    assert first.json()["message"]["author"] == "Ana"

    assert client.post(f"/sessions/{session_id}/handback", json={"agentName": "Bob"}).status_code == 409
    back = client.post(f"/sessions/{session_id}/handback", json={"agentName": "Ana"})
    assert back.status_code == 200, back.text
    assert back.json()["session"]["status"] == "bot"
    assert back.json()["message"]["text"] == "Ana left; the assistant is back"
    assert client.post(f"/sessions/{session_id}/handback", json={"agentName": "Ana"}).json()["changed"] is False

    say(client, session_id, "thanks, one more question")
    wait_for(lambda: len(agent.asked) == 2)
    assert agent.asked == ["hello", "thanks, one more question"]
    wait_for(lambda: roles(memory, session_id)[-1][0] == "assistant")
    assert roles(memory, session_id) == [
        ("user", "hello"),
        ("assistant", "answer to hello"),
        ("user", "is anyone there?"),
        ("system", "Ana joined the conversation"),
        ("user", "my Sweepy beeps"),
        ("human", "Hi, Ana here. Which error code?"),
        ("system", "Ana left; the assistant is back"),
        ("user", "thanks, one more question"),
        ("assistant", "answer to thanks, one more question"),
    ]


def test_human_and_customer_see_each_others_messages_live(edge: tuple[TestClient, FakeMemory, EchoAgent]) -> None:
    client, memory, _ = edge
    session_id = new_session(client)
    memory.escalate(session_id)
    with (
        client.websocket_connect(f"/api/v1/sessions/{session_id}/stream") as customer,
        client.websocket_connect(f"/api/v1/sessions/{session_id}/stream") as human,
    ):
        client.post(f"/sessions/{session_id}/takeover", json={"agentName": "Ana"})
        for ws in (customer, human):
            joined = ws.receive_json()
            assert (joined["type"], joined["name"]) == ("human_joined", "Ana")
            assert joined["message"]["role"] == "system"
        customer.send_json({"type": "user_message", "clientMessageId": str(uuid.uuid4()), "text": "It says E42"})
        seen_by_human = human.receive_json()
        assert seen_by_human["type"] == "message"
        assert (seen_by_human["message"]["role"], seen_by_human["message"]["text"]) == ("user", "It says E42")
        ack = customer.receive_json()  # its own message comes back as the ack only
        assert (ack["type"], ack["sessionStatus"]) == ("ack", "human")
        client.post(
            f"/sessions/{session_id}/replies",
            json={"clientMessageId": str(uuid.uuid4()), "text": "Clean the brush.", "agentName": "Ana"},
        )
        reply = customer.receive_json()
        assert reply["type"] == "message"
        assert (reply["message"]["role"], reply["message"]["author"]) == ("human", "Ana")
        human.receive_json()  # its own reply
        client.post(f"/sessions/{session_id}/handback", json={"agentName": "Ana"})
        left = customer.receive_json()
        assert (left["type"], left["name"]) == ("human_left", "Ana")


def test_staff_names_are_one_line(edge: tuple[TestClient, FakeMemory, EchoAgent]) -> None:
    client, memory, _ = edge
    session_id = new_session(client)
    memory.escalate(session_id)
    for bad in ("", "   ", "Ana\nBob", "x" * 101):
        reply = client.post(f"/sessions/{session_id}/takeover", json={"agentName": bad})
        assert reply.status_code == 422, bad
        assert reply.json()["errors"][0]["field"] == "body.agentName"
    assert (
        client.post(f"/sessions/{session_id}/takeover", json={"agentName": "  Ana  "}).json()["session"]["handler"]
        == "Ana"
    )


def test_replies_need_a_session_taken_over(edge: tuple[TestClient, FakeMemory, EchoAgent]) -> None:
    client, memory, _ = edge
    session_id = new_session(client)
    memory.escalate(session_id)
    reply = client.post(
        f"/sessions/{session_id}/replies", json={"clientMessageId": str(uuid.uuid4()), "text": "hi", "agentName": "Ana"}
    )
    assert reply.status_code == 409
    assert "escalated, not held by a human agent" in reply.json()["detail"]
    assert client.post(f"/sessions/{session_id}/handback", json={"agentName": "Ana"}).status_code == 409


def test_upload_stores_text_and_tells_the_agent(edge: tuple[TestClient, FakeMemory, EchoAgent]) -> None:
    client, memory, _ = edge
    session_id = new_session(client)
    files = {"file": ("notes.md", b"# Error codes\n\nE42: the brush is stuck.", "text/markdown")}
    reply = client.post(f"/sessions/{session_id}/attachments", files=files)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["filename"], body["format"], body["truncated"], body["sizeBytes"]) == (
        "notes.md",
        "markdown",
        False,
        39,
    )
    assert memory.attachments[0].text.startswith("# Error codes")
    assert body["message"]["role"] == "system"
    assert (
        body["message"]["text"]
        == f'Customer attached "notes.md" (attachment {body["id"]}, Markdown, 39 characters of text).'
    )
    assert roles(memory, session_id)[-1] == ("system", body["message"]["text"])


@pytest.mark.parametrize(
    ("agent", "filename", "data", "status", "detail"),
    [
        ("acme-small", "big.txt", b"x" * 3000, 413, "at most 2,048 bytes"),
        ("acme-small", "huge.txt", b"x" * 200_000, 413, "at most 2,048 bytes"),
        ("acme-support", "photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 415, "cannot be read"),
        ("acme-support", "setup.txt", b"MZ\x90\x00\x03\x00\x00\x00", 415, "binary file"),
        ("acme-support", "fake.pdf", b"hello, not a pdf", 415, "PDF signature"),
        ("acme-support", "blank.txt", b"  \n\n ", 422, "no text found"),
        ("acme-support", "empty.txt", b"", 422, "is empty"),
        ("acme-locked", "notes.txt", b"hello", 403, "does not accept files"),
    ],
)
def test_upload_problems(
    edge: tuple[TestClient, FakeMemory, EchoAgent], agent: str, filename: str, data: bytes, status: int, detail: str
) -> None:
    client, memory, _ = edge
    session_id = new_session(client, agent)
    reply = client.post(f"/sessions/{session_id}/attachments", files={"file": (filename, data, "")})
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert detail in reply.json()["detail"]
    assert memory.attachments == []


def test_upload_needs_a_multipart_file_part(edge: tuple[TestClient, FakeMemory, EchoAgent]) -> None:
    client, _, _ = edge
    session_id = new_session(client)
    raw = client.post(f"/sessions/{session_id}/attachments", content=b"hello", headers={"content-type": "text/plain"})
    assert raw.status_code == 415
    no_file = client.post(f"/sessions/{session_id}/attachments", data={"name": "x"}, files={"other": ("a.txt", b"hi")})
    assert no_file.status_code == 422
    assert "`file`" in no_file.json()["detail"]


def test_session_out_maps_statuses_and_human_messages() -> None:
    session = memory_pb2.Session(id="s", status=memory_pb2.SESSION_STATUS_HUMAN, handler="Ana")
    assert (session_out(session).status, session_out(session).handler) == ("human", "Ana")
    assert session_out(memory_pb2.Session(id="old")).status == "bot"
    human = memory_pb2.Message(id="m", role=memory_pb2.ROLE_HUMAN, author="Ana", text="hi")
    assert (message_out(human).role, message_out(human).author) == ("human", "Ana")
    assert SessionCreate.model_validate({"agent": "a"}).customer_id == ""


async def test_a_frame_can_skip_the_socket_it_came_from() -> None:
    hub = SessionHub()
    with hub.subscribe("s") as sender, hub.subscribe("s") as watcher:
        hub.publish("s", {"type": "message", "message": {"id": "m1"}}, skip=sender.queue)
        assert sender.queue.empty()
        assert watcher.queue.get_nowait()["message"]["id"] == "m1"


def test_frames_of_no_answer_are_delivered_but_not_replayed() -> None:
    hub = SessionHub()
    with hub.subscribe("s") as sub:
        hub.publish("s", {"type": "message", "message": {"id": "m1"}})
        hub.publish("s", {"type": "human_joined", "name": "Ana"})
        assert [sub.queue.get_nowait()["type"] for _ in range(2)] == ["message", "human_joined"]
    assert not hub.in_flight("s")
    with hub.subscribe("s") as late:
        assert late.replay == []
