"""Instructions sent to language-model providers: the SupportAgent's own, plus how to use sources.

Pure; the extractive provider ignores instructions, hosted models read them as the system prompt.
"""

from __future__ import annotations

from concierge.api.resources import SupportAgentSpec

SOURCE_RULES = """\
Answer customer questions using the search_knowledge tool. Search before answering any question
about products, orders, policies or troubleshooting; answer only from the passages it returns.
Cite every fact with the [n] marker of the passage it comes from, for example "within 30 days [1]".
Do not invent markers, and do not cite passages you did not use. If the passages do not answer the
question, say so plainly and offer to connect the customer with a member of the support team.
Greetings and thanks need no search."""


def instructions(spec: SupportAgentSpec) -> str:
    """The SupportAgent's persona followed by the rules that make citations work."""
    return f"{spec.instructions.strip()}\n\n{SOURCE_RULES}"
