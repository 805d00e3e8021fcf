"""Istio release numbers: which releases the program installs."""

from __future__ import annotations

from typing import Any

from settings.rules import RELEASE_VERSION, ConfigError, config_key

MINIMUM_ISTIO_VERSION = (1, 24)
"""Since 1.24 the cni chart's keys are flat (`excludeNamespaces`); before, they sat under `cni.`."""


def istio_release(version: Any) -> tuple[int, int, int] | None:
    """`version` as (major, minor, patch) when it is a plain release MAJOR.MINOR.PATCH, else None."""
    match = RELEASE_VERSION.fullmatch(version) if isinstance(version, str) else None
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def check_supported_version(version: Any, name: str = config_key("istio.version")) -> str:
    """`version` if it is an Istio release 1.24 or newer; otherwise a ConfigError naming `name`."""
    shown = f"'{version}'" if isinstance(version, str) else repr(version)
    release = istio_release(version)
    if release is None:
        raise ConfigError(f"{name}: {shown} is not allowed; expected a release MAJOR.MINOR.PATCH, e.g. 1.30.3")
    if release[:2] < MINIMUM_ISTIO_VERSION:
        raise ConfigError(
            f"{name}: {shown} is not supported; expected Istio 1.24 or newer "
            "(older cni charts nest their keys under `cni.`, which this program does not write)"
        )
    return str(version)


def revision_name(version: str) -> str:
    """Istio's revision name of a release: `1.30.3` -> `1-30-3` (its istiod is `istiod-1-30-3`)."""
    return version.replace(".", "-")


def minors_apart(older: tuple[int, int, int], newer: tuple[int, int, int]) -> int:
    """How many minor releases `newer` is above `older` (negative when below); majors count as far apart."""
    if older[0] != newer[0]:
        return 1000 if newer[0] > older[0] else -1000
    return newer[1] - older[1]
