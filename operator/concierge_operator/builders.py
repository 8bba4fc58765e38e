"""The Kubernetes objects the operator owns, built as plain dicts by pure functions.

Nothing here talks to the API server, so each builder is unit-tested on its own. The handlers
apply what these return with server-side apply.

Per tenant namespace: the retrieval and memory services (Deployment, Service, HPA), a copy of
the database Secret and a NetworkPolicy; they are owned by every KnowledgeBase and SupportAgent
of the namespace, so the garbage collector removes them with the last one.
Per SupportAgent: a ConfigMap with its rendered configuration, a Deployment that rolls when
that configuration changes, a Service and an HPA; all owned by the agent.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from concierge.api.resources import (
    API_VERSION,
    EscalationPolicy,
    KnowledgeBase,
    Resource,
    SecretKeyRef,
    SupportAgent,
    secret_env_var,
)
from concierge.api.routes import ROUTES_CONFIGMAP, ROUTES_KEY, Route, RouteTable
from concierge_operator.settings import GRPC_PORT, OperatorSettings

Object = dict[str, Any]

APP = "concierge"
RETRIEVAL = "concierge-retrieval"
MEMORY = "concierge-memory"
DATABASE_SECRET = "concierge-database"
TENANT_POLICY = "concierge-tenant"
CONFIG_HASH = "concierge.dev/config-hash"
# ConfigMaps and PersistentVolumeClaims with this label (value "true") in a tenant namespace are
# mounted read-only into its retrieval pods at `<sources dir>/<name>`: `path: <name>` reads them.
SOURCE_LABEL = "concierge.dev/knowledge-source"
RESOURCES_DIR = "/etc/concierge/resources"
RESOURCES_FILE = "resources.yaml"
METRICS_PORT = 9090  # the agent's /metrics: concierge_active_sessions feeds its HPA
MAX_NAME = 63


@dataclass(frozen=True)
class Owner:
    """A custom resource that owns objects: what an ownerReference needs."""

    kind: str
    name: str
    uid: str

    def reference(self, controller: bool) -> Object:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": controller,
            "blockOwnerDeletion": True,
        }


def object_name(prefix: str, name: str) -> str:
    """`prefix-name` as a DNS-1035 label: cut to 63 characters with a hash suffix when too long."""
    full = f"{prefix}-{name}"
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: MAX_NAME - 9].rstrip('-')}-{digest}"


def agent_object_name(agent_name: str) -> str:
    return object_name("concierge-agent", agent_name)


def labels(component: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "concierge-operator",
        **(extra or {}),
    }


def selector_labels(component: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component, **(extra or {})}


def metadata(name: str, namespace: str, component: str, owners: Sequence[Object], **extra_labels: str) -> Object:
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels(component, extra_labels),
        "ownerReferences": list(owners),
    }


def config_hash(data: Any) -> str:
    """A short, stable hash of JSON-able data (dict order does not matter)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# --- pods ------------------------------------------------------------------------------

CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def grpc_probe(period: int, failures: int) -> Object:
    return {"grpc": {"port": GRPC_PORT}, "periodSeconds": period, "failureThreshold": failures}


def env_list(values: Mapping[str, str]) -> list[Object]:
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


def secret_env(refs: Sequence[SecretKeyRef]) -> list[Object]:
    """Each referenced Secret key as the variable the services read it from (`secret_env_var`)."""
    unique = {(r.name, r.key): r for r in refs}
    return [
        {"name": secret_env_var(r), "valueFrom": {"secretKeyRef": {"name": r.name, "key": r.key}}}
        for _, r in sorted(unique.items())
    ]


def service_deployment(
    name: str,
    namespace: str,
    component: str,
    owners: Sequence[Object],
    settings: OperatorSettings,
    env: list[Object],
    *,
    select: Mapping[str, str] | None = None,
    pod_annotations: Mapping[str, str] | None = None,
    volumes: Sequence[Object] = (),
    mounts: Sequence[Object] = (),
    ports: Sequence[Object] = (),
) -> Object:
    """A Deployment running `concierge serve <component>` on the gRPC port, hardened and probed.

    `replicas` is left out: the HPA owns it.
    """
    match = selector_labels(component, select)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, namespace, component, owners, **(select or {})),
        "spec": {
            "selector": {"matchLabels": match},
            "template": {
                "metadata": {"labels": match, "annotations": dict(pod_annotations or {})},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "fsGroup": 10001},
                    "containers": [
                        {
                            "name": component,
                            "image": settings.image,
                            "imagePullPolicy": settings.image_pull_policy,
                            "args": ["serve", component, "--host", "0.0.0.0", "--port", str(GRPC_PORT)],
                            "ports": [{"name": "grpc", "containerPort": GRPC_PORT}, *ports],
                            "env": env,
                            "readinessProbe": grpc_probe(period=5, failures=3),
                            "livenessProbe": grpc_probe(period=10, failures=6),
                            "startupProbe": grpc_probe(period=5, failures=60),
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "512Mi"},
                                "limits": {"memory": "2Gi"},
                            },
                            "securityContext": CONTAINER_SECURITY,
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
                },
            },
        },
    }


def grpc_service(name: str, namespace: str, component: str, owners: Sequence[Object], **select: str) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, namespace, component, owners, **select),
        "spec": {
            # Headless: clients resolve every pod and spread calls over them (gRPC round robin).
            "clusterIP": "None",
            "selector": selector_labels(component, select),
            "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc"}],
        },
    }


def autoscaler(
    name: str,
    namespace: str,
    component: str,
    owners: Sequence[Object],
    min_replicas: int,
    max_replicas: int,
    cpu_percent: int,
    sessions_per_pod: int | None = None,
    **select: str,
) -> Object:
    """An autoscaling/v2 HPA on CPU and, for agents, live sessions per pod (a Pods metric)."""
    metrics: list[Object] = [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_percent}},
        }
    ]
    if sessions_per_pod is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "concierge_active_sessions"},
                    "target": {"type": "AverageValue", "averageValue": str(sessions_per_pod)},
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, namespace, component, owners, **select),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": metrics,
        },
    }


# --- tenant services -------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    """What the shared services of one namespace are built from."""

    namespace: str
    owners: tuple[Owner, ...]
    embedding_address: str
    database_url: str
    source_config_maps: tuple[str, ...] = ()
    source_claims: tuple[str, ...] = ()


def source_mounts(tenant: Tenant, sources_dir: str) -> tuple[list[Object], list[Object]]:
    """Volumes and mounts of the tenant's labelled source ConfigMaps and claims, read-only under `sources_dir`."""
    volumes: list[Object] = []
    mounts: list[Object] = []
    for kind, names in (("configMap", tenant.source_config_maps), ("persistentVolumeClaim", tenant.source_claims)):
        for name in sorted(names):
            volume = object_name("source", name)
            source = {"name": name} if kind == "configMap" else {"claimName": name, "readOnly": True}
            volumes.append({"name": volume, kind: source})
            mounts.append({"name": volume, "mountPath": f"{sources_dir.rstrip('/')}/{name}", "readOnly": True})
    return volumes, mounts


def database_env() -> list[Object]:
    """The tenant's own database login; it may not change the schema, so the operator migrates."""
    return [
        {"name": "CONCIERGE_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": "url"}}},
        {"name": "CONCIERGE_DATABASE_MIGRATE", "value": "false"},
    ]


def tenant_login_secret(name: str, release_namespace: str, tenant: str, password: str) -> Object:
    """The password of a tenant's database login, kept where tenants cannot read it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, release_namespace, "database", [], **{"concierge.dev/tenant": tenant}),
        "type": "Opaque",
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


def tenant_objects(tenant: Tenant, settings: OperatorSettings) -> list[Object]:
    """Retrieval and memory for one namespace, the database Secret they read, and the NetworkPolicy."""
    owners = [o.reference(controller=False) for o in tenant.owners]
    ns = tenant.namespace
    volumes, mounts = source_mounts(tenant, settings.sources_dir)
    retrieval_env = [
        *database_env(),
        *env_list(
            {
                "CONCIERGE_EMBEDDING_ADDRESS": tenant.embedding_address,
                # A spec may read only the mounted sources, and fetch only public addresses.
                "CONCIERGE_SOURCE_ROOTS": json.dumps([settings.sources_dir]),
                "CONCIERGE_FETCH_ALLOW_PRIVATE_NETWORKS": "false",
            }
        ),
    ]
    objects: list[Object] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(DATABASE_SECRET, ns, "database", owners),
            "type": "Opaque",
            "data": {"url": base64.b64encode(tenant.database_url.encode()).decode()},
        },
        service_deployment(RETRIEVAL, ns, "retrieval", owners, settings, retrieval_env, volumes=volumes, mounts=mounts),
        grpc_service(RETRIEVAL, ns, "retrieval", owners),
        autoscaler(RETRIEVAL, ns, "retrieval", owners, 1, 3, 70),
        service_deployment(MEMORY, ns, "memory", owners, settings, database_env()),
        grpc_service(MEMORY, ns, "memory", owners),
        autoscaler(MEMORY, ns, "memory", owners, 1, 3, 70),
    ]
    if settings.network_policies:
        objects.append(tenant_network_policy(ns, owners, settings.namespace))
    return objects


def tenant_network_policy(namespace: str, owners: Sequence[Object], release_namespace: str) -> Object:
    """Concierge pods of a tenant accept traffic only from their own namespace and the release namespace."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(TENANT_POLICY, namespace, "network-policy", owners),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": APP}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {}},
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": release_namespace}}},
                    ]
                },
                # Prometheus, wherever it runs, scrapes the agents' metrics (nothing else on that port).
                {"ports": [{"port": METRICS_PORT, "protocol": "TCP"}]},
            ],
        },
    }


# --- agents ----------------------------------------------------------------------------


# Spec parts the agent pods never read: changing them must not roll the pods.
NOT_RENDERED = {"SupportAgent": ("scaling",)}


def strip_for_config(resource: Resource) -> Object:
    """A resource as the agent service loads it: spec with defaults, identity only, no status."""
    spec = resource.model_dump(mode="json", by_alias=True, exclude_none=True)["spec"]
    return {
        "apiVersion": API_VERSION,
        "kind": resource.KIND,
        "metadata": {"name": resource.name, "namespace": resource.namespace},
        "spec": {k: v for k, v in spec.items() if k not in NOT_RENDERED.get(resource.KIND, ())},
    }


def rendered_config(
    agent: SupportAgent, knowledge_bases: Sequence[KnowledgeBase], policy: EscalationPolicy | None
) -> str:
    """The YAML the agent pod reads from CONCIERGE_RESOURCES_DIR: the agent and what it references."""
    documents = [strip_for_config(agent), *(strip_for_config(kb) for kb in knowledge_bases)]
    if policy is not None:
        documents.append(strip_for_config(policy))
    return yaml.safe_dump_all(documents, sort_keys=True)


def agent_secret_refs(agent: SupportAgent, policy: EscalationPolicy | None) -> list[SecretKeyRef]:
    """Every Secret key the agent needs: the model's API key and the webhook's signing key."""
    refs = [agent.spec.model.secret_ref] if agent.spec.model.secret_ref else []
    if policy is not None and policy.spec.handoff.secret_ref is not None:
        refs.append(policy.spec.handoff.secret_ref)
    return refs


def agent_objects(
    agent: SupportAgent,
    owner: Owner,
    knowledge_bases: Sequence[KnowledgeBase],
    policy: EscalationPolicy | None,
    embedding_address: str,
    settings: OperatorSettings,
) -> list[Object]:
    """ConfigMap, Deployment, Service and HPA of one SupportAgent.

    The pod template carries the configuration's hash, so a changed configuration (of the agent,
    its knowledge bases or its policy) rolls the pods.
    """
    name = agent_object_name(agent.name)
    ns = agent.namespace
    owners = [owner.reference(controller=True)]
    select = {"concierge.dev/agent": agent.name}
    config = rendered_config(agent, knowledge_bases, policy)
    env = [
        *env_list(
            {
                "CONCIERGE_RETRIEVAL_ADDRESS": f"{RETRIEVAL}:{GRPC_PORT}",
                "CONCIERGE_MEMORY_ADDRESS": f"{MEMORY}:{GRPC_PORT}",
                "CONCIERGE_EMBEDDING_ADDRESS": embedding_address,
                "CONCIERGE_RESOURCES_DIR": RESOURCES_DIR,
                "CONCIERGE_METRICS_PORT": str(METRICS_PORT),
            }
        ),
        *secret_env(agent_secret_refs(agent, policy)),
    ]
    scaling = agent.spec.scaling
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(name, ns, "agent", owners, **select),
            "data": {RESOURCES_FILE: config},
        },
        service_deployment(
            name,
            ns,
            "agent",
            owners,
            settings,
            env,
            select=select,
            pod_annotations={
                CONFIG_HASH: config_hash(config),
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(METRICS_PORT),
            },
            ports=[{"name": "metrics", "containerPort": METRICS_PORT}],
            volumes=[{"name": "config", "configMap": {"name": name}}],
            mounts=[{"name": "config", "mountPath": RESOURCES_DIR, "readOnly": True}],
        ),
        grpc_service(name, ns, "agent", owners, **select),
        autoscaler(
            name,
            ns,
            "agent",
            owners,
            scaling.min_replicas,
            scaling.max_replicas,
            scaling.target_cpu_utilization,
            scaling.target_active_sessions_per_pod,
            **select,
        ),
    ]


def agent_endpoint(agent: SupportAgent) -> str:
    return f"{agent_object_name(agent.name)}.{agent.namespace}.svc:{GRPC_PORT}"


def route_table(agents: Sequence[SupportAgent], release_namespace: str) -> Object:
    """The ConfigMap the edge mounts to route chats: every given (ready) agent and its tenant's memory."""
    table = RouteTable(
        agents=[
            Route.of(a, agent_address=agent_endpoint(a), memory_address=f"{MEMORY}.{a.namespace}.svc:{GRPC_PORT}")
            for a in sorted(agents, key=lambda a: (a.namespace, a.name))
        ]
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(ROUTES_CONFIGMAP, release_namespace, "routes", []),
        "data": {ROUTES_KEY: table.model_dump_json(by_alias=True, indent=1)},
    }
