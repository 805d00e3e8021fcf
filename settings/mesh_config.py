"""The fields of Istio's MeshConfig, which `istio.meshConfig` must use: istiod ignores an unknown one.

Source: `message MeshConfig` of istio/api's `mesh/v1alpha1/config.proto` (commit 0040fb30, read 2026-12-02), the
top-level fields in their JSON names. Fields only newer releases have are accepted for every release (a superset:
a release that does not know one ignores it, as before); removed (reserved) fields are refused. istiod also reads
the proto's own snake_case names, so both spellings pass.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from settings.rules import config_key

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
            f"{config_key('istio.meshConfig')}.{key}: not a field of Istio's MeshConfig; istiod would ignore it{hint}"
        )
    return problems
