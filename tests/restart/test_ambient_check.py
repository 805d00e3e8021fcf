"""The ambient move check's reads on the real control plane, with Istio's CRDs installed, counted by a proxy."""

from __future__ import annotations

from typing import Any

import pytest

from localkube import mesh_crds as crds
from localkube.cluster import Cluster
from localkube.faults import FaultProxy
from localkube.namespaces import Namespaces
from localkube.rbac import grant
from restart.ambient_check import check_moves, moving_to_ambient, read_findings
from restart.kube import Kind, connect
from restart.request import RestartError
from tests.restart.cluster_helpers import FAST, INJECTION, rbac_rules
from tests.restart.cluster_helpers import create_istio_object as add

pytestmark = pytest.mark.cluster

AMBIENT = {"istio.io/dataplane-mode": "ambient"}
SELECTOR = {"matchLabels": {"app": "web"}}
L7_RULES = [{"to": [{"operation": {"methods": ["GET"], "paths": ["/public/*"]}}]}]
L4_RULES = [
    {
        "from": [{"source": {"principals": ["cluster.local/ns/front/sa/web"]}}],
        "to": [{"operation": {"ports": ["8080"]}}],
    }
]
WAYPOINT_REF = [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}]
HTTP = [{"route": [{"destination": {"host": "web", "subset": "v2"}}]}]


def patch(context: str) -> dict[str, Any]:
    return {"applyTo": "HTTP_FILTER", "match": {"context": context}, "patch": {"operation": "MERGE", "value": {}}}


def policies(cluster: Cluster, namespace: str) -> None:
    """One object of each kind that breaks silently, and a look-alike of each that does not."""
    add(
        cluster,
        namespace,
        "AuthorizationPolicy",
        "allow-get",
        {"selector": SELECTOR, "action": "ALLOW", "rules": L7_RULES},
    )
    add(
        cluster,
        namespace,
        "AuthorizationPolicy",
        "l4-only",
        {"selector": SELECTOR, "action": "ALLOW", "rules": L4_RULES},
    )
    add(cluster, namespace, "AuthorizationPolicy", "on-waypoint", {"targetRefs": WAYPOINT_REF, "rules": L7_RULES})
    add(cluster, namespace, "PeerAuthentication", "plain", {"selector": SELECTOR, "mtls": {"mode": "DISABLE"}})
    add(cluster, namespace, "PeerAuthentication", "strict", {"mtls": {"mode": "STRICT"}})
    for name in ("lua-a", "lua-b", "lua-c"):  # more than a page
        add(cluster, namespace, "EnvoyFilter", name, {"configPatches": [patch("SIDECAR_INBOUND")]})
    add(cluster, namespace, "VirtualService", "routes", {"hosts": ["web"], "http": HTTP})
    ingress = {"hosts": ["web.example"], "gateways": ["ingress"], "http": HTTP}
    add(cluster, namespace, "VirtualService", "ingress-only", ingress)
    add(cluster, namespace, "DestinationRule", "versions", {"host": "web", "subsets": [{"name": "v2"}]})
    add(cluster, namespace, "DestinationRule", "host-only", {"host": "web"})


def keys(findings: dict[str, list[Any]]) -> dict[str, list[str]]:
    return {namespace: [finding.key for finding in found] for namespace, found in findings.items()}


def test_the_findings_of_each_moving_namespace_and_the_mesh_wide_ones_are_read(
    cluster: Cluster, namespaces: Namespaces, mesh_crds: crds.Installed, proxy: FaultProxy
) -> None:
    shop, routed = namespaces.create("shop", INJECTION), namespaces.create("routed", INJECTION)
    done, root = namespaces.create("done", AMBIENT), namespaces.create("root")
    for namespace in (shop, routed, done):
        policies(cluster, namespace)
    add(cluster, root, "PeerAuthentication", "mesh-plain", {"mtls": {"mode": "DISABLE"}})
    add(cluster, root, "AuthorizationPolicy", "mesh-l4", {"action": "DENY", "rules": L4_RULES})
    add(cluster, root, "EnvoyFilter", "gateways", {"configPatches": [patch("GATEWAY")]})
    declared = [shop, routed, done, namespaces.name("not-yet")]

    with connect(proxy.kubeconfig(cluster.kubeconfig()), FAST, page_size=2, pool_size=5) as kube:
        moving = moving_to_ambient(kube, declared)
        assert moving == sorted([routed, shop]), "already ambient, or not there yet: nothing moves"
        findings = read_findings(kube, {shop: "", routed: "waypoint"}, root_namespace=root)

    mesh_wide = f"PeerAuthentication/{root}/mesh-plain"
    assert keys(findings) == {
        shop: [
            f"AuthorizationPolicy/{shop}/allow-get",
            mesh_wide,
            f"PeerAuthentication/{shop}/plain",
            *(f"EnvoyFilter/{shop}/lua-{suffix}" for suffix in "abc"),
            f"VirtualService/{shop}/routes",
            f"DestinationRule/{shop}/versions",
        ],
        # With a waypoint, routes and subsets move there.
        routed: [
            f"AuthorizationPolicy/{routed}/allow-get",
            mesh_wide,
            f"PeerAuthentication/{routed}/plain",
            *(f"EnvoyFilter/{routed}/lua-{suffix}" for suffix in "abc"),
        ],
    }
    assert "to the waypoint `waypoint`" in findings[routed][0].remedy
    gets = [seen.path for seen in proxy.requests if seen.method == "GET" and seen.path.startswith("/api/v1/")]
    assert sorted(gets) == sorted(f"/api/v1/namespaces/{name}" for name in declared)
    lists = [seen for seen in proxy.requests if seen.path.startswith("/apis/")]
    assert all(seen.method == "GET" for seen in proxy.requests), "read-only"
    # Each kind once per moving namespace and once in the root namespace; in the moving ones, the
    # AuthorizationPolicies and the EnvoyFilters (three of each) took two pages.
    assert len(lists) == 5 * 3 + 2 * 2
    assert {seen.path.rsplit("/", 2)[1] for seen in lists} == {shop, routed, root}
    assert all("resourceVersion" not in seen.query for seen in lists), "read from etcd, not the watch cache"


def test_a_kind_the_api_server_does_not_serve_reads_as_no_objects_only_where_asked(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    shop = namespaces.create("shop")
    absent = Kind(
        "Widget",
        "widgets",
        "custom",
        "list_cluster_custom_object",
        namespaced_list_method="list_namespaced_custom_object",
        group="example.invalid",
        version="v1",
    )
    with connect(proxy.kubeconfig(cluster.kubeconfig()), FAST, page_size=10, pool_size=1) as kube:
        assert kube.list_all(absent, shop, absent_kind_is_empty=True).items == []
        with pytest.raises(RestartError, match=f"list widgets in namespace '{shop}' failed: HTTP 404"):
            kube.list_all(absent, shop)
    assert [seen.upstream_status for seen in proxy.requests] == [404, 404]


def test_the_published_cluster_role_is_all_the_check_needs_and_less_fails_with_the_verb(
    cluster: Cluster, namespaces: Namespaces, mesh_crds: crds.Installed
) -> None:
    shop = namespaces.create("shop", INJECTION)
    add(cluster, shop, "EnvoyFilter", "lua", {"configPatches": []})
    revoke = grant(cluster.api, "restarter", rbac_rules(), name=f"{namespaces.prefix}-check")
    try:
        found = check_moves(cluster.kubeconfig("restarter"), {shop: ""}, retry=FAST)
    finally:
        revoke()
    assert keys(found) == {shop: [f"EnvoyFilter/{shop}/lua"]}

    namespaces_only = [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]
    revoke = grant(cluster.api, "reader", namespaces_only, name=f"{namespaces.prefix}-ns")
    try:
        with pytest.raises(RestartError, match=r"forbidden: cannot list \w+ in namespace") as refused:
            check_moves(cluster.kubeconfig("reader"), {shop: ""}, retry=FAST)
        with pytest.raises(RestartError, match="forbidden: cannot get namespaces in the cluster"):
            check_moves(cluster.kubeconfig("restarter"), {shop: ""}, retry=FAST)
    finally:
        revoke()
    assert cluster.control_plane.token("reader") not in str(refused.value)
