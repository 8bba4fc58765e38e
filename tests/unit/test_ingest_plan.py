"""Sync planning: which documents a sync adds, replaces, keeps and deletes, by content hash."""

from __future__ import annotations

from concierge.api.resources import KnowledgeBaseSpec
from concierge.retrieval.plan import content_hash, index_fingerprint, plan_sync

A, B, C = ("docs", "a.md"), ("docs", "b.md"), ("docs", "c.md")


def test_documents_not_stored_yet_are_added() -> None:
    plan = plan_sync(stored={A: "1"}, found={A: "1", B: "2"})
    assert plan.add == [B]
    assert plan.unchanged == [A]


def test_documents_whose_hash_changed_are_replaced_and_the_rest_left_alone() -> None:
    plan = plan_sync(stored={A: "1", B: "2"}, found={A: "1", B: "2-edited"})
    assert plan.replace == [B]
    assert plan.unchanged == [A]
    assert plan.add == plan.delete == []
    assert plan.changed == [B]


def test_documents_gone_from_their_source_are_deleted() -> None:
    plan = plan_sync(stored={A: "1", B: "2"}, found={A: "1"})
    assert plan.delete == [B]


def test_a_document_that_could_not_be_read_keeps_its_stored_version() -> None:
    plan = plan_sync(stored={A: "1", B: "2"}, found={A: "1"}, unreadable=[B])
    assert plan.delete == []


def test_a_failed_source_keeps_all_of_its_documents() -> None:
    stored = {A: "1", ("web", "https://x.test/faq"): "9"}
    plan = plan_sync(stored=stored, found={A: "1"}, failed_sources=["web"])
    assert plan.delete == []


def test_a_source_removed_from_the_spec_loses_its_documents() -> None:
    stored = {A: "1", ("old", "x.md"): "3"}
    plan = plan_sync(stored=stored, found={A: "1"})
    assert plan.delete == [("old", "x.md")]


def test_an_unchanged_resync_plans_nothing() -> None:
    hashes = {A: "1", B: "2", C: "3"}
    plan = plan_sync(stored=hashes, found=dict(hashes))
    assert plan.changed == plan.delete == []
    assert plan.unchanged == [A, B, C]


def test_content_hash_changes_with_the_bytes_and_the_fingerprint() -> None:
    assert content_hash(b"x", fingerprint="f") == content_hash(b"x", fingerprint="f")
    assert content_hash(b"x", fingerprint="f") != content_hash(b"y", fingerprint="f")
    assert content_hash(b"x", fingerprint="f") != content_hash(b"x", fingerprint="g")


def test_fingerprint_changes_with_chunking_language_and_model_but_not_with_sources() -> None:
    spec = KnowledgeBaseSpec.model_validate({"sources": [{"name": "docs", "path": "docs"}]})

    def fingerprint(s: KnowledgeBaseSpec, model: str = "m", dimension: int = 384) -> str:
        return index_fingerprint(spec=s, model=model, dimension=dimension, max_tokens=200)

    base = fingerprint(spec)
    assert (
        fingerprint(spec.model_copy(update={"chunking": spec.chunking.model_copy(update={"max_tokens": 100})})) != base
    )
    assert fingerprint(spec.model_copy(update={"language": "german"})) != base
    assert fingerprint(spec, model="other") != base
    assert fingerprint(spec, dimension=768) != base
    assert fingerprint(spec.model_copy(update={"description": "new words"})) == base
