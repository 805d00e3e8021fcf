"""The provider inside Pulumi's real dynamic-provider host, driven over gRPC as the engine drives it.

The provider is serialized the way `pulumi.dynamic.Resource` does it, `python -m pulumi.dynamic` is started
in the project root (as the engine starts it), and Configure, Check, Diff, Create and Update are called
with the engine's messages. The host answers `acceptSecrets: false`, so the engine sends secrets in clear
and keeps whatever the host returns in a secret envelope secret; the tests check that the kubeconfig only
ever comes back inside one.
"""

from __future__ import annotations

import base64
from typing import Any

import grpc
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from restart.plan import cni_fingerprint
from tests.support.kube_emulator import KubeEmulator, PodShape, add_deployment
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

EXCLUDED = ["istio-system", "kube-system"]


@pytest.fixture
def shop(emulator: KubeEmulator) -> KubeEmulator:
    """A namespace with one Deployment injected for istio-init (`cart`) and one already on the CNI (`web`)."""
    add_deployment(emulator, "shop", "cart")
    add_deployment(emulator, "shop", "web", PodShape(redirect="istio-validation"))
    return emulator


PROVIDER_FROM_OLD_STATE = "gASVNAAAAAAAAACMEmNvbXBvbmVudHMucmVzdGFydJSMFlNpZGVjYXJSZXN0YXJ0UHJvdmlkZXKUk5QpgZQu"
"""The provider as stacks deployed before the restart became its own layer hold it in their state: a reference
to `components.restart.SidecarRestartProvider` (serialized by that version of the program, as the engine does)."""


def inputs(emu: KubeEmulator, **overrides: Any) -> dict[str, Any]:
    return host_inputs(emu.kubeconfig(), **overrides)


def test_the_serialized_provider_is_a_reference_and_captures_nothing() -> None:
    pickled = base64.b64decode(SERIALIZED_PROVIDER)
    assert b"restart.resource" in pickled and b"SidecarRestartProvider" in pickled
    assert len(pickled) < 1000, "the class is pickled by reference, not by value"


def test_a_provider_from_an_old_state_still_diffs_and_updates(host: Host, shop: KubeEmulator) -> None:
    """The engine unpickles the old state's `__provider` for diff and update: its import path must still load."""
    assert b"components.restart" in base64.b64decode(PROVIDER_FROM_OLD_STATE)
    olds = {**checked(host, inputs(shop)), "__provider": PROVIDER_FROM_OLD_STATE}
    news = {**checked(host, inputs(shop, maxConcurrent=2)), "__provider": PROVIDER_FROM_OLD_STATE}
    assert diff(host, olds, news).changes == provider_pb2.DiffResponse.DIFF_SOME
    outs = update(host, engine_view(olds), engine_view(news))
    assert outs["maxConcurrent"] == 2
    assert shop.requests == [], "an option change restarts nothing"


def test_check_normalises_and_returns_the_kubeconfig_only_as_a_secret(host: Host, shop: KubeEmulator) -> None:
    result = checked(host, inputs(shop))
    assert result["excludeNamespaces"] == ["istio-system", "kube-system"]
    assert result["kubeconfig"] == {**SECRET_SIG, "value": shop.kubeconfig()}
    assert clear_text_places(result, shop.token) == []
    assert shop.requests == []


def test_check_reports_invalid_inputs(host: Host, shop: KubeEmulator) -> None:
    response = check(host, inputs(shop, maxConcurrent=0, excludeNamespaces="kube-system", kubeconfig=""))
    assert sorted(f.property for f in response.failures) == ["excludeNamespaces", "kubeconfig", "maxConcurrent"]
    missing = inputs(shop)
    del missing["timeoutSeconds"]
    assert [(f.property, f.reason) for f in check(host, missing).failures] == [("timeoutSeconds", "is required")]


def test_check_and_diff_pass_unknowns_through_in_a_preview(host: Host, shop: KubeEmulator) -> None:
    result = checked(host, inputs(shop, kubeconfig=rpc.UNKNOWN))
    assert result["kubeconfig"] == rpc.UNKNOWN
    olds = engine_view(checked(host, inputs(shop)))
    # The cluster is being updated, so its kubeconfig is unknown: that alone restarts nothing and is no
    # change (`pulumi up` diffs again with the real value).
    assert diff(host, olds, result).changes == provider_pb2.DiffResponse.DIFF_NONE
    # An unknown CNI setting may well differ: it shows.
    unknown_cni = checked(host, inputs(shop, kubeconfig=rpc.UNKNOWN, cniEnabled=rpc.UNKNOWN))
    assert diff(host, olds, unknown_cni).changes == provider_pb2.DiffResponse.DIFF_SOME
    assert shop.requests == []


def test_diff_is_quiet_when_nothing_changed_and_never_replaces(host: Host, shop: KubeEmulator) -> None:
    olds = engine_view(checked(host, inputs(shop)))
    same = engine_view(checked(host, inputs(shop, excludeNamespaces=["kube-system", "istio-system"])))
    assert diff(host, olds, same).changes == provider_pb2.DiffResponse.DIFF_NONE
    for change in ({"cniEnabled": False}, {"excludeNamespaces": ["kube-system"]}, {"kubeconfig": "rotated"},
                   {"timeoutSeconds": 5}):  # fmt: skip
        news = engine_view(checked(host, inputs(shop, **change)))
        response = diff(host, olds, news)
        assert response.changes == provider_pb2.DiffResponse.DIFF_SOME, change
        assert list(response.replaces) == []
    assert shop.requests == [], "check and diff never call the cluster"


def test_create_then_update_through_the_host(host: Host, shop: KubeEmulator) -> None:
    created = create(host, engine_view(checked(host, inputs(shop))))
    outs = as_dict(created.properties)
    assert created.id.startswith("sidecar-restart-")
    assert outs["restarted"] == ["Deployment/shop/cart"]
    assert outs["skipped"] == {"alreadyMatching": {"count": 1, "workloads": ["Deployment/shop/web"]}}
    assert outs["fingerprint"] == cni_fingerprint(True, EXCLUDED)
    assert outs["restartedAt"].endswith("Z")
    assert outs["kubeconfig"] == {**SECRET_SIG, "value": shop.kubeconfig()}
    assert clear_text_places(outs, shop.token) == []
    assert shop.count(method="PATCH") == 1 and shop.count(verb="watch") == 1
    assert any("restarted Deployment/shop/cart (1 of 1)" in line for line in host.stderr), host.stderr

    # The no-op preview: the state (the outputs, kubeconfig in its secret envelope) against unchanged inputs.
    assert diff(host, outs, checked(host, inputs(shop))).changes == provider_pb2.DiffResponse.DIFF_NONE

    # A rotated kubeconfig: the state is updated, the cluster is not touched.
    state = engine_view(outs)
    rotated_kubeconfig = shop.kubeconfig() + "\n# rotated\n"
    rotated = engine_view(checked(host, inputs(shop, kubeconfig=rotated_kubeconfig)))
    assert diff(host, state, rotated).changes == provider_pb2.DiffResponse.DIFF_SOME
    before = len(shop.requests)
    after_rotation = update(host, state, rotated)
    assert len(shop.requests) == before
    assert after_rotation["restarted"] == ["Deployment/shop/cart"]
    assert after_rotation["kubeconfig"] == {**SECRET_SIG, "value": rotated_kubeconfig}

    # Switching the CNI off restarts the other way round; istiod now injects `istio-init`.
    shop.reinject = "istio-init"
    switched = engine_view(checked(host, inputs(shop, cniEnabled=False)))
    after_switch = update(host, engine_view(after_rotation), switched)
    # `cart` too: its pods were re-injected for the CNI on create.
    assert after_switch["restarted"] == ["Deployment/shop/cart", "Deployment/shop/web"]
    assert after_switch["fingerprint"] == cni_fingerprint(False, EXCLUDED)
    assert clear_text_places(after_switch, shop.token) == []
    assert shop.count(method="PATCH") == 3


def test_a_failed_create_reports_why_without_the_kubeconfig(host: Host, shop: KubeEmulator) -> None:
    shop.forbid("patch", "deployments", "shop")
    with pytest.raises(grpc.RpcError) as caught:
        create(host, engine_view(checked(host, inputs(shop))))
    details = caught.value.details()  # type: ignore[attr-defined]
    assert "forbidden: cannot patch deployments in namespace 'shop'" in details
    assert shop.token not in details and "current-context" not in details
