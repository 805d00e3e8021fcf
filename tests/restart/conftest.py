"""Fixtures the restart's tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localkube.cluster import Cluster
from localkube.faults import FaultProxy


@pytest.fixture
def proxy(cluster: Cluster) -> Iterator[FaultProxy]:
    """A fault and counting proxy in front of the real API server."""
    with FaultProxy(cluster.control_plane.server, cluster.control_plane.ca_file) as started:
        yield started
        assert started.errors == []


@pytest.fixture
def sidecar_form(request: pytest.FixtureRequest, cluster: Cluster) -> str:
    """The form istiod injects `istio-proxy` in during the test: `native` (its default) or `container`.

    Parametrize a test over both with `BOTH_FORMS` (cluster_helpers.py); the `cluster` fixture restores the default.
    """
    form: str = getattr(request, "param", "native")
    cluster.injector.set_native_sidecars(form == "native")
    return form
