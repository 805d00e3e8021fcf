"""The typed settings of one stack, and the rules they obey.

Frozen dataclasses: components receive these and never read Pulumi config themselves. Each one checks
its values when it is built (`__post_init__`), wherever it is built: `settings.parse` from a stack
file, or a test in code. A bad value raises `ConfigError` naming the config key, before any resource
is registered; the layers above rely on these rules and do not check them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from settings.istio_keys import unknown_extra_keys, unknown_mesh_config_keys
from settings.istio_releases import (
    check_kubernetes_support,
    check_supported_version,
    istio_release,
    minors_apart,
    revision_name,
)
from settings.rules import (
    CLUSTER_NAME,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    GUID,
    IMAGE_REPOSITORY,
    K8S_VERSION,
    PROJECT,
    RELEASE_NAME,
    RESOURCE_GROUP,
    VM_SIZE,
    ZONE,
    ConfigError,
    check_location,
    config_key,
    is_annotation_key,
    matches,
    not_allowed,
    preexisting,
    require_choice,
    require_count,
    require_match,
    require_names,
    require_range,
    show,
    show_key,
    show_names,
)

SYSTEM_NAMESPACES: tuple[str, ...] = ("istio-system", "kube-system", "kube-node-lease", "kube-public")
"""Namespaces kept out of the CNI plugin: the mesh itself and the Kubernetes control-plane ones."""

ISTIO_NAMESPACE = "istio-system"
DEFAULT_ISTIO_VERSION = "1.30.3"
DEFAULT_REVISION = "default"
"""The revision an unrevisioned istiod serves: pods it injects carry `istio.io/rev: default`."""
REVISION_LABEL = "istio.io/rev"
"""On a namespace: the revision or tag that injects it. On a pod: the revision that injected it."""
INJECTION_LABEL = "istio-injection"
"""On a namespace: `enabled` has the default revision inject its pods."""
DATAPLANE_MODE_LABEL = "istio.io/dataplane-mode"
"""On a namespace: `ambient` puts its pods in ambient mode. On a pod: `none` keeps it out of ambient capture."""
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"
"""On a namespace: the waypoint its services' traffic goes through."""
CANARY_TAG = "canary"
"""The revision tag of the canary control plane: namespaces labelled `istio.io/rev=canary` use it."""
OTHER_RELEASE_NAMES = ("istio-base", "istio-cni", "istiod", "ztunnel", "prometheus", "jaeger", "grafana", "kiali")
"""The Helm releases the program names itself (and `istiod-<revision>` for a canary): a gateway may not reuse one."""
CANARY_MAX_MINORS = 2
"""Istio's canary upgrade may skip one minor release: the canary is at most two minors above `version`."""
ANNOTATIONS_MAX_BYTES = 256 * 1024
"""Kubernetes refuses an object whose annotations, keys and values together, exceed 256 KiB."""


MAX_LIST_ITEMS: dict[str, int] = {
    "mesh.namespaces": 5000,
    "istio.canary.namespaces": 5000,
    "istio.cni.excludeNamespaces": 1000,
    "cluster.entraId.adminGroupObjectIds": 50,
    "cluster.tags": 48,
    "istio.gateway.serviceAnnotations": 100,
}
"""The most items each list or map setting takes (key below the project namespace), so a hostile or mistaken
stack file cannot make a plan, the state or a chart's values grow without bound. Documented in
docs/configuration.md: each mesh namespace is a resource of its own (and a group of workloads the restart
compares); the CNI exclusions go into the CNI plugin's configuration on every node; Azure takes 50 tags on a
resource, of which the program sets two."""

__all__ = ["PROJECT", "ConfigError"]  # re-exported: the stack's settings in one import


# --- The cluster: the AKS cluster, its node pools and its Entra ID sign-in -----------------------

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
        require_count(
            f"{prefix}.adminGroupObjectIds",
            self.admin_group_object_ids,
            MAX_LIST_ITEMS["cluster.entraId.adminGroupObjectIds"],
            "groups",
        )
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
        require_count(config_key("cluster.tags"), self.tags, MAX_LIST_ITEMS["cluster.tags"], "tags")
        for name, value in self.tags.items():
            key = f"{config_key('cluster.tags')}.{show_key(name)}"
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


# --- The mesh: Istio, its control planes and its namespaces --------------------------------------


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

    def plugin_values(self) -> dict[str, Any]:
        """The plugin's own values: the same keys in the cni chart and in an IstioOperator's `values.cni`."""
        # Always explicit: since 1.22 the chart's own default excludes only kube-system.
        values: dict[str, Any] = {"excludeNamespaces": list(self.exclude_namespaces)}
        if self.chained is not None:
            values["chained"] = self.chained
        if self.repair is not None:
            values["repair"] = {"enabled": self.repair}
        return values

    def __post_init__(self) -> None:
        name = config_key("istio.cni.excludeNamespaces")
        require_count(name, self.exclude_namespaces, MAX_LIST_ITEMS["istio.cni.excludeNamespaces"], "namespaces")
        require_names(name, self.exclude_namespaces, DNS_LABEL, "namespace names (DNS labels)")
        missing = [ns for ns in SYSTEM_NAMESPACES if ns not in self.exclude_namespaces]
        if missing:
            raise ConfigError(
                f"{name}: {show(list(self.exclude_namespaces))} is not allowed; it must include the system namespaces "
                f"{', '.join(SYSTEM_NAMESPACES)} (missing: {', '.join(missing)}), whose pods must start without "
                "waiting for the mesh"
            )


AMBIENT_PROFILE_VARIANT = "distroless"
"""The image variant the charts' `ambient` profile sets (`global.variant`, 1.29 and 1.30 alike): a configured
`global.variant` or `meshConfig.defaultConfig.image.imageType` still wins, as the charts merge the profile under the
user's values."""


@dataclass(frozen=True)
class AmbientSettings:
    enabled: bool = False
    """Install ambient mode's components: the Gateway API CRDs, istiod and cni with the `ambient` profile, and the
    `ztunnel` node proxy. Namespaces keep their sidecars until `mesh.namespaces` moves them (`mode: ambient`)."""


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

    def __post_init__(self) -> None:
        require_match(
            config_key("istio.gateway.name"),
            self.name,
            RELEASE_NAME,
            "a DNS label of at most 53 characters (a Helm release name)",
        )
        if self.name in OTHER_RELEASE_NAMES or self.name.startswith("istiod-"):
            raise not_allowed(
                config_key("istio.gateway.name"),
                self.name,
                f"a release name of its own: {', '.join(OTHER_RELEASE_NAMES)} and istiod-<revision> are the program's",
            )
        name = config_key("istio.gateway.namespace")
        require_match(name, self.namespace, DNS_LABEL, "a namespace name")
        if self.enabled and preexisting(self.namespace):
            raise not_allowed(name, self.namespace, "a namespace of its own or istio-system (the program creates it)")
        self._check_service_annotations()

    def _check_service_annotations(self) -> None:
        """Kubernetes' rules, which the API server would apply only at `pulumi up`, half-way through the mesh."""
        name = config_key("istio.gateway.serviceAnnotations")
        require_count(name, self.service_annotations, MAX_LIST_ITEMS["istio.gateway.serviceAnnotations"], "annotations")
        for key in self.service_annotations:
            if not is_annotation_key(key):
                raise not_allowed(
                    name,
                    key,
                    "annotation keys as Kubernetes takes them: [prefix/]name, the prefix a DNS subdomain, the name at "
                    "most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
                )
        size = sum(len(key) + len(value) for key, value in self.service_annotations.items())
        if size > ANNOTATIONS_MAX_BYTES:
            raise ConfigError(
                f"{name}: {size} characters is not allowed; expected at most {ANNOTATIONS_MAX_BYTES} in all "
                "(Kubernetes' limit for an object's annotations)"
            )


@dataclass(frozen=True)
class CanarySettings:
    version: str
    """Istio release of the second control plane (revision `1-30-3` for 1.30.3, tag `canary`)."""
    namespaces: tuple[str, ...] = ()
    """Mesh namespaces on the canary now (labelled `istio.io/rev=canary`); the others stay on the default."""

    @property
    def revision(self) -> str:
        return revision_name(self.version)

    def __post_init__(self) -> None:
        check_supported_version(self.version, config_key("istio.canary.version"))
        name = config_key("istio.canary.namespaces")
        require_count(name, self.namespaces, MAX_LIST_ITEMS["istio.canary.namespaces"], "namespaces")
        require_names(name, self.namespaces, DNS_LABEL, "mesh namespace names")


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
    allow_downgrade_from: str | None = None
    """Acknowledges one in-place downgrade: the Istio version deployed now, from which `version` goes back."""
    canary: CanarySettings | None = None
    """A second control plane beside the default one, for a canary upgrade by revision."""
    ambient: AmbientSettings = field(default_factory=AmbientSettings)
    """Ambient mode's components (`istio.ambient`)."""

    @property
    def proxy_image(self) -> str:
        """The `istio-proxy` image the default istiod injects."""
        return self.proxy_image_of(self.version)

    @property
    def canary_proxy_image(self) -> str:
        """The `istio-proxy` image the canary istiod injects ("" without a canary)."""
        return self.proxy_image_of(self.canary.version) if self.canary else ""

    @property
    def shared_chart_version(self) -> str:
        """The release of the charts both control planes share (`base`, `cni`): the newer of the two."""
        if self.canary is None:
            return self.version
        return max(self.version, self.canary.version, key=lambda v: istio_release(v) or (0, 0, 0))

    def proxy_image_of(self, version: str) -> str:
        """`<global.hub>/<global.proxy.image>:<version>[-<global.variant>]`, as the injection template builds it."""
        proxy = self.global_values.get("proxy")
        name = str(proxy.get("image") or "proxyv2") if isinstance(proxy, Mapping) else "proxyv2"
        if "/" in name:
            return name  # a full image reference replaces hub, name and tag (as the injection template does)
        hub = str(self.global_values.get("hub") or "docker.io/istio")
        # As istiod builds it: meshConfig's image type wins over global.variant, and `default` means none.
        defaults = self.mesh_config.get("defaultConfig")
        image = defaults.get("image") if isinstance(defaults, Mapping) else None
        variant = image.get("imageType") if isinstance(image, Mapping) else None
        variant = variant or self.global_values.get("variant")
        if not variant and self.ambient.enabled:
            # The ambient profile sits under the configured values: it decides only when nothing else does.
            variant = AMBIENT_PROFILE_VARIANT
        return f"{hub}/{name}:{version}" + (f"-{variant}" if variant and variant != "default" else "")

    def __post_init__(self) -> None:
        check_supported_version(self.version)
        extra_cni = self.pilot.get("cni")
        if isinstance(extra_cni, Mapping) and "enabled" in extra_cni and extra_cni["enabled"] != self.cni.enabled:
            raise ConfigError(
                f"{config_key('istio.pilot.cni.enabled')}: {show(extra_cni['enabled'])} is not allowed; it must match "
                f"{config_key('istio.cni.enabled')} ({self.cni.enabled!r}), which sets it (leave it out)"
            )
        tag = self.global_values.get("tag")
        if tag is not None and tag != self.version:
            # Charts and images move together; an image variant has its own key.
            raise ConfigError(
                f"{config_key('istio.global.tag')}: {show(tag)} is not allowed; the images follow "
                f"{config_key('istio.version')} ('{self.version}'): leave it out, and put a variant such as "
                f"distroless in {config_key('istio.global.variant')}"
            )
        if self.ambient.enabled and not self.cni.enabled:
            raise ConfigError(
                f"{config_key('istio.ambient.enabled')}: true is not allowed with {config_key('istio.cni.enabled')} "
                "false; ambient mode redirects pods' traffic to ztunnel through the CNI node agent"
            )
        unknown = [*unknown_extra_keys(self.pilot, self.global_values), *unknown_mesh_config_keys(self.mesh_config)]
        if unknown:
            more = f"; ... ({len(unknown)} problems in all)" if len(unknown) > 5 else ""
            raise ConfigError("; ".join(unknown[:5]) + more)
        self._check_value_shapes()
        if self.allow_downgrade_from is not None:
            check_supported_version(self.allow_downgrade_from, config_key("istio.allowDowngradeFrom"))
        if self.canary is not None:
            self._check_canary(self.canary)

    def _check_value_shapes(self) -> None:
        """Values the program reads itself, or Helm and istiod would refuse only at `pulumi up`."""
        if "cni" in self.pilot and not isinstance(self.pilot["cni"], Mapping):
            raise not_allowed(
                config_key("istio.pilot.cni"),
                self.pilot["cni"],
                f"an object (key: value); the program sets its `enabled` from {config_key('istio.cni.enabled')}",
            )
        for section, values in (("global", self.global_values), ("pilot", self.pilot)):
            hub = values.get("hub")
            if isinstance(hub, str) and not (len(hub) <= 255 and matches(IMAGE_REPOSITORY, hub)):
                raise not_allowed(
                    config_key(f"istio.{section}.hub"),
                    hub,
                    "a registry and repository without a tag, e.g. docker.io/istio or example.azurecr.io/istio",
                )
        for spelling in ("defaultConfig", "default_config"):
            defaults = self.mesh_config.get(spelling)
            if defaults is None:
                continue
            name = config_key(f"istio.meshConfig.{spelling}")
            if not isinstance(defaults, Mapping):
                raise not_allowed(name, defaults, "an object (key: value): Istio's ProxyConfig")
            for field_name, allowed in (("image", "an object (key: value), e.g. {imageType: distroless}"),
                                        ("proxyMetadata", "a map of names to strings")):  # fmt: skip
                value = defaults.get(field_name)
                if value is not None and not isinstance(value, Mapping):
                    raise not_allowed(f"{name}.{field_name}", value, allowed)
            metadata = defaults.get("proxyMetadata") or {}
            for key, value in metadata.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise not_allowed(
                        f"{name}.proxyMetadata.{show_key(key)}",
                        value,
                        'a string (quote numbers and booleans, e.g. "1")',
                    )

    def _check_canary(self, canary: CanarySettings) -> None:
        default, candidate = istio_release(self.version), istio_release(canary.version)
        assert default is not None and candidate is not None  # both checked as releases above
        apart = minors_apart(default, candidate)
        if candidate <= default or apart > CANARY_MAX_MINORS:
            raise ConfigError(
                f"{config_key('istio.canary.version')}: '{canary.version}' is not allowed; expected a release newer "
                f"than {config_key('istio.version')} ('{self.version}') and at most {CANARY_MAX_MINORS} minors above "
                "it (a canary upgrades; to go back, remove the canary)"
            )
        if "tag" in self.global_values:
            raise ConfigError(
                f"{config_key('istio.global.tag')}: {show(self.global_values['tag'])} is not allowed with "
                f"{config_key('istio.canary')}; it would pin the canary's images to {self.version}: leave it out"
            )
        proxy = self.global_values.get("proxy")
        if isinstance(proxy, Mapping) and "/" in str(proxy.get("image") or ""):
            raise ConfigError(
                f"{config_key('istio.global.proxy.image')}: {show(proxy['image'])} is not allowed with "
                f"{config_key('istio.canary')}; a full image reference pins one proxy for both control planes: give "
                "the image name only (e.g. proxyv2) and the registry in global.hub"
            )


SIDECAR_MODE = "sidecar"
AMBIENT_MODE = "ambient"
DATA_PLANE_MODES = (SIDECAR_MODE, AMBIENT_MODE)
"""What a mesh namespace's pods run: an `istio-proxy` sidecar each, or nothing of their own (ztunnel, ambient mode)."""
DEFAULT_WAYPOINT = "waypoint"
"""The waypoint's name when a namespace asks for one with `waypoint: true` (the name `istioctl waypoint` uses)."""
FINDING_KINDS = ("AuthorizationPolicy", "PeerAuthentication", "EnvoyFilter", "VirtualService", "DestinationRule")
"""The kinds of Istio objects whose meaning changes when a namespace loses its sidecars (`restart.ambient_findings`)."""
MAX_ACKNOWLEDGED = 200
"""The most findings one namespace acknowledges."""


@dataclass(frozen=True)
class AmbientNamespace:
    """A mesh namespace in ambient mode: no sidecars, ztunnel for mTLS and L4, an optional waypoint for L7."""

    waypoint: str = ""
    """The name of its waypoint (a Gateway of class `istio-waypoint` in the namespace); "" for none."""
    acknowledge: tuple[str, ...] = ()
    """Findings (`Kind/namespace/name`) of the move's safety check that the namespace's team accepts."""


@dataclass(frozen=True)
class MeshSettings:
    namespaces: tuple[str, ...] = ()
    """Application namespaces of the mesh, created and labelled by the program, in the stack file's order."""
    ambient: Mapping[str, AmbientNamespace] = field(default_factory=dict)
    """The mesh namespaces in ambient mode; every other one runs sidecars."""

    def __post_init__(self) -> None:
        name = config_key("mesh.namespaces")
        require_count(name, self.namespaces, MAX_LIST_ITEMS["mesh.namespaces"], "namespaces")
        require_names(name, self.namespaces, DNS_LABEL, "namespace names (DNS labels)")
        for namespace in self.namespaces:
            if namespace in SYSTEM_NAMESPACES or preexisting(namespace):
                raise ConfigError(
                    f"{name}: '{namespace}' is not allowed; expected an application namespace of its own "
                    "(the program creates each one; system namespaces and `default` cannot join the mesh)"
                )
        for namespace, settings in self.ambient.items():
            where = f"{name}[{show_key(namespace)}]"
            if namespace not in self.namespaces:
                raise ConfigError(f"{where}: ambient mode is only for mesh namespaces; add it to {name}")
            if settings.waypoint:
                require_match(f"{where}.waypoint", settings.waypoint, DNS_LABEL, "a waypoint name (a DNS label)")
            require_count(f"{where}.acknowledge", settings.acknowledge, MAX_ACKNOWLEDGED, "findings")
            for key in settings.acknowledge:
                if not _is_finding_key(key):
                    raise not_allowed(
                        f"{where}.acknowledge",
                        key,
                        "a finding of the move's check, `Kind/namespace/name` with Kind one of "
                        + ", ".join(FINDING_KINDS),
                    )

    def mode(self, namespace: str) -> str:
        """`ambient` or `sidecar` for a mesh namespace."""
        return AMBIENT_MODE if namespace in self.ambient else SIDECAR_MODE

    @property
    def sidecar_namespaces(self) -> tuple[str, ...]:
        return tuple(namespace for namespace in self.namespaces if namespace not in self.ambient)


def _is_finding_key(key: str) -> bool:
    parts = key.split("/")
    return (
        len(parts) == 3
        and parts[0] in FINDING_KINDS
        and matches(DNS_LABEL, parts[1])
        and matches(DNS_SUBDOMAIN, parts[2])
    )


@dataclass(frozen=True)
class RestartSettings:
    max_concurrent: int = 10
    """With `wait_for_rollout`, the most workloads rolling out at once (a sliding window); without, the most
    restart requests in flight."""
    wait_for_rollout: bool = True
    """Wait until every restarted workload has rolled out, and check its new pods, before `pulumi up` finishes."""
    slow_start: bool = True
    """Start with one workload in flight and open one more slot per success, up to `max_concurrent`."""
    timeout_seconds: int = 600
    """How long each workload's rollout may take, in seconds."""

    def __post_init__(self) -> None:
        require_range(config_key("restart.maxConcurrent"), self.max_concurrent, 1, 100)
        require_range(config_key("restart.timeoutSeconds"), self.timeout_seconds, 1, 21600)


@dataclass(frozen=True)
class StackSettings:
    cluster: ClusterSettings
    istio: IstioSettings
    mesh: MeshSettings
    restart: RestartSettings
    secret_sections: frozenset[str] = frozenset()
    """The config objects set as secrets (`pulumi config set --secret`, e.g. `istio`): what they contribute to
    Helm release values and to the IstioOperator manifest is secret as a whole, since Pulumi marks the whole
    object and not the values below it."""

    def __post_init__(self) -> None:
        """The rules that span sections."""
        if self.cluster.azure_policy and not self.istio.cni.enabled:
            raise ConfigError(
                f"{config_key('cluster.azurePolicy')}: true is not allowed with {config_key('istio.cni.enabled')} "
                "false; the policy denies NET_ADMIN/NET_RAW, which the istio-init container of every sidecar pod "
                "needs without the CNI"
            )
        if self.cluster.kubernetes_version is not None:
            check_kubernetes_support(self.istio.version, self.cluster.kubernetes_version)
            if self.istio.canary is not None:
                check_kubernetes_support(
                    self.istio.canary.version, self.cluster.kubernetes_version, config_key("istio.canary.version")
                )
        mesh_namespaces = set(self.mesh.namespaces)
        if self.istio.canary is not None:
            for namespace in self.istio.canary.namespaces:
                if namespace not in mesh_namespaces:
                    raise ConfigError(
                        f"{config_key('istio.canary.namespaces')}: '{namespace}' is not allowed; expected mesh "
                        f"namespaces ({config_key('mesh.namespaces')}: {show_names(self.mesh.namespaces) or 'none'})"
                    )
        name = config_key("mesh.namespaces")
        if self.mesh.ambient and not self.istio.ambient.enabled:
            first = sorted(self.mesh.ambient)[0]
            raise ConfigError(
                f"{name}[{show_key(first)}].mode: 'ambient' is not allowed with {config_key('istio.ambient.enabled')} "
                "false; install ambient mode's components first (ztunnel, and every sidecar re-injected for HBONE), "
                "then move namespaces"
            )
        on_canary = set(self.istio.canary.namespaces) if self.istio.canary else set()
        for namespace in sorted(on_canary & set(self.mesh.ambient)):
            raise ConfigError(
                f"{config_key('istio.canary.namespaces')}: '{namespace}' is not allowed; it runs in ambient mode, "
                "which has no sidecars for a canary to inject (ztunnel follows the newer control plane)"
            )
        excluded = set(self.istio.cni.exclude_namespaces)
        for namespace in self.mesh.namespaces:
            if namespace in excluded:
                raise ConfigError(
                    f"{name}: '{namespace}' is not allowed; it is also in {config_key('istio.cni.excludeNamespaces')}, "
                    "so its pods would get a sidecar whose traffic the CNI plugin never redirects"
                )
            if self.istio.gateway.enabled and namespace == self.istio.gateway.namespace:
                raise ConfigError(
                    f"{name}: '{namespace}' is not allowed; it is the ingress gateway's namespace "
                    f"({config_key('istio.gateway.namespace')})"
                )
