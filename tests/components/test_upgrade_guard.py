"""The upgrade guard in Pulumi's real dynamic-provider host: its check refuses, from the deployed state, what
Istio does not support, so the preview fails before any release changes; anything else passes and is recorded."""

from __future__ import annotations

from typing import Any

from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.proto import provider_pb2

from components.upgrade_guard import UpgradeGuardProvider
from settings.data_plane import GUARD_KEYS, DeclaredDataPlane
from settings.model import CanarySettings, IstioSettings, MeshSettings
from tests.support.provider_host import TIMEOUT, Host, as_dict, check, diff, struct

GUARD = serialize_provider(UpgradeGuardProvider())
MESH = MeshSettings(("payments", "shop"))


def props(version: str, canary: CanarySettings | None = None, **changes: Any) -> dict[str, Any]:
    declared = DeclaredDataPlane.declared(IstioSettings(version=version, canary=canary, **changes), MESH).inputs()
    return {**{key: declared[key] for key in GUARD_KEYS}, "__provider": GUARD}


def failures(host: Host, olds: dict[str, Any], news: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f.property, f.reason) for f in check(host, news, olds=olds).failures]


def test_a_skipped_minor_is_refused_from_the_deployed_state(host: Host) -> None:
    ((prop, reason),) = failures(host, props("1.28.4"), props("1.30.3"))
    assert prop == "version"
    assert reason.startswith("aks-istio:istio.version: an in-place upgrade from Istio 1.28.4 to 1.30.3 skips")


def test_the_first_up_has_nothing_to_compare_and_passes(host: Host) -> None:
    assert failures(host, {}, props("1.30.3")) == []


def test_a_promotion_passes_and_a_changed_canary_is_refused(host: Host) -> None:
    on_canary = props("1.29.6", CanarySettings("1.30.3", ("shop",)))
    assert failures(host, on_canary, props("1.30.3")) == []
    assert failures(host, props("1.29.6"), on_canary) == []
    ((_, reason),) = failures(host, on_canary, props("1.29.6", CanarySettings("1.30.4", ("shop",))))
    assert "cannot become 1.30.4 in one step" in reason


def test_an_acknowledged_downgrade_passes(host: Host) -> None:
    acknowledged = props("1.29.6", allow_downgrade_from="1.30.3")
    assert failures(host, props("1.30.3"), acknowledged) == []


def test_the_state_changes_only_with_the_declared_planes(host: Host) -> None:
    same, moved = props("1.29.6"), props("1.29.6", CanarySettings("1.30.3", ()))
    assert diff(host, same, same).changes == provider_pb2.DiffResponse.DIFF_NONE
    assert diff(host, same, moved).changes == provider_pb2.DiffResponse.DIFF_SOME
    created = host.stub.Create(
        provider_pb2.CreateRequest(urn="urn:pulumi:dev::aks-istio::guard::g", properties=struct(moved)),
        timeout=TIMEOUT,
    )
    assert as_dict(created.properties)["canaryVersion"] == "1.30.3"


def test_the_guard_refuses_a_move_to_ambient_in_the_update_that_installs_it() -> None:
    """Its check, not the restart's alone: with `--skip-preview` the guard still stops the update before any release
    or label changes."""
    base = {"version": "1.30.3", "canaryVersion": "", "meshNamespaces": ["payments", "shop"], "allowDowngradeFrom": ""}
    sidecars = {**base, "canaryNamespaces": [], "ambientNamespaces": [], "hbone": False}
    moved = {**sidecars, "ambientNamespaces": ["payments"], "hbone": True}
    ((failure,),) = [UpgradeGuardProvider().check(sidecars, moved).failures]
    assert failure.property == "ambientNamespaces" and "every sidecar must first be re-injected" in failure.reason
    assert UpgradeGuardProvider().check({**sidecars, "hbone": True}, moved).failures == []
    # A state written before the keys existed: no diff, and nothing refused that it cannot tell.
    assert UpgradeGuardProvider().diff("id", base, sidecars).changes is False
    assert UpgradeGuardProvider().check(base, moved).failures == []
