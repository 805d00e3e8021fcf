"""Write the IstioOperator file equivalent to a stack's Istio settings, for people who use istioctl."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from settings.model import ISTIO_NAMESPACE, IstioSettings, MeshSettings
from settings.operator_file import ADDONS, ADDONS_ANNOTATION, API_VERSION, KIND


def operator_manifest(settings: IstioSettings, mesh: MeshSettings) -> str:
    """The IstioOperator YAML equivalent to these settings, for `istioctl install -f`.

    Reading it back with `istio_config_from_operator` gives the same settings (the Istio version
    aside: istioctl installs its own version).
    """
    cni = settings.cni
    values_cni = cni.plugin_values()
    pilot = copy.deepcopy(dict(settings.pilot))
    pilot.setdefault("cni", {})
    pilot["cni"] = {**pilot["cni"], "enabled": cni.enabled}
    values: dict[str, Any] = {"cni": values_cni, "pilot": pilot}
    if settings.global_values:
        values["global"] = copy.deepcopy(dict(settings.global_values))
    gateway = settings.gateway
    ingress_gateway: dict[str, Any] = {"name": gateway.name, "namespace": gateway.namespace, "enabled": gateway.enabled}
    if gateway.service_annotations:
        ingress_gateway["k8s"] = {"serviceAnnotations": dict(gateway.service_annotations)}
    spec: dict[str, Any] = {
        "profile": "default",
        "components": {
            "cni": {"enabled": cni.enabled, "namespace": ISTIO_NAMESPACE},
            "ingressGateways": [ingress_gateway],
        },
        "values": values,
    }
    if settings.mesh_config:
        spec["meshConfig"] = copy.deepcopy(dict(settings.mesh_config))
    enabled_addons = [name for name in ADDONS if getattr(settings.addons, name)]
    document = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": "installed-state",
            "namespace": ISTIO_NAMESPACE,
            "annotations": {ADDONS_ANNOTATION: ",".join(enabled_addons)},
        },
        "spec": spec,
    }
    header = [
        "# IstioOperator equivalent of this stack's Istio settings, for:",
        f"#   istioctl install -f <this file>   (istioctl {settings.version})",
        "# The addons are Helm releases here, not istioctl components (istioctl no longer installs them);",
        f"# enabled: {', '.join(enabled_addons) or 'none'} (recorded in the {ADDONS_ANNOTATION} annotation).",
    ]
    if mesh.namespaces:
        label = "istio-injection=enabled" + (", pod-security.kubernetes.io/enforce=baseline" if cni.enabled else "")
        header.append(f"# Application namespaces, labelled {label}: {', '.join(mesh.namespaces)}.")
    return "\n".join(header) + "\n" + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
