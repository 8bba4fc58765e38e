"""Weighted reciprocal rank fusion of ranked result lists (vector and full-text search).

RRF needs only ranks, so scores on different scales (cosine, ts_rank_cd) combine without tuning.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_K = 60


@dataclass(frozen=True)
class RankedList(Generic[K]):
    """Ids best first, and how much this list counts in the fused score."""

    ids: Sequence[K]
    weight: float = 1.0


@dataclass
class Fused(Generic[K]):
    id: K
    score: float
    # 1-based rank in each input list, in input order; 0 when absent from that list.
    ranks: list[int] = field(default_factory=list)


def reciprocal_rank_fusion(
    lists: Sequence[RankedList[K]], *, k: int = DEFAULT_K, limit: int | None = None
) -> list[Fused[K]]:
    """Items by descending sum of weight / (k + rank) over the lists they appear in.

    Ties keep the order of first appearance (earlier lists, better ranks first), so the result
    is deterministic. A duplicate id within one list counts at its best rank only.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    fused: dict[K, Fused[K]] = {}
    for position, ranked in enumerate(lists):
        for rank, item in enumerate(ranked.ids, start=1):
            entry = fused.get(item)
            if entry is None:
                entry = fused[item] = Fused(id=item, score=0.0, ranks=[0] * len(lists))
            if entry.ranks[position]:
                continue
            entry.ranks[position] = rank
            entry.score += ranked.weight / (k + rank)
    ordered = sorted(fused.values(), key=lambda f: -f.score)  # stable: ties keep first appearance
    return ordered if limit is None else ordered[:limit]
