"""The provider inside Pulumi's real dynamic-provider host, driven over gRPC as the engine drives it.

The provider is serialized the way `pulumi.dynamic.Resource` does it, `python -m pulumi.dynamic` is started
in the project root (as the engine starts it), and Configure, Check, Diff, Create and Update are called
with the engine's messages. The host answers `acceptSecrets: false`, so the engine sends secrets in clear
and keeps whatever the host returns in a secret envelope secret; the tests check that the kubeconfig only
ever comes back inside one.

The cluster is the real control plane of `localkube`, reached through a counting proxy: the kubeconfig
the inputs carry points at it, so its log holds every request the provider made. Each test has a namespace of
its own and excludes all the others, so that what another test left behind is never restarted here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from localkube.cluster import Cluster
from localkube.control_plane import ADMIN
from localkube.faults import FaultProxy, is_watch
from localkube.namespaces import Namespaces
from localkube.rbac import grant
from localkube.sidecar import PROXY
from localkube.workloads import create as create_workloads
from localkube.workloads import deployment, pods
from restart.plan import fingerprint
from settings.data_plane import ControlPlane, DeclaredDataPlane
from tests.restart.cluster_helpers import (
    INJECTION,
    all_redirected_by,
    generations,
    inject_for_cni,
    others,
    read_only_rules,
    rolled_out,
)
from tests.support.provider_host import (
    SECRET_SIG,
    SERIALIZED_PROVIDER,
    Host,
    as_dict,
    check,
    checked,
    clear_text_places,
    create,
    diff,
    engine_view,
    update,
)
from tests.support.provider_host import inputs as host_inputs

PATCHES = r"/deployments/[^/]+$"


def declared_fingerprint(cni_enabled: bool, excluded: list[str]) -> str:
    """The fingerprint of a CNI setting with no proxy image compared (what these tests declare)."""
    default = ControlPlane("default", "", "")
    return fingerprint(DeclaredDataPlane(default, cni_enabled=cni_enabled, exclude_namespaces=frozenset(excluded)))


CART, WEB = ("Deployment", "cart"), ("Deployment", "web")


@dataclass(frozen=True)
class Shop:
    """A namespace with one Deployment injected for istio-init (`cart`) and one already on the CNI (`web`).

    istiod serves the CNI setting. `excluded` is every other namespace, listed once: namespaces other tests
    are deleting may vanish meanwhile, and a list that shrank between two calls would be a changed setting.
    """

    cluster: Cluster
    proxy: FaultProxy
    namespace: str
    excluded: list[str]

    def kubeconfig(self, user: str = ADMIN) -> str:
        """`user`'s kubeconfig, pointed at the counting proxy."""
        return self.proxy.kubeconfig(self.cluster.kubeconfig(user))

    def token(self, user: str = ADMIN) -> str:
        return self.cluster.control_plane.token(user)

    def inputs(self, user: str = ADMIN, **overrides: Any) -> dict[str, Any]:
        return host_inputs(self.kubeconfig(user), **{"excludeNamespaces": self.excluded, **overrides})

    def ref(self, workload: tuple[str, str]) -> str:
        kind, name = workload
        return f"{kind}/{self.namespace}/{name}"


def init_containers(cluster: Cluster, namespace: str, app: str) -> list[set[str]]:
    """The init containers of each of `app`'s pods that is not on its way out, but the native sidecar."""
    return [
        {container["name"] for container in pod["spec"].get("initContainers", [])} - {PROXY}
        for pod in pods(cluster.api, namespace, f"app={app}")
        if not pod["metadata"].get("deletionTimestamp")
    ]


@pytest.fixture
def shop(cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy) -> Shop:
    inject_for_cni(cluster, False)
    namespace = namespaces.create("shop", INJECTION)
    create_workloads(cluster.api, namespace, deployment("cart"))
    rolled_out(cluster, namespace, [CART])
    inject_for_cni(cluster, True)
    create_workloads(cluster.api, namespace, deployment("web"))
    rolled_out(cluster, namespace, [CART, WEB])
    assert init_containers(cluster, namespace, "cart") == [{"istio-init"}]
    assert init_containers(cluster, namespace, "web") == [{"istio-validation"}]
    assert proxy.requests == []
    return Shop(cluster, proxy, namespace, others(cluster, namespaces))


PROVIDER_FROM_OLD_STATE = "gASVNAAAAAAAAACMEmNvbXBvbmVudHMucmVzdGFydJSMFlNpZGVjYXJSZXN0YXJ0UHJvdmlkZXKUk5QpgZQu"
"""The provider as stacks deployed before the restart became its own layer hold it in their state: a reference
to `components.restart.SidecarRestartProvider` (serialized by that version of the program, as the engine does)."""


def test_the_serialized_provider_is_a_reference_and_captures_nothing() -> None:
    pickled = base64.b64decode(SERIALIZED_PROVIDER)
    assert b"restart.resource" in pickled and b"SidecarRestartProvider" in pickled
    assert len(pickled) < 1000, "the class is pickled by reference, not by value"


@pytest.mark.cluster
def test_a_provider_from_an_old_state_still_diffs_and_updates(host: Host, shop: Shop) -> None:
    """The engine unpickles the old state's `__provider` for diff and update: its import path must still load."""
    assert b"components.restart" in base64.b64decode(PROVIDER_FROM_OLD_STATE)
    olds = {**checked(host, shop.inputs()), "__provider": PROVIDER_FROM_OLD_STATE}
    news = {**checked(host, shop.inputs(maxConcurrent=2)), "__provider": PROVIDER_FROM_OLD_STATE}
    assert diff(host, olds, news).changes == provider_pb2.DiffResponse.DIFF_SOME
    outs = update(host, engine_view(olds), engine_view(news))
    assert outs["maxConcurrent"] == 2
    assert shop.proxy.requests == [], "an option change restarts nothing"


@pytest.mark.cluster
def test_check_normalises_and_returns_the_kubeconfig_only_as_a_secret(host: Host, shop: Shop) -> None:
    shuffled = [*reversed(shop.excluded), shop.excluded[0]]
    result = checked(host, shop.inputs(excludeNamespaces=shuffled))
    assert result["excludeNamespaces"] == sorted(set(shop.excluded))
    assert result["kubeconfig"] == {**SECRET_SIG, "value": shop.kubeconfig()}
    assert clear_text_places(result, shop.token()) == []
    assert shop.proxy.requests == []


@pytest.mark.cluster
def test_check_reports_invalid_inputs(host: Host, shop: Shop) -> None:
    response = check(host, shop.inputs(maxConcurrent=0, excludeNamespaces="kube-system", kubeconfig=""))
    assert sorted(f.property for f in response.failures) == ["excludeNamespaces", "kubeconfig", "maxConcurrent"]
    missing = shop.inputs()
    del missing["timeoutSeconds"]
    assert [(f.property, f.reason) for f in check(host, missing).failures] == [("timeoutSeconds", "is required")]
    assert shop.proxy.requests == []


@pytest.mark.cluster
def test_check_and_diff_pass_unknowns_through_in_a_preview(host: Host, shop: Shop) -> None:
    result = checked(host, shop.inputs(kubeconfig=rpc.UNKNOWN))
    assert result["kubeconfig"] == rpc.UNKNOWN
    olds = engine_view(checked(host, shop.inputs()))
    # The cluster is being updated, so its kubeconfig is unknown: that alone restarts nothing and is no
    # change (`pulumi up` diffs again with the real value).
    assert diff(host, olds, result).changes == provider_pb2.DiffResponse.DIFF_NONE
    # An unknown CNI setting may well differ: it shows.
    unknown_cni = checked(host, shop.inputs(kubeconfig=rpc.UNKNOWN, cniEnabled=rpc.UNKNOWN))
    assert diff(host, olds, unknown_cni).changes == provider_pb2.DiffResponse.DIFF_SOME
    assert shop.proxy.requests == []


@pytest.mark.cluster
def test_diff_is_quiet_when_nothing_changed_and_never_replaces(host: Host, shop: Shop) -> None:
    olds = engine_view(checked(host, shop.inputs()))
    same = engine_view(checked(host, shop.inputs(excludeNamespaces=list(reversed(shop.excluded)))))
    assert diff(host, olds, same).changes == provider_pb2.DiffResponse.DIFF_NONE
    for change in ({"cniEnabled": False}, {"excludeNamespaces": ["kube-system"]}, {"kubeconfig": "rotated"},
                   {"timeoutSeconds": 5}):  # fmt: skip
        news = engine_view(checked(host, shop.inputs(**change)))
        response = diff(host, olds, news)
        assert response.changes == provider_pb2.DiffResponse.DIFF_SOME, change
        assert list(response.replaces) == []
    assert shop.proxy.requests == [], "check and diff never call the cluster"


@pytest.mark.cluster
def test_create_then_update_through_the_host(host: Host, shop: Shop) -> None:
    cluster, proxy, namespace = shop.cluster, shop.proxy, shop.namespace
    before = generations(cluster, namespace, [CART, WEB])
    created = create(host, engine_view(checked(host, shop.inputs())))
    outs = as_dict(created.properties)
    assert created.id.startswith("sidecar-restart-")
    assert outs["restarted"] == [shop.ref(CART)]
    skipped = outs["skipped"]
    assert skipped.pop("alreadyMatching") == {"count": 1, "workloads": [shop.ref(WEB)]}
    # The rest is what other tests left in the namespaces this one excludes, and only that.
    assert set(skipped) <= {"excludedNamespace"}, skipped
    assert not any(f"/{namespace}/" in ref for entry in skipped.values() for ref in entry["workloads"]), skipped
    assert outs["fingerprint"] == declared_fingerprint(True, shop.excluded)
    assert outs["restartedAt"].endswith("Z")
    assert outs["kubeconfig"] == {**SECRET_SIG, "value": shop.kubeconfig()}
    assert clear_text_places(outs, shop.token()) == []
    assert [seen.path for seen in proxy.requests if seen.method == "PATCH"] == [
        f"/apis/apps/v1/namespaces/{namespace}/deployments/cart"
    ]
    assert sum(seen.method == "GET" and is_watch(seen.query) for seen in proxy.requests) == 1
    assert generations(cluster, namespace, [CART, WEB]) == {CART: before[CART] + 1, WEB: before[WEB]}
    assert init_containers(cluster, namespace, "cart") == [{"istio-validation"}]
    assert any(f"restarted {shop.ref(CART)} for redirection (1 of 1)" in line for line in host.stderr), host.stderr

    # The no-op preview: the state (the outputs, kubeconfig in its secret envelope) against unchanged inputs.
    assert diff(host, outs, checked(host, shop.inputs())).changes == provider_pb2.DiffResponse.DIFF_NONE

    # A rotated kubeconfig: the state is updated, the cluster is not touched.
    state = engine_view(outs)
    rotated_kubeconfig = shop.kubeconfig() + "\n# rotated\n"
    rotated = engine_view(checked(host, shop.inputs(kubeconfig=rotated_kubeconfig)))
    assert diff(host, state, rotated).changes == provider_pb2.DiffResponse.DIFF_SOME
    seen_before = len(proxy.requests)
    after_rotation = update(host, state, rotated)
    assert len(proxy.requests) == seen_before
    assert after_rotation["restarted"] == [shop.ref(CART)]
    assert after_rotation["kubeconfig"] == {**SECRET_SIG, "value": rotated_kubeconfig}

    # Switching the CNI off restarts the other way round; istiod now injects `istio-init`.
    inject_for_cni(cluster, False)
    switched = engine_view(checked(host, shop.inputs(cniEnabled=False)))
    after_switch = update(host, engine_view(after_rotation), switched)
    # `cart` too: its pods were re-injected for the CNI on create.
    assert after_switch["restarted"] == [shop.ref(CART), shop.ref(WEB)]
    assert after_switch["fingerprint"] == declared_fingerprint(False, shop.excluded)
    assert clear_text_places(after_switch, shop.token()) == []
    assert proxy.count("PATCH") == proxy.count("PATCH", PATCHES, reached_server=True) == 3
    assert generations(cluster, namespace, [CART, WEB]) == {CART: before[CART] + 2, WEB: before[WEB] + 1}
    assert all_redirected_by(cluster, namespace, "istio-init")

    # The exclusions mean nothing while the CNI stays off: the state is updated, the cluster is not touched.
    seen_before = len(proxy.requests)
    relisted = engine_view(checked(host, shop.inputs(cniEnabled=False, excludeNamespaces=[*shop.excluded, "legacy"])))
    after_relist = update(host, engine_view(after_switch), relisted)
    assert len(proxy.requests) == seen_before
    assert after_relist["excludeNamespaces"] == sorted({*shop.excluded, "legacy"})
    assert after_relist["fingerprint"] == after_switch["fingerprint"]


@pytest.mark.cluster
def test_a_failed_create_reports_why_without_the_kubeconfig(host: Host, namespaces: Namespaces, shop: Shop) -> None:
    # The published role without `patch`: the API server itself answers the patch with 403.
    revoke = grant(shop.cluster.api, "reader", read_only_rules(), name=f"{namespaces.prefix}-read")
    logged = len(host.stderr)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            create(host, engine_view(checked(host, shop.inputs(user="reader"))))
    finally:
        revoke()
    details = caught.value.details()  # type: ignore[attr-defined]
    assert f"forbidden: cannot patch deployments in namespace '{shop.namespace}'" in details
    assert [(seen.path, seen.upstream_status) for seen in shop.proxy.requests if seen.method == "PATCH"] == [
        (f"/apis/apps/v1/namespaces/{shop.namespace}/deployments/cart", 403)
    ]
    token = shop.token("reader")
    assert token not in details and "current-context" not in details
    assert not any(token in line for line in host.stderr[logged:])
