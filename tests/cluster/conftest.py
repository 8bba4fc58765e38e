"""The `cluster` fixture: one real Kubernetes control plane (etcd, API server, controller manager)
for the whole session, on loopback, from binaries that scripts/controlplane.sh builds and caches.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cluster.controlplane import ControlPlane, ControlPlaneFailed, ensure_binaries, start_control_plane
from cluster.operator import OperatorCluster, start_operator_cluster
from concierge.local.processes import ServiceProcess


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        binaries = ensure_binaries()
        control_plane = start_control_plane(binaries, tmp_path_factory.mktemp("cluster"))
    except ControlPlaneFailed as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield control_plane
    finally:
        control_plane.stop()


@pytest.fixture(scope="session")
def operator_cluster(
    cluster: ControlPlane,
    postgres_url: str,
    retrieval_service: ServiceProcess,
    embedding_service: ServiceProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorCluster]:
    """The operator running against `cluster`, syncing through a real retrieval service on loopback."""
    setup = start_operator_cluster(
        cluster, postgres_url, retrieval_service.address, embedding_service.address, tmp_path_factory.mktemp("operator")
    )
    try:
        yield setup
    finally:
        setup.operator.stop()
