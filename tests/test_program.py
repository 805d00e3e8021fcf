"""The whole program under Pulumi's mocks: composition, the outputs contract, and the restart's inputs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from offline.engine import ProgramRun, run_program, stack_config

RESTART_TYPE = "pulumi-python:dynamic/restart:SidecarRestart"
CNI_INPUTS = ("cniEnabled", "excludeNamespaces")


def run_with(stack: str = "dev", **changes: dict[str, Any]) -> ProgramRun:
    """Run `stack` with some of its config objects changed (keys without the `aks-istio:` prefix)."""
    config = copy.deepcopy(stack_config(stack))
    for name, change in changes.items():
        config[f"aks-istio:{name}"] = {**config.get(f"aks-istio:{name}", {}), **change}
    return run_program(stack, config)


@pytest.fixture(scope="module")
def dev() -> ProgramRun:
    return run_program("dev", stack_config("dev"))


def test_outputs_contract(dev: ProgramRun) -> None:
    outputs = dev.outputs
    assert set(outputs) >= {
        "kubeconfig", "clusterName", "resourceGroupName", "location", "oidcIssuerUrl", "istioVersion",
        "istioNamespace", "cniEnabled", "cniExcludeNamespaces", "meshNamespaces", "ingressGatewayNamespace",
        "istioOperatorManifest",
    }  # fmt: skip
    assert outputs["istioVersion"] == "1.30.3"
    assert outputs["istioNamespace"] == "istio-system"
    assert outputs["cniEnabled"] is True
    assert outputs["cniExcludeNamespaces"] == ["istio-system", "kube-system", "kube-node-lease", "kube-public"]
    assert outputs["meshNamespaces"] == ["shop", "payments"]
    assert outputs["ingressGatewayNamespace"] == "istio-ingress"
    assert "kind: IstioOperator" in outputs["istioOperatorManifest"]
    assert dev.secret_outputs == {"kubeconfig"}


def test_gateway_off_leaves_its_namespace_output_empty() -> None:
    run = run_with(istio={"gateway": {"enabled": False}})
    assert run.outputs["ingressGatewayNamespace"] == ""


def test_mesh_is_installed_through_the_cluster_provider(dev: ProgramRun) -> None:
    provider_urn = dev.urn_of("platform-k8s")
    on_cluster = [r for r in dev.resources if r.type.startswith("kubernetes:")]
    assert on_cluster
    assert all(r.provider.startswith(provider_urn + "::") for r in on_cluster)
