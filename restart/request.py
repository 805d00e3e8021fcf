"""What one restart is asked to do, and how it fails: the one request type and the one error type.

`RestartRequest` is the resource's inputs, typed: the declared data plane (`settings.data_plane`), the cluster's
kubeconfig and the rollout's options. `INPUTS` names each input property (the camelCase schema stored in every
stack's state), how it is checked, and whether a change of it re-injects sidecars.

Imports only the standard library and the settings: the provider host loads this module on every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from settings.data_plane import DeclaredDataPlane
from settings.model import IstioSettings, MeshSettings, RestartSettings

InputKind = Literal["boolean", "names", "count", "kubeconfig", "image", "revision", "version"]


@dataclass(frozen=True)
class Input:
    kind: InputKind
    restarts: bool = False
    """A change of it re-injects sidecars; the others update the state alone."""
    added_later: bool = False
    """A state written before the input existed lacks it; `completed` fills it in."""


INPUTS: Mapping[str, Input] = {
    "kubeconfig": Input("kubeconfig"),
    "cniEnabled": Input("boolean", restarts=True),
    "excludeNamespaces": Input("names", restarts=True),
    "version": Input("version", added_later=True),
    "proxyImage": Input("image", restarts=True, added_later=True),
    "canaryVersion": Input("version", added_later=True),
    "canaryRevision": Input("revision", restarts=True, added_later=True),
    "canaryProxyImage": Input("image", restarts=True, added_later=True),
    "canaryNamespaces": Input("names", restarts=True, added_later=True),
    "meshNamespaces": Input("names", added_later=True),
    "allowDowngradeFrom": Input("version", added_later=True),
    "ambientNamespaces": Input("names", restarts=True, added_later=True),
    "hbone": Input("boolean", restarts=True, added_later=True),
    "maxConcurrent": Input("count"),
    "waitForRollout": Input("boolean"),
    "slowStart": Input("boolean", added_later=True),
    "timeoutSeconds": Input("count"),
}
"""Every input property of the restart resource."""


@dataclass(frozen=True)
class RestartRequest:
    kubeconfig: str = field(repr=False)
    """The cluster's kubeconfig (a secret in the state)."""
    data_plane: DeclaredDataPlane
    """What the pods of each namespace should run."""
    max_concurrent: int = 10
    """The widest the rollout window gets: workloads rolling out at once (without `wait_for_rollout`, PATCHes)."""
    wait_for_rollout: bool = True
    """Wait until every restarted workload has rolled out, and check its new pods."""
    slow_start: bool = True
    """Start the window at one workload and widen it by one per success, up to `max_concurrent`."""
    timeout_seconds: int = 600
    """How long each rollout may take."""
    removing: frozenset[str] = frozenset()
    """Revisions this update removes: the last rolled-out data plane's (the state's) that this one drops. Not an
    input: the provider reads it from its old state. Pods left on one of them stop the update (`stranded`)."""
    entering: frozenset[str] = frozenset()
    """Sidecar namespaces of the mesh whose pods may run without the sidecar they are due: new to the mesh, or moved
    back from ambient mode (`entering_sidecars`). Not an input either; their pods are listed whole, since istiod's
    label finds only the pods it injected."""

    @classmethod
    def of_settings(
        cls, istio: IstioSettings, options: RestartSettings, mesh: MeshSettings, kubeconfig: str = ""
    ) -> RestartRequest:
        """The request the stack's settings declare."""
        return cls(
            kubeconfig=kubeconfig,
            data_plane=DeclaredDataPlane.declared(istio, mesh),
            max_concurrent=options.max_concurrent,
            wait_for_rollout=options.wait_for_rollout,
            slow_start=options.slow_start,
            timeout_seconds=options.timeout_seconds,
        )

    @classmethod
    def from_inputs(cls, props: Mapping[str, Any]) -> RestartRequest:
        """The request of a property bag that went through the provider's `check` (or an older state's)."""
        props = completed(props)
        return cls(
            kubeconfig=str(props.get("kubeconfig") or ""),
            data_plane=DeclaredDataPlane.from_inputs(props),
            max_concurrent=as_int(props.get("maxConcurrent")) or 1,
            wait_for_rollout=bool(props.get("waitForRollout")),
            slow_start=bool(props.get("slowStart")),
            timeout_seconds=as_int(props.get("timeoutSeconds")) or 1,
        )

    def inputs(self) -> dict[str, Any]:
        """The property bag of this request (the inverse of `from_inputs`)."""
        return {
            "kubeconfig": self.kubeconfig,
            **self.data_plane.inputs(),
            "maxConcurrent": self.max_concurrent,
            "waitForRollout": self.wait_for_rollout,
            "slowStart": self.slow_start,
            "timeoutSeconds": self.timeout_seconds,
        }


def entering_sidecars(declared: DeclaredDataPlane, rolled_out: DeclaredDataPlane | None) -> frozenset[str]:
    """The declared sidecar namespaces that ran no sidecars at the last rollout: all of them on a first install
    (`rolled_out` None); none when the last rollout did not record its mesh (an older state: nothing to compare)."""
    if rolled_out is None:
        return declared.sidecar_namespaces
    if not rolled_out.mesh_namespaces:
        return frozenset()
    return declared.sidecar_namespaces - rolled_out.sidecar_namespaces


def completed(props: Mapping[str, Any]) -> dict[str, Any]:
    """The bag with every input an older release did not write filled in, so that its state shows no diff: the
    data plane's as `DeclaredDataPlane.from_inputs` reads it (versions from the images, empty lists and images),
    slow start at its default (it changes how the next restart proceeds, not what the cluster runs)."""
    filled = dict(props)
    missing = [key for key, spec in INPUTS.items() if spec.added_later and filled.get(key) is None]
    if missing:
        declared = DeclaredDataPlane.from_inputs(props).inputs()
        for key in missing:
            filled[key] = RestartSettings.slow_start if key == "slowStart" else declared[key]
    return filled


def as_int(value: Any) -> int | None:
    """Numbers cross the RPC boundary as floats; accept whole ones."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def name_list(refs: Iterable[object], limit: int = 20) -> str:
    """`a, b, c and 7 more`: names for a message, bounded."""
    names = [str(ref) for ref in refs]
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


class RestartError(RuntimeError):
    """The restart could not finish; `restarted` lists what this run restarted before it stopped.

    Its message is the project's own and safe to show: it never quotes a credential.
    """

    def __init__(self, message: str, restarted: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.restarted = restarted
