"""Finds etcd, kube-apiserver and kube-controller-manager for the test control plane.

Each binary is looked up in this order:
1. an environment variable naming the binary itself (`AKS_ISTIO_KUBE_APISERVER`,
   `AKS_ISTIO_KUBE_CONTROLLER_MANAGER`, `AKS_ISTIO_ETCD`), run as `kube-apiserver FLAGS`;
2. for the two Kubernetes binaries, the shared bundle `../shared/kube/kube.xz` beside the repository,
   decompressed once into a cache folder and run as `kube apiserver FLAGS` / `kube controller-manager FLAGS`;
3. for etcd, `etcd` on PATH.
A missing binary yields None and one line saying how to get it, which the fixtures use as the skip reason.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLE = REPO_ROOT.parent / "shared" / "kube" / "kube.xz"
# sha256 of the decompressed bundle, from ../shared/kube/README.md: a truncated or tampered copy must not run.
BUNDLE_SHA256 = "69657b44388629a58454e7213f4bbb6a6c78364398ddff2e833dd9058b3ad0f2"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Binaries:
    """Command prefixes: append a component's flags to get its command line."""

    etcd: tuple[str, ...]
    apiserver: tuple[str, ...]
    controller_manager: tuple[str, ...]


def cache_dir() -> Path:
    """Where the decompressed bundle is kept between runs (`$AKS_ISTIO_CACHE_DIR`, else ~/.cache/aks-istio)."""
    configured = os.environ.get("AKS_ISTIO_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "aks-istio"


def find_binaries() -> tuple[Binaries, None] | tuple[None, str]:
    """The command prefixes of the three components, or None and one line telling how to get what is missing."""
    etcd, reason = _etcd()
    if etcd is None:
        return None, reason
    apiserver, reason = _kube_component("AKS_ISTIO_KUBE_APISERVER", "apiserver")
    if apiserver is None:
        return None, reason
    controller_manager, reason = _kube_component("AKS_ISTIO_KUBE_CONTROLLER_MANAGER", "controller-manager")
    if controller_manager is None:
        return None, reason
    return Binaries(etcd=etcd, apiserver=apiserver, controller_manager=controller_manager), None


def _etcd() -> tuple[tuple[str, ...], str] | tuple[None, str]:
    configured = os.environ.get("AKS_ISTIO_ETCD")
    if configured:
        if _is_executable(Path(configured)):
            return (configured,), ""
        return None, f"AKS_ISTIO_ETCD={configured} is not an executable file"
    found = shutil.which("etcd")
    if found:
        return (found,), ""
    return None, "no etcd: apt-get install etcd-server, or set AKS_ISTIO_ETCD"


def _kube_component(variable: str, subcommand: str) -> tuple[tuple[str, ...], str] | tuple[None, str]:
    configured = os.environ.get(variable)
    if configured:
        if _is_executable(Path(configured)):
            return (configured,), ""
        return None, f"{variable}={configured} is not an executable file"
    if not BUNDLE.is_file():
        return None, f"no kube-{subcommand}: set {variable} to a Kubernetes v1.24 binary, or provide {BUNDLE}"
    try:
        kube = unpacked_bundle()
    except (OSError, lzma.LZMAError, ValueError) as exc:
        return None, f"cannot unpack {BUNDLE}: {exc}; set {variable}, or AKS_ISTIO_CACHE_DIR to a writable folder"
    return (str(kube), subcommand), ""


def unpacked_bundle() -> Path:
    """The decompressed `kube` binary, produced on first use.

    Written under a temporary name and renamed, so a concurrent or interrupted run never sees half a binary.
    """
    target = cache_dir() / f"kube-{BUNDLE_SHA256}"
    if _is_executable(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".kube-", suffix=".partial")
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, lzma.open(BUNDLE) as compressed:
            while chunk := compressed.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != BUNDLE_SHA256:
            raise ValueError(f"sha256 {digest.hexdigest()} of the decompressed binary, expected {BUNDLE_SHA256}")
        temp.chmod(0o755)  # mkstemp makes it 0600
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
