"""Which moves of the control planes Istio supports, from what is deployed now to what a stack declares.

Pure rules over versions; the upgrade guard (`components.upgrade_guard`) applies them in its `check`, which knows
the deployed versions from its old state, so a refused move fails `pulumi preview` before anything changes.
Istio's rules: in place, one minor at a time; back in place one minor only as an acknowledged emergency; a canary
may skip one minor; the data plane runs at most one minor behind its control plane.
"""

from __future__ import annotations

from dataclasses import dataclass

from settings.rules import config_key
from settings.versions import istio_release, minors_apart


@dataclass(frozen=True)
class ControlPlanes:
    """What a stack declares about its control planes, as the guard records it."""

    version: str
    """The default control plane's release (`istio.version`)."""
    canary_version: str = ""
    """The canary's release ("" without a canary)."""
    canary_namespaces: tuple[str, ...] = ()
    mesh_namespaces: tuple[str, ...] = ()
    allow_downgrade_from: str = ""
    """`istio.allowDowngradeFrom`: the deployed version an in-place downgrade is acknowledged from."""


def upgrade_refusal(deployed: ControlPlanes, declared: ControlPlanes) -> str | None:
    """Why moving from `deployed` to `declared` is refused, or None when Istio supports the move."""
    if deployed.canary_version and declared.canary_version and deployed.canary_version != declared.canary_version:
        return (
            f"{config_key('istio.canary.version')}: the canary runs {deployed.canary_version}; it cannot become "
            f"{declared.canary_version} in one step, since two releases cannot own the `canary` tag's webhook at "
            "once: promote it or remove it (roll back) first, then declare the new canary"
        )
    if deployed.version == declared.version:
        return None
    if deployed.canary_version == declared.version and not declared.canary_version:
        return _promotion_refusal(deployed, declared)
    return in_place_refusal(deployed.version, declared.version, declared.allow_downgrade_from)


def _promotion_refusal(deployed: ControlPlanes, declared: ControlPlanes) -> str | None:
    """A promotion upgrades the default control plane in place to the canary's release, then re-injects.

    Until their restart, the pods still on the default run a proxy as old as before against the new istiod:
    supported one minor apart, so a canary two minors above is promoted once every mesh namespace is on it.
    """
    old, new = istio_release(deployed.version), istio_release(declared.version)
    if old is None or new is None or minors_apart(old, new) <= 1:
        return None
    left = sorted(set(deployed.mesh_namespaces) - set(deployed.canary_namespaces))
    if not left:
        return None
    return (
        f"{config_key('istio.version')}: promoting the canary {declared.version} over {deployed.version} skips a "
        f"minor release, and the namespaces {', '.join(left)} still run {deployed.version} proxies, which Istio "
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
