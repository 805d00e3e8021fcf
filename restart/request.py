"""What one restart is asked to do, and how it fails: the one request type and the one error type.

`RestartRequest` is the resource's inputs, typed: each field names its input property (the camelCase
schema stored in every stack's state), whether a change of it re-injects sidecars, and the settings it
is declared from. The provider checks, diffs and reads its inputs through this class, and the cluster
side receives it whole, so adding an option touches this class alone.

Imports only the standard library and the settings model: the provider host loads this module on every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from settings.model import DEFAULT_REVISION, IstioSettings, MeshSettings, RestartSettings

InputKind = Literal["boolean", "names", "count", "kubeconfig", "image", "revision"]


def _input(name: str, kind: InputKind, *, restarts: bool = False, added_later: bool = False) -> dict[str, Any]:
    """`added_later`: a state written before the input existed lacks it, which means its empty value."""
    return {"input": name, "kind": kind, "restarts": restarts, "added_later": added_later}


@dataclass(frozen=True)
class DataPlane:
    """What the sidecar pods of one namespace should run: the control plane's revision and its proxy image."""

    revision: str
    """`default` or a canary's revision such as `1-30-3` (the `istio.io/rev` label istiod puts on pods)."""
    proxy_image: str
    """Empty: the image is not compared (a state written before the restart compared proxies)."""


@dataclass(frozen=True)
class DeclaredPlanes:
    """The declared data plane: the default control plane's, and the canary's for its namespaces."""

    default: DataPlane
    canary: DataPlane | None = None
    canary_namespaces: frozenset[str] = frozenset()
    mesh_namespaces: frozenset[str] = frozenset()
    """The namespaces the stack declares; empty (a state written before it was known): every namespace."""

    @classmethod
    def declare(
        cls,
        proxy_image: str,
        canary: DataPlane | None = None,
        canary_namespaces: Iterable[str] = (),
        mesh_namespaces: Iterable[str] = (),
    ) -> DeclaredPlanes:
        """The default plane (revision `default`, `proxy_image`), and the canary for its namespaces, if any."""
        return cls(
            default=DataPlane(DEFAULT_REVISION, proxy_image),
            canary=canary,
            canary_namespaces=frozenset(canary_namespaces) if canary else frozenset(),
            mesh_namespaces=frozenset(mesh_namespaces),
        )

    @property
    def revisions(self) -> frozenset[str]:
        return frozenset(plane.revision for plane in self.all)

    @property
    def all(self) -> tuple[DataPlane, ...]:
        return (self.default,) if self.canary is None else (self.default, self.canary)

    def acceptable(self, namespace: str) -> tuple[DataPlane, ...]:
        """What the pods of `namespace` may run: its declared plane; outside the mesh, any declared one.

        A namespace the stack does not declare is labelled by someone else (say `istio.io/rev=canary` by an
        app team), so its pods run whichever declared control plane that label picks.
        """
        if self.canary is not None and namespace in self.canary_namespaces:
            return (self.canary,)
        if not self.mesh_namespaces or namespace in self.mesh_namespaces:
            return (self.default,)
        return self.all

    def describe(self) -> dict[str, Any]:
        """The planes as plain data, for the fingerprint: the default's image alone when there is no canary."""
        described: dict[str, Any] = {}
        if self.default.proxy_image:
            described["proxyImage"] = self.default.proxy_image
        if self.canary is not None:
            described["canary"] = {
                "revision": self.canary.revision,
                "proxyImage": self.canary.proxy_image,
                "namespaces": sorted(self.canary_namespaces),
            }
        return described


@dataclass(frozen=True)
class RestartRequest:
    kubeconfig: str = field(repr=False, metadata=_input("kubeconfig", "kubeconfig"))
    """The cluster's kubeconfig (a secret in the state)."""
    cni_enabled: bool = field(default=True, metadata=_input("cniEnabled", "boolean", restarts=True))
    """Whether pods should be redirected by the CNI plugin (`istio-validation`) or by `istio-init`."""
    exclude_namespaces: tuple[str, ...] = field(
        default=(), metadata=_input("excludeNamespaces", "names", restarts=True)
    )
    """Namespaces the CNI plugin leaves alone: never restarted."""
    proxy_image: str = field(default="", metadata=_input("proxyImage", "image", restarts=True, added_later=True))
    """The `istio-proxy` image the default istiod injects; pods running another are re-injected ("": not compared)."""
    canary_revision: str = field(
        default="", metadata=_input("canaryRevision", "revision", restarts=True, added_later=True)
    )
    """The canary control plane's revision, e.g. `1-30-3` (empty: no canary)."""
    canary_proxy_image: str = field(
        default="", metadata=_input("canaryProxyImage", "image", restarts=True, added_later=True)
    )
    """The `istio-proxy` image the canary istiod injects."""
    canary_namespaces: tuple[str, ...] = field(
        default=(), metadata=_input("canaryNamespaces", "names", restarts=True, added_later=True)
    )
    """The namespaces whose pods should run on the canary; every other one on the default control plane."""
    mesh_namespaces: tuple[str, ...] = field(default=(), metadata=_input("meshNamespaces", "names", added_later=True))
    """The stack's mesh namespaces (`mesh.namespaces`): their pods must run their declared plane exactly."""
    allow_downgrade_from: str = field(default="", metadata=_input("allowDowngradeFrom", "revision", added_later=True))
    """The Istio version an in-place downgrade is acknowledged from (`aks-istio:istio.allowDowngradeFrom`)."""
    max_concurrent: int = field(default=10, metadata=_input("maxConcurrent", "count"))
    """With `wait_for_rollout`, the most workloads rolling out at once; without, the most PATCHes in flight."""
    wait_for_rollout: bool = field(default=True, metadata=_input("waitForRollout", "boolean"))
    """Wait until every restarted workload has rolled out, and check its new pods."""
    timeout_seconds: int = field(default=600, metadata=_input("timeoutSeconds", "count"))
    """How long each rollout may take."""

    @classmethod
    def declared(
        cls, istio: IstioSettings, options: RestartSettings, mesh: MeshSettings, kubeconfig: str = ""
    ) -> RestartRequest:
        """The request the stack's settings declare."""
        return cls(
            kubeconfig=kubeconfig,
            cni_enabled=istio.cni.enabled,
            # Order and repetition do not change the setting; normalised, a reordered list is no diff.
            exclude_namespaces=tuple(sorted(set(istio.cni.exclude_namespaces))),
            proxy_image=istio.proxy_image,
            canary_revision=istio.canary.revision if istio.canary else "",
            canary_proxy_image=istio.canary_proxy_image,
            canary_namespaces=tuple(sorted(istio.canary.namespaces)) if istio.canary else (),
            mesh_namespaces=tuple(sorted(mesh.namespaces)),
            allow_downgrade_from=istio.allow_downgrade_from or "",
            max_concurrent=options.max_concurrent,
            wait_for_rollout=options.wait_for_rollout,
            timeout_seconds=options.timeout_seconds,
        )

    @classmethod
    def from_inputs(cls, props: Mapping[str, Any]) -> RestartRequest:
        """The request from a property bag that went through the provider's `check`."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            value, kind = props.get(spec.metadata["input"]), spec.metadata["kind"]
            if kind == "names":
                values[spec.name] = tuple(value or ())
            elif kind == "count":
                values[spec.name] = as_int(value) or 1
            elif kind == "boolean":
                values[spec.name] = bool(value)
            elif kind in ("image", "revision"):
                values[spec.name] = str(value or "")
            else:
                values[spec.name] = str(value)
        return cls(**values)

    def planes(self) -> DeclaredPlanes:
        """What the pods of each namespace should run."""
        canary = DataPlane(self.canary_revision, self.canary_proxy_image) if self.canary_revision else None
        return DeclaredPlanes.declare(self.proxy_image, canary, self.canary_namespaces, self.mesh_namespaces)

    def inputs(self) -> dict[str, Any]:
        """The property bag of this request (the inverse of `from_inputs`)."""
        return {
            spec.metadata["input"]: list(value) if isinstance(value := getattr(self, spec.name), tuple) else value
            for spec in fields(self)
        }


INPUT_KINDS: Mapping[str, InputKind] = {
    spec.metadata["input"]: spec.metadata["kind"] for spec in fields(RestartRequest)
}
"""Every input property and how it is checked."""
INPUT_KEYS = tuple(INPUT_KINDS)
ADDED_LATER_KEYS = tuple(spec.metadata["input"] for spec in fields(RestartRequest) if spec.metadata["added_later"])
"""Inputs a state written by an earlier release lacks: missing means their empty value."""
RESTART_KEYS = tuple(spec.metadata["input"] for spec in fields(RestartRequest) if spec.metadata["restarts"])
"""The inputs whose change re-injects sidecars; the others update the state alone."""


def as_int(value: Any) -> int | None:
    """Numbers cross the RPC boundary as floats; accept whole ones."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class RestartError(RuntimeError):
    """The restart could not finish; `restarted` lists what this run restarted before it stopped.

    Its message is the project's own and safe to show: it never quotes a credential.
    """

    def __init__(self, message: str, restarted: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.restarted = restarted
