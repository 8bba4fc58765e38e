"""The Helm charts: lint clean, render hardened pods and least-privilege RBAC, refuse bad values with a
message naming the value, and what they render is accepted by a real API server (server-side dry run).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.controlplane import ControlPlane, ControlPlaneFailed, ensure_binaries

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "concierge"
CRDS_CHART = ROOT / "charts" / "concierge-crds"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
# A Helm built from source stamps no Kubernetes version (it assumes 1.20), so `helm template` is told
# which version the chart's kubeVersion is checked against: the one the cluster tests run.
KUBE_VERSION = "1.35.4"
RELEASE = "concierge"
NAMESPACE = "concierge-system"
GRPC_PORT = 50051
CUSTOM_RESOURCES = ("knowledgebases", "supportagents", "escalationpolicies")

Manifest = dict[str, Any]
WORKLOADS = ("Deployment", "StatefulSet")


class Helm:
    """helm from the control-plane binaries, its state in a temporary folder, no cluster needed."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )

    def template_text(self, *args: str, chart: Path = CHART, namespace: str = NAMESPACE) -> str:
        result = self.run("template", RELEASE, str(chart), "-n", namespace, "--kube-version", KUBE_VERSION, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def template(self, *args: str, chart: Path = CHART, namespace: str = NAMESPACE) -> list[Manifest]:
        text = self.template_text(*args, chart=chart, namespace=namespace)
        return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        binaries = ensure_binaries()
    except ControlPlaneFailed as error:
        pytest.fail(str(error), pytrace=False)
    return Helm(binaries / "helm", tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def default(helm: Helm) -> list[Manifest]:
    return helm.template()


@pytest.fixture(scope="module")
def all_on(helm: Helm) -> list[Manifest]:
    return helm.template("-f", str(ALL_ON))


def kinds(manifests: list[Manifest]) -> Counter[str]:
    return Counter(m["kind"] for m in manifests)


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, rendered: {[m['metadata']['name'] for m in manifests]}"
    return found[0]


def env_of(container: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def pods(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for m in manifests:
        if m["kind"] in WORKLOADS:
            yield m["metadata"]["name"], m["spec"]["template"]


# --- lint and render -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chart", "values"),
    [(CRDS_CHART, None), (CHART, None), (CHART, ALL_ON)],
    ids=["crds-chart", "default-values", "all-on-values"],
)
def test_charts_lint_clean_in_strict_mode(helm: Helm, chart: Path, values: Path | None) -> None:
    result = helm.run("lint", "--strict", str(chart), *(["-f", str(values)] if values else []))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


def test_every_value_is_documented_and_in_the_schema() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    parents: list[tuple[int, bool]] = []  # (indent, documented) of the keys enclosing this line
    for number, line in enumerate(lines):
        key = re.match(r"^(\s*)([A-Za-z][\w-]*):(.*)$", line)
        if not key:
            continue
        indent = len(key.group(1))
        parents = [p for p in parents if p[0] < indent]
        comments = itertools.takewhile(lambda x: x.lstrip().startswith("#"), reversed(lines[:number]))
        documented = any(c.lstrip().startswith("# --") for c in comments)
        is_leaf = key.group(3).strip() != "" or not lines[number + 1].startswith(key.group(1) + "  ")
        if is_leaf and not documented and not any(d for _, d in parents):
            undocumented.append(f"values.yaml:{number + 1}: {line.strip()}")
        parents.append((indent, documented))
    assert not undocumented, "values without a `# --` comment:\n" + "\n".join(undocumented)
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def missing(node: Any, schema_node: dict[str, Any], path: str) -> list[str]:
        if not isinstance(node, dict) or "properties" not in schema_node:
            return []
        found = []
        for name, value in node.items():
            if name not in schema_node["properties"]:
                found.append(f"{path}{name}")
            else:
                found += missing(value, schema_node["properties"][name], f"{path}{name}.")
        return found

    assert not missing(values, schema, ""), "values not in values.schema.json"


def test_crds_chart_ships_the_three_crds_kept_on_uninstall(helm: Helm) -> None:
    crds = helm.template(chart=CRDS_CHART)
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "escalationpolicies.concierge.dev",
        "knowledgebases.concierge.dev",
        "supportagents.concierge.dev",
    ]
    for crd in crds:
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_default_values_render_operator_edge_embedding_postgres_and_network_policies(
    default: list[Manifest],
) -> None:
    assert kinds(default) == {
        "ServiceAccount": 1,
        "ClusterRole": 1,
        "ClusterRoleBinding": 1,
        "Deployment": 3,  # operator, edge, one embedding model
        "Service": 3,  # edge, embedding, postgres
        "StatefulSet": 1,
        "Secret": 1,  # the database URL
        "HorizontalPodAutoscaler": 1,  # edge
        "PodDisruptionBudget": 1,  # edge: its HPA keeps 2 replicas
        "NetworkPolicy": 4,  # default deny, edge, embedding, postgres
    }
    operator = find(default, "Deployment", "concierge-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["concierge-operator"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


def test_all_options_add_redis_a_second_model_autoscalers_and_budgets(all_on: list[Manifest]) -> None:
    counted = kinds(all_on)
    assert counted["StatefulSet"] == 1
    assert counted["Deployment"] == 5  # operator, edge, two embedding models, redis
    assert counted["HorizontalPodAutoscaler"] == 2  # edge, embeddinggemma
    assert counted["PodDisruptionBudget"] == 3  # edge and both models run 2 or more replicas
    assert counted["NetworkPolicy"] == 5  # plus redis
    assert counted["Secret"] == 2  # database, redis
    edge = find(all_on, "Deployment", "concierge-edge")
    assert "replicas" not in edge["spec"], "the HPA owns the edge's replica count"
    env = env_of(edge["spec"]["template"]["spec"]["containers"][0])
    assert env["CONCIERGE_REDIS_URL"] == {"secretKeyRef": {"name": "concierge-redis", "key": "url"}}
    assert "CONCIERGE_DEFAULT_TENANT" not in env
    redis = find(all_on, "Secret", "concierge-redis")
    url = base64.b64decode(redis["data"]["url"]).decode()
    assert url.startswith("redis://:")
    assert url.endswith(f"@concierge-redis.{NAMESPACE}.svc:6379/0")


@pytest.mark.parametrize("values", ["default", "all_on"])
def test_edge_reads_the_operators_route_table_and_no_hard_wired_agent(
    values: str, request: pytest.FixtureRequest
) -> None:
    manifests: list[Manifest] = request.getfixturevalue(values)
    pod = find(manifests, "Deployment", "concierge-edge")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    assert env["CONCIERGE_ROUTES_FILE"] == "/etc/concierge/routes/routes.json"
    laptop_only = {"CONCIERGE_AGENT_ADDRESS", "CONCIERGE_MEMORY_ADDRESS", "CONCIERGE_RESOURCES_DIR"}
    assert not laptop_only & env.keys(), "the edge in a cluster routes by the operator's table only"
    assert {"name": "routes", "mountPath": "/etc/concierge/routes", "readOnly": True} in container["volumeMounts"]
    assert not any("subPath" in m for m in container["volumeMounts"]), "a subPath mount is never refreshed"
    volumes = {v["name"]: v for v in pod["volumes"]}
    # Optional: edge pods start before the operator has published the table.
    assert volumes["routes"] == {"name": "routes", "configMap": {"name": "concierge-routes", "optional": True}}
    assert sorted(volumes) == ["routes", "tmp"]
    if values == "default":
        assert env["CONCIERGE_DEFAULT_TENANT"] == "acme"
        assert "CONCIERGE_UI_DIR" not in env, "empty uiDir: the image's own CONCIERGE_UI_DIR (/app/ui)"
    else:
        assert "CONCIERGE_DEFAULT_TENANT" not in env
        assert env["CONCIERGE_UI_DIR"] == "/app/ui"


IMAGES = {"default": "ghcr.io/example/concierge:0.1.0", "all_on": "registry.example.com/concierge:0.1.0-rc.1"}


@pytest.mark.parametrize("values", ["default", "all_on"])
def test_every_pod_is_non_root_read_only_unprivileged_with_resources_and_probes(
    values: str, request: pytest.FixtureRequest
) -> None:
    manifests: list[Manifest] = request.getfixturevalue(values)
    checked = 0
    for name, template in pods(manifests):
        spec = template["spec"]
        component = template["metadata"]["labels"]["app.kubernetes.io/component"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is (component == "operator"), name
        mounts_tmp = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert security["runAsNonRoot"] is True, where
            if component not in ("postgres", "redis"):
                assert security["runAsUser"] == 10001, where
                assert container["image"] == IMAGES[values], where
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), where
            assert "memory" in resources["limits"], where
            assert "livenessProbe" in container, where
            assert component == "operator" or "readinessProbe" in container, where
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp, f"{where}: nothing mounted at /tmp"
            assert tmp[0]["name"] in mounts_tmp, f"{where}: /tmp is not an emptyDir"
            checked += 1
    assert checked == (4 if values == "default" else 6)


def test_grpc_services_are_probed_with_the_native_grpc_probe_on_their_port(all_on: list[Manifest]) -> None:
    for name, template in pods(all_on):
        if template["metadata"]["labels"]["app.kubernetes.io/component"] != "embedding":
            continue
        container = template["spec"]["containers"][0]
        assert container["args"] == ["serve", "embedding", "--host", "0.0.0.0", "--port", str(GRPC_PORT)], name
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": GRPC_PORT}, f"{name} {probe}"
    edge = find(all_on, "Deployment", "concierge-edge")["spec"]["template"]["spec"]["containers"][0]
    assert edge["args"] == ["serve", "edge", "--host", "0.0.0.0", "--port", "8080"]
    assert edge["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert edge["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_operator_environment_names_the_release_image_database_and_embedding_services(
    all_on: list[Manifest],
) -> None:
    operator = find(all_on, "Deployment", "concierge-operator")
    env = env_of(operator["spec"]["template"]["spec"]["containers"][0])
    addresses = json.loads(env["CONCIERGE_OPERATOR_EMBEDDING_ADDRESSES"])
    assert {
        k: v
        for k, v in env.items()
        if k.startswith("CONCIERGE_OPERATOR_") and k != "CONCIERGE_OPERATOR_EMBEDDING_ADDRESSES"
    } == {
        "CONCIERGE_OPERATOR_NAMESPACE": NAMESPACE,
        "CONCIERGE_OPERATOR_IMAGE": "registry.example.com/concierge:0.1.0-rc.1",
        "CONCIERGE_OPERATOR_IMAGE_PULL_POLICY": "Always",
        "CONCIERGE_OPERATOR_DATABASE_SECRET": "concierge-database",
        "CONCIERGE_OPERATOR_NETWORK_POLICIES": "true",
        "CONCIERGE_OPERATOR_RETRY_SECONDS": "30",
    }
    assert addresses == {
        "all-MiniLM-L6-v2": f"concierge-embedding-all-minilm-l6-v2.{NAMESPACE}.svc:{GRPC_PORT}",
        "embeddinggemma-300m": f"concierge-embedding-embeddinggemma-300m.{NAMESPACE}.svc:{GRPC_PORT}",
    }
    for model, address in addresses.items():
        service = find(all_on, "Service", address.split(".")[0])
        assert service["spec"]["ports"][0]["port"] == GRPC_PORT
        deployment = find(all_on, "Deployment", address.split(".")[0])
        assert env_of(deployment["spec"]["template"]["spec"]["containers"][0])["CONCIERGE_EMBEDDING_MODEL_ID"] == model


def test_embedding_models_load_from_the_image_or_the_read_only_model_cache(all_on: list[Manifest]) -> None:
    minilm = find(all_on, "Deployment", "concierge-embedding-all-minilm-l6-v2")["spec"]
    gemma = find(all_on, "Deployment", "concierge-embedding-embeddinggemma-300m")["spec"]
    assert minilm["replicas"] == 2
    assert "replicas" not in gemma
    assert "CONCIERGE_EMBEDDING_MODEL_PATH" not in env_of(minilm["template"]["spec"]["containers"][0])
    container = gemma["template"]["spec"]["containers"][0]
    env = env_of(container)
    assert env["CONCIERGE_EMBEDDING_MODEL_PATH"] == "/var/cache/models/google/embeddinggemma-300m"
    assert env["CONCIERGE_EMBEDDING_DIMENSIONS"] == "256"
    assert env["CONCIERGE_EMBEDDING_MAX_BATCH_SIZE"] == "16"  # the model's own extraEnv
    assert env["CONCIERGE_EMBEDDING_QUERY_CACHE_SIZE"] == "20000"  # every model's extraEnv
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
    assert {"name": "model-cache", "mountPath": "/var/cache/models", "readOnly": True} in container["volumeMounts"]
    volume = next(v for v in gemma["template"]["spec"]["volumes"] if v["name"] == "model-cache")
    assert volume == {
        "name": "model-cache",
        "persistentVolumeClaim": {"claimName": "concierge-models", "readOnly": True},
    }


def test_operator_cluster_role_grants_exactly_what_the_operator_needs(helm: Helm) -> None:
    rendered = helm.template("--show-only", "templates/operator-rbac.yaml")
    role = find(rendered, "ClusterRole", "concierge-operator")
    binding = find(rendered, "ClusterRoleBinding", "concierge-operator")
    assert binding["roleRef"]["name"] == "concierge-operator"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "concierge-operator", "namespace": NAMESPACE}]
    granted = {
        (group, resource): sorted(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    owns = sorted(["get", "list", "watch", "create", "patch", "update", "delete"])
    assert granted == {
        **{("concierge.dev", r): sorted(["get", "list", "watch", "patch", "update"]) for r in CUSTOM_RESOURCES},
        **{("concierge.dev", f"{r}/status"): sorted(["get", "patch", "update"]) for r in CUSTOM_RESOURCES},
        ("apps", "deployments"): owns,
        ("", "services"): owns,
        ("", "configmaps"): owns,
        ("autoscaling", "horizontalpodautoscalers"): owns,
        ("networking.k8s.io", "networkpolicies"): owns,
        ("", "secrets"): sorted(["get", "list", "watch", "create", "patch", "update"]),
        ("", "persistentvolumeclaims"): ["get", "list", "watch"],
        ("", "events"): ["create", "patch"],
        ("events.k8s.io", "events"): ["create", "patch"],
        ("apiextensions.k8s.io", "customresourcedefinitions"): ["get", "list", "watch"],
        ("", "namespaces"): ["get", "list", "watch"],
    }


def test_network_policies_deny_by_default_and_allow_only_the_documented_paths(all_on: list[Manifest]) -> None:
    policies = {
        m["metadata"]["name"].removeprefix("concierge-"): m["spec"] for m in all_on if m["kind"] == "NetworkPolicy"
    }
    assert policies["default-deny"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "concierge", "app.kubernetes.io/instance": RELEASE}},
        "policyTypes": ["Ingress"],
    }
    assert policies["edge"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    tenants = {
        "namespaceSelector": {"matchLabels": {"concierge.dev/tenant": "true"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "concierge"}},
    }
    assert policies["embedding"]["ingress"] == [{"from": [tenants], "ports": [{"port": "grpc", "protocol": "TCP"}]}]
    assert policies["postgres"]["ingress"] == [{"from": [tenants], "ports": [{"port": "postgres", "protocol": "TCP"}]}]
    same_namespace = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "concierge"}}}
    assert policies["redis"]["ingress"] == [{"from": [same_namespace], "ports": [{"port": "redis", "protocol": "TCP"}]}]
    # Ingress only: the edge reaches every tenant's agent and memory services (port 50051 in the tenant
    # namespaces, admitted there by the operator's per-tenant NetworkPolicy) without an egress rule.
    assert all(p["policyTypes"] == ["Ingress"] for p in policies.values()), policies


def test_without_network_policies_none_render_and_the_operator_is_told(helm: Helm) -> None:
    manifests = helm.template("--set", "networkPolicies.enabled=false")
    assert "NetworkPolicy" not in kinds(manifests)
    operator = find(manifests, "Deployment", "concierge-operator")
    assert (
        env_of(operator["spec"]["template"]["spec"]["containers"][0])["CONCIERGE_OPERATOR_NETWORK_POLICIES"] == "false"
    )


def test_in_cluster_postgres_gets_a_secret_whose_url_points_at_it(default: list[Manifest]) -> None:
    secret = find(default, "Secret", "concierge-database")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert len(data["password"]) == 32
    assert data["url"] == f"postgresql://concierge:{data['password']}@concierge-postgres.{NAMESPACE}.svc:5432/concierge"
    postgres = find(default, "StatefulSet", "concierge-postgres")["spec"]
    container = postgres["template"]["spec"]["containers"][0]
    assert container["image"] == "pgvector/pgvector:pg17"
    assert env_of(container)["POSTGRES_PASSWORD"] == {"secretKeyRef": {"name": "concierge-database", "key": "password"}}
    assert postgres["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_an_existing_database_secret_replaces_the_in_cluster_postgres(helm: Helm) -> None:
    manifests = helm.template("--set", "postgres.enabled=false", "--set", "database.existingSecret=prod-postgres")
    assert "StatefulSet" not in kinds(manifests)
    assert "Secret" not in kinds(manifests)
    operator = find(manifests, "Deployment", "concierge-operator")
    assert env_of(operator["spec"]["template"]["spec"]["containers"][0])["CONCIERGE_OPERATOR_DATABASE_SECRET"] == (
        "prod-postgres"
    )


BAD_VALUES: list[tuple[str, list[str], str]] = [
    ("replicas not a number", ["--set-string", "edge.autoscaling.minReplicas=two"], "/edge/autoscaling/minReplicas"),
    ("unknown value", ["--set", "edge.colour=blue"], "'colour' not allowed"),
    ("unknown pull policy", ["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    ("port out of range", ["--set", "edge.service.port=70000"], "/edge/service/port"),
    ("password unsafe in a URL", ["--set", "postgres.auth.password=p@ss word"], "/postgres/auth/password"),
    ("no model", ["--set-json", "embedding.models=[]"], "/embedding/models"),
    ("hard-wired agent, now the route table", ["--set", "edge.agentAddress=a:50051"], "'agentAddress' not allowed"),
    ("edge resources, now the route table", ["--set", "edge.resourcesConfigMap=x"], "'resourcesConfigMap' not allowed"),
    (
        "no database at all",
        ["--set", "postgres.enabled=false"],
        "set database.existingSecret to a Secret in namespace concierge-system whose key `url` is the PostgreSQL URL",
    ),
    (
        "two databases",
        ["--set", "database.existingSecret=prod-postgres"],
        "set either postgres.enabled=true (the chart runs Postgres and makes the Secret) or "
        'database.existingSecret="prod-postgres", not both',
    ),
    (
        "model without its files",
        ["--set", "embedding.models[0].id=embeddinggemma-300m"],
        "embedding.models[0] (embeddinggemma-300m): set path",
    ),
    (
        "two models with one name",
        [
            "--set",
            "embedding.models[0].id=bge-small",
            "--set",
            "embedding.models[0].path=a",
            "--set",
            "embedding.models[1].id=BGE_small",
            "--set",
            "embedding.models[1].path=b",
        ],
        'embedding.models[1].id "BGE_small" has the same Kubernetes name (bge-small) as embedding.models[0]',
    ),
    (
        "autoscaling minimum above maximum",
        ["--set", "edge.autoscaling.minReplicas=20"],
        "edge.autoscaling.minReplicas (20) is above edge.autoscaling.maxReplicas (10)",
    ),
]


@pytest.mark.parametrize(("args", "message"), [(a, m) for _, a, m in BAD_VALUES], ids=[i for i, _, _ in BAD_VALUES])
def test_bad_values_are_refused_with_a_message_naming_the_value(helm: Helm, args: list[str], message: str) -> None:
    result = helm.run("template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION, *args)
    assert result.returncode != 0, f"rendered although {args} is wrong"
    assert message in result.stderr


# --- against the API server ------------------------------------------------------------


@pytest.fixture(scope="module")
def crds_installed(cluster: ControlPlane, helm: Helm) -> ControlPlane:
    cluster.kubectl("apply", "--server-side", "-f", "-", input=helm.template_text(chart=CRDS_CHART))
    for name in CUSTOM_RESOURCES:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}.concierge.dev", "--timeout=60s")
    return cluster


def test_crds_chart_applies_and_its_kinds_are_served(crds_installed: ControlPlane) -> None:
    out = crds_installed.kubectl("api-resources", "--api-group=concierge.dev", "-o", "name").stdout.split()
    assert sorted(out) == sorted(f"{r}.concierge.dev" for r in CUSTOM_RESOURCES)
    crd = json.loads(crds_installed.kubectl("get", "crd", "knowledgebases.concierge.dev", "-o", "json").stdout)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@pytest.mark.parametrize("values", [None, ALL_ON], ids=["default-values", "all-on-values"])
def test_rendered_chart_passes_the_api_servers_validation(
    crds_installed: ControlPlane, helm: Helm, values: Path | None
) -> None:
    namespace = f"chart-{'all-on' if values else 'default'}"
    crds_installed.kubectl("create", "namespace", namespace)
    text = helm.template_text(*(["-f", str(values)] if values else []), namespace=namespace)
    result = crds_installed.kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict", "-f", "-", input=text, check=False
    )
    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len([d for d in yaml.safe_load_all(text) if d]), result.stdout


def test_generated_database_password_survives_an_upgrade_and_notes_give_the_next_steps(
    crds_installed: ControlPlane,
) -> None:
    namespace, release = "chart-upgrade", "kept"
    crds_installed.kubectl("create", "namespace", namespace)
    installed = crds_installed.run("helm", "install", release, str(CHART), "-n", namespace, check=False)
    try:
        assert installed.returncode == 0, installed.stderr
        notes = installed.stdout.split("NOTES:", 1)[1]
        assert f"kubectl port-forward -n {namespace} svc/kept-concierge-edge 8080:80" in notes
        assert "kubectl apply -f examples/acme/" in notes
        assert "kubectl get kb,sagent,escpol -A" in notes
        assert "create configmap edge" not in notes, "the edge needs no ConfigMap of resources"
        assert "label configmap docs -n acme concierge.dev/knowledge-source=true" in notes  # the help center's files
        assert "kubectl get sagent -A" in notes
        assert "X-Concierge-Tenant" in notes
        assert "?tenant=" in notes
        secret = json.loads(
            crds_installed.kubectl("get", "secret", "kept-concierge-database", "-n", namespace, "-o", "json").stdout
        )
        upgraded = crds_installed.run(
            "helm", "upgrade", release, str(CHART), "-n", namespace, "--dry-run=server", check=False
        )
        assert upgraded.returncode == 0, upgraded.stderr
        manifest = upgraded.stdout.split("MANIFEST:", 1)[1].split("NOTES:", 1)[0]
        rendered = find([d for d in yaml.safe_load_all(manifest) if d], "Secret", "kept-concierge-database")
        assert rendered["data"] == secret["data"], "an upgrade generated a new database password"
    finally:
        crds_installed.run("helm", "uninstall", release, "-n", namespace, check=False)
