"""Which moves of the control planes Istio supports, from what is deployed now to what a stack declares.

Pure rules over versions; the upgrade guard (`components.upgrade_guard`) applies them in its `check`, which knows
the deployed versions from its old state, so a refused move fails `pulumi preview` before anything changes.
Istio's rules: in place, one minor at a time; back in place one minor only as an acknowledged emergency; a canary
may skip one minor; the data plane runs at most one minor behind its control plane.
"""

from __future__ import annotations

from settings.data_plane import DeclaredDataPlane
from settings.rules import config_key
from settings.versions import istio_release, minors_apart


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
