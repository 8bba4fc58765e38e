"""`concierge eval answers`: question formats, document matching, abstention, figures and the agent evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from concierge.agent.chat import default_policy
from concierge.agent.extractive import ABSTAIN_TEXT
from concierge.agent.extractive_client import SEARCH_FAILED_TEXT
from concierge.api.loader import load_paths
from concierge.api.resources import EscalationPolicy
from concierge.cli.main import app
from concierge.evaluation.answers import (
    EVAL_AGENT,
    AgentChoiceError,
    Cited,
    Outcome,
    abstains,
    agent_of,
    evaluated_agent,
    existing_knowledge_base,
    figures,
    report,
    serving_agent,
)
from concierge.evaluation.questions import Question, load_questions, same_document
from concierge.evaluation.retrieval import corpus_knowledge_base

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "examples" / "acme"


def outcome(
    pages: tuple[str, ...],
    cited: tuple[str, ...] = (),
    text: str = "An answer [1].",
    *,
    escalated: bool = False,
    contains: tuple[str, ...] = (),
    first: float | None = 100.0,
    error: str = "",
) -> Outcome:
    question = Question(id=f"q{id(pages)}", q="?", pages=pages, answer_contains=contains)
    return Outcome(
        question=question,
        text=text,
        citations=tuple(Cited(uri, uri) for uri in cited),
        escalated=escalated,
        first_token_ms=first,
        answer_ms=None if first is None else first + 10,
        error=error,
    )


def test_the_acme_question_format_is_read_with_line_ids_and_unanswerable_kind(tmp_path: Path) -> None:
    questions = load_questions(ACME / "questions.jsonl")
    assert len(questions) == 24
    first, last = questions[0], questions[-1]
    assert (first.id, first.pages, first.answer_contains) == ("line-1", ("docs/returns.md",), ("30 days",))
    assert first.kind == "single"
    assert first.answerable
    assert (last.id, last.pages, last.kind) == ("line-24", (), "unanswerable")


def test_documents_match_when_equal_or_one_is_the_others_path_suffix() -> None:
    assert same_document("docs/returns.md", "docs/returns.md")
    assert same_document("returns.md", "docs/returns.md")  # retrieval's key vs the Acme URI
    assert same_document("docs/returns.md", "returns.md")
    assert same_document("library/json.html#basic-usage", "library/json.html")
    assert not same_document("docs/returns.md", "docs/noisy-returns.md")
    assert not same_document("library/json.html", "library/jsonrpc.html")
    assert not same_document("", "returns.md")


def test_abstention_covers_the_extractive_texts_and_a_hosted_models_usual_wording() -> None:
    assert abstains(ABSTAIN_TEXT)
    assert abstains(SEARCH_FAILED_TEXT)
    assert abstains(default_policy(evaluated_agent(corpus_knowledge_base(ROOT), None).agent).spec.customer_message)
    assert abstains("I\u2019m sorry, our help center doesn\u2019t cover lawn mowers.")
    assert abstains("I don't have any information about a student discount.")
    assert abstains("Would you like me to put you in touch with a member of the Acme Support team?")
    assert not abstains("Free standard shipping on orders over $49 [1].")
    assert not abstains("You're welcome! Is there anything else I can help you with?")


def test_an_answer_abstains_only_without_citations_unless_it_escalated() -> None:
    assert outcome((), text=ABSTAIN_TEXT).abstained
    # Quoting a passage that happens to offer a person is an answer, not an abstention.
    assert not outcome(("a.md",), cited=("a.md",), text="Call us to reach a person [1].").abstained
    assert outcome(("a.md",), cited=("a.md",), text="Passing you on.", escalated=True).abstained
    assert not outcome((), text="", error="UNAVAILABLE: down").abstained


def test_figures_count_expected_citations_abstentions_escalations_and_expected_text() -> None:
    outcomes = [
        outcome(
            ("docs/returns.md",),
            cited=("docs/returns.md", "docs/faq.md"),
            text="Within 30 days [1][2].",
            contains=("30 days",),
        ),
        outcome(("docs/returns.md",), cited=("docs/faq.md",), text="Ask us [1].", contains=("30 days",)),
        outcome(("docs/shipping.html",), text=ABSTAIN_TEXT),
        outcome(("docs/warranty-terms.pdf",), text="", error="INTERNAL: boom", first=None),
        outcome((), text=ABSTAIN_TEXT),
        outcome((), text="Handing over.", escalated=True),
        outcome((), cited=("docs/faq.md",), text="We do [1]."),
    ]
    result = figures(outcomes)
    assert (result.answerable, result.unanswerable, result.errors) == (4, 3, 1)
    assert result.cites_expected == 0.25
    assert result.wrongly_abstained == 0.25
    assert (result.with_expected_text, result.holds_expected_text) == (2, 0.5)
    assert result.abstained == pytest.approx(2 / 3)
    assert result.escalated == pytest.approx(1 / 3)


def test_the_report_has_latency_percentiles_and_one_entry_per_question() -> None:
    kb = corpus_knowledge_base(ROOT)
    outcomes = [outcome(("a.md",), cited=("a.md",), first=float(ms)) for ms in range(10, 201, 10)]
    outcomes.append(outcome(("a.md",), error="UNAVAILABLE: down", first=None))
    result = report(evaluated_agent(kb, None).agent, kb.key, outcomes)
    assert (result.first_token_ms_p50, result.first_token_ms_p95) == (100.0, 190.0)
    assert (result.answer_ms_p50, result.answer_ms_p95) == (110.0, 200.0)
    assert result.provider == "extractive"
    entry = result.answers[0]
    assert entry["cites_expected"] is True
    assert entry["citations"] == [{"source_uri": "a.md", "title": "a.md"}]
    assert result.answers[-1]["first_token_ms"] is None
    json.dumps(result.as_dict())  # --json prints it as is


def test_without_an_agent_file_an_extractive_agent_searches_only_the_evaluated_kb() -> None:
    kb = corpus_knowledge_base(ROOT / "docs", ["**/*.md"])
    chosen = evaluated_agent(kb, None)
    assert (chosen.agent.name, chosen.agent.namespace) == (EVAL_AGENT, "eval")
    assert chosen.agent.spec.model.provider == "extractive"
    assert chosen.agent.spec.knowledge_bases == [kb.name]
    assert chosen.resources == [kb, chosen.agent]


def test_an_agent_file_moves_into_the_kbs_namespace_with_its_policy_and_the_kbs_description(tmp_path: Path) -> None:
    policy = (
        (ACME / "escalationpolicy.yaml")
        .read_text()
        .replace("type: inbox", "type: webhook\n    url: https://hooks.example/x")
    )
    (tmp_path / "policy.yaml").write_text(policy)
    for name in ("supportagent.yaml", "knowledgebase.yaml"):
        (tmp_path / name).write_text((ACME / name).read_text())
    given = load_paths([tmp_path])
    chosen = evaluated_agent(existing_knowledge_base("acme", "acme-help-center"), given)
    assert chosen.agent.key == "acme/acme-support"
    assert "Acme Home Robotics" in chosen.knowledge_base.spec.description  # the extractive model's scope
    (moved_policy,) = chosen.others
    assert isinstance(moved_policy, EscalationPolicy)
    assert moved_policy.spec.handoff.type == "inbox"
    assert moved_policy.spec.rules.keywords == given.policies[0].spec.rules.keywords
    assert chosen.notes == [
        "hand-offs of acme/acme-escalation go to the built-in inbox during the evaluation, not its webhook"
    ]

    elsewhere = evaluated_agent(corpus_knowledge_base(tmp_path), given)
    assert elsewhere.agent.namespace == "eval"
    assert elsewhere.others[0].namespace == "eval"
    assert elsewhere.agent.spec.knowledge_bases == [elsewhere.knowledge_base.name]
    assert elsewhere.agent.spec.instructions == given.agents[0].spec.instructions
    assert [r.KIND for r in elsewhere.resources] == ["KnowledgeBase", "SupportAgent", "EscalationPolicy"]
    # What the agent service will load: valid, references resolved.
    assert [a.key for a in load_paths([chosen.write(tmp_path / "a")]).agents] == ["acme/acme-support"]
    assert [a.key for a in load_paths([elsewhere.write(tmp_path / "b")]).agents] == ["eval/acme-support"]


def test_an_agent_file_with_several_unbound_agents_is_refused(tmp_path: Path) -> None:
    agent = (ACME / "supportagent.yaml").read_text().replace("  escalationPolicy: acme-escalation\n", "")
    (tmp_path / "a.yaml").write_text(agent.replace("name: acme-support", "name: one"))
    (tmp_path / "b.yaml").write_text(agent.replace("name: acme-support", "name: two"))
    (tmp_path / "kb.yaml").write_text((ACME / "knowledgebase.yaml").read_text())
    with pytest.raises(AgentChoiceError, match="2 SupportAgents"):
        evaluated_agent(existing_knowledge_base("acme", "other-kb"), load_paths([tmp_path]))


def test_the_running_ups_agent_is_used_only_for_its_kb_and_with_an_inbox_hand_off(tmp_path: Path) -> None:
    resources = load_paths([ACME])
    assert serving_agent(resources, "acme", "acme-help-center") == resources.agents[0]
    assert serving_agent(resources, "acme", "other-kb") is None
    assert serving_agent(resources, "other", "acme-help-center") is None
    policy = (
        (ACME / "escalationpolicy.yaml")
        .read_text()
        .replace("type: inbox", "type: webhook\n    url: https://hooks.example/x")
    )
    (tmp_path / "policy.yaml").write_text(policy)
    for name in ("supportagent.yaml", "knowledgebase.yaml"):
        (tmp_path / name).write_text((ACME / name).read_text())
    webhooked = load_paths([tmp_path])
    assert serving_agent(webhooked, "acme", "acme-help-center") is None
    # ... so that agent is evaluated in a process of the command's own, handing off to the inbox.
    chosen = agent_of(webhooked, existing_knowledge_base("acme", "acme-help-center"))
    assert chosen is not None
    assert chosen.agent.key == "acme/acme-support"
    assert [p.spec.handoff.type for p in chosen.others if isinstance(p, EscalationPolicy)] == ["inbox"]
    assert agent_of(webhooked, existing_knowledge_base("acme", "other-kb")) is None


def test_eval_answers_refuses_bad_arguments_before_starting_anything(tmp_path: Path) -> None:
    runner = CliRunner()
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": "1", "q": "refund?", "pages": []}\n')
    base = ["eval", "answers", "--questions", str(questions), "--state-dir", str(tmp_path)]
    neither = runner.invoke(app, base)
    both = runner.invoke(app, [*base, "--kb", "x", "--corpus", str(tmp_path)])
    include = runner.invoke(app, [*base, "--kb", "x", "--include", "*.md"])
    for result in (neither, both, include):
        assert result.exit_code == 2, result.output
    assert "either --corpus DIR or --kb NAME" in neither.output
    assert "--include selects files of --corpus" in include.output
    bad_agent = tmp_path / "agent.yaml"
    bad_agent.write_text("apiVersion: concierge.dev/v1alpha1\nkind: SupportAgent\nmetadata: {name: a}\nspec: {}\n")
    refused = runner.invoke(app, [*base, "--kb", "x", "--agent-file", str(bad_agent)])
    assert refused.exit_code == 2
    assert "nothing was evaluated" in refused.output
    assert not (tmp_path / "pgdata").exists()
