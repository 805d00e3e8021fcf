"""The declared data plane: what the pods of each namespace should run, built once from the settings.

One declaration for everything that compares the cluster with the stack: the upgrade guard, the restart's inputs
and fingerprint, its planner, the post-rollout check and `make restart-plan`.

Its property bag (`inputs()`, `from_inputs()`) is stored in every stack's state, as the inputs of the
`sidecar-restart` resource (all of it) and of the `istio-upgrade-guard` (`GUARD_KEYS`): the names and values are a
contract. A state written by an earlier release lacks the keys added since; reading it back gives what that
release meant (see `from_inputs`), so an existing stack shows no diff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from settings.istio_releases import istio_release, revision_name
from settings.model import AMBIENT_MODE, DEFAULT_REVISION, SIDECAR_MODE, IstioSettings, MeshSettings

GUARD_KEYS = (
    "version",
    "canaryVersion",
    "canaryNamespaces",
    "meshNamespaces",
    "allowDowngradeFrom",
    "ambientNamespaces",
    "hbone",
)
"""The part of the bag the upgrade guard records: the control planes' releases (not their images), and the ambient
namespaces and HBONE, which order a move to ambient mode after the update that installs it."""


@dataclass(frozen=True)
class ControlPlane:
    """One istiod: the revision that labels the pods it injects, its Istio release and its proxy image."""

    revision: str
    """`default` (the unrevisioned istiod) or a canary's revision such as `1-30-3`."""
    version: str
    """Its Istio release, e.g. `1.30.3` ("": unknown, a state written before it was recorded)."""
    proxy_image: str
    """The `istio-proxy` image it injects ("": not compared, a state written before proxies were compared)."""


@dataclass(frozen=True)
class DeclaredDataPlane:
    """The control planes, which namespaces run which, and how pods' traffic is redirected to their sidecar."""

    default: ControlPlane
    canary: ControlPlane | None = None
    canary_namespaces: frozenset[str] = frozenset()
    """The mesh namespaces on the canary (empty without one)."""
    mesh_namespaces: frozenset[str] = frozenset()
    """The namespaces the stack declares; empty (a state written before it was known): every namespace."""
    cni_enabled: bool = True
    """Redirection by the CNI plugin (`istio-validation`), else by the `istio-init` container."""
    exclude_namespaces: frozenset[str] = field(default_factory=frozenset)
    """Namespaces the CNI plugin leaves alone: never restarted."""
    allow_downgrade_from: str = ""
    """`istio.allowDowngradeFrom`: the deployed version an in-place downgrade is acknowledged from."""
    ambient_namespaces: frozenset[str] = frozenset()
    """The mesh namespaces in ambient mode: their pods run no sidecar, ztunnel captures their traffic."""
    hbone: bool = False
    """The mesh runs ambient mode's components: every sidecar must speak HBONE (`ISTIO_META_ENABLE_HBONE`) to reach
    ambient pods, which a sidecar injected before the ambient profile does not."""

    @classmethod
    def declared(cls, istio: IstioSettings, mesh: MeshSettings) -> DeclaredDataPlane:
        """What the stack's settings declare."""
        canary = istio.canary
        return cls(
            default=ControlPlane(DEFAULT_REVISION, istio.version, istio.proxy_image),
            canary=ControlPlane(canary.revision, canary.version, istio.canary_proxy_image) if canary else None,
            canary_namespaces=frozenset(canary.namespaces if canary else ()),
            mesh_namespaces=frozenset(mesh.namespaces),
            cni_enabled=istio.cni.enabled,
            exclude_namespaces=frozenset(istio.cni.exclude_namespaces),
            allow_downgrade_from=istio.allow_downgrade_from or "",
            ambient_namespaces=frozenset(mesh.ambient),
            hbone=istio.ambient.enabled,
        )

    @property
    def planes(self) -> tuple[ControlPlane, ...]:
        return (self.default,) if self.canary is None else (self.default, self.canary)

    @property
    def revisions(self) -> frozenset[str]:
        return frozenset(plane.revision for plane in self.planes)

    def acceptable(self, namespace: str) -> tuple[ControlPlane, ...]:
        """What the pods of `namespace` may run: its declared plane; outside the mesh, any declared one.

        A namespace the stack does not declare is labelled by someone else (say `istio.io/rev=canary` by an app
        team), so its pods run whichever declared control plane that label picks.
        """
        if self.canary is not None and namespace in self.canary_namespaces:
            return (self.canary,)
        if not self.mesh_namespaces or namespace in self.mesh_namespaces:
            return (self.default,)
        return self.planes

    def mode(self, namespace: str) -> str | None:
        """`ambient` or `sidecar` for a namespace of the mesh; None outside it (or when the mesh is not known)."""
        if namespace in self.ambient_namespaces:
            return AMBIENT_MODE
        return SIDECAR_MODE if namespace in self.mesh_namespaces else None

    @property
    def sidecar_namespaces(self) -> frozenset[str]:
        return self.mesh_namespaces - self.ambient_namespaces

    def describe(self) -> dict[str, Any]:
        """The data plane as plain data, for the restart's fingerprint (see `restart.plan.fingerprint`).

        Its shape is fixed: the fingerprint is recorded on every restarted workload. Without the CNI plugin its
        exclusions have no effect, so they are left out; the default's image is left out when it is not compared,
        the canary when there is none, the ambient namespaces and HBONE when unused: each case hashes as the release
        before it did.
        """
        described: dict[str, Any] = {
            "enabled": self.cni_enabled,
            "excludeNamespaces": sorted(self.exclude_namespaces) if self.cni_enabled else [],
        }
        if self.default.proxy_image:
            described["proxyImage"] = self.default.proxy_image
        if self.canary is not None:
            described["canary"] = {
                "revision": self.canary.revision,
                "proxyImage": self.canary.proxy_image,
                "namespaces": sorted(self.canary_namespaces),
            }
        if self.hbone:
            described["hbone"] = True
        if self.ambient_namespaces:
            described["ambientNamespaces"] = sorted(self.ambient_namespaces)
        return described

    def inputs(self) -> dict[str, Any]:
        """The property bag of the declaration (namespace lists sorted: their order means nothing)."""
        canary = self.canary
        return {
            "cniEnabled": self.cni_enabled,
            "excludeNamespaces": sorted(self.exclude_namespaces),
            "version": self.default.version,
            "proxyImage": self.default.proxy_image,
            "canaryVersion": canary.version if canary else "",
            "canaryRevision": canary.revision if canary else "",
            "canaryProxyImage": canary.proxy_image if canary else "",
            "canaryNamespaces": sorted(self.canary_namespaces) if canary else [],
            "meshNamespaces": sorted(self.mesh_namespaces),
            "allowDowngradeFrom": self.allow_downgrade_from,
            "ambientNamespaces": sorted(self.ambient_namespaces),
            "hbone": self.hbone,
        }

    @classmethod
    def from_inputs(cls, props: Mapping[str, Any]) -> DeclaredDataPlane:
        """The declaration of a property bag (the inverse of `inputs`), missing keys read as an older release
        wrote them: no image is "not compared", no CNI setting is the CNI (the guard records none), no ambient
        namespace and no HBONE is the sidecar-only mesh before ambient mode.

        A state written before the versions were recorded has none: the version is then read from the proxy
        image's tag (`image_release`), the only place that older state kept it.
        """
        image, canary_image = _text(props.get("proxyImage")), _text(props.get("canaryProxyImage"))
        canary_revision, canary_version = _text(props.get("canaryRevision")), _text(props.get("canaryVersion"))
        canary = None
        if canary_revision or canary_version:
            version = canary_version or image_release(canary_image)
            canary = ControlPlane(canary_revision or revision_name(version), version, canary_image)
        cni = props.get("cniEnabled")
        return cls(
            default=ControlPlane(DEFAULT_REVISION, _text(props.get("version")) or image_release(image), image),
            canary=canary,
            canary_namespaces=_names(props.get("canaryNamespaces")) if canary else frozenset(),
            mesh_namespaces=_names(props.get("meshNamespaces")),
            cni_enabled=True if cni is None else bool(cni),
            exclude_namespaces=_names(props.get("excludeNamespaces")),
            allow_downgrade_from=_text(props.get("allowDowngradeFrom")),
            ambient_namespaces=_names(props.get("ambientNamespaces")),
            hbone=props.get("hbone") is True,
        )


def ambient_move_refusal(
    deployed: DeclaredDataPlane, declared: DeclaredDataPlane, recorded_hbone: bool = True
) -> str | None:
    """Why `declared` may not follow `deployed` in one update, as far as ambient mode goes (None: it may).

    Istio's migration guide: every sidecar speaks HBONE (re-injected once after ambient mode's components are
    installed) before any namespace moves, or the sidecars still to be re-injected cannot reach the moved pods. So
    namespaces move in a later update than the one that installs ambient mode. A first install has no running
    sidecars to wait for, and a state written before HBONE was recorded (`recorded_hbone` False) does not say
    whether ambient mode was installed: neither is refused.
    """
    moving = sorted(declared.ambient_namespaces - deployed.ambient_namespaces)
    if moving and recorded_hbone and not deployed.hbone and deployed.mesh_namespaces:
        return (
            f"moving {', '.join(moving)} to ambient mode in the update that installs ambient mode's components is "
            "not allowed: every sidecar must first be re-injected to speak HBONE. Set istio.ambient.enabled in one "
            "update, and move namespaces (mesh.namespaces[].mode: ambient) in a later one"
        )
    return None


def image_release(image: str) -> str:
    """The Istio release in a proxy image's tag (`hub/proxyv2:1.30.3[-variant][@digest]`), or "".

    Only for states written before the version was recorded beside the image.
    """
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]  # a registry's port is not a tag
    tag = last.rsplit(":", 1)[1].split("-", 1)[0] if ":" in last else ""
    return tag if istio_release(tag) else ""


def _text(value: Any) -> str:
    return str(value) if isinstance(value, str) else ""


def _names(value: Any) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        return frozenset()
    return frozenset(str(name) for name in value)
