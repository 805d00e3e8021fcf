"""The one place the program reads Pulumi configuration: the current stack's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from settings.model import StackSettings
from settings.parse import parse_settings
from settings.rules import PROJECT


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
    secret = {name for name in objects if _is_secret(f"{PROJECT}:{name}")}
    return parse_settings(pulumi.get_stack(), objects, location, Path.cwd(), secret)


def _is_secret(key: str) -> bool:
    """Whether the engine passed `key` as a secret (`pulumi config set --secret`)."""
    import pulumi.runtime.config as runtime_config

    return runtime_config.is_config_secret(key) or key in runtime_config.get_config_secret_keys_env()
