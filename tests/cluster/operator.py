"""The operator as a separate process against the test control plane, with the chart's RBAC.

It authenticates as the chart's ServiceAccount (a real token from the TokenRequest API), so the
tests also prove the ClusterRole in `charts/concierge` is enough; the API server's audit log
tells how many writes it made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import yaml
from kubernetes import client, config

from cluster.controlplane import ControlPlane, write_kubeconfig
from concierge.local.processes import die_with_parent, free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
RELEASE_NAMESPACE = "concierge"
KUBE_VERSION = "1.35.4"  # helm template assumes an old cluster unless told
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last seen: {last!r})")


@dataclass
class Operator:
    """One `concierge-operator` process at a time; restartable, killable."""

    env: dict[str, str]
    log_dir: Path
    username: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    liveness_port: int = field(default_factory=free_port)

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"operator-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "concierge_operator",
                "--liveness",
                f"http://127.0.0.1:{self.liveness_port}/healthz",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        wait_for(self._live, "the operator's liveness endpoint", timeout=60)

    def _live(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the operator exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no cleanup, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def log_tail(self, lines: int = 40) -> str:
        text = (self.log_dir / f"operator-{self.starts}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class OperatorCluster:
    cluster: ControlPlane
    operator: Operator
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def apply(self, *documents: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(documents))

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                "concierge.dev", "v1alpha1", namespace, plural, name
            )
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise
        return found

    def condition(self, plural: str, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
        body = self.get(plural, namespace, name) or {}
        conditions = (body.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), None)

    def wait_condition(
        self, plural: str, namespace: str, name: str, type_: str, status: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            body = self.get(plural, namespace, name) or {}
            found = self.condition(plural, namespace, name, type_)
            generation = body.get("metadata", {}).get("generation")
            if found and found["status"] == status and found.get("observedGeneration") == generation:
                return found
            return None

        return wait_for(matches, f"{plural} {namespace}/{name} {type_}={status}", timeout)

    def namespace(self, name: str) -> str:
        self.cluster.kubectl("create", "namespace", name)
        return name


def operator_rbac(cluster: ControlPlane) -> tuple[str, str]:
    """Apply the chart's operator ServiceAccount and RBAC; return (ServiceAccount name, rendered YAML)."""
    rendered = cluster.run(
        "helm",
        "template",
        "concierge",
        str(REPO / "charts" / "concierge"),
        "--namespace",
        RELEASE_NAMESPACE,
        "--show-only",
        "templates/operator-rbac.yaml",
        "--kube-version",
        KUBE_VERSION,
    ).stdout
    cluster.kubectl("apply", "--server-side", "-f", "-", input=rendered)
    accounts = [d for d in yaml.safe_load_all(rendered) if d and d.get("kind") == "ServiceAccount"]
    return accounts[0]["metadata"]["name"], rendered


def start_operator_cluster(
    cluster: ControlPlane, database_url: str, retrieval_address: str, embedding_address: str, work_dir: Path
) -> OperatorCluster:
    """CRDs, the release namespace with its database Secret, the chart's RBAC, then the operator."""
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    if cluster.kubectl("get", "namespace", RELEASE_NAMESPACE, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", RELEASE_NAMESPACE)
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "concierge-database",
        "-n",
        RELEASE_NAMESPACE,
        f"--from-literal=url={database_url}",
    )
    account, _ = operator_rbac(cluster)
    token = cluster.kubectl("create", "token", account, "-n", RELEASE_NAMESPACE, "--duration=6h").stdout.strip()
    kubeconfig = work_dir / "operator-kubeconfig"
    write_kubeconfig(kubeconfig, cluster.server, cluster.ca_file, token)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "CONCIERGE_OPERATOR_NAMESPACE": RELEASE_NAMESPACE,
        "CONCIERGE_OPERATOR_RETRIEVAL_ADDRESS": retrieval_address,
        "CONCIERGE_OPERATOR_EMBEDDING_ADDRESSES": json.dumps({"all-MiniLM-L6-v2": embedding_address}),
        "CONCIERGE_OPERATOR_SOURCES_DIR": str(REPO / "examples" / "acme"),
        "CONCIERGE_OPERATOR_RETRY_SECONDS": "1",
        "CONCIERGE_OPERATOR_RESYNC_SECONDS": "2",
    }
    operator = Operator(env=env, log_dir=work_dir, username=f"system:serviceaccount:{RELEASE_NAMESPACE}:{account}")
    operator.start()
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return OperatorCluster(cluster=cluster, operator=operator, api=api)


# --- resources the tests apply -------------------------------------------------------

KB_PLURAL, AGENT_PLURAL, POLICY_PLURAL = "knowledgebases", "supportagents", "escalationpolicies"


def knowledge_base(namespace: str, name: str, *titles: str, model: str = "all-MiniLM-L6-v2") -> dict[str, Any]:
    return {
        "apiVersion": "concierge.dev/v1alpha1",
        "kind": "KnowledgeBase",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "description": f"{name} answers",
            "embedding": {"model": model},
            "sources": [
                {
                    "name": "faq",
                    "inline": [
                        {"title": t, "content": f"# {t}\n\nThe {t.lower()} policy allows returns within 30 days."}
                        for t in titles
                    ],
                }
            ],
        },
    }


def support_agent(namespace: str, name: str, kbs: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "concierge.dev/v1alpha1",
        "kind": "SupportAgent",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"displayName": name.title(), "knowledgeBases": kbs, **spec},
    }


def policy(namespace: str, name: str, message: str = "A person will take over.") -> dict[str, Any]:
    return {
        "apiVersion": "concierge.dev/v1alpha1",
        "kind": "EscalationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"customerMessage": message},
    }


def owner_uids(obj: Any) -> set[str]:
    return {ref.uid for ref in obj.metadata.owner_references or []}


def stored_documents(postgres_url: str, tenant: str, kb: str) -> int:
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM documents WHERE tenant = %s AND knowledge_base = %s", (tenant, kb)
        ).fetchone()
    return int(row[0]) if row else 0
