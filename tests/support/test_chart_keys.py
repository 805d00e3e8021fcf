"""The chart-key tooling: unknown keys found at any depth, and the vendored key data equal to the reference charts'."""

from __future__ import annotations

import json

from settings.istio_keys import ISTIO_CHART_KEYS_FILE
from tests.support.chart_keys import (
    CHART_KEY_RULES,
    chart_defaults,
    defaults,
    regenerated_chart_keys,
    unknown_chart_keys,
)


def test_a_misspelled_key_is_caught_at_any_depth() -> None:
    rules = CHART_KEY_RULES["istiod"]
    assert unknown_chart_keys({"pilot": {"cni": {"enabeld": True}}}, defaults("istiod"), rules) == ["pilot.cni.enabeld"]
    assert unknown_chart_keys({"global": {"proxy": {"loglevel": "info"}}}, defaults("istiod"), rules) == [
        "global.proxy.loglevel"
    ]
    assert unknown_chart_keys({"excludeNamespace": ["x"]}, defaults("cni"), CHART_KEY_RULES["cni"]) == [
        "excludeNamespace"
    ]
    # The pre-1.24 nesting reads as a descoped prefix: `cni.excludeNamespaces` is `excludeNamespaces`.
    assert unknown_chart_keys({"cni": {"exclude": []}}, defaults("cni"), CHART_KEY_RULES["cni"]) == ["cni.exclude"]
    assert unknown_chart_keys({"repair": {"enabled": {"x": 1}}}, defaults("cni"), CHART_KEY_RULES["cni"]) == [
        "repair.enabled (the chart's default is not a map)"
    ]


def test_free_form_and_empty_defaults_accept_any_key() -> None:
    values = {
        "meshConfig": {"anything": {"at": "all"}},
        "pilot": {"env": {"ANY_VARIABLE": "1"}, "nodeSelector": {"agentpool": "system"}},
    }
    assert unknown_chart_keys(values, defaults("istiod"), CHART_KEY_RULES["istiod"]) == []


def test_the_wrapper_is_lifted_and_top_level_keys_kept() -> None:
    document = {"_internal_defaults_do_not_set": {"a": {"b": 1}}, "c": 2}
    assert chart_defaults(document) == {"a": {"b": 1}, "c": 2}


def test_the_vendored_chart_keys_are_those_of_the_reference_charts() -> None:
    vendored = json.loads(ISTIO_CHART_KEYS_FILE.read_text())
    assert vendored == regenerated_chart_keys(), (
        "regenerate: .venv/bin/python -c 'from tests.support.chart_keys import write_istio_chart_keys as w; w()'"
    )
    assert vendored["chartVersion"] == "1.30.3"
