"""The AKS cluster of one environment, its kubeconfig (secret) and a kubernetes Provider for it."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi_azure_native import authorization, containerservice, resources

from settings.model import PROJECT, SYSTEM_NAMESPACES, ClusterSettings, EntraIdSettings, NodePoolSettings

ALLOWED_CAPABILITIES_POLICY = (
    "/providers/Microsoft.Authorization/policyDefinitions/c26596ff-4d70-4e6a-9a30-c2506bd2f80c"
)
"""Built-in "Kubernetes cluster containers should only use allowed capabilities"."""

BASELINE_CAPABILITIES = (
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
)  # fmt: skip
"""What Pod Security `baseline` lets a container add: everything but these is denied, NET_ADMIN and
NET_RAW included."""

POLICY_EXEMPT_NAMESPACES = (*SYSTEM_NAMESPACES, "gatekeeper-system")
"""Where NET_ADMIN may still run: the CNI DaemonSet, Kubernetes' own pods, the policy add-on."""


@dataclass(frozen=True)
class AksClusterArgs:
    settings: ClusterSettings


def pool_shape(pool: NodePoolSettings) -> dict[str, Any]:
    """The node pool arguments shared by the cluster's system pool and a separate `AgentPool`."""
    return {
        "vm_size": pool.vm_size,
        "count": pool.count,
        "enable_auto_scaling": pool.autoscaling,
        "min_count": pool.min_count,
        "max_count": pool.max_count,
        "availability_zones": list(pool.zones) or None,
        "os_type": "Linux",
        "type": "VirtualMachineScaleSets",
    }


def dns_prefix(cluster_name: str) -> str:
    """AKS's DNS prefix allows letters, digits and '-' (at most 54), where a cluster name may hold '_'."""
    return re.sub(r"[^A-Za-z0-9-]", "-", cluster_name)[:54].strip("-")


def network_profile(plugin: str) -> containerservice.ContainerServiceNetworkProfileArgs:
    if plugin == "azure-overlay":
        return containerservice.ContainerServiceNetworkProfileArgs(
            network_plugin="azure", network_plugin_mode="overlay"
        )
    return containerservice.ContainerServiceNetworkProfileArgs(network_plugin=plugin)


def decode_kubeconfig(credentials: containerservice.ListManagedClusterUserCredentialsResult) -> str:
    return base64.b64decode(credentials.kubeconfigs[0].value).decode()


def with_login_mode(kubeconfig: str, login_mode: str) -> str:
    """The kubeconfig with kubelogin signing in by `login_mode` (what `kubelogin convert-kubeconfig -l` does).

    AKS hands out an exec kubeconfig that logs in with a device code: a person at a browser. Pulumi, CI
    and the restart provider need a mode that works unattended.
    """
    document = yaml.safe_load(kubeconfig)
    for user in document.get("users") or []:
        exec_config = (user.get("user") or {}).get("exec")
        if not exec_config or "kubelogin" not in str(exec_config.get("command", "")):
            continue
        args = list(exec_config.get("args") or [])
        if "--login" in args:
            args[args.index("--login") + 1] = login_mode
        else:
            args += ["--login", login_mode]
        exec_config["args"] = args
    return str(yaml.safe_dump(document, sort_keys=False))


def aad_profile(entra_id: EntraIdSettings | None) -> containerservice.ManagedClusterAADProfileArgs | None:
    if entra_id is None:
        return None
    return containerservice.ManagedClusterAADProfileArgs(
        managed=True, enable_azure_rbac=True, admin_group_object_ids=list(entra_id.admin_group_object_ids)
    )


class AksCluster(pulumi.ComponentResource):
    """Resource group, managed cluster (system pool, optional user pool) and its kubernetes Provider."""

    resource_group_name: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{PROJECT}:cluster:AksCluster", name, None, opts)
        settings = args.settings
        tags = {**settings.tags, "environment": settings.environment, "managed-by": "pulumi-aks-istio"}
        child = pulumi.ResourceOptions(parent=self)

        group = resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=settings.resource_group_name,
            location=settings.location,
            tags=tags,
            opts=child,
        )
        autoscaled_counts = ["agentPoolProfiles[0].count"] if settings.system_pool.autoscaling else []
        cluster = containerservice.ManagedCluster(
            f"{name}-aks",
            resource_name_=settings.name,
            resource_group_name=group.name,
            location=settings.location,
            dns_prefix=dns_prefix(settings.name),
            kubernetes_version=settings.kubernetes_version,
            identity=containerservice.ManagedClusterIdentityArgs(
                type=containerservice.ResourceIdentityType.SYSTEM_ASSIGNED
            ),
            agent_pool_profiles=[
                containerservice.ManagedClusterAgentPoolProfileArgs(
                    name="system", mode="System", **pool_shape(settings.system_pool)
                )
            ],
            network_profile=network_profile(settings.network_plugin),
            oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            security_profile=containerservice.ManagedClusterSecurityProfileArgs(
                workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(enabled=True)
            ),
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel=settings.auto_upgrade_channel
            ),
            addon_profiles=(
                {"azurepolicy": containerservice.ManagedClusterAddonProfileArgs(enabled=True)}
                if settings.azure_policy
                else None
            ),
            enable_rbac=True,
            aad_profile=aad_profile(settings.entra_id),
            # With Entra ID, nobody should hold the certificate-based cluster-admin credentials.
            disable_local_accounts=settings.entra_id is not None,
            tags=tags,
            # The autoscaler owns the node count; a preview must not try to reset it.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=autoscaled_counts),
        )
        if settings.user_pool is not None:
            user = settings.user_pool
            containerservice.AgentPool(
                f"{name}-userpool",
                agent_pool_name="user",
                resource_group_name=group.name,
                resource_name_=cluster.name,
                mode="User",
                **pool_shape(user),
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["count"] if user.autoscaling else []),
            )
        if settings.azure_policy:
            authorization.PolicyAssignment(
                f"{name}-net-admin-policy",
                scope=cluster.id,
                policy_definition_id=ALLOWED_CAPABILITIES_POLICY,
                display_name=f"{settings.name}: no NET_ADMIN or NET_RAW outside the system namespaces",
                enforcement_mode="Default",
                parameters={
                    "effect": authorization.ParameterValuesValueArgs(value="Deny"),
                    "allowedCapabilities": authorization.ParameterValuesValueArgs(value=list(BASELINE_CAPABILITIES)),
                    "requiredDropCapabilities": authorization.ParameterValuesValueArgs(value=[]),
                    "excludedNamespaces": authorization.ParameterValuesValueArgs(value=list(POLICY_EXEMPT_NAMESPACES)),
                },
                opts=child,
            )

        entra_id = settings.entra_id
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name,
            resource_name=cluster.name,
            format="exec" if entra_id else None,
        )
        kubeconfig = credentials.apply(decode_kubeconfig)
        if entra_id is not None:
            kubeconfig = kubeconfig.apply(lambda text: with_login_mode(text, entra_id.login_mode))
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, opts=child)
        self.resource_group_name = group.name
        self.cluster_name = cluster.name
        self.oidc_issuer_url = cluster.oidc_issuer_profile.apply(lambda oidc: (oidc.issuer_url if oidc else None) or "")
        self.register_outputs(
            {
                "resourceGroupName": self.resource_group_name,
                "clusterName": self.cluster_name,
                "oidcIssuerUrl": self.oidc_issuer_url,
                "kubeconfig": self.kubeconfig,
            }
        )
