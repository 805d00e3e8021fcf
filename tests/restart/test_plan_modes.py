"""The data-plane mode in the planner and the post-rollout check: sidecar or ambient per namespace, and HBONE."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from restart.objects import WorkloadRef, slim_pod
from restart.plan import (
    RestartReason,
    SkipReason,
    fingerprint,
    label_refusal,
    mismatched_pods,
    plan_restart,
    pod_mismatch,
)
from restart.request import entering_sidecars
from settings.data_plane import ControlPlane, DeclaredDataPlane
from tests.restart.test_plan import PROXY_IMAGE, deployment_pods, pod

MESH = DeclaredDataPlane(
    default=ControlPlane("default", "1.30.3", PROXY_IMAGE),
    mesh_namespaces=frozenset({"shop", "payments"}),
    ambient_namespaces=frozenset({"payments"}),
    hbone=True,
)


def ambient_pod(namespace: str, name: str = "web", *, captured: bool = True, **meta: Any) -> dict[str, Any]:
    made = pod(namespace, name, sidecar=False)
    made["metadata"].update(meta)
    if captured:
        made["metadata"].setdefault("annotations", {})["ambient.istio.io/redirection"] = "enabled"
    return made


def hbone_pod(namespace: str, name: str = "web", **shape: Any) -> dict[str, Any]:
    """A sidecar pod injected with the ambient profile (HBONE on), with the CNI plugin's redirection."""
    made = pod(namespace, name, redirect="istio-validation", **shape)
    for container in (*made["spec"]["containers"], *made["spec"].get("initContainers", [])):
        if container["name"] == "istio-proxy":
            container["env"] = [{"name": "ISTIO_META_ENABLE_HBONE", "value": "true"}]
    made["metadata"]["labels"] = {"istio.io/rev": "default"}
    return made


def test_a_sidecar_pod_in_an_ambient_namespace_is_moved() -> None:
    assert pod_mismatch(hbone_pod("payments"), MESH) == (RestartReason.DATAPLANE_MODE,)


def test_a_pod_without_a_sidecar_in_a_sidecar_namespace_of_the_mesh_is_re_injected() -> None:
    assert pod_mismatch(pod("shop", "web", sidecar=False), MESH) == (RestartReason.DATAPLANE_MODE,)


@pytest.mark.parametrize("where", ["labels", "annotations"])
def test_a_pod_that_opted_out_of_injection_keeps_running_without_one(where: str) -> None:
    opted_out = pod("shop", "web", sidecar=False)
    opted_out["metadata"][where] = {"sidecar.istio.io/inject": "false"}
    assert pod_mismatch(opted_out, MESH) == ()
    assert pod_mismatch(slim_pod(opted_out), MESH) == ()


def test_a_pod_that_asks_for_a_sidecar_in_an_ambient_namespace_is_compared_as_a_sidecar() -> None:
    asking = hbone_pod("payments")
    asking["metadata"]["labels"]["sidecar.istio.io/inject"] = "true"
    assert pod_mismatch(asking, MESH) == ()


def test_outside_the_mesh_a_pod_without_a_sidecar_is_left_alone() -> None:
    assert pod_mismatch(pod("team", "web", sidecar=False), MESH) == ()


def test_an_ambient_pod_in_an_ambient_namespace_matches() -> None:
    assert pod_mismatch(ambient_pod("payments"), MESH) == ()


def test_once_the_mesh_runs_ambient_a_sidecar_without_hbone_is_re_injected() -> None:
    old = pod("shop", "web", redirect="istio-validation")
    assert pod_mismatch(old, MESH) == (RestartReason.HBONE,)
    assert pod_mismatch(slim_pod(old), MESH) == (RestartReason.HBONE,)
    assert pod_mismatch(slim_pod(hbone_pod("shop")), MESH) == ()
    assert pod_mismatch(old, replace(MESH, hbone=False, ambient_namespaces=frozenset())) == ()


def test_the_planner_moves_exactly_the_mismatched_workloads_of_each_namespace() -> None:
    moving = deployment_pods("payments", "api", redirect="istio-validation")  # a sidecar, to ambient
    moved = deployment_pods("payments", "done", sidecar=False)  # already ambient
    back = deployment_pods("shop", "cart", sidecar=False)  # no sidecar where sidecars are declared
    opted = deployment_pods("shop", "batch", sidecar=False)
    opted[2]["metadata"]["labels"] = {"sidecar.istio.io/inject": "false"}
    pods = [hbone_pod("payments", moving[2]["metadata"]["name"]) | {"metadata": moving[2]["metadata"]}]
    pods += [moved[2], back[2], opted[2]]
    plan = plan_restart(
        MESH,
        pods=[slim_pod(p) for p in pods],
        replicasets=[w[1] for w in (moving, moved, back, opted)],
        workloads=[("Deployment", w[0]) for w in (moving, moved, back, opted)],
    )
    api, cart = WorkloadRef("Deployment", "payments", "api"), WorkloadRef("Deployment", "shop", "cart")
    assert plan.restart == (api, cart)
    assert plan.reasons == {api: (RestartReason.DATAPLANE_MODE,), cart: (RestartReason.DATAPLANE_MODE,)}
    assert plan.skipped == {
        WorkloadRef("Deployment", "payments", "done"): SkipReason.NO_SIDECAR,
        WorkloadRef("Deployment", "shop", "batch"): SkipReason.NO_SIDECAR,
    }


def test_after_the_rollout_an_ambient_pod_must_be_captured_and_without_a_sidecar() -> None:
    owner = WorkloadRef("Pod", "payments", "web")
    for bad in (ambient_pod("payments", captured=False), hbone_pod("payments")):
        assert mismatched_pods(MESH, pods=[slim_pod(bad)], replicasets=[], owners=[owner]) == {owner: ["web"]}
    left_out = ambient_pod("payments", captured=False, labels={"istio.io/dataplane-mode": "none"})
    for good in (ambient_pod("payments"), left_out):
        assert mismatched_pods(MESH, pods=[slim_pod(good)], replicasets=[], owners=[owner]) == {}


def test_after_moving_back_a_pod_still_without_its_sidecar_fails_the_check() -> None:
    owner = WorkloadRef("Pod", "shop", "web")
    found = mismatched_pods(MESH, pods=[slim_pod(pod("shop", "web", sidecar=False))], replicasets=[], owners=[owner])
    assert found == {owner: ["web"]}


def test_the_fingerprint_of_a_sidecar_only_mesh_is_what_it_was_before_ambient_mode() -> None:
    before = replace(MESH, ambient_namespaces=frozenset(), hbone=False)
    assert "hbone" not in before.describe() and "ambientNamespaces" not in before.describe()
    assert fingerprint(replace(before, hbone=True)) != fingerprint(before)
    assert fingerprint(MESH) != fingerprint(replace(MESH, ambient_namespaces=frozenset()))


def test_the_declaration_round_trips_through_its_property_bag_with_the_modes() -> None:
    assert DeclaredDataPlane.from_inputs(MESH.inputs()) == MESH
    older = {key: value for key, value in MESH.inputs().items() if key not in ("ambientNamespaces", "hbone")}
    assert DeclaredDataPlane.from_inputs(older) == replace(MESH, ambient_namespaces=frozenset(), hbone=False)


def test_the_namespaces_joining_the_sidecars_are_listed_whole() -> None:
    sidecar_only = replace(MESH, ambient_namespaces=frozenset())
    assert entering_sidecars(sidecar_only, MESH) == {"payments"}  # moved back
    assert entering_sidecars(MESH, sidecar_only) == frozenset()  # moved to ambient: its sidecars are listed anyway
    grown = replace(MESH, mesh_namespaces=frozenset({"shop", "payments", "cart"}))
    assert entering_sidecars(grown, MESH) == {"cart"}  # new to the mesh
    assert entering_sidecars(MESH, None) == {"shop"}  # a first install
    assert entering_sidecars(MESH, replace(MESH, mesh_namespaces=frozenset())) == frozenset()  # an older state


def test_a_namespace_moves_only_once_its_labels_say_its_mode() -> None:
    assert label_refusal("payments", {"istio.io/dataplane-mode": "ambient"}, MESH) is None
    refused = label_refusal("payments", {"istio-injection": "enabled"}, MESH)
    assert refused == (
        "namespace payments is declared ambient but its labels are istio-injection=enabled "
        "(wanted: istio.io/dataplane-mode=ambient and no istio-injection or istio.io/rev)"
    )
    both = {"istio-injection": "enabled", "istio.io/dataplane-mode": "ambient"}  # injection wins in istiod
    assert label_refusal("payments", both, MESH) is not None
    assert label_refusal("shop", {"istio.io/rev": "canary"}, MESH) is None
    assert "declared sidecar but its labels are none of Istio's" in str(label_refusal("shop", {}, MESH))
    assert label_refusal("shop", None, MESH) is not None
    assert label_refusal("team", {}, MESH) is None  # outside the mesh: not this stack's to label


@pytest.mark.parametrize(
    "leave",
    [
        lambda pod: pod["spec"].update(hostNetwork=True),
        lambda pod: pod["metadata"].update(labels={"security.istio.io/tlsMode": "istio"}),  # proxyless gRPC
        lambda pod: pod["metadata"].update(annotations={"inject.istio.io/templates": "grpc-agent"}),
    ],
    ids=["hostNetwork", "istiods-mark", "inject-template"],
)
def test_a_pod_istiod_leaves_without_a_sidecar_is_not_due_one(leave: Any) -> None:
    """istiod never injects a pod on the host's network, and a proxyless template adds no `istio-proxy`: restarting
    them would not give them one, and the post-rollout check would then fail every run."""
    left = pod("shop", "web", sidecar=False)
    leave(left)
    assert pod_mismatch(slim_pod(left), MESH) == ()
