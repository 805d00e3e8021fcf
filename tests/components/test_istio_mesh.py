"""The IstioMesh component under Pulumi's mocks: releases, their order, values, namespaces, outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from components.istio import IstioMesh, IstioMeshArgs
from offline.engine import ProgramRun, RecordedResource, reveal, run_program
from settings.model import SYSTEM_NAMESPACES, CniSettings, GatewaySettings, IstioSettings, MeshSettings
from settings.operator_file import istio_config_from_operator
from settings.parse import parse_istio
from settings.rules import ConfigError
from tests.support.reference import SEED_FILE
from tests.support.scenarios import ALL_ADDONS, ISTIO_SCENARIOS, MESH, PROD

ISTIO_REPO = "https://istio-release.storage.googleapis.com/charts"
RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
ENFORCE = "pod-security.kubernetes.io/enforce"
OUTPUTS = (
    "istio_namespace",
    "cni_enabled",
    "cni_exclude_namespaces",
    "mesh_namespaces",
    "ingress_gateway_namespace",
    "operator_manifest",
)

SCENARIOS = ISTIO_SCENARIOS


def mesh_program(istio: IstioSettings, mesh: MeshSettings = MESH) -> Callable[[], None]:
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="apiVersion: v1\nkind: Config\n")
        component = IstioMesh("mesh", IstioMeshArgs(istio, mesh), pulumi.ResourceOptions(providers=[provider]))
        for attribute in OUTPUTS:
            pulumi.export(attribute, getattr(component, attribute))

    return program


@pytest.fixture(scope="module")
def runs() -> dict[str, ProgramRun]:
    return {name: run_program("test", {}, program=mesh_program(build())) for name, build in SCENARIOS.items()}


def releases(run: ProgramRun) -> dict[str, RecordedResource]:
    return {r.name: r for r in run.of_type(RELEASE)}


def values(run: ProgramRun, name: str) -> dict[str, Any]:
    result: dict[str, Any] = reveal(run.named(name).inputs)["values"]
    return result


def depends_on(run: ProgramRun, name: str) -> set[str]:
    by_urn = {r.urn: r.name for r in run.resources}
    return {by_urn[urn] for urn in run.named(name).dependencies}


def labels(run: ProgramRun, name: str) -> dict[str, str]:
    result: dict[str, str] = run.named(name).inputs["metadata"]["labels"]
    return result


def test_the_istio_charts_come_from_the_istio_repository_pinned_to_the_version(
    runs: dict[str, ProgramRun],
) -> None:
    for scenario, run in runs.items():
        version = SCENARIOS[scenario]().version
        for role in ("base", "istiod"):
            inputs = run.named(f"mesh-{role}").inputs
            assert inputs["chart"] == role
            assert inputs["repositoryOpts"] == {"repo": ISTIO_REPO}
            assert inputs["version"] == version
            assert inputs["namespace"] == "istio-system"
    prod = runs["prod"].named("mesh-cni").inputs
    assert (prod["chart"], prod["version"], prod["namespace"]) == ("cni", "1.29.2", "istio-system")


def test_releases_have_stable_names_and_safe_upgrade_options(runs: dict[str, ProgramRun]) -> None:
    dev = releases(runs["dev"])
    assert {name: r.inputs["name"] for name, r in dev.items()} == {
        "mesh-base": "istio-base",
        "mesh-cni": "istio-cni",
        "mesh-istiod": "istiod",
        "mesh-gateway": "istio-ingressgateway",
        "mesh-prometheus": "prometheus",
        "mesh-tracing": "jaeger",
        "mesh-grafana": "grafana",
        "mesh-kiali": "kiali",
    }
    for release in dev.values():
        assert release.inputs["atomic"] is True and release.inputs["cleanupOnFail"] is True
        assert release.inputs["timeout"] == 600
        assert "skipAwait" not in release.inputs


def test_install_order_base_cni_istiod_gateway(runs: dict[str, ProgramRun]) -> None:
    run = runs["dev"]
    assert depends_on(run, "mesh-base") == {"mesh-istio-system"}
    assert depends_on(run, "mesh-cni") == {"mesh-base"}
    assert depends_on(run, "mesh-istiod") == {"mesh-cni"}
    assert depends_on(run, "mesh-gateway") == {"mesh-istiod", "mesh-gateway-namespace"}


def test_without_the_cni_there_is_no_cni_release_and_istiod_follows_base(runs: dict[str, ProgramRun]) -> None:
    run = runs["cni-disabled"]
    assert "mesh-cni" not in releases(run)
    assert depends_on(run, "mesh-istiod") == {"mesh-base", "mesh-ns-shop", "mesh-ns-payments"}
    assert values(run, "mesh-istiod")["pilot"]["cni"] == {"enabled": False}


def test_istiod_injects_for_the_cni_and_the_cni_excludes_the_system_namespaces(
    runs: dict[str, ProgramRun],
) -> None:
    for scenario in ("dev", "operator-file", "minimal"):
        run = runs[scenario]
        assert values(run, "mesh-istiod")["pilot"]["cni"] == {"enabled": True}
        assert values(run, "mesh-cni") == {"excludeNamespaces": list(SYSTEM_NAMESPACES)}
    prod = runs["prod"]
    cni = values(prod, "mesh-cni")
    assert (cni["excludeNamespaces"], cni["chained"], cni["repair"]) == (
        [*SYSTEM_NAMESPACES, "gatekeeper-system"],
        True,
        {"enabled": True},
    )
    assert values(prod, "mesh-istiod")["pilot"] == {"cni": {"enabled": True}, **PROD.pilot}


def test_the_gateway_runs_in_its_own_namespace(runs: dict[str, ProgramRun]) -> None:
    prod = runs["prod"]
    gateway = prod.named("mesh-gateway").inputs
    assert (gateway["chart"], gateway["name"], gateway["namespace"]) == ("gateway", "edge", "edge-ingress")
    assert gateway["repositoryOpts"] == {"repo": ISTIO_REPO} and gateway["version"] == "1.29.2"
    assert values(prod, "mesh-gateway")["labels"] == {"app": "edge", "istio": "ingressgateway"}
    assert prod.named("mesh-gateway-namespace").inputs["metadata"]["name"] == "edge-ingress"
    assert labels(prod, "mesh-gateway-namespace") == {ENFORCE: "baseline"}
    minimal = runs["minimal"]
    assert "mesh-gateway" not in releases(minimal)
    assert all(r.name != "mesh-gateway-namespace" for r in minimal.resources)


def test_a_gateway_in_istio_system_reuses_that_namespace() -> None:
    istio = IstioSettings(gateway=GatewaySettings(namespace="istio-system"))
    run = run_program("test", {}, program=mesh_program(istio))
    assert all(r.name != "mesh-gateway-namespace" for r in run.resources)
    assert depends_on(run, "mesh-gateway") == {"mesh-istiod", "mesh-istio-system"}
    assert run.outputs["ingress_gateway_namespace"] == "istio-system"


def test_istio_system_allows_the_privileged_cni_agent(runs: dict[str, ProgramRun]) -> None:
    for run in runs.values():
        system = run.named("mesh-istio-system").inputs["metadata"]
        assert system["name"] == "istio-system"
        assert system["labels"] == {ENFORCE: "privileged"}


def test_application_namespaces_enforce_baseline_only_with_the_cni(runs: dict[str, ProgramRun]) -> None:
    for scenario, run in runs.items():
        cni = scenario != "cni-disabled"
        for namespace in MESH.namespaces:
            resource = run.named(f"mesh-ns-{namespace}")
            assert resource.inputs["metadata"]["name"] == namespace
            expected = {"istio-injection": "enabled", **({ENFORCE: "baseline"} if cni else {})}
            assert labels(run, f"mesh-ns-{namespace}") == expected


def test_the_namespace_labels_change_on_the_safe_side_of_istiod(runs: dict[str, ProgramRun]) -> None:
    namespaces = {f"mesh-ns-{namespace}" for namespace in MESH.namespaces}
    # CNI on: `baseline` is enforced only once istiod injects without istio-init.
    enabled = runs["dev"]
    for namespace in namespaces:
        assert depends_on(enabled, namespace) == {"mesh-istiod"}
    assert not namespaces & depends_on(enabled, "mesh-istiod")
    # CNI off: `baseline` is lifted before istiod starts adding istio-init.
    disabled = runs["cni-disabled"]
    for namespace in namespaces:
        assert depends_on(disabled, namespace) == set()
    assert namespaces <= depends_on(disabled, "mesh-istiod")


def test_a_gateway_the_operator_file_leaves_without_namespace_runs_in_istio_system(tmp_path: Path) -> None:
    operator_file = tmp_path / "istio-operator.yaml"
    spec = {**yaml.safe_load(SEED_FILE.read_text())["spec"]}
    spec["components"] = {**spec["components"], "ingressGateways": [{"name": "istio-ingressgateway", "enabled": True}]}
    operator_file.write_text(
        yaml.safe_dump({"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": spec})
    )
    run = run_program("test", {}, program=mesh_program(parse_istio({"operatorFile": operator_file.name}, tmp_path)))
    gateway = run.named("mesh-gateway").inputs
    assert (gateway["name"], gateway["namespace"]) == ("istio-ingressgateway", "istio-system")
    assert sorted(r.name for r in run.of_type(NAMESPACE)) == ["mesh-istio-system", "mesh-ns-payments", "mesh-ns-shop"]
    assert depends_on(run, "mesh-gateway") == {"mesh-istiod", "mesh-istio-system"}
    assert run.outputs["ingress_gateway_namespace"] == "istio-system"


def test_addons_on_are_pinned_releases_after_istiod(runs: dict[str, ProgramRun]) -> None:
    run = runs["dev"]
    expected = {
        "mesh-prometheus": ("prometheus", "https://prometheus-community.github.io/helm-charts"),
        "mesh-tracing": ("jaeger", "https://jaegertracing.github.io/helm-charts"),
        "mesh-grafana": ("grafana", "https://grafana-community.github.io/helm-charts"),
        "mesh-kiali": ("kiali-server", "https://kiali.org/helm-charts"),
    }
    for name, (chart, repo) in expected.items():
        inputs = run.named(name).inputs
        assert (inputs["chart"], inputs["repositoryOpts"]["repo"], inputs["namespace"]) == (
            chart,
            repo,
            "istio-system",
        )
        assert inputs["version"] and inputs["version"] != SCENARIOS["dev"]().version
        assert "mesh-istiod" in depends_on(run, name)
    assert {"mesh-prometheus", "mesh-tracing", "mesh-grafana"} <= depends_on(run, "mesh-kiali")


def test_addons_are_wired_to_each_other_and_to_istiod(runs: dict[str, ProgramRun]) -> None:
    run = runs["dev"]
    kiali = values(run, "mesh-kiali")["external_services"]
    assert kiali["prometheus"]["url"] == "http://prometheus.istio-system:9090"
    assert kiali["tracing"]["internal_url"] == "http://jaeger.istio-system:16685"
    grafana = values(run, "mesh-grafana")["datasources"]["datasources.yaml"]["datasources"]
    assert grafana[0]["url"] == "http://prometheus.istio-system:9090"
    mesh_config = values(run, "mesh-istiod")["meshConfig"]
    assert mesh_config["extensionProviders"][0]["opentelemetry"] == {
        "service": "jaeger.istio-system.svc.cluster.local",
        "port": 4317,
    }
    assert mesh_config["defaultProviders"] == {"tracing": ["jaeger"]}


def test_addons_off_means_no_addon_releases_and_no_tracing_wiring(runs: dict[str, ProgramRun]) -> None:
    for scenario in ("cni-disabled", "minimal"):
        run = runs[scenario]
        assert set(releases(run)) <= {"mesh-base", "mesh-cni", "mesh-istiod", "mesh-gateway"}
        assert "meshConfig" not in values(run, "mesh-istiod")
    prod = releases(runs["prod"])
    assert {"mesh-prometheus", "mesh-kiali"} <= set(prod)
    assert "mesh-grafana" not in prod and "mesh-tracing" not in prod
    assert values(runs["prod"], "mesh-kiali")["external_services"]["tracing"] == {"enabled": False}


def test_the_operator_file_run_matches_the_dev_like_run(runs: dict[str, ProgramRun]) -> None:
    def shape(run: ProgramRun) -> list[tuple[str, str, Any]]:
        return sorted(
            (r.type, r.name, reveal(r.inputs)) for r in run.resources if r.type != "pulumi:providers:kubernetes"
        )

    # The seed file lists no ingress gateway: like istioctl's default profile, it stays in istio-system.
    dev_like = IstioSettings(addons=ALL_ADDONS, gateway=GatewaySettings(namespace="istio-system"))
    assert runs["operator-file"].named("mesh-gateway").inputs["namespace"] == "istio-system"
    assert shape(runs["operator-file"]) == shape(run_program("test", {}, program=mesh_program(dev_like)))


def test_children_are_parented_and_inherit_the_provider(runs: dict[str, ProgramRun]) -> None:
    run = runs["dev"]
    component = run.named("mesh")
    assert component.type == "aks-istio:istio:IstioMesh"
    provider = run.named("k8s")
    for resource in run.resources:
        if resource.type in (RELEASE, NAMESPACE):
            assert resource.parent == component.urn
            assert resource.provider.startswith(provider.urn + "::")
            assert resource.name.startswith("mesh-")


def test_outputs(runs: dict[str, ProgramRun]) -> None:
    dev = runs["dev"].outputs
    assert dev["istio_namespace"] == "istio-system"
    assert dev["cni_enabled"] is True
    assert dev["cni_exclude_namespaces"] == list(SYSTEM_NAMESPACES)
    assert dev["mesh_namespaces"] == ["shop", "payments"]
    assert dev["ingress_gateway_namespace"] == "istio-ingress"
    manifest = yaml.safe_load(dev["operator_manifest"])
    assert istio_config_from_operator(manifest, "exported")["addons"] == {
        "grafana": True,
        "tracing": True,
        "kiali": True,
        "prometheus": True,
    }
    disabled = runs["cni-disabled"].outputs
    assert disabled["cni_enabled"] is False
    assert runs["minimal"].outputs["ingress_gateway_namespace"] is None


def test_the_component_exposes_the_releases_the_restart_depends_on() -> None:
    seen: dict[str, Any] = {}

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="apiVersion: v1\nkind: Config\n")
        for cni in (True, False):
            istio = IstioSettings(cni=CniSettings(enabled=cni))
            seen[str(cni)] = IstioMesh(
                f"mesh{cni}", IstioMeshArgs(istio, MESH), pulumi.ResourceOptions(provider=provider)
            )

    run_program("test", {}, program=program)
    for mesh in seen.values():
        assert [type(ns) for ns in mesh.application_namespaces] == [k8s.core.v1.Namespace] * len(MESH.namespaces)
    assert isinstance(seen["True"].cni_release, k8s.helm.v3.Release)
    assert seen["False"].cni_release is None
    assert isinstance(seen["False"].istiod_release, k8s.helm.v3.Release)


def test_an_unsupported_version_fails_clearly() -> None:
    with pytest.raises(ConfigError, match=r"1\.24 or newer"):
        run_program("test", {}, program=mesh_program(IstioSettings(version="1.23.6")))
