"""Finding the control plane's binaries, and the one-line reasons given when they are missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.controlplane.binaries import BUNDLE, BUNDLE_SHA256, Binaries, find_binaries, unpacked_bundle

VARIABLES = ("AKS_ISTIO_ETCD", "AKS_ISTIO_KUBE_APISERVER", "AKS_ISTIO_KUBE_CONTROLLER_MANAGER")


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AKS_ISTIO_CACHE_DIR", str(tmp_path / "cache"))


def test_no_etcd_anywhere_is_one_line_saying_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_binaries() == (None, "no etcd: apt-get install etcd-server, or set AKS_ISTIO_ETCD")


def test_a_variable_naming_no_executable_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AKS_ISTIO_ETCD", str(executable(tmp_path / "etcd")))
    monkeypatch.setenv("AKS_ISTIO_KUBE_APISERVER", str(tmp_path / "missing"))
    binaries, reason = find_binaries()
    assert binaries is None
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


@pytest.mark.skipif(not BUNDLE.is_file(), reason=f"no {BUNDLE}")
def test_the_bundle_is_unpacked_once_into_the_cache_and_run_with_a_subcommand(tmp_path: Path) -> None:
    kube = unpacked_bundle()
    assert kube == tmp_path / "cache" / f"kube-{BUNDLE_SHA256}"
    assert os.access(kube, os.X_OK)
    assert [path.name for path in kube.parent.iterdir()] == [kube.name], "no partial file is left behind"
    modified = kube.stat().st_mtime_ns
    assert unpacked_bundle() == kube
    assert kube.stat().st_mtime_ns == modified
    found = find_binaries()[0]
    if found is not None:  # etcd found on PATH
        assert found.apiserver == (str(kube), "apiserver")
        assert found.controller_manager == (str(kube), "controller-manager")
