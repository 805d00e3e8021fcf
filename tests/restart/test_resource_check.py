"""The restart's own check of an Istio move, against the data plane its state says was last rolled out."""

from __future__ import annotations

from typing import Any

from restart.resource import SidecarRestartProvider


def props(image: str, **more: Any) -> dict[str, Any]:
    values = {
        "kubeconfig": "apiVersion: v1\nkind: Config\n",
        "cniEnabled": True,
        "excludeNamespaces": ["kube-system"],
        "proxyImage": image,
        "maxConcurrent": 2,
        "waitForRollout": True,
        "timeoutSeconds": 60,
    }
    return {**values, **more}


def failures(olds: dict[str, Any], news: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f.property, f.reason) for f in SidecarRestartProvider().check(olds, news).failures]


def test_a_skip_from_the_rolled_out_proxy_is_refused_even_where_the_guard_has_no_history() -> None:
    ((prop, reason),) = failures(props("docker.io/istio/proxyv2:1.28.4"), props("docker.io/istio/proxyv2:1.30.3"))
    assert prop == "version" and "skips a minor release" in reason


def test_a_state_written_before_proxies_were_compared_refuses_nothing() -> None:
    old = props("")
    del old["proxyImage"]
    assert failures(old, props("docker.io/istio/proxyv2:1.30.3")) == []


def test_promotion_and_acknowledged_downgrades_pass() -> None:
    on_canary = props(
        "docker.io/istio/proxyv2:1.29.6-distroless",
        canaryRevision="1-30-3",
        canaryProxyImage="docker.io/istio/proxyv2:1.30.3-distroless",
        canaryNamespaces=["shop"],
    )
    assert failures(on_canary, props("docker.io/istio/proxyv2:1.30.3-distroless")) == []
    back = props("docker.io/istio/proxyv2:1.29.6", allowDowngradeFrom="1.30.3")
    assert failures(props("docker.io/istio/proxyv2:1.30.3"), back) == []


def test_namespaces_move_to_ambient_only_after_every_sidecar_speaks_hbone() -> None:
    image, mesh = "docker.io/istio/proxyv2:1.30.3", {"meshNamespaces": ["shop", "payments"]}
    sidecars = props(image, **mesh, hbone=False)
    installed = props(image, **mesh, hbone=True)
    moved = props(image, **mesh, hbone=True, ambientNamespaces=["payments"])
    ((prop, reason),) = failures(sidecars, moved)
    assert prop == "ambientNamespaces"
    assert "moving payments to ambient mode in the update that installs ambient mode's components" in reason
    assert failures(sidecars, installed) == []
    assert failures(installed, moved) == []
    assert failures({}, moved) == []  # a first install: no running sidecar to wait for
    assert failures(props(image, **mesh), moved) == []  # a state from before HBONE was recorded: not known
