"""The keys Istio reads: configured chart values and MeshConfig fields, checked before Istio silently ignores one.

Two sources, one job: a `pilot.*`/`global.*` extra must be a key of the Istio charts (Helm ignores an unknown
one), and a `meshConfig` key a field of Istio's MeshConfig (istiod ignores an unknown one). Each check returns one
message per unknown key, naming its config key; the settings model raises them together.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from settings.rules import config_key, show, show_key

# --- The keys of Istio's charts ------------------------------------------------------------------

ISTIO_CHART_KEYS_FILE = Path(__file__).with_name("istio_chart_defaults.json")
"""The `pilot` and `global` default trees of the Istio charts the tests hold (1.30), generated from those
charts by the tests' chart-key tooling (`tests/support/chart_keys.py`) and checked against them by a test.
Every `istio.version` is checked against these keys: a key that only a newer chart has is reported too.
Keys whose content follows another schema (Kubernetes resource requirements, istiod's MeshConfig) are
stored as empty maps, so any key below them is accepted."""


@dataclass(frozen=True)
class UnknownKey:
    """A key path of some values that a chart's defaults do not have, or have with another type."""

    path: str
    map_over_scalar: bool = False
    """The key exists, but the value is a map where the chart's default is not."""
    wrong_type: str = ""
    """The key exists, but the value's type is not the default's (`a whole number`, `true or false`, ...)."""
    value: Any = None
    """The refused value, for the message."""


def unknown_below(values: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str = "") -> list[UnknownKey]:
    """The keys of `values` (paths starting with `prefix`) that `defaults` does not have, or types it refuses.

    A default that is an empty map or null accepts anything below it (labels, env, annotations).
    """
    unknown: list[UnknownKey] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in defaults:
            unknown.append(UnknownKey(path))
            continue
        default = defaults[key]
        if default is None or (isinstance(default, Mapping) and not default):
            continue
        if isinstance(value, Mapping):
            if isinstance(default, Mapping):
                unknown += unknown_below(value, default, f"{path}.")
            else:
                unknown.append(UnknownKey(path, map_over_scalar=True))
        elif (expected := _type_mismatch(str(key), value, default)) is not None:
            unknown.append(UnknownKey(path, wrong_type=expected, value=value))
    return unknown


INT_OR_STRING = re.compile(r"rollingMax(Surge|Unavailable)|minAvailable|maxUnavailable|.*Ports|.*IPRanges")
"""Keys the charts pass on where Kubernetes or istio-proxy take a number or a string (`maxSurge: 1` or `"25%"`)."""


def _type_mismatch(key: str, value: Any, default: Any) -> str | None:
    """What the value should be, when its type is not the chart default's (`replicaCount: "two"`, `hub: 5`).

    None is Helm's way to unset a key, so it always passes.
    """
    if value is None:
        return None
    if INT_OR_STRING.fullmatch(key) and isinstance(value, str | int) and not isinstance(value, bool):
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int | float):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        whole = isinstance(value, int) and not isinstance(value, bool)
        return None if (whole if isinstance(default, int) else number) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, list):
        return None if isinstance(value, list) else "a list"
    if isinstance(default, Mapping) and default:
        return "a map"
    return None


@cache
def istio_chart_keys() -> Mapping[str, Any]:
    """The vendored key data (`ISTIO_CHART_KEYS_FILE`), read once."""
    data: Mapping[str, Any] = json.loads(ISTIO_CHART_KEYS_FILE.read_text())
    return data


def unknown_extra_keys(pilot: Mapping[str, Any], global_values: Mapping[str, Any]) -> list[str]:
    """One message per configured `pilot.*` / `global.*` key the Istio charts do not have.

    Each starts with the config key path (`aks-istio:istio.pilot.nonsense: not a key of ...`).
    Helm would silently ignore such a key. The keys are those of the Istio 1.30 charts, whatever
    `istio.version` is; maps whose default is empty (`pilot.env`, `pilot.nodeSelector`, and the
    free-form `resources`, `defaultResources`, `meshConfig`) accept any key below them.
    """
    data = istio_chart_keys()
    version = data["chartVersion"]
    sections = (
        ("pilot", pilot, f"the Istio {version} chart (istiod)"),
        ("global", global_values, f"the Istio {version} chart (global values of istiod, base, cni, gateway)"),
    )
    problems: list[str] = []
    for section, values, chart in sections:
        for unknown in unknown_below(values, data[section]):
            name = config_key(f"istio.{section}.{show_key(unknown.path, 200)}")
            if unknown.map_over_scalar:
                problems.append(f"{name}: a map is not allowed; in {chart} it is a single value")
            elif unknown.wrong_type:
                problems.append(
                    f"{name}: {show(unknown.value)} is not allowed; expected {unknown.wrong_type}, as in {chart}"
                )
            else:
                problems.append(f"{name}: not a key of {chart}; Helm would silently ignore it")
    return problems


# --- The fields of Istio's MeshConfig ------------------------------------------------------------

MESH_CONFIG_FIELDS: frozenset[str] = frozenset(
    {
        "proxyListenPort", "proxyInboundListenPort", "proxyHttpPort", "connectTimeout", "protocolDetectionTimeout",
        "tcpKeepalive", "ingressClass", "ingressService", "ingressControllerMode", "ingressSelector", "enableTracing",
        "accessLogFile", "accessLogFormat", "accessLogEncoding", "enableEnvoyAccessLogService",
        "disableEnvoyListenerLog", "defaultConfig", "outboundTrafficPolicy", "inboundTrafficPolicy", "configSources",
        "enableAutoMtls", "trustDomain", "trustDomainAliases", "caCertificates", "defaultServiceExportTo",
        "defaultVirtualServiceExportTo", "defaultDestinationRuleExportTo", "rootNamespace", "localityLbSetting",
        "dnsRefreshRate", "h2UpgradePolicy", "inboundClusterStatName", "outboundClusterStatName", "certificates",
        "serviceSettings", "enablePrometheusMerge", "verifyCertificateAtClient", "ca", "extensionProviders",
        "defaultProviders", "discoverySelectors", "pathNormalization", "defaultHttpRetryPolicy", "meshMTLS",
        "tlsDefaults", "compliancePolicy",
    }
)  # fmt: skip
"""The top-level fields of `message MeshConfig` in istio/api's `mesh/v1alpha1/config.proto` (commit 0040fb30, read
2026-12-02), in their JSON names. Fields only newer releases have are accepted for every release (a superset: a
release that does not know one ignores it, as before); removed (reserved) fields are refused. istiod also reads
the proto's own snake_case names, so both spellings pass."""


def _camel(name: str) -> str:
    return re.sub(r"_([a-zA-Z])", lambda m: m[1].upper(), name)


def unknown_mesh_config_keys(mesh_config: Mapping[str, Any]) -> list[str]:
    """One message per top-level key of `mesh_config` that MeshConfig does not have."""
    problems = []
    for key in mesh_config:
        if _camel(str(key)) in MESH_CONFIG_FIELDS:
            continue
        close = difflib.get_close_matches(_camel(str(key)), MESH_CONFIG_FIELDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(
            f"{config_key('istio.meshConfig')}.{show_key(key)}: not a field of Istio's MeshConfig; istiod would "
            f"ignore it{hint}"
        )
    return problems
