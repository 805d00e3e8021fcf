"""Each stage of an Istio upgrade, the whole program under Pulumi's mocks: releases, revisions, labels, order.

The stages a platform team goes through, each one `pulumi up`: a canary added beside the default control
plane, a namespace moved onto it, the canary promoted, or rolled back instead.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from offline.engine import ProgramRun, run_program, stack_config
from tests.program.test_program import RESTART_TYPE, restart_inputs

GUARD_TYPE = "pulumi-python:dynamic/istio:IstioUpgradeGuard"
OLD, NEW = "1.29.6", "1.30.3"


def stage(version: str, canary: dict[str, Any] | None = None) -> ProgramRun:
    """dev with `istio.version` and, optionally, `istio.canary`; Kubernetes 1.33 suits both releases."""
    config = copy.deepcopy(stack_config("dev"))
    istio = {**config["aks-istio:istio"], "version": version}
    if canary is not None:
        istio["canary"] = canary
    config["aks-istio:istio"] = istio
    return run_program("dev", config)


@pytest.fixture(scope="module")
def before() -> ProgramRun:
    return stage(OLD)


@pytest.fixture(scope="module")
def canary_added() -> ProgramRun:
    return stage(OLD, {"version": NEW, "namespaces": []})


@pytest.fixture(scope="module")
def shop_moved() -> ProgramRun:
    return stage(OLD, {"version": NEW, "namespaces": ["shop"]})


def releases(run: ProgramRun) -> dict[str, tuple[str, str]]:
    """Pulumi name -> (Helm release name, chart version)."""
    return {r.name: (r.inputs["name"], r.inputs["version"]) for r in run.of_type("kubernetes:helm.sh/v3:Release")}


def labels(run: ProgramRun, namespace: str) -> dict[str, str]:
    return dict(run.named(f"mesh-ns-{namespace}").inputs["metadata"]["labels"])


def test_a_canary_is_a_second_istiod_release_beside_the_unrevisioned_default(
    before: ProgramRun, canary_added: ProgramRun
) -> None:
    assert releases(before)["mesh-istiod"] == ("istiod", OLD)
    assert "mesh-istiod-canary" not in releases(before)
    planes = releases(canary_added)
    # The default release is the same resource with the same values: adding a canary does not touch it.
    assert planes["mesh-istiod"] == ("istiod", OLD)
    assert canary_added.named("mesh-istiod").inputs["values"] == before.named("mesh-istiod").inputs["values"]
    assert planes["mesh-istiod-canary"] == ("istiod-1-30-3", NEW)
    values = canary_added.named("mesh-istiod-canary").inputs["values"]
    assert (values["revision"], values["revisionTags"]) == ("1-30-3", ["canary"])
    assert values["pilot"]["cni"] == {"enabled": True}
    # base and cni serve both control planes: the newer release.
    assert planes["mesh-base"] == ("istio-base", NEW) and planes["mesh-cni"] == ("istio-cni", NEW)
    assert planes["mesh-gateway"][1] == OLD, "the gateway follows the default control plane"
    assert canary_added.outputs["istioCanaryVersion"] == NEW


def test_only_the_canarys_namespaces_are_labelled_for_its_tag(canary_added: ProgramRun, shop_moved: ProgramRun) -> None:
    assert labels(canary_added, "shop")["istio-injection"] == "enabled"
    assert labels(shop_moved, "shop") == {"istio.io/rev": "canary", "pod-security.kubernetes.io/enforce": "baseline"}
    assert labels(shop_moved, "payments") == {
        "istio-injection": "enabled",
        "pod-security.kubernetes.io/enforce": "baseline",
    }


def test_the_restart_declares_each_namespaces_control_plane_and_waits_for_the_canary(
    before: ProgramRun, canary_added: ProgramRun, shop_moved: ProgramRun
) -> None:
    inputs = restart_inputs(shop_moved)
    assert inputs["proxyImage"] == f"docker.io/istio/proxyv2:{OLD}"
    assert (inputs["canaryRevision"], inputs["canaryProxyImage"]) == ("1-30-3", f"docker.io/istio/proxyv2:{NEW}")
    assert inputs["canaryNamespaces"] == ["shop"]
    # Moving a namespace changes only which namespaces the canary serves.
    changed = {k for k in inputs if inputs[k] != restart_inputs(canary_added)[k] and k != "kubeconfig"}
    assert changed == {"canaryNamespaces"}
    (restart,) = shop_moved.of_type(RESTART_TYPE)
    assert shop_moved.urn_of("mesh-istiod-canary") in restart.dependencies
    assert {shop_moved.urn_of("mesh-ns-shop"), shop_moved.urn_of("mesh-istiod")} <= set(restart.dependencies)
    # A namespace moves to the canary's tag only once the canary's webhook exists.
    assert shop_moved.urn_of("mesh-istiod-canary") in shop_moved.named("mesh-ns-shop").dependencies
    assert restart_inputs(before)["canaryRevision"] == ""


def test_promotion_upgrades_the_default_in_place_and_leaves_the_canary_out_to_be_deleted_last(
    shop_moved: ProgramRun,
) -> None:
    promoted = stage(NEW)
    planes = releases(promoted)
    # The same `istiod` release, upgraded: never replaced, so its webhooks never change owner.
    assert planes["mesh-istiod"] == ("istiod", NEW)
    assert "mesh-istiod-canary" not in planes, "removed from the program: Pulumi deletes it after the update"
    assert planes["mesh-gateway"][1] == NEW
    assert labels(promoted, "shop")["istio-injection"] == "enabled"
    inputs = restart_inputs(promoted)
    assert (inputs["proxyImage"], inputs["canaryRevision"], inputs["canaryNamespaces"]) == (
        f"docker.io/istio/proxyv2:{NEW}",
        "",
        [],
    )
    # Pulumi deletes a resource the program no longer declares only after every registered one (the restart
    # included) succeeded; the restart is registered, and waits for the upgraded istiod.
    (restart,) = promoted.of_type(RESTART_TYPE)
    assert promoted.urn_of("mesh-istiod") in restart.dependencies


def test_a_roll_back_returns_everything_to_the_default_release() -> None:
    rolled_back = stage(OLD)
    planes = releases(rolled_back)
    assert planes["mesh-istiod"] == ("istiod", OLD)
    assert planes["mesh-base"] == ("istio-base", OLD) and planes["mesh-cni"] == ("istio-cni", OLD)
    assert restart_inputs(rolled_back)["proxyImage"] == f"docker.io/istio/proxyv2:{OLD}"
    assert labels(rolled_back, "shop")["istio-injection"] == "enabled"


def test_the_upgrade_guard_comes_first_and_gates_every_resource_of_the_mesh(shop_moved: ProgramRun) -> None:
    (guard,) = shop_moved.of_type(GUARD_TYPE)
    assert {key: value for key, value in guard.inputs.items() if key != "__provider"} == {
        "version": OLD,
        "canaryVersion": NEW,
        "canaryNamespaces": ["shop"],
        "meshNamespaces": ["payments", "shop"],
        "allowDowngradeFrom": "",
        "ambientNamespaces": [],
        "hbone": False,
    }
    urn = shop_moved.urn_of("istio-upgrade-guard")
    gated = ["mesh-istio-system", "mesh-ns-shop", "mesh-ns-payments", "mesh-gateway-namespace"]
    for name in gated:
        assert urn in shop_moved.named(name).dependencies, name
    # Everything else of the mesh waits for one of those (the releases for istio-system, through base).
    assert shop_moved.urn_of("mesh-istio-system") in shop_moved.named("mesh-base").dependencies
