"""`AmbientMoveCheck`: refuses to move a namespace to ambient mode while its Istio policy objects would break silently.

A Pulumi dynamic resource that the namespaces' ambient labels depend on. Its inputs are every namespace the stack
declares ambient (`{"name", "waypoint", "acknowledge"}`) and the cluster's kubeconfig as a secret. On create, and on
an update that changes the namespaces, it reads the cluster (`restart.ambient_check`): for each declared namespace not
labelled ambient yet, the Istio objects of `restart.ambient_findings`; any finding its namespace does not acknowledge
fails the resource with a message naming each one, so no label changes. `check` and `diff` never contact the cluster:
a preview shows that the check will run, not its outcome. A rotated kubeconfig updates the state alone.

This module imports only the standard library, `pulumi`, the settings and `restart.request`: dill pickles the
provider class by reference, so the engine's provider host re-imports this module, and it must load fast and without
side effects. The findings and the Kubernetes client are imported inside the methods that need them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi.dynamic
from pulumi.runtime import rpc

from restart.properties import checked_kubeconfig, failing_safely, known, plain
from restart.request import RestartError
from settings.model import MeshSettings

INPUT_KEYS = ("kubeconfig", "namespaces")
OUTPUT_KEYS = ("accepted",)
NAMESPACE_KEYS = ("name", "waypoint", "acknowledge")


def _namespaces(value: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The namespaces input normalised (sorted by name, each acknowledgement once, sorted), or why it is invalid."""
    if not isinstance(value, list | tuple):
        return None, "must be a list of {name, waypoint, acknowledge} objects"
    normalised: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(value):
        where = f"namespaces[{index}]"
        if not isinstance(item, Mapping):
            return None, f"{where} must be an object with name, waypoint and acknowledge"
        if unknown := sorted(str(key) for key in item if key not in NAMESPACE_KEYS):
            return None, f"{where} has unknown keys: {', '.join(unknown)}"
        name, waypoint, acknowledge = item.get("name"), item.get("waypoint") or "", item.get("acknowledge") or []
        if not isinstance(name, str) or not name:
            return None, f"{where}.name must be a namespace name"
        if name in normalised:
            return None, f"{where}.name repeats a namespace: each one is listed once"
        if not isinstance(waypoint, str):
            return None, f"{where}.waypoint must be a waypoint name, or empty for none"
        if not isinstance(acknowledge, list | tuple) or not all(isinstance(key, str) and key for key in acknowledge):
            return None, f"{where}.acknowledge must be a list of finding keys (Kind/namespace/name)"
        normalised[name] = {"name": name, "waypoint": waypoint, "acknowledge": sorted(set(acknowledge))}
    return [normalised[name] for name in sorted(normalised)], None


def _progress(message: str) -> None:
    # Inside the provider host there is no engine connection: pulumi.log then writes to stderr, which the
    # engine shows as the resource's diagnostic output.
    pulumi.log.info(f"ambient move check: {message}")


class AmbientMoveCheckProvider(pulumi.dynamic.ResourceProvider):
    """Reads the Istio policy objects of the namespaces about to move to ambient mode and refuses the move while one
    would break silently and is not acknowledged.

    Holds no state, client or credential: everything comes from the property bags of each call.
    """

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        inputs = {key: plain(news.get(key)) for key in INPUT_KEYS}
        failures: list[pulumi.dynamic.CheckFailure] = []
        kubeconfig, namespaces = inputs["kubeconfig"], inputs["namespaces"]
        if kubeconfig is None:
            failures.append(pulumi.dynamic.CheckFailure("kubeconfig", "is required"))
        elif known(kubeconfig):
            inputs["kubeconfig"], reason = checked_kubeconfig(kubeconfig)
            if reason is not None:
                failures.append(pulumi.dynamic.CheckFailure("kubeconfig", reason))
        if namespaces is None:
            failures.append(pulumi.dynamic.CheckFailure("namespaces", "is required"))
        elif known(namespaces):
            normalised, reason = _namespaces(namespaces)
            if reason is not None:
                failures.append(pulumi.dynamic.CheckFailure("namespaces", reason))
            else:
                inputs["namespaces"] = normalised
        return pulumi.dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = self.changed_keys(olds, news)
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    @staticmethod
    def changed_keys(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """The inputs that differ. An unknown kubeconfig (of a cluster being updated, in a preview) is no change by
        itself: it checks nothing, and `pulumi up` diffs again with the real value. Unknown namespaces may differ."""
        old, new = ({key: plain(bag.get(key)) for key in INPUT_KEYS} for bag in (olds, news))
        return [key for key in INPUT_KEYS if old[key] != new[key] and (key == "namespaces" or known(new[key]))]

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = self._check_cluster(props)
        return pulumi.dynamic.CreateResult(id_=f"ambient-move-check-{uuid.uuid4().hex[:12]}", outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        if plain(olds.get("namespaces")) != plain(news.get("namespaces")):
            return pulumi.dynamic.UpdateResult(outs=self._check_cluster(news))
        carried = {key: plain(olds.get(key)) for key in OUTPUT_KEYS}
        return pulumi.dynamic.UpdateResult(outs={**self._inputs_out(news), **carried})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # The check changed nothing in the cluster: nothing to undo.
        return None

    @staticmethod
    def _inputs_out(props: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "kubeconfig": rpc.wrap_rpc_secret(plain(props.get("kubeconfig"))),
            "namespaces": plain(props.get("namespaces")),
        }

    def _check_cluster(self, props: Mapping[str, Any]) -> dict[str, Any]:
        from restart.ambient_check import check_moves  # heavy: only where the cluster is needed
        from restart.ambient_findings import refusal

        declared = plain(props.get("namespaces")) or []
        waypoints = {str(item["name"]): str(item.get("waypoint") or "") for item in declared}
        acknowledged = {str(item["name"]): frozenset(item.get("acknowledge") or ()) for item in declared}
        left = "no namespace label was changed"
        with failing_safely("ambient move check", left, suffix=f"; {left}"):
            findings = check_moves(str(plain(props.get("kubeconfig")) or ""), waypoints)
        if message := refusal(findings, acknowledged):
            raise RestartError(message) from None
        accepted = {
            namespace: sorted({finding.key for finding in found} & acknowledged[namespace])
            for namespace, found in findings.items()
        }
        moving = ", ".join(sorted(findings)) or "none"
        _progress(
            f"namespaces moving to ambient mode: {moving}; acknowledged findings: {sum(map(len, accepted.values()))}"
        )
        return {**self._inputs_out(props), "accepted": accepted}


class AmbientMoveCheck(pulumi.dynamic.Resource, module="restart", name="AmbientMoveCheck"):
    """Refuses to move namespaces to ambient mode while an Istio object of theirs would break silently.

    Outputs: `namespaces` (the inputs, normalised) and `accepted` (`{namespace: [finding keys]}`: for each namespace
    the last run found moving, the acknowledged findings it found).
    """

    kubeconfig: pulumi.Output[str]
    namespaces: pulumi.Output[list[dict[str, Any]]]
    accepted: pulumi.Output[dict[str, list[str]]]

    def __init__(
        self,
        name: str,
        mesh: MeshSettings,
        kubeconfig: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "namespaces": declared_moves(mesh),
            "kubeconfig": pulumi.Output.secret(kubeconfig),
            **dict.fromkeys(OUTPUT_KEYS),
        }
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])
        super().__init__(AmbientMoveCheckProvider(), name, props, pulumi.ResourceOptions.merge(opts, secret_outputs))


def declared_moves(mesh: MeshSettings) -> list[dict[str, Any]]:
    """The `namespaces` input: every ambient namespace of the mesh, by name, with its waypoint and acknowledgements."""
    return [
        {"name": namespace, "waypoint": ambient.waypoint, "acknowledge": sorted(set(ambient.acknowledge))}
        for namespace, ambient in sorted(mesh.ambient.items())
    ]
