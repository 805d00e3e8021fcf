"""`aks-istio:istio.ambient`: read from the stack, refused without the CNI, and the proxy image it implies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from settings.model import AmbientSettings, CniSettings, IstioSettings
from settings.operator_file import istio_config_from_operator, operator_manifest
from settings.parse import parse_istio
from settings.rules import ConfigError
from tests.support.scenarios import MESH, PROD

AMBIENT = IstioSettings(ambient=AmbientSettings(enabled=True))


def test_ambient_is_off_unless_enabled() -> None:
    assert parse_istio({}, Path.cwd()).ambient.enabled is False
    assert parse_istio({"ambient": {}}, Path.cwd()).ambient.enabled is False
    assert parse_istio({"ambient": {"enabled": True}}, Path.cwd()).ambient.enabled is True


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"ambient": {"enabled": "yes"}},
            r"^aks-istio:istio\.ambient\.enabled: 'yes' is not allowed; expected true or false$",
        ),
        (
            {"ambient": {"enable": True}},
            r"^aks-istio:istio\.ambient\.enable: unknown setting; did you mean 'enabled'\?",
        ),
        ({"ambient": True}, r"^aks-istio:istio\.ambient: True is not allowed; expected an object"),
    ],
)
def test_a_mistyped_ambient_setting_is_refused_naming_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_istio(raw, Path.cwd())


def test_ambient_without_the_cni_is_one_clear_error() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_istio({"ambient": {"enabled": True}, "cni": {"enabled": False}}, Path.cwd())
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        "aks-istio:istio.ambient.enabled: true is not allowed with aks-istio:istio.cni.enabled false;"
    )


@pytest.mark.parametrize("version", ["1.29.6", "1.30.3"])
def test_ambient_turns_the_declared_proxy_image_distroless(version: str) -> None:
    """The charts' ambient profile sets `global.variant: distroless`: the rollout must expect that image."""
    sidecar = IstioSettings(version=version)
    ambient = dataclasses.replace(AMBIENT, version=version)
    assert sidecar.proxy_image == f"docker.io/istio/proxyv2:{version}"
    assert ambient.proxy_image == f"docker.io/istio/proxyv2:{version}-distroless"


def test_a_variant_the_user_sets_wins_over_the_ambient_profile() -> None:
    assert dataclasses.replace(AMBIENT, global_values={"variant": "debug"}).proxy_image.endswith(":1.30.3-debug")
    assert dataclasses.replace(AMBIENT, global_values={"variant": "default"}).proxy_image.endswith(":1.30.3")
    image_type = {"defaultConfig": {"image": {"imageType": "default"}}}
    assert dataclasses.replace(AMBIENT, mesh_config=image_type).proxy_image.endswith(":1.30.3")
    # Already distroless (prod): the image stays what it was.
    assert dataclasses.replace(PROD, ambient=AmbientSettings(True)).proxy_image == PROD.proxy_image


def test_the_canary_proxy_follows_the_ambient_profile_too() -> None:
    istio = parse_istio(
        {"version": "1.29.6", "canary": {"version": "1.30.3"}, "ambient": {"enabled": True}}, Path.cwd()
    )
    assert istio.canary_proxy_image == "docker.io/istio/proxyv2:1.30.3-distroless"


def test_the_operator_manifest_says_ambient_and_reads_back_as_ambient() -> None:
    manifest = operator_manifest(AMBIENT, MESH)
    document = yaml.safe_load(manifest)
    assert document["spec"]["profile"] == "ambient"
    assert istio_config_from_operator(document, "x.yaml")["ambient"] == {"enabled": True}
    assert yaml.safe_load(operator_manifest(IstioSettings(), MESH))["spec"]["profile"] == "default"


def test_ambient_with_the_cni_off_via_the_model_is_refused_too() -> None:
    with pytest.raises(ConfigError, match=r"istio\.ambient\.enabled: true is not allowed"):
        IstioSettings(cni=CniSettings(enabled=False), ambient=AmbientSettings(enabled=True))
