"""Istio's real charts of both reference releases, rendered by Helm with the program's ambient values.

What a cluster would get when `istio.ambient.enabled` is on: istiod with ambient turned on and HBONE for sidecars,
the CNI node agent's ambient redirection, the ztunnel DaemonSet at the right release, talking to the right istiod,
and the injected proxy the program declares.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from components.istio_values import ztunnel_values
from settings.model import ISTIO_NAMESPACE, AmbientSettings, CanarySettings, IstioSettings
from tests.components import test_rendered_charts as charts
from tests.components.test_rendered_charts import (
    RELEASES,
    Document,
    find,
    injector_values,
    mesh_config,
    proxy_image,
    render,
    render_cni,
    render_istiod,
    with_release_images,
)
from tests.support.scenarios import DEV, PROD

charts.CHART_DIRS.setdefault("ztunnel", "ztunnel")


def ambient(istio: IstioSettings, version: str) -> IstioSettings:
    return dataclasses.replace(istio, version=version, ambient=AmbientSettings(enabled=True))


def render_ztunnel(istio: IstioSettings) -> tuple[Document, ...]:
    release = istio.shared_chart_version
    return render(
        "ztunnel", release, "ztunnel", ISTIO_NAMESPACE, with_release_images(ztunnel_values(istio), istio, release)
    )


def container_env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env") or []}


@pytest.mark.parametrize("release", RELEASES)
def test_istiod_runs_ambient_and_sidecars_speak_hbone(release: str) -> None:
    documents = render_istiod(ambient(DEV, release))
    (discovery,) = find(documents, "Deployment", "istiod")["spec"]["template"]["spec"]["containers"]
    assert container_env(discovery)["PILOT_ENABLE_AMBIENT"] == "true"
    assert mesh_config(documents)["defaultConfig"]["proxyMetadata"]["ISTIO_META_ENABLE_HBONE"] == "true"


@pytest.mark.parametrize("release", RELEASES)
def test_without_ambient_istiod_renders_neither(release: str) -> None:
    documents = render_istiod(dataclasses.replace(DEV, version=release))
    (discovery,) = find(documents, "Deployment", "istiod")["spec"]["template"]["spec"]["containers"]
    assert "PILOT_ENABLE_AMBIENT" not in container_env(discovery)
    proxy_metadata = (mesh_config(documents).get("defaultConfig") or {}).get("proxyMetadata") or {}
    assert "ISTIO_META_ENABLE_HBONE" not in proxy_metadata


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("base", [DEV, PROD], ids=["dev", "prod"])
def test_istiod_injects_the_proxy_image_the_program_declares_with_ambient(release: str, base: IstioSettings) -> None:
    istio = ambient(base, release)
    documents = render_istiod(istio)
    assert proxy_image(injector_values(documents), mesh_config(documents)) == istio.proxy_image
    assert istio.proxy_image.endswith(f":{release}-distroless")


@pytest.mark.parametrize("variant", ["default", "debug"])
def test_a_configured_variant_beats_the_ambient_profile_in_the_chart_as_in_the_settings(variant: str) -> None:
    istio = dataclasses.replace(ambient(DEV, "1.30.3"), global_values={"variant": variant})
    documents = render_istiod(istio)
    assert proxy_image(injector_values(documents), mesh_config(documents)) == istio.proxy_image


@pytest.mark.parametrize("release", RELEASES)
def test_the_cni_node_agent_captures_for_ambient(release: str) -> None:
    istio = ambient(DEV, release)
    documents = render_cni(istio, release)
    config = find(documents, "ConfigMap", "istio-cni-config")["data"]
    assert config["AMBIENT_ENABLED"] == "true"
    assert {"istio-cni-ambient"} <= {d["metadata"]["name"] for d in documents if d["kind"] == "ClusterRole"}
    # The exclusions hold in ambient mode too.
    assert "istio-system" in config["EXCLUDE_NAMESPACES"]
    off = find(render_cni(dataclasses.replace(DEV, version=release), release), "ConfigMap", "istio-cni-config")
    assert off["data"]["AMBIENT_ENABLED"] == "false"


@pytest.mark.parametrize("release", RELEASES)
def test_ztunnel_is_a_daemonset_of_the_release_talking_to_the_default_istiod(release: str) -> None:
    istio = ambient(DEV, release)
    daemonset = find(render_ztunnel(istio), "DaemonSet", "ztunnel")
    assert daemonset["metadata"]["namespace"] == ISTIO_NAMESPACE
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"docker.io/istio/ztunnel:{release}"
    env = container_env(container)
    assert env["CA_ADDRESS"] == env["XDS_ADDRESS"] == "istiod.istio-system.svc:15012"
    assert daemonset["spec"]["updateStrategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_during_a_canary_ztunnel_runs_the_new_release_against_the_canary_istiod() -> None:
    istio = dataclasses.replace(ambient(DEV, "1.29.6"), canary=CanarySettings(version="1.30.3"))
    (container,) = find(render_ztunnel(istio), "DaemonSet", "ztunnel")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "docker.io/istio/ztunnel:1.30.3"
    assert container_env(container)["XDS_ADDRESS"] == "istiod-1-30-3.istio-system.svc:15012"


@pytest.mark.parametrize("release", RELEASES)
def test_a_private_registry_and_pull_secret_reach_ztunnel(release: str) -> None:
    istio = ambient(PROD, release)
    documents = render_ztunnel(istio)
    (container,) = find(documents, "DaemonSet", "ztunnel")["spec"]["template"]["spec"]["containers"]
    # The configured variant is global: ztunnel's image follows it like every other Istio image.
    assert container["image"] == f"myregistry.azurecr.io/istio/ztunnel:{release}-distroless"
    assert {"name": "acr-pull"} in find(documents, "ServiceAccount", "ztunnel")["imagePullSecrets"]
