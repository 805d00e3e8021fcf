"""The provider inside Pulumi's real dynamic-provider host, driven over gRPC as the engine drives it.

The provider is serialized the way `pulumi.dynamic.Resource` does it, `python -m pulumi.dynamic` is started
in the project root (as the engine starts it), and Configure, Check, Diff, Create and Update are called
with the engine's messages. The host answers `acceptSecrets: false`, so the engine sends secrets in clear
and keeps whatever the host returns in a secret envelope secret; the tests check that the kubeconfig only
ever comes back inside one.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from restart.plan import cni_fingerprint
from restart.resource import SidecarRestartProvider
from tests.support.kube_emulator import KubeEmulator, PodShape, add_deployment

PROJECT_ROOT = Path(__file__).resolve().parents[2]
URN = "urn:pulumi:dev::aks-istio::pulumi-python:dynamic/restart:SidecarRestart::sidecar-restart"
TYPE = "pulumi-python:dynamic/restart:SidecarRestart"
SECRET_SIG = {rpc._special_sig_key: rpc._special_secret_sig}
EXCLUDED = ["istio-system", "kube-system"]
TIMEOUT = 30


class Host:
    """A running `python -m pulumi.dynamic` and a stub to call it; its stderr is collected."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulumi.dynamic"],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PULUMI_PROJECT": "aks-istio"},
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        port = self._read_port()
        self.stderr: list[str] = []
        self._drain = threading.Thread(target=self._collect_stderr, daemon=True)
        self._drain.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=TIMEOUT)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def _read_port(self) -> int:
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(TIMEOUT)
        if not result or not result[0].strip():
            self.process.kill()
            raise RuntimeError("the dynamic provider host printed no port")
        return int(result[0])

    def _collect_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line.decode(errors="replace"))

    def close(self) -> None:
        self.channel.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    running = Host()
    try:
        running.stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True), timeout=TIMEOUT)
        yield running
    finally:
        running.close()


@pytest.fixture
def shop(emulator: KubeEmulator) -> KubeEmulator:
    """A namespace with one Deployment injected for istio-init (`cart`) and one already on the CNI (`web`)."""
    add_deployment(emulator, "shop", "cart")
    add_deployment(emulator, "shop", "web", PodShape(redirect="istio-validation"))
    return emulator


SERIALIZED_PROVIDER = serialize_provider(SidecarRestartProvider())
PROVIDER_FROM_OLD_STATE = "gASVNAAAAAAAAACMEmNvbXBvbmVudHMucmVzdGFydJSMFlNpZGVjYXJSZXN0YXJ0UHJvdmlkZXKUk5QpgZQu"
"""The provider as stacks deployed before the restart became its own layer hold it in their state: a reference
to `components.restart.SidecarRestartProvider` (serialized by that version of the program, as the engine does)."""


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def as_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def engine_view(properties: dict[str, Any]) -> dict[str, Any]:
    """What the engine sends a provider that does not accept secrets: secret values in clear."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
                return strip(value["value"])
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(properties)  # type: ignore[no-any-return]


def clear_text_places(value: Any, secret: str, path: str = "") -> list[str]:
    """Where `secret` appears outside a secret envelope."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return []
        return [p for key, item in value.items() for p in clear_text_places(item, secret, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in clear_text_places(item, secret, f"{path}[{index}]")]
    return [path] if isinstance(value, str) and secret in value else []


def inputs(emu: KubeEmulator, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "cniEnabled": True,
        "excludeNamespaces": ["kube-system", "istio-system", "kube-system"],
        "kubeconfig": emu.kubeconfig(),
        "maxConcurrent": 4,
        "waitForRollout": True,
        "timeoutSeconds": 20,
        "__provider": SERIALIZED_PROVIDER,
    }
    values.update(overrides)
    return values


def check(host: Host, news: dict[str, Any], olds: dict[str, Any] | None = None) -> provider_pb2.CheckResponse:
    request = provider_pb2.CheckRequest(urn=URN, type=TYPE, name="sidecar-restart", olds=struct(olds or {}),
                                        news=struct(news))  # fmt: skip
    response: provider_pb2.CheckResponse = host.stub.Check(request, timeout=TIMEOUT)
    return response


def checked(host: Host, news: dict[str, Any]) -> dict[str, Any]:
    response = check(host, news)
    assert list(response.failures) == []
    return as_dict(response.inputs)


def create(host: Host, props: dict[str, Any]) -> provider_pb2.CreateResponse:
    request = provider_pb2.CreateRequest(urn=URN, type=TYPE, name="sidecar-restart", properties=struct(props))
    response: provider_pb2.CreateResponse = host.stub.Create(request, timeout=TIMEOUT)
    return response


def diff(host: Host, olds: dict[str, Any], news: dict[str, Any]) -> provider_pb2.DiffResponse:
    request = provider_pb2.DiffRequest(id="sidecar-restart-1", urn=URN, type=TYPE, olds=struct(olds), news=struct(news))
    response: provider_pb2.DiffResponse = host.stub.Diff(request, timeout=TIMEOUT)
    return response


def update(host: Host, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    request = provider_pb2.UpdateRequest(id="sidecar-restart-1", urn=URN, type=TYPE, olds=struct(olds),
                                         news=struct(news))  # fmt: skip
    return as_dict(host.stub.Update(request, timeout=TIMEOUT).properties)


def test_the_serialized_provider_is_a_reference_and_captures_nothing() -> None:
    pickled = base64.b64decode(SERIALIZED_PROVIDER)
    assert b"restart.resource" in pickled and b"SidecarRestartProvider" in pickled
    assert len(pickled) < 1000, "the class is pickled by reference, not by value"


def test_a_provider_from_an_old_state_still_diffs_and_updates(host: Host, shop: KubeEmulator) -> None:
    """The engine unpickles the old state's `__provider` for diff and update: its import path must still load."""
    assert b"components.restart" in base64.b64decode(PROVIDER_FROM_OLD_STATE)
    olds = {**checked(host, inputs(shop)), "__provider": PROVIDER_FROM_OLD_STATE}
    news = {**checked(host, inputs(shop, maxConcurrent=2)), "__provider": PROVIDER_FROM_OLD_STATE}
    assert diff(host, olds, news).changes == provider_pb2.DiffResponse.DIFF_SOME
    outs = update(host, engine_view(olds), engine_view(news))
    assert outs["maxConcurrent"] == 2
    assert shop.requests == [], "an option change restarts nothing"


def test_check_normalises_and_returns_the_kubeconfig_only_as_a_secret(host: Host, shop: KubeEmulator) -> None:
    result = checked(host, inputs(shop))
    assert result["excludeNamespaces"] == ["istio-system", "kube-system"]
    assert result["kubeconfig"] == {**SECRET_SIG, "value": shop.kubeconfig()}
    assert clear_text_places(result, shop.token) == []
    assert shop.requests == []


def test_check_reports_invalid_inputs(host: Host, shop: KubeEmulator) -> None:
    response = check(host, inputs(shop, maxConcurrent=0, excludeNamespaces="kube-system", kubeconfig=""))
    assert sorted(f.property for f in response.failures) == ["excludeNamespaces", "kubeconfig", "maxConcurrent"]
    missing = inputs(shop)
    del missing["timeoutSeconds"]
    assert [(f.property, f.reason) for f in check(host, missing).failures] == [("timeoutSeconds", "is required")]


def test_check_and_diff_pass_unknowns_through_in_a_preview(host: Host, shop: KubeEmulator) -> None:
    result = checked(host, inputs(shop, kubeconfig=rpc.UNKNOWN))
    assert result["kubeconfig"] == rpc.UNKNOWN
    olds = engine_view(checked(host, inputs(shop)))
    # The cluster is being updated, so its kubeconfig is unknown: that alone restarts nothing and is no
    # change (`pulumi up` diffs again with the real value).
    assert diff(host, olds, result).changes == provider_pb2.DiffResponse.DIFF_NONE
    # An unknown CNI setting may well differ: it shows.
    unknown_cni = checked(host, inputs(shop, kubeconfig=rpc.UNKNOWN, cniEnabled=rpc.UNKNOWN))
    assert diff(host, olds, unknown_cni).changes == provider_pb2.DiffResponse.DIFF_SOME
    assert shop.requests == []


def test_diff_is_quiet_when_nothing_changed_and_never_replaces(host: Host, shop: KubeEmulator) -> None:
    olds = engine_view(checked(host, inputs(shop)))
    same = engine_view(checked(host, inputs(shop, excludeNamespaces=["kube-system", "istio-system"])))
    assert diff(host, olds, same).changes == provider_pb2.DiffResponse.DIFF_NONE
    for change in ({"cniEnabled": False}, {"excludeNamespaces": ["kube-system"]}, {"kubeconfig": "rotated"},
                   {"timeoutSeconds": 5}):  # fmt: skip
        news = engine_view(checked(host, inputs(shop, **change)))
        response = diff(host, olds, news)
        assert response.changes == provider_pb2.DiffResponse.DIFF_SOME, change
        assert list(response.replaces) == []
    assert shop.requests == [], "check and diff never call the cluster"


def test_create_then_update_through_the_host(host: Host, shop: KubeEmulator) -> None:
    created = create(host, engine_view(checked(host, inputs(shop))))
    outs = as_dict(created.properties)
    assert created.id.startswith("sidecar-restart-")
    assert outs["restarted"] == ["Deployment/shop/cart"]
    assert outs["skipped"] == {"alreadyMatching": {"count": 1, "workloads": ["Deployment/shop/web"]}}
    assert outs["fingerprint"] == cni_fingerprint(True, EXCLUDED)
    assert outs["restartedAt"].endswith("Z")
    assert outs["kubeconfig"] == {**SECRET_SIG, "value": shop.kubeconfig()}
    assert clear_text_places(outs, shop.token) == []
    assert shop.count(method="PATCH") == 1 and shop.count(verb="watch") == 1
    assert any("restarted Deployment/shop/cart (1 of 1)" in line for line in host.stderr), host.stderr

    # The no-op preview: the state (the outputs, kubeconfig in its secret envelope) against unchanged inputs.
    assert diff(host, outs, checked(host, inputs(shop))).changes == provider_pb2.DiffResponse.DIFF_NONE

    # A rotated kubeconfig: the state is updated, the cluster is not touched.
    state = engine_view(outs)
    rotated_kubeconfig = shop.kubeconfig() + "\n# rotated\n"
    rotated = engine_view(checked(host, inputs(shop, kubeconfig=rotated_kubeconfig)))
    assert diff(host, state, rotated).changes == provider_pb2.DiffResponse.DIFF_SOME
    before = len(shop.requests)
    after_rotation = update(host, state, rotated)
    assert len(shop.requests) == before
    assert after_rotation["restarted"] == ["Deployment/shop/cart"]
    assert after_rotation["kubeconfig"] == {**SECRET_SIG, "value": rotated_kubeconfig}

    # Switching the CNI off restarts the other way round; istiod now injects `istio-init`.
    shop.reinject = "istio-init"
    switched = engine_view(checked(host, inputs(shop, cniEnabled=False)))
    after_switch = update(host, engine_view(after_rotation), switched)
    # `cart` too: its pods were re-injected for the CNI on create.
    assert after_switch["restarted"] == ["Deployment/shop/cart", "Deployment/shop/web"]
    assert after_switch["fingerprint"] == cni_fingerprint(False, EXCLUDED)
    assert clear_text_places(after_switch, shop.token) == []
    assert shop.count(method="PATCH") == 3


def test_a_failed_create_reports_why_without_the_kubeconfig(host: Host, shop: KubeEmulator) -> None:
    shop.forbid("patch", "deployments", "shop")
    with pytest.raises(grpc.RpcError) as caught:
        create(host, engine_view(checked(host, inputs(shop))))
    details = caught.value.details()  # type: ignore[attr-defined]
    assert "forbidden: cannot patch deployments in namespace 'shop'" in details
    assert shop.token not in details and "current-context" not in details
