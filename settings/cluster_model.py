"""The cluster's settings: the AKS cluster, its node pools and its Entra ID sign-in.

Frozen dataclasses that check their values when built (`__post_init__`), like the rest of `settings.model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from settings.azure_regions import check_location
from settings.rules import (
    CLUSTER_NAME,
    GUID,
    K8S_VERSION,
    RESOURCE_GROUP,
    VM_SIZE,
    ZONE,
    ConfigError,
    config_key,
    not_allowed,
    require_choice,
    require_match,
    require_names,
    require_range,
)

PROGRAM_TAGS = ("environment", "managed-by")
"""Tags the program puts on every Azure resource (Azure compares tag names without case)."""
TAG_NAME_FORBIDDEN = frozenset("<>%&\\?/")
NETWORK_PLUGINS = ("azure-overlay", "azure", "kubenet")
UPGRADE_CHANNELS = ("none", "patch", "stable", "rapid", "node-image")
LOGIN_MODES = ("azurecli", "workloadidentity", "spn", "msi")
"""kubelogin modes that work without a person at the keyboard (CI, the restart provider)."""


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

    def check(self, prefix: str, minimum_count: int) -> None:
        """The pool's rules; `prefix` is its config key (`aks-istio:cluster.systemPool`)."""
        require_match(f"{prefix}.vmSize", self.vm_size, VM_SIZE, "an Azure VM size such as Standard_D4ds_v5")
        require_range(f"{prefix}.count", self.count, minimum_count, 1000)
        if self.min_count is not None:
            require_range(f"{prefix}.minCount", self.min_count, minimum_count, 1000)
        if self.max_count is not None:
            require_range(f"{prefix}.maxCount", self.max_count, max(minimum_count, 1), 1000)
        require_names(f"{prefix}.zones", self.zones, ZONE, "availability zones '1', '2' or '3'")
        if (self.min_count is None) != (self.max_count is None):
            raise ConfigError(
                f"{prefix}: minCount and maxCount go together (autoscaling); "
                f"got minCount={self.min_count}, maxCount={self.max_count}"
            )
        if self.min_count is not None and self.max_count is not None:
            if self.min_count > self.max_count:
                raise ConfigError(
                    f"{prefix}.minCount: {self.min_count} is not allowed; expected at most maxCount ({self.max_count})"
                )
            if not self.min_count <= self.count <= self.max_count:
                raise ConfigError(
                    f"{prefix}.count: {self.count} is not allowed; expected between minCount ({self.min_count}) "
                    f"and maxCount ({self.max_count})"
                )


@dataclass(frozen=True)
class EntraIdSettings:
    admin_group_object_ids: tuple[str, ...]
    """Entra ID groups whose members are cluster admins (Azure RBAC role assignments grant the rest)."""
    login_mode: str = "azurecli"
    """How kubelogin signs in wherever the kubeconfig is used: `azurecli`, `workloadidentity`, `spn` or `msi`."""

    def __post_init__(self) -> None:
        prefix = config_key("cluster.entraId")
        require_names(
            f"{prefix}.adminGroupObjectIds", self.admin_group_object_ids, GUID, "Entra ID group object IDs (GUIDs)"
        )
        if not self.admin_group_object_ids:
            raise ConfigError(
                f"{prefix}.adminGroupObjectIds: not set; expected at least one Entra ID group object ID, "
                "since local accounts are disabled and someone must be able to administer the cluster"
            )
        require_choice(f"{prefix}.loginMode", self.login_mode, LOGIN_MODES)


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

    def __post_init__(self) -> None:
        if not self.location:
            raise ConfigError("azure-native:location: not set; expected an Azure region such as westeurope")
        check_location(self.location)
        for name, value, pattern, allowed in (
            (
                "name",
                self.name,
                CLUSTER_NAME,
                "1-63 letters, digits, '-' or '_', starting and ending with a letter or digit",
            ),
            (
                "resourceGroupName",
                self.resource_group_name,
                RESOURCE_GROUP,
                "1-90 letters, digits, '-', '_', '.', '(' or ')', not ending with '.'",
            ),
        ):
            require_match(config_key(f"cluster.{name}"), value, pattern, allowed)
        if self.kubernetes_version is not None:
            require_match(
                config_key("cluster.kubernetesVersion"),
                self.kubernetes_version,
                K8S_VERSION,
                "a Kubernetes version MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.33",
            )
        require_choice(config_key("cluster.autoUpgradeChannel"), self.auto_upgrade_channel, UPGRADE_CHANNELS)
        self._check_version_against_channel()
        self.system_pool.check(config_key("cluster.systemPool"), minimum_count=1)
        if self.user_pool is not None:
            self.user_pool.check(config_key("cluster.userPool"), minimum_count=0)
        require_choice(config_key("cluster.networkPlugin"), self.network_plugin, NETWORK_PLUGINS)
        self._check_tags()

    def _check_tags(self) -> None:
        """Azure's rules for tags, and no tag the program sets itself (it would be overwritten silently)."""
        for name, value in self.tags.items():
            key = f"{config_key('cluster.tags')}.{name}"
            if name.lower() in PROGRAM_TAGS:
                raise ConfigError(
                    f"{key}: not allowed; the program sets it ({', '.join(PROGRAM_TAGS)} come from the stack): "
                    "choose another name"
                )
            if not name or len(name) > 512 or any(c in TAG_NAME_FORBIDDEN for c in name) or not name.isprintable():
                raise not_allowed(
                    config_key("cluster.tags"), name, "tag names of 1-512 characters, without < > % & \\ ? /"
                )
            if name.lower().startswith(("microsoft", "azure", "windows")):
                raise not_allowed(
                    config_key("cluster.tags"), name, "a tag name not starting with microsoft, azure or windows"
                )
            if len(value) > 256 or not value.isprintable():
                raise not_allowed(key, value, "a tag value of at most 256 printable characters")

    def _check_version_against_channel(self) -> None:
        """AKS moves the version on these channels; a pinned one would show as a downgrade in every preview."""
        version, channel, name = (
            self.kubernetes_version,
            self.auto_upgrade_channel,
            config_key("cluster.kubernetesVersion"),
        )
        if version is None:
            return
        if channel in ("stable", "rapid"):
            raise ConfigError(
                f"{name}: '{version}' is not allowed with autoUpgradeChannel '{channel}', which upgrades minor "
                "versions; leave kubernetesVersion unset, or use the channel patch, node-image or none"
            )
        if channel == "patch" and version.count(".") == 2:
            raise ConfigError(
                f"{name}: '{version}' is not allowed with autoUpgradeChannel 'patch', which upgrades patch "
                "versions; give MAJOR.MINOR (e.g. '1.33'), or use the channel node-image or none"
            )
