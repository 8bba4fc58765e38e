"""The operator's targets as behaviour: an idle cluster gets no writes, and SIGKILL at random
points during create, update and delete still converges with nothing orphaned or duplicated."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from typing import Any

import pytest

from cluster.operator import (
    AGENT_PLURAL,
    KB_PLURAL,
    OperatorCluster,
    knowledge_base,
    policy,
    stored_documents,
    support_agent,
    wait_for,
)

pytestmark = pytest.mark.cluster

IDLE_SECONDS = float(os.environ.get("CONCIERGE_TEST_IDLE_SECONDS", "20"))
KILL_ROUNDS = 20
AGENT_KINDS = ("ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler")


def test_idle_operator_makes_no_writes(operator_cluster: OperatorCluster) -> None:
    oc = operator_cluster
    ns = oc.namespace("op-idle")
    oc.apply(policy(ns, "humans"))
    for i in range(3):
        oc.apply(knowledge_base(ns, f"kb{i}", f"Topic {i}"))
        oc.apply(support_agent(ns, f"agent{i}", [f"kb{i}"], escalationPolicy="humans"))
    for i in range(3):
        oc.wait_condition(KB_PLURAL, ns, f"kb{i}", "Synced", "True", timeout=60)
        oc.wait_condition(AGENT_PLURAL, ns, f"agent{i}", "Ready", "True")
    time.sleep(3)  # let the last status patches and timers settle
    before = len(oc.cluster.writes(oc.operator.username))
    time.sleep(IDLE_SECONDS)
    during = oc.cluster.writes(oc.operator.username)[before:]
    print(f"\nidle {IDLE_SECONDS:.0f}s with 3 KBs and 3 agents: {len(during)} writes by the operator")
    assert not during, Counter(f"{e['verb']} {e['requestURI'].split('?')[0]}" for e in during).most_common()


def agent_objects(oc: OperatorCluster, ns: str, agent: str) -> Counter[str]:
    """How many of each kind the operator wrote for `agent`."""
    selector = f"concierge.dev/agent={agent}"
    return Counter(
        {
            "ConfigMap": len(oc.core.list_namespaced_config_map(ns, label_selector=selector).items),
            "Deployment": len(oc.apps.list_namespaced_deployment(ns, label_selector=selector).items),
            "Service": len(oc.core.list_namespaced_service(ns, label_selector=selector).items),
            "HorizontalPodAutoscaler": len(
                oc.custom.list_namespaced_custom_object(
                    "autoscaling", "v2", ns, "horizontalpodautoscalers", label_selector=selector
                )["items"]
            ),
        }
    )


def managed_objects(oc: OperatorCluster, ns: str) -> list[Any]:
    selector = "app.kubernetes.io/managed-by=concierge-operator"
    return [
        *oc.core.list_namespaced_config_map(ns, label_selector=selector).items,
        *oc.core.list_namespaced_secret(ns, label_selector=selector).items,
        *oc.core.list_namespaced_service(ns, label_selector=selector).items,
        *oc.apps.list_namespaced_deployment(ns, label_selector=selector).items,
    ]


def converged(
    oc: OperatorCluster, ns: str, kbs: dict[str, int], agents: dict[str, dict[str, Any]], postgres_url: str
) -> bool:
    """Everything desired exists once and is current; nothing undesired is left."""
    for name, topics in kbs.items():
        body = oc.get(KB_PLURAL, ns, name)
        synced = oc.condition(KB_PLURAL, ns, name, "Synced")
        if not body or not synced or synced["status"] != "True":
            return False
        if synced["observedGeneration"] != body["metadata"]["generation"] or body["status"]["documentCount"] != topics:
            return False
    listed = oc.custom.list_namespaced_custom_object("concierge.dev", "v1alpha1", ns, KB_PLURAL)["items"]
    if {kb["metadata"]["name"] for kb in listed} != set(kbs):
        return False
    for name in ("kb0", "kb1", "kb2"):
        if name not in kbs and stored_documents(postgres_url, ns, name):
            return False
    for name in ("a0", "a1", "a2"):
        counts = agent_objects(oc, ns, name)
        if name not in agents:
            if sum(counts.values()):
                return False
            continue
        ready = oc.condition(AGENT_PLURAL, ns, name, "Ready")
        body = oc.get(AGENT_PLURAL, ns, name)
        wants_ready = all(kb in kbs for kb in agents[name]["knowledgeBases"])
        if not body or not ready or ready["observedGeneration"] != body["metadata"]["generation"]:
            return False
        if ready["status"] != ("True" if wants_ready else "False"):
            return False
        if wants_ready:
            if counts != Counter(dict.fromkeys(AGENT_KINDS, 1)):
                return False
            hpa = oc.custom.get_namespaced_custom_object(
                "autoscaling", "v2", ns, "horizontalpodautoscalers", f"concierge-agent-{name}"
            )
            if hpa["spec"]["maxReplicas"] != agents[name]["scaling"]["maxReplicas"]:
                return False
    live_uids = {
        o["metadata"]["uid"]
        for plural in (KB_PLURAL, AGENT_PLURAL)
        for o in oc.custom.list_namespaced_custom_object("concierge.dev", "v1alpha1", ns, plural)["items"]
    }
    for obj in managed_objects(oc, ns):
        owners = {ref.uid for ref in obj.metadata.owner_references or []}
        if not owners & live_uids:  # orphaned: every owner gone (the GC removes these)
            return False
    return True


def test_sigkill_at_random_points_converges_every_time(operator_cluster: OperatorCluster, postgres_url: str) -> None:
    oc = operator_cluster
    ns = oc.namespace("op-chaos")
    oc.apply(policy(ns, "humans"))
    rng = random.Random(20261125)
    kbs: dict[str, int] = {}  # name -> number of documents
    agents: dict[str, dict[str, Any]] = {}  # name -> spec
    recoveries = []
    for round_ in range(KILL_ROUNDS):
        kind = rng.choice(("kb", "agent"))
        pool, existing = (("kb0", "kb1", "kb2"), kbs) if kind == "kb" else (("a0", "a1", "a2"), agents)
        name = rng.choice(pool)
        action = ("update" if rng.random() < 0.6 else "delete") if name in existing else "create"
        if kind == "kb" and action in ("create", "update"):
            kbs[name] = rng.randint(1, 3)
            oc.apply(knowledge_base(ns, name, *(f"Topic {name} {i}" for i in range(kbs[name]))))
        elif kind == "agent" and action in ("create", "update"):
            spec = {
                "knowledgeBases": [rng.choice(("kb0", "kb1", "kb2"))],
                "escalationPolicy": "humans",
                "scaling": {"minReplicas": 1, "maxReplicas": rng.randint(2, 9)},
            }
            agents[name] = spec
            oc.apply(
                support_agent(ns, name, spec["knowledgeBases"], escalationPolicy="humans", scaling=spec["scaling"])
            )
        else:
            existing.pop(name)
            oc.cluster.kubectl("delete", "kb" if kind == "kb" else "sagent", name, "-n", ns, "--wait=false")
        time.sleep(rng.uniform(0.0, 1.2))
        oc.operator.kill()
        started = time.monotonic()
        oc.operator.start()
        wait_for(
            lambda: converged(oc, ns, kbs, agents, postgres_url),
            f"round {round_}: {action} {kind} {name} to converge after SIGKILL",
            timeout=90,
            interval=0.25,
        )
        recoveries.append(time.monotonic() - started)
    recoveries.sort()
    print(
        f"\n{KILL_ROUNDS} SIGKILLs: converged every time; restart to converged median "
        f"{recoveries[len(recoveries) // 2]:.1f}s, max {recoveries[-1]:.1f}s"
    )
