"""The operator against a real API server: what it writes, how status follows, how it cleans up."""

from __future__ import annotations

import base64
import time
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from cluster.operator import (
    AGENT_PLURAL,
    KB_PLURAL,
    POLICY_PLURAL,
    RELEASE_NAMESPACE,
    OperatorCluster,
    knowledge_base,
    owner_uids,
    policy,
    stored_documents,
    support_agent,
    wait_for,
)
from concierge.api.loader import parse_documents
from concierge.api.routes import ROUTES_CONFIGMAP, ROUTES_KEY, RouteTable
from concierge.api.sync import SyncResult

pytestmark = pytest.mark.cluster


def test_knowledge_base_gets_tenant_services_a_sync_and_a_clean_deletion(
    operator_cluster: OperatorCluster, postgres_url: str, acme_synced: SyncResult
) -> None:
    oc = operator_cluster
    ns = oc.namespace("op-kb")
    oc.cluster.kubectl("create", "configmap", "manuals", "-n", ns, "--from-literal=setup.md=# Setup")
    oc.cluster.kubectl("label", "configmap", "manuals", "-n", ns, "concierge.dev/knowledge-source=true")
    oc.cluster.kubectl("create", "configmap", "unrelated", "-n", ns, "--from-literal=a=b")
    oc.apply(knowledge_base(ns, "faq", "Returns", "Shipping"))
    oc.wait_condition(KB_PLURAL, ns, "faq", "Synced", "True", timeout=60)
    kb = oc.get(KB_PLURAL, ns, "faq")
    assert kb is not None
    status = kb["status"]
    assert (status["phase"], status["documentCount"], status["observedGeneration"]) == ("Ready", 2, 1)
    assert status["chunkCount"] >= 2
    assert status["lastSyncTime"]
    assert stored_documents(postgres_url, ns, "faq") == 2
    assert "concierge.dev/cleanup" in kb["metadata"]["finalizers"]

    uid = kb["metadata"]["uid"]
    for name in ("concierge-retrieval", "concierge-memory"):
        deployment = oc.apps.read_namespaced_deployment(name, ns)
        assert owner_uids(deployment) == {uid}
        container = deployment.spec.template.spec.containers[0]
        assert container.args[:2] == ["serve", name.removeprefix("concierge-")]
        assert container.security_context.read_only_root_filesystem
        assert container.security_context.run_as_non_root
        assert deployment.spec.replicas is None or deployment.spec.replicas == 1  # the HPA owns replicas
        assert oc.core.read_namespaced_service(name, ns).spec.ports[0].port == 50051
    retrieval_env = {
        e.name: e
        for e in oc.apps.read_namespaced_deployment("concierge-retrieval", ns).spec.template.spec.containers[0].env
    }
    assert retrieval_env["CONCIERGE_DATABASE_URL"].value_from.secret_key_ref.name == "concierge-database"
    # The labelled ConfigMap is mounted read-only where `path: manuals` finds it; the other one is not.
    pod = oc.apps.read_namespaced_deployment("concierge-retrieval", ns).spec.template.spec
    mounted = {v.config_map.name for v in pod.volumes if v.config_map}
    assert mounted == {"manuals"}
    mounts = {m.mount_path: m.read_only for m in pod.containers[0].volume_mounts}
    assert mounts[f"{oc.operator.env['CONCIERGE_OPERATOR_SOURCES_DIR']}/manuals"] is True
    # The tenant's Secret holds its own login, bound to its tenant: naming another tenant shows nothing.
    secret = oc.core.read_namespaced_secret("concierge-database", ns)
    tenant_url = base64.b64decode(secret.data["url"]).decode()
    assert conninfo_to_dict(tenant_url)["user"].startswith("concierge_t_")
    assert tenant_url != postgres_url
    assert rows_seen_as(tenant_url, ns, ns) == 2
    assert rows_seen_as(tenant_url, "acme", "acme") == 0  # acme's documents exist; this login cannot see them
    assert rows_seen_as(postgres_url, "acme", "acme") > 0
    assert oc.custom.list_namespaced_custom_object("networking.k8s.io", "v1", ns, "networkpolicies")["items"]

    # A spec change syncs again: the added document is stored, the generation observed.
    oc.apply(knowledge_base(ns, "faq", "Returns", "Shipping", "Warranty"))
    oc.wait_condition(KB_PLURAL, ns, "faq", "Synced", "True", timeout=60)
    kb = oc.get(KB_PLURAL, ns, "faq")
    assert kb is not None
    assert (kb["status"]["documentCount"], kb["status"]["observedGeneration"]) == (3, 2)

    # Deleting it removes its rows first (the finalizer), then the object, then (GC) the tenant services.
    oc.cluster.kubectl("delete", "kb", "faq", "-n", ns, "--wait=false")
    wait_for(lambda: oc.get(KB_PLURAL, ns, "faq") is None, "the KnowledgeBase to go")
    assert stored_documents(postgres_url, ns, "faq") == 0
    wait_for(
        lambda: not oc.apps.list_namespaced_deployment(ns).items, "the garbage collector to remove the tenant services"
    )


def test_unknown_embedding_model_is_reported_not_retried_blindly(operator_cluster: OperatorCluster) -> None:
    oc = operator_cluster
    ns = oc.namespace("op-model")
    oc.apply(knowledge_base(ns, "gemma", "Returns", model="embeddinggemma-300m"))
    ready = oc.wait_condition(KB_PLURAL, ns, "gemma", "Ready", "False")
    assert ready["reason"] == "UnknownEmbeddingModel"
    assert "embeddinggemma-300m" in ready["message"]
    assert "all-MiniLM-L6-v2" in ready["message"]


def test_agent_ready_follows_its_references_and_its_objects_follow_the_spec(
    operator_cluster: OperatorCluster,
) -> None:
    oc = operator_cluster
    ns = oc.namespace("op-agent")
    agent = support_agent(
        ns,
        "helper",
        ["faq"],
        escalationPolicy="humans",
        model={"provider": "openai", "model": "gpt-4.1-mini", "secretRef": {"name": "llm", "key": "apiKey"}},
        scaling={"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilization": 60, "targetActiveSessionsPerPod": 25},
    )
    oc.apply(agent)
    ready = oc.wait_condition(AGENT_PLURAL, ns, "helper", "Ready", "False")
    assert ready["reason"] == "MissingReference"
    for missing in ("KnowledgeBase 'faq'", "EscalationPolicy 'humans'", "Secret 'llm'"):
        assert missing in ready["message"]
    assert not oc.apps.list_namespaced_deployment(ns, label_selector="concierge.dev/agent=helper").items

    # Each reference appearing clears its part of the message; all of them make the agent Ready, no restart.
    oc.apply(knowledge_base(ns, "faq", "Returns"))
    wait_for(
        lambda: "KnowledgeBase" not in (oc.condition(AGENT_PLURAL, ns, "helper", "Ready") or {}).get("message", "x"),
        "the agent to see its KnowledgeBase",
    )
    oc.apply(policy(ns, "humans"))
    oc.cluster.kubectl("create", "secret", "generic", "llm", "-n", ns, "--from-literal=apiKey=sk-test")
    oc.wait_condition(AGENT_PLURAL, ns, "helper", "Ready", "True")
    body = oc.get(AGENT_PLURAL, ns, "helper")
    assert body is not None
    assert body["status"]["endpoint"] == f"concierge-agent-helper.{ns}.svc:50051"
    uid = body["metadata"]["uid"]
    assert ("op-agent", "helper", f"concierge-agent-helper.{ns}.svc:50051") in published_routes(oc)

    name = "concierge-agent-helper"
    config_map = oc.core.read_namespaced_config_map(name, ns)
    loaded, problems = parse_documents_from(config_map.data["resources.yaml"])
    assert not problems
    assert {type(r).__name__ for r in loaded} == {"SupportAgent", "KnowledgeBase", "EscalationPolicy"}
    deployment = oc.apps.read_namespaced_deployment(name, ns)
    assert owner_uids(deployment) == {uid}
    assert deployment.metadata.owner_references[0].controller
    container = deployment.spec.template.spec.containers[0]
    env = {e.name: e for e in container.env}
    assert env["CONCIERGE_SECRET_LLM_APIKEY"].value_from.secret_key_ref.name == "llm"
    assert env["CONCIERGE_RETRIEVAL_ADDRESS"].value == "concierge-retrieval:50051"
    assert any(m.mount_path == "/etc/concierge/resources" for m in container.volume_mounts)
    hpa = oc.custom.get_namespaced_custom_object("autoscaling", "v2", ns, "horizontalpodautoscalers", name)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["target"]["averageUtilization"] == 60
    assert metrics["Pods"]["pods"]["target"]["averageValue"] == "25"
    assert oc.core.read_namespaced_service(name, ns).spec.selector["concierge.dev/agent"] == "helper"

    # A scaling change reaches the HPA; an instruction change rolls the pods (new config hash).
    started = time.monotonic()
    oc.cluster.kubectl(
        "patch", "sagent", "helper", "-n", ns, "--type=merge", "-p", '{"spec":{"scaling":{"maxReplicas":6}}}'
    )
    wait_for(
        lambda: (
            oc.custom.get_namespaced_custom_object("autoscaling", "v2", ns, "horizontalpodautoscalers", name)["spec"][
                "maxReplicas"
            ]
            == 6
        ),
        "the HPA to follow maxReplicas",
    )
    print(f"\nspec change reflected in the HPA after {time.monotonic() - started:.2f}s")
    hash_before = oc.apps.read_namespaced_deployment(name, ns).spec.template.metadata.annotations[
        "concierge.dev/config-hash"
    ]
    oc.cluster.kubectl(
        "patch", "sagent", "helper", "-n", ns, "--type=merge", "-p", '{"spec":{"instructions":"Be brief."}}'
    )

    def rolled() -> str | None:
        annotations = oc.apps.read_namespaced_deployment(name, ns).spec.template.metadata.annotations
        return (
            annotations["concierge.dev/config-hash"]
            if annotations["concierge.dev/config-hash"] != hash_before
            else None
        )

    hash_after = wait_for(rolled, "a new config hash in the pod template")
    assert "Be brief." in oc.core.read_namespaced_config_map(name, ns).data["resources.yaml"]

    # The policy is part of the agent's configuration: changing it rolls the agent too.
    oc.apply(policy(ns, "humans", message="Someone from our team is on the way."))
    wait_for(
        lambda: (
            oc.apps.read_namespaced_deployment(name, ns).spec.template.metadata.annotations["concierge.dev/config-hash"]
            != hash_after
        ),
        "the policy change to roll the agent",
    )

    # A hand edit of an owned object is repaired by the next resync.
    oc.cluster.kubectl("patch", "hpa", name, "-n", ns, "--type=merge", "-p", '{"spec":{"maxReplicas":20}}')
    wait_for(
        lambda: (
            oc.custom.get_namespaced_custom_object("autoscaling", "v2", ns, "horizontalpodautoscalers", name)["spec"][
                "maxReplicas"
            ]
            == 6
        ),
        "the operator to undo the hand edit",
    )

    # Losing a reference makes it not Ready again (and unroutable); deleting the agent lets the GC
    # remove what it owned.
    oc.cluster.kubectl("delete", "kb", "faq", "-n", ns)
    oc.wait_condition(AGENT_PLURAL, ns, "helper", "Ready", "False")
    wait_for(lambda: not any(r[:2] == (ns, "helper") for r in published_routes(oc)), "the route to go")
    oc.cluster.kubectl("delete", "sagent", "helper", "-n", ns)
    wait_for(
        lambda: (
            not oc.apps.list_namespaced_deployment(ns).items
            and not oc.core.list_namespaced_config_map(ns, label_selector="concierge.dev/agent=helper").items
        ),
        "the garbage collector to remove the agent's objects",
    )


def rows_seen_as(url: str, tenant_setting: str, tenant: str) -> int:
    """Documents of `tenant` visible to `url`'s login acting as the app role with `concierge.tenant` set."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET ROLE concierge_app")
        conn.execute("SELECT set_config('concierge.tenant', %s, false)", [tenant_setting])
        row = conn.execute("SELECT count(*) FROM documents WHERE tenant = %s", [tenant]).fetchone()
    return int(row[0]) if row else 0


def published_routes(oc: OperatorCluster) -> set[tuple[str, str, str]]:
    """(tenant, agent, address) of each agent in the edge's route table."""
    data = oc.core.read_namespaced_config_map(ROUTES_CONFIGMAP, RELEASE_NAMESPACE).data[ROUTES_KEY]
    return {(r.tenant, r.name, r.agent_address) for r in RouteTable.model_validate_json(data).agents}


def parse_documents_from(text: str) -> tuple[list[Any], list[str]]:
    from pathlib import Path

    items, problems = parse_documents(Path("configmap/resources.yaml"), text)
    return [i.resource for i in items], problems


def test_policy_with_a_missing_webhook_secret_is_not_ready(operator_cluster: OperatorCluster) -> None:
    oc = operator_cluster
    ns = oc.namespace("op-policy")
    body = policy(ns, "hooks")
    body["spec"]["handoff"] = {"type": "webhook", "url": "https://hooks.example.com/x", "secretRef": {"name": "hmac"}}
    oc.apply(body)
    ready = oc.wait_condition(POLICY_PLURAL, ns, "hooks", "Ready", "False")
    assert ready["reason"] == "SecretMissing"
    oc.cluster.kubectl("create", "secret", "generic", "hmac", "-n", ns, "--from-literal=apiKey=s3cret")
    oc.wait_condition(POLICY_PLURAL, ns, "hooks", "Ready", "True")
    assert yaml.safe_dump(body)
