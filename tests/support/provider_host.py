"""Pulumi's real dynamic-provider host, started as the engine starts it and driven over gRPC.

The provider is serialized the way `pulumi.dynamic.Resource` does it, `python -m pulumi.dynamic` is started
in the project root (as the engine starts it), and Configure, Check, Diff, Create and Update are called
with the engine's messages. The host answers `acceptSecrets: false`, so the engine sends secrets in clear
and keeps whatever the host returns in a secret envelope secret.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from restart.resource import SidecarRestartProvider

PROJECT_ROOT = Path(__file__).resolve().parents[2]
URN = "urn:pulumi:dev::aks-istio::pulumi-python:dynamic/restart:SidecarRestart::sidecar-restart"
TYPE = "pulumi-python:dynamic/restart:SidecarRestart"
SECRET_SIG = {rpc._special_sig_key: rpc._special_secret_sig}
TIMEOUT = 30
SERIALIZED_PROVIDER = serialize_provider(SidecarRestartProvider())


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


def inputs(cluster_kubeconfig: str, **overrides: Any) -> dict[str, Any]:
    """The resource's inputs as the program declares them, with the serialized provider."""
    values: dict[str, Any] = {
        "cniEnabled": True,
        "excludeNamespaces": ["kube-system", "istio-system", "kube-system"],
        "kubeconfig": cluster_kubeconfig,
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
