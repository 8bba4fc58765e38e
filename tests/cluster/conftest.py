"""The `cluster` fixture: one real Kubernetes control plane (etcd, API server, controller manager)
for the whole session, on loopback, from binaries that scripts/controlplane.sh builds and caches.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cluster.controlplane import ControlPlane, ControlPlaneFailed, ensure_binaries, start_control_plane


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
