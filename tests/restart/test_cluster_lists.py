"""The restart's planning lists on the real control plane: what they ask for, counted by a proxy in front of it.

The lists cost what the mesh holds, not what the cluster holds: pods by istiod's label, ReplicaSets as metadata,
StatefulSets and DaemonSets only when a mesh pod is owned by one, all from the API server's watch cache.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from localkube.cluster import Cluster
from localkube.faults import FaultProxy, Seen
from localkube.namespaces import Namespaces
from localkube.workloads import create, daemonset, deployment, statefulset
from restart.kube import ANY_CACHED_VERSION, METADATA_LIST_ACCEPT
from restart.objects import MESH_POD_LABEL
from tests.restart.cluster_helpers import INJECTION, inject_for_cni, rolled_out
from tests.restart.cluster_helpers import run_via_proxy as run

pytestmark = pytest.mark.cluster


def lists(proxy: FaultProxy) -> dict[str, list[Seen]]:
    """The cluster-wide GETs (lists) the run made, by resource."""
    found: dict[str, list[Seen]] = {}
    for seen in proxy.requests:
        if seen.method == "GET" and "/namespaces/" not in seen.path and "watch" not in seen.query:
            found.setdefault(seen.path.rsplit("/", 1)[-1], []).append(seen)
    return found


def test_pods_outside_the_mesh_are_neither_listed_nor_reported(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    inject_for_cni(cluster, False)
    mesh = namespaces.create("mesh", INJECTION)
    plain = namespaces.create("plain")
    create(cluster.api, mesh, deployment("web"))
    create(cluster.api, plain, deployment("legacy"))
    rolled_out(cluster, mesh, [("Deployment", "web")])
    rolled_out(cluster, plain, [("Deployment", "legacy")])
    inject_for_cni(cluster, True)

    outcome = run(cluster, namespaces, proxy)

    assert outcome.restarted == (f"Deployment/{mesh}/web",)
    reported = [name for names in outcome.skipped.values() for name in names]
    assert f"Deployment/{plain}/legacy" not in reported
    assert "noSidecar" not in outcome.skipped
    (pods,) = lists(proxy)["pods"]
    assert pods.query["labelSelector"] == [MESH_POD_LABEL], "selected on the server: pods outside are not sent"


def test_replicasets_are_listed_as_metadata_and_still_trace_pods_to_their_deployments(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart"), deployment("checkout", 2))
    rolled_out(cluster, shop, [("Deployment", "cart"), ("Deployment", "checkout")])
    inject_for_cni(cluster, True)

    outcome = run(cluster, namespaces, proxy)

    assert outcome.restarted == (f"Deployment/{shop}/cart", f"Deployment/{shop}/checkout")
    assert outcome.manual_restart == {}, "no pod was left without its Deployment"
    (replicasets,) = lists(proxy)["replicasets"]
    assert replicasets.accept == METADATA_LIST_ACCEPT
    assert all(seen.accept != METADATA_LIST_ACCEPT for seen in lists(proxy)["deployments"])


def test_every_list_is_served_from_the_watch_cache_and_only_its_first_page_asks_for_it(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    names = [f"app-{index}" for index in range(5)]
    create(cluster.api, shop, *(deployment(name) for name in names))
    rolled_out(cluster, shop, [("Deployment", name) for name in names])
    inject_for_cni(cluster, True)

    outcome = run(cluster, namespaces, proxy, page_size=2)

    assert outcome.restarted == tuple(f"Deployment/{shop}/{name}" for name in names)
    listed = lists(proxy)
    # Kubernetes 1.36's watch cache answers a list at resourceVersion 0 whole, whatever `limit` says (as informers
    # expect); a server without the cache would page it, and then only the first page asks for a version.
    assert {resource_name: len(pages) for resource_name, pages in listed.items()} == {
        "pods": 1, "replicasets": 1, "deployments": 1
    }  # fmt: skip
    for resource_name, pages in listed.items():
        first, *rest = pages
        assert first.query["resourceVersion"] == [ANY_CACHED_VERSION], resource_name
        assert "continue" not in first.query, resource_name
        # A continue token carries the version its list is read at: a resourceVersion beside it is refused.
        assert all("resourceVersion" not in seen.query and seen.query["continue"] for seen in rest), resource_name
        assert all(seen.status == 200 for seen in pages), resource_name


def mesh_owner_kinds(cluster: Cluster) -> set[str]:
    """The kinds owning a mesh pod anywhere in the cluster (other tests' pods included), read as admin."""
    listed = client.CoreV1Api(cluster.api).list_pod_for_all_namespaces(label_selector=MESH_POD_LABEL)
    return {
        owner.kind
        for pod in listed.items
        for owner in pod.metadata.owner_references or []
        if owner.controller and pod.metadata.deletion_timestamp is None
    }


def test_statefulsets_and_daemonsets_are_listed_only_when_a_mesh_pod_is_owned_by_one(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    plain = namespaces.create("plain")
    create(cluster.api, shop, deployment("web"))
    create(cluster.api, plain, statefulset("db"), daemonset("agent"))
    rolled_out(cluster, shop, [("Deployment", "web")])
    rolled_out(cluster, plain, [("StatefulSet", "db"), ("DaemonSet", "agent")])
    inject_for_cni(cluster, True)

    # Other tests' namespaces may still hold mesh pods (their deletion is not awaited): they count too.
    owners = mesh_owner_kinds(cluster)
    run(cluster, namespaces, proxy)
    expected = {"pods", "replicasets", "deployments"}
    expected |= {
        plural for kind, plural in (("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")) if kind in owners
    }
    assert set(lists(proxy)) <= expected, "the plain namespace's StatefulSet and DaemonSet have no mesh pod"

    inject_for_cni(cluster, False)
    create(cluster.api, shop, statefulset("cache"))
    rolled_out(cluster, shop, [("StatefulSet", "cache")])
    inject_for_cni(cluster, True)
    before = len(proxy.requests)
    outcome = run(cluster, namespaces, proxy)

    assert f"StatefulSet/{shop}/cache" in outcome.restarted
    listed = {seen.path.rsplit("/", 1)[-1] for seen in proxy.requests[before:] if seen.method == "GET"}
    assert "statefulsets" in listed
