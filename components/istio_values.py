"""Helm values of the Istio charts (`base`, `cni`, `istiod`, `gateway`, and `ztunnel` for ambient mode), built from
the settings.

Pure functions: no Pulumi, no I/O. `IstioMesh` passes their results to `helm.v3.Release`; the tests
check every key path set here against the charts' own default values (`tests/support/chart_keys.py`), so a
renamed or mistyped key fails a test instead of being silently ignored by Helm.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from settings.model import CANARY_TAG, IstioSettings

ISTIO_CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"

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

ZTUNNEL_GLOBAL_KEYS = frozenset(
    {"hub", "tag", "variant", "imagePullPolicy", "imagePullSecrets", "logAsJson", "resourceScope", "networkPolicy"}
)
"""The `global.*` keys the ztunnel chart reads: it lifts `global` to its top level, where these are its own keys."""

AMBIENT_PROFILE = "ambient"
"""The charts' profile for ambient mode (`files/profile-ambient.yaml` of istiod and cni): HBONE for sidecars,
`PILOT_ENABLE_AMBIENT` for istiod, the CNI node agent's ambient redirection, the `distroless` image variant."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, maps merged key by key (as Helm merges values); lists are replaced."""
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
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


def _with_profile(values: dict[str, Any], istio: IstioSettings) -> dict[str, Any]:
    # Only set when on: a stack without ambient keeps the exact values it was installed with.
    if istio.ambient.enabled:
        values["profile"] = AMBIENT_PROFILE
    return values


def cni_values(istio: IstioSettings) -> dict[str, Any]:
    """The `cni` chart (the node agent DaemonSet). Flat keys: Istio 1.24 and newer."""
    return _with_profile(_with_global(istio.cni.plugin_values(), _global_for("cni", istio)), istio)


def istiod_values(istio: IstioSettings, mesh_config_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `istiod` chart: `pilot.cni.enabled` follows the CNI setting, then the configured extras.

    `mesh_config_extra` is wiring the program adds (the tracing provider); the configured
    `meshConfig` wins over it key by key.
    """
    # Without pilot.cni.enabled the injector keeps adding istio-init (NET_ADMIN/NET_RAW) even
    # though the node agent already redirects traffic.
    pilot = deep_merge(istio.pilot, {"cni": {"enabled": istio.cni.enabled}})
    values: dict[str, Any] = {"pilot": pilot}
    mesh_config = _merge_mesh_config(mesh_config_extra or {}, istio.mesh_config)
    if mesh_config:
        values["meshConfig"] = mesh_config
    return _with_profile(_with_global(values, istio.global_values), istio)


def canary_istiod_values(istio: IstioSettings, mesh_config_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The canary's `istiod` chart: the default's values, as revision `1-30-3` with the revision tag `canary`.

    The tag's webhook (`istio-revision-tag-canary`) sends namespaces labelled `istio.io/rev=canary` to it; it is
    created and removed with this release alone, so no webhook ever changes owner between two releases.
    """
    assert istio.canary is not None
    return {
        **istiod_values(istio, mesh_config_extra),
        "revision": istio.canary.revision,
        "revisionTags": [CANARY_TAG],
    }


def ztunnel_values(istio: IstioSettings) -> dict[str, Any]:
    """The `ztunnel` chart (ambient mode's node proxy DaemonSet), installed as Istio's Helm guide does: no profile.

    ztunnel is not revisioned: one DaemonSet, at the newer plane's release. `revision` only picks the istiod it
    connects to, so during a canary it is the canary's (a ztunnel may not be newer than its istiod), and the default
    one otherwise.
    """
    values: dict[str, Any] = {}
    if istio.canary is not None:
        values["revision"] = istio.canary.revision
    global_values = {
        key: copy.deepcopy(value) for key, value in istio.global_values.items() if key in ZTUNNEL_GLOBAL_KEYS
    }
    return _with_global(values, global_values)


def _merge_mesh_config(wiring: Mapping[str, Any], configured: Mapping[str, Any]) -> dict[str, Any]:
    merged = deep_merge(wiring, configured)
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
