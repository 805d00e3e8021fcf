"""Typed access to an aks-istio platform stack's outputs, for application stacks.

An app stack reads the platform through `read_platform_outputs("<org>/aks-istio/<stack>")` and gets
every output of the contract by name with its type. A missing output or one of the wrong type fails
when its value is resolved, with a message naming the output and the stack, instead of surfacing
later as a `None` deep inside a resource's inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import pulumi

PLATFORM_PROJECT = "aks-istio"
"""The platform's Pulumi project name; this package is installed on its own, so it keeps its own copy."""

CONTRACT_OUTPUT_NAMES: tuple[str, ...] = (
    "kubeconfig",
    "clusterName",
    "resourceGroupName",
    "location",
    "oidcIssuerUrl",
    "istioVersion",
    "istioNamespace",
    "cniEnabled",
    "cniExcludeNamespaces",
    "meshNamespaces",
    "ingressGatewayNamespace",
    "istioOperatorManifest",
    "meshDataPlane",
)
"""The outputs every platform stack exports; `PlatformOutputs` has one property for each."""

T = TypeVar("T")


class PlatformOutputError(LookupError):
    """The platform stack lacks an output of the contract, or it has an unexpected type."""


class NotAMeshNamespaceError(ValueError):
    """An app asked for a namespace that the platform does not run in the mesh."""


@dataclass(frozen=True)
class NamespaceDataPlane:
    """What a mesh namespace's pods run, as the platform declares it."""

    mode: str
    """`sidecar` (an `istio-proxy` in every pod) or `ambient` (no sidecar; ztunnel, and the waypoint for L7)."""
    waypoint: str
    """The namespace's waypoint (a Gateway of class `istio-waypoint` in it), "" for none: attach L7 policy to it
    with `targetRefs` (kind Gateway, group gateway.networking.k8s.io, this name)."""

    @property
    def ambient(self) -> bool:
        return self.mode == "ambient"


def platform_stack_name(organization: str, stack: str) -> str:
    """The fully qualified name of a platform stack, e.g. `acme/aks-istio/prod`."""
    return f"{organization}/{PLATFORM_PROJECT}/{stack}"


@dataclass(frozen=True)
class PlatformOutputs:
    """The platform stack's outputs (the contract), one typed property per output.

    Each output is read on first use: an app that never touches, say, `istio_operator_manifest`
    keeps working against a platform stack that predates it, while one that does use it gets a
    clear error instead of a `None`.
    """

    stack_name: str
    """The referenced stack, `<org>/aks-istio/<stack>`."""
    reference: pulumi.StackReference = field(repr=False)
    """The underlying stack reference, for outputs outside the contract."""

    @cached_property
    def kubeconfig(self) -> pulumi.Output[str]:
        """`kubeconfig`: the cluster's user kubeconfig; always a secret."""
        # The platform exports it as a secret already; wrapping again keeps it secret even when a
        # hand-made or older platform stack exported it in plain text.
        return pulumi.Output.secret(self._require("kubeconfig", _string))

    @cached_property
    def cluster_name(self) -> pulumi.Output[str]:
        """`clusterName`: the AKS cluster's name."""
        return self._require("clusterName", _string)

    @cached_property
    def resource_group_name(self) -> pulumi.Output[str]:
        """`resourceGroupName`: the resource group holding the cluster."""
        return self._require("resourceGroupName", _string)

    @cached_property
    def location(self) -> pulumi.Output[str]:
        """`location`: the Azure region."""
        return self._require("location", _string)

    @cached_property
    def oidc_issuer_url(self) -> pulumi.Output[str]:
        """`oidcIssuerUrl`: the cluster's OIDC issuer, for workload identity federation."""
        return self._require("oidcIssuerUrl", _string)

    @cached_property
    def istio_version(self) -> pulumi.Output[str]:
        """`istioVersion`: the installed Istio version."""
        return self._require("istioVersion", _string)

    @cached_property
    def istio_namespace(self) -> pulumi.Output[str]:
        """`istioNamespace`: the namespace of istiod and the CNI DaemonSet."""
        return self._require("istioNamespace", _string)

    @cached_property
    def cni_enabled(self) -> pulumi.Output[bool]:
        """`cniEnabled`: whether pods are redirected by the Istio CNI plugin (no `istio-init`)."""
        return self._require("cniEnabled", _boolean)

    @cached_property
    def cni_exclude_namespaces(self) -> pulumi.Output[list[str]]:
        """`cniExcludeNamespaces`: the namespaces the CNI plugin leaves alone."""
        return self._require("cniExcludeNamespaces", _string_list)

    @cached_property
    def mesh_namespaces(self) -> pulumi.Output[list[str]]:
        """`meshNamespaces`: the application namespaces labelled for sidecar injection."""
        return self._require("meshNamespaces", _string_list)

    @cached_property
    def ingress_gateway_namespace(self) -> pulumi.Output[str]:
        """`ingressGatewayNamespace`: the ingress gateway's namespace; empty when it is off."""
        return self._require("ingressGatewayNamespace", _string)

    @cached_property
    def istio_operator_manifest(self) -> pulumi.Output[str]:
        """`istioOperatorManifest`: the equivalent IstioOperator manifest as YAML."""
        return self._require("istioOperatorManifest", _string)

    @cached_property
    def mesh_data_plane(self) -> pulumi.Output[dict[str, NamespaceDataPlane]]:
        """`meshDataPlane`: each mesh namespace's data-plane mode and waypoint."""
        return self._require("meshDataPlane", _data_planes)

    def data_plane_of(self, namespace: str) -> pulumi.Output[NamespaceDataPlane]:
        """The data plane of mesh namespace `namespace` (mode and waypoint); fails for one outside the mesh."""

        def pick(planes: dict[str, NamespaceDataPlane]) -> NamespaceDataPlane:
            if namespace not in planes:
                raise NotAMeshNamespaceError(self._outside(namespace, list(planes)))
            return planes[namespace]

        return self.mesh_data_plane.apply(pick)

    def require_mesh_namespace(self, namespace: str) -> pulumi.Output[str]:
        """`namespace`, once the platform confirms it is one of its mesh namespaces.

        Use the result as the workload's namespace, so deploying into a namespace without sidecar
        injection (or without the Pod Security label the mesh relies on) fails with a clear message.
        """

        def confirm(mesh_namespaces: list[str]) -> str:
            if namespace not in mesh_namespaces:
                raise NotAMeshNamespaceError(self._outside(namespace, mesh_namespaces))
            return namespace

        return self.mesh_namespaces.apply(confirm)

    def _outside(self, namespace: str, mesh_namespaces: list[str]) -> str:
        return (
            f"namespace {namespace!r} is not a mesh namespace of platform stack "
            f"{self.stack_name!r} (its meshNamespaces: {', '.join(mesh_namespaces) or 'none'}); "
            "deploy into one of those, or add it to `aks-istio:mesh.namespaces` there first"
        )

    @cached_property
    def _output_names(self) -> pulumi.Output[list[str]]:
        # Only the names are read from the whole map. Unsecreting it keeps one secret output (the
        # kubeconfig) from making every other output secret; each value keeps its own secretness.
        return pulumi.Output.unsecret(self.reference.outputs).apply(lambda outputs: sorted(outputs))

    def _require(self, name: str, convert: Callable[[str, str, Any], T]) -> pulumi.Output[T]:
        """The output `name`, converted by `convert`; fails naming the output and stack if absent."""
        value = self.reference.get_output(name)  # secret exactly when the platform marked it so

        def checked(value_and_names: Sequence[Any]) -> T:
            found, names = value_and_names
            if name not in names:
                raise PlatformOutputError(
                    f"platform stack {self.stack_name!r} has no output {name!r} "
                    f"(it has: {', '.join(names) or 'no outputs'}); is it an aks-istio stack, "
                    "deployed with a version that exports this output?"
                )
            return convert(self.stack_name, name, found)

        return pulumi.Output.all(value, self._output_names).apply(checked)


def read_platform_outputs(
    stack_name: str,
    resource_name: str = "platform",
    opts: pulumi.ResourceOptions | None = None,
) -> PlatformOutputs:
    """Reference the platform stack `stack_name` and return its outputs by name, typed."""
    reference = pulumi.StackReference(resource_name, stack_name=stack_name, opts=opts)
    return PlatformOutputs(stack_name=stack_name, reference=reference)


def _string(stack_name: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong_type(stack_name, name, "a string", value)
    return value


def _boolean(stack_name: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _wrong_type(stack_name, name, "a boolean", value)
    return value


def _string_list(stack_name: str, name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _wrong_type(stack_name, name, "a list of strings", value)
    return list(value)


def _data_planes(stack_name: str, name: str, value: Any) -> dict[str, NamespaceDataPlane]:
    expected = "an object of {namespace: {mode, waypoint}}"
    if not isinstance(value, dict):
        raise _wrong_type(stack_name, name, expected, value)
    planes: dict[str, NamespaceDataPlane] = {}
    for namespace, plane in value.items():
        mode = plane.get("mode") if isinstance(plane, dict) else None
        waypoint = plane.get("waypoint", "") if isinstance(plane, dict) else None
        if not isinstance(namespace, str) or mode not in ("sidecar", "ambient") or not isinstance(waypoint, str):
            raise _wrong_type(stack_name, name, expected, plane)
        planes[namespace] = NamespaceDataPlane(mode=mode, waypoint=waypoint)
    return planes


def _wrong_type(stack_name: str, name: str, expected: str, value: Any) -> PlatformOutputError:
    # Only the type is named: the value may be sensitive.
    return PlatformOutputError(
        f"platform stack {stack_name!r} output {name!r} should be {expected}, got {type(value).__name__}"
    )
