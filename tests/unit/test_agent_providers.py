"""Building chat clients from a SupportAgent's model settings, and where API keys come from."""

from __future__ import annotations

import pytest
from agent_framework import FunctionInvocationLayer
from agent_framework.openai import OpenAIChatCompletionClient

from concierge.agent.extractive_client import ExtractiveChatClient
from concierge.agent.providers import ProviderConfigError, build_chat_client, chat_options
from concierge.api.resources import SecretKeyRef, SupportAgentSpec, secret_env_var


def spec(**model: object) -> SupportAgentSpec:
    return SupportAgentSpec.model_validate({"displayName": "Acme", "model": model})


def build(s: SupportAgentSpec, environ: dict[str, str] | None = None) -> object:
    return build_chat_client(s, extractive_min_score=0.3, azure_api_version="2024-10-21", environ=environ or {})


def test_secret_env_var_is_named_after_the_secret_and_key() -> None:
    ref = SecretKeyRef(name="openai-credentials", key="apiKey")
    assert secret_env_var(ref) == "CONCIERGE_SECRET_OPENAI_CREDENTIALS_APIKEY"
    assert secret_env_var(SecretKeyRef(name="llm", key="token.v2")) == "CONCIERGE_SECRET_LLM_TOKEN_V2"


def test_extractive_is_the_offline_default_and_runs_tools() -> None:
    client = build(SupportAgentSpec.model_validate({"displayName": "Acme"}))
    assert isinstance(client, ExtractiveChatClient)
    assert isinstance(client, FunctionInvocationLayer)
    assert client.min_vector_score == 0.3


def test_openai_reads_its_key_from_the_mounted_secret_variable() -> None:
    s = spec(provider="openai", model="gpt-4o-mini", secretRef={"name": "openai", "key": "apiKey"})
    client = build(s, {"CONCIERGE_SECRET_OPENAI_APIKEY": "sk-test"})
    assert isinstance(client, OpenAIChatCompletionClient)
    assert client.model == "gpt-4o-mini"
    assert client.client.api_key == "sk-test"


def test_missing_key_names_the_variable_to_set() -> None:
    s = spec(provider="openai", model="gpt-4o-mini", secretRef={"name": "openai", "key": "apiKey"})
    with pytest.raises(ProviderConfigError) as caught:
        build(s, {})
    assert "CONCIERGE_SECRET_OPENAI_APIKEY is not set" in str(caught.value)
    assert "Secret 'openai' key 'apiKey'" in str(caught.value)


def test_ollama_and_compatible_servers_use_their_base_url_and_need_no_key() -> None:
    ollama = build(spec(provider="ollama", model="llama3.2"))
    assert isinstance(ollama, OpenAIChatCompletionClient)
    assert str(ollama.client.base_url).startswith("http://127.0.0.1:11434/v1")
    compatible = build(spec(provider="openai-compatible", model="qwen", endpoint="http://vllm:8000/v1"))
    assert isinstance(compatible, OpenAIChatCompletionClient)
    assert str(compatible.client.base_url).startswith("http://vllm:8000/v1")


def test_azure_openai_routes_to_the_azure_endpoint() -> None:
    s = spec(
        provider="azure-openai",
        model="gpt-4o",
        endpoint="https://acme.openai.azure.com",
        secretRef={"name": "azure", "key": "apiKey"},
    )
    client = build(s, {"CONCIERGE_SECRET_AZURE_APIKEY": "azure-key"})
    assert isinstance(client, OpenAIChatCompletionClient)
    assert "acme.openai.azure.com" in str(client.client.base_url)


def test_hosted_models_get_temperature_and_token_limit() -> None:
    assert chat_options(spec(provider="ollama", model="x", temperature=0.5, maxOutputTokens=300)) == {
        "temperature": 0.5,
        "max_tokens": 300,
    }
    assert chat_options(spec()) == {}
