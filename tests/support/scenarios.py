"""The Istio settings the tests evaluate, from the smallest stack to a production-like one: one place."""

from __future__ import annotations

from collections.abc import Callable

from settings.model import SYSTEM_NAMESPACES, AddonSettings, CniSettings, GatewaySettings, IstioSettings, MeshSettings
from settings.parse import parse_istio
from settings.stack import ROOT
from tests.support.reference import SEED_RELATIVE

ALL_ADDONS = AddonSettings(grafana=True, tracing=True, kiali=True, prometheus=True)
DEV = IstioSettings(addons=ALL_ADDONS)
PROD = IstioSettings(
    version="1.29.2",
    cni=CniSettings(exclude_namespaces=(*SYSTEM_NAMESPACES, "gatekeeper-system"), chained=True, repair=True),
    addons=AddonSettings(prometheus=True, kiali=True),
    gateway=GatewaySettings(
        name="edge",
        namespace="edge-ingress",
        service_annotations={"service.beta.kubernetes.io/azure-pip-name": "pip-edge-prod"},
    ),
    pilot={
        "replicaCount": 2,
        "autoscaleMin": 2,
        "autoscaleMax": 6,
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
        "env": {"PILOT_ENABLE_STATUS": "true"},
        "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        "sidecarInjectorWebhook": {"rewriteAppHTTPProbe": True},
    },
    global_values={
        "hub": "myregistry.azurecr.io/istio",
        "variant": "distroless",
        "imagePullSecrets": ["acr-pull"],
        "logAsJson": True,
        "proxy": {"logLevel": "info", "resources": {"requests": {"cpu": "50m"}}},
        "defaultPodDisruptionBudget": {"enabled": True},
        "priorityClassName": "system-cluster-critical",
    },
    mesh_config={"accessLogFile": "/dev/stdout", "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}},
)
CNI_DISABLED = IstioSettings(cni=CniSettings(enabled=False))
MINIMAL = IstioSettings(gateway=GatewaySettings(enabled=False))
MESH = MeshSettings(("shop", "payments"))


def operator_file_settings() -> IstioSettings:
    """The article's IstioOperator file, read as the stack's Istio settings."""
    return parse_istio({"operatorFile": SEED_RELATIVE}, ROOT)


ISTIO_SCENARIOS: dict[str, Callable[[], IstioSettings]] = {
    "dev": lambda: DEV,
    "prod": lambda: PROD,
    "cni-disabled": lambda: CNI_DISABLED,
    "operator-file": operator_file_settings,
    "minimal": lambda: MINIMAL,
}
