"""The AKS cluster component under Pulumi's mocks: resources, options, secret kubeconfig, provider."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from offline.engine import ProgramRun, available_stacks, is_secret_input, reveal, run_program, stack_config


@pytest.fixture(scope="module")
def runs() -> dict[str, ProgramRun]:
    return {stack: run_program(stack, stack_config(stack)) for stack in available_stacks()}


def cluster_inputs(run: ProgramRun) -> dict[str, Any]:
    return run.named("platform-aks").inputs


def test_cluster_is_declared_with_identity_oidc_and_workload_identity(runs: dict[str, ProgramRun]) -> None:
    for run in runs.values():
        inputs = cluster_inputs(run)
        assert inputs["identity"] == {"type": "SystemAssigned"}
        assert inputs["oidcIssuerProfile"] == {"enabled": True}
        assert inputs["securityProfile"]["workloadIdentity"] == {"enabled": True}
        assert inputs["networkProfile"]["networkPlugin"] == "azure"
        assert inputs["networkProfile"]["networkPluginMode"] == "overlay"
        assert inputs["kubernetesVersion"] == "1.33"
        assert inputs["autoUpgradeProfile"] == {"upgradeChannel": "patch"}
        assert inputs["tags"]["environment"] == run.stack
        assert run.named("platform-rg").inputs["tags"]["environment"] == run.stack


def test_children_are_parented_to_the_component(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    component = run.named("platform")
    assert component.type == "aks-istio:cluster:AksCluster"
    for child in ("platform-rg", "platform-aks", "platform-userpool", "platform-k8s", "platform-net-admin-policy"):
        assert run.named(child).parent == component.urn


def test_prod_pools_autoscale_across_zones_and_previews_ignore_the_autoscaled_count(
    runs: dict[str, ProgramRun],
) -> None:
    prod = runs["prod"]
    (system,) = cluster_inputs(prod)["agentPoolProfiles"]
    assert (system["mode"], system["enableAutoScaling"], system["minCount"], system["maxCount"]) == (
        "System",
        True,
        3,
        6,
    )
    assert system["availabilityZones"] == ["1", "2", "3"]
    assert prod.named("platform-aks").options["ignoreChanges"] == ["agentPoolProfiles[0].count"]
    user = prod.named("platform-userpool")
    assert user.inputs["mode"] == "User" and user.inputs["maxCount"] == 12
    assert user.options["ignoreChanges"] == ["count"]
    dev = runs["dev"]
    (dev_system,) = cluster_inputs(dev)["agentPoolProfiles"]
    assert dev_system["enableAutoScaling"] is False and "availabilityZones" not in dev_system
    assert dev.named("platform-aks").options["ignoreChanges"] == []
    assert dev.of_type("azure-native:containerservice:AgentPool") == []


def test_kubeconfig_is_a_secret_output_and_feeds_the_provider(runs: dict[str, ProgramRun]) -> None:
    run = runs["dev"]
    assert "kubeconfig" in run.secret_outputs
    kubeconfig = yaml.safe_load(run.outputs["kubeconfig"])
    assert kubeconfig["current-context"] == "aks-istio-dev"  # decoded from the base64 credentials
    provider = run.named("platform-k8s")
    assert provider.type == "pulumi:providers:kubernetes"
    assert is_secret_input(provider.inputs["kubeconfig"])
    assert reveal(provider.inputs["kubeconfig"]) == run.outputs["kubeconfig"]
    assert "azure-native:containerservice:listManagedClusterUserCredentials" in run.invokes


def test_stack_outputs_contract(runs: dict[str, ProgramRun]) -> None:
    run = runs["prod"]
    assert run.outputs["clusterName"] == "aks-istio-prod"
    assert run.outputs["resourceGroupName"] == "rg-aks-istio-prod"
    assert run.outputs["location"] == "westeurope"
    assert run.outputs["oidcIssuerUrl"].startswith("https://")
    assert run.secret_outputs == {"kubeconfig"}


def test_azure_policy_denies_net_admin_outside_system_namespaces(runs: dict[str, ProgramRun]) -> None:
    assert runs["dev"].of_type("azure-native:authorization:PolicyAssignment") == []
    prod = runs["prod"]
    assert cluster_inputs(prod)["addonProfiles"] == {"azurepolicy": {"enabled": True}}
    assignment = prod.named("platform-net-admin-policy").inputs
    assert assignment["policyDefinitionId"].endswith("/c26596ff-4d70-4e6a-9a30-c2506bd2f80c")
    assert assignment["scope"] == "platform-aks-id"
    parameters = {name: value["value"] for name, value in assignment["parameters"].items()}
    assert parameters["effect"] == "Deny"
    assert "NET_ADMIN" not in parameters["allowedCapabilities"]
    assert "NET_RAW" not in parameters["allowedCapabilities"]
    assert "NET_BIND_SERVICE" in parameters["allowedCapabilities"]
    assert {"istio-system", "kube-system", "kube-node-lease", "kube-public"} <= set(parameters["excludedNamespaces"])
    assert not {"shop", "payments", "checkout"} & set(parameters["excludedNamespaces"])


def test_dns_prefix_is_derived_within_azures_rules() -> None:
    from components.cluster import dns_prefix

    azure_rule = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,52}[A-Za-z0-9])?$")
    assert dns_prefix("aks-istio-dev") == "aks-istio-dev"
    assert dns_prefix("aks_prod") == "aks-prod"
    for name in ("a" * 53 + "_" + "b" * 9, "x" * 63, "team_a_cluster_" + "z" * 40):
        assert azure_rule.match(dns_prefix(name)), name


def test_entra_id_cluster_uses_azure_rbac_no_local_accounts_and_an_unattended_kubelogin() -> None:
    group = "11111111-2222-3333-4444-555555555555"
    config = {**stack_config("prod")}
    config["aks-istio:cluster"] = {
        **config["aks-istio:cluster"],
        "entraId": {"adminGroupObjectIds": [group], "loginMode": "workloadidentity"},
    }
    run = run_program("prod", config)
    inputs = cluster_inputs(run)
    assert inputs["aadProfile"] == {"managed": True, "enableAzureRBAC": True, "adminGroupObjectIDs": [group]}
    assert inputs["disableLocalAccounts"] is True
    (user,) = yaml.safe_load(run.outputs["kubeconfig"])["users"]
    args = user["user"]["exec"]["args"]
    assert args[args.index("--login") + 1] == "workloadidentity"  # AKS's device-code default needs a person
    assert "kubeconfig" in run.secret_outputs


def test_without_entra_id_the_cluster_keeps_its_own_credentials(runs: dict[str, ProgramRun]) -> None:
    inputs = cluster_inputs(runs["prod"])
    assert "aadProfile" not in inputs and inputs.get("disableLocalAccounts") is False
