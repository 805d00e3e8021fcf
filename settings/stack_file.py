"""`Pulumi.<stack>.yaml`: a committed stack's settings, read without the Pulumi CLI (offline plans, previews)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from settings.model import StackSettings
from settings.parse import parse_settings
from settings.rules import PROJECT, ConfigError
from settings.yaml_file import read_yaml_file

ROOT = Path(__file__).resolve().parent.parent
"""The project root: where `Pulumi.yaml` and the stack files are."""


def available_stacks(root: Path = ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def stack_config(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The `config:` map of `Pulumi.<stack>.yaml`, read with the Pulumi CLI's YAML rules (`settings.yaml_file`)."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no stack file {path.name} (stacks: {', '.join(available_stacks(root))})")
    document = read_yaml_file(path, path.name)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path.name}: expected a mapping with a `config:` key, got a {type(document).__name__}")
    config = document.get("config")
    if config is not None and not isinstance(config, dict):
        raise ConfigError(f"{path.name}: `config:` must be a mapping of keys to values")
    return dict(config or {})


def stack_settings(stack: str, root: Path = ROOT) -> StackSettings:
    """The typed settings of a committed stack, as the program would read them."""
    config = stack_config(stack, root)
    objects = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith(f"{PROJECT}:")}
    return parse_settings(stack, objects, config.get("azure-native:location"), root)
