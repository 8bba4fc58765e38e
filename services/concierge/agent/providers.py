"""Builds the chat client a SupportAgent's `spec.model` asks for.

`extractive` runs offline; the others speak OpenAI's Chat Completions protocol through
agent-framework-openai, with the API key read from the environment the operator mounts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from agent_framework import BaseChatClient, FunctionInvocationConfiguration

from concierge.agent.extractive_client import ExtractiveChatClient, SentenceEmbedder
from concierge.api.resources import SupportAgentSpec, secret_env_var

OLLAMA_DEFAULT_ENDPOINT = "http://127.0.0.1:11434/v1"
# The OpenAI SDK refuses to start without a key; servers that need none accept any value.
NO_KEY = "not-needed"
# A support turn needs a search or two; a model that keeps calling tools is cut off and made to answer.
TURN_LIMITS: FunctionInvocationConfiguration = {"max_iterations": 4, "max_function_calls": 4}


class ProviderConfigError(ValueError):
    """The SupportAgent's model settings cannot produce a client; the message says what to set."""


def api_key(spec: SupportAgentSpec, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key from the environment variable named after `spec.model.secretRef` (None without one)."""
    ref = spec.model.secret_ref
    if ref is None:
        return None
    env = os.environ if environ is None else environ
    variable = secret_env_var(ref)
    value = env.get(variable, "").strip()
    if not value:
        raise ProviderConfigError(
            f"provider `{spec.model.provider}` needs the API key from Secret {ref.name!r} key {ref.key!r}, "
            f"but {variable} is not set; mount the Secret key as that environment variable"
        )
    return value


def build_chat_client(
    spec: SupportAgentSpec,
    *,
    extractive_min_score: float,
    azure_api_version: str,
    environ: Mapping[str, str] | None = None,
    knowledge_scope: str = "",
    embedder: SentenceEmbedder | None = None,
) -> BaseChatClient[Any]:
    """A chat client with function invocation for `spec.model`; raises ProviderConfigError when misconfigured.

    The extractive model also takes what the agent's knowledge bases say they cover (`knowledge_scope`)
    and, to score sentences by meaning, an `embedder`.
    """
    model = spec.model
    if model.provider == "extractive":
        return ExtractiveChatClient(
            min_vector_score=extractive_min_score,
            greeting=spec.greeting,
            scope=knowledge_scope,
            embedder=embedder,
            function_invocation_configuration=TURN_LIMITS,
        )

    from agent_framework.openai import OpenAIChatCompletionClient

    key = api_key(spec, environ)
    endpoint = str(model.endpoint).rstrip("/") if model.endpoint is not None else None
    # Chat Completions for every hosted provider: our memory service owns the history, so the
    # stateless protocol fits (the Responses API would keep a second copy server-side).
    client: BaseChatClient[Any]
    match model.provider:
        case "openai":
            client = OpenAIChatCompletionClient(
                model=model.model, api_key=key, base_url=endpoint, function_invocation_configuration=TURN_LIMITS
            )
        case "azure-openai":
            client = OpenAIChatCompletionClient(
                model=model.model,
                azure_endpoint=endpoint,
                api_key=key,
                api_version=azure_api_version,
                function_invocation_configuration=TURN_LIMITS,
            )
        case "ollama":
            client = OpenAIChatCompletionClient(
                model=model.model,
                api_key=key or NO_KEY,
                base_url=endpoint or OLLAMA_DEFAULT_ENDPOINT,
                function_invocation_configuration=TURN_LIMITS,
            )
        case "openai-compatible":
            client = OpenAIChatCompletionClient(
                model=model.model,
                api_key=key or NO_KEY,
                base_url=endpoint,
                function_invocation_configuration=TURN_LIMITS,
            )
        case _:
            raise ProviderConfigError(f"unknown model provider {model.provider!r}")
    return client


def chat_options(spec: SupportAgentSpec) -> dict[str, Any]:
    """Per-run options for hosted models (the extractive model ignores them)."""
    if spec.model.provider == "extractive":
        return {}
    return {"temperature": spec.model.temperature, "max_tokens": spec.model.max_output_tokens}
