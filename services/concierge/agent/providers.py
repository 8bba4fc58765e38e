"""Builds the chat client a SupportAgent's `spec.model` asks for, and says what a provider failure means.

`extractive` runs offline; the others speak OpenAI's Chat Completions protocol through
agent-framework-openai, with the API key read from the environment the operator mounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import httpx2
import openai
from agent_framework import BaseChatClient, FunctionInvocationConfiguration

from concierge.agent.extractive_client import ExtractiveChatClient, SentenceEmbedder
from concierge.api.resources import ModelSpec, SupportAgentSpec, secret_env_var, secret_value

if TYPE_CHECKING:
    from concierge.agent.config import Settings

OPENAI_DEFAULT_ENDPOINT = "https://api.openai.com/v1"
OLLAMA_DEFAULT_ENDPOINT = "http://127.0.0.1:11434/v1"
# The OpenAI SDK refuses to start without a key; servers that need none accept any value.
NO_KEY = "not-needed"
# A support turn needs a search or two; a model that keeps calling tools is cut off and made to answer.
TURN_LIMITS: FunctionInvocationConfiguration = {"max_iterations": 4, "max_function_calls": 4}
# Statuses the OpenAI SDK retries (with exponential backoff and jitter, or after Retry-After).
RETRIED_STATUSES = frozenset({408, 409, 429})
MAX_PROVIDER_DETAIL_CHARS = 200


class ProviderConfigError(ValueError):
    """The SupportAgent's model settings cannot produce a client; the message says what to set."""


@dataclass(frozen=True)
class ProviderLimits:
    """How long one HTTP request to a hosted model may wait, and how often a failed one is retried.

    The OpenAI SDK does the retrying: 408/409/429/5xx, connection errors and timeouts, after the
    provider's Retry-After (or retry-after-ms) when it sends one, else after 0.5 s, 1 s, 2 s ... (at
    most 8 s) less up to 25 % jitter. A Retry-After longer than `max_retry_after_seconds` is not
    waited for: the turn fails at once rather than leave the customer looking at nothing.
    """

    timeout_seconds: float = 30.0
    max_retries: int = 2
    max_retry_after_seconds: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderLimits:
        return cls(
            timeout_seconds=settings.model_timeout_seconds,
            max_retries=settings.model_max_retries,
            max_retry_after_seconds=settings.model_max_retry_after_seconds,
        )


def _waits_too_long(client: openai.AsyncOpenAI, response: httpx2.Response, cap: float) -> bool:
    # The SDK's own parser, so `retry-after-ms`, seconds and HTTP dates all count.
    wait = client._parse_retry_after_header(response.headers)
    return wait is not None and wait > cap


class _OpenAI(openai.AsyncOpenAI):
    """AsyncOpenAI that gives up on a Retry-After longer than `max_retry_after_seconds` (the SDK waits up to 120 s).

    The SDK has no setting for that cap; `_should_retry` is where it decides. Copies made with
    `with_options()` keep the class default cap.
    """

    max_retry_after_seconds: float = ProviderLimits.max_retry_after_seconds

    def _should_retry(self, response: httpx2.Response) -> bool:
        if _waits_too_long(self, response, self.max_retry_after_seconds):
            return False
        return super()._should_retry(response)


class _AzureOpenAI(openai.AsyncAzureOpenAI):
    """AsyncAzureOpenAI with the same Retry-After cap as `_OpenAI`."""

    max_retry_after_seconds: float = ProviderLimits.max_retry_after_seconds

    def _should_retry(self, response: httpx2.Response) -> bool:
        if _waits_too_long(self, response, self.max_retry_after_seconds):
            return False
        return super()._should_retry(response)


def api_key(spec: SupportAgentSpec, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key from the environment variable named after `spec.model.secretRef` (None without one)."""
    ref = spec.model.secret_ref
    if ref is None:
        return None
    value = secret_value(ref, environ)
    if value is None:
        raise ProviderConfigError(
            f"provider `{spec.model.provider}` needs the API key from Secret {ref.name!r} key {ref.key!r}, "
            f"but {secret_env_var(ref)} is not set; mount the Secret key as that environment variable"
        )
    return value


def endpoint_url(model: ModelSpec) -> str:
    """Where the provider is reached: the spec's endpoint, else the provider's well-known one."""
    if model.endpoint is not None:
        return str(model.endpoint).rstrip("/")
    if model.provider == "ollama":
        return OLLAMA_DEFAULT_ENDPOINT
    return OPENAI_DEFAULT_ENDPOINT


def is_azure_v1(endpoint: str) -> bool:
    """Azure's OpenAI-compatible `/openai/v1` surface takes plain OpenAI requests (no deployments, no api-version)."""
    return endpoint.rstrip("/").endswith("/openai/v1")


def sdk_client(
    model: ModelSpec, key: str | None, limits: ProviderLimits, *, azure_api_version: str
) -> openai.AsyncOpenAI:
    """The OpenAI SDK client for a hosted provider, with our timeout and retry policy.

    Endpoint, key and API version are passed explicitly, so no OPENAI_* / AZURE_OPENAI_* variable of
    the pod can redirect the requests or swap the key. Usable by the Chat Completions and the
    Responses clients of agent-framework-openai alike (`async_client=`).
    """
    endpoint = endpoint_url(model)
    common: dict[str, Any] = {"timeout": limits.timeout_seconds, "max_retries": limits.max_retries}
    client: _OpenAI | _AzureOpenAI
    if model.provider == "azure-openai" and not is_azure_v1(endpoint):
        # Classic Azure routes: /openai/deployments/{model}/chat/completions?api-version=…, key in `api-key`.
        client = _AzureOpenAI(
            azure_endpoint=endpoint,
            azure_deployment=model.model,
            api_version=azure_api_version,
            api_key=key,
            **common,
        )
    else:
        client = _OpenAI(api_key=key or NO_KEY, base_url=endpoint, **common)
    client.max_retry_after_seconds = limits.max_retry_after_seconds
    return client


def build_chat_client(
    spec: SupportAgentSpec,
    *,
    extractive_min_score: float,
    azure_api_version: str,
    limits: ProviderLimits | None = None,
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
    if model.provider not in ("openai", "azure-openai", "ollama", "openai-compatible"):
        raise ProviderConfigError(f"unknown model provider {model.provider!r}")
    if not model.model:
        raise ProviderConfigError(f"provider `{model.provider}` needs spec.model.model (the model or deployment name)")

    from agent_framework.openai import OpenAIChatCompletionClient

    key = api_key(spec, environ)
    # Chat Completions for every hosted provider: our memory service owns the history, so the
    # stateless protocol fits (the Responses API would keep a second copy server-side).
    return OpenAIChatCompletionClient(
        model=model.model,
        async_client=sdk_client(model, key, limits or ProviderLimits(), azure_api_version=azure_api_version),
        function_invocation_configuration=TURN_LIMITS,
    )


def chat_options(spec: SupportAgentSpec) -> dict[str, Any]:
    """Per-run options for hosted models (the extractive model ignores them)."""
    if spec.model.provider == "extractive":
        return {}
    return {"temperature": spec.model.temperature, "max_tokens": spec.model.max_output_tokens}


@dataclass(frozen=True)
class ProviderFailure:
    """What a failed model call means for the turn: its gRPC status and a message for the logs."""

    code: grpc.StatusCode
    message: str


def _root_cause(err: BaseException) -> BaseException:
    """The OpenAI SDK or HTTP error under agent-framework's wrapping, else `err` itself."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, (openai.APIError, httpx2.TransportError)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return err


def _provider_detail(err: openai.APIError) -> str:
    """The provider's own error message, shortened; empty when it has none."""
    body = err.body
    detail = body.get("message") if isinstance(body, Mapping) else None
    if not isinstance(detail, str) or not detail.strip():
        return ""
    detail = " ".join(detail.split())
    if len(detail) > MAX_PROVIDER_DETAIL_CHARS:
        detail = detail[: MAX_PROVIDER_DETAIL_CHARS - 1] + "…"
    return f": {detail}"


def _retry_after(headers: httpx2.Headers) -> float | None:
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers.get(name, "")) / divisor
        except ValueError:
            continue
    return None


def describe_failure(model: ModelSpec, err: BaseException, limits: ProviderLimits) -> ProviderFailure:
    """Maps a failed model run to a status: 429 RESOURCE_EXHAUSTED, timeouts DEADLINE_EXCEEDED, else UNAVAILABLE.

    The message names the provider, model and endpoint and never the key: the SDK does not put the
    key in its errors, and the provider's text is left out of authentication failures (OpenAI echoes
    part of a wrong key there).
    """
    where = f"model provider `{model.provider}` (model {model.model!r} at {endpoint_url(model)})"
    tries = f"tried up to {limits.max_retries + 1} times"
    cause = _root_cause(err)
    # Before the answer starts the SDK raises APITimeoutError and retries; a stream that stalls
    # mid-answer raises the HTTP library's ReadTimeout and cannot be retried.
    if isinstance(cause, (openai.APITimeoutError, httpx2.TimeoutException)):
        return ProviderFailure(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"{where} sent nothing for {limits.timeout_seconds:g} s ({tries}); raise "
            "CONCIERGE_MODEL_TIMEOUT_SECONDS if the model is this slow",
        )
    if isinstance(cause, (openai.APIConnectionError, httpx2.TransportError)):
        inner = cause.__cause__ if isinstance(cause, openai.APIConnectionError) else cause
        reason = f": {type(inner).__name__}: {inner}" if inner is not None else ""
        return ProviderFailure(grpc.StatusCode.UNAVAILABLE, f"{where} could not be reached ({tries}){reason}")
    if isinstance(cause, openai.APIStatusError):
        status = cause.status_code
        if status in (401, 403):
            ref = model.secret_ref
            fix = (
                f"check Secret {ref.name!r} key {ref.key!r}"
                if ref is not None
                else "set spec.model.secretRef to the Secret holding the API key"
            )
            return ProviderFailure(grpc.StatusCode.UNAVAILABLE, f"{where} refused the API key (HTTP {status}); {fix}")
        detail = _provider_detail(cause)
        if status == 404:
            return ProviderFailure(
                grpc.StatusCode.UNAVAILABLE,
                f"{where} answered HTTP 404{detail}; check spec.model.model and spec.model.endpoint",
            )
        wait = _retry_after(cause.response.headers)
        if wait is not None and wait > limits.max_retry_after_seconds:
            retried = (
                f"asked to wait {wait:g} s, longer than CONCIERGE_MODEL_MAX_RETRY_AFTER_SECONDS="
                f"{limits.max_retry_after_seconds:g}, so it was not retried"
            )
        else:
            retried = tries
        if status == 429:
            return ProviderFailure(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"{where} is rate-limiting requests (HTTP 429, {retried}){detail}"
            )
        if status >= 500 or status in RETRIED_STATUSES:
            return ProviderFailure(grpc.StatusCode.UNAVAILABLE, f"{where} answered HTTP {status} ({retried}){detail}")
        return ProviderFailure(grpc.StatusCode.INTERNAL, f"{where} rejected the request (HTTP {status}){detail}")
    return ProviderFailure(grpc.StatusCode.UNAVAILABLE, f"{where} failed: {type(cause).__name__}: {cause}")
