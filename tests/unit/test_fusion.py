"""Weighted reciprocal rank fusion of the vector and full-text result lists."""

from __future__ import annotations

import pytest

from concierge.retrieval.fusion import RankedList, reciprocal_rank_fusion


def test_score_is_the_sum_of_weight_over_k_plus_rank() -> None:
    fused = reciprocal_rank_fusion([RankedList(["a", "b"], 1.0), RankedList(["b"], 0.5)], k=60)
    scores = {f.id: f.score for f in fused}
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["b"] == pytest.approx(1 / 62 + 0.5 / 61)


def test_an_item_found_by_both_lists_beats_the_top_of_one_list() -> None:
    fused = reciprocal_rank_fusion([RankedList(["vec-only", "both"]), RankedList(["text-only", "both"])])
    assert fused[0].id == "both"


def test_ranks_are_one_based_per_list_and_zero_when_absent() -> None:
    fused = reciprocal_rank_fusion([RankedList(["a", "b"]), RankedList(["c", "a"])])
    ranks = {f.id: f.ranks for f in fused}
    assert ranks == {"a": [1, 2], "b": [2, 0], "c": [0, 1]}


def test_the_heavier_list_wins_a_disagreement() -> None:
    vector, text = ["v1", "v2"], ["t1", "t2"]
    assert reciprocal_rank_fusion([RankedList(vector, 1.0), RankedList(text, 0.5)])[0].id == "v1"
    assert reciprocal_rank_fusion([RankedList(vector, 0.5), RankedList(text, 1.0)])[0].id == "t1"


def test_a_list_with_weight_zero_does_not_change_the_order() -> None:
    fused = reciprocal_rank_fusion([RankedList(["a", "b", "c"], 1.0), RankedList(["c", "b"], 0.0)])
    assert [f.id for f in fused] == ["a", "b", "c"]


def test_ties_keep_the_order_of_first_appearance() -> None:
    fused = reciprocal_rank_fusion([RankedList(["a", "b"]), RankedList(["b", "a"])])
    assert [f.id for f in fused] == ["a", "b"]


def test_a_duplicate_within_one_list_counts_once_at_its_best_rank() -> None:
    fused = reciprocal_rank_fusion([RankedList(["a", "b", "a"])], k=60)
    assert fused[0].score == pytest.approx(1 / 61)
    assert fused[0].ranks == [1]


def test_limit_keeps_the_best_items() -> None:
    fused = reciprocal_rank_fusion([RankedList(list("abcdef"))], limit=3)
    assert [f.id for f in fused] == ["a", "b", "c"]


def test_empty_lists_fuse_to_nothing() -> None:
    assert reciprocal_rank_fusion([RankedList([]), RankedList([])]) == []


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        reciprocal_rank_fusion([RankedList(["a"])], k=0)
