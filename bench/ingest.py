"""Ingestion throughput of a document corpus next to the raw model's encode throughput, same run.

Usage: python bench/ingest.py [--corpus /usr/share/doc/python3.11/html] [--include '**/*.html'] [--limit N]

1. Raw model: loads the embedding model in this process and encodes a sample of the corpus's own
   chunks (converted and chunked exactly as ingestion does) at the service's batch size.
2. First sync: a fresh embedded Postgres, the embedding and retrieval services as `concierge up`
   runs them, and one sync of the corpus: documents/s, chunks/s, and chunks/s as a share of (1).
3. Re-sync of the unchanged corpus: seconds, chunks re-embedded (should be 0), share of (2).
It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from pathlib import Path

from concierge.api.resources import API_VERSION, KnowledgeBase
from concierge.api.sync import SyncResult, sync_knowledge_base
from concierge.common.grpcio import create_channel
from concierge.db import migrate
from concierge.embedding.config import Settings as EmbeddingSettings
from concierge.embedding.model import Encoder
from concierge.local.postgres import start_embedded_postgres
from concierge.local.processes import start_service
from concierge.retrieval.chunking import chunk_document, embedding_text
from concierge.retrieval.config import _offline_tokenizer_path
from concierge.retrieval.convert import convert
from concierge.retrieval.sources import DocumentRef, LoadedDocument, list_folder
from concierge.retrieval.tokens import load_token_counter
from concierge.v1 import retrieval_pb2_grpc

BATCH = 32


def corpus_copy(corpus: Path, include: list[str], limit: int | None, into: Path) -> list[Path]:
    """The files to ingest; with --limit, a random sample copied (same relative paths) into `into`."""
    files = list_folder(corpus, include)
    if limit is None or limit >= len(files):
        return files
    chosen = random.Random(7).sample(files, limit)
    for path in chosen:
        target = into / path.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return chosen


def sample_chunks(files: list[Path], want: int) -> list[str]:
    """Embedded texts of chunks of a random subset of `files`, as ingestion makes them."""
    count = load_token_counter(_offline_tokenizer_path())
    texts: list[str] = []
    for path in random.Random(11).sample(files, len(files)):
        ref = DocumentRef(source="bench", key=path.name, uri=path.name, name=path.name, format="html", path=path)
        converted = convert(LoadedDocument(ref, path.read_bytes(), "html"))
        for chunk in chunk_document(
            converted.markdown, title=converted.title, max_tokens=200, overlap_tokens=30, count_tokens=count
        ):
            texts.append(embedding_text(converted.title, chunk.section, chunk.text))
        if len(texts) >= want:
            break
    return texts[:want]


def raw_encode_rate(texts: list[str]) -> float:
    """Passages/s of the bare model, in batches of similar length as the service's client sends them."""
    texts = sorted(texts, key=len)
    encoder = Encoder.load(EmbeddingSettings())
    encoder.encode(texts[:BATCH], "document")  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        encoder.encode(texts[i : i + BATCH], "document")
    return len(texts) / (time.perf_counter() - started)


async def timed_sync(address: str, kb: KnowledgeBase, base_dir: Path) -> tuple[SyncResult, float]:
    channel = create_channel(address)
    try:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        started = time.perf_counter()
        result = await sync_knowledge_base(stub, kb, base_dir)
        return result, time.perf_counter() - started
    finally:
        await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("/usr/share/doc/python3.11/html"))
    parser.add_argument("--include", action="append", default=None, help="glob (repeatable); default **/*.html")
    parser.add_argument("--limit", type=int, default=None, help="ingest a random sample of this many files")
    parser.add_argument("--sample-chunks", type=int, default=1500, help="chunks for the raw encode measurement")
    args = parser.parse_args()
    include = args.include or ["**/*.html"]
    if not args.corpus.is_dir():
        raise SystemExit(f"{args.corpus} is not a folder (apt-get install python3.11-doc)")

    with tempfile.TemporaryDirectory(prefix="concierge-bench-ingest-") as temp:
        work = Path(temp)
        root = work / "corpus"
        files = corpus_copy(args.corpus, include, args.limit, root)
        base_dir = (
            root if args.limit is not None and args.limit < len(list_folder(args.corpus, include)) else args.corpus
        )
        print(f"corpus: {len(files)} files from {args.corpus}")

        texts = sample_chunks(files, args.sample_chunks)
        raw = raw_encode_rate(texts)
        print(f"raw model encode: {raw:.0f} passages/s ({len(texts)} corpus chunks, batch {BATCH}, this process)")

        postgres = start_embedded_postgres(work / "pgdata")
        services = []
        try:
            migrate(postgres.url)
            embedding = start_service("embedding", env={}, log_dir=work / "logs")
            services.append(embedding)
            embedding.wait_ready()
            env = {"CONCIERGE_DATABASE_URL": postgres.url, "CONCIERGE_EMBEDDING_ADDRESS": embedding.address}
            retrieval = start_service("retrieval", env=env, log_dir=work / "logs")
            services.append(retrieval)
            retrieval.wait_ready()
            kb = KnowledgeBase.model_validate(
                {
                    "apiVersion": API_VERSION,
                    "kind": "KnowledgeBase",
                    "metadata": {"name": "bench", "namespace": "bench"},
                    "spec": {"sources": [{"name": "corpus", "path": str(base_dir), "include": include}]},
                }
            )
            first, first_s = asyncio.run(timed_sync(retrieval.address, kb, base_dir))
            chunks_rate = first.chunks_written / first_s
            print(
                f"first sync: {first.documents} documents, {first.chunks_written} chunks in {first_s:.1f} s: "
                f"{first.documents / first_s:.2f} documents/s, {chunks_rate:.0f} chunks/s "
                f"= {chunks_rate / raw:.0%} of the raw model rate; {len(first.errors)} errors"
            )
            again, again_s = asyncio.run(timed_sync(retrieval.address, kb, base_dir))
            print(
                f"re-sync unchanged: {again_s:.2f} s = {again_s / first_s:.1%} of the first sync; "
                f"{again.chunks_written} chunks embedded, {again.changed} documents changed"
            )
        finally:
            for service in reversed(services):
                service.stop()
            postgres.stop()


if __name__ == "__main__":
    main()
