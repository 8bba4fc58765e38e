"""Embedding throughput: the model in-process by batch size, then the gRPC service under concurrency.

Usage: .venv/bin/python bench/embedding.py [--passages 256] [--calls 640] [--callers 32]
  1. Loads the model as the service does (`Encoder.load` on the thread that will run it, settings
     from CONCIERGE_EMBEDDING_* or their defaults) and encodes ~60-word passages in passes of
     1, 4, 8, 16, 32, 64 and 128: passages/s and ms per pass.
  2. Starts the real service (`concierge serve embedding`, as the test fixtures do) on a free
     loopback port and sends short queries (one text per Embed call, kind QUERY): 640 one call at
     a time, then twice 640 others from 32 concurrent callers on one channel (all distinct, so the
     service's query cache misses; the first round also meets new batch shapes); throughput,
     ratio, latency p50/p95/p99, and how many texts the micro-batcher put in each forward pass.
  3. The first 640 queries again, one at a time: the query cache's effect.
Passages and queries are text of the Python documentation in /usr/share/doc/python3.11/html
(else examples/acme/docs). Prints figures; asserts nothing. Takes about 1-2 minutes; the client
shares the CPU with the service, as a retrieval replica on the same node would.
"""

from __future__ import annotations

import argparse
import asyncio
import html.parser
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from concierge.common.grpcio import create_channel
from concierge.embedding.batcher import worker_thread
from concierge.embedding.config import Settings
from concierge.embedding.model import Encoder
from concierge.local.processes import ServiceProcess, start_service
from concierge.v1 import embedding_pb2, embedding_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/library")
BATCH_SIZES = (1, 4, 8, 16, 32, 64, 128)


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the figures."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Text(html.parser.HTMLParser):
    """Visible text of an HTML page (scripts, styles and navigation dropped)."""

    skip = frozenset({"script", "style", "nav", "head"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.skip:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.skip and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._depth:
            self.parts.append(data)


def corpus_words(limit: int) -> list[str]:
    """About `limit` words of prose, in a fixed order (same passages every run)."""
    words: list[str] = []
    if PYTHON_DOCS.is_dir():
        for page in sorted(PYTHON_DOCS.glob("*.html")):
            parser = _Text()
            parser.feed(page.read_text(errors="replace"))
            words += re.findall(r"[A-Za-z][\w'-]*[.,;:?!]?", " ".join(parser.parts))
            if len(words) >= limit:
                break
    else:
        for doc in sorted((ROOT / "examples" / "acme" / "docs").glob("*.md")):
            words += re.findall(r"[A-Za-z][\w'-]*[.,;:?!]?", doc.read_text())
    if len(words) < limit // 4:
        raise SystemExit(f"found only {len(words)} words of text in {PYTHON_DOCS} and examples/acme/docs")
    return words


def passages(words: Sequence[str], count: int, size: int = 60) -> list[str]:
    out = [" ".join(words[i : i + size]) for i in range(0, len(words) - size, size)]
    while len(out) < count:
        out += out
    return out[:count]


def queries(words: Sequence[str], count: int) -> list[str]:
    """Short distinct questions-like snippets of 5-9 words."""
    out: list[str] = []
    i = 7
    while len(out) < count and i + 9 < len(words):
        length = 5 + len(out) % 5
        out.append(" ".join(words[i : i + length]).rstrip(".,;:") + "?")
        i += 97  # far apart, so neighbouring queries share no words
    return out


def measure_model(settings: Settings, texts: list[str]) -> None:
    worker: ThreadPoolExecutor = worker_thread()
    log(f"loading {settings.embedding_model_path} ({settings.embedding_dtype}) in-process")
    encoder = worker.submit(Encoder.load, settings).result()
    try:
        worker.submit(encoder.encode, texts[:16], "document").result()  # warm-up
        print(
            f"\nmodel in-process: {encoder.info.model} {settings.embedding_dtype} on {settings.embedding_device}, "
            f"{len(texts)} passages of ~60 words (kind DOCUMENT) per batch size"
        )
        print(f"{'batch':>5} | {'passages/s':>10} | {'ms/pass':>8}")
        for size in BATCH_SIZES:
            started = time.perf_counter()
            passes = 0
            for start in range(0, len(texts), size):
                worker.submit(encoder.encode, texts[start : start + size], "document").result()
                passes += 1
            elapsed = time.perf_counter() - started
            print(f"{size:>5} | {len(texts) / elapsed:>10.1f} | {elapsed / passes * 1000:>8.1f}", flush=True)
            log(f"batch {size}: {len(texts) / elapsed:.0f} passages/s")
    finally:
        worker.shutdown(wait=True)


async def call(stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub, text: str) -> float:
    started = time.perf_counter()
    await stub.Embed(embedding_pb2.EmbedRequest(texts=[text], kind=embedding_pb2.EMBED_KIND_QUERY), timeout=30)
    return time.perf_counter() - started


async def measure_service(service: ServiceProcess, texts: list[str], callers: int, cache_size: int) -> None:
    """One at a time, then two rounds of concurrent callers, each on its own queries (all cache
    misses; the first concurrent round meets batch shapes the model has not run yet); then the
    first set again (cache hits)."""
    calls = (len(texts) - 20) // 3
    warm = texts[:20]
    first, second, third = (texts[20 + i * calls : 20 + (i + 1) * calls] for i in range(3))
    channel = create_channel(service.address)
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    rows: list[tuple[str, float, list[float]]] = []
    offsets = []

    async def concurrently(queries: list[str]) -> tuple[float, list[float]]:
        queue = list(reversed(queries))
        latencies: list[float] = []

        async def caller() -> None:
            while queue:
                latencies.append(await call(stub, queue.pop()))

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return time.perf_counter() - started, latencies

    try:
        for text in warm:  # warm-up: first calls pay for lazy init in torch and gRPC
            await call(stub, text)

        log(f"{calls} calls one at a time")
        offsets.append(service.log_path.stat().st_size)
        started = time.perf_counter()
        sequential = [await call(stub, text) for text in first]
        rows.append((f"{calls} distinct, one at a time", time.perf_counter() - started, sequential))
        offsets.append(service.log_path.stat().st_size)

        for name, queries_ in (("round 1", second), ("round 2", third)):
            log(f"{calls} other calls from {callers} concurrent callers, {name}")
            seconds, latencies = await concurrently(queries_)
            rows.append((f"{calls} others, {callers} callers, {name}", seconds, latencies))
            await asyncio.sleep(0.2)  # let the service flush its log lines
            offsets.append(service.log_path.stat().st_size)

        log(f"the first {calls} queries again, one at a time")
        started = time.perf_counter()
        repeated = [await call(stub, text) for text in first]
        rows.append((f"the first {calls} again, one at a time", time.perf_counter() - started, repeated))
    finally:
        await channel.close()

    print("\ngRPC EmbeddingService on loopback, short queries (5-9 words), one text per Embed call, kind QUERY")
    print(f"{'':40} | {'calls/s':>8} | {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    for name, seconds, lat in rows:
        ms = [s * 1000 for s in lat]
        figures = f"{statistics.median(ms):>7.1f} {pct(ms, 0.95):>7.1f} {pct(ms, 0.99):>7.1f}"
        print(f"{name:40} | {calls / seconds:>8.1f} | {figures}")
    one, round1, round2 = rows[0][1], rows[1][1], rows[2][1]
    print(
        f"throughput ratio concurrent / one at a time: round 1 {one / round1:.2f}x, round 2 {one / round2:.2f}x "
        "(target >= 3x)"
    )
    print(f"micro-batcher, one at a time: {pass_sizes(service.log_path, offsets[0], offsets[1])}")
    print(f"micro-batcher, {callers} callers round 1: {pass_sizes(service.log_path, offsets[1], offsets[2])}")
    print(f"micro-batcher, {callers} callers round 2: {pass_sizes(service.log_path, offsets[2], offsets[3])}")
    print(
        f"query cache: CONCIERGE_EMBEDDING_QUERY_CACHE_SIZE={cache_size}; the repeated queries are "
        f"{statistics.median(sequential) / statistics.median(repeated):.0f}x faster (p50)"
        if cache_size
        else "query cache: off (size 0)"
    )


def pass_sizes(log_path: Path, start: int, end: int) -> str:
    """Texts per forward pass between two offsets of the service log (its DEBUG `batch encoded` lines)."""
    with log_path.open("rb") as f:
        f.seek(start)
        lines = f.read(end - start).decode(errors="replace").splitlines()
    sizes = [int(m.group(1)) for line in lines if (m := re.search(r"batch encoded requests=\d+ texts=(\d+)", line))]
    if not sizes:
        return "no `batch encoded` lines in the service log"
    return f"{len(sizes)} forward passes, texts per pass mean {statistics.mean(sizes):.1f}, max {max(sizes)}"


def cache_summary(log_path: Path) -> str:
    """Query cache hits and misses over the whole run, from the service's stop line (if it reports them)."""
    for line in reversed(log_path.read_text(errors="replace").splitlines()):
        if "batcher stopped" in line:
            fields = dict(re.findall(r"(\w+)=(\d+)", line))
            if "query_cache_hits" in fields:
                return f"query cache hits={fields['query_cache_hits']} misses={fields['query_cache_misses']}"
    return "no query cache counters in the service log"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=256, help="passages encoded per batch size")
    parser.add_argument("--calls", type=int, default=640, help="Embed calls in each service run")
    parser.add_argument("--callers", type=int, default=32, help="concurrent callers")
    parser.add_argument("--skip-model", action="store_true", help="only the gRPC part")
    args = parser.parse_args()

    words = corpus_words(max(args.passages * 60, (3 * args.calls + 20) * 97 + 100))
    settings = Settings()
    if not args.skip_model:
        measure_model(settings, passages(words, args.passages))

    short = queries(words, 3 * args.calls + 20)
    if len(short) < 3 * args.calls + 20:
        log(f"only {len(short)} distinct queries in the corpus; using those")
    with tempfile.TemporaryDirectory(prefix="concierge-bench-embedding-") as tmp:
        log("starting the embedding service")
        # DEBUG: the batcher logs each forward pass, which is how texts per pass are counted.
        service = start_service("embedding", env={"CONCIERGE_LOG_LEVEL": "DEBUG"}, log_dir=Path(tmp))
        try:
            service.wait_ready()
            cache_size = int(getattr(settings, "embedding_query_cache_size", 0))
            asyncio.run(measure_service(service, short, args.callers, cache_size))
        finally:
            service.stop()
        print(
            f"service settings: max_batch_size={settings.embedding_max_batch_size} "
            f"max_wait_ms={settings.embedding_max_wait_ms} dtype={settings.embedding_dtype}; "
            + cache_summary(service.log_path)
        )


if __name__ == "__main__":
    main()
