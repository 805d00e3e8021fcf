"""The example app stack (`examples/app`) run as Pulumi runs it, under mocks, from its dev stack file."""

from __future__ import annotations

import ast
import runpy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs, ResourceValidationPolicy
from pulumi_policy.proxy import unknown_checking_proxy

from offline.engine import is_secret_input
from policy.net_admin_guard import POLICIES
from tests.support.platform_stack_mocks import KUBECONFIG, PLATFORM_STACK, PlatformStackMocks, isolated_mocks

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "app"
PROJECT = "aks-istio-example-app"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PROVIDER = "pulumi:providers:kubernetes"


def dev_stack_config() -> dict[str, str]:
    return {
        key: str(value) for key, value in yaml.safe_load((APP_DIR / "Pulumi.dev.yaml").read_text())["config"].items()
    }


def run_app(config: Mapping[str, str]) -> PlatformStackMocks:
    """Run `examples/app` as the Pulumi language host does; the mocks hold what it registered."""
    mocks = PlatformStackMocks()
    with isolated_mocks(mocks, project=PROJECT, stack="dev", config=config):

        @pulumi.runtime.test
        def program() -> None:
            runpy.run_path(str(APP_DIR), run_name="__main__")

        program()
    return mocks


@pytest.fixture(scope="module")
def deployed() -> PlatformStackMocks:
    return run_app(dev_stack_config())


def only(mocks: PlatformStackMocks, type_token: str) -> pulumi.runtime.MockResourceArgs:
    [resource] = mocks.of_type(type_token)
    return resource


def pod_spec(mocks: PlatformStackMocks) -> dict[str, Any]:
    spec: dict[str, Any] = only(mocks, DEPLOYMENT).inputs["spec"]["template"]["spec"]
    return spec


def test_the_dev_stack_file_names_the_platform_and_a_mesh_namespace() -> None:
    assert dev_stack_config() == {f"{PROJECT}:platformStack": PLATFORM_STACK, f"{PROJECT}:namespace": "shop"}


def test_the_platform_stack_is_referenced(deployed: PlatformStackMocks) -> None:
    assert deployed.referenced_stacks == [PLATFORM_STACK]


def test_the_provider_uses_the_platform_kubeconfig_as_a_secret(deployed: PlatformStackMocks) -> None:
    kubeconfig = only(deployed, PROVIDER).inputs["kubeconfig"]

    assert is_secret_input(kubeconfig)
    assert kubeconfig["value"] == KUBECONFIG


def test_the_service_runs_in_the_mesh_namespace_through_that_provider(deployed: PlatformStackMocks) -> None:
    provider = only(deployed, PROVIDER)
    for type_token in (DEPLOYMENT, SERVICE):
        resource = only(deployed, type_token)
        assert resource.inputs["metadata"]["namespace"] == "shop"
        # A provider reference is `<provider urn>::<provider id>`.
        assert (
            resource.provider
            == f"urn:pulumi:dev::{PROJECT}::pulumi:pulumi:Stack${PROVIDER}::{provider.name}::{provider.name}-id"
        )


def test_the_pod_asks_for_a_sidecar(deployed: PlatformStackMocks) -> None:
    labels = only(deployed, DEPLOYMENT).inputs["spec"]["template"]["metadata"]["labels"]
    assert labels["sidecar.istio.io/inject"] == "true"


def test_in_an_ambient_namespace_the_pod_asks_for_no_sidecar() -> None:
    ambient = run_app({**dev_stack_config(), f"{PROJECT}:namespace": "payments"})
    labels = only(ambient, DEPLOYMENT).inputs["spec"]["template"]["metadata"]["labels"]
    assert "sidecar.istio.io/inject" not in labels


def test_the_pod_adds_no_capability_and_runs_as_non_root(deployed: PlatformStackMocks) -> None:
    spec = pod_spec(deployed)
    containers = spec["containers"] + spec.get("initContainers", [])

    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in containers:
        security = container["securityContext"]
        assert "add" not in security["capabilities"]
        assert security["capabilities"]["drop"] == ["ALL"]
        assert security["allowPrivilegeEscalation"] is False
        assert security.get("privileged") is not True
    assert not {"hostNetwork", "hostPID", "hostIPC"} & spec.keys()


def test_the_guard_policies_pass_on_every_resource(deployed: PlatformStackMocks) -> None:
    violations: list[str] = []
    for resource in deployed.resources:
        args = ResourceValidationArgs(
            resource.typ,
            unknown_checking_proxy(dict(resource.inputs)),
            f"urn:pulumi:dev::{PROJECT}::{resource.typ}::{resource.name}",
            resource.name,
            PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None),
            None,
        )
        for policy in POLICIES:
            if isinstance(policy, ResourceValidationPolicy):
                policy.validate(args, lambda message, _urn=None: violations.append(message))

    assert violations == []


def test_a_namespace_outside_the_mesh_stops_the_update() -> None:
    config = dict(dev_stack_config(), **{f"{PROJECT}:namespace": "default"})

    # Pulumi re-raises the helper's NotAMeshNamespaceError as a ValueError naming the resource.
    with pytest.raises(ValueError, match=r"namespace 'default' is not a mesh namespace of platform stack") as error:
        run_app(config)
    assert "shop, payments" in str(error.value)


def test_the_code_defaults_are_the_documented_ones() -> None:
    project = yaml.safe_load((APP_DIR / "Pulumi.yaml").read_text())
    # Read, not run: running the program outside the mocks would try to reach an engine.
    constants = {
        target.id: ast.literal_eval(statement.value)
        for statement in ast.parse((APP_DIR / "__main__.py").read_text()).body
        if isinstance(statement, ast.Assign)
        for target in statement.targets
        if isinstance(target, ast.Name) and target.id.startswith("DEFAULT_")
    }

    assert constants == {
        "DEFAULT_IMAGE": project["config"]["image"]["default"],
        "DEFAULT_REPLICAS": project["config"]["replicas"]["default"],
    }


def test_the_documented_policy_pack_path_is_the_platforms_pack() -> None:
    docstring = ast.get_docstring(ast.parse((APP_DIR / "__main__.py").read_text())) or ""
    [pack_path] = {
        line.split("--policy-pack ", 1)[1].strip() for line in docstring.splitlines() if "--policy-pack " in line
    }

    assert (APP_DIR / pack_path / "PulumiPolicy.yaml").resolve() == APP_DIR.parents[1] / "policy" / "PulumiPolicy.yaml"
