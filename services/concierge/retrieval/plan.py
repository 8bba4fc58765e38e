"""Decides what a sync must do: which documents to add, replace, keep or delete.

Pure functions over content hashes that cover the raw bytes and every setting that shapes chunks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from concierge.api.resources import KnowledgeBaseSpec

# Bump when chunking or conversion changes in a way that should re-index stored documents.
INDEX_VERSION = 2

DocKey = tuple[str, str]
"""(source name, document key inside the source)."""


def index_fingerprint(*, spec: KnowledgeBaseSpec, model: str, dimension: int, max_tokens: int) -> str:
    """What, besides a document's bytes, decides its chunks and vectors."""
    shaping = {
        "version": INDEX_VERSION,
        "chunking": spec.chunking.model_dump(mode="json"),
        "language": spec.language,
        "model": model,
        "dimension": dimension,
        "max_tokens": max_tokens,
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def source_fingerprint(fingerprint: str, metadata: dict[str, str]) -> str:
    """The index fingerprint with a source's metadata labels: relabelling a source rewrites its documents."""
    if not metadata:
        return fingerprint
    labels = json.dumps(metadata, sort_keys=True)
    return hashlib.sha256(f"{fingerprint}\0{labels}".encode()).hexdigest()[:16]


def content_hash(data: bytes, *, fingerprint: str) -> str:
    digest = hashlib.sha256(fingerprint.encode())
    digest.update(b"\0")
    digest.update(data)
    return digest.hexdigest()


def spec_hash(spec: KnowledgeBaseSpec) -> str:
    return hashlib.sha256(spec.model_dump_json(by_alias=True).encode()).hexdigest()


@dataclass(frozen=True)
class SyncPlan:
    add: list[DocKey]
    replace: list[DocKey]
    unchanged: list[DocKey]
    delete: list[DocKey]

    @property
    def changed(self) -> list[DocKey]:
        return [*self.add, *self.replace]


def plan_sync(
    *,
    stored: Mapping[DocKey, str],
    found: Mapping[DocKey, str],
    unreadable: Collection[DocKey] = (),
    failed_sources: Collection[str] = (),
) -> SyncPlan:
    """Compare stored hashes with the hashes of what the sources hold now.

    A document is deleted only when its source was listed and no longer has it: one that could
    not be read this time (`unreadable`), or whose whole source failed (`failed_sources`), keeps
    its stored version, so a network blip does not empty a knowledge base.
    """
    add = sorted(key for key in found if key not in stored)
    replace = sorted(key for key, digest in found.items() if key in stored and stored[key] != digest)
    unchanged = sorted(key for key, digest in found.items() if stored.get(key) == digest)
    keep = set(unreadable)
    delete = sorted(key for key in stored if key not in found and key not in keep and key[0] not in failed_sources)
    return SyncPlan(add=add, replace=replace, unchanged=unchanged, delete=delete)
