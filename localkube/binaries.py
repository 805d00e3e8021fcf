"""Finds etcd, kube-apiserver and kube-controller-manager for the local control plane.

Each binary is looked up in this order:
1. an environment variable naming the binary itself (`AKS_ISTIO_KUBE_APISERVER`,
   `AKS_ISTIO_KUBE_CONTROLLER_MANAGER`, `AKS_ISTIO_ETCD`), run as `kube-apiserver FLAGS`;
2. the shared bundle of Kubernetes v1.36 beside the repository (`../shared/kube/v1.36/`): `kube.xz` (run as
   `kube apiserver FLAGS` / `kube controller-manager FLAGS`) and `etcd.xz`, each decompressed once into a cache
   folder and checked against the sha256 its README gives.
A missing binary yields None and one line saying how to get it, which the fixtures use as the skip reason.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE_DIR = REPO_ROOT.parent / "shared" / "kube" / "v1.36"
KUBERNETES_VERSION = "v1.36.2"


@dataclass(frozen=True)
class Bundled:
    """One xz-compressed binary of the bundle and the sha256 of its decompressed bytes (from its README)."""

    name: str
    sha256: str

    @property
    def archive(self) -> Path:
        return BUNDLE_DIR / f"{self.name}.xz"


# A truncated or tampered copy must not run.
KUBE = Bundled("kube", "e3cebd46a77ea220bd7bb9656bacd7f2ee80eb48ecf6bc5163c51d0852588b1f")
ETCD = Bundled("etcd", "274097a71e631a197ddf49a97632f307171ac660756b36a76b330b992b0c972d")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Binaries:
    """Command prefixes: append a component's flags to get its command line."""

    etcd: tuple[str, ...]
    apiserver: tuple[str, ...]
    controller_manager: tuple[str, ...]


def cache_dir() -> Path:
    """Where decompressed binaries are kept between runs (`$AKS_ISTIO_CACHE_DIR`, else ~/.cache/aks-istio)."""
    configured = os.environ.get("AKS_ISTIO_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "aks-istio"


def find_binaries() -> tuple[Binaries, None] | tuple[None, str]:
    """The command prefixes of the three components, or None and one line telling how to get what is missing."""
    found: list[tuple[str, ...]] = []
    for variable, bundled, subcommand in (
        ("AKS_ISTIO_ETCD", ETCD, None),
        ("AKS_ISTIO_KUBE_APISERVER", KUBE, "apiserver"),
        ("AKS_ISTIO_KUBE_CONTROLLER_MANAGER", KUBE, "controller-manager"),
    ):
        command, reason = _component(variable, bundled, subcommand)
        if command is None:
            return None, reason
        found.append(command)
    etcd, apiserver, controller_manager = found
    return Binaries(etcd=etcd, apiserver=apiserver, controller_manager=controller_manager), None


def _component(
    variable: str, bundled: Bundled, subcommand: str | None
) -> tuple[tuple[str, ...], str] | tuple[None, str]:
    configured = os.environ.get(variable)
    if configured:
        if _is_executable(Path(configured)):
            return (configured,), ""
        return None, f"{variable}={configured} is not an executable file"
    if not bundled.archive.is_file():
        return None, f"no {bundled.name}: provide {bundled.archive}, or set {variable}"
    try:
        binary = unpacked(bundled)
    except (OSError, lzma.LZMAError, ValueError) as exc:
        return (
            None,
            f"cannot unpack {bundled.archive}: {exc}; set {variable}, or AKS_ISTIO_CACHE_DIR to a writable folder",
        )
    return ((str(binary), subcommand) if subcommand else (str(binary),)), ""


def unpacked(bundled: Bundled) -> Path:
    """The decompressed binary, produced on first use.

    Written under a temporary name and renamed, so a concurrent or interrupted run never sees half a binary.
    """
    target = cache_dir() / f"{bundled.name}-{bundled.sha256}"
    if _is_executable(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{bundled.name}-", suffix=".partial")
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, lzma.open(bundled.archive) as compressed:
            while chunk := compressed.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != bundled.sha256:
            raise ValueError(f"sha256 {digest.hexdigest()} of the decompressed binary, expected {bundled.sha256}")
        temp.chmod(0o755)  # mkstemp makes it 0600
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
