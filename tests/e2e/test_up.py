"""`concierge up -f examples/acme/` as a user runs it: a question over the WebSocket, a browser, a restart."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from concierge.local.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "examples" / "acme"
READY = re.compile(r"Concierge is ready at (http://\S+/)")
SEP = r"[\s│|]+"  # Rich table cell borders
SUMMARY_ROW = re.compile(rf"acme/acme-help-center{SEP}(\d+){SEP}(\d+){SEP}(\d+){SEP}(\d+){SEP}(\d+)")


@dataclass
class Up:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str = ""

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_up(state_dir: Path, *args: str, timeout: float = 600) -> Up:
    """Run `concierge up`, wait until it prints its URL (or exits)."""
    env = {**os.environ, "COLUMNS": "160", "TERM": "dumb"}
    process = subprocess.Popen(
        [sys.executable, "-m", "concierge", "up", *args, "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    up = Up(process)
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            up.lines.append(line.rstrip())
            if match := READY.search(line):
                up.url = match.group(1)
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    ready.wait(timeout)
    return up


@pytest.fixture(scope="module")
def acme_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    state = tmp_path_factory.mktemp("up-state")
    up = start_up(state, "-f", str(ACME), "--port", str(free_port()))
    try:
        assert up.url, f"concierge up did not become ready:\n{up.output}"
        yield up
    finally:
        code = up.stop()
        assert code == 0, f"concierge up exited with {code}:\n{up.output}"


async def ask(url: str, question: str) -> list[dict[str, Any]]:
    api = f"{url}api/v1"
    async with httpx.AsyncClient(timeout=30) as client:
        session = (await client.post(f"{api}/sessions", json={"agent": "acme-support"})).json()
    ws_url = url.replace("http://", "ws://") + f"api/v1/sessions/{session['id']}/stream"
    frames: list[dict[str, Any]] = []
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"type": "user_message", "clientMessageId": str(uuid.uuid4()), "text": question}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not frames or frames[-1]["type"] not in ("done", "error")):
            frames.append(json.loads(await ws.recv()))
    return frames


async def test_question_over_websocket_gets_a_streamed_answer_citing_the_acme_document(acme_up: Up) -> None:
    frames = await ask(acme_up.url, "How much do I have to spend to get free delivery in the US?")
    assert frames[-1]["type"] == "done", frames[-1]
    answer = frames[-1]["message"]
    assert "$49" in answer["text"]
    assert any(c["sourceUri"].endswith("shipping.html") for c in answer["citations"])
    assert sum(f["type"] == "text_delta" for f in frames) > 1


def test_up_serves_the_ui_and_prints_the_sync_summary(acme_up: Up) -> None:
    page = httpx.get(acme_up.url)
    assert page.status_code == 200
    assert '<div id="root">' in page.text
    row = SUMMARY_ROW.search(acme_up.output)
    assert row, acme_up.output
    documents, re_embedded, deleted, chunks, errors = map(int, row.groups())
    assert documents == re_embedded >= 25
    assert (deleted, errors) == (0, 0)
    assert chunks > documents


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is installed by `make test`")
def test_browser_user_types_a_question_and_sees_a_cited_answer(acme_up: Up, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "e2e" / "browser" / "chat.mjs"),
            "--url",
            acme_up.url,
            "--question",
            "How long do I have to return my robot vacuum?",
            "--screenshot",
            str(tmp_path / "chat.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["agent"] == "Acme Support"
    assert "30 days" in seen["answer"]
    assert any("Return" in c["text"] for c in seen["citations"]), seen["citations"]
    assert (tmp_path / "chat.png").stat().st_size > 0


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is installed by `make test`")
def test_browser_user_attaches_a_file_and_is_answered_by_a_human(acme_up: Up, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "e2e" / "browser" / "handoff.mjs"),
            "--url",
            acme_up.url,
            "--screenshot",
            str(tmp_path / "handoff.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert "error-codes.md" in seen["chip"]
    assert seen["refused"]["status"] == "415"
    assert "photo.png" in seen["refused"]["text"]
    assert seen["joined"] == "Ana joined the conversation"
    assert "Ana" in seen["handler"]
    assert seen["human"]["author"].startswith("Ana")
    assert seen["human"]["text"] == "Hi, Ana here. Please clean the main brush."
    assert seen["typingWhileHuman"] is False
    assert seen["left"] == "Ana left; the assistant is back"


def test_invalid_folder_stops_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "agent.yaml").write_text(
        "apiVersion: concierge.dev/v1alpha1\nkind: SupportAgent\nmetadata: {name: a, namespace: shop}\n"
        "spec: {displayName: A, scaling: {minReplicas: 4, maxReplicas: 2}}\n"
    )
    up = start_up(tmp_path / "state", "-f", str(bad), timeout=60)
    code = up.process.wait(60)
    assert code == 2
    assert str(bad / "agent.yaml") in up.output
    assert "spec.scaling: minReplicas (4) must not exceed maxReplicas (2)" in up.output
    assert not (tmp_path / "state" / "pgdata").exists()


def test_second_up_reuses_the_data_without_re_embedding(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for run in ("first", "second"):
        up = start_up(state, "-f", str(ACME), "--port", str(free_port()))
        try:
            assert up.url, f"{run} up did not become ready:\n{up.output}"
        finally:
            assert up.stop() == 0, up.output
    row = SUMMARY_ROW.search(up.output)
    assert row, up.output
    documents, re_embedded, deleted, chunks, _errors = map(int, row.groups())
    assert documents >= 25
    assert (re_embedded, deleted) == (0, 0)
    assert chunks > documents
