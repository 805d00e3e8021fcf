"""States written before the declared data plane was one type load and show no diff.

`written-before-the-declared-data-plane.json` holds the `sidecar-restart` and `istio-upgrade-guard` property bags as
the previous release serialized them (for the dev and prod stacks, each with and without a canary): no `version`,
`canaryVersion` or `slowStart` yet. The restart is driven through Pulumi's real dynamic-provider host.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.proto import provider_pb2

from components.upgrade_guard import UpgradeGuardProvider
from restart.plan import fingerprint
from restart.request import RestartRequest
from restart.resource import SidecarRestartProvider
from settings.data_plane import GUARD_KEYS, DeclaredDataPlane
from settings.model import CanarySettings, StackSettings
from settings.stack import stack_settings
from tests.support.provider_host import SERIALIZED_PROVIDER, Host, as_dict, check, diff

STATES = json.loads((Path(__file__).parent / "written-before-the-declared-data-plane.json").read_text())
GUARD = serialize_provider(UpgradeGuardProvider())


def settings_of(case: str) -> StackSettings:
    """The settings the stored state was written from: a stack, or the same with a canary on its first namespace."""
    stack, _, canary = case.partition("-")
    settings = stack_settings(stack)
    if not canary:
        return settings
    first = tuple(sorted(settings.mesh.namespaces))[:1]
    istio = dataclasses.replace(settings.istio, version="1.29.6", canary=CanarySettings("1.30.3", first))
    return dataclasses.replace(settings, istio=istio)


def declared_inputs(case: str) -> dict[str, Any]:
    settings = settings_of(case)
    kubeconfig = STATES[case]["restart"]["kubeconfig"]
    return RestartRequest.of_settings(settings.istio, settings.restart, settings.mesh, kubeconfig).inputs()


@pytest.mark.parametrize("case", sorted(STATES))
def test_an_old_restart_state_reads_as_the_same_declaration(case: str) -> None:
    old = STATES[case]["restart"]
    assert "version" not in old and "slowStart" not in old, "the fixture is a state from before those inputs"
    settings = settings_of(case)
    read = RestartRequest.from_inputs(old).data_plane
    assert read == DeclaredDataPlane.declared(settings.istio, settings.mesh)
    # The fingerprint that release recorded on the workloads: a re-run restarts nothing twice.
    assert fingerprint(read) == old["fingerprint"]


@pytest.mark.parametrize("case", sorted(STATES))
def test_an_old_restart_state_shows_no_diff_and_is_not_refused(host: Host, case: str) -> None:
    olds = {**STATES[case]["restart"], "__provider": SERIALIZED_PROVIDER}
    news = {**declared_inputs(case), "__provider": SERIALIZED_PROVIDER}
    checked = check(host, news, olds=olds)
    assert list(checked.failures) == []
    assert diff(host, olds, as_dict(checked.inputs)).changes == provider_pb2.DiffResponse.DIFF_NONE


@pytest.mark.parametrize("case", sorted(STATES))
def test_an_old_guard_state_shows_no_diff_and_is_not_refused(host: Host, case: str) -> None:
    olds = {**STATES[case]["guard"], "__provider": GUARD}
    news = {**{key: declared_inputs(case)[key] for key in GUARD_KEYS}, "__provider": GUARD}
    checked = check(host, news, olds=olds)
    assert list(checked.failures) == []
    assert diff(host, olds, as_dict(checked.inputs)).changes == provider_pb2.DiffResponse.DIFF_NONE


def test_a_real_change_after_an_old_state_still_shows() -> None:
    """The fallback reads what the old state meant; it does not hide a change of the data plane."""
    old = STATES["dev"]["restart"]
    changed = {**declared_inputs("dev"), "proxyImage": "docker.io/istio/proxyv2:1.30.3-distroless"}
    assert SidecarRestartProvider.changed_keys(old, changed) == ["proxyImage"]
    assert SidecarRestartProvider.restarts(old, changed)
