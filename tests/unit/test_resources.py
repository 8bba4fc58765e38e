"""Resource YAML validation: defaults, cross-field rules and errors that say file, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from concierge.api.loader import ResourceError, load_paths
from concierge.api.resources import KnowledgeBaseSpec, SupportAgentSpec, duration_seconds

ROOT = Path(__file__).resolve().parents[2]

AGENT = """
apiVersion: concierge.dev/v1alpha1
kind: SupportAgent
metadata: {name: helper, namespace: shop}
spec:
  displayName: Helper
  knowledgeBases: [faq]
"""
KB = """
apiVersion: concierge.dev/v1alpha1
kind: KnowledgeBase
metadata: {name: faq, namespace: shop}
spec:
  sources: [{name: docs, path: docs}]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_for(tmp_path: Path) -> list[str]:
    with pytest.raises(ResourceError) as caught:
        load_paths([tmp_path])
    return caught.value.problems


def test_example_acme_folder_is_valid_and_complete() -> None:
    resources = load_paths([ROOT / "examples" / "acme"])
    assert [r.key for r in resources.agents] == ["acme/acme-support"]
    assert [r.key for r in resources.knowledge_bases] == ["acme/acme-help-center"]
    assert resources.namespaces == ["acme"]


def test_defaults_are_filled_in() -> None:
    spec = SupportAgentSpec.model_validate({"displayName": "Helper"})
    assert spec.model.provider == "extractive"
    assert spec.scaling.min_replicas == 1
    assert spec.retrieval.top_k == 5


def test_error_names_file_document_field_and_offending_value(tmp_path: Path) -> None:
    write(tmp_path, "kb.yaml", KB)
    write(
        tmp_path,
        "agent.yaml",
        AGENT.replace("displayName: Helper", "displayName: Helper\n  scaling: {minReplicas: 'many'}"),
    )
    (problem,) = problems_for(tmp_path)
    assert str(tmp_path / "agent.yaml") in problem
    assert "(document 1)" in problem
    assert "spec.scaling.minReplicas" in problem
    assert "'many'" in problem


def test_cross_field_rules_explain_the_fix(tmp_path: Path) -> None:
    write(tmp_path, "kb.yaml", KB)
    write(
        tmp_path,
        "agent.yaml",
        AGENT + "  scaling: {minReplicas: 5, maxReplicas: 2}\n  model: {provider: openai-compatible}\n",
    )
    problems = problems_for(tmp_path)
    assert any("minReplicas (5) must not exceed maxReplicas (2)" in p for p in problems)
    assert any("provider `openai-compatible` needs `model`" in p for p in problems)


def test_agent_may_not_reference_a_knowledge_base_of_another_namespace(tmp_path: Path) -> None:
    write(tmp_path, "kb.yaml", KB.replace("namespace: shop", "namespace: other"))
    write(tmp_path, "agent.yaml", AGENT)
    (problem,) = problems_for(tmp_path)
    assert "spec.knowledgeBases[0]" in problem
    assert "not found in namespace 'shop'" in problem


def test_unknown_kind_field_and_bad_yaml_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", KB.replace("KnowledgeBase", "KnowledgeBank"))
    write(tmp_path, "b.yaml", KB.replace("faq", "faq2").replace("sources:", "colour: red\n  sources:"))
    write(tmp_path, "c.yaml", "spec: [unclosed")
    problems = problems_for(tmp_path)
    assert any("unknown kind 'KnowledgeBank'" in p for p in problems)
    assert any("spec.colour: Extra inputs are not permitted" in p for p in problems)
    assert any("c.yaml: not valid YAML" in p for p in problems)


def test_source_needs_exactly_one_of_inline_path_url() -> None:
    with pytest.raises(ValidationError, match="set exactly one of `inline`, `path` or `url` \\(got path, url\\)"):
        KnowledgeBaseSpec.model_validate({"sources": [{"name": "x", "path": "a", "url": "https://example.com/a"}]})


def test_refresh_interval_is_a_duration() -> None:
    assert (
        duration_seconds(
            KnowledgeBaseSpec.model_validate(
                {"sources": [{"name": "x", "path": "a"}], "refreshInterval": "1h30m"}
            ).refresh_interval
        )
        == 5400
    )
    with pytest.raises(ValidationError, match="refreshInterval"):
        KnowledgeBaseSpec.model_validate({"sources": [{"name": "x", "path": "a"}], "refreshInterval": "soon"})


def test_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(ResourceError, match="no such file or folder"):
        load_paths([tmp_path / "nope"])
