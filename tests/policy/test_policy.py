"""The NET_ADMIN guard policy pack: each rule on passing and failing resources.

Rules are called as the pack calls them, with pulumi_policy's own argument objects and the
engine's read-only property proxies; later tests start the pack the way the Pulumi CLI does and
talk to it over the analyzer gRPC protocol. The last ones run the whole pack over the resources
the platform program itself declares (each committed stack, and the CNI switched off), with and
without the committed `policy/config.cni-off.json`.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from offline.engine import ProgramRun, available_stacks, reveal, run_program, stack_config
from offline.policy_check import pack_violations as offline_pack_violations
from policy.net_admin_guard import POLICIES, SYSTEM_NAMESPACES, chart_name, workload_kind
from settings.model import SYSTEM_NAMESPACES as PLATFORM_SYSTEM_NAMESPACES

REPO_ROOT = Path(__file__).resolve().parents[2]
CNI_OFF_CONFIG = REPO_ROOT / "policy" / "config.cni-off.json"
UNKNOWN_ARRAY = "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2"  # the engine's sentinel for an unknown list

NET_ADMIN_POLICY = "no-net-admin-outside-system-namespaces"
CNI_POLICY = "istio-cni-with-system-namespaces-excluded"
POD_SECURITY_POLICY = "mesh-namespaces-enforce-pod-security-baseline"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def policy_named(name: str) -> ResourceValidationPolicy | StackValidationPolicy:
    return next(policy for policy in POLICIES if policy.name == name)


def urn(resource_type: str, name: str) -> str:
    return f"urn:pulumi:dev::aks-istio::{resource_type}::{name}"


def options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def validate_resource(
    policy_name: str,
    resource_type: str,
    props: Mapping[str, Any],
    *,
    name: str = "web",
    provider_namespace: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> list[str]:
    """Run one resource policy on one resource; the violations' messages."""
    provider = None
    if provider_namespace is not None:
        provider = PolicyProviderResource(
            "pulumi:providers:kubernetes",
            unknown_checking_proxy({"namespace": provider_namespace}),
            urn("pulumi:providers:kubernetes", "cluster"),
            "cluster",
        )
    args = ResourceValidationArgs(
        resource_type,
        unknown_checking_proxy(copy.deepcopy(dict(props))),
        urn(resource_type, name),
        name,
        options(),
        provider,
        config,
    )
    violations: list[str] = []
    policy = policy_named(policy_name)
    assert isinstance(policy, ResourceValidationPolicy)
    policy.validate(args, lambda message, _urn=None: violations.append(message))
    return violations


def net_admin_violations(props: Mapping[str, Any], resource_type: str = DEPLOYMENT, **kwargs: Any) -> list[str]:
    return validate_resource(NET_ADMIN_POLICY, resource_type, props, **kwargs)


def validate_stack(resources: list[tuple[str, str, Mapping[str, Any]]]) -> list[tuple[str, str | None]]:
    """Run the stack policy on (type, name, props) resources; the violations' (message, urn)."""
    stack_resources = [
        PolicyResource(
            resource_type,
            unknown_checking_proxy(copy.deepcopy(dict(props))),
            urn(resource_type, name),
            name,
            options(),
            None,
            None,
            [],
            {},
        )
        for resource_type, name, props in resources
    ]
    violations: list[tuple[str, str | None]] = []
    policy = policy_named(CNI_POLICY)
    assert isinstance(policy, StackValidationPolicy)
    policy.validate(StackValidationArgs(stack_resources), lambda message, at=None: violations.append((message, at)))
    return violations


# --- pod specs as an app stack declares them ---------------------------------------------------
# The workload rule sees only what a stack declares: an app's own containers (an init container
# that edits iptables, a debugging tool). It never sees what istiod's webhook injects at admission.

APP_CONTAINER = {"name": "web", "image": "nginxinc/nginx-unprivileged:1.27-alpine"}
NET_ADMIN_INIT = {  # an app's own traffic setup, the way `istio-init` does it without the CNI
    "name": "setup-iptables",
    "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
}
RESTRICTED_INIT = {"name": "migrate", "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}}
SIDE_CONTAINER = {"name": "log-shipper", "securityContext": {"capabilities": {"drop": ["ALL"]}}}


def deployment(
    namespace: str | None, init_containers: list[dict[str, Any]], containers: list[dict[str, Any]]
) -> dict[str, Any]:
    metadata = {"name": "web"} if namespace is None else {"name": "web", "namespace": namespace}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {"template": {"spec": {"initContainers": init_containers, "containers": containers}}},
    }


APP_WITH_NET_ADMIN = deployment("shop", [NET_ADMIN_INIT], [APP_CONTAINER, SIDE_CONTAINER])
APP_WITHOUT_CAPABILITIES = deployment("shop", [RESTRICTED_INIT], [APP_CONTAINER, SIDE_CONTAINER])


def with_pod_spec(kind: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    metadata = {"name": "web", "namespace": "shop"}
    template = {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}
    if kind == "Pod":
        return {"metadata": metadata, "spec": pod_spec}
    if kind == "CronJob":
        return {"metadata": metadata, "spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": template}}}}
    return {"metadata": metadata, "spec": {"template": template}}


WORKLOAD_TYPES = [
    "kubernetes:core/v1:Pod",
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:ReplicaSet",
    "kubernetes:batch/v1:Job",
    "kubernetes:batch/v1:CronJob",
]


# --- rule 1: NET_ADMIN / NET_RAW ------------------------------------------------------------------


def test_system_namespaces_are_the_platforms() -> None:
    assert SYSTEM_NAMESPACES == PLATFORM_SYSTEM_NAMESPACES


def test_a_declared_init_container_adding_net_admin_is_refused() -> None:
    violations = net_admin_violations(APP_WITH_NET_ADMIN)

    assert len(violations) == 1
    assert "Deployment 'web' in namespace 'shop'" in violations[0]
    assert "initContainers entry 'setup-iptables' adds NET_ADMIN, NET_RAW" in violations[0]
    assert "istio-init" not in violations[0]  # the rule cannot see injected containers; it says so nowhere


def test_a_declared_workload_without_added_capabilities_passes() -> None:
    assert net_admin_violations(APP_WITHOUT_CAPABILITIES) == []


@pytest.mark.parametrize("namespace", SYSTEM_NAMESPACES)
def test_system_namespaces_may_add_net_admin(namespace: str) -> None:
    node_agent = deployment(namespace, [], [NET_ADMIN_INIT])
    assert net_admin_violations(node_agent, "kubernetes:apps/v1:DaemonSet") == []


@pytest.mark.parametrize("resource_type", WORKLOAD_TYPES)
def test_every_workload_kind_is_checked_in_containers_and_init_containers(resource_type: str) -> None:
    kind = resource_type.rpartition(":")[2]
    net_raw = {"name": "pinger", "securityContext": {"capabilities": {"add": ["NET_RAW"]}}}

    in_container = net_admin_violations(with_pod_spec(kind, {"containers": [net_raw]}), resource_type)
    in_init = net_admin_violations(
        with_pod_spec(kind, {"initContainers": [net_raw], "containers": [APP_CONTAINER]}), resource_type
    )
    clean = net_admin_violations(with_pod_spec(kind, {"containers": [APP_CONTAINER]}), resource_type)

    assert [f"{kind} 'web'" in message and "adds NET_RAW" in message for message in in_container] == [True]
    assert ["initContainers entry 'pinger'" in message for message in in_init] == [True]
    assert clean == []


@pytest.mark.parametrize(
    ("capability", "reported"),
    [("net_admin", "NET_ADMIN"), ("CAP_NET_RAW", "NET_RAW"), ("ALL", "ALL")],
)
def test_other_spellings_of_the_capabilities_are_caught(capability: str, reported: str) -> None:
    container = {"name": "tool", "securityContext": {"capabilities": {"add": [capability, "CHOWN"]}}}
    violations = net_admin_violations(deployment("shop", [], [container]))

    assert len(violations) == 1 and f"adds {reported}." in violations[0]


def test_other_capabilities_pass() -> None:
    container = {"name": "tool", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}}
    assert net_admin_violations(deployment("shop", [], [container])) == []


def test_a_privileged_container_is_refused() -> None:
    container = {"name": "tool", "securityContext": {"privileged": True}}
    violations = net_admin_violations(deployment("shop", [], [container]))

    assert len(violations) == 1 and "is privileged" in violations[0]


def test_a_patch_of_a_workload_is_checked_too() -> None:
    violations = net_admin_violations(APP_WITH_NET_ADMIN, "kubernetes:apps/v1:DeploymentPatch")
    assert len(violations) == 1


def test_without_a_namespace_the_providers_default_namespace_decides() -> None:
    unnamespaced = deployment(None, [NET_ADMIN_INIT], [APP_CONTAINER])

    assert net_admin_violations(unnamespaced, provider_namespace="istio-system") == []
    assert "in namespace 'shop'" in net_admin_violations(unnamespaced, provider_namespace="shop")[0]
    assert "in namespace 'default'" in net_admin_violations(unnamespaced)[0]


def test_exempt_namespaces_come_from_the_policy_config() -> None:
    config = {"exemptNamespaces": ["kube-system", "shop"]}

    assert net_admin_violations(APP_WITH_NET_ADMIN, config=config) == []
    in_istio_system = deployment("istio-system", [NET_ADMIN_INIT], [])
    assert len(net_admin_violations(in_istio_system, config=config)) == 1


def test_containers_unknown_during_preview_are_not_passed_silently() -> None:
    props = {"metadata": {"namespace": "shop"}, "spec": {"template": {"spec": {"containers": UNKNOWN_ARRAY}}}}

    # The engine turns this into "can't run policy during preview"; it never counts as a pass.
    with pytest.raises(UnknownValueError):
        net_admin_violations(props)


@pytest.mark.parametrize(
    ("resource_type", "kind"),
    [
        ("kubernetes:apps/v1:Deployment", "Deployment"),
        ("kubernetes:batch/v1:CronJobPatch", "CronJob"),
        ("kubernetes:core/v1:ConfigMap", None),
        ("kubernetes:helm.sh/v3:Release", None),
        ("azure-native:containerservice:ManagedCluster", None),
    ],
)
def test_workload_kinds_are_read_from_the_type_token(resource_type: str, kind: str | None) -> None:
    assert workload_kind(resource_type) == kind


# --- rule 2: the Istio CNI and its exclusions -----------------------------------------------------

RELEASE = "kubernetes:helm.sh/v3:Release"
CHARTS = "https://istio-release.storage.googleapis.com/charts"


def release(chart: str, values: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    props = {
        "name": chart,
        "chart": chart,
        "version": "1.30.3",
        "namespace": "istio-system",
        "repositoryOpts": {"repo": CHARTS},
        "values": values,
    }
    return RELEASE, f"mesh-{chart}", props


BASE = release("base", {})
CNI = release("cni", {"excludeNamespaces": list(SYSTEM_NAMESPACES)})
ISTIOD_WITH_CNI = release("istiod", {"pilot": {"cni": {"enabled": True}}})


def test_istiod_with_cni_and_the_system_namespaces_excluded_passes() -> None:
    assert validate_stack([BASE, CNI, ISTIOD_WITH_CNI]) == []


@pytest.mark.parametrize("enabled", [False, "true", None])
def test_istiod_without_cni_is_refused(enabled: Any) -> None:
    pilot = {} if enabled is None else {"cni": {"enabled": enabled}}
    istiod = release("istiod", {"pilot": pilot})

    violations = validate_stack([BASE, CNI, istiod])

    assert len(violations) == 1
    message, at = violations[0]
    assert f"pilot.cni.enabled to {enabled!r}, not true" in message
    assert at == urn(RELEASE, "mesh-istiod")


def test_a_missing_cni_release_is_refused() -> None:
    violations = validate_stack([BASE, ISTIOD_WITH_CNI])
    assert len(violations) == 1 and "no release of the Istio `cni` chart" in violations[0][0]


def test_the_charts_default_exclusions_are_not_enough() -> None:
    chart_default = release("cni", {"excludeNamespaces": ["kube-system"]})

    violations = validate_stack([BASE, chart_default, ISTIOD_WITH_CNI])

    assert len(violations) == 1
    message, at = violations[0]
    assert "does not exclude istio-system, kube-node-lease, kube-public" in message
    assert at == urn(RELEASE, "mesh-cni")


def test_unset_exclusions_are_refused() -> None:
    violations = validate_stack([BASE, release("cni", {}), ISTIOD_WITH_CNI])
    assert len(violations) == 1 and "excludeNamespaces: unset" in violations[0][0]


def test_a_stack_without_istio_is_not_applicable() -> None:
    app = ("kubernetes:apps/v1:Deployment", "web", APP_WITHOUT_CAPABILITIES)
    with pytest.raises(_NotApplicableError):
        validate_stack([app])


@pytest.mark.parametrize(
    ("chart", "name"),
    [("istiod", "istiod"), ("istio/istiod", "istiod"), ("oci://registry.example/istio/cni", "cni"), (None, "")],
)
def test_chart_names_are_read_bare(chart: str | None, name: str) -> None:
    assert chart_name({"chart": chart}) == name


# --- rule 3 (advisory): Pod Security in mesh namespaces -------------------------------------------

NAMESPACE = "kubernetes:core/v1:Namespace"


def namespace(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "shop", "labels": labels}}


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_a_mesh_namespace_enforcing_baseline_or_restricted_passes(level: str) -> None:
    labels = {"istio-injection": "enabled", "pod-security.kubernetes.io/enforce": level}
    assert validate_resource(POD_SECURITY_POLICY, NAMESPACE, namespace(labels)) == []


@pytest.mark.parametrize(
    "labels",
    [
        {"istio-injection": "enabled"},
        {"istio-injection": "enabled", "pod-security.kubernetes.io/enforce": "privileged"},
        {"istio.io/rev": "1-30", "pod-security.kubernetes.io/warn": "baseline"},
    ],
)
def test_a_mesh_namespace_without_baseline_is_reported(labels: dict[str, str]) -> None:
    violations = validate_resource(POD_SECURITY_POLICY, NAMESPACE, namespace(labels))
    assert len(violations) == 1 and "mesh namespace 'shop'" in violations[0]


def test_namespaces_outside_the_mesh_are_left_alone() -> None:
    assert validate_resource(POD_SECURITY_POLICY, NAMESPACE, namespace({"istio-injection": "disabled"})) == []
    assert validate_resource(POD_SECURITY_POLICY, NAMESPACE, namespace({})) == []


def test_enforcement_levels() -> None:
    levels = {policy.name: policy.enforcement_level for policy in POLICIES}
    assert levels == {
        NET_ADMIN_POLICY: EnforcementLevel.MANDATORY,
        CNI_POLICY: EnforcementLevel.MANDATORY,
        POD_SECURITY_POLICY: EnforcementLevel.ADVISORY,
    }


# --- the pack as the Pulumi CLI runs it -----------------------------------------------------------


@contextmanager
def running_pack(errors: Path) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """Start `policy/` as the CLI's Python policy host does; it prints the port it serves on."""
    with errors.open("w") as stderr:
        pack = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(REPO_ROOT / "policy")],
            cwd=REPO_ROOT / "policy",
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert pack.stdout is not None
        port = pack.stdout.readline().strip()
        if not port.isdigit():
            pytest.fail(f"the policy pack did not start: {port!r}\n{errors.read_text()}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        pack.kill()
        pack.wait(timeout=10)
        if pack.stdout is not None:
            pack.stdout.close()


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    with running_pack(tmp_path_factory.mktemp("policy-pack") / "stderr") as stub:
        yield stub


def struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(props)
    return message


def test_the_pack_announces_its_policies(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)

    assert info.name == "aks-istio-net-admin-guard"
    assert [policy.name for policy in info.policies] == [NET_ADMIN_POLICY, CNI_POLICY, POD_SECURITY_POLICY]


def test_the_pack_refuses_a_declared_net_admin_container_over_grpc(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    resource_type = DEPLOYMENT
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type=resource_type, properties=struct(APP_WITH_NET_ADMIN), urn=urn(resource_type, "web"), name="web"
        ),
        timeout=10,
    )

    assert [(d.policyName, d.enforcementLevel) for d in response.diagnostics] == [
        (NET_ADMIN_POLICY, analyzer_pb2.MANDATORY)
    ]


def test_the_pack_passes_the_cni_install_over_grpc(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    resources = [
        analyzer_pb2.AnalyzerResource(
            type=resource_type, properties=struct(props), urn=urn(resource_type, name), name=name
        )
        for resource_type, name, props in (BASE, CNI, ISTIOD_WITH_CNI)
    ]
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources), timeout=10)

    assert list(response.diagnostics) == []


# --- the pack over the platform program's own resources -------------------------------------------
# What `pulumi preview --policy-pack policy` checks in this repository's CI: the resources the
# platform program declares for each committed stack (no workloads of its own: the rule on the
# Istio install is the one that bites here).


def platform_run(stack: str, *, preview: bool = False, **changes: dict[str, Any]) -> ProgramRun:
    """Run the platform program as `stack`, some config objects changed (keys without `aks-istio:`)."""
    config = copy.deepcopy(stack_config(stack))
    for name, change in changes.items():
        config[f"aks-istio:{name}"] = {**config.get(f"aks-istio:{name}", {}), **change}
    return run_program(stack, config, preview=preview)


def pack_violations(run: ProgramRun) -> list[tuple[str, EnforcementLevel, str]]:
    """Every policy of the pack over every resource of `run`, as the offline plan evaluates it."""
    return [(v.policy, EnforcementLevel(v.level), v.message) for v in offline_pack_violations(run)]


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
@pytest.mark.parametrize("stack", available_stacks())
def test_the_committed_stacks_pass_the_pack(stack: str, preview: bool) -> None:
    violations = pack_violations(platform_run(stack, preview=preview))

    assert [v for v in violations if v[1] == EnforcementLevel.MANDATORY] == []
    assert violations == []  # the advisory rule too: the mesh namespaces carry the baseline label


def test_a_stack_with_the_cni_off_fails_the_cni_rule() -> None:
    violations = pack_violations(platform_run("dev", istio={"cni": {"enabled": False}}))
    mandatory = [(name, message) for name, level, message in violations if level == EnforcementLevel.MANDATORY]

    assert {name for name, _ in mandatory} == {CNI_POLICY}
    assert any("pilot.cni.enabled to False, not true" in message for _, message in mandatory)
    assert any("no release of the Istio `cni` chart" in message for _, message in mandatory)


# --- the committed policy config for a deliberate CNI-off change -----------------------------------


def policy_config_as_the_cli_sends_it(path: Path) -> dict[str, analyzer_pb2.PolicyConfig]:
    """`--policy-pack-config <path>` as the CLI reads it: a level, or an object with `enforcementLevel`."""
    levels = {
        "advisory": analyzer_pb2.ADVISORY,
        "mandatory": analyzer_pb2.MANDATORY,
        "disabled": analyzer_pb2.DISABLED,
    }
    config: dict[str, analyzer_pb2.PolicyConfig] = {}
    for name, value in json.loads(path.read_text()).items():
        if isinstance(value, str):
            config[name] = analyzer_pb2.PolicyConfig(enforcementLevel=levels[value])
        else:
            properties = {key: item for key, item in value.items() if key != "enforcementLevel"}
            config[name] = analyzer_pb2.PolicyConfig(
                enforcementLevel=levels[value.get("enforcementLevel", "mandatory")], properties=struct(properties)
            )
    return config


def test_the_cni_off_config_disables_only_the_cni_rule() -> None:
    config = json.loads(CNI_OFF_CONFIG.read_text())

    # A renamed rule would make the file a silent no-op; every key must name a policy of the pack.
    assert config == {CNI_POLICY: "disabled"}
    assert {policy.name for policy in POLICIES} >= set(config)


def analyzer_resources(run: ProgramRun) -> list[analyzer_pb2.AnalyzerResource]:
    return [
        analyzer_pb2.AnalyzerResource(
            type=resource.type, properties=struct(reveal(resource.inputs)), urn=resource.urn, name=resource.name
        )
        for resource in run.resources
    ]


def test_with_the_cni_off_config_the_pack_passes_a_cni_off_stack_and_still_refuses_net_admin(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, tmp_path: Path
) -> None:
    cni_off = analyzer_resources(platform_run("dev", istio={"cni": {"enabled": False}}))
    net_admin = analyzer_pb2.AnalyzeRequest(
        type=DEPLOYMENT, properties=struct(APP_WITH_NET_ADMIN), urn=urn(DEPLOYMENT, "web"), name="web"
    )

    # Without the config (the module's pack): the CNI rule blocks the change.
    refused = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=cni_off), timeout=10)
    assert {(d.policyName, d.enforcementLevel) for d in refused.diagnostics} == {(CNI_POLICY, analyzer_pb2.MANDATORY)}

    with running_pack(tmp_path / "stderr") as configured:
        configured.Configure(
            analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=policy_config_as_the_cli_sends_it(CNI_OFF_CONFIG)),
            timeout=10,
        )
        passed = configured.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=cni_off), timeout=10)
        still_refused = configured.Analyze(net_admin, timeout=10)

    assert list(passed.diagnostics) == []
    assert [(d.policyName, d.enforcementLevel) for d in still_refused.diagnostics] == [
        (NET_ADMIN_POLICY, analyzer_pb2.MANDATORY)
    ]
