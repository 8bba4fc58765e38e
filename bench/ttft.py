"""Time to first streamed token and full-answer time through a running edge.

Usage: python bench/ttft.py http://127.0.0.1:8080/ [--questions examples/acme/questions.jsonl] [--rounds 2]
Prints one line per question and p50/p95; it asserts nothing (figures for docs and notes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path

import httpx
import websockets


async def one(url: str, question: str) -> tuple[float, float, int]:
    """Seconds to the first text delta and to done, measured from sending the message."""
    async with httpx.AsyncClient(timeout=30) as client:
        session = (await client.post(f"{url}api/v1/sessions", json={"agent": "acme-support"})).json()
    ws_url = url.replace("http://", "ws://") + f"api/v1/sessions/{session['id']}/stream"
    async with websockets.connect(ws_url) as ws:
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "user_message", "clientMessageId": str(uuid.uuid4()), "text": question}))
        first = 0.0
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "text_delta" and not first:
                first = time.perf_counter() - started
            if frame["type"] in ("done", "error"):
                cited = len(frame.get("message", {}).get("citations", []))
                return first, time.perf_counter() - started, cited


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--questions", type=Path, default=Path("examples/acme/questions.jsonl"))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    url = args.url if args.url.endswith("/") else args.url + "/"
    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    await one(url, questions[0])  # warm-up: first-call costs are not what a customer sees twice
    firsts, totals = [], []
    for _ in range(args.rounds):
        for q in questions:
            first, total, cited = await one(url, q)
            firsts.append(first)
            totals.append(total)
            print(f"ttft={first * 1000:6.0f} ms  total={total * 1000:6.0f} ms  citations={cited}  {q[:60]}")
    print(
        f"\n{len(firsts)} answers: time to first token p50 {statistics.median(firsts) * 1000:.0f} ms, "
        f"p95 {pct(firsts, 0.95) * 1000:.0f} ms; full answer p50 {statistics.median(totals) * 1000:.0f} ms, "
        f"p95 {pct(totals, 0.95) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
