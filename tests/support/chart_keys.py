"""The keys of Istio's charts, for the tests: which values each chart reads, read from the reference charts.

The tests check every value the program sets against the charts' own defaults (`unknown_chart_keys`), and
regenerate the vendored key data the settings check configured extras against
(`settings/istio_chart_defaults.json`, `settings.istio_keys`) from the same charts (`istio_chart_key_data`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from components.istio_values import GLOBAL_KEYS_READ_BY_CHART, deep_merge
from settings.istio_keys import ISTIO_CHART_KEYS_FILE, UnknownKey, unknown_below
from tests.support.reference import CHARTS, INJECTION_TEMPLATE

CHART_DIRS = {"base": "base", "cni": "istio-cni", "istiod": "istiod", "gateway": "gateway"}
"""The reference charts' directories, by chart name."""

# --- Checking keys against a chart's defaults ----------------------------------------------------

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


@cache
def defaults(chart: str) -> dict[str, Any]:
    """The default values of a reference chart, by chart name."""
    document = yaml.safe_load((CHARTS / CHART_DIRS[chart] / "values.yaml").read_text())
    return chart_defaults(document)


def unknown_chart_keys(values: Mapping[str, Any], defaults: Mapping[str, Any], rules: ChartKeyRules) -> list[str]:
    """Key paths in `values` that the chart's defaults do not have (empty: every key is known).

    A default that is an empty map or null accepts anything below it (labels, env, annotations).
    """
    unknown: list[UnknownKey] = []
    for key, value in values.items():
        if key in rules.free_form:
            continue
        if key in rules.descoped and isinstance(value, Mapping):
            unknown += [UnknownKey(f"{key}.{u.path}", u.map_over_scalar) for u in unknown_below(value, defaults)]
            continue
        unknown += unknown_below({key: value}, defaults)
    return [f"{u.path} (the chart's default is not a map)" if u.map_over_scalar else u.path for u in unknown]


# --- The vendored key data the settings check extras against -------------------------------------

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


def regenerated_chart_keys() -> dict[str, Any]:
    """The vendored key data as the reference charts give it."""
    documents = {
        chart: yaml.safe_load((CHARTS / path / "values.yaml").read_text()) for chart, path in CHART_DIRS.items()
    }
    injection_template = INJECTION_TEMPLATE.read_text()
    # The charts' own Chart.yaml says 1.0.0 (stamped at release); the reference directory names the release.
    return istio_chart_key_data(documents, injection_template, CHARTS.parent.name.removeprefix("istio-"))


def write_istio_chart_keys() -> None:
    """Regenerate the vendored file after updating the reference charts."""
    ISTIO_CHART_KEYS_FILE.write_text(json.dumps(regenerated_chart_keys(), indent=1, sort_keys=True) + "\n")
