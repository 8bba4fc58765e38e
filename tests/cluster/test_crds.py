"""The generated CRDs on a real API server: every example is accepted, bad resources are refused
with a message naming the field (OpenAPI schema and CEL rules), and printer columns show."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "crd-tests"

Resource = dict[str, Any]


@pytest.fixture(scope="module")
def crds(cluster: ControlPlane) -> ControlPlane:
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    for name in ("knowledgebases", "supportagents", "escalationpolicies"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}.concierge.dev", "--timeout=60s")
    cluster.kubectl("create", "namespace", NAMESPACE)
    return cluster


def examples() -> list[Resource]:
    documents: list[Resource] = []
    for path in sorted((ROOT / "examples").glob("**/*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return documents


def example(kind: str) -> Resource:
    found = next(d for d in examples() if d["kind"] == kind)
    resource = copy.deepcopy(found)
    resource["metadata"]["namespace"] = NAMESPACE
    return resource


def dry_run(cluster: ControlPlane, resource: Resource) -> tuple[int, str]:
    result = cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=yaml.safe_dump(resource), check=False
    )
    return result.returncode, result.stderr


def test_every_example_is_accepted_by_the_api_server(crds: ControlPlane) -> None:
    for resource in examples():
        resource = copy.deepcopy(resource)
        resource["metadata"]["namespace"] = NAMESPACE
        code, stderr = dry_run(crds, resource)
        assert code == 0, f"{resource['kind']} {resource['metadata']['name']}: {stderr}"


def kb(change: Callable[[Resource], None]) -> Resource:
    resource = example("KnowledgeBase")
    change(resource["spec"])
    return resource


def agent(change: Callable[[Resource], None]) -> Resource:
    resource = example("SupportAgent")
    change(resource["spec"])
    return resource


def policy(change: Callable[[Resource], None]) -> Resource:
    resource = example("EscalationPolicy")
    change(resource["spec"])
    return resource


def source(**fields: Any) -> Callable[[Resource], None]:
    return lambda spec: spec.update(sources=[{"name": "docs", **fields}])


INVALID: list[tuple[str, Resource, str]] = [
    ("sources missing", kb(lambda s: s.pop("sources")), "spec.sources: Required value"),
    (
        "two kinds of source",
        kb(source(path="docs", url="https://x.example/")),
        "set exactly one of inline, path or url",
    ),
    ("no kind of source", kb(source()), "set exactly one of inline, path or url"),
    ("source name not a DNS label", kb(source(name="My Docs", path="docs")), "spec.sources[0].name"),
    ("url not http(s)", kb(source(url="ftp://files.example/manual.pdf")), "spec.sources[0].url"),
    ("crawl without url", kb(source(path="docs", crawl={"maxDepth": 1})), "crawl needs a url"),
    ("reserved metadata key", kb(source(path="docs", metadata={"format": "pdf"})), "metadata keys source and format"),
    ("chunk size of the wrong type", kb(lambda s: s.update(chunking={"maxTokens": "big"})), "spec.chunking.maxTokens"),
    (
        "overlap not below the chunk size",
        kb(lambda s: s.update(chunking={"maxTokens": 100, "overlapTokens": 100})),
        "overlapTokens must be smaller than maxTokens",
    ),
    ("refresh interval not a duration", kb(lambda s: s.update(refreshInterval="5 minutes")), "spec.refreshInterval"),
    ("unknown field", kb(lambda s: s.update(colour="blue")), "unknown field"),
    (
        "min replicas above max",
        agent(lambda s: s["scaling"].update(minReplicas=6, maxReplicas=2)),
        "minReplicas must not exceed maxReplicas",
    ),
    ("unknown provider", agent(lambda s: s.update(model={"provider": "skynet"})), "spec.model.provider"),
    (
        "provider without its endpoint",
        agent(lambda s: s.update(model={"provider": "openai-compatible", "model": "m"})),
        "this provider needs endpoint",
    ),
    (
        "knowledge base in another namespace",
        agent(lambda s: s.update(knowledgeBases=["other-team/help-center"])),
        "spec.knowledgeBases[0]",
    ),
    ("top_k of the wrong type", agent(lambda s: s["retrieval"].update(topK="five")), "spec.retrieval.topK"),
    ("webhook without url", policy(lambda s: s.update(handoff={"type": "webhook"})), "handoff type webhook needs url"),
    (
        "confidence threshold above 1",
        policy(lambda s: s["rules"]["lowConfidence"].update(threshold=1.5)),
        "spec.rules.lowConfidence.threshold",
    ),
]


@pytest.mark.parametrize(("case", "resource", "message"), INVALID, ids=[case for case, _, _ in INVALID])
def test_an_invalid_resource_is_refused_with_a_message_that_names_the_field(
    crds: ControlPlane, case: str, resource: Resource, message: str
) -> None:
    code, stderr = dry_run(crds, resource)
    assert code != 0, f"{case}: accepted"
    assert message in stderr, f"{case}: {stderr}"


def test_kubectl_get_shows_the_printer_columns(crds: ControlPlane) -> None:
    for resource in examples():
        resource = copy.deepcopy(resource)
        resource["metadata"]["namespace"] = NAMESPACE
        crds.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(resource))
    table = crds.kubectl("get", "kb,sagent,escpol", "-n", NAMESPACE).stdout
    assert "acme-help-center" in table
    assert "acme-support" in table
    assert "acme-escalation" in table
    header_lines = [line for line in table.splitlines() if line.startswith("NAME")]
    assert len(header_lines) == 3
    assert all(len(line.split()) >= 3 for line in header_lines)  # columns besides NAME and AGE
