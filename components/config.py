"""Read and check a stack's configuration, once, into the typed settings of `components.settings`.

Every bad value fails here with one message naming the key, the value and what is allowed, before
the program registers a single resource.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from components.helm_values import check_supported_version, pilot_cni_conflict, unknown_extra_keys
from components.settings import (
    DEFAULT_ISTIO_VERSION,
    SYSTEM_NAMESPACES,
    AddonSettings,
    ClusterSettings,
    CniSettings,
    ConfigError,
    EntraIdSettings,
    GatewaySettings,
    IstioSettings,
    MeshSettings,
    NodePoolSettings,
    RestartSettings,
    StackSettings,
)

PROJECT = "aks-istio"

NETWORK_PLUGINS = ("azure-overlay", "azure", "kubenet")
UPGRADE_CHANNELS = ("none", "patch", "stable", "rapid", "node-image")
ZONES = ("1", "2", "3")
LOGIN_MODES = ("azurecli", "workloadidentity", "spn", "msi")
"""kubelogin modes that work without a person at the keyboard (CI, the restart provider)."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")
_RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
_VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$")
_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_K8S_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")

T = TypeVar("T")


def _default_if_unset(value: Any, default: Any) -> Any:
    return default if value is None else value


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else f"'{value}'"


class Section:
    """One config object: typed getters that name the full key on error, and no unknown keys."""

    def __init__(self, key: str, raw: Any) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{key}: {_show(raw)} is not allowed; expected an object (key: value)")
        self.key = key
        self.raw: Mapping[str, Any] = raw
        self.read: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.key}.{name}"

    def fail(self, name: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{self.path(name)}: {_show(value)} is not allowed; expected {allowed}")

    def get(self, name: str) -> Any:
        self.read.add(name)
        return self.raw.get(name)

    def string(self, name: str, default: str, pattern: re.Pattern[str] | None = None, allowed: str = "") -> str:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            raise self.fail(name, value, allowed or "a string")
        return value

    def optional_string(self, name: str, pattern: re.Pattern[str], allowed: str) -> str | None:
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not pattern.match(value):
            raise self.fail(name, value, allowed)
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(name)
        if value is None:
            return default
        if value not in choices:
            raise self.fail(name, value, "one of " + ", ".join(choices))
        return str(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.optional_boolean(name)
        return default if value is None else value

    def optional_boolean(self, name: str) -> bool | None:
        value = self.get(name)
        if value is not None and not isinstance(value, bool):
            raise self.fail(name, value, "true or false")
        return value

    def integer(self, name: str, default: int | None, minimum: int, maximum: int) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.fail(name, value, f"a whole number from {minimum} to {maximum}")
        return value

    def names(self, name: str, default: tuple[str, ...], pattern: re.Pattern[str], allowed: str) -> tuple[str, ...]:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, list):
            raise self.fail(name, value, f"a list of {allowed}")
        for item in value:
            if not isinstance(item, str) or not pattern.match(item):
                raise ConfigError(f"{self.path(name)}: {_show(item)} is not allowed; expected {allowed}")
        repeated = sorted({item for item in value if value.count(item) > 1})
        if repeated:
            raise ConfigError(f"{self.path(name)}: {', '.join(repeated)} listed more than once")
        return tuple(value)

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(name, value, "an object (key: value)")
        return dict(value)

    def section(self, name: str) -> Section:
        return Section(self.path(name), self.get(name))

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.read)
        if unknown:
            raise ConfigError(
                f"{self.path(unknown[0])}: unknown setting; allowed keys of {self.key} are "
                + ", ".join(sorted(self.read))
            )


@contextmanager
def _reading(key: str, raw: Any) -> Iterator[Section]:
    section = Section(key, raw)
    yield section
    section.finish()


def _build(key: str, raw: Any, build: Callable[[Section], T]) -> T:
    with _reading(key, raw) as section:
        return build(section)


def _node_pool(section: Section, default: NodePoolSettings | None, minimum_count: int) -> NodePoolSettings:
    base = default or NodePoolSettings(vm_size="Standard_D4ds_v5", count=max(minimum_count, 1))
    vm_size = section.string("vmSize", base.vm_size, _VM_SIZE, "an Azure VM size such as Standard_D4ds_v5")
    count = section.integer("count", base.count, minimum_count, 1000)
    min_count = section.integer("minCount", None, minimum_count, 1000)
    max_count = section.integer("maxCount", None, max(minimum_count, 1), 1000)
    raw_zones = section.get("zones")
    if isinstance(raw_zones, list):
        # `pulumi config set --path ...zones[0] 1` stores a number; a zone is the same either way.
        section.raw = {**section.raw, "zones": [str(z) if type(z) is int else z for z in raw_zones]}
    zones = section.names("zones", (), re.compile(r"^[123]$"), "availability zones '1', '2' or '3'")
    assert count is not None
    if (min_count is None) != (max_count is None):
        raise ConfigError(
            f"{section.key}: minCount and maxCount go together (autoscaling); "
            f"got minCount={min_count}, maxCount={max_count}"
        )
    if min_count is not None and max_count is not None:
        if min_count > max_count:
            raise ConfigError(
                f"{section.path('minCount')}: {min_count} is not allowed; expected at most maxCount ({max_count})"
            )
        if not min_count <= count <= max_count:
            raise ConfigError(
                f"{section.path('count')}: {count} is not allowed; expected between minCount ({min_count}) "
                f"and maxCount ({max_count})"
            )
    return NodePoolSettings(vm_size, count, min_count, max_count, zones)


def _entra_id(section: Section) -> EntraIdSettings:
    groups = section.names("adminGroupObjectIds", (), _GUID, "Entra ID group object IDs (GUIDs)")
    if not groups:
        raise ConfigError(
            f"{section.path('adminGroupObjectIds')}: not set; expected at least one Entra ID group object ID, "
            "since local accounts are disabled and someone must be able to administer the cluster"
        )
    return EntraIdSettings(groups, section.choice("loginMode", "azurecli", LOGIN_MODES))


def _tags(section: Section) -> dict[str, str]:
    tags = _string_map(section, "tags")
    for name, value in tags.items():
        if len(name) > 512 or len(value) > 256:
            raise ConfigError(
                f"{section.path('tags')}.{name}: {_show(value)} is not allowed; expected names up to 512 "
                "characters and values up to 256"
            )
    return tags


def _string_map(section: Section, name: str) -> dict[str, str]:
    values = section.mapping(name)
    for key, value in values.items():
        if not isinstance(value, str):
            raise ConfigError(
                f"{section.path(name)}.{key}: {_show(value)} is not allowed; expected a string (quote numbers "
                'and booleans, e.g. "true")'
            )
    return values


def _preexisting(namespace: str) -> bool:
    """Namespaces every cluster already has (or AKS manages): the program cannot create them."""
    return namespace == "default" or namespace.startswith("kube-") or namespace == "gatekeeper-system"


def _check_version_against_channel(section: Section, version: str | None, channel: str) -> None:
    """AKS moves the version on these channels; a pinned one would show as a downgrade in every preview."""
    if version is None:
        return
    if channel in ("stable", "rapid"):
        raise ConfigError(
            f"{section.path('kubernetesVersion')}: '{version}' is not allowed with autoUpgradeChannel '{channel}', "
            "which upgrades minor versions; leave kubernetesVersion unset, or use the channel patch, node-image or none"
        )
    if channel == "patch" and version.count(".") == 2:
        raise ConfigError(
            f"{section.path('kubernetesVersion')}: '{version}' is not allowed with autoUpgradeChannel 'patch', "
            "which upgrades patch versions; give MAJOR.MINOR (e.g. '1.33'), or use the channel node-image or none"
        )


def parse_cluster(raw: Any, stack: str, location: str | None) -> ClusterSettings:
    if not location:
        raise ConfigError("azure-native:location: not set; expected an Azure region such as westeurope")

    def build(section: Section) -> ClusterSettings:
        name = section.string(
            "name",
            f"aks-istio-{stack}",
            _CLUSTER_NAME,
            "1-63 letters, digits, '-' or '_', starting and ending with a letter or digit",
        )
        resource_group = section.string(
            "resourceGroupName",
            f"rg-aks-istio-{stack}",
            _RESOURCE_GROUP,
            "1-90 letters, digits, '-', '_', '.', '(' or ')', not ending with '.'",
        )
        for key, value, pattern in (
            ("name", name, _CLUSTER_NAME),
            ("resourceGroupName", resource_group, _RESOURCE_GROUP),
        ):
            if not pattern.match(value):
                raise ConfigError(
                    f"{section.path(key)}: the default '{value}', made from the stack name '{stack}', is not a valid "
                    f"name; set {section.path(key)} explicitly"
                )
        version = section.optional_string(
            "kubernetesVersion", _K8S_VERSION, "a Kubernetes version MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.33"
        )
        channel = section.choice("autoUpgradeChannel", "patch", UPGRADE_CHANNELS)
        _check_version_against_channel(section, version, channel)
        with _reading(section.path("systemPool"), section.get("systemPool")) as pool:
            system_pool = _node_pool(pool, None, minimum_count=1)
        entra_id = None
        if section.get("entraId") is not None:
            with _reading(section.path("entraId"), section.get("entraId")) as entra:
                entra_id = _entra_id(entra)
        user_pool = None
        if section.get("userPool") is not None:
            with _reading(section.path("userPool"), section.get("userPool")) as pool:
                user_pool = _node_pool(pool, None, minimum_count=0)
        return ClusterSettings(
            name=name,
            resource_group_name=resource_group,
            environment=stack,
            location=location,
            system_pool=system_pool,
            kubernetes_version=version,
            user_pool=user_pool,
            network_plugin=section.choice("networkPlugin", "azure-overlay", NETWORK_PLUGINS),
            auto_upgrade_channel=channel,
            entra_id=entra_id,
            azure_policy=section.boolean("azurePolicy", False),
            tags=_tags(section),
        )

    return _build(f"{PROJECT}:cluster", raw, build)


def _load_operator_file(path_setting: Any, root: Path) -> tuple[str, dict[str, Any]]:
    from components.istio_operator import istio_config_from_operator

    key = f"{PROJECT}:istio.operatorFile"
    if not isinstance(path_setting, str) or not path_setting:
        raise ConfigError(f"{key}: {_show(path_setting)} is not allowed; expected a path to an IstioOperator YAML file")
    path = Path(path_setting)
    path = path if path.is_absolute() else root / path
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read '{path_setting}': {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: '{path_setting}' is not valid YAML: {exc}") from exc
    if not isinstance(document, Mapping):
        raise ConfigError(f"{key}: '{path_setting}' is not an IstioOperator document")
    return path_setting, istio_config_from_operator(document, path_setting)


def parse_istio(raw: Any, root: Path) -> IstioSettings:
    operator_file: str | None = None
    if isinstance(raw, Mapping) and raw.get("operatorFile") is not None:
        from components.istio_operator import merge_operator_config

        operator_file, from_file = _load_operator_file(raw["operatorFile"], root)
        stack_values = {k: v for k, v in raw.items() if k != "operatorFile"}
        raw = merge_operator_config(stack_values, from_file, operator_file)

    def build(section: Section) -> IstioSettings:
        version = check_supported_version(
            _default_if_unset(section.get("version"), DEFAULT_ISTIO_VERSION), section.path("version")
        )
        section.get("operatorFile")
        with _reading(section.path("cni"), section.get("cni")) as cni_section:
            cni = CniSettings(
                enabled=cni_section.boolean("enabled", True),
                exclude_namespaces=cni_section.names(
                    "excludeNamespaces", SYSTEM_NAMESPACES, _DNS_LABEL, "namespace names (DNS labels)"
                ),
                chained=cni_section.optional_boolean("chained"),
                repair=cni_section.optional_boolean("repair"),
            )
        missing = [ns for ns in SYSTEM_NAMESPACES if ns not in cni.exclude_namespaces]
        if missing:
            raise ConfigError(
                f"{section.path('cni.excludeNamespaces')}: {list(cni.exclude_namespaces)} is not allowed; it must "
                f"include the system namespaces {', '.join(SYSTEM_NAMESPACES)} (missing: {', '.join(missing)}), "
                "whose pods must start without waiting for the mesh"
            )
        with _reading(section.path("addons"), section.get("addons")) as addon_section:
            addons = AddonSettings(
                grafana=addon_section.boolean("grafana", False),
                tracing=addon_section.boolean("tracing", False),
                kiali=addon_section.boolean("kiali", False),
                prometheus=addon_section.boolean("prometheus", False),
            )
        defaults = GatewaySettings()
        with _reading(section.path("gateway"), section.get("gateway")) as gateway_section:
            gateway = GatewaySettings(
                enabled=gateway_section.boolean("enabled", defaults.enabled),
                name=gateway_section.string(
                    "name", defaults.name, _RELEASE_NAME, "a DNS label of at most 53 characters (a Helm release name)"
                ),
                namespace=gateway_section.string("namespace", defaults.namespace, _DNS_LABEL, "a namespace name"),
                service_annotations=_string_map(gateway_section, "serviceAnnotations"),
            )
            if gateway.enabled and _preexisting(gateway.namespace):
                raise gateway_section.fail(
                    "namespace", gateway.namespace, "a namespace of its own or istio-system (the program creates it)"
                )
        settings = IstioSettings(
            version=version,
            cni=cni,
            addons=addons,
            gateway=gateway,
            pilot=section.mapping("pilot"),
            global_values=section.mapping("global"),
            mesh_config=section.mapping("meshConfig"),
            operator_file=operator_file,
        )
        conflict = pilot_cni_conflict(settings)
        if conflict:
            raise ConfigError(conflict)
        tag = settings.global_values.get("tag")
        if tag is not None and tag != version:
            # Charts and images move together; an image variant has its own key.
            raise ConfigError(
                f"{section.path('global.tag')}: {_show(tag)} is not allowed; the images follow "
                f"{section.path('version')} ('{version}'): leave it out, and put a variant such as distroless "
                f"in {section.path('global.variant')}"
            )
        unknown = unknown_extra_keys(settings)
        if unknown:
            raise ConfigError("; ".join(unknown))
        return settings

    return _build(f"{PROJECT}:istio", raw, build)


def parse_mesh(raw: Any, istio: IstioSettings) -> MeshSettings:
    def build(section: Section) -> MeshSettings:
        namespaces = section.names("namespaces", (), _DNS_LABEL, "namespace names (DNS labels)")
        key = section.path("namespaces")
        for namespace in namespaces:
            if namespace in SYSTEM_NAMESPACES or _preexisting(namespace):
                raise ConfigError(
                    f"{key}: '{namespace}' is not allowed; expected an application namespace of its own "
                    "(the program creates each one; system namespaces and `default` cannot join the mesh)"
                )
            if namespace in istio.cni.exclude_namespaces:
                raise ConfigError(
                    f"{key}: '{namespace}' is not allowed; it is also in {PROJECT}:istio.cni.excludeNamespaces, "
                    "so its pods would get a sidecar whose traffic the CNI plugin never redirects"
                )
            if istio.gateway.enabled and namespace == istio.gateway.namespace:
                raise ConfigError(
                    f"{key}: '{namespace}' is not allowed; it is the ingress gateway's namespace "
                    f"({PROJECT}:istio.gateway.namespace)"
                )
        return MeshSettings(namespaces=namespaces)

    return _build(f"{PROJECT}:mesh", raw, build)


def parse_restart(raw: Any) -> RestartSettings:
    defaults = RestartSettings()

    def build(section: Section) -> RestartSettings:
        max_concurrent = section.integer("maxConcurrent", defaults.max_concurrent, 1, 100)
        timeout = section.integer("timeoutSeconds", defaults.timeout_seconds, 1, 21600)
        assert max_concurrent is not None and timeout is not None
        return RestartSettings(
            max_concurrent=max_concurrent,
            wait_for_rollout=section.boolean("waitForRollout", defaults.wait_for_rollout),
            timeout_seconds=timeout,
        )

    return _build(f"{PROJECT}:restart", raw, build)


def parse_settings(
    stack: str, objects: Mapping[str, Any], location: str | None, root: Path | None = None
) -> StackSettings:
    """Typed settings from the raw config objects (`cluster`, `istio`, `mesh`, `restart`)."""
    unknown = sorted(set(objects) - {"cluster", "istio", "mesh", "restart"})
    if unknown:
        raise ConfigError(
            f"{PROJECT}:{unknown[0]}: unknown setting; allowed keys are {PROJECT}:cluster, "
            f"{PROJECT}:istio, {PROJECT}:mesh, {PROJECT}:restart"
        )
    istio = parse_istio(objects.get("istio"), root or Path.cwd())
    cluster = parse_cluster(objects.get("cluster"), stack, location)
    if cluster.azure_policy and not istio.cni.enabled:
        raise ConfigError(
            f"{PROJECT}:cluster.azurePolicy: true is not allowed with {PROJECT}:istio.cni.enabled false; the policy "
            "denies NET_ADMIN/NET_RAW, which the istio-init container of every sidecar pod needs without the CNI"
        )
    return StackSettings(
        cluster=cluster,
        istio=istio,
        mesh=parse_mesh(objects.get("mesh"), istio),
        restart=parse_restart(objects.get("restart")),
    )


def _project_config_keys() -> set[str]:
    """Names of every `aks-istio:*` key the engine passed, so a misspelled one is caught too."""
    import pulumi.runtime.config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    names = set()
    for key in keys:
        namespace, _, name = key.partition(":")
        if namespace == PROJECT:
            names.add(name.removeprefix("config:"))
    return names


def load_settings() -> StackSettings:
    """The current stack's settings, read from Pulumi config (call once, from the program)."""
    import pulumi

    config = pulumi.Config(PROJECT)
    objects: dict[str, Any] = {}
    for name in _project_config_keys():
        try:
            objects[name] = config.get_object(name)
        except pulumi.ConfigTypeError:
            objects[name] = config.get(name)
    location = pulumi.Config("azure-native").get("location")
    return parse_settings(pulumi.get_stack(), objects, location, Path.cwd())
