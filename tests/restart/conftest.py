"""Fixtures the restart's tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localkube.cluster import Cluster
from localkube.faults import FaultProxy
from tests.support.kube_emulator import KubeEmulator


@pytest.fixture
def emulator() -> Iterator[KubeEmulator]:
    """A cluster whose istiod serves the CNI setting: finished rollouts leave `istio-validation` pods."""
    with KubeEmulator(rollout_delay=0.02, reinject="istio-validation") as emu:
        yield emu


@pytest.fixture
def proxy(cluster: Cluster) -> Iterator[FaultProxy]:
    """A fault and counting proxy in front of the real API server."""
    with FaultProxy(cluster.control_plane.server, cluster.control_plane.ca_file) as started:
        yield started
        assert started.errors == []
