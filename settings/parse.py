"""Turn the raw config objects of a stack into the settings model.

This layer checks what only the raw form has: each object's shape, each value's type, the defaults
(some made from the stack's name) and unknown keys. The values' rules are the model's own
(`settings.model`), checked as each dataclass is built. A message never shows a secret config value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from settings.model import (
    DATA_PLANE_MODES,
    DEFAULT_ISTIO_VERSION,
    DEFAULT_WAYPOINT,
    LOGIN_MODES,
    MAX_LIST_ITEMS,
    NETWORK_PLUGINS,
    SIDECAR_MODE,
    SYSTEM_NAMESPACES,
    UPGRADE_CHANNELS,
    AddonSettings,
    AmbientNamespace,
    AmbientSettings,
    CanarySettings,
    ClusterSettings,
    CniSettings,
    EntraIdSettings,
    GatewaySettings,
    IstioSettings,
    MeshSettings,
    NodePoolSettings,
    RestartSettings,
    StackSettings,
)
from settings.rules import (
    CLUSTER_NAME,
    RESOURCE_GROUP,
    ConfigError,
    config_key,
    matches,
    not_allowed,
    require_choice,
    require_count,
    show,
    show_key,
    unknown_key,
)
from settings.yaml_file import read_yaml_file

SECTIONS = ("cluster", "istio", "mesh", "restart")
"""The structured config objects under the project namespace."""

T = TypeVar("T")


class Section:
    """One config object: typed getters that name the full key on error, and no unknown keys."""

    def __init__(self, key: str, raw: Any) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{key}: {show(raw)} is not allowed; expected an object (key: value)")
        self.key = key
        self.raw: Mapping[str, Any] = raw
        self.read: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.key}.{name}"

    def get(self, name: str) -> Any:
        self.read.add(name)
        return self.raw.get(name)

    def string(self, name: str, default: str, allowed: str = "a string") -> str:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise not_allowed(self.path(name), value, allowed)
        return value

    def optional_string(self, name: str, allowed: str) -> str | None:
        value = self.get(name)
        if value is not None and not isinstance(value, str):
            raise not_allowed(self.path(name), value, allowed)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.optional_boolean(name)
        return default if value is None else value

    def optional_boolean(self, name: str) -> bool | None:
        value = self.get(name)
        if value is not None and not isinstance(value, bool):
            raise not_allowed(self.path(name), value, "true or false")
        return value

    def integer(self, name: str, default: T, minimum: int, maximum: int) -> int | T:
        """A whole number; the range is the model's rule, named here only for a wrongly typed value."""
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            return int(value)  # `1e3` in a stack file reaches the program as 1000, through the CLI's JSON
        if isinstance(value, bool) or not isinstance(value, int):
            raise not_allowed(self.path(name), value, f"a whole number from {minimum} to {maximum}")
        return value

    def names(self, name: str, default: tuple[str, ...], allowed: str) -> tuple[str, ...]:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, list):
            raise not_allowed(self.path(name), value, f"a list of {allowed}")
        for item in value:
            if not isinstance(item, str):
                raise not_allowed(self.path(name), item, allowed)
        return tuple(value)

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise not_allowed(self.path(name), value, "an object (key: value)")
        return dict(value)

    def string_map(self, name: str) -> dict[str, str]:
        values = self.mapping(name)
        for key, value in values.items():
            if not isinstance(key, str):
                raise not_allowed(self.path(name), key, 'names that are strings (quote numbers, e.g. "1")')
            if not isinstance(value, str):
                raise ConfigError(
                    f"{self.path(name)}.{show_key(key)}: {show(value)} is not allowed; expected a string (quote "
                    'numbers and booleans, e.g. "true")'
                )
        return values

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.read, key=str)
        if unknown:
            first = unknown[0]
            raise unknown_key(self.path(show_key(first)), str(first), self.read, f"allowed keys of {self.key} are")


@contextmanager
def _reading(key: str, raw: Any) -> Iterator[Section]:
    section = Section(key, raw)
    yield section
    section.finish()


def _build(key: str, raw: Any, build: Callable[[Section], T]) -> T:
    with _reading(key, raw) as section:
        return build(section)


def _optional(section: Section, name: str, build: Callable[[Section], T]) -> T | None:
    raw = section.get(name)
    return None if raw is None else _build(section.path(name), raw, build)


def _node_pool(section: Section, minimum_count: int) -> NodePoolSettings:
    raw_zones = section.get("zones")
    if isinstance(raw_zones, list):
        # `pulumi config set --path ...zones[0] 1` stores a number; a zone is the same either way.
        section.raw = {**section.raw, "zones": [str(z) if type(z) is int else z for z in raw_zones]}
    return NodePoolSettings(
        vm_size=section.string("vmSize", "Standard_D4ds_v5", "an Azure VM size such as Standard_D4ds_v5"),
        count=section.integer("count", max(minimum_count, 1), minimum_count, 1000),
        min_count=section.integer("minCount", None, minimum_count, 1000),
        max_count=section.integer("maxCount", None, max(minimum_count, 1), 1000),
        zones=section.names("zones", (), "availability zones '1', '2' or '3'"),
    )


def _entra_id(section: Section) -> EntraIdSettings:
    return EntraIdSettings(
        admin_group_object_ids=section.names("adminGroupObjectIds", (), "Entra ID group object IDs (GUIDs)"),
        login_mode=section.string("loginMode", "azurecli", "one of " + ", ".join(LOGIN_MODES)),
    )


def _default_name(section: Section, name: str, default: str, stack: str, pattern: Any) -> str:
    """A name made from the stack's name must be valid too; the fix is to set it explicitly."""
    value = section.string(name, default)
    if name not in section.raw and not matches(pattern, value):
        raise ConfigError(
            f"{section.path(name)}: the default {show(value)}, made from the stack name {show(stack)}, is not a valid "
            f"name; set {section.path(name)} explicitly"
        )
    return value


def parse_cluster(raw: Any, stack: str, location: str | None) -> ClusterSettings:
    if not location:
        raise ConfigError("azure-native:location: not set; expected an Azure region such as westeurope")

    def build(section: Section) -> ClusterSettings:
        return ClusterSettings(
            name=_default_name(section, "name", f"aks-istio-{stack}", stack, CLUSTER_NAME),
            resource_group_name=_default_name(
                section, "resourceGroupName", f"rg-aks-istio-{stack}", stack, RESOURCE_GROUP
            ),
            environment=stack,
            location=location,
            system_pool=_build(section.path("systemPool"), section.get("systemPool"), lambda s: _node_pool(s, 1)),
            kubernetes_version=section.optional_string(
                "kubernetesVersion", "a Kubernetes version MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.33"
            ),
            user_pool=_optional(section, "userPool", lambda s: _node_pool(s, 0)),
            network_plugin=section.string("networkPlugin", "azure-overlay", "one of " + ", ".join(NETWORK_PLUGINS)),
            auto_upgrade_channel=section.string("autoUpgradeChannel", "patch", "one of " + ", ".join(UPGRADE_CHANNELS)),
            entra_id=_optional(section, "entraId", _entra_id),
            azure_policy=section.boolean("azurePolicy", False),
            tags=section.string_map("tags"),
        )

    return _build(config_key("cluster"), raw, build)


def _load_operator_file(path_setting: Any, root: Path) -> tuple[str, dict[str, Any]]:
    from settings.operator_file import istio_config_from_operator

    key = config_key("istio.operatorFile")
    if not isinstance(path_setting, str) or not path_setting:
        raise ConfigError(f"{key}: {show(path_setting)} is not allowed; expected a path to an IstioOperator YAML file")
    path = _inside_project(key, path_setting, root)
    document = read_yaml_file(path, f"{key}: {show(path_setting)}")
    if not isinstance(document, Mapping):
        raise ConfigError(f"{key}: {show(path_setting)} is not an IstioOperator document")
    return path_setting, istio_config_from_operator(document, path_setting)


def _inside_project(key: str, path_setting: str, root: Path) -> Path:
    """The file, if it lies inside the project (symlinks resolved): a stack setting may not read elsewhere."""
    allowed = "a relative path to a file inside the project directory"
    if "\0" in path_setting or len(path_setting) > 1024:
        raise not_allowed(key, path_setting, allowed)
    relative = Path(path_setting)
    if relative.is_absolute():
        raise not_allowed(key, path_setting, allowed)
    try:
        project = root.resolve()
        path = (project / relative).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise not_allowed(key, path_setting, f"{allowed} (it does not resolve)") from None
    if not path.is_relative_to(project):
        raise not_allowed(key, path_setting, f"{allowed} (it resolves outside it)")
    return path


def _cni(section: Section) -> CniSettings:
    return CniSettings(
        enabled=section.boolean("enabled", True),
        exclude_namespaces=section.names("excludeNamespaces", SYSTEM_NAMESPACES, "namespace names (DNS labels)"),
        chained=section.optional_boolean("chained"),
        repair=section.optional_boolean("repair"),
    )


def _addons(section: Section) -> AddonSettings:
    return AddonSettings(
        **{name: section.boolean(name, False) for name in ("grafana", "tracing", "kiali", "prometheus")}
    )


def _gateway(section: Section) -> GatewaySettings:
    defaults = GatewaySettings()
    return GatewaySettings(
        enabled=section.boolean("enabled", defaults.enabled),
        name=section.string("name", defaults.name, "a DNS label of at most 53 characters (a Helm release name)"),
        namespace=section.string("namespace", defaults.namespace, "a namespace name"),
        service_annotations=section.string_map("serviceAnnotations"),
    )


def _ambient(section: Section) -> AmbientSettings:
    return AmbientSettings(enabled=section.boolean("enabled", AmbientSettings().enabled))


def _canary(section: Section) -> CanarySettings:
    version = section.get("version")
    if not isinstance(version, str):
        raise not_allowed(section.path("version"), version, "the canary's Istio release MAJOR.MINOR.PATCH, e.g. 1.30.3")
    return CanarySettings(version=version, namespaces=section.names("namespaces", (), "mesh namespace names"))


def parse_istio(raw: Any, root: Path) -> IstioSettings:
    operator_file: str | None = None
    if isinstance(raw, Mapping) and raw.get("operatorFile") is not None:
        from settings.operator_file import merge_operator_config

        operator_file, from_file = _load_operator_file(raw["operatorFile"], root)
        stack_values = {k: v for k, v in raw.items() if k != "operatorFile"}
        raw = merge_operator_config(stack_values, from_file, operator_file)

    def build(section: Section) -> IstioSettings:
        version = section.get("version")
        section.get("operatorFile")
        return IstioSettings(
            version=DEFAULT_ISTIO_VERSION if version is None else version,
            cni=_build(section.path("cni"), section.get("cni"), _cni),
            addons=_build(section.path("addons"), section.get("addons"), _addons),
            gateway=_build(section.path("gateway"), section.get("gateway"), _gateway),
            pilot=section.mapping("pilot"),
            global_values=section.mapping("global"),
            mesh_config=section.mapping("meshConfig"),
            operator_file=operator_file,
            allow_downgrade_from=section.optional_string(
                "allowDowngradeFrom", "the Istio version deployed now, MAJOR.MINOR.PATCH"
            ),
            canary=_optional(section, "canary", _canary),
            ambient=_build(section.path("ambient"), section.get("ambient"), _ambient),
        )

    return _build(config_key("istio"), raw, build)


MESH_NAMESPACE_FORM = (
    "a namespace name, or an object with `name`, `mode` (sidecar or ambient), `waypoint` (a name, or true for "
    f"'{DEFAULT_WAYPOINT}') and `acknowledge` (findings of the move's check)"
)


def parse_mesh(raw: Any) -> MeshSettings:
    """`mesh.namespaces`: each item a name (a sidecar namespace, the original form) or an object."""

    def build(section: Section) -> MeshSettings:
        items = section.get("namespaces")
        if items is None:
            return MeshSettings()
        key = section.path("namespaces")
        if not isinstance(items, list):
            raise not_allowed(key, items, f"a list; each item {MESH_NAMESPACE_FORM}")
        require_count(key, items, MAX_LIST_ITEMS["mesh.namespaces"], "namespaces")
        names: list[str] = []
        ambient: dict[str, AmbientNamespace] = {}
        for index, item in enumerate(items):
            if isinstance(item, str):
                names.append(item)
                continue
            if not isinstance(item, Mapping):
                raise not_allowed(f"{key}[{index}]", item, MESH_NAMESPACE_FORM)
            namespace, settings = _build(f"{key}[{index}]", item, _mesh_namespace)
            names.append(namespace)
            if settings is not None:
                ambient[namespace] = settings
        return MeshSettings(namespaces=tuple(names), ambient=ambient)

    return _build(config_key("mesh"), raw, build)


def _mesh_namespace(section: Section) -> tuple[str, AmbientNamespace | None]:
    name = section.optional_string("name", "a namespace name (a DNS label)")
    if name is None:
        raise ConfigError(f"{section.path('name')}: not set; expected the namespace's name (a DNS label)")
    mode = section.string("mode", SIDECAR_MODE, "one of " + ", ".join(DATA_PLANE_MODES))
    require_choice(section.path("mode"), mode, DATA_PLANE_MODES)
    waypoint = section.get("waypoint")
    if waypoint is True:
        waypoint = DEFAULT_WAYPOINT
    elif waypoint is None or waypoint is False:
        waypoint = ""
    elif not isinstance(waypoint, str) or not waypoint:
        raise not_allowed(section.path("waypoint"), waypoint, f"a waypoint name, or true for '{DEFAULT_WAYPOINT}'")
    acknowledge = section.names("acknowledge", (), "findings, `Kind/namespace/name`")
    if mode == SIDECAR_MODE:
        for setting, value in (("waypoint", waypoint), ("acknowledge", acknowledge)):
            if value:
                raise ConfigError(
                    f"{section.path(setting)}: not allowed for a namespace in sidecar mode; it is for `mode: ambient`"
                )
        return name, None
    return name, AmbientNamespace(waypoint=waypoint, acknowledge=acknowledge)


def parse_restart(raw: Any) -> RestartSettings:
    defaults = RestartSettings()

    def build(section: Section) -> RestartSettings:
        return RestartSettings(
            max_concurrent=section.integer("maxConcurrent", defaults.max_concurrent, 1, 100),
            wait_for_rollout=section.boolean("waitForRollout", defaults.wait_for_rollout),
            slow_start=section.boolean("slowStart", defaults.slow_start),
            timeout_seconds=section.integer("timeoutSeconds", defaults.timeout_seconds, 1, 21600),
        )

    return _build(config_key("restart"), raw, build)


def parse_settings(
    stack: str,
    objects: Mapping[str, Any],
    location: str | None,
    root: Path | None = None,
    secret: Collection[str] = (),
) -> StackSettings:
    """Typed settings from the raw config objects (`cluster`, `istio`, `mesh`, `restart`).

    `secret` names the objects set as secrets (`pulumi config set --secret`): their values never reach a message.
    """
    try:
        return _parse_settings(stack, objects, location, root, frozenset(secret) & frozenset(objects))
    except ConfigError as exc:
        hidden = [objects[name] for name in secret if name in objects]
        if not hidden:
            raise
        raise ConfigError(redacted(str(exc), hidden, [config_key(name) for name in secret])) from None


def _parse_settings(
    stack: str, objects: Mapping[str, Any], location: str | None, root: Path | None, secret: frozenset[str]
) -> StackSettings:
    unknown = sorted(set(objects) - set(SECTIONS))
    if unknown:
        raise unknown_key(config_key(show_key(unknown[0])), unknown[0], SECTIONS, "allowed keys are", config_key)
    istio = parse_istio(objects.get("istio"), root or Path.cwd())
    cluster = parse_cluster(objects.get("cluster"), stack, location)
    return StackSettings(
        cluster=cluster,
        istio=istio,
        mesh=parse_mesh(objects.get("mesh")),
        restart=parse_restart(objects.get("restart")),
        secret_sections=secret,
    )


def redacted(message: str, secrets: Iterable[Any], secret_keys: Iterable[str]) -> str:
    """`message` with every value of `secrets` shown as `[secret]`; a refused value of a secret key too.

    A value set with `pulumi config set --secret` must stay secret in errors too.
    """
    for key in secret_keys:
        if message.startswith(key):
            message = _REFUSED_VALUE.sub(r"\1[secret]\2", message, count=1)
    texts = sorted({text for value in secrets for text in _scalars(value) if len(text) >= 3}, key=len, reverse=True)
    for text in texts:
        # `show` bounds a long value, so a message may hold only its beginning: that goes too.
        for form in (show(text), text, repr(text)[1:-1], text[:150]):
            message = message.replace(form, "[secret]")
    return message


_REFUSED_VALUE = re.compile(r"^([^:]+:[^:]+: ).*?( is not (?:allowed|supported))")


def _scalars(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):  # the keys are setting names, which the message needs
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _scalars(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)
