"""Which moves between Istio releases the upgrade guard lets through: in place, canary, promotion, roll back."""

from __future__ import annotations

import pytest

from settings.data_plane import ControlPlane, DeclaredDataPlane
from settings.istio_releases import upgrade_refusal

MESH = ("payments", "shop")


def planes(version: str, canary: str = "", on_canary: tuple[str, ...] = (), ack: str = "") -> DeclaredDataPlane:
    return DeclaredDataPlane(
        default=ControlPlane("default", version, f"docker.io/istio/proxyv2:{version}"),
        canary=ControlPlane(canary.replace(".", "-"), canary, f"docker.io/istio/proxyv2:{canary}") if canary else None,
        canary_namespaces=frozenset(on_canary),
        mesh_namespaces=frozenset(MESH),
        allow_downgrade_from=ack,
    )


@pytest.mark.parametrize(
    ("deployed", "declared", "refused"),
    [
        # in place
        (planes("1.29.6"), planes("1.30.3"), None),
        (planes("1.30.1"), planes("1.30.3"), None),
        (planes("1.28.4"), planes("1.30.3"), "skips a minor release"),
        (planes("1.29.6"), planes("2.0.0"), "skips a minor release"),
        (planes("1.30.3"), planes("1.29.6"), "needs the acknowledgement aks-istio:istio.allowDowngradeFrom: '1.30.3'"),
        (planes("1.30.3"), planes("1.29.6", ack="1.30.3"), None),
        (planes("1.30.3"), planes("1.29.6", ack="1.30.2"), "needs the acknowledgement"),
        (planes("1.30.3"), planes("1.28.4", ack="1.30.3"), "one minor at most"),
        (planes("1.30.3"), planes("1.30.1"), "needs the acknowledgement"),
        # canary added, namespaces moved, rolled back: the default stays, nothing to refuse
        (planes("1.29.6"), planes("1.29.6", "1.30.3"), None),
        (planes("1.29.6", "1.30.3"), planes("1.29.6", "1.30.3", ("shop",)), None),
        (planes("1.29.6", "1.30.3", ("shop",)), planes("1.29.6"), None),
        # the canary's version cannot change while it runs: its tag's webhook would change owner
        (planes("1.29.6", "1.30.2"), planes("1.29.6", "1.30.3"), "cannot become 1.30.3 in one step"),
        # promotion: the default takes the canary's release
        (planes("1.29.6", "1.30.3", ("shop",)), planes("1.30.3"), None),
        (planes("1.28.4", "1.30.3", ("shop",)), planes("1.30.3"), "the namespaces payments still run 1.28.4"),
        (planes("1.28.4", "1.30.3", MESH), planes("1.30.3"), None),
        # an in-place jump that is not a promotion of the running canary
        (planes("1.28.4", "1.30.3", MESH), planes("1.30.3", "1.31.0"), "cannot become 1.31.0"),
        (planes("1.28.4", "1.29.6"), planes("1.30.3"), "skips a minor release"),
    ],
)
def test_the_guard_lets_through_exactly_the_moves_istio_supports(
    deployed: DeclaredDataPlane, declared: DeclaredDataPlane, refused: str | None
) -> None:
    refusal = upgrade_refusal(deployed, declared)
    assert (refusal is None) if refused is None else (refused in (refusal or "")), refusal


def test_a_refusal_names_the_setting_to_change() -> None:
    refusal = upgrade_refusal(planes("1.28.4"), planes("1.30.3")) or ""
    assert refusal.startswith("aks-istio:istio.version: ")
    assert "1.29.x first" in refusal and "istio.canary" in refusal
