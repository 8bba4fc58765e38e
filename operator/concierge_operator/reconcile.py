"""Level-based reconciliation: read what is, build what should be, write only the difference.

Every entry point re-reads the resource it works on, so it can be called from any handler, a
timer, or again after the operator was killed half-way, and it converges to the same objects.
Missing references and unreachable services are recorded in status conditions, never waited
for: timers and the handlers of the referenced kinds call back in.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
import psycopg
from pydantic import ValidationError

from concierge.api.loader import describe_errors
from concierge.api.resources import (
    EmbeddingSpec,
    EscalationPolicy,
    KnowledgeBase,
    Resource,
    SupportAgent,
    duration_seconds,
)
from concierge.api.sync import SyncResult, sync_request
from concierge.db import bind_tenant_login
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc
from concierge_operator import builders
from concierge_operator.builders import Object, Owner
from concierge_operator.kube import Kube
from concierge_operator.settings import OperatorSettings
from concierge_operator.status import is_true, now, parse_time, set_condition

log = logging.getLogger("concierge.operator")

R = TypeVar("R", bound=Resource)
KB = KnowledgeBase.PLURAL
AGENT = SupportAgent.PLURAL
POLICY = EscalationPolicy.PLURAL


class NotReady(Exception):
    """Something outside the resource is missing; `reason` and `message` go into its Ready condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Busy(Exception):
    """Another thread reconciles the same resource; a timer skips it this round."""


def parse(kind: type[R], body: Object) -> R:
    """The live object as its API model (server-managed metadata and status left out)."""
    meta = body.get("metadata", {})
    return kind.model_validate(
        {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": {k: meta[k] for k in ("name", "namespace", "generation") if k in meta},
            "spec": body.get("spec", {}),
        }
    )


def owner_of(body: Object) -> Owner:
    return Owner(kind=body["kind"], name=body["metadata"]["name"], uid=body["metadata"]["uid"])


def alive(body: Object) -> bool:
    return not body.get("metadata", {}).get("deletionTimestamp")


def sync_due(body: Object, at: datetime | None = None) -> bool:
    """Whether a KnowledgeBase needs a sync: its spec changed, the last one failed, or its refresh is due."""
    meta, status = body.get("metadata", {}), body.get("status") or {}
    conditions = status.get("conditions") or []
    if not is_true(conditions, "Synced", meta.get("generation")):
        return True
    last = parse_time(status.get("lastSyncTime", ""))
    interval = duration_seconds(body.get("spec", {}).get("refreshInterval", "24h"))
    return last is None or last + timedelta(seconds=interval) <= (at or datetime.now(UTC))


class Reconciler:
    """Turns the three kinds into Kubernetes objects, syncs knowledge bases, keeps status current."""

    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.kube = kube
        self.settings = settings
        self._locks: defaultdict[tuple[str, str, str], threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        self._routes_lock = threading.Lock()
        self._bound: dict[str, str] = {}
        self._tenant_urls: dict[str, str] = {}

    @contextmanager
    def locked(self, kind: str, namespace: str, name: str, wait: bool = True) -> Iterator[None]:
        """One reconcile per resource at a time; `wait=False` raises Busy instead of queueing."""
        with self._locks_guard:
            lock = self._locks[(kind, namespace, name)]
        if not lock.acquire(blocking=wait):
            raise Busy(f"{kind} {namespace}/{name}")
        try:
            yield
        finally:
            lock.release()

    def retrieval(self, namespace: str) -> retrieval_pb2_grpc.RetrievalServiceStub:
        address = self.settings.retrieval_address.format(namespace=namespace)
        if address not in self._channels:
            self._channels[address] = grpc.insecure_channel(address)
        return retrieval_pb2_grpc.RetrievalServiceStub(self._channels[address])

    def write_status(self, plural: str, body: Object, status: dict[str, Any]) -> bool:
        """Patch the status only if it differs from the live one."""
        current = body.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return False
        meta = body["metadata"]
        self.kube.patch_status(plural, meta["namespace"], meta["name"], status)
        body["status"] = {**current, **status}
        return True

    def not_ready(self, plural: str, body: Object, phase: str, reason: str, message: str) -> bool:
        generation = body["metadata"].get("generation", 0)
        conditions = (body.get("status") or {}).get("conditions") or []
        return self.write_status(
            plural,
            body,
            {
                "phase": phase,
                "conditions": set_condition(conditions, "Ready", "False", reason, message, generation),
                "observedGeneration": generation,
            },
        )

    # --- tenant services -----------------------------------------------------------

    def tenant_model(self, knowledge_bases: list[Object]) -> str:
        """The embedding model of a namespace: that of its oldest live KnowledgeBase, else the first served."""
        live = sorted(
            (kb for kb in knowledge_bases if alive(kb)),
            key=lambda kb: (kb["metadata"].get("creationTimestamp", ""), kb["metadata"]["name"]),
        )
        if live:
            return str(live[0].get("spec", {}).get("embedding", {}).get("model", EmbeddingSpec().model))
        return next(iter(self.settings.embedding_addresses))

    def embedding_address(self, model: str) -> str:
        address = self.settings.embedding_addresses.get(model)
        if address is None:
            served = ", ".join(sorted(self.settings.embedding_addresses)) or "none"
            raise NotReady(
                "UnknownEmbeddingModel",
                f"no embedding service serves model {model!r}; served models: {served} "
                "(add it to the chart's embedding.models or choose a served one)",
            )
        return address

    def ensure_tenant(self, namespace: str) -> tuple[str, str]:
        """Apply the namespace's retrieval and memory services; return its embedding model and address."""
        knowledge_bases = self.kube.list_custom(KB, namespace)
        agents = self.kube.list_custom(AGENT, namespace)
        live = sorted((o for o in knowledge_bases + agents if alive(o)), key=lambda o: str(o["metadata"]["uid"]))
        owners = tuple(owner_of(o) for o in live)
        model = self.tenant_model(knowledge_bases)
        address = self.embedding_address(model)
        if not owners:
            return model, address
        database_url = self.tenant_database_url(namespace)
        selector = f"{builders.SOURCE_LABEL}=true"
        tenant = builders.Tenant(
            namespace,
            owners,
            address,
            database_url,
            source_config_maps=tuple(self.kube.names("v1", "ConfigMap", namespace, selector)),
            source_claims=tuple(self.kube.names("v1", "PersistentVolumeClaim", namespace, selector)),
        )
        for obj in builders.tenant_objects(tenant, self.settings):
            self.kube.apply(obj)
        return model, address

    def owner_database_url(self) -> str:
        release = self.settings.namespace
        url = self.kube.secret_value(release, self.settings.database_secret, "url")
        if url is None:
            raise NotReady(
                "DatabaseSecretMissing",
                f"Secret {release}/{self.settings.database_secret} with key `url` (the PostgreSQL URL) is missing; "
                "the Helm chart creates it, or set database.existingSecret",
            )
        return url

    def tenant_database_url(self, namespace: str) -> str:
        """The URL of the login bound to `namespace` (created once; its password kept in the release
        namespace), so the tenant's Secret never holds a login that could read another tenant's rows."""
        release = self.settings.namespace
        name = builders.object_name("concierge-tenant", namespace)
        password = self.kube.secret_value(release, name, "password")
        if password is None:
            password = secrets.token_urlsafe(24)
            self.kube.apply(builders.tenant_login_secret(name, release, namespace, password))
        if self._bound.get(namespace) != password:
            try:
                self._tenant_urls[namespace] = bind_tenant_login(self.owner_database_url(), namespace, password)
            except psycopg.Error as err:
                raise NotReady("DatabaseUnavailable", f"cannot create the tenant's database login: {err}") from err
            self._bound[namespace] = password
        return self._tenant_urls[namespace]

    # --- KnowledgeBase -------------------------------------------------------------

    def reconcile_knowledge_base(self, namespace: str, name: str, wait: bool = True) -> None:
        with self.locked("kb", namespace, name, wait):
            body = self.kube.get_custom(KB, namespace, name)
            if body is None or not alive(body):
                return
            try:
                kb = parse(KnowledgeBase, body)
            except ValidationError as err:
                self.not_ready(KB, body, "Failed", "InvalidSpec", describe_errors(err))
                return
            try:
                tenant_model, _ = self.ensure_tenant(namespace)
                if kb.spec.embedding.model != tenant_model:
                    raise NotReady(
                        "EmbeddingModelConflict",
                        f"namespace {namespace!r} already indexes with model {tenant_model!r}, and one namespace "
                        f"uses one embedding model; set spec.embedding.model to {tenant_model!r} or use another "
                        "namespace",
                    )
            except NotReady as err:
                self.not_ready(KB, body, "Pending", err.reason, err.message)
                return
            self.reconcile_dependents(namespace, "knowledgeBases", name)
            if sync_due(body):
                self.sync(kb, body)

    def sync(self, kb: KnowledgeBase, body: Object) -> None:
        """Run one sync through the tenant's retrieval service and record the outcome in status."""
        generation = body["metadata"].get("generation", 0)
        status = body.get("status") or {}
        conditions = status.get("conditions") or []
        self.write_status(KB, body, {"phase": "Syncing"})
        request = sync_request(kb, Path(self.settings.sources_dir))
        done = None
        try:
            for progress in self.retrieval(kb.namespace).SyncKnowledgeBase(
                request, timeout=self.settings.sync_timeout_seconds
            ):
                if progress.done:
                    done = progress
        except grpc.RpcError as err:
            code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = err.details() if isinstance(err, grpc.Call) else str(err)
            reason = "RetrievalUnavailable" if code == grpc.StatusCode.UNAVAILABLE else "SyncFailed"
            message = f"{code.name}: {details}"
            log.warning("sync of %s failed: %s", kb.key, message)
            searchable = is_true(conditions, "Ready")
            self.write_status(
                KB,
                body,
                {
                    "phase": "Degraded" if searchable else "Pending",
                    "conditions": set_condition(conditions, "Synced", "False", reason, message, generation),
                    "observedGeneration": generation,
                },
            )
            return
        if done is None:
            return
        result = SyncResult.of(kb, done)
        synced = (
            f"{result.documents} documents ({result.changed} re-embedded, {result.deleted} deleted), "
            f"{result.chunks_total} chunks, {len(result.errors)} errors"
        )
        conditions = set_condition(
            conditions, "Synced", "True", "SyncedWithErrors" if result.errors else "Synced", synced, generation
        )
        if result.documents:
            conditions = set_condition(
                conditions, "Ready", "True", "Searchable", "the knowledge base is searchable", generation
            )
        else:
            conditions = set_condition(
                conditions,
                "Ready",
                "False",
                "NoDocuments",
                "the sources gave no documents; see status.sourceErrors (a `path` source reads a ConfigMap or "
                f"claim labelled {builders.SOURCE_LABEL}=true, mounted under its name)",
                generation,
            )
        self.write_status(
            KB,
            body,
            {
                "phase": "Degraded" if result.errors or not result.documents else "Ready",
                "documentCount": result.documents,
                "chunkCount": result.chunks_total,
                "lastSyncTime": now(),
                "sourceErrors": [{"source": s, "reason": r} for s, r in result.errors],
                "conditions": conditions,
                "observedGeneration": generation,
            },
        )
        log.info("synced %s: %s", kb.key, synced)

    def delete_knowledge_base(self, namespace: str, name: str) -> int:
        """Delete the KB's rows through retrieval (the finalizer); raises grpc.RpcError to be retried."""
        with self.locked("kb", namespace, name):
            response = self.retrieval(namespace).DeleteKnowledgeBase(
                retrieval_pb2.DeleteKnowledgeBaseRequest(tenant=namespace, knowledge_base=name), timeout=60
            )
        self.reconcile_dependents(namespace, "knowledgeBases", name)
        return int(response.documents_deleted)

    # --- EscalationPolicy ----------------------------------------------------------

    def reconcile_policy(self, namespace: str, name: str, wait: bool = True) -> None:
        with self.locked("policy", namespace, name, wait):
            body = self.kube.get_custom(POLICY, namespace, name)
            if body is None or not alive(body):
                return
            generation = body["metadata"].get("generation", 0)
            conditions = (body.get("status") or {}).get("conditions") or []
            try:
                policy = parse(EscalationPolicy, body)
            except ValidationError as err:
                self.not_ready(POLICY, body, "Failed", "InvalidSpec", describe_errors(err))
                return
            ref = policy.spec.handoff.secret_ref
            if ref is not None and not self.kube.secret_has_key(namespace, ref.name, ref.key):
                self.not_ready(
                    POLICY, body, "Pending", "SecretMissing", f"Secret {ref.name!r} with key {ref.key!r} not found"
                )
            else:
                self.write_status(
                    POLICY,
                    body,
                    {
                        "phase": "Ready",
                        "conditions": set_condition(
                            conditions, "Ready", "True", "Valid", "policy is valid", generation
                        ),
                        "observedGeneration": generation,
                    },
                )
        self.reconcile_dependents(namespace, "escalationPolicy", name)

    # --- SupportAgent --------------------------------------------------------------

    def reconcile_dependents(self, namespace: str, field: str, name: str) -> None:
        """Reconcile the agents of `namespace` whose spec.`field` names `name`."""
        for agent in self.kube.list_custom(AGENT, namespace):
            referenced = agent.get("spec", {}).get(field)
            if referenced == name or (isinstance(referenced, list) and name in referenced):
                self.reconcile_agent(namespace, agent["metadata"]["name"])

    def missing_references(self, agent: SupportAgent) -> tuple[list[str], list[KnowledgeBase], EscalationPolicy | None]:
        """What the agent references but the namespace lacks, and what it has."""
        ns = agent.namespace
        missing: list[str] = []
        knowledge_bases: list[KnowledgeBase] = []
        for kb_name in agent.spec.knowledge_bases:
            kb_body = self.kube.get_custom(KB, ns, kb_name)
            if kb_body is None or not alive(kb_body):
                missing.append(f"KnowledgeBase {kb_name!r} not found in namespace {ns!r}")
            else:
                knowledge_bases.append(parse(KnowledgeBase, kb_body))
        policy = None
        if agent.spec.escalation_policy:
            policy_body = self.kube.get_custom(POLICY, ns, agent.spec.escalation_policy)
            if policy_body is None or not alive(policy_body):
                missing.append(f"EscalationPolicy {agent.spec.escalation_policy!r} not found in namespace {ns!r}")
            else:
                policy = parse(EscalationPolicy, policy_body)
        for ref in builders.agent_secret_refs(agent, policy):
            if not self.kube.secret_has_key(ns, ref.name, ref.key):
                missing.append(f"Secret {ref.name!r} with key {ref.key!r} not found in namespace {ns!r}")
        return missing, knowledge_bases, policy

    def reconcile_agent(self, namespace: str, name: str, wait: bool = True) -> None:
        """Apply the agent's objects when its references resolve; refresh the edge's route table when
        the agent's status or objects changed (a resync that finds nothing to do lists nothing more)."""
        if self._reconcile_agent(namespace, name, wait):
            self.publish_routes()

    def _reconcile_agent(self, namespace: str, name: str, wait: bool) -> bool:
        """True when it wrote the agent's status or one of its objects."""
        with self.locked("agent", namespace, name, wait):
            body = self.kube.get_custom(AGENT, namespace, name)
            if body is None or not alive(body):
                return False
            try:
                agent = parse(SupportAgent, body)
            except ValidationError as err:
                return self.not_ready(AGENT, body, "Failed", "InvalidSpec", describe_errors(err))
            missing, knowledge_bases, policy = self.missing_references(agent)
            if missing:
                return self.not_ready(AGENT, body, "Degraded", "MissingReference", "; ".join(missing))
            try:
                _, address = self.ensure_tenant(namespace)
            except NotReady as err:
                return self.not_ready(AGENT, body, "Pending", err.reason, err.message)
            objects = builders.agent_objects(agent, owner_of(body), knowledge_bases, policy, address, self.settings)
            applied = [self.kube.apply(obj) for obj in objects]
            deployment = self.kube.get("apps/v1", "Deployment", namespace, builders.agent_object_name(name))
            ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
            generation = body["metadata"].get("generation", 0)
            conditions = (body.get("status") or {}).get("conditions") or []
            written = self.write_status(
                AGENT,
                body,
                {
                    "phase": "Ready",
                    "endpoint": builders.agent_endpoint(agent),
                    "readyReplicas": ready,
                    "conditions": set_condition(
                        conditions, "Ready", "True", "Deployed", "references resolved; objects applied", generation
                    ),
                    "observedGeneration": generation,
                },
            )
            return written or any(applied)

    def publish_routes(self) -> bool:
        """Write the edge's route table (every Ready agent of every namespace) if it changed."""
        with self._routes_lock:
            ready = [
                parse(SupportAgent, body)
                for body in self.kube.list_all_custom(AGENT)
                if alive(body)
                # Ready at any generation: applying a spec change must not drop the route meanwhile.
                and is_true((body.get("status") or {}).get("conditions") or [], "Ready")
            ]
            return self.kube.apply(builders.route_table(ready, self.settings.namespace))

    def record_ready_replicas(self, namespace: str, agent_name: str, ready: int) -> None:
        """Copy an agent Deployment's ready replicas into the agent's status (kubectl get column)."""
        body = self.kube.get_custom(AGENT, namespace, agent_name)
        if body is not None and alive(body) and (body.get("status") or {}).get("readyReplicas") is not None:
            self.write_status(AGENT, body, {"readyReplicas": ready})
