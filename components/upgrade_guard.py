"""`IstioUpgradeGuard`: refuses a move of the control planes Istio does not support, before anything changes.

A Pulumi dynamic resource with no side effect: its inputs are the control planes' part of the declared data plane
(`settings.data_plane.GUARD_KEYS`: versions, the canary's, the mesh's and the ambient namespaces, HBONE), its `check`
compares them
with its old state (what the last `pulumi up` deployed) under `settings.istio_releases`, and every Istio resource of the
mesh depends on it. So a refused move fails the preview of
the pull request, and a `pulumi up --skip-preview` stops before the first release changes.

Imports only `pulumi` and the settings: the engine's provider host re-imports this module by reference.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic

from settings.data_plane import GUARD_KEYS, DeclaredDataPlane, ambient_move_refusal
from settings.istio_releases import upgrade_refusal
from settings.model import IstioSettings, MeshSettings


def _recorded(props: dict[str, Any]) -> dict[str, Any]:
    """The guard's keys of a bag, those a state written before they existed lacks filled in as that state meant
    them (no ambient namespace, no HBONE): an existing stack shows no diff."""
    declared = DeclaredDataPlane.from_inputs(props).inputs()
    return {key: declared[key] for key in GUARD_KEYS}


class UpgradeGuardProvider(pulumi.dynamic.ResourceProvider):
    """Holds no state of its own: the deployed planes come from the old inputs of each call."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        deployed, declared = DeclaredDataPlane.from_inputs(olds), DeclaredDataPlane.from_inputs(news)
        failures = []
        if refusal := upgrade_refusal(deployed, declared):
            failures.append(pulumi.dynamic.CheckFailure("version", refusal))
        if refusal := ambient_move_refusal(deployed, declared, recorded_hbone="hbone" in olds):
            failures.append(pulumi.dynamic.CheckFailure("ambientNamespaces", refusal))
        return pulumi.dynamic.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = _recorded(olds) != _recorded(news)
        return pulumi.dynamic.DiffResult(changes=changed, replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_="istio-upgrade-guard", outs=_recorded(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=_recorded(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class IstioUpgradeGuard(pulumi.dynamic.Resource, module="istio", name="IstioUpgradeGuard"):
    """Records the deployed control planes; refuses (in `check`) a move Istio does not support."""

    version: pulumi.Output[str]
    canaryVersion: pulumi.Output[str]  # noqa: N815 - property names are the resource's camelCase schema

    def __init__(
        self, name: str, istio: IstioSettings, mesh: MeshSettings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        recorded = _recorded(DeclaredDataPlane.declared(istio, mesh).inputs())
        super().__init__(UpgradeGuardProvider(), name, recorded, opts)
