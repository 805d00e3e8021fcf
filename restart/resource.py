"""`SidecarRestart`: the data plane's rollout, re-injecting the sidecar workloads that run something else than declared.

A Pulumi dynamic resource. Its inputs carry the declared data plane itself (the CNI setting, the default control
plane's proxy image, the canary's revision, image and namespaces: a preview shows which part changed), the
cluster's kubeconfig as a secret, and the restart options. Only a change of the declared data plane (or the
first create) restarts anything; a rotated kubeconfig or changed options update the state alone, and so does
a new `excludeNamespaces` while the CNI stays off (the list has no effect without the plugin).

This module imports only the standard library, `pulumi` and the settings: dill pickles the provider class
by reference, so the engine's provider host re-imports this module, and it must load fast and without side
effects. The Kubernetes client is imported inside the methods that talk to the cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic
from pulumi.output import Unknown
from pulumi.runtime import rpc

from restart.plan import request_fingerprint, summarize
from restart.request import (
    ADDED_LATER_KEYS,
    INPUT_KEYS,
    INPUT_KINDS,
    RESTART_KEYS,
    RestartError,
    RestartRequest,
    as_int,
)
from settings.istio_releases import ControlPlanes, istio_release, upgrade_refusal
from settings.model import IstioSettings, MeshSettings, RestartSettings

OUTPUT_KEYS = ("restarted", "restartReasons", "skipped", "manualRestart", "fingerprint", "restartedAt")


def _plain(value: Any) -> Any:
    """A value without the RPC secret envelope (the host may hand values over wrapped or not)."""
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def _known(value: Any) -> bool:
    """False for values a preview cannot know yet (the host hands them over as `Unknown`)."""
    return value is not None and value != rpc.UNKNOWN and not isinstance(value, Unknown)


def _check_inputs(news: Mapping[str, Any]) -> tuple[dict[str, Any], list[pulumi.dynamic.CheckFailure]]:
    """Validate and normalise known values; unknown ones (in a preview) pass through untouched."""
    inputs = {key: _plain(news.get(key)) for key in INPUT_KEYS}
    failures: list[pulumi.dynamic.CheckFailure] = []

    def fail(key: str, reason: str) -> None:
        failures.append(pulumi.dynamic.CheckFailure(key, reason))

    for key, kind in INPUT_KINDS.items():
        value = inputs[key]
        if value is None and key in ADDED_LATER_KEYS:
            inputs[key] = _empty(kind)
            continue
        if value is None:
            fail(key, "is required")
        if not _known(value):
            continue
        if kind == "boolean" and not isinstance(value, bool):
            fail(key, "must be true or false")
        elif kind == "names":
            if not isinstance(value, list | tuple) or not all(isinstance(ns, str) and ns for ns in value):
                fail(key, "must be a list of namespace names")
            else:
                # Order and repetition do not change the setting; normalising keeps a reordered list from
                # showing up as a diff.
                inputs[key] = sorted(set(value))
        elif kind == "count":
            number = as_int(value)
            if number is None or number < 1:
                fail(key, "must be a whole number of at least 1")
            else:
                inputs[key] = number
        elif kind in ("image", "revision") and not isinstance(value, str):
            fail(key, "must be a string")
        elif kind == "kubeconfig":
            if not isinstance(value, str) or not value.strip():
                fail(key, "must be a non-empty kubeconfig document")
            else:
                # The host does not accept secrets, so the engine sends them in clear; wrapping the value
                # hands it back to the engine marked secret, whatever the engine infers on its own.
                inputs[key] = rpc.wrap_rpc_secret(value)
    return inputs, failures


def _empty(kind: str) -> Any:
    return [] if kind == "names" else ""


def _image_release(image: Any) -> str:
    """The Istio release in a proxy image's tag (`hub/proxyv2:1.30.3[-variant][@digest]`), or ""."""
    if not isinstance(image, str) or ":" not in image:
        return ""
    tag = image.split("@", 1)[0].rsplit(":", 1)[1].split("-", 1)[0]
    return tag if istio_release(tag) else ""


def rolled_out_planes(props: Mapping[str, Any]) -> ControlPlanes | None:
    """The control planes a property bag declares, read from its proxy images (None when it names none)."""
    version = _image_release(_plain(props.get("proxyImage")))
    if not version:
        return None
    return ControlPlanes(
        version=version,
        canary_version=_image_release(_plain(props.get("canaryProxyImage"))),
        canary_namespaces=tuple(_plain(props.get("canaryNamespaces")) or ()),
        mesh_namespaces=tuple(_plain(props.get("meshNamespaces")) or ()),
        allow_downgrade_from=str(_plain(props.get("allowDowngradeFrom")) or ""),
    )


def _progress(message: str) -> None:
    # Inside the provider host there is no engine connection: pulumi.log then writes to stderr, which the
    # engine shows as the resource's diagnostic output.
    pulumi.log.info(f"sidecar restart: {message}")


class SidecarRestartProvider(pulumi.dynamic.ResourceProvider):
    """Restarts the workloads whose sidecars were injected for another CNI setting.

    Holds no state, client or credential: everything comes from the property bags of each call.
    """

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        inputs, failures = _check_inputs(news)
        # The upgrade guard refuses an unsupported move before any release changes, against what was declared
        # last. This state is written only when a rollout succeeded, so it is what the data plane runs: a
        # release upgrade that failed and rolled back cannot make a later skip look like one step.
        deployed, declared = rolled_out_planes(olds), rolled_out_planes(inputs)
        if deployed is not None and declared is not None and (refusal := upgrade_refusal(deployed, declared)):
            failures.append(pulumi.dynamic.CheckFailure("proxyImage", refusal))
        return pulumi.dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = self.changed_keys(olds, news)
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    @staticmethod
    def changed_keys(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """The inputs that differ. An unknown option (the kubeconfig of a cluster being updated, in a
        preview) is not a change by itself: it can restart nothing, and `pulumi up` diffs again with the
        real value. An unknown CNI input may well differ, so it counts.
        """

        def value(props: Mapping[str, Any], key: str) -> Any:
            plain = _plain(props.get(key))
            # An input a state written before it existed lacks is its empty value, not a change.
            return _empty(INPUT_KINDS[key]) if plain is None and key in ADDED_LATER_KEYS else plain

        return [
            key
            for key in INPUT_KEYS
            if value(olds, key) != value(news, key) and (key in RESTART_KEYS or _known(_plain(news.get(key))))
        ]

    @staticmethod
    def restarts(olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
        """Whether the declared data plane changed (its fingerprint, which ignores the exclusions while the CNI
        is off)."""

        def fingerprint(props: Mapping[str, Any]) -> str:
            return request_fingerprint(RestartRequest.from_inputs({key: _plain(props.get(key)) for key in INPUT_KEYS}))

        return fingerprint(olds) != fingerprint(news)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        # The first install on a running cluster is the article's case: restart what needs it.
        outs = self._restart(props)
        return pulumi.dynamic.CreateResult(id_=f"sidecar-restart-{uuid.uuid4().hex[:12]}", outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        if self.restarts(olds, news):
            return pulumi.dynamic.UpdateResult(outs=self._restart(news))
        carried = {key: _plain(olds.get(key)) for key in OUTPUT_KEYS}
        return pulumi.dynamic.UpdateResult(outs={**self._inputs_out(news), **carried})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Removing the resource leaves the workloads as they are: nothing to undo.
        return None

    @staticmethod
    def _inputs_out(props: Mapping[str, Any]) -> dict[str, Any]:
        outs = {key: _plain(props.get(key)) for key in INPUT_KEYS}
        outs["kubeconfig"] = rpc.wrap_rpc_secret(outs["kubeconfig"])
        return outs

    def _restart(self, props: Mapping[str, Any]) -> dict[str, Any]:
        from restart import run  # heavy: only where the cluster is needed

        request = RestartRequest.from_inputs({key: _plain(props.get(key)) for key in INPUT_KEYS})
        try:
            outcome = run.run_restart(request, _progress)
        except RestartError as exc:
            # `from None`: the host prints the traceback of what it catches, and a chained client error would
            # bring its response headers along; our message says all that matters.
            raise RestartError(f"sidecar restart failed: {exc}", exc.restarted) from None
        except Exception as exc:
            # Not one of ours (a client or loader error): its message and chain may quote the kubeconfig,
            # and the provider host sends the whole traceback to the engine. Keep only its type.
            raise RestartError(
                f"sidecar restart failed unexpectedly ({type(exc).__module__}.{type(exc).__name__}); "
                "workloads restarted before it are recorded on them and listed in the log above"
            ) from None
        return {
            **self._inputs_out(props),
            "restarted": list(outcome.restarted),
            "restartReasons": outcome.restart_reasons,
            "skipped": summarize(outcome.skipped),
            "manualRestart": outcome.manual_restart,
            "fingerprint": outcome.fingerprint,
            "restartedAt": outcome.restarted_at,
        }


@dataclass(frozen=True)
class SidecarRestartArgs:
    istio: IstioSettings
    """The mesh as installed: its CNI setting and the proxy istiod injects; a change of either re-injects."""
    options: RestartSettings
    """Concurrency, waiting and timeout of the restart."""
    mesh: MeshSettings
    """The mesh namespaces, whose pods must run exactly their declared control plane."""
    kubeconfig: pulumi.Input[str]
    """Kubeconfig of the cluster (a secret Output in practice; made secret here in any case)."""


class SidecarRestart(pulumi.dynamic.Resource, module="restart", name="SidecarRestart"):
    """Restarts the sidecar workloads whose redirection, revision or proxy differs from what their namespace declares.

    Outputs: `restarted` (`Kind/namespace/name` of each workload restarted), `restartReasons` (`{reason:
    [Kind/namespace/name, ...]}`, `redirection`, `proxyVersion` or `revision`), `manualRestart`
    (`{reason: [Kind/namespace/name, ...]}`, each one needs a person), `skipped`
    (`{reason: {"count": n, "workloads": [the first 50 names]}}`: `noSidecar` alone can count every pod owner
    of the cluster, so only a sample is kept), `fingerprint` (of the declared data plane), `restartedAt` (RFC 3339).
    """

    cniEnabled: pulumi.Output[bool]  # noqa: N815 - property names are the resource's camelCase schema
    excludeNamespaces: pulumi.Output[list[str]]  # noqa: N815
    kubeconfig: pulumi.Output[str]
    maxConcurrent: pulumi.Output[int]  # noqa: N815
    waitForRollout: pulumi.Output[bool]  # noqa: N815
    timeoutSeconds: pulumi.Output[int]  # noqa: N815
    restarted: pulumi.Output[list[str]]
    restartReasons: pulumi.Output[dict[str, list[str]]]  # noqa: N815
    skipped: pulumi.Output[dict[str, dict[str, Any]]]
    manualRestart: pulumi.Output[dict[str, list[str]]]  # noqa: N815
    fingerprint: pulumi.Output[str]
    restartedAt: pulumi.Output[str]  # noqa: N815

    def __init__(self, name: str, args: SidecarRestartArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            **RestartRequest.declared(args.istio, args.options, args.mesh).inputs(),
            "kubeconfig": pulumi.Output.secret(args.kubeconfig),
            **dict.fromkeys(OUTPUT_KEYS),
        }
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])
        super().__init__(SidecarRestartProvider(), name, props, pulumi.ResourceOptions.merge(opts, secret_outputs))
