"""Pydantic models of the KnowledgeBase, SupportAgent and EscalationPolicy resources.

Field names are camelCase on the wire (Kubernetes style) and snake_case in Python.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

API_GROUP = "concierge.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DURATION = r"^([0-9]+(s|m|h|d))+$"
_DURATION_PART = re.compile(r"([0-9]+)(s|m|h|d)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_REFRESH_SECONDS = 60

Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="A DNS-1123 label: lower-case letters, digits and '-'.",
    ),
]


def duration_seconds(value: str) -> int:
    """Seconds in a duration such as `90s`, `15m`, `1h30m` or `7d`."""
    return sum(int(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(value))


class Model(BaseModel):
    """Base of every spec part: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )


# --- shared parts -----------------------------------------------------------------------


class Condition(Model):
    """One observation of a resource's state, as in Kubernetes' metav1.Condition."""

    type: str = Field(description="Condition type, e.g. `Ready` or `Synced`.")
    status: Literal["True", "False", "Unknown"] = Field(description="Whether the condition holds.")
    reason: str = Field(default="", description="CamelCase machine-readable cause.")
    message: str = Field(default="", description="Human-readable explanation.")
    last_transition_time: str = Field(default="", description="RFC 3339 time the status last changed.")
    observed_generation: int = Field(default=0, description="metadata.generation this condition reflects.")


class SecretKeyRef(Model):
    """A key of a Secret in the resource's own namespace."""

    name: Name = Field(description="Name of the Secret (same namespace).")
    key: str = Field(default="apiKey", min_length=1, description="Key inside the Secret's data.")


def secret_env_var(ref: SecretKeyRef) -> str:
    """Where the operator mounts a Secret key: `CONCIERGE_SECRET_<NAME>_<KEY>`, upper case, `_` for others.

    `{name: openai-credentials, key: apiKey}` → `CONCIERGE_SECRET_OPENAI_CREDENTIALS_APIKEY`.
    """
    return "CONCIERGE_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{ref.name}_{ref.key}".upper())


def secret_value(ref: SecretKeyRef, environ: Mapping[str, str] | None = None) -> str | None:
    """The mounted Secret key's value (stripped), or None when it is not set."""
    return (os.environ if environ is None else environ).get(secret_env_var(ref), "").strip() or None


class ObjectMeta(Model):
    """The parts of Kubernetes metadata that Concierge reads."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL, description="Resource name, a DNS-1123 label.")
    namespace: str = Field(
        default="default",
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="Namespace, which is the tenant that owns the resource.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Kubernetes labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Kubernetes annotations.")
    generation: int = Field(default=0, description="Set by the API server.")


# --- KnowledgeBase ---------------------------------------------------------------------

SUPPORTED_EXTENSIONS = (
    ".md",
    ".markdown",
    ".txt",
    ".html",
    ".htm",
    ".pdf",
    ".docx",
    ".pptx",
    ".xlsx",
    ".csv",
    ".json",
)


RESERVED_METADATA = frozenset({"source", "format"})


class InlineDocument(Model):
    """A document written directly in the resource."""

    title: str = Field(min_length=1, max_length=300, description="Title shown in citations.")
    content: str = Field(min_length=1, max_length=1_000_000, description="The document text.")
    format: Literal["markdown", "text", "html", "csv", "json"] = Field(
        default="markdown", description="How `content` is written."
    )


class CrawlSpec(Model):
    """How a `url` source grows into many documents: by following links, or by reading a sitemap.

    Pages stay on the scheme, host and port of `url`, and robots.txt is obeyed.
    """

    max_depth: int = Field(
        default=2,
        ge=0,
        le=5,
        description="Links followed away from the start page (or from the pages a sitemap lists); "
        "0 reads only the start page, or only the sitemap's pages.",
    )
    max_pages: int = Field(default=200, ge=1, le=10_000, description="Most pages read in one sync.")
    sitemap: bool = Field(
        default=False,
        description="`url` is an XML sitemap (a `<urlset>`, or a `<sitemapindex>` of them; gzip allowed): "
        "the pages it lists are the start pages.",
    )
    include: list[Annotated[str, Field(min_length=1, max_length=500, pattern="^/")]] = Field(
        default_factory=list,
        max_length=50,
        description="URL paths of the pages to read: globs (`*` within a segment, `**` across segments) or, "
        "without wildcards, prefixes such as `/docs/`. Empty: everything under the folder of `url` (for a "
        "sitemap, the whole host). The start page is always read for its links, and kept only if it matches.",
    )
    exclude: list[Annotated[str, Field(min_length=1, max_length=500, pattern="^/")]] = Field(
        default_factory=list,
        max_length=50,
        description="URL paths never read, written as in `include`; they win over `include`.",
    )


class KnowledgeSource(Model):
    """Where documents come from. Set exactly one of `inline`, `path` or `url`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.inline) ? 1 : 0) + (has(self.path) ? 1 : 0) + (has(self.url) ? 1 : 0) == 1",
                    "message": "set exactly one of inline, path or url",
                },
                {"rule": "!has(self.crawl) || has(self.url)", "message": "crawl needs a url to start from"},
                {
                    "rule": "!has(self.metadata) || !('source' in self.metadata || 'format' in self.metadata)",
                    "message": "metadata keys source and format are set by Concierge; choose other keys",
                },
            ]
        }
    )

    name: Name = Field(description="Name of the source, used in status and errors.")
    inline: list[InlineDocument] | None = Field(default=None, description="Documents written in the resource.")
    path: str | None = Field(
        default=None,
        min_length=1,
        description="A file or folder; relative paths resolve against the resource's folder "
        "(laptop) or the mounted volume (cluster).",
    )
    url: AnyHttpUrl | None = Field(
        default=None,
        description="An http(s) URL: one document, or where a `crawl` starts.",
        json_schema_extra={"pattern": "^https?://"},
    )
    crawl: CrawlSpec | None = Field(
        default=None,
        description="Read the pages `url` links to (or, with `sitemap`, the pages it lists) instead of `url` "
        "alone; each page is one document, cited by its URL.",
    )
    metadata: dict[Annotated[str, Field(min_length=1, max_length=63)], Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict,
        max_length=16,
        description="Labels of every document of this source (e.g. `product: router`), matched by search filters "
        "besides `source` and `format`.",
    )
    include: list[str] = Field(
        default_factory=lambda: [f"**/*{ext}" for ext in SUPPORTED_EXTENSIONS],
        description="Glob patterns of files to take from a folder `path`.",
    )

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> KnowledgeSource:
        given = [k for k in ("inline", "path", "url") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of `inline`, `path` or `url` (got {', '.join(given) or 'none'})")
        if self.crawl is not None and self.url is None:
            raise ValueError(f"`crawl` needs a `url` to start from; this source has `{given[0]}`")
        if reserved := sorted(RESERVED_METADATA & set(self.metadata)):
            raise ValueError(
                f"metadata key(s) {', '.join(reserved)} are set by Concierge (the source name and document format); "
                "choose other keys"
            )
        return self

    @property
    def kind(self) -> Literal["inline", "path", "url"]:
        return "inline" if self.inline is not None else "path" if self.path is not None else "url"


class ChunkingSpec(Model):
    """How documents are cut into passages for embedding."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.overlapTokens < self.maxTokens",
                    "message": "overlapTokens must be smaller than maxTokens",
                }
            ]
        }
    )

    max_tokens: int = Field(default=200, ge=32, le=2048, description="Largest chunk, in model tokens.")
    overlap_tokens: int = Field(default=30, ge=0, le=512, description="Tokens repeated between neighbouring chunks.")

    @model_validator(mode="after")
    def _overlap_below_max(self) -> ChunkingSpec:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(
                f"overlapTokens ({self.overlap_tokens}) must be smaller than maxTokens ({self.max_tokens})"
            )
        return self


class EmbeddingSpec(Model):
    """Which embedding model indexes this knowledge base."""

    model: str = Field(
        default="all-MiniLM-L6-v2",
        min_length=1,
        description="Model id served by an embedding service (e.g. `all-MiniLM-L6-v2`, `embeddinggemma-300m`).",
    )


class KnowledgeBaseSpec(Model):
    """Desired state of a KnowledgeBase."""

    description: str = Field(default="", max_length=2000, description="What this knowledge covers.")
    sources: list[KnowledgeSource] = Field(
        min_length=1,
        max_length=100,
        description="Where the documents come from.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    chunking: ChunkingSpec = Field(default_factory=ChunkingSpec, description="Chunking settings.")
    embedding: EmbeddingSpec = Field(default_factory=EmbeddingSpec, description="Embedding model settings.")
    language: Literal["simple", "english", "german", "french", "spanish", "italian", "dutch", "portuguese"] = Field(
        default="english", description="Postgres text-search configuration for full-text search."
    )
    refresh_interval: str = Field(
        default="24h", pattern=DURATION, description="How often sources are re-synced, e.g. `30m`, `6h`, `1d`."
    )

    @field_validator("refresh_interval")
    @classmethod
    def _refresh_not_too_often(cls, value: str) -> str:
        if duration_seconds(value) < MIN_REFRESH_SECONDS:
            raise ValueError(f"refreshInterval {value!r} is shorter than the minimum of 1m; use e.g. `15m` or `1h`")
        return value

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, sources: list[KnowledgeSource]) -> list[KnowledgeSource]:
        names = [s.name for s in sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique; repeated: {', '.join(duplicates)}")
        return sources


class SourceError(Model):
    source: str = Field(description="Source name and document that failed.")
    reason: str = Field(description="Why it failed.")


class KnowledgeBaseStatus(Model):
    """Observed state of a KnowledgeBase."""

    phase: Literal["Pending", "Syncing", "Ready", "Degraded", "Failed"] = Field(
        default="Pending", description="Short state for `kubectl get`."
    )
    document_count: int = Field(default=0, description="Documents stored.")
    chunk_count: int = Field(default=0, description="Chunks stored.")
    last_sync_time: str = Field(default="", description="RFC 3339 end of the last sync.")
    source_errors: list[SourceError] = Field(
        default_factory=list, description="Documents that failed in the last sync."
    )
    conditions: list[Condition] = Field(default_factory=list, description="`Ready`, `Synced`.")
    observed_generation: int = Field(default=0, description="Generation the status reflects.")


# --- EscalationPolicy ------------------------------------------------------------------


class TurnsRule(Model):
    enabled: bool = Field(default=True, description="Whether the rule is evaluated.")
    turns: int = Field(default=2, ge=1, le=50, description="Consecutive customer turns before it fires.")


class LowConfidenceRule(TurnsRule):
    threshold: float = Field(
        default=0.35, ge=0, le=1, description="Best retrieval similarity below which a turn counts."
    )


class EscalationRules(Model):
    """When to hand a conversation to a human."""

    human_request: bool = Field(default=True, description="Escalate when the customer asks for a human.")
    keywords: list[str] = Field(
        default_factory=list, max_length=200, description="Words or phrases that escalate at once."
    )
    negative_sentiment: TurnsRule = Field(default_factory=TurnsRule, description="Negative customer turns in a row.")
    low_confidence: LowConfidenceRule = Field(
        default_factory=LowConfidenceRule, description="Turns in a row the knowledge base did not cover."
    )
    max_turns: int = Field(default=0, ge=0, le=1000, description="Escalate after this many customer turns; 0 disables.")


class Handoff(Model):
    """Where escalated conversations go."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.type != 'webhook' || has(self.url)", "message": "handoff type webhook needs url"}
            ]
        }
    )

    type: Literal["inbox", "webhook"] = Field(default="inbox", description="`inbox` (built-in) or `webhook`.")
    url: AnyHttpUrl | None = Field(default=None, description="Webhook URL (type `webhook`).")
    secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret with the HMAC key that signs webhook calls."
    )

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> Handoff:
        if self.type == "webhook" and self.url is None:
            raise ValueError("handoff type `webhook` needs `url`")
        return self


class EscalationPolicySpec(Model):
    """Desired state of an EscalationPolicy."""

    rules: EscalationRules = Field(default_factory=EscalationRules, description="What triggers a hand-off.")
    handoff: Handoff = Field(default_factory=Handoff, description="Where the conversation goes.")
    customer_message: str = Field(
        default="I'm connecting you with a member of our support team. They will see this conversation.",
        min_length=1,
        max_length=2000,
        description="What the customer is told on hand-off.",
    )


class SimpleStatus(Model):
    phase: Literal["Pending", "Ready", "Failed"] = Field(
        default="Pending", description="Short state for `kubectl get`."
    )
    conditions: list[Condition] = Field(default_factory=list, description="`Ready`.")
    observed_generation: int = Field(default=0, description="Generation the status reflects.")


# --- SupportAgent ----------------------------------------------------------------------

Provider = Literal["extractive", "openai", "azure-openai", "ollama", "openai-compatible"]


class ModelSpec(Model):
    """Which language model writes the answers."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.provider == 'extractive' || has(self.model)", "message": "this provider needs model"},
                {
                    "rule": "!(self.provider in ['azure-openai', 'openai-compatible']) || has(self.endpoint)",
                    "message": "this provider needs endpoint",
                },
                {
                    "rule": "!(self.provider in ['openai', 'azure-openai']) || has(self.secretRef)",
                    "message": "this provider needs secretRef with the API key",
                },
            ]
        }
    )

    provider: Provider = Field(
        default="extractive", description="`extractive` works offline; the others call an LLM API."
    )
    model: str | None = Field(
        default=None, min_length=1, description="Model or deployment name (not for `extractive`)."
    )
    endpoint: AnyHttpUrl | None = Field(
        default=None, description="Base URL (required for `azure-openai` and `openai-compatible`)."
    )
    secret_ref: SecretKeyRef | None = Field(default=None, description="Secret holding the API key.")
    temperature: float = Field(default=0.2, ge=0, le=2, description="Sampling temperature.")
    max_output_tokens: int = Field(default=800, ge=16, le=32768, description="Longest answer in tokens.")

    @model_validator(mode="after")
    def _provider_needs(self) -> ModelSpec:
        p = self.provider
        missing = [
            name
            for name, needed, value in (
                ("model", p != "extractive", self.model),
                ("endpoint", p in ("azure-openai", "openai-compatible"), self.endpoint),
                ("secretRef", p in ("openai", "azure-openai"), self.secret_ref),
            )
            if needed and value is None
        ]
        if missing:
            raise ValueError(f"provider `{p}` needs {' and '.join(f'`{m}`' for m in missing)}")
        return self


class RetrievalSpec(Model):
    top_k: int = Field(default=5, ge=1, le=50, description="Passages retrieved per question.")


class MemorySpec(Model):
    history_turns: int = Field(default=20, ge=0, le=500, description="Recent messages given to the model.")
    retention_days: int = Field(default=30, ge=1, le=3650, description="Days conversations are kept.")


class AttachmentsSpec(Model):
    enabled: bool = Field(default=True, description="Whether customers may upload files.")
    max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024, description="Largest upload in bytes."
    )


class ScalingSpec(Model):
    """How the agent's HorizontalPodAutoscaler scales."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"}
            ]
        }
    )

    min_replicas: int = Field(default=1, ge=1, le=100, description="Fewest agent pods.")
    max_replicas: int = Field(default=3, ge=1, le=100, description="Most agent pods.")
    target_cpu_utilization: int = Field(
        default=70, alias="targetCPUUtilization", ge=10, le=100, description="CPU percent the HPA aims for."
    )
    target_active_sessions_per_pod: int = Field(
        default=50, ge=1, le=10000, description="Live sessions per pod the HPA aims for."
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> ScalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})")
        return self


class SupportAgentSpec(Model):
    """Desired state of a SupportAgent."""

    display_name: str = Field(min_length=1, max_length=100, description="Name shown to customers.")
    instructions: str = Field(
        default=(
            "You are a helpful, concise customer-support agent. Answer only from the knowledge base and cite sources."
        ),
        min_length=1,
        max_length=20000,
        description="Persona and instructions for the model.",
    )
    greeting: str = Field(
        default="Hi! How can I help you today?", max_length=2000, description="First message shown in a new chat."
    )
    model: ModelSpec = Field(default_factory=ModelSpec, description="Language model settings.")
    knowledge_bases: list[Name] = Field(
        default_factory=list, max_length=20, description="KnowledgeBases (same namespace) the agent may search."
    )
    escalation_policy: Name | None = Field(default=None, description="EscalationPolicy (same namespace) to apply.")
    retrieval: RetrievalSpec = Field(default_factory=RetrievalSpec, description="Search settings.")
    memory: MemorySpec = Field(default_factory=MemorySpec, description="Conversation memory settings.")
    attachments: AttachmentsSpec = Field(default_factory=AttachmentsSpec, description="Upload limits.")
    scaling: ScalingSpec = Field(default_factory=ScalingSpec, description="Autoscaling settings.")


class SupportAgentStatus(Model):
    phase: Literal["Pending", "Ready", "Degraded", "Failed"] = Field(
        default="Pending", description="Short state for `kubectl get`."
    )
    endpoint: str = Field(default="", description="Address of the agent service.")
    ready_replicas: int = Field(default=0, description="Agent pods ready.")
    conditions: list[Condition] = Field(default_factory=list, description="`Ready`.")
    observed_generation: int = Field(default=0, description="Generation the status reflects.")


# --- envelopes -------------------------------------------------------------------------


class Resource(Model):
    """Common envelope: apiVersion, kind, metadata, spec, status."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]]

    api_version: Literal["concierge.dev/v1alpha1"] = Field(alias="apiVersion")
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"


class KnowledgeBase(Resource):
    KIND: ClassVar[str] = "KnowledgeBase"
    PLURAL: ClassVar[str] = "knowledgebases"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("kb",)

    kind: Literal["KnowledgeBase"]
    spec: KnowledgeBaseSpec
    status: KnowledgeBaseStatus | None = None


class SupportAgent(Resource):
    KIND: ClassVar[str] = "SupportAgent"
    PLURAL: ClassVar[str] = "supportagents"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("sagent",)

    kind: Literal["SupportAgent"]
    spec: SupportAgentSpec
    status: SupportAgentStatus | None = None


class EscalationPolicy(Resource):
    KIND: ClassVar[str] = "EscalationPolicy"
    PLURAL: ClassVar[str] = "escalationpolicies"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("escpol",)

    kind: Literal["EscalationPolicy"]
    spec: EscalationPolicySpec
    status: SimpleStatus | None = None


RESOURCE_TYPES: tuple[type[Resource], ...] = (KnowledgeBase, SupportAgent, EscalationPolicy)
KINDS: dict[str, type[Resource]] = {t.KIND: t for t in RESOURCE_TYPES}


def parse_resource(document: dict[str, Any]) -> Resource:
    """Validate one YAML document as the resource its `kind` names."""
    kind = document.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return KINDS[str(kind)].model_validate(document)
