"""Pulumi mocks for app-stack tests: a mocked platform stack reference and an isolated runtime.

The StackReference is mocked the way Pulumi's SDK tests do it: `new_resource` answers the
`pulumi:pulumi:StackReference` read with the referenced stack's `name`, `outputs` and
`secretOutputNames`. Every other resource echoes its inputs and is recorded for assertions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from copy import deepcopy
from typing import Any

import pulumi
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.config import CONFIG

STACK_REFERENCE_TYPE = "pulumi:pulumi:StackReference"

PLATFORM_STACK = "organization/aks-istio/dev"

KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n"

# What the dev platform stack exports (the contract's names and types); the types are compared with
# the real program's outputs in tests/outputs/test_stack_reference.py.
PLATFORM_OUTPUTS: dict[str, Any] = {
    "kubeconfig": KUBECONFIG,
    "clusterName": "aks-istio-dev",
    "resourceGroupName": "rg-aks-istio-dev",
    "location": "westeurope",
    "oidcIssuerUrl": "https://westeurope.oic.prod-aks.azure.com/tenant/issuer/",
    "istioVersion": "1.30.3",
    "istioNamespace": "istio-system",
    "cniEnabled": True,
    "cniExcludeNamespaces": ["istio-system", "kube-system", "kube-node-lease", "kube-public"],
    "meshNamespaces": ["shop", "payments"],
    "ingressGatewayNamespace": "istio-ingress",
    "istioOperatorManifest": "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n",
    "meshDataPlane": {
        "shop": {"mode": "sidecar", "waypoint": ""},
        "payments": {"mode": "ambient", "waypoint": "waypoint"},
    },
}


class PlatformStackMocks(pulumi.runtime.Mocks):
    """Answers the platform StackReference from `outputs`; records every other resource."""

    def __init__(
        self,
        outputs: Mapping[str, Any] | None = None,
        secret_output_names: tuple[str, ...] = ("kubeconfig",),
    ) -> None:
        self.outputs = dict(deepcopy(PLATFORM_OUTPUTS) if outputs is None else outputs)
        self.secret_output_names = secret_output_names
        self.referenced_stacks: list[str] = []
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ == STACK_REFERENCE_TYPE:
            self.referenced_stacks.append(args.inputs["name"])
            return args.resource_id or args.name, {
                "name": args.inputs["name"],
                "outputs": self.outputs,
                "secretOutputNames": list(self.secret_output_names),
            }
        self.resources.append(args)
        return f"{args.name}-id", with_auto_name(args)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, type_token: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [resource for resource in self.resources if resource.typ == type_token]


def with_auto_name(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    """The state the kubernetes provider returns: `metadata.name` filled in when left to autonaming."""
    state = deepcopy(dict(args.inputs))
    metadata = state.get("metadata")
    if args.typ.startswith("kubernetes:") and isinstance(metadata, dict) and not metadata.get("name"):
        metadata["name"] = f"{args.name}-0a1b2c3d"  # the provider appends a random suffix
    return state


def _context_property_names() -> list[str]:
    return [
        name
        for name, attribute in vars(runtime_settings.Settings).items()
        if type(attribute).__name__ == "ContextProperty"
    ]


@contextmanager
def isolated_mocks(
    mocks: pulumi.runtime.Mocks,
    *,
    project: str,
    stack: str,
    config: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Run with `mocks`, a fresh root stack and `config`; put back the previous runtime after.

    Pulumi keeps its settings, root resource and config in process-wide context variables, and
    other test files mock the runtime too, so each test restores exactly what it found.
    """
    saved_settings = {name: getattr(runtime_settings.SETTINGS, name) for name in _context_property_names()}
    saved_root = runtime_settings.ROOT.get()
    saved_config = dict(CONFIG.get())
    runtime_settings.ROOT.set(None)  # so set_mocks registers a new root stack for this test
    pulumi.runtime.set_all_config(dict(config or {}))
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False)
    try:
        yield
    finally:
        for name, value in saved_settings.items():
            setattr(runtime_settings.SETTINGS, name, value)
        runtime_settings.ROOT.set(saved_root)
        pulumi.runtime.set_all_config(saved_config)
