"""pytest fixtures for tests against the real control plane (mark them `@pytest.mark.cluster`).

Registered once for the whole suite by `pytest_plugins` in tests/conftest.py. Do not also import these into a
folder's conftest: pytest would then hold two definitions, and start a second session-wide control plane.

- `kube_binaries` (session): the `Binaries` to start a control plane of one's own; skips when one is missing.
- `control_plane` (session): the shared `Cluster` (3 nodes, injector with revision `1-30-3` tagged `default`).
- `cluster` (function): the same `Cluster`, and after the test the injector's revisions and tags, the kubelets'
  never-ready and never-capture holds, their delays and their ambient capture switch are put back as they were.
- `namespaces` (function): a `Namespaces` with a fresh random prefix; its namespaces are deleted afterwards.
- `mesh_crds` (session): Istio's CRDs and the Gateway API's standard channel installed in the shared control plane
  (`mesh_crds.install`), once, on first use; what was installed is removed at the end of the session.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import pytest

from localkube import mesh_crds as crds
from localkube.binaries import Binaries, find_binaries
from localkube.cluster import Cluster, running_cluster
from localkube.namespaces import Namespaces


@pytest.fixture(scope="session")
def kube_binaries() -> Binaries:
    """etcd, kube-apiserver and kube-controller-manager; skips the test when one is missing."""
    binaries, missing = find_binaries()
    if binaries is None:
        if os.environ.get("AKS_ISTIO_REQUIRE_CLUSTER"):
            # CI with the bundle beside it: a missing binary is a broken set-up, not a reason to test nothing.
            pytest.fail(f"AKS_ISTIO_REQUIRE_CLUSTER is set, but {missing or 'a binary is missing'}")
        pytest.skip(missing or "no binaries")
    return binaries


@pytest.fixture(scope="session")
def control_plane(kube_binaries: Binaries) -> Iterator[Cluster]:
    # Teardown runs on KeyboardInterrupt (pytest still finishes the session). SIGTERM, as CI timeouts send, is
    # made one too, so that etcd's data on /dev/shm is removed; after SIGKILL the kernel still stops the
    # components (processes.py), but their temporary folders stay.
    with _sigterm_interrupts(), running_cluster(kube_binaries) as cluster:
        yield cluster


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread, unless someone else already handles it."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not in_main_thread or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def cluster(control_plane: Cluster) -> Iterator[Cluster]:
    injector_state = control_plane.injector.state()
    kubelets = control_plane.kubelets
    delays = kubelets.ready_delay, kubelets.deletion_delay
    ambient_capture = kubelets.ambient_capture
    yield control_plane
    kubelets.release_all()
    kubelets.ready_delay, kubelets.deletion_delay = delays
    kubelets.ambient_capture = ambient_capture
    control_plane.injector.restore(injector_state)


@pytest.fixture
def namespaces(cluster: Cluster) -> Iterator[Namespaces]:
    created = Namespaces(cluster.api)
    yield created
    created.delete_all()


@pytest.fixture(scope="session")
def mesh_crds(control_plane: Cluster) -> Iterator[crds.Installed]:
    if not crds.ISTIO_CRDS.is_file():
        message = f"no Istio CRDs at {crds.ISTIO_CRDS}"
        if os.environ.get("AKS_ISTIO_REQUIRE_CLUSTER"):
            pytest.fail(f"AKS_ISTIO_REQUIRE_CLUSTER is set, but {message}")
        pytest.skip(message)
    installed = crds.install(control_plane.api)
    yield installed
    crds.uninstall(control_plane.api, installed)
