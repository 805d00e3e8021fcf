"""IstioMesh: Istio from its Helm charts, with the CNI plugin, on the cluster the Provider points at.

Install and upgrade order, as Istio's Helm upgrade guide gives it: `base` (CRDs) -> `cni` (the node agent,
when enabled) -> `istiod` (and the canary's `istiod-<revision>`, when declared) -> the ingress `gateway`; the
addons after istiod. The application namespaces follow the control planes when the CNI is enabled and precede
them when not, so their Pod Security label never rejects what istiod injects.

Ambient mode (`istio.ambient.enabled`, which needs the CNI) follows Istio's Helm guide for it instead: `base` ->
the Gateway API CRDs -> `istiod` (and the canary) with the `ambient` profile -> `cni` with it -> `ztunnel`. The same
order holds an upgrade, in place or by canary: istiod first, then the node agents, which may be one minor older than
istiod but never newer.

Ambient namespaces (`mesh.namespaces[].mode: ambient`) carry `istio.io/dataplane-mode=ambient` instead of an injection
label, in the one update of their Namespace, so no pod is ever created with neither. A declared waypoint (a Gateway of
class `istio-waypoint`) follows its namespace, and `istio.io/use-waypoint` follows the waypoint once it is Programmed
(a Namespace patch of its own): no service is bound to a waypoint that cannot serve it yet. Running pods keep their
sidecars until the data plane's rollout, which waits for all of this (`rollout_dependencies`); a namespace moved back
loses its waypoint only at the end of the update, after its pods have their sidecars again.

Revisions: the first install stays unrevisioned (release `istiod`, revision `default`) for the stack's whole
life, so no existing stack ever replaces it; an in-place upgrade and a promotion upgrade it. A canary is a
release of its own (`istiod-1-30-3`) that owns the revision tag `canary`: each webhook is created and removed
with one release, never handed from one to another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes import yaml as k8s_yaml
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.core import v1 as core
from pulumi_kubernetes.helm import v3 as helm

from components.addon_values import addon_charts, tracing_mesh_config
from components.istio_values import (
    ISTIO_CHART_REPOSITORY,
    base_values,
    canary_istiod_values,
    cni_values,
    gateway_values,
    istiod_values,
    ztunnel_values,
)
from settings.model import (
    CANARY_TAG,
    DATAPLANE_MODE_LABEL,
    INJECTION_LABEL,
    ISTIO_NAMESPACE,
    PROJECT,
    REVISION_LABEL,
    USE_WAYPOINT_LABEL,
    IstioSettings,
    MeshSettings,
)
from settings.operator_file import operator_manifest

POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce"

RELEASE_TIMEOUT_SECONDS = 600
"""The CNI DaemonSet rolls out node by node; on a large pool that takes longer than Helm's 5 minutes."""
RELEASE_HISTORY = 10
"""Helm keeps one Secret per revision; bound it so upgrades don't accumulate them forever."""
GATEWAY_API_VERSION = "v1.5.1"
"""The Gateway API release whose standard-channel CRDs ambient mode installs (the one Istio 1.30 is built against)."""
WAYPOINT_CLASS = "istio-waypoint"
HBONE_PORT = 15008
WAIT_FOR_PROGRAMMED = {"pulumi.com/waitFor": "condition=Programmed"}
"""pulumi-kubernetes' await annotation: the waypoint counts as created once istiod has programmed it."""
GATEWAY_API_CRDS_FILE = "components/gateway_api/standard-install.yaml"
"""The vendored CRDs (see its README), relative to the project directory, where Pulumi runs the program: a path
that is the same on every machine, so it never shows as a change."""


@dataclass(frozen=True)
class IstioMeshArgs:
    istio: IstioSettings
    mesh: MeshSettings
    gated_by: Sequence[pulumi.Resource] = ()
    """What every child waits for: the upgrade guard, whose check refuses a bad move before anything changes."""
    namespaces_gated_by: Sequence[pulumi.Resource] = ()
    """What the mesh namespaces' labels wait for as well: the ambient move check, which refuses a move to ambient
    mode that would silently break a policy, before any label changes."""
    secret_sections: frozenset[str] = frozenset()
    """The config objects set as secrets (`StackSettings.secret_sections`): with `istio` among them, the Istio
    releases' values are secret; with `istio` or `mesh`, the IstioOperator manifest is."""


def application_namespace_labels(cni_enabled: bool, on_canary: bool = False, ambient: bool = False) -> dict[str, str]:
    """Labels of a mesh namespace: its data plane, and Pod Security `baseline` when the CNI allows it.

    `istio-injection=enabled` follows the default revision; `istio.io/rev=canary` the canary's tag (the injector
    webhooks ignore a namespace's `istio.io/rev` while it also has `istio-injection`, so it has one or the other);
    `istio.io/dataplane-mode=ambient` puts it in ambient mode, with no injection label at all.
    """
    if ambient:
        labels = {DATAPLANE_MODE_LABEL: "ambient"}
    else:
        labels = {REVISION_LABEL: CANARY_TAG} if on_canary else {INJECTION_LABEL: "enabled"}
    if cni_enabled:
        # The payoff of the CNI plugin: injected pods no longer need NET_ADMIN/NET_RAW, so the
        # namespace can forbid them. Without the plugin, `baseline` would reject istio-init.
        labels[POD_SECURITY_ENFORCE] = "baseline"
    return labels


class IstioMesh(pulumi.ComponentResource):
    """Istio with the CNI plugin, its ingress gateway, the application namespaces and the addons."""

    istio_namespace: pulumi.Output[str]
    base_release: helm.Release
    cni_release: helm.Release | None
    istiod_release: helm.Release
    canary_release: helm.Release | None
    """The canary control plane `istiod-<revision>`, when `istio.canary` is declared."""
    gateway_release: helm.Release | None
    gateway_api_crds: k8s_yaml.v2.ConfigFile | None
    """The Gateway API CRDs, with ambient mode."""
    ztunnel_release: helm.Release | None
    """ambient mode's node proxy, with ambient mode."""
    addon_releases: dict[str, helm.Release]
    application_namespaces: list[core.Namespace]
    """The `mesh.namespaces`, whose Pod Security label changes with the CNI setting."""
    waypoints: dict[str, CustomResource]
    """Each ambient namespace's declared waypoint, by namespace."""
    waypoint_labels: dict[str, core.NamespacePatch]
    """`istio.io/use-waypoint` on each namespace with a waypoint, set once the waypoint is Programmed."""
    mesh_data_plane: dict[str, dict[str, str]]
    """Each mesh namespace's `mode` (sidecar or ambient) and `waypoint` ("" for none): the `meshDataPlane` output."""
    rollout_dependencies: list[pulumi.Resource]
    """What the data-plane rollout must wait for: the releases that decide how new pods are injected
    (`cni`, `istiod`) and the namespaces whose Pod Security level must already admit them."""
    cni_enabled: bool
    cni_exclude_namespaces: list[str]
    mesh_namespaces: pulumi.Output[list[str]]
    ingress_gateway_namespace: pulumi.Output[str] | None
    operator_manifest: pulumi.Output[str]

    def __init__(self, name: str, args: IstioMeshArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{PROJECT}:istio:IstioMesh", name, None, opts)
        istio, mesh, gated_by = args.istio, args.mesh, args.gated_by
        # Every value is computed before the first child is registered (the settings checked
        # themselves when built), so nothing here can fail half-way through the mesh.
        values = {
            "base": base_values(istio),
            "cni": cni_values(istio),
            "istiod": istiod_values(istio, tracing_mesh_config(istio)),
            "gateway": gateway_values(istio),
        }
        if istio.canary is not None:
            values["canary"] = canary_istiod_values(istio, tracing_mesh_config(istio))
        if istio.ambient.enabled:
            values["ztunnel"] = ztunnel_values(istio)
        canary = istio.canary
        addons = addon_charts(istio)
        # Pulumi says which config objects are secret, not which values below them: whatever a secret object
        # gives Helm or the manifest is secret as a whole, so no part of it reaches the state or a preview in clear.
        secret_values = "istio" in args.secret_sections
        manifest = operator_manifest(istio, mesh)
        secret_manifest = secret_values or "mesh" in args.secret_sections
        self.operator_manifest = (
            pulumi.Output.secret(manifest) if secret_manifest else pulumi.Output.from_input(manifest)
        )

        def release_values(chart_values: Mapping[str, Any]) -> pulumi.Input[Mapping[str, Any]]:
            return pulumi.Output.secret(dict(chart_values)) if secret_values else dict(chart_values)

        system_namespace = core.Namespace(
            f"{name}-istio-system",
            metadata={
                "name": ISTIO_NAMESPACE,
                # The CNI node agent mounts hostPath volumes and runs privileged.
                "labels": {POD_SECURITY_ENFORCE: "privileged"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(gated_by)),
        )
        self.istio_namespace = system_namespace.metadata.apply(lambda m: str(m.name))

        def release(
            role: str,
            release_name: str,
            chart: str,
            chart_values: Mapping[str, Any],
            after: Sequence[pulumi.Resource],
            namespace: str = ISTIO_NAMESPACE,
            repository: str = ISTIO_CHART_REPOSITORY,
            version: str = istio.version,
            istio_values: bool = True,
        ) -> helm.Release:
            return helm.Release(
                f"{name}-{role}",
                name=release_name,  # stable Helm release names: no random suffix
                chart=chart,
                version=version,
                namespace=namespace,
                repository_opts=helm.RepositoryOptsArgs(repo=repository),
                values=release_values(chart_values) if istio_values else dict(chart_values),
                # A failed install or upgrade rolls back instead of leaving a half-applied release.
                atomic=True,
                cleanup_on_fail=True,
                timeout=RELEASE_TIMEOUT_SECONDS,
                max_history=RELEASE_HISTORY,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(after)),
            )

        def application_namespaces(after: Sequence[pulumi.Resource]) -> list[core.Namespace]:
            on_canary = set(canary.namespaces) if canary else set()
            return [
                core.Namespace(
                    f"{name}-ns-{namespace}",
                    metadata={
                        "name": namespace,
                        "labels": application_namespace_labels(
                            istio.cni.enabled, namespace in on_canary, ambient=namespace in mesh.ambient
                        ),
                    },
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[*gated_by, *args.namespaces_gated_by, *after]),
                )
                for namespace in mesh.namespaces
            ]

        def canary_plane(after: Sequence[pulumi.Resource]) -> list[helm.Release]:
            if canary is None:
                return []
            # Its own Pulumi name: while a canary exists its version cannot change (the upgrade guard refuses
            # it), since a second release cannot take over the `canary` tag's webhook.
            return [
                release(
                    "istiod-canary",
                    f"istiod-{canary.revision}",
                    "istiod",
                    values["canary"],
                    after,
                    version=canary.version,
                )
            ]

        # `base`, `cni` and `ztunnel` serve both control planes: they run the newer release.
        shared_version = istio.shared_chart_version
        self.base_release = release(
            "base", "istio-base", "base", values["base"], [system_namespace], version=shared_version
        )
        self.cni_release = None
        self.gateway_api_crds = None
        self.ztunnel_release = None
        if istio.ambient.enabled:
            # Istio's order for ambient mode. The CRDs outlive the setting (retained when it is turned off): deleting
            # a CRD deletes every object of its kind, Gateways and routes the teams wrote included.
            self.gateway_api_crds = k8s_yaml.v2.ConfigFile(
                f"{name}-gateway-api-crds",
                file=GATEWAY_API_CRDS_FILE,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.base_release], retain_on_delete=True),
            )
            self.istiod_release = release("istiod", "istiod", "istiod", values["istiod"], [self.gateway_api_crds])
            canaries = canary_plane([self.gateway_api_crds])
            # The node agents after every istiod: an upgrade, in place or by canary, moves the control plane first.
            self.cni_release = release(
                "cni", "istio-cni", "cni", values["cni"], [self.istiod_release, *canaries], version=shared_version
            )
            self.ztunnel_release = release(
                "ztunnel", "ztunnel", "ztunnel", values["ztunnel"], [self.cni_release], version=shared_version
            )
            self.application_namespaces = application_namespaces(
                [self.istiod_release, *canaries, self.cni_release, self.ztunnel_release]
            )
        elif istio.cni.enabled:
            # Before istiod: pods injected for the CNI would start without traffic redirection if
            # the node agent weren't there yet.
            self.cni_release = release(
                "cni", "istio-cni", "cni", values["cni"], [self.base_release], version=shared_version
            )
            self.istiod_release = release("istiod", "istiod", "istiod", values["istiod"], [self.cni_release])
            canaries = canary_plane([self.cni_release])
            # `baseline` is enforced only once istiod injects without istio-init (CNI turned on);
            # before that, a pod injected with istio-init would be rejected. A namespace moves to the
            # canary's tag only once the canary's webhook exists.
            self.application_namespaces = application_namespaces([self.istiod_release, *canaries])
        else:
            # The other way round when the CNI is turned off: `baseline` is lifted before istiod
            # starts adding istio-init (NET_ADMIN/NET_RAW), which it would otherwise reject. The canary
            # comes first all the same: a namespace labelled for its tag before its webhook exists would
            # start pods without a sidecar.
            canaries = canary_plane([self.base_release])
            self.application_namespaces = application_namespaces(canaries)
            self.istiod_release = release(
                "istiod", "istiod", "istiod", values["istiod"], [self.base_release, *self.application_namespaces]
            )
        self.canary_release = canaries[0] if canaries else None
        planes = [self.istiod_release, *canaries]

        self.gateway_release = None
        self.ingress_gateway_namespace = None
        if istio.gateway.enabled:
            gateway_namespace: pulumi.Resource = system_namespace
            self.ingress_gateway_namespace = self.istio_namespace
            if istio.gateway.namespace != ISTIO_NAMESPACE:
                own_namespace = core.Namespace(
                    f"{name}-gateway-namespace",
                    metadata={
                        "name": istio.gateway.namespace,
                        # Gateway pods are injected with the gateway template: no init container, no
                        # added capabilities, so they pass `baseline` with or without the CNI.
                        "labels": {POD_SECURITY_ENFORCE: "baseline"},
                    },
                    opts=pulumi.ResourceOptions(parent=self, depends_on=list(gated_by)),
                )
                gateway_namespace = own_namespace
                self.ingress_gateway_namespace = own_namespace.metadata.apply(lambda m: str(m.name))
            # After istiod: the gateway's pod is injected by istiod's webhook.
            self.gateway_release = release(
                "gateway",
                istio.gateway.name,
                "gateway",
                values["gateway"],
                [self.istiod_release, gateway_namespace],
                namespace=istio.gateway.namespace,
            )

        self.waypoints, self.waypoint_labels = {}, {}
        for namespace_resource, namespace in zip(self.application_namespaces, mesh.namespaces, strict=True):
            ambient = mesh.ambient.get(namespace)
            if ambient is None or not ambient.waypoint:
                continue
            assert self.gateway_api_crds is not None  # ambient namespaces need ambient mode (the settings' rule)
            self.waypoints[namespace] = CustomResource(
                f"{name}-waypoint-{namespace}",
                api_version="gateway.networking.k8s.io/v1",
                kind="Gateway",
                metadata={
                    "name": ambient.waypoint,
                    "namespace": namespace,
                    "labels": {"istio.io/waypoint-for": "service"},
                    "annotations": WAIT_FOR_PROGRAMMED,
                },
                spec={
                    "gatewayClassName": WAYPOINT_CLASS,
                    "listeners": [{"name": "mesh", "port": HBONE_PORT, "protocol": "HBONE"}],
                },
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[namespace_resource, self.gateway_api_crds, *planes]
                ),
            )
            self.waypoint_labels[namespace] = core.NamespacePatch(
                f"{name}-use-waypoint-{namespace}",
                metadata={"name": namespace, "labels": {USE_WAYPOINT_LABEL: ambient.waypoint}},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.waypoints[namespace]]),
            )
        self.mesh_data_plane = {
            namespace: {
                "mode": mesh.mode(namespace),
                "waypoint": mesh.ambient[namespace].waypoint if namespace in mesh.ambient else "",
            }
            for namespace in mesh.namespaces
        }

        self.mesh_namespaces = pulumi.Output.all(
            *[ns.metadata.apply(lambda m: str(m.name)) for ns in self.application_namespaces]
        )

        self.addon_releases = {}
        for addon in addons:
            # After istiod, whose webhook would otherwise race the addons' own pods; each UI after
            # the data sources it reads (the charts' install order).
            addon_after: list[pulumi.Resource] = [self.istiod_release, *self.addon_releases.values()]
            self.addon_releases[addon.addon] = release(
                addon.addon,
                addon.release_name,
                addon.chart,
                addon.values,
                addon_after,
                repository=addon.repository,
                version=addon.version,
                istio_values=False,  # the addons' own values: fixed, and nothing from the config objects
            )

        self.rollout_dependencies = [
            *([self.cni_release] if self.cni_release is not None else []),
            *([self.ztunnel_release] if self.ztunnel_release is not None else []),
            *planes,
            *self.application_namespaces,
            *self.waypoints.values(),
            *self.waypoint_labels.values(),
        ]
        self.cni_enabled = istio.cni.enabled
        self.cni_exclude_namespaces = list(istio.cni.exclude_namespaces)
        self.register_outputs(
            {
                "istioVersion": istio.version,
                "canaryVersion": canary.version if canary else "",
                "istioNamespace": self.istio_namespace,
                "cniEnabled": self.cni_enabled,
                "cniExcludeNamespaces": self.cni_exclude_namespaces,
                "meshNamespaces": self.mesh_namespaces,
                "meshDataPlane": self.mesh_data_plane,
                "ingressGatewayNamespace": self.ingress_gateway_namespace,
                "istioOperatorManifest": self.operator_manifest,
            }
        )
