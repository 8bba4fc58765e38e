"""Run a real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Binaries come from scripts/controlplane.sh (built from source, cached by version); certificates,
keys and the admin token are made fresh for each run, and every process is stopped by its PID.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from concierge.local.processes import die_with_parent, free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "controlplane.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")
HOST = "127.0.0.1"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# What the tests need from a controller manager: owner-reference cleanup, namespace deletion,
# service accounts and their tokens, aggregated roles, and the workload controllers the operator uses.
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "deployment-controller",
    "replicaset-controller",
    "job-controller",
    "endpointslice-controller",
)


# Every write request is recorded once (when its response is sent): tests count an operator's writes.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted, Panic]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""


class ControlPlaneFailed(RuntimeError):
    """A control-plane binary is missing, exited, or did not become ready; says which and why."""


def bin_dir() -> Path:
    """Where scripts/controlplane.sh keeps the binaries of the pinned versions (built or not)."""
    out = subprocess.run([BUILD_SCRIPT, "--bin-dir"], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def ensure_binaries() -> Path:
    """Return the binary folder, building what is missing first (tens of minutes the first time)."""
    path = bin_dir()
    if all((path / name).is_file() for name in BINARIES):
        return path
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").is_file():
        missing = ", ".join(name for name in BINARIES if not (path / name).is_file())
        raise ControlPlaneFailed(
            f"the cluster tests need {missing} in {path}, built from source with Go, and Go is not "
            f"installed; install Go (https://go.dev/doc/install) and run {BUILD_SCRIPT}"
        )
    result = subprocess.run([BUILD_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise ControlPlaneFailed(f"{BUILD_SCRIPT} failed with code {result.returncode}:\n{result.stdout[-4000:]}")
    return path


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ControlPlaneFailed(
                    f"{self.name} exited with code {self.process.returncode} before {what}; "
                    f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.2)
        raise ControlPlaneFailed(f"{self.name}: no {what} after {timeout:.0f}s; log tail:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.process, timeout)


def start_process(name: str, argv: Sequence[str | Path], log_dir: Path) -> Process:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [str(arg) for arg in argv],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches only pytest, which stops us in order
            preexec_fn=die_with_parent,
        )
    return Process(name=name, process=process, log_path=log_path)


@dataclass
class ControlPlane:
    kubeconfig: Path
    server: str
    token: str
    bin_dir: Path
    ca_file: Path
    work_dir: Path
    processes: list[Process] = field(default_factory=list)

    @property
    def audit_log(self) -> Path:
        return self.work_dir / "audit.log"

    def writes(self, username: str) -> list[dict[str, Any]]:
        """Audit events of the requests that changed something (create, update, patch, delete) made by `username`."""
        if not self.audit_log.exists():
            return []
        events = (json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip())
        return [e for e in events if e.get("user", {}).get("username") == username]

    def env(self) -> dict[str, str]:
        """Our environment plus KUBECONFIG, the binaries on PATH, and Helm's state kept in work_dir."""
        helm = self.work_dir / "helm"
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HELM_CACHE_HOME": str(helm / "cache"),
            "HELM_CONFIG_HOME": str(helm / "config"),
            "HELM_DATA_HOME": str(helm / "data"),
        }

    def run(
        self, tool: str, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl or helm against this cluster; a failure raises with the tool's stderr."""
        result = subprocess.run(
            [str(self.bin_dir / tool), *args], env=self.env(), input=input, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise ControlPlaneFailed(f"{tool} {' '.join(args)} exited with {result.returncode}:\n{result.stderr}")
        return result

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, input=input, check=check)

    def stop(self) -> None:
        """Stop in reverse start order: the controller manager, the API server, then etcd."""
        for process in reversed(self.processes):
            process.stop()


# --- certificates and keys -------------------------------------------------------------


def _pem_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _key_usage(**usages: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{name: usages.get(name, False) for name in names})


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> x509.Certificate:
    """A CA certificate when `issuer` is None, else a loopback serving certificate signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
    )
    if issuer is None:
        builder = (
            builder.issuer_name(name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        return builder.sign(key, hashes.SHA256())
    ca_cert, ca_key = issuer
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
    builder = (
        builder.issuer_name(ca_cert.subject)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


@dataclass(frozen=True)
class Credentials:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_public: Path
    sa_private: Path
    token_file: Path
    token: str


def write_credentials(pki: Path) -> Credentials:
    """A CA and a loopback serving certificate, a service-account key pair, a static admin token."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("concierge-test-ca", ca_key)
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving_cert = _certificate("kube-apiserver", serving_key, issuer=(ca_cert, ca_key))
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = secrets.token_urlsafe(32)
    files = {
        "ca.crt": ca_cert.public_bytes(serialization.Encoding.PEM),
        "ca.key": _pem_key(ca_key),
        "apiserver.crt": serving_cert.public_bytes(serialization.Encoding.PEM),
        "apiserver.key": _pem_key(serving_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "sa.key": _pem_key(sa_key),
        # token,user,uid,"groups": system:masters is bound to cluster-admin by the RBAC bootstrap.
        "tokens.csv": f'{token},admin,admin,"system:masters"\n'.encode(),
    }
    for name, content in files.items():
        (pki / name).write_bytes(content)
        (pki / name).chmod(0o600)
    return Credentials(
        ca_cert=pki / "ca.crt",
        ca_key=pki / "ca.key",
        serving_cert=pki / "apiserver.crt",
        serving_key=pki / "apiserver.key",
        sa_public=pki / "sa.pub",
        sa_private=pki / "sa.key",
        token_file=pki / "tokens.csv",
        token=token,
    )


def write_kubeconfig(path: Path, server: str, ca_cert: Path, token: str) -> None:
    """A kubeconfig for the admin user; JSON is YAML, so kubectl, helm and the Python client read it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "concierge-test",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_cert.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "concierge-test", "context": {"cluster": "concierge-test", "user": "admin"}}],
        "current-context": "concierge-test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


# --- readiness probes ------------------------------------------------------------------


def _http_ok(url: str, *, verify: ssl.SSLContext | bool = True, token: str | None = None) -> bool:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.get(url, verify=verify, headers=headers, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


# --- the control plane -----------------------------------------------------------------


def start_control_plane(binaries: Path, work_dir: Path, timeout: float = 180.0) -> ControlPlane:
    """Start etcd, kube-apiserver and kube-controller-manager on free loopback ports; wait for each."""
    logs = work_dir / "logs"
    creds = write_credentials(work_dir / "pki")
    etcd_port, etcd_peer_port, api_port, kcm_port = (free_port(HOST) for _ in range(4))
    server = f"https://{HOST}:{api_port}"
    kubeconfig = work_dir / "kubeconfig"
    write_kubeconfig(kubeconfig, server, creds.ca_cert, creds.token)
    cluster = ControlPlane(
        kubeconfig=kubeconfig,
        server=server,
        token=creds.token,
        bin_dir=binaries,
        ca_file=creds.ca_cert,
        work_dir=work_dir,
    )
    try:
        etcd_url = f"http://{HOST}:{etcd_port}"
        peer_url = f"http://{HOST}:{etcd_peer_port}"
        etcd = start_process(
            "etcd",
            [
                binaries / "etcd",
                f"--data-dir={work_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                "--name=concierge-test",
                f"--initial-cluster=concierge-test={peer_url}",
                "--unsafe-no-fsync=true",  # throwaway data: don't pay for durability
                "--log-level=warn",
            ],
            logs,
        )
        cluster.processes.append(etcd)
        etcd.wait_until(lambda: _http_ok(f"{etcd_url}/health"), "healthy /health", timeout)

        audit_policy = work_dir / "audit-policy.yaml"
        audit_policy.write_text(AUDIT_POLICY)
        apiserver = start_process(
            "kube-apiserver",
            [
                binaries / "kube-apiserver",
                f"--etcd-servers={etcd_url}",
                f"--advertise-address={HOST}",
                f"--bind-address={HOST}",
                f"--secure-port={api_port}",
                f"--cert-dir={work_dir / 'apiserver-certs'}",
                f"--tls-cert-file={creds.serving_cert}",
                f"--tls-private-key-file={creds.serving_key}",
                f"--client-ca-file={creds.ca_cert}",
                f"--token-auth-file={creds.token_file}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={server}",
                f"--service-account-key-file={creds.sa_public}",
                f"--service-account-signing-key-file={creds.sa_private}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                # Endpoints may not point at loopback, so don't publish the API server's own.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                f"--audit-policy-file={audit_policy}",
                f"--audit-log-path={cluster.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
            ],
            logs,
        )
        cluster.processes.append(apiserver)
        ca_context = ssl.create_default_context(cafile=str(creds.ca_cert))
        apiserver.wait_until(
            lambda: _http_ok(f"{server}/readyz", verify=ca_context, token=creds.token), "ready /readyz", timeout
        )

        controller_manager = start_process(
            "kube-controller-manager",
            [
                binaries / "kube-controller-manager",
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--authentication-skip-lookup=true",  # no front proxy, so no request-header CA to look up
                f"--bind-address={HOST}",
                f"--secure-port={kcm_port}",
                f"--cert-dir={work_dir / 'controller-manager-certs'}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={creds.sa_private}",
                f"--root-ca-file={creds.ca_cert}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--profiling=false",
            ],
            logs,
        )
        cluster.processes.append(controller_manager)
        controller_manager.wait_until(
            lambda: _http_ok(f"https://{HOST}:{kcm_port}/healthz", verify=False), "healthy /healthz", timeout
        )
        # The default namespace's service account is made by the controller manager: once it
        # exists, both the API server's bootstrap and the controllers are at work.
        controller_manager.wait_until(
            lambda: _http_ok(
                f"{server}/api/v1/namespaces/default/serviceaccounts/default", verify=ca_context, token=creds.token
            ),
            "default service account",
            timeout,
        )
    except BaseException:
        cluster.stop()
        raise
    return cluster
