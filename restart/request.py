"""What one restart is asked to do, and how it fails: the one request type and the one error type.

`RestartRequest` is the resource's inputs, typed: each field names its input property (the camelCase
schema stored in every stack's state), whether a change of it re-injects sidecars, and the settings it
is declared from. The provider checks, diffs and reads its inputs through this class, and the cluster
side receives it whole, so adding an option touches this class alone.

Imports only the standard library and the settings model: the provider host loads this module on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from settings.model import IstioSettings, RestartSettings

InputKind = Literal["boolean", "names", "count", "kubeconfig", "image", "version"]


def _input(name: str, kind: InputKind, *, restarts: bool = False) -> dict[str, Any]:
    return {"input": name, "kind": kind, "restarts": restarts}


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
    proxy_image: str = field(default="", metadata=_input("proxyImage", "image", restarts=True))
    """The `istio-proxy` image istiod injects now; pods running another are re-injected (empty: not compared)."""
    allow_downgrade_from: str = field(default="", metadata=_input("allowDowngradeFrom", "version"))
    """The Istio version an in-place downgrade is acknowledged from (`aks-istio:istio.allowDowngradeFrom`)."""
    max_concurrent: int = field(default=10, metadata=_input("maxConcurrent", "count"))
    """Most workload restarts in flight at once."""
    wait_for_rollout: bool = field(default=True, metadata=_input("waitForRollout", "boolean"))
    """Wait until every restarted workload has rolled out."""
    timeout_seconds: int = field(default=600, metadata=_input("timeoutSeconds", "count"))
    """How long to wait for the rollouts."""

    @classmethod
    def declared(cls, istio: IstioSettings, options: RestartSettings, kubeconfig: str = "") -> RestartRequest:
        """The request the stack's settings declare."""
        return cls(
            kubeconfig=kubeconfig,
            cni_enabled=istio.cni.enabled,
            # Order and repetition do not change the setting; normalised, a reordered list is no diff.
            exclude_namespaces=tuple(sorted(set(istio.cni.exclude_namespaces))),
            proxy_image=istio.proxy_image,
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
            elif kind in ("image", "version"):
                values[spec.name] = str(value or "")
            else:
                values[spec.name] = str(value)
        return cls(**values)

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
