"""The whole program under Pulumi's mocks: composition, the outputs contract, and the restart's inputs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from offline.engine import ProgramRun, available_stacks, is_secret_input, reveal, run_program, stack_config
from settings.model import SYSTEM_NAMESPACES
from tests.support.reference import SEED_RELATIVE

RESTART_TYPE = "pulumi-python:dynamic/restart:SidecarRestart"
CNI_INPUTS = ("cniEnabled", "excludeNamespaces")


def run_with(stack: str = "dev", **changes: dict[str, Any]) -> ProgramRun:
    """Run `stack` with some of its config objects changed (keys without the `aks-istio:` prefix)."""
    config = copy.deepcopy(stack_config(stack))
    for name, change in changes.items():
        config[f"aks-istio:{name}"] = {**config.get(f"aks-istio:{name}", {}), **change}
    return run_program(stack, config)


def restart_inputs(run: ProgramRun) -> dict[str, Any]:
    (resource,) = run.of_type(RESTART_TYPE)
    return resource.inputs


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


def test_the_app_stack_helper_reads_exactly_what_the_program_exports(dev: ProgramRun) -> None:
    from aks_istio_outputs import CONTRACT_OUTPUT_NAMES

    assert set(CONTRACT_OUTPUT_NAMES) <= set(dev.outputs)


def test_gateway_off_leaves_its_namespace_output_empty() -> None:
    run = run_with(istio={"gateway": {"enabled": False}})
    assert run.outputs["ingressGatewayNamespace"] == ""


def test_mesh_is_installed_through_the_cluster_provider(dev: ProgramRun) -> None:
    provider_urn = dev.urn_of("platform-k8s")
    on_cluster = [r for r in dev.resources if r.type.startswith("kubernetes:")]
    assert on_cluster
    assert all(r.provider.startswith(provider_urn + "::") for r in on_cluster)


def test_restart_runs_after_the_cni_and_istiod_releases_with_a_secret_kubeconfig(dev: ProgramRun) -> None:
    (restart,) = dev.of_type(RESTART_TYPE)
    assert {dev.urn_of("mesh-cni"), dev.urn_of("mesh-istiod")} <= set(restart.dependencies)
    # The mesh namespaces' Pod Security label must be in place before pods are recreated.
    assert {dev.urn_of("mesh-ns-shop"), dev.urn_of("mesh-ns-payments")} <= set(restart.dependencies)
    assert is_secret_input(restart.inputs["kubeconfig"])
    assert reveal(restart.inputs["kubeconfig"]) == dev.outputs["kubeconfig"]
    assert restart.inputs["cniEnabled"] is True
    assert (restart.inputs["maxConcurrent"], restart.inputs["waitForRollout"]) == (5, True)


def test_restart_depends_on_istiod_alone_without_the_cni() -> None:
    run = run_with(istio={"cni": {"enabled": False}}, mesh={"namespaces": ["shop"]})
    (restart,) = run.of_type(RESTART_TYPE)
    assert run.urn_of("mesh-istiod") in restart.dependencies
    assert run.of_type("kubernetes:helm.sh/v3:Release") and not [r for r in run.resources if r.name == "mesh-cni"]
    assert restart.inputs["cniEnabled"] is False


def test_restart_cni_inputs_change_when_and_only_when_the_cni_settings_do(dev: ProgramRun) -> None:
    baseline = {key: restart_inputs(dev)[key] for key in CNI_INPUTS}
    unrelated = [
        run_with(cluster={"systemPool": {"vmSize": "Standard_D8ds_v5", "count": 4}}),
        run_with(restart={"maxConcurrent": 20, "timeoutSeconds": 120}),
        run_with(mesh={"namespaces": ["shop", "payments", "search"]}),
        run_with(istio={"addons": {"kiali": False}}),
        run_with(
            istio={"cni": {"excludeNamespaces": ["kube-public", "kube-node-lease", "kube-system", "istio-system"]}}
        ),
    ]
    for run in unrelated:
        assert {key: restart_inputs(run)[key] for key in CNI_INPUTS} == baseline
    disabled = run_with(istio={"cni": {"enabled": False}})
    assert restart_inputs(disabled)["cniEnabled"] is False
    extra = run_with(
        istio={
            "cni": {"excludeNamespaces": ["istio-system", "kube-system", "kube-node-lease", "kube-public", "legacy"]}
        }
    )
    assert "legacy" in restart_inputs(extra)["excludeNamespaces"]


@pytest.mark.parametrize("stack", available_stacks())
def test_each_committed_stack_composes(stack: str) -> None:
    run = run_program(stack, stack_config(stack))
    assert len(run.of_type(RESTART_TYPE)) == 1
    assert len(run.of_type("aks-istio:istio:IstioMesh")) == 1
    assert run.outputs["meshNamespaces"]


def test_the_articles_operator_file_gives_the_same_stack_as_the_equivalent_config() -> None:
    seed = SEED_RELATIVE
    from_file = run_program("dev", {**stack_config("dev"), "aks-istio:istio": {"operatorFile": seed}})
    equivalent = run_program(
        "dev",
        {
            **stack_config("dev"),
            "aks-istio:istio": {
                "cni": {"enabled": True, "excludeNamespaces": list(SYSTEM_NAMESPACES)},
                "addons": {"grafana": True, "tracing": True, "kiali": True, "prometheus": True},
                # The file lists no gateway: istioctl's default profile put one in istio-system.
                "gateway": {"namespace": "istio-system"},
            },
        },
    )

    def shape(run: ProgramRun) -> list[tuple[str, str, Any]]:
        return sorted((r.type, r.name, reveal(r.inputs)) for r in run.resources if r.type != RESTART_TYPE)

    assert shape(from_file) == shape(equivalent)
    assert from_file.outputs["cniExcludeNamespaces"] == list(SYSTEM_NAMESPACES)


def test_the_restart_is_declared_the_proxy_istiod_injects_so_an_upgrade_reinjects(dev: ProgramRun) -> None:
    assert restart_inputs(dev)["proxyImage"] == "docker.io/istio/proxyv2:1.30.3"
    upgraded = run_with(istio={"version": "1.31.0"})
    assert restart_inputs(upgraded)["proxyImage"] == "docker.io/istio/proxyv2:1.31.0"
    private = run_with(istio={"global": {"hub": "myacr.azurecr.io/istio", "variant": "distroless"}})
    assert restart_inputs(private)["proxyImage"] == "myacr.azurecr.io/istio/proxyv2:1.30.3-distroless"
    assert (restart_inputs(dev)["canaryRevision"], restart_inputs(dev)["canaryNamespaces"]) == ("", [])
    assert set(dev.outputs["sidecarRestart"]) >= {"restarted", "restartReasons", "skipped", "manualRestart"}
