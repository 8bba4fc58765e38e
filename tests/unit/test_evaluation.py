"""Metrics and question loading of `concierge eval retrieval`."""

from __future__ import annotations

from pathlib import Path

import pytest

from concierge.evaluation.questions import Question, QuestionFileError, load_questions
from concierge.evaluation.retrieval import Outcome, corpus_knowledge_base, document_ranking, figures, percentile
from concierge.v1 import retrieval_pb2


def outcome(pages: list[str], ranking: list[str], kind: str = "single", abstained: bool = False) -> Outcome:
    question = Question(id=str(len(pages)) + "".join(ranking), q="q?", pages=tuple(pages), kind=kind)
    return Outcome(question=question, ranking=ranking, abstained=abstained, seconds=0.01)


def test_chunks_collapse_into_documents_at_their_first_rank() -> None:
    hits = [retrieval_pb2.SearchHit(document_key=key) for key in ("a", "b", "a", "c", "b")]
    assert document_ranking(hits) == ["a", "b", "c"]


def test_recall_counts_gold_pages_in_the_top_five_and_mrr_the_first_gold_rank() -> None:
    multi = outcome(["x", "y"], ["a", "x", "b", "c", "d", "y"])
    assert multi.recall_at_5 == 0.5
    assert multi.reciprocal_rank_at_10 == 0.5
    missed = outcome(["x"], [f"p{i}" for i in range(10)] + ["x"])
    assert missed.recall_at_5 == 0
    assert missed.reciprocal_rank_at_10 == 0


def test_figures_separate_answerable_from_unanswerable_questions() -> None:
    result = figures(
        [
            outcome(["x"], ["x"]),
            outcome(["y"], ["a", "b", "y"], abstained=True),
            outcome([], ["a"], kind="unanswerable", abstained=True),
            outcome([], ["b"], kind="unanswerable"),
        ]
    )
    assert (result.answerable, result.unanswerable) == (2, 2)
    assert result.recall_at_5 == 1.0
    assert result.mrr_at_10 == pytest.approx((1 + 1 / 3) / 2)
    assert result.wrongly_abstained == 0.5
    assert result.abstain_rate == 0.5


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile([], 95)) == (50.0, 95.0, 0.0)


def test_a_bad_question_file_names_the_line_and_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "1", "q": "ok?", "pages": []}\n{"id": "2", "pages": []}\n')
    with pytest.raises(QuestionFileError, match=r"q\.jsonl:2: q: Field required"):
        load_questions(path)
    path.write_text('{"id": "1", "q": "a?", "pages": []}\n{"id": "1", "q": "b?", "pages": []}\n')
    with pytest.raises(QuestionFileError, match="appears twice"):
        load_questions(path)
    path.write_text("not json\n")
    with pytest.raises(QuestionFileError, match=r"q\.jsonl:1: not JSON"):
        load_questions(path)


def test_the_same_corpus_and_globs_give_the_same_knowledge_base(tmp_path: Path) -> None:
    first = corpus_knowledge_base(tmp_path, ["**/*.html"])
    assert first.name == corpus_knowledge_base(tmp_path, ["**/*.html"]).name
    assert first.name != corpus_knowledge_base(tmp_path, ["**/*.md"]).name
    assert first.namespace == "eval"
    assert first.spec.sources[0].include == ["**/*.html"]
