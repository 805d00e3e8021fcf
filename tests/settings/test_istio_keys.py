"""Configured chart extras checked against the vendored keys of Istio's charts, with their config path."""

from __future__ import annotations

import pytest

from settings.istio_keys import istio_chart_keys, unknown_extra_keys
from settings.model import IstioSettings
from settings.rules import ConfigError
from tests.support.scenarios import PROD


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
