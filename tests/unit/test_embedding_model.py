"""Prompts, Matryoshka truncation and the query cache of the embedding service, without weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from concierge.embedding.model import Encoder, ModelInfo, output_dimension, resolve_prompts, truncate
from concierge.embedding.server import QueryCache

GEMMA = "embeddinggemma-300m"


def test_embeddinggemma_gets_its_query_and_document_prompts_even_when_its_config_lacks_them() -> None:
    prompts = resolve_prompts(GEMMA, {}, query=None, document=None)
    assert prompts == {"query": "task: search result | query: ", "document": "title: none | text: ", "raw": ""}


def test_configured_prompts_win_over_the_models_own_and_empty_means_none() -> None:
    own = {"query": "own query: ", "document": "own doc: "}
    assert resolve_prompts(GEMMA, own, query=None, document=None)["query"] == "own query: "
    assert resolve_prompts(GEMMA, own, query="q: ", document="")["query"] == "q: "
    assert resolve_prompts(GEMMA, own, query="q: ", document="")["document"] == ""
    assert resolve_prompts("all-MiniLM-L6-v2", {}, query=None, document=None)["query"] == ""


def test_matryoshka_dimensions_are_checked_against_what_the_model_was_trained_for() -> None:
    assert [output_dimension(GEMMA, 768, d) for d in (None, 768, 512, 256, 128)] == [768, 768, 512, 256, 128]
    with pytest.raises(ValueError, match="768, 512, 256, 128"):
        output_dimension(GEMMA, 768, 300)
    with pytest.raises(ValueError, match="exceeds the model's 384"):
        output_dimension("all-MiniLM-L6-v2", 384, 512)
    assert output_dimension("custom-model", 384, 100) == 100


def test_truncation_keeps_the_leading_components_at_unit_length() -> None:
    vectors = np.array([[3.0, 4.0, 12.0], [0.0, 0.0, 5.0]], dtype=np.float32)
    cut = truncate(vectors, 2)
    assert cut.shape == (2, 2)
    np.testing.assert_allclose(cut[0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(cut[1], [0.0, 0.0])  # a zero prefix stays zero, not NaN


class FakeModel:
    """Records what sentence-transformers' encode() was asked; returns a 4-dim tensor-like."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []

    def encode(self, texts: list[str], prompt: str | None = None, **_: Any) -> Any:
        import torch

        self.calls.append((texts, prompt))
        return torch.tensor([[1.0, 1.0, 1.0, 1.0]] * len(texts))


def test_the_encoder_applies_the_kinds_prompt_and_serves_the_truncated_dimension() -> None:
    model = FakeModel()
    prompts = resolve_prompts(GEMMA, {}, query=None, document=None)
    encoder = Encoder(model, info=ModelInfo(model=GEMMA, dimension=2, max_tokens=2048), prompts=prompts)
    vectors = encoder.encode(["refund?"], "query")
    encoder.encode(["Refunds take 14 days."], "document")
    encoder.encode(["as is"], "raw")
    assert model.calls == [
        (["refund?"], "task: search result | query: "),
        (["Refunds take 14 days."], "title: none | text: "),
        (["as is"], None),
    ]
    assert vectors.shape == (1, 2)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0)


async def test_the_query_cache_computes_each_text_once() -> None:
    computed: list[list[str]] = []

    async def compute(texts: list[str]) -> np.ndarray[Any, Any]:
        computed.append(texts)
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    cache = QueryCache(size=2)
    first = await cache.embed(["a", "bb", "a"], compute)
    second = await cache.embed(["bb", "a"], compute)
    assert computed == [["a", "bb"]]
    assert first[:, 0].tolist() == [1.0, 2.0, 1.0]
    assert second[:, 0].tolist() == [2.0, 1.0]
    assert (cache.hits, cache.misses) == (3, 2)
    await cache.embed(["ccc"], compute)  # evicts the least recently used
    await cache.embed(["bb"], compute)
    assert computed[-1] == ["bb"]


async def test_a_zero_size_cache_passes_everything_through() -> None:
    calls = 0

    async def compute(texts: list[str]) -> np.ndarray[Any, Any]:
        nonlocal calls
        calls += 1
        return np.zeros((len(texts), 1), dtype=np.float32)

    cache = QueryCache(size=0)
    await cache.embed(["a"], compute)
    await cache.embed(["a"], compute)
    assert calls == 2


def test_the_configured_number_of_torch_threads_is_used() -> None:
    import torch

    from concierge.embedding.config import Settings

    before = torch.get_num_threads()
    try:
        Encoder.load(Settings(embedding_threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
