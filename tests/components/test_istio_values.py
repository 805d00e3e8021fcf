"""Helm values built from the settings, and every key they set checked against the real chart defaults."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.addon_values import JAEGER_OTLP_SERVICE, PROMETHEUS_URL, addon_charts, tracing_mesh_config
from components.istio_values import GLOBAL_KEYS_READ_BY_CHART, base_values, cni_values, gateway_values, istiod_values
from settings.istio_releases import check_supported_version
from settings.model import SYSTEM_NAMESPACES, AddonSettings, CniSettings, IstioSettings
from settings.rules import ConfigError
from tests.support.chart_keys import CHART_DIRS, CHART_KEY_RULES, defaults, unknown_chart_keys
from tests.support.reference import CHARTS
from tests.support.scenarios import DEV, ISTIO_SCENARIOS, PROD


def all_values(istio: IstioSettings) -> dict[str, dict[str, Any]]:
    return {
        "base": base_values(istio),
        "cni": cni_values(istio),
        "istiod": istiod_values(istio, tracing_mesh_config(istio)),
        "gateway": gateway_values(istio),
    }


SCENARIOS = {name: build for name, build in ISTIO_SCENARIOS.items() if name != "minimal"}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("chart", CHART_DIRS)
def test_every_key_set_exists_in_the_reference_chart(scenario: str, chart: str) -> None:
    values = all_values(SCENARIOS[scenario]())[chart]
    assert unknown_chart_keys(values, defaults(chart), CHART_KEY_RULES[chart]) == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_gateway_values_pass_the_gateway_charts_json_schema(scenario: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((CHARTS / "gateway/values.schema.json").read_text())
    jsonschema.validate(gateway_values(SCENARIOS[scenario]()), schema)


@pytest.mark.parametrize("chart", ["base", "cni", "gateway"])
def test_the_global_keys_forwarded_to_each_chart_exist_in_it(chart: str) -> None:
    assert GLOBAL_KEYS_READ_BY_CHART[chart] <= set(defaults(chart)["global"])


def test_cni_values_always_list_the_exclusions_and_leave_chart_defaults_alone() -> None:
    assert cni_values(IstioSettings()) == {"excludeNamespaces": list(SYSTEM_NAMESPACES)}
    prod = cni_values(PROD)
    assert prod["excludeNamespaces"] == [*SYSTEM_NAMESPACES, "gatekeeper-system"]
    assert prod["chained"] is True and prod["repair"] == {"enabled": True}
    # Only the global keys the cni chart reads reach it: the image hub/variant, not istiod's proxy settings.
    assert prod["global"] == {
        "hub": "myregistry.azurecr.io/istio",
        "variant": "distroless",
        "imagePullSecrets": ["acr-pull"],
        "logAsJson": True,
    }
    # The chart's own default (kube-system only) would leave istio-system's pods to the plugin.
    assert defaults("cni")["excludeNamespaces"] == ["kube-system"]


@pytest.mark.parametrize("enabled", [True, False])
def test_istiod_injects_for_the_cni_exactly_when_it_is_installed(enabled: bool) -> None:
    values = istiod_values(IstioSettings(cni=CniSettings(enabled=enabled)))
    assert values == {"pilot": {"cni": {"enabled": enabled}}}


def test_istiod_gets_the_pilot_global_and_mesh_config_extras() -> None:
    values = istiod_values(PROD)
    assert values["pilot"]["cni"] == {"enabled": True}
    assert values["pilot"]["replicaCount"] == 2
    assert values["global"]["proxy"]["logLevel"] == "info"
    assert values["meshConfig"] == dict(PROD.mesh_config)


def test_a_pilot_cni_extra_that_contradicts_the_cni_setting_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"pilot\.cni\.enabled.*must match.*cni\.enabled"):
        IstioSettings(cni=CniSettings(enabled=True), pilot={"cni": {"enabled": False}})
    agreeing = IstioSettings(pilot={"cni": {"enabled": True, "provider": "multus"}})
    assert istiod_values(agreeing)["pilot"]["cni"] == {"enabled": True, "provider": "multus"}


def test_tracing_wires_istiod_to_the_jaeger_addon() -> None:
    mesh_config = istiod_values(DEV, tracing_mesh_config(DEV))["meshConfig"]
    assert mesh_config["enableTracing"] is True
    assert mesh_config["defaultProviders"] == {"tracing": ["jaeger"]}
    (provider,) = mesh_config["extensionProviders"]
    assert provider == {"name": "jaeger", "opentelemetry": {"service": JAEGER_OTLP_SERVICE, "port": 4317}}
    assert tracing_mesh_config(IstioSettings()) == {}


def test_configured_mesh_config_wins_but_keeps_the_wired_provider() -> None:
    own = {"name": "otel", "opentelemetry": {"service": "otel.observability.svc.cluster.local", "port": 4317}}
    istio = IstioSettings(
        addons=AddonSettings(tracing=True),
        mesh_config={"enableTracing": False, "extensionProviders": [own]},
    )
    mesh_config = istiod_values(istio, tracing_mesh_config(istio))["meshConfig"]
    assert mesh_config["enableTracing"] is False
    assert [p["name"] for p in mesh_config["extensionProviders"]] == ["otel", "jaeger"]


def test_gateway_keeps_the_conventional_selector_label() -> None:
    assert gateway_values(PROD) == {
        "labels": {"app": "edge", "istio": "ingressgateway"},
        "service": {"annotations": {"service.beta.kubernetes.io/azure-pip-name": "pip-edge-prod"}},
    }


def test_base_gets_only_the_global_keys_it_reads() -> None:
    assert base_values(IstioSettings()) == {}
    assert base_values(PROD) == {"global": {"imagePullSecrets": ["acr-pull"]}}


@pytest.mark.parametrize("version", ["1.24.0", "1.30.3", "1.31.0", "2.0.0"])
def test_supported_versions(version: str) -> None:
    check_supported_version(version)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("1.23.6", "1.24 or newer"),
        ("1.5.0", "1.24 or newer"),
        ("1.30", "MAJOR.MINOR.PATCH"),
        ("latest", "MAJOR"),
    ],
)
def test_unsupported_versions_fail_clearly(version: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_supported_version(version)


def test_addons_are_pinned_releases_in_install_order() -> None:
    charts = addon_charts(DEV)
    assert [(c.addon, c.chart) for c in charts] == [
        ("prometheus", "prometheus"),
        ("tracing", "jaeger"),
        ("grafana", "grafana"),
        ("kiali", "kiali-server"),
    ]
    for chart in charts:
        assert chart.repository.startswith("https://")
        assert chart.version.count(".") == 2 and all(part.isdigit() for part in chart.version.split("."))
    assert addon_charts(IstioSettings()) == []


def test_addons_are_wired_together() -> None:
    by_addon = {c.addon: c.values for c in addon_charts(DEV)}
    datasource = by_addon["grafana"]["datasources"]["datasources.yaml"]["datasources"][0]
    assert (datasource["type"], datasource["url"]) == ("prometheus", PROMETHEUS_URL)
    kiali = by_addon["kiali"]["external_services"]
    assert "istio" not in kiali, "istio.root_namespace is ignored since Kiali 2.16: not written"
    assert kiali["prometheus"]["url"] == PROMETHEUS_URL
    assert kiali["tracing"]["enabled"] is True and kiali["tracing"]["internal_url"].startswith("http://jaeger.")
    assert kiali["grafana"]["enabled"] is True
    assert by_addon["prometheus"]["server"]["fullnameOverride"] == "prometheus"
    for values in by_addon.values():
        assert "sidecar.istio.io/inject" in json.dumps(values)


def test_kiali_without_tracing_or_grafana_does_not_look_for_them() -> None:
    (kiali,) = addon_charts(IstioSettings(addons=AddonSettings(kiali=True)))
    assert kiali.values["external_services"]["tracing"] == {"enabled": False}
    assert kiali.values["external_services"]["grafana"] == {"enabled": False}


def test_grafana_without_prometheus_has_no_datasource() -> None:
    (grafana,) = addon_charts(IstioSettings(addons=AddonSettings(grafana=True)))
    assert "datasources" not in grafana.values


def test_the_release_names_a_gateway_may_not_take_are_the_ones_the_program_uses() -> None:
    from components.addon_values import addon_charts
    from settings.model import OTHER_RELEASE_NAMES

    everything = IstioSettings(addons=AddonSettings(grafana=True, tracing=True, kiali=True, prometheus=True))
    assert {chart.release_name for chart in addon_charts(everything)} | {
        "istio-base",
        "istio-cni",
        "istiod",
        "ztunnel",
    } == set(OTHER_RELEASE_NAMES)
