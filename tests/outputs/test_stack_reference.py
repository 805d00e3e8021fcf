"""The platform stack-reference helper under Pulumi's mocks, the StackReference mocked as the SDK does."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from aks_istio_outputs import (
    CONTRACT_OUTPUT_NAMES,
    NamespaceDataPlane,
    NotAMeshNamespaceError,
    PlatformOutputError,
    PlatformOutputs,
    platform_stack_name,
    read_platform_outputs,
)
from offline.engine import run_program, stack_config
from tests.support.platform_stack_mocks import PLATFORM_OUTPUTS, PLATFORM_STACK, PlatformStackMocks, isolated_mocks

# Property name for each output of the contract.
PROPERTY_OF_OUTPUT = {
    "kubeconfig": "kubeconfig",
    "clusterName": "cluster_name",
    "resourceGroupName": "resource_group_name",
    "location": "location",
    "oidcIssuerUrl": "oidc_issuer_url",
    "istioVersion": "istio_version",
    "istioNamespace": "istio_namespace",
    "cniEnabled": "cni_enabled",
    "cniExcludeNamespaces": "cni_exclude_namespaces",
    "meshNamespaces": "mesh_namespaces",
    "ingressGatewayNamespace": "ingress_gateway_namespace",
    "istioOperatorManifest": "istio_operator_manifest",
    "meshDataPlane": "mesh_data_plane",
}


def run_with_platform(mocks: PlatformStackMocks, check: Callable[[PlatformOutputs], pulumi.Output[Any]]) -> None:
    """Read the platform stack under `mocks` and wait for `check`'s output."""
    with isolated_mocks(mocks, project="aks-istio-example-app", stack="dev"):

        @pulumi.runtime.test
        def program() -> pulumi.Output[Any]:
            return check(read_platform_outputs(PLATFORM_STACK))

        program()


def test_stack_name_is_org_project_stack() -> None:
    assert platform_stack_name("acme", "prod") == "acme/aks-istio/prod"


def test_every_contract_output_has_a_property() -> None:
    assert set(PROPERTY_OF_OUTPUT) == set(CONTRACT_OUTPUT_NAMES) == set(PLATFORM_OUTPUTS)


def value_shape(value: Any) -> Any:
    """The JSON type of a stack output, lists with their items' types: what a StackReference hands over."""
    if isinstance(value, list):
        return ("list", sorted({type(item).__name__ for item in value}))
    return type(value).__name__


def test_the_mocked_platform_outputs_have_the_real_programs_types() -> None:
    # The program itself under mocks (not a preview, so every output of the contract is known).
    real = run_program("dev", stack_config("dev")).outputs

    assert {name: value_shape(real[name]) for name in CONTRACT_OUTPUT_NAMES} == {
        name: value_shape(PLATFORM_OUTPUTS[name]) for name in CONTRACT_OUTPUT_NAMES
    }
    assert value_shape(real["cniEnabled"]) == "bool"  # not the string "true"
    assert value_shape(real["meshNamespaces"]) == ("list", ["str"])

    # And the helper takes the real values as they are: every property passes its type check.
    contract = {name: real[name] for name in CONTRACT_OUTPUT_NAMES}

    def check(platform: PlatformOutputs) -> pulumi.Output[Any]:
        values = [getattr(platform, PROPERTY_OF_OUTPUT[name]) for name in CONTRACT_OUTPUT_NAMES]
        return pulumi.Output.all(*values).apply(
            lambda resolved: assert_equal(plain(dict(zip(CONTRACT_OUTPUT_NAMES, resolved, strict=True))), contract)
        )

    run_with_platform(PlatformStackMocks(outputs=contract), check)


def test_outputs_are_returned_by_name_with_their_values() -> None:
    mocks = PlatformStackMocks()
    outputs_in_contract_order = list(CONTRACT_OUTPUT_NAMES)

    def check(platform: PlatformOutputs) -> pulumi.Output[Any]:
        values = [getattr(platform, PROPERTY_OF_OUTPUT[name]) for name in outputs_in_contract_order]

        def compare(resolved: list[Any]) -> None:
            assert plain(dict(zip(outputs_in_contract_order, resolved, strict=True))) == PLATFORM_OUTPUTS
            assert isinstance(resolved[outputs_in_contract_order.index("cniEnabled")], bool)

        return pulumi.Output.all(*values).apply(compare)

    run_with_platform(mocks, check)
    assert mocks.referenced_stacks == [PLATFORM_STACK]


def test_kubeconfig_is_secret_and_its_secrecy_does_not_spread() -> None:
    async def secrecy(platform: PlatformOutputs) -> None:
        assert await platform.kubeconfig.is_secret()
        assert not await platform.cluster_name.is_secret()
        assert not await platform.mesh_namespaces.is_secret()

    run_with_platform(PlatformStackMocks(), lambda platform: pulumi.Output.from_input(secrecy(platform)))


def test_kubeconfig_stays_secret_when_the_platform_exported_it_in_plain_text() -> None:
    async def secrecy(platform: PlatformOutputs) -> None:
        assert await platform.kubeconfig.is_secret()

    run_with_platform(
        PlatformStackMocks(secret_output_names=()),
        lambda platform: pulumi.Output.from_input(secrecy(platform)),
    )


def test_a_missing_output_fails_naming_the_output_and_the_stack() -> None:
    outputs = dict(PLATFORM_OUTPUTS)
    del outputs["meshNamespaces"]

    with pytest.raises(PlatformOutputError, match=re.escape(f"{PLATFORM_STACK!r} has no output 'meshNamespaces'")):
        run_with_platform(PlatformStackMocks(outputs), lambda platform: platform.mesh_namespaces)


def test_an_output_the_app_does_not_read_may_be_missing() -> None:
    outputs = dict(PLATFORM_OUTPUTS)
    del outputs["istioOperatorManifest"]

    run_with_platform(
        PlatformStackMocks(outputs),
        lambda platform: platform.cluster_name.apply(lambda name: assert_equal(name, "aks-istio-dev")),
    )


def test_an_output_of_the_wrong_type_fails_naming_it_without_its_value() -> None:
    outputs = dict(PLATFORM_OUTPUTS, cniEnabled="yes")

    with pytest.raises(PlatformOutputError, match="output 'cniEnabled' should be a boolean, got str") as error:
        run_with_platform(PlatformStackMocks(outputs), lambda platform: platform.cni_enabled)
    assert "yes" not in str(error.value)


def test_a_mesh_namespace_is_confirmed() -> None:
    run_with_platform(
        PlatformStackMocks(),
        lambda platform: platform.require_mesh_namespace("payments").apply(
            lambda namespace: assert_equal(namespace, "payments")
        ),
    )


def test_a_namespace_outside_the_mesh_is_refused_with_the_mesh_namespaces_listed() -> None:
    with pytest.raises(NotAMeshNamespaceError, match=r"'default' is not a mesh namespace .*shop, payments"):
        run_with_platform(PlatformStackMocks(), lambda platform: platform.require_mesh_namespace("default"))


def test_an_app_reads_its_namespaces_data_plane_mode_and_waypoint() -> None:
    def check(platform: PlatformOutputs) -> pulumi.Output[Any]:
        return pulumi.Output.all(platform.data_plane_of("payments"), platform.data_plane_of("shop")).apply(
            lambda planes: assert_equal(
                planes, [NamespaceDataPlane("ambient", "waypoint"), NamespaceDataPlane("sidecar", "")]
            )
        )

    run_with_platform(PlatformStackMocks(), check)


def test_the_data_plane_of_a_namespace_outside_the_mesh_is_refused() -> None:
    with pytest.raises(NotAMeshNamespaceError, match=r"'default' is not a mesh namespace .*shop, payments"):
        run_with_platform(PlatformStackMocks(), lambda platform: platform.data_plane_of("default"))


def test_a_data_plane_of_an_unknown_mode_fails_naming_the_output() -> None:
    outputs = {**PLATFORM_OUTPUTS, "meshDataPlane": {"shop": {"mode": "eBPF", "waypoint": ""}}}
    with pytest.raises(PlatformOutputError, match=r"output 'meshDataPlane' should be an object"):
        run_with_platform(PlatformStackMocks(outputs=outputs), lambda platform: platform.mesh_data_plane)


def plain(outputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs as the platform exported them: the data planes back to objects."""
    planes = outputs.get("meshDataPlane") or {}
    return {**outputs, "meshDataPlane": {ns: dataclasses.asdict(plane) for ns, plane in planes.items()}}


def assert_equal(actual: Any, expected: Any) -> None:
    assert actual == expected
