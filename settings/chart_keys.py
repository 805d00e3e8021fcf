"""The keys of Istio's charts: which values each chart reads, checked before Helm silently ignores one.

`istio_chart_defaults.json` (beside this module) holds the `pilot` and `global` default trees of the Istio
charts the tests hold; a test regenerates it from those charts (`istio_chart_key_data`). The settings
model checks configured `pilot.*`/`global.*` extras against it (`unknown_extra_keys`); the tests check
every value the program sets against the charts' own defaults (`unknown_chart_keys`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from settings.merging import deep_merge
from settings.rules import config_key, show

# `global.*` is shared by name across the Istio charts, but each chart reads only part of it. istiod
# gets every configured global key; the other charts get the keys they read (from their 1.30
# defaults), so a value such as `global.hub` reaches the CNI DaemonSet's image as well.
GLOBAL_KEYS_READ_BY_CHART: Mapping[str, frozenset[str]] = {
    "base": frozenset({"imagePullSecrets", "istioNamespace", "resourceScope", "enableReaderRBAC"}),
    "cni": frozenset(
        {
            "hub",
            "tag",
            "variant",
            "imagePullPolicy",
            "imagePullSecrets",
            "logging",
            "logAsJson",
            "networkPolicy",
            "defaultResources",
            "nativeNftables",
            "resourceScope",
        }
    ),
    "gateway": frozenset({"networkPolicy"}),
}


# --- Checking keys against a chart's defaults ---------------------------------------------------

INTERNAL_DEFAULTS_KEY = "_internal_defaults_do_not_set"


@dataclass(frozen=True)
class ChartKeyRules:
    """How a chart reads its values beyond a plain lookup in its defaults."""

    descoped: Collection[str] = ()
    """Prefixes the chart copies to the top level (`pilot.X` is read as `X` by istiod)."""
    free_form: Collection[str] = ()
    """Top-level keys whose content the chart passes through unchecked (istiod's `meshConfig`, label
    maps whose defaults hold an example entry)."""


CHART_KEY_RULES: Mapping[str, ChartKeyRules] = {
    "base": ChartKeyRules(),
    "cni": ChartKeyRules(descoped=("cni",)),
    "istiod": ChartKeyRules(descoped=("pilot",), free_form=("meshConfig",)),
    "gateway": ChartKeyRules(free_form=("labels", "annotations", "podAnnotations")),
}


def chart_defaults(values_document: Mapping[str, Any]) -> dict[str, Any]:
    """A chart's default values as users address them: the internal wrapper lifted to the top level."""
    lifted = {key: value for key, value in values_document.items() if key != INTERNAL_DEFAULTS_KEY}
    wrapped = values_document.get(INTERNAL_DEFAULTS_KEY)
    if isinstance(wrapped, Mapping):
        lifted = deep_merge(lifted, wrapped)
    return lifted


def unknown_chart_keys(values: Mapping[str, Any], defaults: Mapping[str, Any], rules: ChartKeyRules) -> list[str]:
    """Key paths in `values` that the chart's defaults do not have (empty: every key is known).

    A default that is an empty map or null accepts anything below it (labels, env, annotations).
    """
    unknown: list[_UnknownKey] = []
    for key, value in values.items():
        if key in rules.free_form:
            continue
        if key in rules.descoped and isinstance(value, Mapping):
            unknown += [_UnknownKey(f"{key}.{u.path}", u.map_over_scalar) for u in _unknown_below(value, defaults, "")]
            continue
        unknown += _unknown_below({key: value}, defaults, "")
    return [f"{u.path} (the chart's default is not a map)" if u.map_over_scalar else u.path for u in unknown]


@dataclass(frozen=True)
class _UnknownKey:
    path: str
    map_over_scalar: bool = False
    """The key exists, but the value is a map where the chart's default is not."""
    wrong_type: str = ""
    """The key exists, but the value's type is not the default's (`a whole number`, `true or false`, ...)."""
    value: Any = None
    """The refused value, for the message."""


def _unknown_below(values: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str) -> list[_UnknownKey]:
    unknown: list[_UnknownKey] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in defaults:
            unknown.append(_UnknownKey(path))
            continue
        default = defaults[key]
        if default is None or (isinstance(default, Mapping) and not default):
            continue
        if isinstance(value, Mapping):
            if isinstance(default, Mapping):
                unknown += _unknown_below(value, default, f"{path}.")
            else:
                unknown.append(_UnknownKey(path, map_over_scalar=True))
        elif (expected := _type_mismatch(str(key), value, default)) is not None:
            unknown.append(_UnknownKey(path, wrong_type=expected, value=value))
    return unknown


INT_OR_STRING = re.compile(r"rollingMax(Surge|Unavailable)|minAvailable|maxUnavailable|.*Ports|.*IPRanges")
"""Keys the charts pass on where Kubernetes or istio-proxy take a number or a string (`maxSurge: 1` or `"25%"`)."""


def _type_mismatch(key: str, value: Any, default: Any) -> str | None:
    """What the value should be, when its type is not the chart default's (`replicaCount: "two"`, `hub: 5`).

    None is Helm's way to unset a key, so it always passes.
    """
    if value is None:
        return None
    if INT_OR_STRING.fullmatch(key) and isinstance(value, str | int) and not isinstance(value, bool):
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int | float):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        whole = isinstance(value, int) and not isinstance(value, bool)
        return None if (whole if isinstance(default, int) else number) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, list):
        return None if isinstance(value, list) else "a list"
    if isinstance(default, Mapping) and default:
        return "a map"
    return None


# --- Checking the configured extras at run time -------------------------------------------------

ISTIO_CHART_KEYS_FILE = Path(__file__).with_name("istio_chart_defaults.json")
"""The `pilot` and `global` default trees of the Istio charts the tests hold (1.30), generated by
`istio_chart_key_data` and checked against those charts by a test. Every `istio.version` is checked
against these keys: a key that only a newer chart has is reported too."""

FREE_FORM_KEYS = frozenset({"resources", "defaultResources", "meshConfig"})
"""Keys whose content follows another schema (Kubernetes resource requirements, istiod's MeshConfig):
any key below them is accepted, whatever the chart's example default holds."""

DOCUMENTED_ONLY_KEYS = (
    "global.podDNSSearchNamespaces",
    "pilot.pdb.maxUnavailable",
    "pilot.base.validationFailurePolicy",
)
"""Keys istiod reads that its values.yaml only shows commented out."""

_TEMPLATE_REFERENCE = re.compile(r"\.Values\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)")


def istio_chart_key_data(
    documents: Mapping[str, Mapping[str, Any]], injection_template: str, chart_version: str
) -> dict[str, Any]:
    """The content of `ISTIO_CHART_KEYS_FILE`, from the charts' values.yaml documents (by chart name).

    `pilot` is istiod's own defaults (what `pilot.X` is read as); `global` is istiod's `global` plus
    the global keys the other charts get (`GLOBAL_KEYS_READ_BY_CHART`). Keys the sidecar injection
    template reads without a default (`global.proxy.holdApplicationUntilProxyStarts`) and the
    documented-only keys are added as free-form; so are `FREE_FORM_KEYS`.
    """
    istiod = chart_defaults(documents["istiod"])
    pilot = {key: value for key, value in istiod.items() if key != "global"}
    global_tree: dict[str, Any] = {}
    for chart, keys in GLOBAL_KEYS_READ_BY_CHART.items():
        chart_global = chart_defaults(documents[chart]).get("global", {})
        global_tree = deep_merge(global_tree, {key: value for key, value in chart_global.items() if key in keys})
    trees = {"pilot": pilot, "global": deep_merge(global_tree, istiod.get("global", {}))}
    references = sorted(set(_TEMPLATE_REFERENCE.findall(injection_template)))
    for dotted in [*references, *DOCUMENTED_ONLY_KEYS]:
        section, _, path = dotted.partition(".")
        if section not in trees:
            # istiod's own top level, which is what `pilot.X` is read as.
            section, path = "pilot", dotted
        if path:
            _add_free_form(trees[section], path.split("."))
    return {"chartVersion": chart_version, **{name: _open_free_form(tree) for name, tree in trees.items()}}


def _add_free_form(tree: dict[str, Any], path: list[str]) -> None:
    """Make `path` a known key: the first missing part becomes free-form (null)."""
    node = tree
    for part in path:
        if not isinstance(node, dict) or not node:
            return  # already free-form, or a leaf the template reads into
        if part not in node:
            node[part] = None
            return
        node = node[part]


def _open_free_form(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: {} if key in FREE_FORM_KEYS else _open_free_form(value) if isinstance(value, Mapping) else value
        for key, value in tree.items()
    }


@cache
def istio_chart_keys() -> Mapping[str, Any]:
    """The vendored key data (`ISTIO_CHART_KEYS_FILE`), read once."""
    data: Mapping[str, Any] = json.loads(ISTIO_CHART_KEYS_FILE.read_text())
    return data


def unknown_extra_keys(pilot: Mapping[str, Any], global_values: Mapping[str, Any]) -> list[str]:
    """One message per configured `pilot.*` / `global.*` key the Istio charts do not have.

    Each starts with the config key path (`aks-istio:istio.pilot.nonsense: not a key of ...`).
    Helm would silently ignore such a key. The keys are those of the Istio 1.30 charts, whatever
    `istio.version` is; maps whose default is empty (`pilot.env`, `pilot.nodeSelector`) and
    `FREE_FORM_KEYS` accept any key below them.
    """
    data = istio_chart_keys()
    version = data["chartVersion"]
    sections = (
        ("pilot", pilot, f"the Istio {version} chart (istiod)"),
        ("global", global_values, f"the Istio {version} chart (global values of istiod, base, cni, gateway)"),
    )
    problems: list[str] = []
    for section, values, chart in sections:
        for unknown in _unknown_below(values, data[section], ""):
            name = config_key(f"istio.{section}.{unknown.path}")
            if unknown.map_over_scalar:
                problems.append(f"{name}: a map is not allowed; in {chart} it is a single value")
            elif unknown.wrong_type:
                problems.append(
                    f"{name}: {show(unknown.value)} is not allowed; expected {unknown.wrong_type}, as in {chart}"
                )
            else:
                problems.append(f"{name}: not a key of {chart}; Helm would silently ignore it")
    return problems
