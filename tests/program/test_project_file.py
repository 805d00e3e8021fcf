"""`Pulumi.yaml` and the committed stack files, as the Pulumi CLI reads them."""

from __future__ import annotations

import yaml

from aks_istio_outputs import PLATFORM_PROJECT
from offline.engine import ROOT, available_stacks, stack_config
from settings.rules import PROJECT

SIMPLE_TYPES = {"string", "integer", "boolean", "array"}
"""The only `type:` values a project config declaration may have (objects are declared untyped)."""


def project() -> dict[str, object]:
    document = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert isinstance(document, dict)
    return document


def test_project_name_and_runtime() -> None:
    document = project()
    assert document["name"] == PROJECT == PLATFORM_PROJECT
    assert document["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


def test_config_declarations_are_valid_for_the_cli() -> None:
    config = project()["config"]
    assert isinstance(config, dict)
    for key, declaration in config.items():
        assert key.startswith("aks-istio:"), f"{key}: only the project's own keys may be declared with a schema"
        assert set(declaration) <= {"type", "description", "default", "items", "secret"}, key
        assert declaration.get("type", "string") in SIMPLE_TYPES, f"{key}: the CLI rejects type {declaration['type']}"
        assert declaration.get("description"), f"{key} is undocumented"


def test_every_key_the_stacks_set_is_documented() -> None:
    declared = set(project()["config"])  # type: ignore[arg-type]
    assert {"dev", "prod"} <= set(available_stacks()), "the committed stacks"
    for stack in available_stacks():
        own_keys = {key for key in stack_config(stack) if key.startswith("aks-istio:")}
        assert own_keys <= declared, f"Pulumi.{stack}.yaml sets undocumented keys {own_keys - declared}"
