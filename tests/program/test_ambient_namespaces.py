"""The whole program with ambient namespaces (the committed staging stack) under Pulumi's mocks: each namespace's
labels, the waypoint and its label in Istio's order, the rollout after all of it, and what app stacks read."""

from __future__ import annotations

import pytest

from offline.engine import ProgramRun, is_secret_input, reveal, run_program, stack_config
from tests.components.test_istio_mesh import depends_on, labels

GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
NAMESPACE_PATCH = "kubernetes:core/v1:NamespacePatch"


@pytest.fixture(scope="module")
def staging() -> ProgramRun:
    return run_program("staging", stack_config("staging"))


@pytest.fixture(scope="module")
def dev() -> ProgramRun:
    return run_program("dev", stack_config("dev"))


def restart_inputs(run: ProgramRun) -> dict[str, object]:
    inputs: dict[str, object] = reveal(run.named("sidecar-restart").inputs)
    return inputs


def test_an_ambient_namespace_has_the_ambient_label_and_no_injection_label(staging: ProgramRun) -> None:
    assert labels(staging, "mesh-ns-payments") == {
        "istio.io/dataplane-mode": "ambient",
        "pod-security.kubernetes.io/enforce": "baseline",
    }
    assert labels(staging, "mesh-ns-shop") == {
        "istio-injection": "enabled",
        "pod-security.kubernetes.io/enforce": "baseline",
    }


def test_the_waypoint_is_a_gateway_of_istios_waypoint_class_awaited_until_programmed(staging: ProgramRun) -> None:
    (waypoint,) = staging.of_type(GATEWAY)
    assert waypoint.name == "mesh-waypoint-payments"
    inputs = waypoint.inputs
    assert inputs["metadata"]["name"] == "waypoint"
    assert inputs["metadata"]["namespace"] == "payments"
    assert inputs["metadata"]["annotations"] == {"pulumi.com/waitFor": "condition=Programmed"}
    assert inputs["spec"] == {
        "gatewayClassName": "istio-waypoint",
        "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
    }


def test_use_waypoint_follows_the_programmed_waypoint_and_the_rollout_follows_both(staging: ProgramRun) -> None:
    (patch,) = staging.of_type(NAMESPACE_PATCH)
    assert patch.inputs["metadata"] == {"name": "payments", "labels": {"istio.io/use-waypoint": "waypoint"}}
    assert depends_on(staging, patch.name) == {"mesh-waypoint-payments"}
    assert {"mesh-ns-payments", "mesh-gateway-api-crds", "mesh-istiod"} <= depends_on(staging, "mesh-waypoint-payments")
    assert {"mesh-ns-payments", "mesh-waypoint-payments", patch.name, "mesh-ztunnel"} <= depends_on(
        staging, "sidecar-restart"
    )


def test_the_rollout_declares_the_ambient_namespaces_and_hbone(staging: ProgramRun, dev: ProgramRun) -> None:
    assert restart_inputs(staging)["ambientNamespaces"] == ["payments"]
    assert restart_inputs(staging)["hbone"] is True
    assert restart_inputs(dev)["ambientNamespaces"] == []
    assert restart_inputs(dev)["hbone"] is False


def test_app_stacks_read_each_namespaces_mode_and_waypoint(staging: ProgramRun, dev: ProgramRun) -> None:
    assert staging.outputs["meshDataPlane"] == {
        "shop": {"mode": "sidecar", "waypoint": ""},
        "payments": {"mode": "ambient", "waypoint": "waypoint"},
    }
    assert staging.outputs["meshNamespaces"] == ["shop", "payments"]
    assert dev.outputs["meshDataPlane"] == {
        "shop": {"mode": "sidecar", "waypoint": ""},
        "payments": {"mode": "sidecar", "waypoint": ""},
    }


def test_a_sidecar_only_stack_has_no_waypoint_and_no_namespace_patch(dev: ProgramRun) -> None:
    assert dev.of_type(GATEWAY) == [] and dev.of_type(NAMESPACE_PATCH) == []


def test_every_namespace_label_waits_for_the_ambient_move_check(staging: ProgramRun) -> None:
    check = staging.named("ambient-move-check")
    assert check.type == "pulumi-python:dynamic/restart:AmbientMoveCheck"
    assert reveal(check.inputs)["namespaces"] == [{"name": "payments", "waypoint": "waypoint", "acknowledge": []}]
    assert is_secret_input(check.inputs["kubeconfig"])
    for namespace in ("mesh-ns-payments", "mesh-ns-shop"):
        assert "ambient-move-check" in depends_on(staging, namespace)
    assert depends_on(staging, "ambient-move-check") >= {"istio-upgrade-guard"}


def test_a_sidecar_only_stack_has_no_move_check(dev: ProgramRun) -> None:
    assert not [r for r in dev.resources if r.name == "ambient-move-check"]
