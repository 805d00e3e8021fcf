"""Helm values of the observability addons (Prometheus, Jaeger, Grafana, Kiali), wired to each other.

Pure functions: no Pulumi, no I/O. The charts are pinned upstream charts; their values are not checked
against chart defaults (the tests hold only Istio's charts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from settings.model import ISTIO_NAMESPACE, IstioSettings

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
    # Kiali finds istiod in istio-system by itself; `istio.root_namespace` is ignored since Kiali 2.16.
    external: dict[str, Any] = {
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
