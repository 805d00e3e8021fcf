"""aks-istio: one environment's AKS cluster, its Istio mesh with the CNI plugin (and ambient mode), and the rollout of
running workloads whenever their declared data plane changes.

Composition only, in the order of the layers: settings/ -> components/ -> restart/ -> the outputs."""

import pulumi

from components.cluster import AksCluster, AksClusterArgs
from components.istio import IstioMesh, IstioMeshArgs
from components.upgrade_guard import IstioUpgradeGuard
from restart.ambient_gate import AmbientMoveCheck
from restart.resource import SidecarRestart, SidecarRestartArgs
from settings.model import ConfigError
from settings.stack import load_settings

try:
    settings = load_settings()
except ConfigError as exc:
    # One line, as `error: <key>: <value> is not allowed; expected ...`: a RunError is shown without a traceback.
    raise pulumi.RunError(str(exc)) from None

cluster = AksCluster("platform", AksClusterArgs(settings.cluster))

# First, and alone: its check refuses a move between Istio releases that Istio does not support.
upgrade_guard = IstioUpgradeGuard("istio-upgrade-guard", settings.istio, settings.mesh)

# Before any namespace's labels move it to ambient mode: its check refuses a move that would silently break a policy.
move_checks = (
    [
        AmbientMoveCheck(
            "ambient-move-check", settings.mesh, cluster.kubeconfig, pulumi.ResourceOptions(depends_on=[upgrade_guard])
        )
    ]
    if settings.mesh.ambient
    else []
)

mesh = IstioMesh(
    "mesh",
    IstioMeshArgs(
        settings.istio,
        settings.mesh,
        gated_by=[upgrade_guard],
        namespaces_gated_by=move_checks,
        secret_sections=settings.secret_sections,
    ),
    pulumi.ResourceOptions(providers=[cluster.provider]),
)

# Pods pick up a new redirection, revision or proxy only when recreated, and only once istiod injects it. A
# control plane removed from the settings is deleted at the end of the update, after this succeeded.
restart = SidecarRestart(
    "sidecar-restart",
    SidecarRestartArgs(
        istio=settings.istio, options=settings.restart, mesh=settings.mesh, kubeconfig=cluster.kubeconfig
    ),
    pulumi.ResourceOptions(depends_on=mesh.rollout_dependencies),
)

pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("resourceGroupName", cluster.resource_group_name)
pulumi.export("location", settings.cluster.location)
pulumi.export("oidcIssuerUrl", cluster.oidc_issuer_url)
pulumi.export("istioVersion", settings.istio.version)
pulumi.export("istioCanaryVersion", settings.istio.canary.version if settings.istio.canary else "")
pulumi.export("istioNamespace", mesh.istio_namespace)
pulumi.export("cniEnabled", mesh.cni_enabled)
pulumi.export("cniExcludeNamespaces", mesh.cni_exclude_namespaces)
pulumi.export("meshNamespaces", mesh.mesh_namespaces)
pulumi.export("meshDataPlane", mesh.mesh_data_plane)
pulumi.export("ingressGatewayNamespace", mesh.ingress_gateway_namespace or "")
pulumi.export("istioOperatorManifest", mesh.operator_manifest)
pulumi.export(
    "sidecarRestart",
    {
        "restarted": restart.restarted,
        "restartReasons": restart.restartReasons,
        "skipped": restart.skipped,
        "manualRestart": restart.manualRestart,
        "fingerprint": restart.fingerprint,
        "restartedAt": restart.restartedAt,
    },
)
