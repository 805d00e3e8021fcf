"""pytest fixtures for tests against the real control plane (mark them `@pytest.mark.cluster`).

- `kube_binaries` (session): the `Binaries` to start a control plane of one's own; skips when one is missing.
- `control_plane` (session): the shared `Cluster` (3 nodes, injector with revision `1-30-3` tagged `default`).
- `cluster` (function): the same `Cluster`, and after the test the injector's revisions and tags, the kubelets'
  never-ready holds and their delays are put back as they were.
- `namespaces` (function): a `Namespaces` with a fresh random prefix; its namespaces are deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.controlplane.binaries import Binaries, find_binaries
from tests.controlplane.cluster import Cluster, running_cluster
from tests.controlplane.namespaces import Namespaces


@pytest.fixture(scope="session")
def kube_binaries() -> Binaries:
    """etcd, kube-apiserver and kube-controller-manager; skips the test when one is missing."""
    binaries, missing = find_binaries()
    if binaries is None:
        pytest.skip(missing)
    return binaries


@pytest.fixture(scope="session")
def control_plane(kube_binaries: Binaries) -> Iterator[Cluster]:
    # Teardown also runs on KeyboardInterrupt (pytest finishes the session); processes.py covers harder exits.
    with running_cluster(kube_binaries) as cluster:
        yield cluster


@pytest.fixture
def cluster(control_plane: Cluster) -> Iterator[Cluster]:
    injector_state = control_plane.injector.state()
    kubelets = control_plane.kubelets
    delays = kubelets.ready_delay, kubelets.deletion_delay
    yield control_plane
    kubelets.release_all()
    kubelets.ready_delay, kubelets.deletion_delay = delays
    control_plane.injector.restore(injector_state)


@pytest.fixture
def namespaces(cluster: Cluster) -> Iterator[Namespaces]:
    created = Namespaces(cluster.api)
    yield created
    created.delete_all()
