"""The restart's retry rules against the real API server, with faults injected by a proxy in front of it.

Each fault is one the README promises to survive (or to fail on clearly): 429 with Retry-After in seconds or
as an HTTP date, 500/503, a connection dropped before or after the request reached the server, a watch cut
mid-stream, an expired continue token. The real controllers roll the workloads out meanwhile; the proxy's
log tells what reached the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from localkube.cluster import Cluster
from localkube.faults import Fault, FaultProxy, is_watch
from localkube.namespaces import Namespaces
from localkube.workloads import create, deployment
from restart.kube import KINDS, connect
from restart.request import RestartError
from restart.resource import SidecarRestartProvider
from tests.restart.cluster_helpers import (
    FAST,
    INJECTION,
    generations,
    inject_for_cni,
    restart_inputs,
    rolled_out,
)
from tests.restart.cluster_helpers import run_via_proxy as run

pytestmark = pytest.mark.cluster

PATCHES = r"/deployments/[^/]+$"
APPS = tuple(("Deployment", f"app-{index}") for index in range(3))


@pytest.fixture
def shop(cluster: Cluster, namespaces: Namespaces) -> Iterator[str]:
    """A namespace of three Deployments whose pods istiod injected with `istio-init`; istiod now serves the CNI."""
    inject_for_cni(cluster, False)
    namespace = namespaces.create("shop", INJECTION)
    create(cluster.api, namespace, *(deployment(name) for _, name in APPS))
    rolled_out(cluster, namespace, APPS)
    inject_for_cni(cluster, True)
    yield namespace


def restarted_once(cluster: Cluster, namespace: str, before: dict[Any, int]) -> bool:
    return generations(cluster, namespace, APPS) == {ref: generation + 1 for ref, generation in before.items()}


def test_429_is_retried_after_the_seconds_the_server_asks(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, shop: str
) -> None:
    before = generations(cluster, shop, APPS)
    proxy.add(Fault("status", method="PATCH", path=PATCHES, code=429, retry_after=1))
    started = time.monotonic()
    outcome = run(cluster, namespaces, proxy)
    assert len(outcome.restarted) == 3
    assert time.monotonic() - started >= 1.0
    assert proxy.count("PATCH", PATCHES, reached_server=True) == 3
    assert restarted_once(cluster, shop, before)


def test_429_with_an_http_date_waits_until_then(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, shop: str
) -> None:
    # HTTP dates have whole seconds: two seconds ahead waits at least one.
    proxy.add(
        Fault("status", method="PATCH", path=PATCHES, code=429, retry_after=datetime.now(UTC) + timedelta(seconds=2))
    )
    started = time.monotonic()
    assert len(run(cluster, namespaces, proxy).restarted) == 3
    assert 0.9 <= time.monotonic() - started <= FAST.max_delay + 5


@pytest.mark.parametrize("code", [500, 503])
def test_server_errors_are_retried_with_backoff(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, shop: str, code: int
) -> None:
    before = generations(cluster, shop, APPS)
    proxy.add(Fault("status", method="PATCH", path=PATCHES, code=code, times=2))
    proxy.add(Fault("status", method="GET", path=r"/pods$", code=code, times=1))
    assert len(run(cluster, namespaces, proxy).restarted) == 3
    assert proxy.count("PATCH", PATCHES) == 3 + 2
    assert restarted_once(cluster, shop, before)


def test_a_connection_dropped_before_the_server_saw_it_is_retried(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, shop: str
) -> None:
    before = generations(cluster, shop, APPS)
    proxy.add(Fault("drop_before", method="PATCH", path=PATCHES))
    proxy.add(Fault("drop_before", method="GET", path=r"/replicasets$"))
    assert len(run(cluster, namespaces, proxy).restarted) == 3
    assert proxy.count("PATCH", PATCHES, reached_server=True) == 3
    assert restarted_once(cluster, shop, before)


def test_a_patch_applied_but_unanswered_is_retried_harmlessly(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, shop: str
) -> None:
    before = generations(cluster, shop, APPS)
    proxy.add(Fault("drop_after", method="PATCH", path=PATCHES))
    outcome = run(cluster, namespaces, proxy, waitForRollout=True)
    assert len(outcome.restarted) == 3
    assert proxy.count("PATCH", PATCHES, reached_server=True) == 4
    # The retry carries the same timestamp: the real API server sees no change, so one rollout each.
    assert restarted_once(cluster, shop, before)


def test_a_watch_cut_mid_stream_resumes_and_the_wait_completes(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, shop: str
) -> None:
    cut = proxy.add(Fault("cut_watch", method="GET", path=r"/deployments$", query=is_watch, cut_watch_after=1))
    outcome = run(cluster, namespaces, proxy, waitForRollout=True)
    assert len(outcome.restarted) == 3
    assert cut.fired == 1
    assert proxy.count("GET", r"/deployments$") >= 3, "the first list, the cut watch and the resumed one"


def test_an_expired_continue_token_starts_the_list_over(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, shop: str
) -> None:
    # The planning lists come whole from the watch cache (no continue token on Kubernetes 1.36); a list read from
    # etcd, as a relist after a watch's 410 is, comes in pages.
    gone = proxy.add(Fault("gone_continue", method="GET", path=r"/pods$"))
    with connect(proxy.kubeconfig(cluster.kubeconfig("admin")), FAST, page_size=2, pool_size=1) as api:
        listing = api.list_all(KINDS["Pod"], namespace=shop)
    assert sorted(pod["metadata"]["name"].rsplit("-", 2)[0] for pod in listing.items) == sorted(
        name for _, name in APPS
    )
    assert gone.fired == 1
    pages = [seen for seen in proxy.requests if seen.path.endswith("/pods")]
    assert ["continue" in seen.query for seen in pages] == [False, True, False, True], "started over once"


def test_persistent_server_errors_fail_after_a_bounded_number_of_attempts(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, shop: str
) -> None:
    before = generations(cluster, shop, APPS)
    proxy.add(Fault("status", method="PATCH", path=PATCHES, code=503, times=None))
    with pytest.raises(RestartError, match=r"gave up to patch deployments .* after 4 attempts: HTTP 503") as failed:
        run(cluster, namespaces, proxy, maxConcurrent=1)
    assert failed.value.restarted == ()
    assert "restarted 0 of 3 workloads" in str(failed.value)
    assert generations(cluster, shop, APPS) == before


@pytest.mark.parametrize(
    "headers",
    [pytest.param({}, id="no-retry-after"), pytest.param({"Retry-After": "in-a-while"}, id="unreadable-retry-after")],
)
def test_429_without_a_usable_retry_after_backs_off(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, shop: str, headers: dict[str, str]
) -> None:
    proxy.add(Fault("status", method="PATCH", path=PATCHES, code=429, times=2, headers=headers))
    started = time.monotonic()
    assert len(run(cluster, namespaces, proxy, maxConcurrent=1).restarted) == 3
    assert time.monotonic() - started < 10, "FAST's backoff is milliseconds, not a guessed Retry-After"
    assert proxy.count("PATCH", PATCHES) == 3 + 2


def test_an_answer_nothing_expects_fails_wrapped_without_the_kubeconfig(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    # A list whose items are not objects: no error of ours expects it.
    proxy.add(Fault("body", "GET", r"^/api/v1/pods$", body=b'{"metadata": {}, "items": ["x"]}'))
    provider = SidecarRestartProvider()
    props = restart_inputs(cluster, namespaces, kubeconfig=proxy.kubeconfig(cluster.kubeconfig()))
    with pytest.raises(RestartError, match=r"failed unexpectedly \(builtins.AttributeError\)") as caught:
        provider.create(provider.check({}, props).inputs)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert cluster.control_plane.token() not in str(caught.value)
    assert proxy.count("PATCH") == 0
