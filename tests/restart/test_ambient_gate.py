"""The ambient move check inside Pulumi's real dynamic-provider host, driven over gRPC as the engine drives it.

The provider is serialized as `pulumi.dynamic.Resource` does it and sent with every call; the cluster is the real
control plane with Istio's CRDs, reached through a counting proxy, so the tests see every request the check made.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import Any

import grpc
import pytest
from kubernetes import client
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from localkube import mesh_crds as crds
from localkube.cluster import Cluster
from localkube.faults import FaultProxy
from localkube.namespaces import Namespaces
from localkube.raw import read_json
from restart.ambient_gate import AmbientMoveCheckProvider
from tests.restart.cluster_helpers import INJECTION
from tests.restart.cluster_helpers import create_istio_object as add
from tests.support.provider_host import (
    PROJECT_ROOT,
    SECRET_SIG,
    TIMEOUT,
    Host,
    as_dict,
    clear_text_places,
    engine_view,
    struct,
)

URN = "urn:pulumi:dev::aks-istio::pulumi-python:dynamic/restart:AmbientMoveCheck::ambient-move-check"
TYPE = "pulumi-python:dynamic/restart:AmbientMoveCheck"
NAME = "ambient-move-check"
PROVIDER = serialize_provider(AmbientMoveCheckProvider())
SELECTOR = {"matchLabels": {"app": "web"}}
L7_RULES = [{"to": [{"operation": {"methods": ["GET"], "paths": ["/public/*"]}}]}]


def inputs(kubeconfig: str, *namespaces: dict[str, Any]) -> dict[str, Any]:
    return {"kubeconfig": kubeconfig, "namespaces": list(namespaces), "__provider": PROVIDER}


def declared(name: str, waypoint: str = "", acknowledge: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "waypoint": waypoint, "acknowledge": acknowledge or []}


def check(host: Host, news: dict[str, Any]) -> provider_pb2.CheckResponse:
    request = provider_pb2.CheckRequest(urn=URN, type=TYPE, name=NAME, olds=struct({}), news=struct(news))
    response: provider_pb2.CheckResponse = host.stub.Check(request, timeout=TIMEOUT)
    return response


def checked(host: Host, news: dict[str, Any]) -> dict[str, Any]:
    response = check(host, news)
    assert [(f.property, f.reason) for f in response.failures] == []
    return as_dict(response.inputs)


def diff(host: Host, olds: dict[str, Any], news: dict[str, Any]) -> provider_pb2.DiffResponse:
    request = provider_pb2.DiffRequest(id=f"{NAME}-1", urn=URN, type=TYPE, olds=struct(olds), news=struct(news))
    response: provider_pb2.DiffResponse = host.stub.Diff(request, timeout=TIMEOUT)
    return response


def create(host: Host, props: dict[str, Any]) -> provider_pb2.CreateResponse:
    request = provider_pb2.CreateRequest(urn=URN, type=TYPE, name=NAME, properties=struct(props))
    response: provider_pb2.CreateResponse = host.stub.Create(request, timeout=TIMEOUT)
    return response


def update(host: Host, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    request = provider_pb2.UpdateRequest(id=f"{NAME}-1", urn=URN, type=TYPE, olds=struct(olds), news=struct(news))
    return as_dict(host.stub.Update(request, timeout=TIMEOUT).properties)


def labels(cluster: Cluster, namespace: str) -> dict[str, str]:
    found = read_json(client.CoreV1Api(cluster.api).read_namespace(namespace, _preload_content=False))
    return dict(found["metadata"].get("labels") or {})


def test_the_serialized_provider_is_a_reference_and_captures_nothing() -> None:
    pickled = base64.b64decode(PROVIDER)
    assert b"restart.ambient_gate" in pickled and b"AmbientMoveCheckProvider" in pickled
    assert len(pickled) < 1000, "the class is pickled by reference, not by value"


def test_the_module_the_provider_host_loads_imports_neither_the_client_nor_the_findings() -> None:
    probe = "import json, sys, restart.ambient_gate; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert not {name for name in loaded if name.split(".")[0] in ("kubernetes", "urllib3")}
    assert not loaded & {"restart.ambient_findings", "restart.ambient_check", "restart.kube"}


@pytest.mark.cluster
def test_check_normalises_reports_invalid_inputs_and_never_calls_the_cluster(
    host: Host, cluster: Cluster, proxy: FaultProxy
) -> None:
    kubeconfig = proxy.kubeconfig(cluster.kubeconfig())
    shuffled = [declared("shop", "waypoint", ["EnvoyFilter/shop/b", "EnvoyFilter/shop/a", "EnvoyFilter/shop/b"]),
                {"name": "cart"}]  # fmt: skip
    result = checked(host, inputs(kubeconfig, *shuffled))
    assert result["namespaces"] == [
        declared("cart"),
        declared("shop", "waypoint", ["EnvoyFilter/shop/a", "EnvoyFilter/shop/b"]),
    ]
    assert result["kubeconfig"] == {**SECRET_SIG, "value": kubeconfig}
    assert clear_text_places(result, cluster.control_plane.token()) == []

    for bad, reason in (
        ("shop", "must be a list"),
        (["shop"], "namespaces[0] must be an object"),
        ([{"name": ""}], "namespaces[0].name must be a namespace name"),
        ([{"name": "a"}, {"name": "a"}], "namespaces[1].name repeats a namespace"),
        ([{"name": "a", "waypoint": 3}], "namespaces[0].waypoint must be a waypoint name"),
        ([{"name": "a", "acknowledge": "EnvoyFilter/a/b"}], "namespaces[0].acknowledge must be a list"),
        ([{"name": "a", "mode": "ambient"}], "namespaces[0] has unknown keys: mode"),
    ):
        response = check(host, {**inputs(kubeconfig), "namespaces": bad})
        assert [(f.property, reason in f.reason) for f in response.failures] == [("namespaces", True)], bad
    response = check(host, {**inputs(""), "namespaces": []})
    assert [f.property for f in response.failures] == ["kubeconfig"]
    unknown = checked(host, {**inputs(rpc.UNKNOWN), "namespaces": rpc.UNKNOWN})
    assert unknown["kubeconfig"] == unknown["namespaces"] == rpc.UNKNOWN
    assert proxy.requests == []


@pytest.mark.cluster
def test_diff_shows_changed_namespaces_and_a_rotated_kubeconfig_never_an_unknown_one(
    host: Host, cluster: Cluster, proxy: FaultProxy
) -> None:
    kubeconfig = proxy.kubeconfig(cluster.kubeconfig())
    olds = engine_view(checked(host, inputs(kubeconfig, declared("shop"))))
    same = engine_view(checked(host, inputs(kubeconfig, {"name": "shop", "acknowledge": []})))
    assert diff(host, olds, same).changes == provider_pb2.DiffResponse.DIFF_NONE
    for news in (
        inputs(kubeconfig, declared("shop"), declared("cart")),
        inputs(kubeconfig, declared("shop", acknowledge=["EnvoyFilter/shop/lua"])),
        inputs(kubeconfig, declared("shop", "waypoint")),
        inputs(kubeconfig + "\n# rotated\n", declared("shop")),
    ):
        response = diff(host, olds, engine_view(checked(host, news)))
        assert response.changes == provider_pb2.DiffResponse.DIFF_SOME, news
        assert list(response.replaces) == []
    unknown = checked(host, inputs(rpc.UNKNOWN, declared("shop")))
    assert diff(host, olds, unknown).changes == provider_pb2.DiffResponse.DIFF_NONE
    assert proxy.requests == [], "check and diff never call the cluster"


@pytest.mark.cluster
def test_a_move_is_refused_until_its_findings_are_acknowledged(
    host: Host, cluster: Cluster, namespaces: Namespaces, mesh_crds: crds.Installed, proxy: FaultProxy
) -> None:
    shop, done = namespaces.create("shop", INJECTION), namespaces.create("done", {"istio.io/dataplane-mode": "ambient"})
    add(cluster, shop, "AuthorizationPolicy", "allow-get", {"selector": SELECTOR, "rules": L7_RULES})
    add(cluster, done, "EnvoyFilter", "lua", {"configPatches": []})
    key = f"AuthorizationPolicy/{shop}/allow-get"
    kubeconfig = proxy.kubeconfig(cluster.kubeconfig())
    before = labels(cluster, shop)
    logged = len(host.stderr)

    with pytest.raises(grpc.RpcError) as refused:
        create(host, engine_view(checked(host, inputs(kubeconfig, declared(shop), declared(done)))))
    message = refused.value.details()  # type: ignore[attr-defined]
    assert f"ambient mode refused for `{shop}`: 1 Istio object" in message
    assert "No namespace label was changed." in message
    assert f"- in `{shop}`: {key}: ztunnel cannot read its L7 attributes (methods, paths)" in message
    assert "Declare a waypoint for the namespace and rewrite it with `targetRefs`" in message
    assert f"`{key}`) under the namespace's `acknowledge` in `aks-istio:mesh`" in message
    assert f"{done}/lua" not in message, "a namespace already ambient is not moving"
    # One traceback of our own error, and no credential in it or in the log.
    assert message.count("Traceback") == 1 and "HTTP response headers" not in message, message
    token = cluster.control_plane.token()
    assert token not in message and "current-context" not in message
    assert not any(token in line for line in host.stderr[logged:])
    assert labels(cluster, shop) == before
    assert {seen.method for seen in proxy.requests} == {"GET"}, "read-only"

    # Acknowledged (with a waypoint declared): the move may go ahead, and the state says what was accepted.
    news = engine_view(checked(host, inputs(kubeconfig, declared(shop, "waypoint", [key]), declared(done))))
    created = create(host, news)
    outs = as_dict(created.properties)
    assert created.id.startswith("ambient-move-check-")
    assert outs["accepted"] == {shop: [key]}
    assert outs["namespaces"] == news["namespaces"]
    assert outs["kubeconfig"] == {**SECRET_SIG, "value": kubeconfig}
    assert clear_text_places(outs, token) == []
    assert diff(host, outs, checked(host, news)).changes == provider_pb2.DiffResponse.DIFF_NONE, "a quiet preview"

    # A rotated kubeconfig updates the state alone.
    seen_before = len(proxy.requests)
    rotated = engine_view(checked(host, {**news, "kubeconfig": kubeconfig + "\n# rotated\n"}))
    after_rotation = update(host, engine_view(outs), rotated)
    assert len(proxy.requests) == seen_before
    assert after_rotation["accepted"] == {shop: [key]}

    # Another namespace declared: the check runs again, and a new finding stops the update.
    cart = namespaces.create("cart", INJECTION)
    add(cluster, cart, "PeerAuthentication", "plain", {"mtls": {"mode": "DISABLE"}})
    grown = engine_view(checked(host, {**rotated, "namespaces": [*rotated["namespaces"], declared(cart)]}))
    with pytest.raises(grpc.RpcError) as refused_again:
        update(host, engine_view(after_rotation), grown)
    message = refused_again.value.details()  # type: ignore[attr-defined]
    assert f"ambient mode refused for `{cart}`" in message and f"PeerAuthentication/{cart}/plain" in message
    assert key not in message, "acknowledged"


@pytest.mark.cluster
def test_a_failed_read_reports_why_without_the_kubeconfig(
    host: Host, cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    shop = namespaces.create("shop", INJECTION)
    logged = len(host.stderr)
    # `reader` holds no grant here: the API server answers the namespace's GET with 403.
    with pytest.raises(grpc.RpcError) as failed:
        create(host, engine_view(checked(host, inputs(proxy.kubeconfig(cluster.kubeconfig("reader")), declared(shop)))))
    message = failed.value.details()  # type: ignore[attr-defined]
    assert "ambient move check failed: forbidden: cannot get namespaces in the cluster" in message
    assert "no namespace label was changed" in message
    token = cluster.control_plane.token("reader")
    assert token not in message and "current-context" not in message
    assert not any(token in line for line in host.stderr[logged:])
