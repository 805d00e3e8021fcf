"""aks-istio: one environment's AKS cluster, its Istio mesh with the CNI plugin, and the re-injection
of running workloads when the CNI setting changes. Composition only: the logic lives in components/."""

import pulumi

from components.cluster import AksCluster, AksClusterArgs
from components.config import load_settings

settings = load_settings()

cluster = AksCluster("platform", AksClusterArgs(settings.cluster))

pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("resourceGroupName", cluster.resource_group_name)
pulumi.export("location", settings.cluster.location)
pulumi.export("oidcIssuerUrl", cluster.oidc_issuer_url)
