"""Run the real program under Pulumi's own mocks and record the resource graph it declares.

Used by `make plan` (offline rendering) and by the tests. The mocks stand in for the cloud only:
every resource registration, option, dependency and secret flag is the program's own.
"""

from __future__ import annotations

import base64
import json
import runpy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from settings.rules import PROJECT
from settings.stack import ROOT, available_stacks, secure_keys, stack_config, without_ciphertext

__all__ = ["ROOT", "available_stacks", "stack_config"]  # the tests and `make plan` read stacks through here

UNKNOWN = object()
"""Marker for a value only the cloud can compute (unknown in a preview)."""


@dataclass
class RecordedResource:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]
    """Inputs as registered: secrets stay wrapped (see `reveal` and `is_secret_input`)."""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProgramRun:
    stack: str
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    """Stack outputs: plain values, `UNKNOWN` where the cloud computes them."""
    secret_outputs: set[str]
    invokes: list[str]

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> RecordedResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def urn_of(self, name: str) -> str:
        return self.named(name).urn


def is_secret_input(value: Any) -> bool:
    return bool(rpc.is_rpc_secret(value))


def reveal(value: Any) -> Any:
    """The value with secret wrappers removed (for assertions on what a secret holds)."""
    if rpc.is_rpc_secret(value):
        return reveal(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def fake_kubeconfig(cluster_name: str, exec_format: bool = False) -> str:
    """A kubeconfig shaped like the one AKS returns (token, or kubelogin exec for Entra ID), offline only."""
    user: dict[str, Any] = {"token": "offline-placeholder-token"}
    if exec_format:
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "kubelogin",
                "args": ["get-token", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630", "--login", "devicecode"],
            }
        }
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster_name, "cluster": {"server": f"https://{cluster_name}.hcp.example"}}],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": "clusterUser"}}],
            "current-context": cluster_name,
            "users": [{"name": "clusterUser", "user": user}],
        }
    )


class OfflineMocks(pulumi_mocks.Mocks):
    """Echo inputs back as state; fill in what Azure computes (unknown in a preview)."""

    def __init__(self, preview: bool) -> None:
        self.preview = preview
        self.invokes: list[str] = []

    def _computed(self, value: Any) -> Any:
        return rpc.UNKNOWN if self.preview else value

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        name = state.get("resourceName") or args.name
        if args.typ == "azure-native:containerservice:ManagedCluster":
            state["name"] = name
            state["oidcIssuerProfile"] = {
                "enabled": True,
                "issuerURL": self._computed(f"https://eastus.oic.prod-aks.azure.com/tenant/{name}/"),
            }
            state["fqdn"] = self._computed(f"{name}.hcp.example")
        elif args.typ == "azure-native:resources:ResourceGroup":
            state["name"] = state.get("resourceGroupName", args.name)
        elif args.typ.startswith("azure-native:") and "name" not in state:
            state["name"] = name
        return f"{args.name}-id", state

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict[str, Any]:
        self.invokes.append(args.token)
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            kubeconfig = fake_kubeconfig(
                str(args.args.get("resourceName", "cluster")), args.args.get("format") == "exec"
            )
            encoded = base64.b64encode(kubeconfig.encode()).decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": encoded}]}
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "clientId": "00000000-0000-0000-0000-000000000001",
                "objectId": "00000000-0000-0000-0000-000000000002",
                "subscriptionId": "00000000-0000-0000-0000-000000000003",
                "tenantId": "00000000-0000-0000-0000-000000000004",
            }
        return {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Pulumi's mock monitor, also keeping the raw registration (parent, deps, secrets, options)."""

    def __init__(self, mocks: OfflineMocks, recorded: list[RecordedResource] | None = None) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = [] if recorded is None else recorded

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            pulumi_mocks._ensure_event_loop()
            self.recorded.append(
                RecordedResource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    custom=bool(request.custom),
                    provider=request.provider,
                    dependencies=list(request.dependencies),
                    inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                    options={
                        "ignoreChanges": list(request.ignoreChanges),
                        "additionalSecretOutputs": list(request.additionalSecretOutputs),
                        "protect": bool(request.protect),
                        "retainOnDelete": bool(request.retainOnDelete),
                    },
                )
            )
        return response


def _config_value(value: Any) -> str:
    """Pulumi passes structured config to programs as JSON strings."""
    return value if isinstance(value, str) else json.dumps(value)


def _resolve(output: Any) -> tuple[Any, bool]:
    out = pulumi.Output.from_input(output)

    async def settle() -> tuple[Any, bool]:
        known = await out.is_known()
        value = await out.future(with_unknowns=True)
        return (value if known else UNKNOWN), await out.is_secret()

    return _sync_await(settle())


def run_program(
    stack: str,
    config: Mapping[str, Any],
    *,
    preview: bool = False,
    program: Callable[[], None] | None = None,
    root: Path = ROOT,
    recorded: list[RecordedResource] | None = None,
    secret_keys: Sequence[str] = (),
) -> ProgramRun:
    """Run `program` (default: the project's `__main__.py`) as stack `stack` with `config`.

    `preview=True` behaves like `pulumi preview`: values the cloud computes stay unknown.
    `recorded` receives the registrations as they happen, so a failed run can be inspected too.
    `secret_keys` are the keys set as secrets; a key holding a `secure:` value anywhere is one, as for the CLI
    (the value itself, which only the CLI can decrypt, reads as `settings.stack.OFFLINE_SECRET`).
    """
    mocks = OfflineMocks(preview)
    monitor = RecordingMonitor(mocks, recorded)
    pulumi.runtime.settings.reset_options()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(
        {key: _config_value(without_ciphertext(value)) for key, value in config.items()},
        secret_keys=sorted({*secret_keys, *secure_keys(config)}),
    )

    def body() -> None:
        if program is not None:
            program()
        else:
            runpy.run_path(str(root / "__main__.py"), run_name="__main__")

    _sync_await(run_pulumi_func(body))
    stack_resource = get_root_resource()
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    for name, value in (stack_resource.outputs if stack_resource else {}).items():
        outputs[name], secret = _resolve(value)
        if secret:
            secret_outputs.add(name)
    return ProgramRun(stack, monitor.recorded, outputs, secret_outputs, mocks.invokes)
