"""Finding the control plane's binaries, and the one-line reasons given when they are missing."""

from __future__ import annotations

import hashlib
import lzma
import os
from pathlib import Path

import pytest

from localkube import binaries
from localkube.binaries import Binaries, Bundled, find_binaries, unpacked

VARIABLES = ("AKS_ISTIO_ETCD", "AKS_ISTIO_KUBE_APISERVER", "AKS_ISTIO_KUBE_CONTROLLER_MANAGER")
SCRIPT = b"#!/bin/sh\necho bundled\n"


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AKS_ISTIO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def bundle_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A bundle folder of the test's own, holding an xz-compressed script as `kube.xz` and `etcd.xz`."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    for name in ("kube", "etcd"):
        (folder / f"{name}.xz").write_bytes(lzma.compress(SCRIPT))
    monkeypatch.setattr(binaries, "BUNDLE_DIR", folder)
    return folder


def test_no_bundle_is_one_line_saying_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(binaries, "BUNDLE_DIR", tmp_path / "absent")
    assert find_binaries() == (None, f"no etcd: provide {tmp_path / 'absent' / 'etcd.xz'}, or set AKS_ISTIO_ETCD")


def test_a_variable_naming_no_executable_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AKS_ISTIO_ETCD", str(executable(tmp_path / "etcd")))
    monkeypatch.setenv("AKS_ISTIO_KUBE_APISERVER", str(tmp_path / "missing"))
    found, reason = find_binaries()
    assert found is None
    assert reason == f"AKS_ISTIO_KUBE_APISERVER={tmp_path / 'missing'} is not an executable file"
    assert "\n" not in reason


def test_variables_name_the_binaries_run_as_themselves(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    paths = {variable: str(executable(tmp_path / variable.lower())) for variable in VARIABLES}
    for variable, path in paths.items():
        monkeypatch.setenv(variable, path)
    assert find_binaries() == (
        Binaries(
            etcd=(paths["AKS_ISTIO_ETCD"],),
            apiserver=(paths["AKS_ISTIO_KUBE_APISERVER"],),
            controller_manager=(paths["AKS_ISTIO_KUBE_CONTROLLER_MANAGER"],),
        ),
        None,
    )


def test_the_bundle_is_unpacked_once_into_the_cache_and_run_with_a_subcommand(bundle_dir: Path, tmp_path: Path) -> None:
    sha256 = hashlib.sha256(SCRIPT).hexdigest()
    kube = unpacked(Bundled("kube", sha256))
    assert kube == tmp_path / "cache" / f"kube-{sha256}"
    assert kube.read_bytes() == SCRIPT and os.access(kube, os.X_OK)
    assert [path.name for path in kube.parent.iterdir()] == [kube.name], "no partial file is left behind"
    modified = kube.stat().st_mtime_ns
    assert unpacked(Bundled("kube", sha256)) == kube
    assert kube.stat().st_mtime_ns == modified


def test_a_bundle_that_does_not_match_its_checksum_never_runs(bundle_dir: Path, tmp_path: Path) -> None:
    found, reason = find_binaries()  # the real checksums: the test's script matches neither
    assert found is None
    assert reason is not None and "sha256" in reason and str(bundle_dir / "etcd.xz") in reason
    assert not any((tmp_path / "cache").iterdir()), "nothing half-checked is kept"


@pytest.mark.skipif(not binaries.KUBE.archive.is_file(), reason=f"no {binaries.KUBE.archive}")
def test_the_shared_bundle_is_kubernetes_1_36_with_its_own_etcd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AKS_ISTIO_CACHE_DIR")  # the cache the fixtures use: unpacked once per machine
    found, reason = find_binaries()
    assert found is not None, reason
    kube = str(binaries.cache_dir() / f"kube-{binaries.KUBE.sha256}")
    assert found == Binaries(
        etcd=(str(binaries.cache_dir() / f"etcd-{binaries.ETCD.sha256}"),),
        apiserver=(kube, "apiserver"),
        controller_manager=(kube, "controller-manager"),
    )
