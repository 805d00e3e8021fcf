"""Helm values built from the settings, and every key they set checked against the real chart defaults."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
import yaml

from components.addon_values import JAEGER_OTLP_SERVICE, PROMETHEUS_URL, addon_charts, tracing_mesh_config
from components.istio_values import base_values, cni_values, gateway_values, istiod_values
from settings.chart_keys import (
    CHART_KEY_RULES,
    GLOBAL_KEYS_READ_BY_CHART,
    ISTIO_CHART_KEYS_FILE,
    chart_defaults,
    istio_chart_key_data,
    istio_chart_keys,
    unknown_chart_keys,
    unknown_extra_keys,
)
from settings.model import SYSTEM_NAMESPACES, AddonSettings, CniSettings, IstioSettings
from settings.rules import ConfigError
from settings.versions import check_supported_version
from tests.support.reference import CHARTS, INJECTION_TEMPLATE
from tests.support.scenarios import DEV, ISTIO_SCENARIOS, PROD

CHART_DIRS = {"base": "base", "cni": "istio-cni", "istiod": "istiod", "gateway": "gateway"}


@cache
def defaults(chart: str) -> dict[str, Any]:
    document = yaml.safe_load((CHARTS / CHART_DIRS[chart] / "values.yaml").read_text())
    return chart_defaults(document)


def regenerated_chart_keys() -> dict[str, Any]:
    documents = {
        chart: yaml.safe_load((CHARTS / path / "values.yaml").read_text()) for chart, path in CHART_DIRS.items()
    }
    injection_template = INJECTION_TEMPLATE.read_text()
    # The charts' own Chart.yaml says 1.0.0 (stamped at release); the reference directory names the release.
    return istio_chart_key_data(documents, injection_template, CHARTS.parent.name.removeprefix("istio-"))


def write_istio_chart_keys() -> None:
    """Regenerate the vendored file after updating the reference charts."""
    ISTIO_CHART_KEYS_FILE.write_text(json.dumps(regenerated_chart_keys(), indent=1, sort_keys=True) + "\n")


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


def test_a_misspelled_key_is_caught_at_any_depth() -> None:
    rules = CHART_KEY_RULES["istiod"]
    assert unknown_chart_keys({"pilot": {"cni": {"enabeld": True}}}, defaults("istiod"), rules) == ["pilot.cni.enabeld"]
    assert unknown_chart_keys({"global": {"proxy": {"loglevel": "info"}}}, defaults("istiod"), rules) == [
        "global.proxy.loglevel"
    ]
    assert unknown_chart_keys({"excludeNamespace": ["x"]}, defaults("cni"), CHART_KEY_RULES["cni"]) == [
        "excludeNamespace"
    ]
    # The pre-1.24 nesting reads as a descoped prefix: `cni.excludeNamespaces` is `excludeNamespaces`.
    assert unknown_chart_keys({"cni": {"exclude": []}}, defaults("cni"), CHART_KEY_RULES["cni"]) == ["cni.exclude"]
    assert unknown_chart_keys({"repair": {"enabled": {"x": 1}}}, defaults("cni"), CHART_KEY_RULES["cni"]) == [
        "repair.enabled (the chart's default is not a map)"
    ]


def test_free_form_and_empty_defaults_accept_any_key() -> None:
    values = {
        "meshConfig": {"anything": {"at": "all"}},
        "pilot": {"env": {"ANY_VARIABLE": "1"}, "nodeSelector": {"agentpool": "system"}},
    }
    assert unknown_chart_keys(values, defaults("istiod"), CHART_KEY_RULES["istiod"]) == []


def test_the_wrapper_is_lifted_and_top_level_keys_kept() -> None:
    document = {"_internal_defaults_do_not_set": {"a": {"b": 1}}, "c": 2}
    assert chart_defaults(document) == {"a": {"b": 1}, "c": 2}


@pytest.mark.parametrize("chart", ["base", "cni", "gateway"])
def test_the_global_keys_forwarded_to_each_chart_exist_in_it(chart: str) -> None:
    assert GLOBAL_KEYS_READ_BY_CHART[chart] <= set(defaults(chart)["global"])


def test_the_vendored_chart_keys_are_those_of_the_reference_charts() -> None:
    vendored = json.loads(ISTIO_CHART_KEYS_FILE.read_text())
    assert vendored == regenerated_chart_keys(), (
        "regenerate: .venv/bin/python -c "
        "'from tests.components.test_istio_values import write_istio_chart_keys as w; w()'"
    )
    assert vendored["chartVersion"] == "1.30.3"


def test_misspelled_extra_keys_are_reported_with_their_config_path() -> None:
    istio = dict(
        pilot={
            "nonsense": 1,
            "resources": {"requests": {"cpu": "1"}},
            "autoscaleMin": {"x": 1},
            "cni": {"enabeld": True},
        },
        global_values={"mtls": {"enabled": True}, "proxy": {"loglevel": "debug"}, "hub": "a.io"},
    )
    problems = unknown_extra_keys(istio["pilot"], istio["global_values"])
    assert [problem.partition(": ")[0] for problem in problems] == [
        "aks-istio:istio.pilot.nonsense",
        "aks-istio:istio.pilot.autoscaleMin",
        "aks-istio:istio.pilot.cni.enabeld",
        "aks-istio:istio.global.mtls",
        "aks-istio:istio.global.proxy.loglevel",
    ]
    assert problems[0] == (
        "aks-istio:istio.pilot.nonsense: not a key of the Istio 1.30.3 chart (istiod); Helm would silently ignore it"
    )
    assert problems[1] == (
        "aks-istio:istio.pilot.autoscaleMin: a map is not allowed; "
        "in the Istio 1.30.3 chart (istiod) it is a single value"
    )
    assert "global.mtls: not a key of the Istio 1.30.3 chart (global values of" in problems[3]
    with pytest.raises(ConfigError, match=r"aks-istio:istio\.pilot\.nonsense: not a key"):
        IstioSettings(**istio)


def test_real_extra_keys_are_not_reported() -> None:
    istio = IstioSettings(
        pilot={
            "resources": {"requests": {"cpu": "1", "ephemeral-storage": "1Gi"}},
            "env": {"FOO": "bar"},
            "nodeSelector": {"agentpool": "system"},
            "cni": {"enabled": True, "provider": "multus"},
            "sidecarInjectorWebhook": {"rewriteAppHTTPProbe": True},
            "meshConfig": {"accessLogFile": "/dev/stdout"},
            "pdb": {"maxUnavailable": 1},
        },
        global_values={
            "hub": "myregistry.azurecr.io/istio",
            "variant": "distroless",
            "logging": {"level": "default:debug"},
            "proxy": {
                "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "1Gi"}},
                # Read by the injection template without a default in values.yaml.
                "holdApplicationUntilProxyStarts": True,
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
            },
            "defaultResources": {"requests": {"memory": "64Mi"}},
            # Only the base chart has it (forwarded there).
            "enableReaderRBAC": False,
            "podDNSSearchNamespaces": ["global"],
        },
    )
    assert unknown_extra_keys(istio.pilot, istio.global_values) == []
    assert unknown_extra_keys(PROD.pilot, PROD.global_values) == []


def test_the_extras_check_reads_the_vendored_file_once() -> None:
    assert istio_chart_keys() is istio_chart_keys()


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
    assert {chart.release_name for chart in addon_charts(everything)} | {"istio-base", "istio-cni", "istiod"} == set(
        OTHER_RELEASE_NAMES
    )
