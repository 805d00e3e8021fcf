"""aks-istio: one environment's AKS cluster, its Istio mesh with the CNI plugin, and the re-injection
of running workloads when the CNI setting changes. Composition only: the logic lives in components/."""

import pulumi

from components.cluster import AksCluster, AksClusterArgs
from components.config import load_settings
from components.istio import IstioMesh, IstioMeshArgs
from components.restart import SidecarRestart, SidecarRestartArgs

settings = load_settings()

cluster = AksCluster("platform", AksClusterArgs(settings.cluster))

mesh = IstioMesh(
    "mesh",
    IstioMeshArgs(settings.istio, settings.mesh),
    pulumi.ResourceOptions(providers=[cluster.provider]),
)

# Pods pick up the new redirection mechanism only when recreated, and only once istiod injects for it.
restart = SidecarRestart(
    "sidecar-restart",
    SidecarRestartArgs(cni=settings.istio.cni, options=settings.restart, kubeconfig=cluster.kubeconfig),
    pulumi.ResourceOptions(
        depends_on=[
            *(release for release in (mesh.cni_release, mesh.istiod_release) if release is not None),
            *mesh.application_namespaces,  # their Pod Security level must already admit the new pods
        ]
    ),
)

pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("resourceGroupName", cluster.resource_group_name)
pulumi.export("location", settings.cluster.location)
pulumi.export("oidcIssuerUrl", cluster.oidc_issuer_url)
pulumi.export("istioVersion", settings.istio.version)
pulumi.export("istioNamespace", mesh.istio_namespace)
pulumi.export("cniEnabled", mesh.cni_enabled)
pulumi.export("cniExcludeNamespaces", mesh.cni_exclude_namespaces)
pulumi.export("meshNamespaces", mesh.mesh_namespaces)
pulumi.export("ingressGatewayNamespace", mesh.ingress_gateway_namespace or "")
pulumi.export("istioOperatorManifest", mesh.operator_manifest)
pulumi.export(
    "sidecarRestart",
    {
        "restarted": restart.restarted,
        "skipped": restart.skipped,
        "manualRestart": restart.manualRestart,
        "fingerprint": restart.fingerprint,
        "restartedAt": restart.restartedAt,
    },
)
