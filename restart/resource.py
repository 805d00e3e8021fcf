"""`SidecarRestart`: the data plane's rollout, re-injecting the sidecar workloads that run something else than declared.

A Pulumi dynamic resource. Its inputs carry the declared data plane itself (`settings.data_plane`: the CNI
setting, each control plane's version, revision and proxy image, the canary's namespaces: a preview shows which
part changed), the cluster's kubeconfig as a secret, and the restart options. Only a change of the declared data
plane (or the first create) restarts anything; a rotated kubeconfig or changed options update the state alone,
and so does a new `excludeNamespaces` while the CNI stays off (the list has no effect without the plugin).

This module imports only the standard library, `pulumi` and the settings: dill pickles the provider class
by reference, so the engine's provider host re-imports this module, and it must load fast and without side
effects. The Kubernetes client is imported inside the methods that talk to the cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pulumi
import pulumi.dynamic
from pulumi.runtime import rpc

from restart.plan import fingerprint
from restart.properties import checked_kubeconfig, failing_safely, known, plain
from restart.report import summarize
from restart.request import INPUTS, RestartRequest, as_int, completed, entering_sidecars
from settings.data_plane import DeclaredDataPlane, ambient_move_refusal
from settings.istio_releases import upgrade_refusal
from settings.model import IstioSettings, MeshSettings, RestartSettings

OUTPUT_KEYS = ("restarted", "restartReasons", "skipped", "manualRestart", "fingerprint", "restartedAt")


def _check_inputs(news: Mapping[str, Any]) -> tuple[dict[str, Any], list[pulumi.dynamic.CheckFailure]]:
    """Validate and normalise known values; unknown ones (in a preview) pass through untouched."""
    inputs = completed({key: plain(news.get(key)) for key in INPUTS})
    failures: list[pulumi.dynamic.CheckFailure] = []

    def fail(key: str, reason: str) -> None:
        failures.append(pulumi.dynamic.CheckFailure(key, reason))

    for key, spec in INPUTS.items():
        value, kind = inputs[key], spec.kind
        if value is None:
            fail(key, "is required")
        if not known(value):
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
        elif kind in ("image", "revision", "version") and not isinstance(value, str):
            fail(key, "must be a string")
        elif kind == "kubeconfig":
            inputs[key], reason = checked_kubeconfig(value)
            if reason is not None:
                fail(key, reason)
    return inputs, failures


def _plain_bag(props: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of a property bag, unwrapped, with those an older release did not write filled in."""
    return completed({key: plain(props.get(key)) for key in INPUTS})


def _data_plane(props: Mapping[str, Any]) -> DeclaredDataPlane:
    return DeclaredDataPlane.from_inputs(_plain_bag(props))


def _progress(message: str) -> None:
    # Inside the provider host there is no engine connection: pulumi.log then writes to stderr, which the
    # engine shows as the resource's diagnostic output.
    pulumi.log.info(f"sidecar restart: {message}")


class SidecarRestartProvider(pulumi.dynamic.ResourceProvider):
    """Restarts the workloads whose pods run another data plane than their namespace declares.

    Holds no state, client or credential: everything comes from the property bags of each call.
    """

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        inputs, failures = _check_inputs(news)
        # The upgrade guard refuses an unsupported move before any release changes, against what was declared
        # last. This state is written only when a rollout succeeded, so it is what the data plane runs: a
        # release upgrade that failed and rolled back cannot make a later skip look like one step.
        if not failures:
            deployed, declared = _data_plane(olds), DeclaredDataPlane.from_inputs(inputs)
            if refusal := upgrade_refusal(deployed, declared):
                failures.append(pulumi.dynamic.CheckFailure("version", refusal))
            if refusal := ambient_move_refusal(deployed, declared, recorded_hbone=olds.get("hbone") is not None):
                failures.append(pulumi.dynamic.CheckFailure("ambientNamespaces", refusal))
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

        # An input a state written before it existed lacks is what that state meant, not a change.
        old, new = _plain_bag(olds), {key: plain(news.get(key)) for key in INPUTS}
        return [key for key, spec in INPUTS.items() if old[key] != new[key] and (spec.restarts or known(new[key]))]

    @staticmethod
    def restarts(olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
        """Whether the declared data plane changed (its fingerprint, which ignores the exclusions while the CNI
        is off), or a namespace joined the sidecars of the mesh (its pods are due one)."""
        rolled_out, declared = _data_plane(olds), _data_plane(news)
        return fingerprint(rolled_out) != fingerprint(declared) or bool(entering_sidecars(declared, rolled_out))

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        # The first install on a running cluster is the article's case: restart what needs it.
        outs = self._restart(props)
        return pulumi.dynamic.CreateResult(id_=f"sidecar-restart-{uuid.uuid4().hex[:12]}", outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        if self.restarts(olds, news):
            return pulumi.dynamic.UpdateResult(outs=self._restart(news, olds))
        carried = {key: plain(olds.get(key)) for key in OUTPUT_KEYS}
        return pulumi.dynamic.UpdateResult(outs={**self._inputs_out(news), **carried})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Removing the resource leaves the workloads as they are: nothing to undo.
        return None

    @staticmethod
    def _inputs_out(props: Mapping[str, Any]) -> dict[str, Any]:
        outs = _plain_bag(props)
        outs["kubeconfig"] = rpc.wrap_rpc_secret(outs["kubeconfig"])
        return outs

    def _restart(self, props: Mapping[str, Any], olds: Mapping[str, Any] | None = None) -> dict[str, Any]:
        from restart import run  # heavy: only where the cluster is needed

        request = RestartRequest.from_inputs(_plain_bag(props))
        rolled_out = None if olds is None else _data_plane(olds)
        request = replace(
            request,
            removing=frozenset() if rolled_out is None else rolled_out.revisions - request.data_plane.revisions,
            entering=entering_sidecars(request.data_plane, rolled_out),
        )
        unexpected = "workloads restarted before it are recorded on them and listed in the log above"
        with failing_safely("sidecar restart", unexpected):
            outcome = run.run_restart(request, _progress)
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
    """The mesh as installed: the data plane it declares (CNI, control planes, proxies); a change of it re-injects."""
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
    (`{reason: {"count": n, "workloads": [the first 50 names]}}`: `alreadyMatching` alone can count every workload
    of the mesh, so only a sample is kept), `fingerprint` (of the declared data plane), `restartedAt` (RFC 3339).
    """

    cniEnabled: pulumi.Output[bool]  # noqa: N815 - property names are the resource's camelCase schema
    excludeNamespaces: pulumi.Output[list[str]]  # noqa: N815
    kubeconfig: pulumi.Output[str]
    maxConcurrent: pulumi.Output[int]  # noqa: N815
    waitForRollout: pulumi.Output[bool]  # noqa: N815
    slowStart: pulumi.Output[bool]  # noqa: N815
    timeoutSeconds: pulumi.Output[int]  # noqa: N815
    restarted: pulumi.Output[list[str]]
    restartReasons: pulumi.Output[dict[str, list[str]]]  # noqa: N815
    skipped: pulumi.Output[dict[str, dict[str, Any]]]
    manualRestart: pulumi.Output[dict[str, list[str]]]  # noqa: N815
    fingerprint: pulumi.Output[str]
    restartedAt: pulumi.Output[str]  # noqa: N815

    def __init__(self, name: str, args: SidecarRestartArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            **RestartRequest.of_settings(args.istio, args.options, args.mesh).inputs(),
            "kubeconfig": pulumi.Output.secret(args.kubeconfig),
            **dict.fromkeys(OUTPUT_KEYS),
        }
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])
        super().__init__(SidecarRestartProvider(), name, props, pulumi.ResourceOptions.merge(opts, secret_outputs))
