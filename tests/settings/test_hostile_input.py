"""Hostile settings: every refusal is one line, names the setting, shows the value bounded and escaped, and comes
before any resource is registered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from offline.engine import ROOT, RecordedResource, run_program, stack_config
from settings.model import MAX_LIST_ITEMS
from settings.parse import parse_settings
from settings.rules import ConfigError
from settings.stack import stack_settings

FORGED = "x\n::error::forged"
LONG = "k" * 5000


def refusal(objects: dict[str, Any], root: Path = ROOT) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings("dev", objects, "westeurope", root)
    return str(caught.value)


def assert_one_bounded_line(message: str, names: str) -> None:
    assert message.startswith("aks-istio:"), message
    assert names in message, message
    assert message.isprintable(), repr(message)  # no newline, no control character
    assert len(message) <= 1000, len(message)


# --- Item 7: values and keys are shown bounded and escaped ---------------------------------------

QUOTED: list[tuple[str, dict[str, Any], str]] = [
    ("istio.version", {"istio": {"version": FORGED}}, "aks-istio:istio.version"),
    ("istio.version long", {"istio": {"version": LONG}}, "aks-istio:istio.version"),
    ("canary.version", {"istio": {"canary": {"version": FORGED}}}, "aks-istio:istio.canary.version"),
    ("canary.version long", {"istio": {"canary": {"version": LONG}}}, "aks-istio:istio.canary.version"),
    ("allowDowngradeFrom", {"istio": {"allowDowngradeFrom": FORGED}}, "aks-istio:istio.allowDowngradeFrom"),
    ("allowDowngradeFrom long", {"istio": {"allowDowngradeFrom": LONG}}, "aks-istio:istio.allowDowngradeFrom"),
    ("unknown restart key", {"restart": {FORGED: 1}}, "aks-istio:restart"),
    ("unknown long key", {"restart": {LONG: 1}}, "aks-istio:restart"),
    ("unknown object", {FORGED: {}}, "aks-istio:"),
    ("unknown pilot key", {"istio": {"pilot": {FORGED: 1}}}, "aks-istio:istio.pilot"),
    ("unknown global key", {"istio": {"global": {LONG: 1}}}, "aks-istio:istio.global"),
    ("unknown meshConfig key", {"istio": {"meshConfig": {FORGED: 1}}}, "aks-istio:istio.meshConfig"),
    ("tags key", {"cluster": {"tags": {FORGED: 5}}}, "aks-istio:cluster.tags"),
    ("tags long key", {"cluster": {"tags": {LONG: "v"}}}, "aks-istio:cluster.tags"),
    ("tags long key, bad value", {"cluster": {"tags": {"k" * 300: "v\n"}}}, "aks-istio:cluster.tags"),
    ("serviceAnnotations key", {"istio": {"gateway": {"serviceAnnotations": {FORGED: 5}}}}, "serviceAnnotations"),
    ("operatorFile path", {"istio": {"operatorFile": FORGED}}, "aks-istio:istio.operatorFile"),
    ("pilot.cni.enabled", {"istio": {"pilot": {"cni": {"enabled": LONG}}}}, "aks-istio:istio.pilot.cni.enabled"),
    ("excludeNamespaces", {"istio": {"cni": {"excludeNamespaces": [f"n{i}" for i in range(900)]}}}, "exclude"),
]


@pytest.mark.parametrize(("case", "objects", "names"), QUOTED, ids=[c[0] for c in QUOTED])
def test_a_quoted_value_or_key_is_bounded_and_escaped(case: str, objects: dict[str, Any], names: str) -> None:
    assert_one_bounded_line(refusal(objects), names)


def operator_file(root: Path, name: str, text: str) -> dict[str, Any]:
    (root / name).write_text(text)
    return {"istio": {"operatorFile": name}}


OPERATOR_FILES = [
    ("not an IstioOperator", "apiVersion: v1\nkind: ConfigMap\n"),
    ("not a mapping", "- a\n"),
    (
        "a field it cannot honour",
        'apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec: {"x\\n::error::y": 1}\n',
    ),
    (
        "a long field it cannot honour",
        f"apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec: {{{LONG}: 1}}\n",
    ),
    (
        "a long value",
        f"apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec: {{profile: {LONG}}}\n",
    ),
    (
        "a conflicting value",
        f"apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec: {{hub: {LONG}}}\n",
    ),
]


@pytest.mark.parametrize(("case", "text"), OPERATOR_FILES, ids=[c[0] for c in OPERATOR_FILES])
def test_an_operator_file_s_path_and_fields_are_shown_bounded_and_escaped(case: str, text: str, tmp_path: Path) -> None:
    objects = operator_file(tmp_path, "op\n::error::forged.yaml", text)
    if case == "a conflicting value":
        objects["istio"]["global"] = {"hub": "example.azurecr.io/istio"}
    assert_one_bounded_line(refusal(objects, tmp_path), "aks-istio:istio")


def test_a_forged_unknown_key_prints_one_line_from_the_program() -> None:
    config = {**stack_config("dev"), "aks-istio:restart": {FORGED: 1}}
    with pytest.raises(pulumi.RunError) as caught:
        run_program("dev", config)
    assert str(caught.value).isprintable() and "aks-istio:restart" in str(caught.value)


# --- Item 8: one line, nothing registered first --------------------------------------------------

NULLS = [
    {"pilot": {"cni": None}},
    {"pilot": {"cni": "on"}},
    {"global": {"proxy": None}},
    {"meshConfig": {"defaultConfig": None}},
    {"meshConfig": {"defaultConfig": {"image": None}}},
    {"meshConfig": {"extensionProviders": None}},
    {"gateway": {"serviceAnnotations": None}},
]


@pytest.mark.parametrize("istio", NULLS, ids=[str(n) for n in NULLS])
def test_a_null_or_odd_value_is_planned_or_refused_in_one_line_before_any_resource(istio: dict[str, Any]) -> None:
    config = stack_config("dev")
    config["aks-istio:istio"] = {**config["aks-istio:istio"], **istio}
    recorded: list[RecordedResource] = []
    try:
        run_program("dev", config, recorded=recorded)
    except pulumi.RunError as exc:
        assert str(exc).startswith("aks-istio:istio.") and str(exc).isprintable(), exc
        assert recorded == [], [r.name for r in recorded]


@pytest.mark.parametrize(
    ("value", "tag"),
    [("!!timestamp 2026-12-02", "timestamp"), ("!!set {a, b}", "set"), ("!!binary aGk=", "binary"),
     ("!!omap [a: 1]", "omap"), ("!!pairs [a: 1]", "pairs")],
)  # fmt: skip
def test_a_stack_file_value_of_a_type_json_has_not_is_one_error_line(value: str, tag: str, tmp_path: Path) -> None:
    (tmp_path / "Pulumi.odd.yaml").write_text(
        f"config:\n  azure-native:location: westeurope\n  aks-istio:istio:\n    meshConfig:\n      when: {value}\n"
    )
    with pytest.raises(ConfigError) as caught:
        run_program("odd", stack_config("odd", tmp_path))  # the offline plan: JSON has no such type
    message = str(caught.value)
    assert message.startswith("Pulumi.odd.yaml:5:") and tag in message and message.isprintable(), message
    with pytest.raises(ConfigError):
        stack_settings("odd", tmp_path)


# --- Item 9: checked at plan time ----------------------------------------------------------------

PLAN_TIME = [
    (
        "empty annotation key",
        {"gateway": {"serviceAnnotations": {"": "x"}}},
        "aks-istio:istio.gateway.serviceAnnotations",
    ),
    ("control character", {"gateway": {"serviceAnnotations": {"a\tb": "x"}}}, "serviceAnnotations"),
    ("not a key", {"gateway": {"serviceAnnotations": {"a b": "x"}}}, "serviceAnnotations"),
    ("two slashes", {"gateway": {"serviceAnnotations": {"a/b/c": "x"}}}, "serviceAnnotations"),
    ("bad prefix", {"gateway": {"serviceAnnotations": {"-x.com/y": "x"}}}, "serviceAnnotations"),
    ("long name", {"gateway": {"serviceAnnotations": {"x.com/" + "n" * 64: "x"}}}, "serviceAnnotations"),
    ("hub with a tag", {"global": {"hub": "docker.io/istio:1.30.3"}}, "aks-istio:istio.global.hub"),
    ("hub with a space", {"global": {"hub": "docker.io/ istio"}}, "aks-istio:istio.global.hub"),
    ("hub with a scheme", {"global": {"hub": "https://docker.io/istio"}}, "aks-istio:istio.global.hub"),
    ("hub empty", {"global": {"hub": ""}}, "aks-istio:istio.global.hub"),
    ("hub uppercase path", {"global": {"hub": "docker.io/Istio"}}, "aks-istio:istio.global.hub"),
    ("defaultConfig a string", {"meshConfig": {"defaultConfig": "x"}}, "aks-istio:istio.meshConfig.defaultConfig"),
    ("defaultConfig a list", {"meshConfig": {"defaultConfig": [1]}}, "aks-istio:istio.meshConfig.defaultConfig"),
    (
        "proxyMetadata a list",
        {"meshConfig": {"defaultConfig": {"proxyMetadata": ["A=1"]}}},
        "aks-istio:istio.meshConfig.defaultConfig.proxyMetadata",
    ),
    (
        "proxyMetadata a number",
        {"meshConfig": {"defaultConfig": {"proxyMetadata": {"A": 1}}}},
        "aks-istio:istio.meshConfig.defaultConfig.proxyMetadata",
    ),
    (
        "image a string",
        {"meshConfig": {"defaultConfig": {"image": "distroless"}}},
        "aks-istio:istio.meshConfig.defaultConfig.image",
    ),
]


@pytest.mark.parametrize(("case", "istio", "names"), PLAN_TIME, ids=[c[0] for c in PLAN_TIME])
def test_a_value_helm_or_istiod_would_refuse_at_up_is_refused_at_plan_time(
    case: str, istio: dict[str, Any], names: str
) -> None:
    assert_one_bounded_line(refusal({"istio": istio}), names)


@pytest.mark.parametrize(
    "istio",
    [
        {"gateway": {"serviceAnnotations": {"service.beta.kubernetes.io/azure-pip-name": "pip", "team": "a"}}},
        {"global": {"hub": "docker.io/istio"}},
        {"global": {"hub": "example.azurecr.io/mirror/istio"}},
        {"global": {"hub": "localhost:5000/istio"}},
        {"global": {"hub": "gcr.io/istio-release"}},
        {"global": {"hub": None}},
        {"meshConfig": {"defaultConfig": {"proxyMetadata": {"A": "1"}, "image": {"imageType": "distroless"}}}},
        {"meshConfig": {"defaultConfig": None}},
    ],
)
def test_good_values_of_those_settings_pass(istio: dict[str, Any]) -> None:
    parse_settings("dev", {"istio": istio}, "westeurope", ROOT)


# --- Item 10: bounded lists ----------------------------------------------------------------------


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{index}" for index in range(count)]


def group_ids(count: int) -> list[str]:
    return [f"00000000-0000-0000-0000-{index:012d}" for index in range(count)]


SYSTEM = ["istio-system", "kube-system", "kube-node-lease", "kube-public"]
LISTS: list[tuple[str, Callable[[int], dict[str, Any]]]] = [
    ("mesh.namespaces", lambda n: {"mesh": {"namespaces": names("team", n)}}),
    ("istio.cni.excludeNamespaces", lambda n: {"istio": {"cni": {"excludeNamespaces": SYSTEM + names("x", n - 4)}}}),
    ("istio.canary.namespaces", lambda n: {"istio": {"canary": {"version": "1.31.0", "namespaces": names("c", n)}}}),
    ("cluster.entraId.adminGroupObjectIds", lambda n: {"cluster": {"entraId": {"adminGroupObjectIds": group_ids(n)}}}),
    ("cluster.tags", lambda n: {"cluster": {"tags": dict.fromkeys(names("t", n), "v")}}),
    (
        "istio.gateway.serviceAnnotations",
        lambda n: {"istio": {"gateway": {"serviceAnnotations": dict.fromkeys(names("a", n), "v")}}},
    ),
]


@pytest.mark.parametrize(("setting", "build"), LISTS, ids=[c[0] for c in LISTS])
def test_a_list_above_its_cap_is_one_line_naming_the_setting_the_count_and_the_maximum(
    setting: str, build: Callable[[int], dict[str, Any]]
) -> None:
    maximum = MAX_LIST_ITEMS[setting]
    message = refusal(build(maximum + 1))
    assert_one_bounded_line(message, f"aks-istio:{setting}: {maximum + 1} ")
    assert f"at most {maximum}" in message, message


def test_the_caps_are_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for setting, maximum in MAX_LIST_ITEMS.items():
        assert f"`{setting}`" in text and f"at most {maximum:,}" in text, setting


def test_a_large_stack_within_the_caps_parses() -> None:
    objects = {"mesh": {"namespaces": [f"team-{i}" for i in range(2000)]}}
    assert len(parse_settings("dev", objects, "westeurope", ROOT).mesh.namespaces) == 2000
