"""Which Kubernetes versions each Istio release supports, as Istio publishes it.

Source: Istio's "Supported Releases" page (https://istio.io/latest/docs/releases/supported-releases/), data file
`data/compatibility/supportStatus.yml` of the istio/istio.io repository, as of 2026-12-01. Only the releases
read from that file are listed: a release missing here (1.24 and 1.25 among the installable ones, or one
newer than 1.30) is not checked, rather than checked against a guess. Add a row when a release comes out.
"""

from __future__ import annotations

from settings.rules import ConfigError, config_key
from settings.versions import istio_release

SUPPORTED_KUBERNETES: dict[tuple[int, int], tuple[str, ...]] = {
    (1, 30): ("1.32", "1.33", "1.34", "1.35", "1.36"),
    (1, 29): ("1.31", "1.32", "1.33", "1.34", "1.35"),
    (1, 28): ("1.30", "1.31", "1.32", "1.33", "1.34"),
    (1, 27): ("1.29", "1.30", "1.31", "1.32", "1.33"),
    (1, 26): ("1.29", "1.30", "1.31", "1.32", "1.33"),
}


def check_kubernetes_support(
    istio_version: str, kubernetes_version: str, name: str = config_key("istio.version")
) -> None:
    """A ConfigError unless the Istio release supports the Kubernetes version (or is not in the table)."""
    release = istio_release(istio_version)
    supported = SUPPORTED_KUBERNETES.get(release[:2]) if release else None
    if supported is None or ".".join(kubernetes_version.split(".")[:2]) in supported:
        return
    raise ConfigError(
        f"{name}: '{istio_version}' is not allowed with "
        f"{config_key('cluster.kubernetesVersion')} '{kubernetes_version}'; Istio {istio_version.rsplit('.', 1)[0]} "
        f"supports Kubernetes {', '.join(supported)} (istio.io, supported releases)"
    )
