"""Istio's release rules: which releases the program installs, on which Kubernetes, and which moves between them.

Pure rules over release numbers. The settings model checks a stack's releases with them; the upgrade guard
(`components.upgrade_guard`) applies the move rules in its `check`, which knows the deployed versions from its old
state, so a refused move fails `pulumi preview` before anything changes. Istio's rules: in place, one minor at a
time; back in place one minor only as an acknowledged emergency; a canary may skip one minor; the data plane runs at
most one minor behind its control plane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from settings.rules import RELEASE_VERSION, ConfigError, config_key, show

if TYPE_CHECKING:  # the declaration is built with this module's release rules: only its type is needed here
    from settings.data_plane import DeclaredDataPlane

# --- Release numbers -----------------------------------------------------------------------------

MINIMUM_ISTIO_VERSION = (1, 24)
"""Since 1.24 the cni chart's keys are flat (`excludeNamespaces`); before, they sat under `cni.`."""


def istio_release(version: Any) -> tuple[int, int, int] | None:
    """`version` as (major, minor, patch) when it is a plain release MAJOR.MINOR.PATCH, else None."""
    match = RELEASE_VERSION.fullmatch(version) if isinstance(version, str) else None
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def check_supported_version(version: Any, name: str = config_key("istio.version")) -> str:
    """`version` if it is an Istio release 1.24 or newer; otherwise a ConfigError naming `name`."""
    shown = show(version)
    release = istio_release(version)
    if release is None:
        raise ConfigError(f"{name}: {shown} is not allowed; expected a release MAJOR.MINOR.PATCH, e.g. 1.30.3")
    if release[:2] < MINIMUM_ISTIO_VERSION:
        raise ConfigError(
            f"{name}: {shown} is not supported; expected Istio 1.24 or newer "
            "(older cni charts nest their keys under `cni.`, which this program does not write)"
        )
    return str(version)


def revision_name(version: str) -> str:
    """Istio's revision name of a release: `1.30.3` -> `1-30-3` (its istiod is `istiod-1-30-3`)."""
    return version.replace(".", "-")


def minors_apart(older: tuple[int, int, int], newer: tuple[int, int, int]) -> int:
    """How many minor releases `newer` is above `older` (negative when below); majors count as far apart."""
    if older[0] != newer[0]:
        return 1000 if newer[0] > older[0] else -1000
    return newer[1] - older[1]


# --- Which Kubernetes versions each release supports ---------------------------------------------

SUPPORTED_KUBERNETES: dict[tuple[int, int], tuple[str, ...]] = {
    (1, 30): ("1.32", "1.33", "1.34", "1.35", "1.36"),
    (1, 29): ("1.31", "1.32", "1.33", "1.34", "1.35"),
    (1, 28): ("1.30", "1.31", "1.32", "1.33", "1.34"),
    (1, 27): ("1.29", "1.30", "1.31", "1.32", "1.33"),
    (1, 26): ("1.29", "1.30", "1.31", "1.32", "1.33"),
}
"""Which Kubernetes versions each Istio release supports, as Istio publishes it.

Source: Istio's "Supported Releases" page (https://istio.io/latest/docs/releases/supported-releases/), data file
`data/compatibility/supportStatus.yml` of the istio/istio.io repository, as of 2026-12-01. Only the releases read
from that file are listed: a release missing here (1.24 and 1.25 among the installable ones, or one newer than 1.30)
is not checked, rather than checked against a guess. Add a row when a release comes out.
"""


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


# --- Which moves of the control planes Istio supports --------------------------------------------


def upgrade_refusal(deployed: DeclaredDataPlane, declared: DeclaredDataPlane) -> str | None:
    """Why moving from `deployed` to `declared` is refused, or None when Istio supports the move (or nothing was
    deployed: the first `up`, or a state that recorded no version)."""
    running = deployed.canary.version if deployed.canary else ""
    wanted = declared.canary.version if declared.canary else ""
    if running and wanted and running != wanted:
        return (
            f"{config_key('istio.canary.version')}: the canary runs {running}; it cannot become "
            f"{wanted} in one step, since two releases cannot own the `canary` tag's webhook at "
            "once: promote it or remove it (roll back) first, then declare the new canary"
        )
    old, new = deployed.default.version, declared.default.version
    if not old or old == new:
        return None
    if running == new and not wanted:
        return _promotion_refusal(deployed, declared)
    return in_place_refusal(old, new, declared.allow_downgrade_from)


def _promotion_refusal(deployed: DeclaredDataPlane, declared: DeclaredDataPlane) -> str | None:
    """A promotion upgrades the default control plane in place to the canary's release, then re-injects.

    Until their restart, the pods still on the default run a proxy as old as before against the new istiod:
    supported one minor apart, so a canary two minors above is promoted once every mesh namespace is on it.
    """
    old, new = istio_release(deployed.default.version), istio_release(declared.default.version)
    if old is None or new is None or minors_apart(old, new) <= 1:
        return None
    left = sorted(set(deployed.mesh_namespaces) - set(deployed.canary_namespaces))
    if not left:
        return None
    return (
        f"{config_key('istio.version')}: promoting the canary {declared.default.version} over "
        f"{deployed.default.version} skips a minor release, and the namespaces {', '.join(left)} still run "
        f"{deployed.default.version} proxies, which Istio "
        "supports at most one minor behind istiod: add them to istio.canary.namespaces first, then promote"
    )


def in_place_refusal(deployed: str, declared: str, allow_downgrade_from: str) -> str | None:
    """Why an in-place move of the default control plane from `deployed` to `declared` is refused, if it is."""
    old, new = istio_release(deployed), istio_release(declared)
    if old is None or new is None or old == new:
        return None
    apart = minors_apart(old, new)
    if apart > 1:
        return (
            f"{config_key('istio.version')}: an in-place upgrade from Istio {deployed} to {declared} skips a minor "
            f"release; Istio upgrades in place one minor at a time: set it to {old[0]}.{old[1] + 1}.x first, or "
            "upgrade by canary (istio.canary)"
        )
    if new < old and (allow_downgrade_from != deployed or apart < -1):
        return (
            f"{config_key('istio.version')}: an in-place downgrade from Istio {deployed} to {declared} needs the "
            f"acknowledgement {config_key('istio.allowDowngradeFrom')}: '{deployed}', and goes back one minor at most"
        )
    return None
