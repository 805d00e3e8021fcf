"""Values under a config key set with `--secret` stay secret: in the Helm releases' values, in the outputs, in the plan.

Pulumi tells the program which top-level keys are secret (`aks-istio:istio`), not which value below them was set
with `--secret`, so everything a secret key contributes to a release's values or to `istioOperatorManifest` is
secret as a whole.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from offline.engine import ProgramRun, is_secret_input, reveal, run_program, stack_config
from offline.render import as_json, as_text

RELEASE = "kubernetes:helm.sh/v3:Release"
TOKEN = "tok-5e1f-proxy-metadata"
PIP_NAME = "pip-5e1f-annotation-value"
SECRETS = (TOKEN, PIP_NAME)


def plain_texts(value: Any) -> Iterator[str]:
    """Every string in `value` (keys too) that is not inside a secret."""
    if is_secret_input(value):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from plain_texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from plain_texts(item)
    elif isinstance(value, str):
        yield value


def secret_istio_config(stack: str) -> dict[str, Any]:
    config = copy.deepcopy(stack_config(stack))
    istio = config["aks-istio:istio"]
    istio["meshConfig"] = {"defaultConfig": {"proxyMetadata": {"API_TOKEN": TOKEN}}}
    istio["gateway"] = {"serviceAnnotations": {"service.beta.kubernetes.io/azure-pip-name": PIP_NAME}}
    return config


@pytest.fixture(scope="module", params=["dev", "prod"])
def secret_run(request: pytest.FixtureRequest) -> ProgramRun:
    return run_program(request.param, secret_istio_config(request.param), secret_keys=["aks-istio:istio"])


def test_the_secret_values_do_reach_the_releases(secret_run: ProgramRun) -> None:
    istiod = reveal(secret_run.named("mesh-istiod").inputs)["values"]
    assert istiod["meshConfig"]["defaultConfig"]["proxyMetadata"]["API_TOKEN"] == TOKEN
    gateway = reveal(secret_run.named("mesh-gateway").inputs)["values"]
    assert gateway["service"]["annotations"]["service.beta.kubernetes.io/azure-pip-name"] == PIP_NAME


def test_no_secret_value_is_in_a_release_s_plain_inputs(secret_run: ProgramRun) -> None:
    for release in secret_run.of_type(RELEASE):
        for text in plain_texts(release.inputs):
            assert not any(secret in text for secret in SECRETS), (release.name, text[:200])
        if release.name in ("mesh-istiod", "mesh-gateway"):
            assert is_secret_input(release.inputs["values"]), release.name


def test_no_secret_value_is_in_a_plain_output(secret_run: ProgramRun) -> None:
    assert "istioOperatorManifest" in secret_run.secret_outputs
    for name, value in secret_run.outputs.items():
        if name in secret_run.secret_outputs:
            continue
        shown = json.dumps(value, default=str)
        assert not any(secret in shown for secret in SECRETS), name


def test_no_secret_value_is_in_the_offline_plan(secret_run: ProgramRun) -> None:
    for rendered in (as_text(secret_run), as_json(secret_run)):
        assert not any(secret in rendered for secret in SECRETS)


def test_without_a_secret_key_the_values_stay_plain_as_before() -> None:
    run = run_program("dev", secret_istio_config("dev"))
    assert not is_secret_input(run.named("mesh-istiod").inputs["values"])
    assert "istioOperatorManifest" not in run.secret_outputs


def test_a_secure_value_in_a_stack_file_makes_its_key_secret_offline_as_the_cli_does() -> None:
    config = copy.deepcopy(stack_config("dev"))
    proxy_metadata = {"API_TOKEN": {"secure": "v1:c2VjcmV0LWNpcGhlcnRleHQ="}}
    config["aks-istio:istio"]["meshConfig"] = {"defaultConfig": {"proxyMetadata": proxy_metadata}}
    run = run_program("dev", config)
    assert is_secret_input(run.named("mesh-istiod").inputs["values"])
    assert "istioOperatorManifest" in run.secret_outputs
    assert "c2VjcmV0" not in as_text(run)
