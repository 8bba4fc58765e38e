"""Building chat clients from a SupportAgent's model settings, where API keys come from, and what failures mean."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx2
import openai
import pytest
from agent_framework import FunctionInvocationLayer
from agent_framework.exceptions import ChatClientException
from agent_framework.openai import OpenAIChatCompletionClient

from concierge.agent.config import Settings
from concierge.agent.extractive_client import ExtractiveChatClient
from concierge.agent.handoff import signing_secret
from concierge.agent.providers import (
    ProviderConfigError,
    ProviderLimits,
    build_chat_client,
    chat_options,
    describe_failure,
)
from concierge.api.resources import EscalationPolicy, SecretKeyRef, SupportAgentSpec, secret_env_var


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


def hosted(provider: str = "openai-compatible", **extra: object) -> SupportAgentSpec:
    model: dict[str, object] = {"provider": provider, "model": "qwen", "endpoint": "http://vllm:8000/v1", **extra}
    return spec(**model)


def test_hosted_clients_get_the_timeout_and_retry_settings() -> None:
    limits = ProviderLimits(timeout_seconds=7.5, max_retries=4, max_retry_after_seconds=3.0)
    client = build_chat_client(hosted(), extractive_min_score=0.3, azure_api_version="v", limits=limits, environ={})
    assert isinstance(client, OpenAIChatCompletionClient)
    assert client.client.timeout == 7.5
    assert client.client.max_retries == 4
    assert client.client.max_retry_after_seconds == 3.0


def test_limits_come_from_the_agent_settings() -> None:
    settings = Settings(
        retrieval_address="r:1",
        memory_address="m:1",
        resources_dir=Path("."),
        model_timeout_seconds=12,
        model_max_retries=0,
        model_max_retry_after_seconds=1,
    )
    assert ProviderLimits.from_settings(settings) == ProviderLimits(12, 0, 1)


def test_openai_environment_variables_cannot_redirect_requests_or_swap_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://elsewhere:9999/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-pod")
    s = spec(provider="openai", model="gpt-4o-mini", secretRef={"name": "openai", "key": "apiKey"})
    client = build(s, {"CONCIERGE_SECRET_OPENAI_APIKEY": "sk-from-the-secret"})
    assert isinstance(client, OpenAIChatCompletionClient)
    assert str(client.client.base_url) == "https://api.openai.com/v1/"
    assert client.client.api_key == "sk-from-the-secret"


def test_azure_classic_endpoint_uses_the_deployment_route_and_azure_v1_the_openai_one() -> None:
    env = {"CONCIERGE_SECRET_AZURE_APIKEY": "azure-key"}
    ref = {"name": "azure", "key": "apiKey"}
    classic = build(
        spec(provider="azure-openai", model="gpt-4o", endpoint="https://acme.openai.azure.com", secretRef=ref), env
    )
    assert isinstance(classic, OpenAIChatCompletionClient)
    assert isinstance(classic.client, openai.AsyncAzureOpenAI)
    assert str(classic.client.base_url) == "https://acme.openai.azure.com/openai/deployments/gpt-4o/"
    v1 = build(
        spec(
            provider="azure-openai", model="gpt-4o", endpoint="https://acme.openai.azure.com/openai/v1", secretRef=ref
        ),
        env,
    )
    assert isinstance(v1, OpenAIChatCompletionClient)
    assert not isinstance(v1.client, openai.AsyncAzureOpenAI)
    assert str(v1.client.base_url) == "https://acme.openai.azure.com/openai/v1/"


# --- what a failed model call tells the customer's client and the logs -----------------------------

MODEL = hosted(secretRef={"name": "vllm", "key": "token"}).model
LIMITS = ProviderLimits(timeout_seconds=20, max_retries=2, max_retry_after_seconds=10)
REQUEST = httpx2.Request("POST", "http://vllm:8000/v1/chat/completions")


def status_error(status: int, message: str, **headers: str) -> openai.APIStatusError:
    response = httpx2.Response(status, headers=headers, request=REQUEST)
    return openai.APIStatusError(f"Error code: {status}", response=response, body={"message": message})


def wrapped(err: Exception) -> Exception:
    """As agent-framework raises it: ChatClientException from the SDK error."""
    try:
        try:
            raise err
        except Exception as inner:
            raise ChatClientException("service failed to complete the prompt", inner_exception=inner) from inner
    except ChatClientException as outer:
        return outer


def test_rate_limit_that_outlasts_the_retries_is_resource_exhausted() -> None:
    failure = describe_failure(MODEL, wrapped(status_error(429, "Rate limit reached for qwen")), LIMITS)
    assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert failure.message == (
        "model provider `openai-compatible` (model 'qwen' at http://vllm:8000/v1) is rate-limiting requests "
        "(HTTP 429, tried up to 3 times): Rate limit reached for qwen"
    )


def test_rate_limit_asking_for_more_than_the_cap_says_it_was_not_retried() -> None:
    failure = describe_failure(MODEL, status_error(429, "slow down", **{"retry-after": "30"}), LIMITS)
    assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "asked to wait 30 s, longer than CONCIERGE_MODEL_MAX_RETRY_AFTER_SECONDS=10, so it was not retried" in (
        failure.message
    )


def test_server_errors_are_unavailable_with_the_providers_reason() -> None:
    failure = describe_failure(MODEL, wrapped(status_error(503, "The  server\nis overloaded")), LIMITS)
    assert failure.code == grpc.StatusCode.UNAVAILABLE
    assert failure.message.endswith("answered HTTP 503 (tried up to 3 times): The server is overloaded")


def test_a_refused_key_names_the_secret_but_not_what_the_provider_echoed() -> None:
    echoed = "Incorrect API key provided: sk-proj-****************wxyz"
    failure = describe_failure(MODEL, wrapped(status_error(401, echoed)), LIMITS)
    assert failure.code == grpc.StatusCode.UNAVAILABLE
    assert failure.message.endswith("refused the API key (HTTP 401); check Secret 'vllm' key 'token'")
    assert "wxyz" not in failure.message


def test_timeouts_before_and_during_the_stream_are_deadline_exceeded() -> None:
    for err in (openai.APITimeoutError(REQUEST), httpx2.ReadTimeout("timed out", request=REQUEST)):
        failure = describe_failure(MODEL, wrapped(err), LIMITS)
        assert failure.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "sent nothing for 20 s (tried up to 3 times); raise CONCIERGE_MODEL_TIMEOUT_SECONDS" in failure.message


def test_unreachable_provider_is_unavailable() -> None:
    try:
        raise openai.APIConnectionError(request=REQUEST) from httpx2.ConnectError("[Errno 111] Connection refused")
    except openai.APIConnectionError as err:
        failure = describe_failure(MODEL, wrapped(err), LIMITS)
    assert failure.code == grpc.StatusCode.UNAVAILABLE
    assert failure.message.endswith(
        "could not be reached (tried up to 3 times): ConnectError: [Errno 111] Connection refused"
    )


def test_a_rejected_request_is_internal_and_other_failures_unavailable() -> None:
    bad = describe_failure(MODEL, wrapped(status_error(400, "max_completion_tokens is too large")), LIMITS)
    assert bad.code == grpc.StatusCode.INTERNAL
    assert bad.message.endswith("rejected the request (HTTP 400): max_completion_tokens is too large")
    other = describe_failure(MODEL, ValueError("unparseable chunk"), LIMITS)
    assert other.code == grpc.StatusCode.UNAVAILABLE
    assert other.message.endswith("failed: ValueError: unparseable chunk")


def test_a_webhook_key_comes_stripped_from_its_mounted_variable_and_is_none_when_missing() -> None:
    policy = EscalationPolicy.model_validate(
        {
            "apiVersion": "concierge.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "hooks", "namespace": "acme"},
            "spec": {
                "handoff": {"type": "webhook", "url": "https://hooks.example.com/x", "secretRef": {"name": "hmac"}}
            },
        }
    )
    assert signing_secret(policy, {"CONCIERGE_SECRET_HMAC_APIKEY": " k3y \n"}) == "k3y"
    assert signing_secret(policy, {}) is None
