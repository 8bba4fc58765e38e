"""Start Concierge services as child processes on loopback and wait until they serve.

Used by `concierge up` and by the test fixtures; each child is stopped by its PID.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

PR_SET_PDEATHSIG = 1
GRPC_SERVICES = ("embedding", "retrieval", "memory", "agent")
HTTP_SERVICES = ("edge",)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServiceFailed(RuntimeError):
    """A service exited or did not become ready; the message carries its log tail."""


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def is_ready(self) -> bool:
        if self.name in HTTP_SERVICES:
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False
        with grpc.insecure_channel(self.address) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1.0
                )
            except grpc.RpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceFailed(
                    f"{self.name} exited with code {self.process.returncode} before it was ready; "
                    f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
                )
            if self.is_ready():
                return
            time.sleep(0.1)
        raise ServiceFailed(f"{self.name} was not ready after {timeout:.0f}s; log tail:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.process, timeout)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, wait for a graceful exit, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent (supervisor, test run) dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_service(
    name: str,
    *,
    env: Mapping[str, str],
    log_dir: Path,
    port: int | None = None,
    host: str = "127.0.0.1",
) -> ServiceProcess:
    """Spawn `concierge serve NAME` with `env` added to ours; does not wait for readiness."""
    if name not in GRPC_SERVICES + HTTP_SERVICES:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(GRPC_SERVICES + HTTP_SERVICES)}")
    port = port or free_port(host)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "concierge", "serve", name, "--host", host, "--port", str(port)],
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches only the supervisor
            preexec_fn=die_with_parent,
        )
    return ServiceProcess(name=name, port=port, process=process, log_path=log_path, host=host, env=dict(env))
