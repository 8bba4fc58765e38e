"""The operator's pure builders: names, tenant services, and the objects of one SupportAgent."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from concierge.api.loader import parse_documents
from concierge.api.resources import EscalationPolicy, KnowledgeBase, SecretKeyRef, SupportAgent, secret_env_var
from concierge_operator.builders import (
    CONFIG_HASH,
    RESOURCES_FILE,
    Object,
    Owner,
    Tenant,
    agent_objects,
    object_name,
    tenant_objects,
)
from concierge_operator.settings import OperatorSettings

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
NS = "acme"
EMBEDDING = "concierge-embedding-all-minilm-l6-v2.concierge.svc:50051"


def knowledge_base(name: str = "faq", description: str = "Returns and shipping") -> KnowledgeBase:
    return KnowledgeBase.model_validate(
        {
            "apiVersion": "concierge.dev/v1alpha1",
            "kind": "KnowledgeBase",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "description": description,
                "sources": [{"name": "faq", "inline": [{"title": "Returns", "content": "Returns within 30 days."}]}],
            },
        }
    )


def support_agent(instructions: str = "Be kind.") -> SupportAgent:
    return SupportAgent.model_validate(
        {
            "apiVersion": "concierge.dev/v1alpha1",
            "kind": "SupportAgent",
            "metadata": {"name": "helper", "namespace": NS},
            "spec": {
                "displayName": "Helper",
                "instructions": instructions,
                "knowledgeBases": ["faq"],
                "escalationPolicy": "humans",
                "model": {"provider": "openai", "model": "gpt-4.1-mini", "secretRef": {"name": "llm"}},
                "scaling": {
                    "minReplicas": 2,
                    "maxReplicas": 5,
                    "targetCPUUtilization": 60,
                    "targetActiveSessionsPerPod": 25,
                },
            },
        }
    )


def escalation_policy(message: str = "A person will take over.") -> EscalationPolicy:
    return EscalationPolicy.model_validate(
        {
            "apiVersion": "concierge.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "humans", "namespace": NS},
            "spec": {
                "customerMessage": message,
                "handoff": {
                    "type": "webhook",
                    "url": "https://hooks.example.com/x",
                    "secretRef": {"name": "hmac", "key": "signing"},
                },
            },
        }
    )


AGENT_OWNER = Owner("SupportAgent", "helper", "uid-agent")


def build(
    agent: SupportAgent | None = None, kb: KnowledgeBase | None = None, policy: EscalationPolicy | None = None
) -> dict[str, Object]:
    objects = agent_objects(
        agent or support_agent(),
        AGENT_OWNER,
        [kb or knowledge_base()],
        policy or escalation_policy(),
        EMBEDDING,
        OperatorSettings(),
    )
    return {o["kind"]: o for o in objects}


def pod_hash(objects: dict[str, Object]) -> str:
    return str(objects["Deployment"]["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH])


def container(deployment: Object) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]


# --- names -----------------------------------------------------------------------------


def test_short_names_are_kept_as_prefix_dash_name() -> None:
    assert object_name("concierge-agent", "helper") == "concierge-agent-helper"
    assert len(object_name("x", "a" * 61)) == 63
    assert object_name("x", "a" * 61).endswith("a" * 61)


def test_long_names_are_cut_to_a_dns_label_with_a_stable_hash_suffix() -> None:
    long_a, long_b = "a" * 60, "a" * 59 + "b"
    name = object_name("concierge-agent", long_a)
    assert len(name) == 63
    assert DNS_1035.match(name)
    assert name == object_name("concierge-agent", long_a)
    assert name != object_name("concierge-agent", long_b)  # same cut prefix, different suffix
    cut_on_dashes = object_name("concierge-agent", "a" * 30 + "-" * 20 + "b")
    assert DNS_1035.match(cut_on_dashes)
    assert "--" not in cut_on_dashes


# --- tenant services -------------------------------------------------------------------


def tenant(network_policies: bool = True) -> dict[str, Object]:
    owners = (Owner("KnowledgeBase", "faq", "uid-kb"), Owner("SupportAgent", "helper", "uid-agent"))
    built = tenant_objects(
        Tenant(NS, owners, EMBEDDING, "postgresql://app:pw@db:5432/concierge"),
        OperatorSettings(network_policies=network_policies),
    )
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in built}


def test_tenant_services_are_owned_but_not_controlled_by_every_resource_of_the_namespace() -> None:
    objects = tenant()
    assert set(objects) == {
        "Secret/concierge-database",
        "NetworkPolicy/concierge-tenant",
        *(
            f"{kind}/concierge-{svc}"
            for kind in ("Deployment", "Service", "HorizontalPodAutoscaler")
            for svc in ("retrieval", "memory")
        ),
    }
    for key, obj in objects.items():
        refs = obj["metadata"]["ownerReferences"]
        assert {(r["kind"], r["uid"]) for r in refs} == {("KnowledgeBase", "uid-kb"), ("SupportAgent", "uid-agent")}
        assert not any(r["controller"] for r in refs), key
        assert obj["metadata"]["namespace"] == NS


def test_database_secret_holds_the_url_base64_encoded() -> None:
    data = tenant()["Secret/concierge-database"]["data"]
    assert base64.b64decode(data["url"]).decode() == "postgresql://app:pw@db:5432/concierge"


def test_network_policy_only_when_enabled() -> None:
    assert not any(k.startswith("NetworkPolicy/") for k in tenant(network_policies=False))


def test_tenant_deployments_leave_replicas_to_the_hpa_and_run_hardened_with_grpc_probes() -> None:
    objects = tenant()
    for svc in ("retrieval", "memory"):
        deployment = objects[f"Deployment/concierge-{svc}"]
        assert "replicas" not in deployment["spec"]
        assert (
            objects[f"HorizontalPodAutoscaler/concierge-{svc}"]["spec"]["scaleTargetRef"]["name"] == f"concierge-{svc}"
        )
        c = container(deployment)
        assert c["args"][:2] == ["serve", svc]
        security = c["securityContext"]
        assert security["readOnlyRootFilesystem"]
        assert security["runAsNonRoot"]
        assert not security["allowPrivilegeEscalation"]
        assert security["capabilities"]["drop"] == ["ALL"]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert c[probe]["grpc"]["port"] == c["ports"][0]["containerPort"]
        assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])  # the only writable path


# --- one SupportAgent ------------------------------------------------------------------


def test_agent_objects_are_controlled_by_the_agent() -> None:
    objects = build()
    assert set(objects) == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"}
    for obj in objects.values():
        assert obj["metadata"]["name"] == "concierge-agent-helper"
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "SupportAgent",
            "helper",
            "uid-agent",
            True,
        )
    deployment = objects["Deployment"]["spec"]
    assert "replicas" not in deployment
    pod_labels = deployment["template"]["metadata"]["labels"]
    assert deployment["selector"]["matchLabels"].items() <= pod_labels.items()
    assert objects["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert pod_labels["concierge.dev/agent"] == "helper"  # not the pods of another agent


def test_config_map_loads_back_into_the_agent_its_knowledge_bases_and_policy() -> None:
    text = build()["ConfigMap"]["data"][RESOURCES_FILE]
    loaded, problems = parse_documents(Path(RESOURCES_FILE), text)
    assert problems == []
    by_kind = {type(item.resource).__name__: item.resource for item in loaded}
    assert set(by_kind) == {"SupportAgent", "KnowledgeBase", "EscalationPolicy"}
    for original in (support_agent(), knowledge_base(), escalation_policy()):
        restored = by_kind[type(original).__name__]
        spec, expected = restored.model_dump()["spec"], original.model_dump()["spec"]
        if isinstance(original, SupportAgent):  # the pods never read scaling; the HPA carries it
            spec.pop("scaling"), expected.pop("scaling")
        assert (restored.key, spec) == (original.key, expected)


def test_a_scaling_change_reaches_the_hpa_without_rolling_the_pods() -> None:
    agent = support_agent()
    rescaled = agent.model_copy(
        update={
            "spec": agent.spec.model_copy(update={"scaling": agent.spec.scaling.model_copy(update={"max_replicas": 9})})
        }
    )
    before, after = build(), build(agent=rescaled)
    assert pod_hash(after) == pod_hash(before)
    assert after["ConfigMap"] == before["ConfigMap"]
    assert after["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 9


def test_agent_env_carries_the_model_and_webhook_secrets_under_their_variable_names() -> None:
    agent = container(build()["Deployment"])
    env = {e["name"]: e for e in agent["env"]}
    for name, key in (("llm", "apiKey"), ("hmac", "signing")):
        variable = secret_env_var(SecretKeyRef(name=name, key=key))
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": name, "key": key}
    assert env["CONCIERGE_EMBEDDING_ADDRESS"]["value"] == EMBEDDING
    assert env["CONCIERGE_RESOURCES_DIR"]["value"] in {m["mountPath"] for m in agent["volumeMounts"]}


def test_agent_hpa_follows_spec_scaling_on_cpu_and_sessions_per_pod() -> None:
    spec = build()["HorizontalPodAutoscaler"]["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 5)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "concierge-agent-helper"}
    metrics = {m["type"]: m for m in spec["metrics"]}
    assert metrics["Resource"]["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 60},
    }
    assert metrics["Pods"]["pods"]["metric"]["name"] == "concierge_active_sessions"
    assert metrics["Pods"]["pods"]["target"] == {"type": "AverageValue", "averageValue": "25"}


def test_building_twice_gives_equal_objects() -> None:
    assert build() == build()


@pytest.mark.parametrize(
    "changed",
    [
        {"agent": support_agent(instructions="Be brief.")},
        {"policy": escalation_policy(message="Someone from our team is on the way.")},
        {"kb": knowledge_base(description="Returns, shipping and warranty")},
    ],
    ids=["instructions", "policy", "kb-description"],
)
def test_config_hash_changes_with_what_the_agent_reads(changed: dict[str, Any]) -> None:
    assert pod_hash(build(**changed)) != pod_hash(build())
