"""A stack's settings, read where they live: the engine's configuration, or the committed stack file.

`load_settings` is the one place the program reads Pulumi configuration; `stack_settings` reads a committed
`Pulumi.<stack>.yaml` without the Pulumi CLI (offline plans, `make restart-plan`, the tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from settings.model import StackSettings
from settings.parse import parse_settings
from settings.rules import PROJECT, ConfigError
from settings.yaml_file import read_yaml_file

ROOT = Path(__file__).resolve().parent.parent
"""The project root: where `Pulumi.yaml` and the stack files are."""

# --- From the engine -----------------------------------------------------------------------------


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


# --- From the committed stack file ---------------------------------------------------------------


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


def secure_keys(config: Mapping[str, Any]) -> list[str]:
    """The keys of a `config:` map that hold a value set with `--secret` (`secure: v1:...`) anywhere in them.

    The Pulumi CLI marks such a key secret as a whole when it runs the program; offline, the same keys are.
    """
    return sorted(key for key, value in config.items() if _holds_secure_value(value))


OFFLINE_SECRET = "offline-secret-placeholder"
"""What a `secure:` value reads as offline, where it cannot be decrypted (its key is secret all the same)."""


def _is_secure_value(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"} and isinstance(value["secure"], str)


def _holds_secure_value(value: Any) -> bool:
    if _is_secure_value(value):
        return True
    if isinstance(value, Mapping):
        return any(_holds_secure_value(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_secure_value(item) for item in value)
    return False


def without_ciphertext(value: Any) -> Any:
    """`value` with each `secure:` value read as `OFFLINE_SECRET`: the program gets a string where the CLI would
    give it the decrypted one."""
    if _is_secure_value(value):
        return OFFLINE_SECRET
    if isinstance(value, Mapping):
        return {key: without_ciphertext(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_ciphertext(item) for item in value]
    return value


def stack_settings(stack: str, root: Path = ROOT) -> StackSettings:
    """The typed settings of a committed stack, as the program would read them."""
    config = stack_config(stack, root)
    secret = {key.split(":", 1)[1] for key in secure_keys(config) if key.startswith(f"{PROJECT}:")}
    config = without_ciphertext(config)
    objects = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith(f"{PROJECT}:")}
    return parse_settings(stack, objects, config.get("azure-native:location"), root, secret)
