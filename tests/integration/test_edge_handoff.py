"""Hand-off to a human and attachments, through the real edge, memory and agent processes on loopback."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from documents import pdf_pages

from concierge.api.routes import Route, RouteTable
from concierge.local.processes import ServiceProcess, start_service
from concierge.v1 import memory_pb2

pytestmark = pytest.mark.usefixtures("acme_synced")
TENANT = "acme"
AGENT = "acme-support"


@pytest.fixture(scope="module")
def api(edge_service: ServiceProcess) -> httpx.Client:
    return httpx.Client(base_url=f"{edge_service.url}/api/v1", timeout=30)


def new_session(api: httpx.Client, agent: str = AGENT, customer_id: str = "") -> str:
    reply = api.post("/sessions", json={"agent": agent, "customerId": customer_id})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


class Socket:
    """A session's WebSocket and every frame it received, read up to the frame a test waits for."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def send_message(self, text: str) -> str:
        client_id = str(uuid.uuid4())
        await self.ws.send(json.dumps({"type": "user_message", "clientMessageId": client_id, "text": text}))
        return client_id

    async def until(self, kind: str, within: float = 60, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            except TimeoutError:
                break
            self.frames.append(frame)
            if frame["type"] == kind and all(_get(frame, k) == v for k, v in match.items()):
                return frame
        raise AssertionError(f"no {kind} frame {match} within {within}s; got {[f['type'] for f in self.frames]}")


def _get(frame: dict[str, Any], dotted: str) -> Any:
    value: Any = frame
    for part in dotted.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def stream_url(edge: ServiceProcess, session_id: str) -> str:
    return f"ws://{edge.host}:{edge.port}/api/v1/sessions/{session_id}/stream"


def messages_of(api: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(f"/sessions/{session_id}/messages", params={"limit": 200}).json()["items"]
    return items


async def test_a_human_takes_over_replies_live_and_hands_back_to_the_bot(
    edge_service: ServiceProcess, memory_service: ServiceProcess
) -> None:
    async with httpx.AsyncClient(base_url=f"{edge_service.url}/api/v1", timeout=30) as staff:
        created = await staff.post("/sessions", json={"agent": AGENT, "customerId": "cust-handoff-1"})
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        await take_over_reply_and_hand_back(staff, edge_service, memory_service, session_id)
        final = (await staff.get(f"/sessions/{session_id}/messages")).json()["items"]
    assert [(m["role"], m["author"]) for m in final] == [
        ("user", ""),  # asks for a person
        ("assistant", ""),  # the policy's hand-off message
        ("system", ""),
        ("user", ""),
        ("human", "Ana"),
        ("system", ""),
        ("user", ""),
        ("assistant", ""),
    ]


async def take_over_reply_and_hand_back(
    staff: httpx.AsyncClient, edge_service: ServiceProcess, memory_service: ServiceProcess, session_id: str
) -> None:
    async with (
        websockets.connect(stream_url(edge_service, session_id)) as customer_ws,
        websockets.connect(stream_url(edge_service, session_id)) as human_ws,
    ):
        customer, human = Socket(customer_ws), Socket(human_ws)
        # The customer asks for a person: the agent's EscalationPolicy (inbox) hands the session off.
        await customer.send_message("Could I talk to a real person, please?")
        handed_off = await customer.until("escalation")
        assert handed_off["message"].startswith("Thanks for your patience!")
        await customer.until("done")

        inbox = (await staff.get("/inbox", params={"status": "escalated", "agent": AGENT})).json()["items"]
        listed = next(s for s in inbox if s["id"] == session_id)
        assert (listed["status"], listed["customerId"], listed["handler"]) == ("escalated", "cust-handoff-1", "")
        assert "asked for a human" in listed["escalationReason"]
        assert listed["escalatedAt"]

        taken = await staff.post(f"/sessions/{session_id}/takeover", json={"agentName": "Ana"})
        assert taken.status_code == 200, taken.text
        assert (taken.json()["session"]["status"], taken.json()["session"]["handler"]) == ("human", "Ana")
        retried = await staff.post(f"/sessions/{session_id}/takeover", json={"agentName": "Ana"})
        assert (retried.status_code, retried.json()["changed"]) == (200, False)
        second = await staff.post(f"/sessions/{session_id}/takeover", json={"agentName": "Bob"})
        assert second.status_code == 409
        assert second.headers["content-type"] == "application/problem+json"
        assert "Ana" in second.json()["detail"]
        joined = await customer.until("human_joined")
        assert joined["name"] == "Ana"
        assert joined["message"]["text"] == "Ana joined the conversation"
        held = (await staff.get("/inbox", params={"status": "human"})).json()["items"]
        assert any(s["id"] == session_id and s["handler"] == "Ana" for s in held)

        client_id = await customer.send_message("My Sweepy shows error E42, what now?")
        ack = await customer.until("ack", message__clientMessageId=client_id)
        assert ack["sessionStatus"] == "human"
        question_id = ack["message"]["id"]
        seen = await human.until("message", message__id=question_id)
        assert seen["message"]["role"] == "user"

        reply = await staff.post(
            f"/sessions/{session_id}/replies",
            json={
                "clientMessageId": str(uuid.uuid4()),
                "text": "Hi, Ana here: please clean the brush.",
                "agentName": "Ana",
            },
        )
        assert reply.status_code == 201, reply.text
        from_human = await customer.until("message", message__role="human")
        assert (from_human["message"]["author"], from_human["message"]["text"]) == (
            "Ana",
            "Hi, Ana here: please clean the brush.",
        )
        stored = (await staff.get(f"/sessions/{session_id}/messages")).json()["items"]
        assert not [m for m in stored if m["role"] == "assistant" and m["replyTo"] == question_id], stored
        assert not [f for f in customer.frames if f.get("replyTo") == question_id], "the bot must stay silent"
        assert [m["role"] for m in stored] == ["user", "assistant", "system", "user", "human"]

        back = await staff.post(f"/sessions/{session_id}/handback", json={"agentName": "Ana"})
        assert back.status_code == 200, back.text
        assert back.json()["session"]["status"] == "bot"
        left = await customer.until("human_left")
        assert left["name"] == "Ana"

        client_id = await customer.send_message("How many days do I have to return my Sweepy?")
        ack = await customer.until("ack", message__clientMessageId=client_id)
        assert ack["sessionStatus"] == "bot"
        done = await customer.until("done", replyTo=ack["message"]["id"])
        assert "30 days" in done["message"]["text"]
        await human.until("done", replyTo=ack["message"]["id"])  # the human watching sees the bot's answer too


def test_a_reply_or_handback_by_someone_not_holding_the_session_is_refused(api: httpx.Client) -> None:
    session_id = new_session(api)
    body = {"clientMessageId": str(uuid.uuid4()), "text": "hello", "agentName": "Ana"}
    reply = api.post(f"/sessions/{session_id}/replies", json=body)
    assert reply.status_code == 409
    assert "not held by a human agent" in reply.json()["detail"]
    assert api.post(f"/sessions/{session_id}/handback", json={"agentName": "Ana"}).json()["changed"] is False
    missing = api.post(f"/sessions/{uuid.uuid4()}/takeover", json={"agentName": "Ana"})
    assert missing.status_code == 404


async def test_uploaded_pdf_is_read_and_announced_in_the_history(api: httpx.Client, memory: Any) -> None:
    session_id = new_session(api)
    pdf = pdf_pages("Sweepy S2 Pro manual. Error E42 means the main brush is blocked.", "Page two: cleaning.")
    reply = await asyncio.to_thread(
        api.post, f"/sessions/{session_id}/attachments", files={"file": ("manual.pdf", pdf, "application/pdf")}
    )
    assert reply.status_code == 201, reply.text
    attachment = reply.json()
    assert (attachment["filename"], attachment["format"], attachment["pages"]) == ("manual.pdf", "pdf", 2)
    assert attachment["sizeBytes"] == len(pdf)
    assert not attachment["truncated"]
    note = messages_of(api, session_id)[-1]
    assert note["role"] == "system"
    assert note["text"].startswith(f'Customer attached "manual.pdf" (attachment {attachment["id"]}, PDF, 2 pages')

    # Through the session's memory client: gRPC's asyncio channels must not be driven by a second loop.
    got = await memory.GetAttachment(
        memory_pb2.GetAttachmentRequest(tenant=TENANT, session_id=session_id, attachment_id=attachment["id"]),
        timeout=10,
    )
    assert "Error E42 means the main brush is blocked" in got.attachment.text


@pytest.mark.parametrize(
    ("filename", "data", "content_type"),
    [
        ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "image/png"),
        ("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + bytes(64), "application/octet-stream"),
    ],
)
def test_unsupported_files_are_refused_with_415(
    api: httpx.Client, filename: str, data: bytes, content_type: str
) -> None:
    session_id = new_session(api)
    reply = api.post(f"/sessions/{session_id}/attachments", files={"file": (filename, data, content_type)})
    assert reply.status_code == 415, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert "PDF, DOCX" in reply.json()["detail"]
    assert messages_of(api, session_id) == []


@pytest.fixture(scope="module")
def limited_edge(
    state_dir: Path, agent_service: ServiceProcess, memory_service: ServiceProcess
) -> Iterator[httpx.Client]:
    """An edge whose route table (as the operator publishes it) limits uploads to 4 KiB, and to none for one agent."""
    routes = state_dir / "routes-attachments" / "routes.json"
    routes.parent.mkdir(parents=True, exist_ok=True)
    common = {"tenant": TENANT, "agent_address": agent_service.address, "memory_address": memory_service.address}
    table = RouteTable(
        agents=[
            Route(name=AGENT, display_name="Acme Support", attachments_max_bytes=4096, **common),
            Route(name="acme-no-files", display_name="No files", attachments_enabled=False, **common),
        ]
    )
    routes.write_text(table.model_dump_json(by_alias=True))
    assert '"attachmentsMaxBytes":4096' in routes.read_text()
    edge = start_service("edge", env={"CONCIERGE_ROUTES_FILE": str(routes)}, log_dir=state_dir / "logs")
    try:
        edge.wait_ready()
        yield httpx.Client(base_url=f"{edge.url}/api/v1", headers={"X-Concierge-Tenant": TENANT}, timeout=30)
    finally:
        edge.stop()


def test_agent_limits_from_the_route_table_refuse_big_files_and_disabled_uploads(limited_edge: httpx.Client) -> None:
    agents = {a["name"]: a for a in limited_edge.get("/agents").json()["items"]}
    assert (agents[AGENT]["attachmentsEnabled"], agents[AGENT]["attachmentsMaxBytes"]) == (True, 4096)
    assert agents["acme-no-files"]["attachmentsEnabled"] is False

    session_id = new_session(limited_edge)
    small = limited_edge.post(
        f"/sessions/{session_id}/attachments", files={"file": ("ok.txt", b"E42: brush", "text/plain")}
    )
    assert small.status_code == 201, small.text
    for size in (5000, 200_000):  # read and counted; refused before reading by its Content-Length
        big = limited_edge.post(
            f"/sessions/{session_id}/attachments", files={"file": ("big.txt", b"x" * size, "text/plain")}
        )
        assert big.status_code == 413, big.text
        assert big.headers["content-type"] == "application/problem+json"
        assert "at most 4,096 bytes" in big.json()["detail"]

    locked = new_session(limited_edge, "acme-no-files")
    refused = limited_edge.post(f"/sessions/{locked}/attachments", files={"file": ("ok.txt", b"hello", "text/plain")})
    assert refused.status_code == 403
    assert "does not accept files" in refused.json()["detail"]
