"""IstioMesh with ambient mode under Pulumi's mocks: what is installed, pinned, and in Istio's order."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from components.istio import GATEWAY_API_CRDS_FILE
from offline.engine import ProgramRun, run_program
from settings.model import AmbientSettings, CanarySettings
from settings.stack import ROOT
from tests.components.test_istio_mesh import ISTIO_REPO, RELEASE, depends_on, mesh_program, releases, values
from tests.support.scenarios import DEV, PROD

CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
AMBIENT = dataclasses.replace(DEV, ambient=AmbientSettings(enabled=True))
AMBIENT_CANARY = dataclasses.replace(
    AMBIENT, version="1.29.6", canary=CanarySettings(version="1.30.3", namespaces=("shop",))
)


@pytest.fixture(scope="module")
def runs() -> dict[str, ProgramRun]:
    scenarios = {"ambient": AMBIENT, "ambient-canary": AMBIENT_CANARY, "sidecar": DEV, "prod": PROD}
    return {name: run_program("test", {}, program=mesh_program(istio)) for name, istio in scenarios.items()}


def test_ambient_installs_in_istios_order_base_crds_istiod_cni_ztunnel(runs: dict[str, ProgramRun]) -> None:
    run = runs["ambient"]
    assert depends_on(run, "mesh-base") == {"mesh-istio-system"}
    assert depends_on(run, "mesh-gateway-api-crds") == {"mesh-base"}
    assert depends_on(run, "mesh-istiod") == {"mesh-gateway-api-crds"}
    assert depends_on(run, "mesh-cni") == {"mesh-istiod"}
    assert depends_on(run, "mesh-ztunnel") == {"mesh-cni"}
    for namespace in ("mesh-ns-shop", "mesh-ns-payments"):
        assert {"mesh-cni", "mesh-ztunnel", "mesh-istiod"} <= depends_on(run, namespace)


def test_a_canary_upgrade_moves_both_istiods_before_the_node_agents(runs: dict[str, ProgramRun]) -> None:
    run = runs["ambient-canary"]
    assert depends_on(run, "mesh-istiod-canary") == {"mesh-gateway-api-crds"}
    assert depends_on(run, "mesh-cni") == {"mesh-istiod", "mesh-istiod-canary"}
    assert depends_on(run, "mesh-ztunnel") == {"mesh-cni"}
    # Not revisioned: ztunnel runs the newer release and connects to the canary's istiod, never newer than it.
    ztunnel = run.named("mesh-ztunnel").inputs
    assert ztunnel["version"] == "1.30.3"
    assert values(run, "mesh-ztunnel")["revision"] == "1-30-3"
    assert run.named("mesh-cni").inputs["version"] == "1.30.3"
    assert values(run, "mesh-istiod-canary")["profile"] == "ambient"


def test_ztunnel_is_a_pinned_release_from_the_istio_repository(runs: dict[str, ProgramRun]) -> None:
    ztunnel = runs["ambient"].named("mesh-ztunnel").inputs
    assert (ztunnel["name"], ztunnel["chart"], ztunnel["version"]) == ("ztunnel", "ztunnel", "1.30.3")
    assert ztunnel["namespace"] == "istio-system"
    assert ztunnel["repositoryOpts"] == {"repo": ISTIO_REPO}
    assert ztunnel["atomic"] is True and ztunnel["cleanupOnFail"] is True
    assert "revision" not in values(runs["ambient"], "mesh-ztunnel")


def test_the_gateway_api_crds_are_the_vendored_standard_channel_and_outlive_the_setting(
    runs: dict[str, ProgramRun],
) -> None:
    crds = runs["ambient"].named("mesh-gateway-api-crds")
    assert crds.type == CONFIG_FILE
    assert crds.inputs["file"] == GATEWAY_API_CRDS_FILE
    assert not Path(GATEWAY_API_CRDS_FILE).is_absolute()
    assert crds.options.get("retainOnDelete") is True
    text = (ROOT / GATEWAY_API_CRDS_FILE).read_text()
    assert text.count("kind: CustomResourceDefinition") == 8
    assert "gateway.networking.k8s.io/bundle-version: v1.5.1" in text
    assert "gateway.networking.k8s.io/channel: standard" in text
    assert "gateway.networking.k8s.io/channel: experimental" not in text


def test_istiod_and_cni_carry_the_ambient_profile(runs: dict[str, ProgramRun]) -> None:
    run = runs["ambient"]
    assert values(run, "mesh-istiod")["profile"] == "ambient"
    assert values(run, "mesh-cni")["profile"] == "ambient"
    assert values(run, "mesh-istiod")["pilot"]["cni"] == {"enabled": True}


def test_a_private_registry_reaches_ztunnel_too(runs: dict[str, ProgramRun]) -> None:
    prod = dataclasses.replace(PROD, ambient=AmbientSettings(enabled=True))
    run = run_program("test", {}, program=mesh_program(prod))
    ztunnel_global = values(run, "mesh-ztunnel")["global"]
    assert ztunnel_global["hub"] == "myregistry.azurecr.io/istio"
    assert ztunnel_global["imagePullSecrets"] == ["acr-pull"]
    assert "proxy" not in ztunnel_global  # a sidecar setting, not ztunnel's


@pytest.mark.parametrize("scenario", ["sidecar", "prod"])
def test_without_ambient_nothing_of_it_is_installed(runs: dict[str, ProgramRun], scenario: str) -> None:
    run = runs[scenario]
    assert "mesh-ztunnel" not in releases(run)
    assert run.of_type(CONFIG_FILE) == []
    assert "profile" not in values(run, "mesh-istiod")
    assert "profile" not in values(run, "mesh-cni")
    assert depends_on(run, "mesh-istiod") == {"mesh-cni"}
    assert RELEASE in {r.type for r in run.resources}


def test_the_whole_program_re_injects_sidecars_for_the_distroless_proxy_after_ztunnel() -> None:
    from settings.stack import stack_config

    config = stack_config("dev")
    istio = dict(config["aks-istio:istio"])
    istio["ambient"] = {"enabled": True}
    run = run_program("dev", {**config, "aks-istio:istio": istio})
    restart = run.named("sidecar-restart")
    by_urn = {r.urn: r.name for r in run.resources}
    assert {"mesh-ztunnel", "mesh-cni", "mesh-istiod"} <= {by_urn[urn] for urn in restart.dependencies}
    assert "1.30.3-distroless" in str(restart.inputs)
    assert run.outputs  # the program completes with ambient on
