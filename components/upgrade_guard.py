"""`IstioUpgradeGuard`: refuses a move of the control planes Istio does not support, before anything changes.

A Pulumi dynamic resource with no side effect: its inputs are the declared control planes (versions, the
canary's namespaces), its `check` compares them with its old state (what the last `pulumi up` deployed) under
`settings.istio_releases`, and every Istio resource of the mesh depends on it. So a refused move fails the preview of
the pull request, and a `pulumi up --skip-preview` stops before the first release changes.

Imports only `pulumi` and the settings: the engine's provider host re-imports this module by reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi.dynamic

from settings.istio_releases import ControlPlanes, upgrade_refusal
from settings.model import IstioSettings, MeshSettings

_FIELDS = {
    "version": "version",
    "canaryVersion": "canary_version",
    "canaryNamespaces": "canary_namespaces",
    "meshNamespaces": "mesh_namespaces",
    "allowDowngradeFrom": "allow_downgrade_from",
}
"""Input property -> ControlPlanes field."""


def declared_planes(istio: IstioSettings, mesh: MeshSettings) -> ControlPlanes:
    return ControlPlanes(
        version=istio.version,
        canary_version=istio.canary.version if istio.canary else "",
        canary_namespaces=tuple(sorted(istio.canary.namespaces)) if istio.canary else (),
        mesh_namespaces=tuple(sorted(mesh.namespaces)),
        allow_downgrade_from=istio.allow_downgrade_from or "",
    )


def planes_from(props: Mapping[str, Any]) -> ControlPlanes | None:
    """The planes of a property bag; None for an empty one (the first `up`: nothing deployed to compare with)."""
    if not props.get("version"):
        return None
    values = {field: props.get(key) for key, field in _FIELDS.items()}
    return ControlPlanes(
        version=str(values["version"]),
        canary_version=str(values["canary_version"] or ""),
        canary_namespaces=tuple(values["canary_namespaces"] or ()),
        mesh_namespaces=tuple(values["mesh_namespaces"] or ()),
        allow_downgrade_from=str(values["allow_downgrade_from"] or ""),
    )


def _props(planes: ControlPlanes) -> dict[str, Any]:
    return {
        key: list(value) if isinstance(value := getattr(planes, field), tuple) else value
        for key, field in _FIELDS.items()
    }


class UpgradeGuardProvider(pulumi.dynamic.ResourceProvider):
    """Holds no state of its own: the deployed planes come from the old inputs of each call."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        deployed, declared = planes_from(olds), planes_from(news)
        failures = []
        if deployed is not None and declared is not None:
            refusal = upgrade_refusal(deployed, declared)
            if refusal is not None:
                failures.append(pulumi.dynamic.CheckFailure("version", refusal))
        return pulumi.dynamic.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = any(olds.get(key) != news.get(key) for key in _FIELDS)
        return pulumi.dynamic.DiffResult(changes=changed, replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_="istio-upgrade-guard", outs={key: props.get(key) for key in _FIELDS})

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs={key: news.get(key) for key in _FIELDS})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class IstioUpgradeGuard(pulumi.dynamic.Resource, module="istio", name="IstioUpgradeGuard"):
    """Records the deployed control planes; refuses (in `check`) a move Istio does not support."""

    version: pulumi.Output[str]
    canaryVersion: pulumi.Output[str]  # noqa: N815 - property names are the resource's camelCase schema

    def __init__(
        self, name: str, istio: IstioSettings, mesh: MeshSettings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(UpgradeGuardProvider(), name, _props(declared_planes(istio, mesh)), opts)
