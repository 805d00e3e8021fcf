"""`mesh.namespaces` items: a name (sidecars, the original form) or an object with a mode, a waypoint and the
findings a team acknowledges; the rules that span sections."""

from __future__ import annotations

from typing import Any

import pytest

from settings.model import AmbientNamespace, ConfigError, MeshSettings
from settings.parse import parse_mesh, parse_settings

AMBIENT_ISTIO = {"version": "1.30.3", "ambient": {"enabled": True}}


def settings(mesh: Any, istio: Any = None) -> Any:
    return parse_settings("dev", {"mesh": mesh, "istio": istio or AMBIENT_ISTIO}, "westeurope")


def test_the_original_list_of_names_still_means_sidecars() -> None:
    assert parse_mesh({"namespaces": ["shop", "payments"]}) == MeshSettings(("shop", "payments"))


def test_objects_and_names_mix_in_the_stack_files_order() -> None:
    mesh = parse_mesh(
        {
            "namespaces": [
                "shop",
                {"name": "payments", "mode": "ambient", "waypoint": True},
                {"name": "cart", "mode": "ambient", "waypoint": "edge", "acknowledge": ["EnvoyFilter/cart/lua"]},
                {"name": "search", "mode": "sidecar"},
            ]
        }
    )
    assert mesh.namespaces == ("shop", "payments", "cart", "search")
    assert mesh.ambient == {
        "payments": AmbientNamespace(waypoint="waypoint"),
        "cart": AmbientNamespace(waypoint="edge", acknowledge=("EnvoyFilter/cart/lua",)),
    }
    assert mesh.sidecar_namespaces == ("shop", "search")
    assert (mesh.mode("cart"), mesh.mode("shop")) == ("ambient", "sidecar")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (7, r"namespaces\[0\]: 7 is not allowed; expected a namespace name, or an object"),
        ({"mode": "ambient"}, r"namespaces\[0\].name: not set"),
        (
            {"name": "pay", "mode": "eBPF"},
            r"namespaces\[0\].mode: 'eBPF' is not allowed; expected one of sidecar, ambient",
        ),
        ({"name": "pay", "waypoint": True}, r"namespaces\[0\].waypoint: not allowed for a namespace in sidecar mode"),
        (
            {"name": "pay", "acknowledge": ["EnvoyFilter/pay/x"]},
            r"\.acknowledge: not allowed for a namespace in sidecar",
        ),
        ({"name": "pay", "mode": "ambient", "waypoint": 3}, r"\.waypoint: 3 is not allowed; expected a waypoint name"),
        ({"name": "pay", "mode": "ambient", "waypoint": "Way_1"}, r"'Way_1' is not allowed; expected a waypoint name"),
        ({"name": "pay", "mode": "ambient", "acknowledge": ["Pod/pay/x"]}, r"'Pod/pay/x' is not allowed; expected a"),
        ({"name": "pay", "mode": "ambient", "colour": "red"}, r"namespaces\[0\].colour: unknown setting"),
    ],
)
def test_a_bad_item_is_refused_naming_it_and_what_is_allowed(item: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings({"namespaces": [item]})


def test_an_ambient_namespace_needs_ambient_modes_components() -> None:
    with pytest.raises(
        ConfigError, match=r"mesh.namespaces\[pay\].mode: 'ambient' is not allowed with .*ambient.enabled"
    ):
        settings({"namespaces": [{"name": "pay", "mode": "ambient"}]}, {"version": "1.30.3"})


def test_an_ambient_namespace_is_not_on_the_canary() -> None:
    istio = {**AMBIENT_ISTIO, "version": "1.29.6", "canary": {"version": "1.30.3", "namespaces": ["pay"]}}
    with pytest.raises(ConfigError, match=r"canary.namespaces: 'pay' is not allowed; it runs in ambient mode"):
        settings({"namespaces": [{"name": "pay", "mode": "ambient"}]}, istio)


def test_a_namespace_listed_twice_in_either_form_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"pay listed more than once"):
        settings({"namespaces": ["pay", {"name": "pay", "mode": "ambient"}]})


def test_the_ambient_settings_name_only_mesh_namespaces() -> None:
    with pytest.raises(ConfigError, match=r"ambient mode is only for mesh namespaces"):
        MeshSettings(("shop",), ambient={"pay": AmbientNamespace()})
