"""Helm values for the Istio charts and the observability addons, built from the typed settings.

Pure functions: no Pulumi, and no I/O beyond reading the chart keys vendored beside this module. The
component passes their results to `helm.v3.Release`, and the tests check every key path the program
sets against the charts' own default values (`unknown_chart_keys`), so a renamed or mistyped key
fails a test instead of being silently ignored by Helm. The configured extras (`pilot.*`,
`global.*`) are checked the same way at run time (`unknown_extra_keys`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from components.settings import ISTIO_NAMESPACE, CniSettings, ConfigError, IstioSettings

ISTIO_CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
MINIMUM_ISTIO_VERSION = (1, 24)
"""Since 1.24 the cni chart's keys are flat (`excludeNamespaces`); before, they sat under `cni.`."""

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def istio_release(version: Any) -> tuple[int, int, int] | None:
    """`version` as (major, minor, patch) when it is a plain release MAJOR.MINOR.PATCH, else None."""
    match = _VERSION.match(version) if isinstance(version, str) else None
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def check_supported_version(version: Any, key: str = "aks-istio:istio.version") -> str:
    """`version` if it is an Istio release 1.24 or newer; otherwise a ConfigError naming `key`."""
    shown = f"'{version}'" if isinstance(version, str) else repr(version)
    release = istio_release(version)
    if release is None:
        raise ConfigError(f"{key}: {shown} is not allowed; expected a release MAJOR.MINOR.PATCH, e.g. 1.30.3")
    if release[:2] < MINIMUM_ISTIO_VERSION:
        raise ConfigError(
            f"{key}: {shown} is not supported; expected Istio 1.24 or newer "
            "(older cni charts nest their keys under `cni.`, which this program does not write)"
        )
    return str(version)


# --- Istio charts -------------------------------------------------------------------------------

# `global.*` is shared by name across the Istio charts, but each chart reads only part of it. istiod
# gets every configured global key; the other charts get the keys they read (from their 1.30
# defaults), so a value such as `global.hub` reaches the CNI DaemonSet's image as well.
GLOBAL_KEYS_READ_BY_CHART: Mapping[str, frozenset[str]] = {
    "base": frozenset({"imagePullSecrets", "istioNamespace", "resourceScope", "enableReaderRBAC"}),
    "cni": frozenset(
        {
            "hub",
            "tag",
            "variant",
            "imagePullPolicy",
            "imagePullSecrets",
            "logging",
            "logAsJson",
            "networkPolicy",
            "defaultResources",
            "nativeNftables",
            "resourceScope",
        }
    ),
    "gateway": frozenset({"networkPolicy"}),
}


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, maps merged key by key (as Helm merges values)."""
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _global_for(chart: str, istio: IstioSettings) -> dict[str, Any]:
    keys = GLOBAL_KEYS_READ_BY_CHART[chart]
    return {key: copy.deepcopy(value) for key, value in istio.global_values.items() if key in keys}


def _with_global(values: dict[str, Any], global_values: Mapping[str, Any]) -> dict[str, Any]:
    if global_values:
        values["global"] = dict(global_values)
    return values


def base_values(istio: IstioSettings) -> dict[str, Any]:
    """The `base` chart (CRDs and cluster roles): only shared global values."""
    return _with_global({}, _global_for("base", istio))


def cni_plugin_values(cni: CniSettings) -> dict[str, Any]:
    """The CNI plugin's own values: the same keys in the cni chart and in an IstioOperator's `values.cni`."""
    # Always explicit: since 1.22 the chart's own default excludes only kube-system.
    values: dict[str, Any] = {"excludeNamespaces": list(cni.exclude_namespaces)}
    if cni.chained is not None:
        values["chained"] = cni.chained
    if cni.repair is not None:
        values["repair"] = {"enabled": cni.repair}
    return values


def cni_values(istio: IstioSettings) -> dict[str, Any]:
    """The `cni` chart (the node agent DaemonSet). Flat keys: Istio 1.24 and newer."""
    return _with_global(cni_plugin_values(istio.cni), _global_for("cni", istio))


def pilot_cni_conflict(istio: IstioSettings) -> str | None:
    """Why `pilot.cni.enabled` given as an extra contradicts `cni.enabled`, or None if it doesn't."""
    extra_cni = istio.pilot.get("cni")
    if isinstance(extra_cni, Mapping) and "enabled" in extra_cni and extra_cni["enabled"] != istio.cni.enabled:
        return (
            f"aks-istio:istio.pilot.cni.enabled: {extra_cni['enabled']!r} is not allowed; it must match "
            f"aks-istio:istio.cni.enabled ({istio.cni.enabled!r}), which sets it (leave it out)"
        )
    return None


def istiod_values(istio: IstioSettings, mesh_config_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `istiod` chart: `pilot.cni.enabled` follows the CNI setting, then the configured extras.

    `mesh_config_extra` is wiring the program adds (the tracing provider); the configured
    `meshConfig` wins over it key by key.
    """
    conflict = pilot_cni_conflict(istio)
    if conflict:
        raise ConfigError(conflict)
    # Without pilot.cni.enabled the injector keeps adding istio-init (NET_ADMIN/NET_RAW) even
    # though the node agent already redirects traffic.
    pilot = _deep_merge(istio.pilot, {"cni": {"enabled": istio.cni.enabled}})
    values: dict[str, Any] = {"pilot": pilot}
    mesh_config = _merge_mesh_config(mesh_config_extra or {}, istio.mesh_config)
    if mesh_config:
        values["meshConfig"] = mesh_config
    return _with_global(values, istio.global_values)


def _merge_mesh_config(wiring: Mapping[str, Any], configured: Mapping[str, Any]) -> dict[str, Any]:
    merged = _deep_merge(wiring, configured)
    # A list is replaced wholesale by Helm; keep the program's providers beside the configured ones
    # unless a configured provider already uses the same name.
    wired_providers = wiring.get("extensionProviders")
    configured_providers = configured.get("extensionProviders")
    if isinstance(wired_providers, list) and isinstance(configured_providers, list):
        names = {p.get("name") for p in configured_providers if isinstance(p, Mapping)}
        merged["extensionProviders"] = copy.deepcopy(configured_providers) + [
            copy.deepcopy(p) for p in wired_providers if p.get("name") not in names
        ]
    return merged


def gateway_values(istio: IstioSettings) -> dict[str, Any]:
    """The `gateway` chart: an ingress gateway Deployment, named by its release, in its own namespace."""
    # `istio: ingressgateway` is the selector every Gateway resource written for an istioctl install
    # uses; keeping it means those resources select this gateway whatever its release name is.
    values: dict[str, Any] = {"labels": {"app": istio.gateway.name, "istio": "ingressgateway"}}
    if istio.gateway.service_annotations:
        values["service"] = {"annotations": dict(istio.gateway.service_annotations)}
    return _with_global(values, _global_for("gateway", istio))


# --- Addons -------------------------------------------------------------------------------------

SERVICE_DOMAIN = f"{ISTIO_NAMESPACE}.svc.cluster.local"
PROMETHEUS_URL = f"http://prometheus.{ISTIO_NAMESPACE}:9090"
GRAFANA_URL = f"http://grafana.{ISTIO_NAMESPACE}:3000"
JAEGER_QUERY_GRPC_URL = f"http://jaeger.{ISTIO_NAMESPACE}:16685"
JAEGER_OTLP_SERVICE = f"jaeger.{SERVICE_DOMAIN}"
JAEGER_OTLP_GRPC_PORT = 4317
TRACING_PROVIDER = "jaeger"

# Addon pods stay out of the mesh, as in Istio's own samples: Prometheus scrapes sidecars over
# plain HTTP, and none of them needs mTLS identities.
_NO_SIDECAR = {"sidecar.istio.io/inject": "false"}


@dataclass(frozen=True)
class AddonChart:
    """One addon as a Helm release: where the chart comes from and the values it gets."""

    addon: str
    """The `aks-istio:istio.addons` key that enables it."""
    release_name: str
    chart: str
    repository: str
    version: str
    values: Mapping[str, Any] = field(default_factory=dict)


# Pinned chart versions (the charts Istio's samples/addons are rendered from; Jaeger as the tracing
# backend, like Istio's samples). Grafana's chart moved to grafana-community in 2026; the old
# grafana.github.io repository only keeps deprecated versions.
PROMETHEUS_CHART = ("prometheus", "https://prometheus-community.github.io/helm-charts", "29.27.0")
JAEGER_CHART = ("jaeger", "https://jaegertracing.github.io/helm-charts", "4.11.1")
GRAFANA_CHART = ("grafana", "https://grafana-community.github.io/helm-charts", "12.11.1")
KIALI_CHART = ("kiali-server", "https://kiali.org/helm-charts", "2.27.0")


def prometheus_values() -> dict[str, Any]:
    # The chart's default `kubernetes-pods` job scrapes pods annotated `prometheus.io/scrape`,
    # which istiod's merged metrics (meshConfig.enablePrometheusMerge, on by default) puts on
    # every injected pod; the node-level exporters are not needed for the mesh dashboards.
    return {
        "alertmanager": {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "kube-state-metrics": {"enabled": False},
        "prometheus-node-exporter": {"enabled": False},
        "server": {
            "fullnameOverride": "prometheus",
            "podLabels": dict(_NO_SIDECAR),
            "service": {"servicePort": 9090},
            "global": {"scrape_interval": "15s"},
            "persistentVolume": {"enabled": False},
        },
    }


def jaeger_values() -> dict[str, Any]:
    # All-in-one Jaeger v2 with in-memory storage: receives OTLP from the sidecars on 4317 and
    # serves queries on 16686 (HTTP) and 16685 (gRPC, what Kiali uses).
    return {"fullnameOverride": "jaeger", "jaeger": {"podLabels": dict(_NO_SIDECAR)}}


def grafana_values(addons_prometheus: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "fullnameOverride": "grafana",
        "podLabels": dict(_NO_SIDECAR),
        "service": {"port": 3000},
        "testFramework": {"enabled": False},
    }
    if addons_prometheus:
        values["datasources"] = {
            "datasources.yaml": {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
                        "type": "prometheus",
                        "orgId": 1,
                        "url": PROMETHEUS_URL,
                        "access": "proxy",
                        "isDefault": True,
                        "jsonData": {"timeInterval": "15s"},
                        "editable": False,
                    }
                ],
            }
        }
    return values


def kiali_values(istio: IstioSettings) -> dict[str, Any]:
    addons = istio.addons
    external: dict[str, Any] = {
        "istio": {"root_namespace": ISTIO_NAMESPACE},
        "prometheus": {"url": PROMETHEUS_URL},
        # Kiali refuses to start when tracing is enabled but unreachable, so it follows the addon.
        "tracing": {"enabled": False},
        "grafana": {"enabled": addons.grafana},
    }
    if addons.tracing:
        external["tracing"] = {
            "enabled": True,
            "provider": "jaeger",
            "use_grpc": True,
            "internal_url": JAEGER_QUERY_GRPC_URL,
        }
    if addons.grafana:
        external["grafana"] = {"enabled": True, "internal_url": GRAFANA_URL}
    return {
        "deployment": {"pod_labels": dict(_NO_SIDECAR), "ingress": {"enabled": False}},
        "external_services": external,
    }


def tracing_mesh_config(istio: IstioSettings) -> dict[str, Any]:
    """istiod `meshConfig` that sends the sidecars' spans to the Jaeger addon (empty without it)."""
    if not istio.addons.tracing:
        return {}
    return {
        "enableTracing": True,
        # The legacy per-proxy Zipkin settings would otherwise stay in force beside the provider.
        "defaultConfig": {"tracing": {}},
        "extensionProviders": [
            {
                "name": TRACING_PROVIDER,
                "opentelemetry": {"service": JAEGER_OTLP_SERVICE, "port": JAEGER_OTLP_GRPC_PORT},
            }
        ],
        # Mesh-wide default, so no Telemetry resource is needed to turn tracing on.
        "defaultProviders": {"tracing": [TRACING_PROVIDER]},
    }


def addon_charts(istio: IstioSettings) -> list[AddonChart]:
    """The enabled addons, in install order: data sources before the UIs that read them."""
    addons = istio.addons
    charts: list[AddonChart] = []
    if addons.prometheus:
        charts.append(AddonChart("prometheus", "prometheus", *PROMETHEUS_CHART, prometheus_values()))
    if addons.tracing:
        charts.append(AddonChart("tracing", "jaeger", *JAEGER_CHART, jaeger_values()))
    if addons.grafana:
        charts.append(AddonChart("grafana", "grafana", *GRAFANA_CHART, grafana_values(addons.prometheus)))
    if addons.kiali:
        charts.append(AddonChart("kiali", "kiali", *KIALI_CHART, kiali_values(istio)))
    return charts


# --- Checking keys against a chart's defaults ---------------------------------------------------

INTERNAL_DEFAULTS_KEY = "_internal_defaults_do_not_set"


@dataclass(frozen=True)
class ChartKeyRules:
    """How a chart reads its values beyond a plain lookup in its defaults."""

    descoped: Collection[str] = ()
    """Prefixes the chart copies to the top level (`pilot.X` is read as `X` by istiod)."""
    free_form: Collection[str] = ()
    """Top-level keys whose content the chart passes through unchecked (istiod's `meshConfig`, label
    maps whose defaults hold an example entry)."""


CHART_KEY_RULES: Mapping[str, ChartKeyRules] = {
    "base": ChartKeyRules(),
    "cni": ChartKeyRules(descoped=("cni",)),
    "istiod": ChartKeyRules(descoped=("pilot",), free_form=("meshConfig",)),
    "gateway": ChartKeyRules(free_form=("labels", "annotations", "podAnnotations")),
}


def chart_defaults(values_document: Mapping[str, Any]) -> dict[str, Any]:
    """A chart's default values as users address them: the internal wrapper lifted to the top level."""
    lifted = {key: value for key, value in values_document.items() if key != INTERNAL_DEFAULTS_KEY}
    wrapped = values_document.get(INTERNAL_DEFAULTS_KEY)
    if isinstance(wrapped, Mapping):
        lifted = _deep_merge(lifted, wrapped)
    return lifted


def unknown_chart_keys(values: Mapping[str, Any], defaults: Mapping[str, Any], rules: ChartKeyRules) -> list[str]:
    """Key paths in `values` that the chart's defaults do not have (empty: every key is known).

    A default that is an empty map or null accepts anything below it (labels, env, annotations).
    """
    unknown: list[_UnknownKey] = []
    for key, value in values.items():
        if key in rules.free_form:
            continue
        if key in rules.descoped and isinstance(value, Mapping):
            unknown += [_UnknownKey(f"{key}.{u.path}", u.map_over_scalar) for u in _unknown_below(value, defaults, "")]
            continue
        unknown += _unknown_below({key: value}, defaults, "")
    return [f"{u.path} (the chart's default is not a map)" if u.map_over_scalar else u.path for u in unknown]


@dataclass(frozen=True)
class _UnknownKey:
    path: str
    map_over_scalar: bool = False
    """The key exists, but the value is a map where the chart's default is not."""


def _unknown_below(values: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str) -> list[_UnknownKey]:
    unknown: list[_UnknownKey] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in defaults:
            unknown.append(_UnknownKey(path))
            continue
        default = defaults[key]
        if default is None or (isinstance(default, Mapping) and not default):
            continue
        if isinstance(value, Mapping):
            if isinstance(default, Mapping):
                unknown += _unknown_below(value, default, f"{path}.")
            else:
                unknown.append(_UnknownKey(path, map_over_scalar=True))
    return unknown


# --- Checking the configured extras at run time -------------------------------------------------

ISTIO_CHART_KEYS_FILE = Path(__file__).with_name("istio_chart_defaults.json")
"""The `pilot` and `global` default trees of the Istio charts the tests hold (1.30), generated by
`istio_chart_key_data` and checked against those charts by a test. Every `istio.version` is checked
against these keys: a key that only a newer chart has is reported too."""

FREE_FORM_KEYS = frozenset({"resources", "defaultResources", "meshConfig"})
"""Keys whose content follows another schema (Kubernetes resource requirements, istiod's MeshConfig):
any key below them is accepted, whatever the chart's example default holds."""

DOCUMENTED_ONLY_KEYS = (
    "global.podDNSSearchNamespaces",
    "pilot.pdb.maxUnavailable",
    "pilot.base.validationFailurePolicy",
)
"""Keys istiod reads that its values.yaml only shows commented out."""

_TEMPLATE_REFERENCE = re.compile(r"\.Values\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)")


def istio_chart_key_data(
    documents: Mapping[str, Mapping[str, Any]], injection_template: str, chart_version: str
) -> dict[str, Any]:
    """The content of `ISTIO_CHART_KEYS_FILE`, from the charts' values.yaml documents (by chart name).

    `pilot` is istiod's own defaults (what `pilot.X` is read as); `global` is istiod's `global` plus
    the global keys the other charts get (`GLOBAL_KEYS_READ_BY_CHART`). Keys the sidecar injection
    template reads without a default (`global.proxy.holdApplicationUntilProxyStarts`) and the
    documented-only keys are added as free-form; so are `FREE_FORM_KEYS`.
    """
    istiod = chart_defaults(documents["istiod"])
    pilot = {key: value for key, value in istiod.items() if key != "global"}
    global_tree: dict[str, Any] = {}
    for chart, keys in GLOBAL_KEYS_READ_BY_CHART.items():
        chart_global = chart_defaults(documents[chart]).get("global", {})
        global_tree = _deep_merge(global_tree, {key: value for key, value in chart_global.items() if key in keys})
    trees = {"pilot": pilot, "global": _deep_merge(global_tree, istiod.get("global", {}))}
    references = sorted(set(_TEMPLATE_REFERENCE.findall(injection_template)))
    for dotted in [*references, *DOCUMENTED_ONLY_KEYS]:
        section, _, path = dotted.partition(".")
        if section not in trees:
            # istiod's own top level, which is what `pilot.X` is read as.
            section, path = "pilot", dotted
        if path:
            _add_free_form(trees[section], path.split("."))
    return {"chartVersion": chart_version, **{name: _open_free_form(tree) for name, tree in trees.items()}}


def _add_free_form(tree: dict[str, Any], path: list[str]) -> None:
    """Make `path` a known key: the first missing part becomes free-form (null)."""
    node = tree
    for part in path:
        if not isinstance(node, dict) or not node:
            return  # already free-form, or a leaf the template reads into
        if part not in node:
            node[part] = None
            return
        node = node[part]


def _open_free_form(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: {} if key in FREE_FORM_KEYS else _open_free_form(value) if isinstance(value, Mapping) else value
        for key, value in tree.items()
    }


@cache
def istio_chart_keys() -> Mapping[str, Any]:
    """The vendored key data (`ISTIO_CHART_KEYS_FILE`), read once."""
    data: Mapping[str, Any] = json.loads(ISTIO_CHART_KEYS_FILE.read_text())
    return data


def unknown_extra_keys(istio: IstioSettings) -> list[str]:
    """One message per configured `pilot.*` / `global.*` key the Istio charts do not have.

    Each starts with the config key path (`aks-istio:istio.pilot.nonsense: not a key of ...`).
    Helm would silently ignore such a key. The keys are those of the Istio 1.30 charts, whatever
    `istio.version` is; maps whose default is empty (`pilot.env`, `pilot.nodeSelector`) and
    `FREE_FORM_KEYS` accept any key below them.
    """
    data = istio_chart_keys()
    version = data["chartVersion"]
    sections = (
        ("pilot", istio.pilot, f"the Istio {version} chart (istiod)"),
        ("global", istio.global_values, f"the Istio {version} chart (global values of istiod, base, cni, gateway)"),
    )
    problems: list[str] = []
    for section, values, chart in sections:
        for unknown in _unknown_below(values, data[section], ""):
            key = f"aks-istio:istio.{section}.{unknown.path}"
            if unknown.map_over_scalar:
                problems.append(f"{key}: a map is not allowed; in {chart} it is a single value")
            else:
                problems.append(f"{key}: not a key of {chart}; Helm would silently ignore it")
    return problems
