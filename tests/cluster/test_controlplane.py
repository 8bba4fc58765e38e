"""The test control plane behaves like a real cluster: API, kubectl, garbage collection, Helm."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from cluster.controlplane import ControlPlane

BINS = Path(__file__).resolve().parent / "bins"


def pinned(module_dir: str, module: str) -> str:
    for line in (BINS / module_dir / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == module:
            return parts[1]
    raise AssertionError(f"{module} is not required in {BINS / module_dir / 'go.mod'}")


def pinned_helm() -> str:
    script = (BINS.parents[2] / "scripts" / "controlplane.sh").read_text()
    return next(line.split("=", 1)[1] for line in script.splitlines() if line.startswith("HELM_VERSION="))


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout:.0f}s"
        time.sleep(0.5)


def test_api_server_reports_the_pinned_version(cluster: ControlPlane) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    expected = pinned("kubernetes", "k8s.io/kubernetes")
    assert version["serverVersion"]["gitVersion"] == expected
    assert version["clientVersion"]["gitVersion"] == expected
    namespace = json.loads(cluster.kubectl("get", "namespace", "default", "-o", "json").stdout)
    assert namespace["status"]["phase"] == "Active"


def test_namespace_and_configmap_round_trip(cluster: ControlPlane) -> None:
    cluster.kubectl("create", "namespace", "roundtrip")
    cluster.kubectl("create", "configmap", "greeting", "-n", "roundtrip", "--from-literal=text=hello")
    got = json.loads(cluster.kubectl("get", "configmap", "greeting", "-n", "roundtrip", "-o", "json").stdout)
    assert got["data"] == {"text": "hello"}
    # The controller manager publishes the cluster CA into every namespace.
    root_ca = ("get", "configmap", "kube-root-ca.crt", "-n", "roundtrip")
    wait_for(lambda: cluster.kubectl(*root_ca, check=False).returncode == 0)


def test_garbage_collector_deletes_dependents(cluster: ControlPlane) -> None:
    cluster.kubectl("create", "namespace", "gc")
    cluster.kubectl("create", "configmap", "owner", "-n", "gc")
    uid = cluster.kubectl("get", "configmap", "owner", "-n", "gc", "-o", "jsonpath={.metadata.uid}").stdout
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": "gc",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(dependent))

    cluster.kubectl("delete", "configmap", "owner", "-n", "gc", "--cascade=background")

    wait_for(lambda: cluster.kubectl("get", "configmap", "dependent", "-n", "gc", check=False).returncode != 0)
    gone = cluster.kubectl("get", "configmap", "dependent", "-n", "gc", check=False)
    assert "NotFound" in gone.stderr


def test_helm_installs_and_uninstalls_a_chart(cluster: ControlPlane, tmp_path: Path) -> None:
    assert cluster.run("helm", "version", "--short").stdout.startswith(pinned_helm())
    chart = tmp_path / "hello"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: hello\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hello\ndata:\n  k: v\n"
    )
    cluster.run("helm", "install", "demo", str(chart), "--namespace", "helm", "--create-namespace", "--wait")
    assert cluster.kubectl("get", "configmap", "demo-hello", "-n", "helm", "-o", "jsonpath={.data.k}").stdout == "v"
    cluster.run("helm", "uninstall", "demo", "--namespace", "helm", "--wait")
    assert cluster.kubectl("get", "configmap", "demo-hello", "-n", "helm", check=False).returncode != 0
