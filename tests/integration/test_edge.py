"""The edge against real memory, agent, retrieval and embedding processes on loopback."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from conftest import AGENT_METRICS_PORT

from concierge.api.routes import Route, RouteTable
from concierge.api.sync import SyncResult
from concierge.local.processes import ServiceProcess, start_service

pytestmark = pytest.mark.usefixtures("acme_synced")


@pytest.fixture(scope="module")
def api(edge_service: ServiceProcess) -> httpx.Client:
    return httpx.Client(base_url=f"{edge_service.url}/api/v1", timeout=30)


def new_session(api: httpx.Client) -> str:
    reply = api.post("/sessions", json={"agent": "acme-support"})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


async def ask_over_websocket(edge: ServiceProcess, session_id: str, text: str) -> list[dict[str, Any]]:
    """Send a user_message frame and collect frames until the answer is done."""
    frames: list[dict[str, Any]] = []
    url = f"ws://{edge.host}:{edge.port}/api/v1/sessions/{session_id}/stream"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "user_message", "clientMessageId": str(uuid.uuid4()), "text": text}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if frame["type"] in ("done", "error"):
                return frames
    raise AssertionError(f"no done frame within 60s; got {[f['type'] for f in frames]}")


def test_acme_sync_stored_every_document(acme_synced: SyncResult) -> None:
    assert acme_synced.documents >= 25
    assert acme_synced.errors == []
    assert acme_synced.chunks_total > acme_synced.documents


async def test_answer_streams_over_websocket_and_cites_the_returns_policy(
    api: httpx.Client, edge_service: ServiceProcess
) -> None:
    session_id = new_session(api)
    frames = await ask_over_websocket(edge_service, session_id, "How many days do I have to return my Sweepy?")
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "ack"
    assert kinds[-1] == "done", frames[-1]
    assert kinds.index("text_delta") < kinds.index("done")
    assert kinds.count("text_delta") > 1, "the answer should arrive in several pieces"
    answer = frames[-1]["message"]
    assert "30 days" in answer["text"]
    assert any(c["sourceUri"].endswith("returns.md") for c in answer["citations"])
    streamed = "".join(f["text"] for f in frames if f["type"] == "text_delta")
    assert streamed == answer["text"]


def test_resent_message_is_stored_once_and_answered_once(api: httpx.Client) -> None:
    session_id = new_session(api)
    body = {"clientMessageId": str(uuid.uuid4()), "text": "What does Care+ cost per month?"}
    first = api.post(f"/sessions/{session_id}/messages", json=body)
    again = api.post(f"/sessions/{session_id}/messages", json=body)
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["created"] is True
    assert again.json()["created"] is False
    assert again.json()["message"]["id"] == first.json()["message"]["id"]
    deadline = time.monotonic() + 60
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = api.get(f"/sessions/{session_id}/messages").json()["items"]
        if any(m["role"] == "assistant" for m in items):
            break
        time.sleep(0.2)
    assert [m["role"] for m in items] == ["user", "assistant"]
    assert items[1]["replyTo"] == first.json()["message"]["id"]


def test_messages_are_paged_oldest_first(api: httpx.Client) -> None:
    session_id = new_session(api)
    for i in range(3):
        api.post(f"/sessions/{session_id}/messages", json={"clientMessageId": str(uuid.uuid4()), "text": f"hello {i}"})
    page = api.get(f"/sessions/{session_id}/messages", params={"limit": 1}).json()
    assert page["items"][0]["text"] == "hello 0"
    assert page["nextAfter"] == page["items"][0]["seq"]
    following = api.get(f"/sessions/{session_id}/messages", params={"after": page["nextAfter"], "limit": 1}).json()
    assert following["items"][0]["seq"] > page["items"][0]["seq"]


def test_another_tenant_cannot_read_or_write_the_session(api: httpx.Client) -> None:
    session_id = new_session(api)
    other = {"X-Concierge-Tenant": "globex"}
    read = api.get(f"/sessions/{session_id}/messages", headers=other)
    write = api.post(
        f"/sessions/{session_id}/messages", headers=other, json={"clientMessageId": str(uuid.uuid4()), "text": "hi"}
    )
    assert (read.status_code, write.status_code) == (404, 404)
    assert api.get("/agents", headers=other).json() == {"items": []}


def test_bad_input_is_a_problem_document_naming_the_field(api: httpx.Client) -> None:
    session_id = new_session(api)
    reply = api.post(f"/sessions/{session_id}/messages", json={"clientMessageId": "not-a-uuid", "text": ""})
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in reply.json()["errors"]}
    assert fields == {"body.clientMessageId", "body.text"}
    unknown = api.post("/sessions", json={"agent": "nobody"})
    assert unknown.status_code == 404
    assert "available: acme-support" in unknown.json()["detail"]


def test_health_endpoints_and_openapi(edge_service: ServiceProcess) -> None:
    assert httpx.get(f"{edge_service.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{edge_service.url}/readyz").json()
    assert ready["checks"] == {"memory": "SERVING", "agent": "SERVING"}
    paths = httpx.get(f"{edge_service.url}/openapi.json").json()["paths"]
    assert "/api/v1/sessions/{session_id}/messages" in paths


def test_edge_routes_by_the_operators_route_table(
    state_dir: Path, agent_service: ServiceProcess, memory_service: ServiceProcess
) -> None:
    """Cluster mode: agents come from the published route table, which the edge re-reads when it changes."""
    routes = state_dir / "routes" / "routes.json"
    routes.parent.mkdir(parents=True, exist_ok=True)
    acme = Route(
        tenant="acme",
        name="acme-support",
        display_name="Acme Support",
        greeting="Hi!",
        agent_address=agent_service.address,
        memory_address=memory_service.address,
    )
    routes.write_text(RouteTable(agents=[]).model_dump_json(by_alias=True))
    edge = start_service("edge", env={"CONCIERGE_ROUTES_FILE": str(routes)}, log_dir=state_dir / "logs")
    try:
        edge.wait_ready()
        api = httpx.Client(base_url=f"{edge.url}/api/v1", headers={"X-Concierge-Tenant": "acme"}, timeout=30)
        assert httpx.get(f"{edge.url}/readyz").json()["checks"] == {"routes": "SERVING"}
        assert api.get("/agents").json()["items"] == []
        missing = api.post("/sessions", json={"agent": "acme-support"})
        assert missing.status_code == 404

        routes.write_text(RouteTable(agents=[acme]).model_dump_json(by_alias=True))
        time.sleep(1.1)  # the edge looks at the file's mtime at most once a second
        assert [a["displayName"] for a in api.get("/agents").json()["items"]] == ["Acme Support"]
        assert api.get("/agents", headers={"X-Concierge-Tenant": "globex"}).json()["items"] == []
        session = api.post("/sessions", json={"agent": "acme-support"})
        assert session.status_code == 201, session.text
        reply = api.post(
            f"/sessions/{session.json()['id']}/messages",
            json={"clientMessageId": str(uuid.uuid4()), "text": "How long is the warranty?"},
        )
        assert reply.status_code == 202
        assert wait_for_answer(api, session.json()["id"])

        routes.write_text("{not json")
        time.sleep(1.1)
        ready = httpx.get(f"{edge.url}/readyz")
        assert ready.status_code == 503
        assert "invalid" in ready.json()["checks"]["routes"]
        assert len(api.get("/agents").json()["items"]) == 1  # the last good table keeps serving
    finally:
        edge.stop()


def wait_for_answer(api: httpx.Client, session_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = api.get(f"/sessions/{session_id}/messages").json()["items"]
        answers = [m["text"] for m in messages if m["role"] == "assistant"]
        if answers:
            return str(answers[0])
        time.sleep(0.2)
    raise AssertionError("no answer stored")


async def test_agent_exports_active_sessions_and_turns_for_its_autoscaler(
    api: httpx.Client, edge_service: ServiceProcess
) -> None:
    session_id = new_session(api)
    frames = await ask_over_websocket(edge_service, session_id, "How do I pair my Sweepy with the app?")
    assert frames[-1]["type"] == "done"
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"http://127.0.0.1:{AGENT_METRICS_PORT}/metrics")).text
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines() if line and line[0] != "#"
    }
    assert samples["concierge_active_sessions"] >= 1
    assert samples['concierge_turns_total{agent="acme-support",outcome="answered",tenant="acme"}'] >= 1
    assert samples["concierge_first_token_seconds_count"] >= 1
