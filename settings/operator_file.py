"""IstioOperator files: read into the `aks-istio:istio` config shape, and written from a stack's Istio settings.

A mesh installed with `istioctl install -f <file>` (the article's path) moves to this program
unchanged: every field that maps is translated, and every field this program cannot honour fails with
a message naming it, instead of being dropped. `operator_manifest` writes the other way, for people who
use istioctl.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from settings.istio_releases import MINIMUM_ISTIO_VERSION, istio_release
from settings.model import ISTIO_NAMESPACE, IstioSettings, MeshSettings
from settings.rules import ConfigError, config_key, show, show_key

API_VERSION = "install.istio.io/v1alpha1"
KIND = "IstioOperator"
ADDONS = ("grafana", "tracing", "kiali", "prometheus")
ADDONS_ANNOTATION = "aks-istio/addons"
"""Addons are Helm releases here, not istioctl components; the exported file records them here."""

CONFIG_KEY = config_key("istio")

# `values.<key>` sections that istiod reads at its top level, exactly as it reads `pilot.*`.
_ISTIOD_TOP_LEVEL_SECTIONS = ("sidecarInjectorWebhook", "telemetry")

# components.pilot.k8s fields with an istiod chart value of the same meaning.
_PILOT_K8S_VALUES = {
    "replicaCount": "replicaCount",
    "resources": "resources",
    "nodeSelector": "nodeSelector",
    "tolerations": "tolerations",
    "affinity": "affinity",
    "podAnnotations": "podAnnotations",
}
_PILOT_HPA_VALUES = {"minReplicas": "autoscaleMin", "maxReplicas": "autoscaleMax"}


# Lists compared as sets when the file and stack config both give them: their order means nothing.
_UNORDERED_LISTS = frozenset({"cni.excludeNamespaces"})


class _Reader:
    """Walks one document, consuming fields; a field nobody consumed is one this program can't honour."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, why: str) -> ConfigError:
        return ConfigError(f"{CONFIG_KEY}.operatorFile {show(self.source)}: {show_key(path, 200)}: {why}")

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(path, f"{show(value)} is not allowed; expected an object (key: value)")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"{show(value)} is not allowed; expected true or false")
        return value

    def only(self, section: Mapping[str, Any], path: str, allowed: tuple[str, ...], why: str) -> None:
        for key in section:
            if key not in allowed:
                raise self.error(f"{path}.{key}", why)


Path = str | tuple[str, ...]
"""Where a setting goes: a dotted string names a path of the config schema; a tuple is a path whose parts
may hold dots themselves (the keys of a map such as `podAnnotations` or `nodeSelector` are data)."""


def _parts(path: Path) -> tuple[str, ...]:
    return tuple(path.split(".")) if isinstance(path, str) else path


def _put(target: dict[str, Any], path: Path, value: Any, reader: _Reader, origin: str) -> None:
    """Set `path` in `target`; a second, different value for the same setting is a conflict."""
    *parents, leaf = _parts(path)
    node = target
    for part in parents:
        node = node.setdefault(part, {})
    if leaf in node and node[leaf] != value:
        shown = ".".join(_parts(path))
        raise reader.error(
            origin,
            f"{show(value)} contradicts {show(node[leaf])} given elsewhere in the file for {show_key(shown, 200)}",
        )
    node[leaf] = copy.deepcopy(value)


def _merge_into(target: dict[str, Any], path: Path, values: Mapping[str, Any], reader: _Reader, origin: str) -> None:
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            _merge_into(target, (*_parts(path), key), value, reader, f"{origin}.{key}")
        else:
            _put(target, (*_parts(path), key), value, reader, f"{origin}.{key}")


def istio_config_from_operator(document: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The raw camelCase `aks-istio:istio` config equivalent to an IstioOperator document.

    Raises ConfigError naming the field (e.g. `spec.components.egressGateways`), the file and why,
    for anything that cannot be honoured.
    """
    reader = _Reader(source)
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise reader.error(
            "apiVersion/kind",
            f"got {show(document.get('apiVersion'))}/{show(document.get('kind'))}; expected {API_VERSION}/{KIND}",
        )
    reader.only(document, "", ("apiVersion", "kind", "metadata", "spec", "status"), "unknown top-level field")
    config: dict[str, Any] = {}
    _read_metadata(reader.mapping(document.get("metadata"), "metadata"), config, reader)
    spec = reader.mapping(document.get("spec"), "spec")
    _read_install_options(spec, config, reader)
    _read_components(reader.mapping(spec.get("components"), "spec.components"), config, reader)
    _read_values(reader.mapping(spec.get("values"), "spec.values"), config, reader)
    _read_addon_components(reader.mapping(spec.get("addonComponents"), "spec.addonComponents"), config, reader)
    mesh_config = reader.mapping(spec.get("meshConfig"), "spec.meshConfig")
    if mesh_config:
        _merge_into(config, "meshConfig", mesh_config, reader, "spec.meshConfig")
    _check_pilot_cni(config, reader)
    return config


def _read_metadata(metadata: Mapping[str, Any], config: dict[str, Any], reader: _Reader) -> None:
    annotations = reader.mapping(metadata.get("annotations"), "metadata.annotations")
    listed = annotations.get(ADDONS_ANNOTATION)
    if listed is None:
        return
    path = f"metadata.annotations.{ADDONS_ANNOTATION}"
    names = [name.strip() for name in str(listed).split(",") if name.strip()]
    for name in names:
        if name not in ADDONS:
            raise reader.error(path, f"unknown addon {show(name)}; expected some of {', '.join(ADDONS)}")
    for addon in ADDONS:
        _put(config, f"addons.{addon}", addon in names, reader, path)


def _read_install_options(spec: Mapping[str, Any], config: dict[str, Any], reader: _Reader) -> None:
    handled = ("profile", "revision", "hub", "tag", "namespace", "meshConfig", "components", "values")
    for key in spec:
        if key not in handled and key != "addonComponents":
            raise reader.error(f"spec.{key}", "not supported by this program (it installs with Helm, not istioctl)")
    profile = spec.get("profile")
    if profile == "ambient":
        # The charts' own ambient profile, plus the ztunnel chart: what `istio.ambient.enabled` installs.
        _put(config, "ambient.enabled", True, reader, "spec.profile")
    elif profile not in (None, "", "default"):
        raise reader.error(
            "spec.profile",
            f"{show(profile)} is not supported; the Helm charts install the `default` profile, or the `ambient` one "
            "(remove the field, or set the settings the profile changes explicitly)",
        )
    if spec.get("revision"):
        raise reader.error(
            "spec.revision",
            f"{show(spec['revision'])} is not supported; this program installs one unrevisioned control plane",
        )
    namespace = spec.get("namespace")
    if namespace not in (None, ISTIO_NAMESPACE):
        raise reader.error(
            "spec.namespace", f"{show(namespace)} is not supported; Istio is installed in {ISTIO_NAMESPACE}"
        )
    if spec.get("hub") is not None:
        _put(config, "global.hub", spec["hub"], reader, "spec.hub")
    if spec.get("tag") is not None:
        _read_tag(spec["tag"], config, reader, "spec.tag")


def _read_tag(tag: Any, config: dict[str, Any], reader: _Reader, path: str) -> None:
    """An IstioOperator `tag` (the images istioctl installs) becomes the Istio version here.

    Charts and images move together: as `global.tag` it would pin the images while the charts
    follow `version`, e.g. 1.5.0 proxies injected by a 1.30 istiod.
    """
    release = istio_release(tag)
    if release is None:
        raise reader.error(
            path,
            f"{show(tag)} is not supported; expected an Istio release MAJOR.MINOR.PATCH (it sets "
            f"{CONFIG_KEY}.version). An image variant such as 1.30.3-distroless goes in spec.values.global.variant "
            "(e.g. distroless)",
        )
    if release[:2] < MINIMUM_ISTIO_VERSION:
        raise reader.error(
            path,
            f"{show(tag)} is not supported; it sets {CONFIG_KEY}.version, and this program installs Istio 1.24 or "
            "newer (set the release to install here, or remove it and set the version in stack config)",
        )
    _put(config, "version", tag, reader, path)


def _read_components(components: Mapping[str, Any], config: dict[str, Any], reader: _Reader) -> None:
    if "ingressGateways" not in components:
        # The default profile installs one ingress gateway, in istio-system: keep it where it is.
        _read_ingress_gateways([{}], config, reader)
    for name, raw in components.items():
        path = f"spec.components.{name}"
        if name == "cni":
            _read_cni_component(reader.mapping(raw, path), config, reader)
        elif name == "ingressGateways":
            _read_ingress_gateways(raw, config, reader)
        elif name == "pilot":
            _read_pilot_component(reader.mapping(raw, path), config, reader)
        elif name == "base":
            base = reader.mapping(raw, path)
            reader.only(base, path, ("enabled",), "not supported; the base chart is installed with its defaults")
            if base.get("enabled") is not None and not reader.boolean(base["enabled"], f"{path}.enabled"):
                raise reader.error(f"{path}.enabled", "false is not supported; Istio needs its CRDs (the base chart)")
        elif name == "egressGateways":
            _reject_enabled_entries(raw, path, reader, "egress gateways are not installed by this program")
        else:
            # istiodRemote, ztunnel, and the pre-1.6 components (policy, telemetry, citadel, ...):
            # harmless when disabled, impossible to honour when enabled.
            component = reader.mapping(raw, path)
            if component.get("enabled"):
                raise reader.error(f"{path}.enabled", f"the {name} component is not installed by this program")


def _reject_enabled_entries(raw: Any, path: str, reader: _Reader, why: str) -> None:
    if raw is None:
        return
    if not isinstance(raw, list):
        raise reader.error(path, f"{show(raw)} is not allowed; expected a list")
    for index, entry in enumerate(raw):
        if reader.mapping(entry, f"{path}[{index}]").get("enabled"):
            raise reader.error(f"{path}[{index}]", why)


def _read_cni_component(cni: Mapping[str, Any], config: dict[str, Any], reader: _Reader) -> None:
    path = "spec.components.cni"
    reader.only(cni, path, ("enabled", "namespace"), "not supported; only enabled (and namespace istio-system) map")
    if cni.get("enabled") is not None:
        _put_boolean(config, "cni.enabled", cni["enabled"], reader, f"{path}.enabled")
    if cni.get("namespace") not in (None, ISTIO_NAMESPACE):
        raise reader.error(
            f"{path}.namespace",
            f"{show(cni['namespace'])} is not supported; the CNI node agent runs in {ISTIO_NAMESPACE} "
            "(whose Pod Security level allows its hostPath volumes)",
        )


def _read_ingress_gateways(raw: Any, config: dict[str, Any], reader: _Reader) -> None:
    path = "spec.components.ingressGateways"
    if raw is None:
        return
    if not isinstance(raw, list):
        raise reader.error(path, f"{show(raw)} is not allowed; expected a list")
    if len(raw) > 1:
        raise reader.error(path, f"{len(raw)} gateways given; this program installs at most one ingress gateway")
    for index, entry in enumerate(raw):
        entry_path = f"{path}[{index}]"
        gateway = reader.mapping(entry, entry_path)
        reader.only(
            gateway,
            entry_path,
            ("name", "namespace", "enabled", "k8s"),
            "not supported; only name, namespace, enabled and k8s.serviceAnnotations map to the gateway chart",
        )
        if gateway.get("k8s") is not None:
            k8s_path = f"{entry_path}.k8s"
            k8s = reader.mapping(gateway["k8s"], k8s_path)
            reader.only(k8s, k8s_path, ("serviceAnnotations",), "not supported; only serviceAnnotations maps")
            if k8s.get("serviceAnnotations") is not None:
                annotations = reader.mapping(k8s["serviceAnnotations"], f"{k8s_path}.serviceAnnotations")
                _put(config, "gateway.serviceAnnotations", dict(annotations), reader, f"{k8s_path}.serviceAnnotations")
        enabled = True
        if gateway.get("enabled") is not None:
            enabled = reader.boolean(gateway["enabled"], f"{entry_path}.enabled")
            _put(config, "gateway.enabled", enabled, reader, f"{entry_path}.enabled")
        if gateway.get("name") is not None:
            _put(config, "gateway.name", gateway["name"], reader, f"{entry_path}.name")
        if gateway.get("namespace") is not None:
            _put(config, "gateway.namespace", gateway["namespace"], reader, f"{entry_path}.namespace")
        elif enabled:
            # Where istioctl puts it. Anywhere else the gateway's Service, and with it the
            # LoadBalancer IP, would be replaced, and its TLS secrets would sit in the wrong namespace.
            _put(config, "gateway.namespace", ISTIO_NAMESPACE, reader, f"{entry_path}.namespace")


def _read_pilot_component(pilot: Mapping[str, Any], config: dict[str, Any], reader: _Reader) -> None:
    path = "spec.components.pilot"
    reader.only(pilot, path, ("enabled", "namespace", "k8s"), "not supported for istiod")
    if pilot.get("enabled") is not None and not reader.boolean(pilot["enabled"], f"{path}.enabled"):
        raise reader.error(f"{path}.enabled", "false is not supported; this program always installs istiod")
    if pilot.get("namespace") not in (None, ISTIO_NAMESPACE):
        raise reader.error(
            f"{path}.namespace", f"{show(pilot['namespace'])} is not supported; istiod runs in {ISTIO_NAMESPACE}"
        )
    k8s = reader.mapping(pilot.get("k8s"), f"{path}.k8s")
    for key, value in k8s.items():
        field_path = f"{path}.k8s.{key}"
        if key in _PILOT_K8S_VALUES:
            _put(config, f"pilot.{_PILOT_K8S_VALUES[key]}", value, reader, field_path)
        elif key == "hpaSpec":
            hpa = reader.mapping(value, field_path)
            reader.only(
                hpa,
                field_path,
                tuple(_PILOT_HPA_VALUES),
                "not supported; only minReplicas and maxReplicas map",
            )
            for hpa_key, hpa_value in hpa.items():
                _put(
                    config,
                    f"pilot.{_PILOT_HPA_VALUES[hpa_key]}",
                    hpa_value,
                    reader,
                    f"{field_path}.{hpa_key}",
                )
        elif key == "env":
            _read_pilot_env(value, config, reader, field_path)
        else:
            raise reader.error(field_path, "not supported; set the matching istiod chart value under values.pilot")


def _read_pilot_env(raw: Any, config: dict[str, Any], reader: _Reader, path: str) -> None:
    if not isinstance(raw, list):
        raise reader.error(path, f"{show(raw)} is not allowed; expected a list of name/value pairs")
    for index, entry in enumerate(raw):
        variable = reader.mapping(entry, f"{path}[{index}]")
        if set(variable) != {"name", "value"}:
            raise reader.error(f"{path}[{index}]", "not supported; only literal name/value pairs map (no valueFrom)")
        _put(config, f"pilot.env.{variable['name']}", variable["value"], reader, f"{path}[{index}]")


def _read_values(values: Mapping[str, Any], config: dict[str, Any], reader: _Reader) -> None:
    for key, raw in values.items():
        path = f"spec.values.{key}"
        section = reader.mapping(raw, path)
        if key == "cni":
            _read_cni_values(section, config, reader)
        elif key == "global":
            namespace = section.get("istioNamespace")
            if namespace not in (None, ISTIO_NAMESPACE):
                raise reader.error(
                    f"{path}.istioNamespace",
                    f"{show(namespace)} is not supported; Istio is installed in {ISTIO_NAMESPACE}",
                )
            if "tag" in section:
                _read_tag(section["tag"], config, reader, f"{path}.tag")
            _merge_into(config, "global", {k: v for k, v in section.items() if k != "tag"}, reader, path)
        elif key == "pilot":
            _read_pilot_values(section, config, reader)
        elif key in _ISTIOD_TOP_LEVEL_SECTIONS:
            _merge_into(config, f"pilot.{key}", section, reader, path)
        elif key == "meshConfig":
            _merge_into(config, "meshConfig", section, reader, path)
        elif key in ADDONS:
            raise reader.error(
                path, "addon chart values are not configurable; only addonComponents.<addon>.enabled maps"
            )
        else:
            raise reader.error(
                path,
                "not supported; the values that map are cni, global, pilot, "
                f"{', '.join(_ISTIOD_TOP_LEVEL_SECTIONS)} and meshConfig",
            )


def _put_boolean(config: dict[str, Any], key: str, raw: Any, reader: _Reader, path: str) -> None:
    _put(config, key, reader.boolean(raw, path), reader, path)


def _read_cni_values(cni: Mapping[str, Any], config: dict[str, Any], reader: _Reader) -> None:
    path = "spec.values.cni"
    reader.only(
        cni,
        path,
        ("enabled", "excludeNamespaces", "chained", "repair"),
        "not supported; the cni values that map are excludeNamespaces, chained and repair.enabled",
    )
    if cni.get("enabled") is not None:
        # The pre-1.6 switch, kept as an alias of components.cni.enabled.
        _put_boolean(config, "cni.enabled", cni["enabled"], reader, f"{path}.enabled")
    if cni.get("excludeNamespaces") is not None:
        exclude = cni["excludeNamespaces"]
        if not isinstance(exclude, list) or not all(isinstance(name, str) for name in exclude):
            raise reader.error(f"{path}.excludeNamespaces", f"{show(exclude)} is not allowed; expected a list of names")
        _put(config, "cni.excludeNamespaces", list(exclude), reader, f"{path}.excludeNamespaces")
    if cni.get("chained") is not None:
        _put_boolean(config, "cni.chained", cni["chained"], reader, f"{path}.chained")
    if cni.get("repair") is not None:
        repair = reader.mapping(cni["repair"], f"{path}.repair")
        reader.only(repair, f"{path}.repair", ("enabled",), "not supported; only repair.enabled maps")
        if repair.get("enabled") is not None:
            _put_boolean(config, "cni.repair", repair["enabled"], reader, f"{path}.repair.enabled")


def _read_pilot_values(pilot: Mapping[str, Any], config: dict[str, Any], reader: _Reader) -> None:
    path = "spec.values.pilot"
    for key, value in pilot.items():
        if key == "enabled":
            if not reader.boolean(value, f"{path}.enabled"):
                raise reader.error(f"{path}.enabled", "false is not supported; this program always installs istiod")
        elif key == "cni" and isinstance(value, Mapping):
            # pilot.cni.enabled follows cni.enabled (checked below); other pilot.cni keys pass through.
            for cni_key, cni_value in value.items():
                dotted = "pilot_cni_enabled" if cni_key == "enabled" else f"pilot.cni.{cni_key}"
                _put(config, dotted, cni_value, reader, f"{path}.cni.{cni_key}")
        elif isinstance(value, Mapping) and value:
            _merge_into(config, f"pilot.{key}", value, reader, f"{path}.{key}")
        else:
            _put(config, f"pilot.{key}", value, reader, f"{path}.{key}")


def _check_pilot_cni(config: dict[str, Any], reader: _Reader) -> None:
    if "pilot_cni_enabled" not in config:
        return
    pilot_cni = config.pop("pilot_cni_enabled")
    cni_enabled = config.get("cni", {}).get("enabled")
    if cni_enabled is None:
        # istiod injecting for a CNI plugin that isn't there leaves pods without redirection; here
        # the plugin and istiod's setting always go together.
        _put_boolean(config, "cni.enabled", pilot_cni, reader, "spec.values.pilot.cni.enabled")
    elif pilot_cni != cni_enabled:
        raise reader.error(
            "spec.values.pilot.cni.enabled",
            f"{show(pilot_cni)} contradicts the CNI setting ({show(cni_enabled)}, spec.components.cni.enabled); "
            "istiod must inject for the CNI exactly when the CNI plugin is installed",
        )


def _read_addon_components(addons: Mapping[str, Any], config: dict[str, Any], reader: _Reader) -> None:
    for name, raw in addons.items():
        path = f"spec.addonComponents.{name}"
        addon = reader.mapping(raw, path)
        if name not in ADDONS:
            if addon.get("enabled"):
                raise reader.error(path, f"not supported; the addons are {', '.join(ADDONS)}")
            continue
        reader.only(
            addon,
            path,
            ("enabled",),
            "not supported; only enabled maps (the addon charts use their defaults)",
        )
        if addon.get("enabled") is not None:
            _put_boolean(config, f"addons.{name}", addon["enabled"], reader, f"{path}.enabled")


# --- Merging with the stack's own settings -------------------------------------------------------


def _file_field(dotted: str) -> str:
    """Where a raw setting comes from in an IstioOperator file (for conflict messages)."""
    head, _, rest = dotted.partition(".")
    fields = {
        "cni.enabled": "spec.components.cni.enabled",
        "cni.repair": "spec.values.cni.repair.enabled",
        "gateway": "spec.components.ingressGateways[0]",
        "addons": "spec.addonComponents",
        "pilot": "spec.values.pilot",
        "global": "spec.values.global",
        "meshConfig": "spec.meshConfig",
        "cni": "spec.values.cni",
        "version": "spec.tag or spec.values.global.tag",
        "gateway.namespace": "spec.components.ingressGateways[0].namespace; istio-system when left out",
    }
    if dotted in fields:
        return fields[dotted]
    if head == "addons":
        return f"spec.addonComponents.{rest}.enabled"
    return f"{fields.get(head, 'spec.' + head)}.{rest}" if rest else fields.get(head, f"spec.{head}")


def merge_operator_config(stack_istio: Mapping[str, Any], from_file: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Stack config and the operator file's settings, merged; a setting given in both must agree."""
    return _merge(stack_istio, from_file, source, "")


def _merge(stack: Mapping[str, Any], from_file: Mapping[str, Any], source: str, prefix: str) -> dict[str, Any]:
    merged: dict[str, Any] = copy.deepcopy(dict(stack))
    for key, file_value in from_file.items():
        dotted = f"{prefix}{key}"
        if key not in stack or stack[key] is None:
            merged[key] = copy.deepcopy(file_value)
            continue
        stack_value = stack[key]
        if isinstance(stack_value, Mapping) and isinstance(file_value, Mapping):
            merged[key] = _merge(stack_value, file_value, source, f"{dotted}.")
        elif dotted in _UNORDERED_LISTS and _same_members(stack_value, file_value):
            continue  # the stack config's order is kept
        elif stack_value != file_value:
            raise ConfigError(
                f"{CONFIG_KEY}.{show_key(dotted, 200)}: the stack config sets {show(stack_value)} but the operator "
                f"file {show(source)} sets {show(file_value)} ({show_key(_file_field(dotted), 200)}); "
                "set it in one place or make them agree"
            )
    return merged


def _same_members(stack_value: Any, file_value: Any) -> bool:
    names = [stack_value, file_value]
    if not all(isinstance(value, list) and all(isinstance(name, str) for name in value) for value in names):
        return False
    return set(stack_value) == set(file_value)


# --- Writing: the IstioOperator file equivalent to a stack's Istio settings ----------------------


def operator_manifest(settings: IstioSettings, mesh: MeshSettings) -> str:
    """The IstioOperator YAML equivalent to these settings, for `istioctl install -f`.

    Reading it back with `istio_config_from_operator` gives the same settings (the Istio version
    aside: istioctl installs its own version).
    """
    cni = settings.cni
    values_cni = cni.plugin_values()
    pilot = copy.deepcopy(dict(settings.pilot))
    pilot.setdefault("cni", {})
    pilot["cni"] = {**pilot["cni"], "enabled": cni.enabled}
    values: dict[str, Any] = {"cni": values_cni, "pilot": pilot}
    if settings.global_values:
        values["global"] = copy.deepcopy(dict(settings.global_values))
    gateway = settings.gateway
    ingress_gateway: dict[str, Any] = {"name": gateway.name, "namespace": gateway.namespace, "enabled": gateway.enabled}
    if gateway.service_annotations:
        ingress_gateway["k8s"] = {"serviceAnnotations": dict(gateway.service_annotations)}
    spec: dict[str, Any] = {
        "profile": "ambient" if settings.ambient.enabled else "default",
        "components": {
            "cni": {"enabled": cni.enabled, "namespace": ISTIO_NAMESPACE},
            "ingressGateways": [ingress_gateway],
        },
        "values": values,
    }
    if settings.mesh_config:
        spec["meshConfig"] = copy.deepcopy(dict(settings.mesh_config))
    enabled_addons = [name for name in ADDONS if getattr(settings.addons, name)]
    document = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": "installed-state",
            "namespace": ISTIO_NAMESPACE,
            "annotations": {ADDONS_ANNOTATION: ",".join(enabled_addons)},
        },
        "spec": spec,
    }
    header = [
        "# IstioOperator equivalent of this stack's Istio settings, for:",
        f"#   istioctl install -f <this file>   (istioctl {settings.version})",
        "# The addons are Helm releases here, not istioctl components (istioctl no longer installs them);",
        f"# enabled: {', '.join(enabled_addons) or 'none'} (recorded in the {ADDONS_ANNOTATION} annotation).",
    ]
    baseline = ", pod-security.kubernetes.io/enforce=baseline" if cni.enabled else ""
    if mesh.sidecar_namespaces:
        label = f"istio-injection=enabled{baseline}"
        header.append(f"# Application namespaces, labelled {label}: {', '.join(mesh.sidecar_namespaces)}.")
    if mesh.ambient:
        ambient = ", ".join(namespace for namespace in mesh.namespaces if namespace in mesh.ambient)
        header.append(f"# Ambient namespaces, labelled istio.io/dataplane-mode=ambient{baseline}: {ambient}.")
    return "\n".join(header) + "\n" + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
