"""`concierge kb` and `concierge eval` refuse bad input before starting anything."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from concierge.cli.main import app

runner = CliRunner()


def test_kb_sync_names_the_bad_field_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "kb.yaml").write_text(
        "apiVersion: concierge.dev/v1alpha1\nkind: KnowledgeBase\nmetadata: {name: docs, namespace: acme}\n"
        "spec:\n  sources:\n    - name: s\n      path: docs\n      metadata: {format: pdf}\n"
    )
    result = runner.invoke(app, ["kb", "sync", "-f", str(tmp_path / "kb.yaml"), "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "nothing was synced" in result.output
    assert "metadata key(s) format are set by Concierge" in result.output
    assert not (tmp_path / "pgdata").exists()


def test_kb_search_refuses_a_filter_that_is_not_key_value(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["kb", "search", "--kb", "docs", "--filter", "pdf", "refund?", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "is not KEY=VALUE" in result.output


def test_eval_retrieval_names_the_bad_line_of_the_question_file(tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": "1", "q": "refund?", "pages": []}\n{"id": "2", "pages": ["a.html"]}\n')
    result = runner.invoke(
        app,
        ["eval", "retrieval", "--questions", str(questions), "--corpus", str(tmp_path), "--state-dir", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "q.jsonl:2: q: Field required" in result.output
    unknown = runner.invoke(
        app, ["eval", "retrieval", "--questions", str(questions), "--corpus", str(tmp_path), "--mode", "fuzzy"]
    )
    assert unknown.exit_code == 2
    assert "unknown mode 'fuzzy'" in unknown.output
