"""The typed, validated settings of one stack.

Plain frozen dataclasses: components receive these and never read Pulumi config themselves.
`components.config` builds them from the stack's configuration and checks every value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SYSTEM_NAMESPACES: tuple[str, ...] = ("istio-system", "kube-system", "kube-node-lease", "kube-public")
"""Namespaces kept out of the CNI plugin: the mesh itself and the Kubernetes control-plane ones."""

ISTIO_NAMESPACE = "istio-system"
DEFAULT_ISTIO_VERSION = "1.30.3"


class ConfigError(ValueError):
    """A stack setting is invalid; the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class NodePoolSettings:
    vm_size: str
    """Azure VM size of the pool's nodes, e.g. `Standard_D4ds_v5`."""
    count: int
    """Initial node count (the fixed count when autoscaling is off)."""
    min_count: int | None = None
    """Autoscaler lower bound; autoscaling is on when `min_count` and `max_count` are both set."""
    max_count: int | None = None
    """Autoscaler upper bound."""
    zones: tuple[str, ...] = ()
    """Availability zones the pool spreads over (empty: no zone pinning)."""

    @property
    def autoscaling(self) -> bool:
        return self.min_count is not None and self.max_count is not None


@dataclass(frozen=True)
class EntraIdSettings:
    admin_group_object_ids: tuple[str, ...]
    """Entra ID groups whose members are cluster admins (Azure RBAC role assignments grant the rest)."""
    login_mode: str = "azurecli"
    """How kubelogin signs in wherever the kubeconfig is used: `azurecli`, `workloadidentity`, `spn` or `msi`."""


@dataclass(frozen=True)
class ClusterSettings:
    name: str
    """AKS cluster name (default `aks-istio-<stack>`)."""
    resource_group_name: str
    """Resource group that holds the cluster (default `rg-aks-istio-<stack>`)."""
    environment: str
    """The stack name; tagged on every Azure resource as `environment`."""
    location: str
    """Azure region (`azure-native:location`)."""
    system_pool: NodePoolSettings
    """The `System` mode pool that runs the control-plane add-ons and the mesh."""
    kubernetes_version: str | None = None
    """`MAJOR.MINOR` or `MAJOR.MINOR.PATCH`; None lets AKS pick its default version."""
    user_pool: NodePoolSettings | None = None
    """Optional `User` mode pool for application workloads."""
    network_plugin: str = "azure-overlay"
    """`azure-overlay` (Azure CNI overlay), `azure` (Azure CNI, pod IPs from the VNet) or `kubenet`."""
    auto_upgrade_channel: str = "patch"
    """AKS auto-upgrade channel: `none`, `patch`, `stable`, `rapid` or `node-image`."""
    entra_id: EntraIdSettings | None = None
    """Entra ID sign-in with Azure RBAC and no local accounts (None: the cluster issues its own credentials)."""
    azure_policy: bool = False
    """Azure Policy add-on denying capabilities beyond Pod Security baseline's (NET_ADMIN, NET_RAW...) outside
    istio-system, the kube-* namespaces and gatekeeper-system; needs the CNI."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Extra Azure tags, merged with `environment` and `managed-by`."""


@dataclass(frozen=True)
class CniSettings:
    enabled: bool = True
    """Install the Istio CNI plugin, so injected pods need no `istio-init` (NET_ADMIN/NET_RAW)."""
    exclude_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES
    """Namespaces the CNI plugin leaves alone (set explicitly: the chart's default is only kube-system)."""
    chained: bool | None = None
    """Install as a chained plugin (None: the chart's default, true)."""
    repair: bool | None = None
    """Run the repair controller for pods that started before the plugin (None: chart default)."""


@dataclass(frozen=True)
class AddonSettings:
    grafana: bool = False
    tracing: bool = False
    kiali: bool = False
    prometheus: bool = False


@dataclass(frozen=True)
class GatewaySettings:
    enabled: bool = True
    """Install an ingress gateway (the `gateway` chart)."""
    name: str = "istio-ingressgateway"
    """Helm release and Deployment name of the gateway."""
    namespace: str = "istio-ingress"
    """Namespace of the gateway, kept apart from istio-system."""
    service_annotations: Mapping[str, str] = field(default_factory=dict)
    """Annotations of the gateway's LoadBalancer Service, e.g. `service.beta.kubernetes.io/azure-pip-name`
    to keep a reserved public IP, or `...azure-load-balancer-internal: "true"` for a private one."""


@dataclass(frozen=True)
class IstioSettings:
    version: str = DEFAULT_ISTIO_VERSION
    """Istio chart version, `MAJOR.MINOR.PATCH`, 1.24 or newer."""
    cni: CniSettings = field(default_factory=CniSettings)
    addons: AddonSettings = field(default_factory=AddonSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    pilot: Mapping[str, Any] = field(default_factory=dict)
    """Extra istiod chart `pilot.*` values (each key must exist in the chart)."""
    global_values: Mapping[str, Any] = field(default_factory=dict)
    """Extra `global.*` values for every Istio chart (config key `global`)."""
    mesh_config: Mapping[str, Any] = field(default_factory=dict)
    """istiod `meshConfig` (config key `meshConfig`)."""
    operator_file: str | None = None
    """IstioOperator YAML file these settings were (partly) read from, if any."""


@dataclass(frozen=True)
class MeshSettings:
    namespaces: tuple[str, ...] = ()
    """Application namespaces created with sidecar injection enabled."""


@dataclass(frozen=True)
class RestartSettings:
    max_concurrent: int = 10
    """Most workload restarts (PATCHes) in flight at once."""
    wait_for_rollout: bool = True
    """Wait until every restarted workload has rolled out before `pulumi up` finishes."""
    timeout_seconds: int = 600
    """How long to wait for the rollouts, in seconds."""


@dataclass(frozen=True)
class StackSettings:
    cluster: ClusterSettings
    istio: IstioSettings
    mesh: MeshSettings
    restart: RestartSettings
