"""`concierge eval answers` end to end on a tiny corpus: the real CLI, agent, memory, retrieval and model.

The command runs as a process against the session's memory, retrieval and embedding services (named
by CONCIERGE_*_ADDRESS, as an operator would) and starts its own agent; the figures it prints must
follow from its per-question answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, RecordedRequest, Step, Text, call

from concierge.local.processes import ServiceProcess

DOCUMENTS = {
    "returns.md": "# Returns\n\n## Return window\n\nYou can return any Gizmo within 45 days of delivery for a full "
    "refund.\n\n## Refund timing\n\nRefunds reach your card 5 to 7 business days after we receive the parcel.\n",
    "shipping.md": "# Shipping\n\n## Delivery times\n\nStandard delivery to Norway takes 4 business days. Express "
    "delivery takes 1 business day and costs 12 euros.\n",
    "warranty.md": "# Warranty\n\n## Warranty period\n\nEvery Gizmo has a warranty of 3 years from the date of "
    "purchase. The warranty covers manufacturing defects, not accidental damage.\n",
}
QUESTIONS = [
    {"id": "returns", "q": "How many days do I have to return my Gizmo?", "pages": ["returns.md"],
     "answer_contains": ["45 days"]},
    {"id": "warranty", "q": "How long is the warranty on a Gizmo?", "pages": ["warranty.md"],
     "answer_contains": ["3 years"]},
    # Labelled with the wrong page on purpose: a right answer from shipping.md must not count.
    {"id": "mislabelled", "q": "How long does express delivery take?", "pages": ["warranty.md"]},
    {"id": "mower", "q": "Do you sell lawn mowers?", "pages": [], "kind": "unanswerable"},
    {"id": "human", "q": "I want to talk to a human agent please", "pages": [], "kind": "unanswerable"},
]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gizmo-help")
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text)
    (folder / "notes.txt").write_text("Not indexed: --include takes only the Markdown files.")
    return folder


@pytest.fixture(scope="module")
def questions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("questions") / "gizmo.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return path


@pytest.fixture
def services_env(
    embedding_service: ServiceProcess, retrieval_service: ServiceProcess, memory_service: ServiceProcess
) -> dict[str, str]:
    return {
        **os.environ,
        "CONCIERGE_EMBEDDING_ADDRESS": embedding_service.address,
        "CONCIERGE_RETRIEVAL_ADDRESS": retrieval_service.address,
        "CONCIERGE_MEMORY_ADDRESS": memory_service.address,
    }


def eval_answers(env: dict[str, str], state_dir: Path, *args: str) -> tuple[dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "concierge", "eval", "answers", "--json", "--state-dir", str(state_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_eval_answers_scores_citations_abstentions_and_escalations_of_the_extractive_agent(
    corpus: Path, questions: Path, services_env: dict[str, str], tmp_path: Path
) -> None:
    report, stderr = eval_answers(
        services_env, tmp_path, "--questions", str(questions), "--corpus", str(corpus), "--include", "*.md"
    )
    assert "corpus: 3 documents" in stderr
    assert "erased the evaluation's 6 sessions" in stderr  # the warm-up question's too
    assert (report["agent"], report["provider"]) == ("eval/eval-answers", "extractive")
    answers = {a["id"]: a for a in report["answers"]}
    assert list(answers) == [q["id"] for q in QUESTIONS]

    returns = answers["returns"]
    assert "45 days" in returns["answer"]
    assert "returns.md" in [c["source_uri"] for c in returns["citations"]]
    assert (returns["cites_expected"], returns["holds_expected_text"], returns["abstained"]) == (True, True, False)
    assert answers["warranty"]["cites_expected"]
    mislabelled = answers["mislabelled"]
    assert [c["source_uri"] for c in mislabelled["citations"]] == ["shipping.md"]
    assert (mislabelled["cites_expected"], mislabelled["abstained"]) == (False, False)
    mower = answers["mower"]
    assert (mower["abstained"], mower["escalated"], mower["citations"]) == (True, False, [])
    assert "couldn't find" in mower["answer"]
    human = answers["human"]
    assert (human["abstained"], human["escalated"]) == (True, True)

    overall = report["overall"]
    assert (overall["answerable"], overall["unanswerable"], overall["errors"]) == (3, 2, 0)
    assert overall["cites_expected"] == pytest.approx(2 / 3)
    assert overall["wrongly_abstained"] == 0
    assert (overall["with_expected_text"], overall["holds_expected_text"]) == (2, 1.0)
    assert (overall["abstained"], overall["escalated"]) == (1.0, 0.5)
    assert set(report["by_kind"]) == {"single", "unanswerable"}
    firsts = sorted(a["first_token_ms"] for a in report["answers"])
    assert report["first_token_ms_p50"] == firsts[2]
    assert 0 < report["first_token_ms_p50"] <= report["first_token_ms_p95"] <= report["answer_ms_p95"]
    for answer in report["answers"]:
        assert 0 < answer["first_token_ms"] <= answer["answer_ms"]
        assert 0 <= answer["agent_first_token_ms"] <= answer["agent_total_ms"]


SCRIPTED_MODEL = "gizmo-scripted"


def scripted_support_model(request: RecordedRequest) -> Step:
    """A hosted model as prompts.SOURCE_RULES asks: search, answer citing the passage, or say it cannot help."""
    question = request.texts("user")[-1]
    if "mower" in question:
        return Text("Sorry, our help center doesn't cover that. Shall I connect you with a member of our team?")
    passages = request.last_tool_result
    if passages is None:
        return call("search_knowledge", query=question)
    index = next(n for n in range(1, 6) if f"[{n}] Returns" in passages)
    return Text(f"You have 45 days from delivery to return it [{index}].")


def test_eval_answers_evaluates_a_hosted_agent_from_an_agent_file(
    corpus: Path, services_env: dict[str, str], tmp_path: Path
) -> None:
    agent: dict[str, Any] = {
        "apiVersion": "concierge.dev/v1alpha1",
        "kind": "SupportAgent",
        "metadata": {"name": "gizmo-support", "namespace": "gizmo"},
        "spec": {
            "displayName": "Gizmo Support",
            "model": {"provider": "ollama", "model": SCRIPTED_MODEL},
            "knowledgeBases": ["gizmo-docs"],
        },
    }
    kb = {
        "apiVersion": "concierge.dev/v1alpha1",
        "kind": "KnowledgeBase",
        "metadata": {"name": "gizmo-docs", "namespace": "gizmo"},
        "spec": {"sources": [{"name": "docs", "path": "docs"}]},
    }
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in (QUESTIONS[0], QUESTIONS[3])))
    with LLMServer() as llm:
        agent["spec"]["model"]["endpoint"] = llm.base_url
        # JSON is YAML; the agent moves into the corpus KB's namespace and searches only it.
        (tmp_path / "agent.yaml").write_text(json.dumps(agent) + "\n---\n" + json.dumps(kb))
        llm.script(SCRIPTED_MODEL, otherwise=scripted_support_model)
        report, _ = eval_answers(
            services_env,
            tmp_path,
            "--questions",
            str(questions),
            "--corpus",
            str(corpus),
            "--include",
            "*.md",
            "--agent-file",
            str(tmp_path / "agent.yaml"),
        )
    assert (report["agent"], report["provider"]) == ("eval/gizmo-support", "ollama")
    returns, mower = report["answers"]
    assert (returns["cites_expected"], returns["holds_expected_text"], returns["abstained"]) == (True, True, False)
    assert (mower["abstained"], mower["escalated"]) == (True, False)
    assert (report["overall"]["cites_expected"], report["overall"]["abstained"]) == (1.0, 1.0)
