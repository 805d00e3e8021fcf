"""The NET_ADMIN guard: the rules that keep the network capabilities inside the mesh's own namespaces.

With the Istio CNI plugin, redirecting a pod's traffic needs no `istio-init` init container with
NET_ADMIN and NET_RAW: the capability lives in one DaemonSet in `istio-system`. These rules hold
the rest of the cluster to that:

- mandatory: no workload a stack declares outside the system namespaces adds NET_ADMIN or NET_RAW;
- mandatory: the Istio install has the CNI enabled and keeps the system namespaces out of it;
- advisory: mesh namespaces enforce Pod Security `baseline` (or `restricted`), which forbids both.

What a policy pack can see: the inputs of the resources a Pulumi program declares. The workload
rule therefore checks the Deployments, Pods, Jobs, ... that a stack declares itself, which in
practice are the app stacks' (attach the pack to them: `pulumi preview --policy-pack <path to
policy/>`). It cannot see the pods a Helm release renders inside the cluster, nor the containers
istiod's webhook adds at admission: `istio-init` never appears in any resource's inputs. What keeps
`istio-init` away is the stack rule on the Istio install (CNI on, so the webhook injects no
`istio-init`) and, in the cluster, Pod Security `baseline` and the optional Azure Policy assignment.

Rules are plain functions over pulumi_policy's argument objects, so tests can call them directly;
`__main__.py` only registers them. Importing this module has no side effects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

SYSTEM_NAMESPACES: tuple[str, ...] = ("istio-system", "kube-system", "kube-node-lease", "kube-public")
"""The namespaces that may hold network-privileged pods, and that the CNI plugin must leave alone."""

FORBIDDEN_CAPABILITIES = frozenset({"NET_ADMIN", "NET_RAW", "ALL"})
"""`ALL` grants NET_ADMIN and NET_RAW as well."""

# Where each workload kind keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

HELM_RELEASE_TYPES = frozenset({"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"})
ISTIOD_CHARTS = frozenset({"istiod"})
CNI_CHARTS = frozenset({"cni", "istio-cni"})  # `cni` in the chart repository, `istio-cni` in the source tree

NAMESPACE_TYPES = frozenset({"kubernetes:core/v1:Namespace", "kubernetes:core/v1:NamespacePatch"})
POD_SECURITY_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
LEVELS_WITHOUT_NET_ADMIN = frozenset({"baseline", "restricted"})


# --- rule 1: no NET_ADMIN / NET_RAW outside the system namespaces -------------------------------


def forbid_net_admin_outside_system_namespaces(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Mandatory: a workload declared outside the exempt namespaces may not add NET_ADMIN or NET_RAW.

    Only the pod spec in the resource's own inputs is read; see the module docstring for what that
    leaves to Pod Security and Azure Policy.
    """
    kind = workload_kind(args.resource_type)
    if kind is None:
        return
    namespace = resource_namespace(args)
    if namespace in exempt_namespaces(args.get_config()):
        return
    pod_spec = _at(args.props, POD_SPEC_PATHS[kind])
    for container_list, container in _containers(pod_spec):
        name = container.get("name", "?")
        added = sorted(forbidden_added_capabilities(container))
        if added:
            report_violation(
                f"{kind} {args.name!r} in namespace {namespace!r}: {container_list} entry {name!r} "
                f"adds {', '.join(added)}. Only {', '.join(SYSTEM_NAMESPACES)} may: with the Istio "
                "CNI plugin no workload in the mesh needs these capabilities, and Pod Security "
                "baseline refuses them.",
                None,
            )
        if _mapping(container.get("securityContext")).get("privileged") is True:
            report_violation(
                f"{kind} {args.name!r} in namespace {namespace!r}: {container_list} entry {name!r} "
                "is privileged, which grants NET_ADMIN and NET_RAW among all other capabilities.",
                None,
            )


def workload_kind(resource_type: str) -> str | None:
    """The workload kind of a pulumi-kubernetes type token, or None for anything else.

    `kubernetes:apps/v1:Deployment` and `kubernetes:apps/v1:DeploymentPatch` are both `Deployment`;
    any API version counts, so an older or newer one cannot slip past.
    """
    package, _, rest = resource_type.partition(":")
    if package != "kubernetes":
        return None
    kind = rest.rpartition(":")[2].removesuffix("Patch")
    return kind if kind in POD_SPEC_PATHS else None


def resource_namespace(args: ResourceValidationArgs) -> str:
    """Where the object lands: its own namespace, else its provider's default, else `default`."""
    namespace = _mapping(args.props.get("metadata")).get("namespace")
    if isinstance(namespace, str) and namespace:
        return namespace
    if args.provider is not None:
        provider_namespace = args.provider.props.get("namespace")
        if isinstance(provider_namespace, str) and provider_namespace:
            return provider_namespace
    return "default"


def exempt_namespaces(config: Mapping[str, Any]) -> frozenset[str]:
    configured = config.get("exemptNamespaces")
    if isinstance(configured, Sequence) and not isinstance(configured, str):
        return frozenset(str(namespace) for namespace in configured)
    return frozenset(SYSTEM_NAMESPACES)


def forbidden_added_capabilities(container: Mapping[str, Any]) -> set[str]:
    """The forbidden capabilities a container adds, spelled as Kubernetes spells them."""
    capabilities = _mapping(_mapping(container.get("securityContext")).get("capabilities"))
    added = {_capability_name(capability) for capability in _sequence(capabilities.get("add"))}
    return added & FORBIDDEN_CAPABILITIES


def _capability_name(capability: Any) -> str:
    # Container runtimes accept `net_admin` and `CAP_NET_ADMIN` alike, so both must be caught.
    return str(capability).strip().upper().removeprefix("CAP_")


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for container_list in CONTAINER_LISTS:
        for container in _sequence(pod_spec.get(container_list)):
            yield container_list, _mapping(container)


# --- rule 2: the Istio CNI is on, with the system namespaces excluded ---------------------------


def require_istio_cni_with_system_namespaces_excluded(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    """Mandatory: istiod runs with `pilot.cni.enabled` and a cni release excludes the system namespaces."""
    releases = [resource for resource in args.resources if resource.resource_type in HELM_RELEASE_TYPES]
    istiods = [release for release in releases if chart_name(release.props) in ISTIOD_CHARTS]
    if not istiods:
        args.not_applicable("the stack installs no istiod chart")
        return

    for istiod in istiods:
        cni_enabled = _at(_mapping(istiod.props.get("values")), ("pilot", "cni")).get("enabled")
        if cni_enabled is not True:
            report_violation(
                f"istiod release {_release_label(istiod)} sets pilot.cni.enabled to {cni_enabled!r}, "
                "not true: injected pods would get `istio-init` with NET_ADMIN and NET_RAW.",
                istiod.urn,
            )

    cnis = [release for release in releases if chart_name(release.props) in CNI_CHARTS]
    if not cnis:
        report_violation(
            "no release of the Istio `cni` chart: without the node agent, traffic redirection "
            "falls back to `istio-init` with NET_ADMIN and NET_RAW, or, with pilot.cni.enabled, "
            "injected pods wait for a CNI plugin that is not installed.",
            None,
        )
    for cni in cnis:
        excluded = set(_strings(_mapping(cni.props.get("values")).get("excludeNamespaces")))
        missing = [namespace for namespace in SYSTEM_NAMESPACES if namespace not in excluded]
        if missing:
            report_violation(
                f"cni release {_release_label(cni)} does not exclude {', '.join(missing)} "
                f"(excludeNamespaces: {', '.join(sorted(excluded)) or 'unset'}); the chart's own "
                "default is only kube-system, so the mesh's and the control plane's pods would be "
                "redirected by the plugin.",
                cni.urn,
            )


def chart_name(props: Mapping[str, Any]) -> str:
    """The chart's bare name, whether given as `istiod`, `istio/istiod` or an OCI reference."""
    chart = props.get("chart")
    return chart.rstrip("/").rpartition("/")[2] if isinstance(chart, str) else ""


def _release_label(release: PolicyResource) -> str:
    name = release.props.get("name")
    return repr(name) if isinstance(name, str) and name else repr(release.name)


# --- rule 3 (advisory): mesh namespaces enforce Pod Security baseline ---------------------------


def advise_pod_security_baseline_in_mesh_namespaces(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    """Advisory: a namespace with sidecar injection enforces `baseline` or `restricted`."""
    if args.resource_type not in NAMESPACE_TYPES:
        return
    metadata = _mapping(args.props.get("metadata"))
    labels = _mapping(metadata.get("labels"))
    if not is_mesh_namespace(labels):
        return
    level = labels.get(POD_SECURITY_ENFORCE_LABEL)
    if level not in LEVELS_WITHOUT_NET_ADMIN:
        name = metadata.get("name") or args.name
        report_violation(
            f"mesh namespace {name!r} enforces Pod Security {level or 'nothing'}; label it "
            f"{POD_SECURITY_ENFORCE_LABEL}=baseline so no pod there can add NET_ADMIN or NET_RAW "
            "(the Istio CNI plugin makes that possible).",
            None,
        )


def is_mesh_namespace(labels: Mapping[str, Any]) -> bool:
    """Sidecar injection by the default label or by a revision label."""
    return labels.get("istio-injection") == "enabled" or "istio.io/rev" in labels


# --- the policies, as the pack registers them ---------------------------------------------------

POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    ResourceValidationPolicy(
        name="no-net-admin-outside-system-namespaces",
        description="Workloads a stack declares outside istio-system and the kube-* namespaces may not add "
        "NET_ADMIN or NET_RAW.",
        validate=forbid_net_admin_outside_system_namespaces,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={
                "exemptNamespaces": {
                    "type": "array",
                    "items": {"type": "string"},
                    "default": list(SYSTEM_NAMESPACES),
                },
            }
        ),
    ),
    StackValidationPolicy(
        name="istio-cni-with-system-namespaces-excluded",
        description="Istio is installed with the CNI plugin enabled and the system namespaces excluded from it.",
        validate=require_istio_cni_with_system_namespaces_excluded,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="mesh-namespaces-enforce-pod-security-baseline",
        description="Namespaces with sidecar injection should enforce Pod Security baseline or restricted.",
        validate=advise_pod_security_baseline_in_mesh_namespaces,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]


# --- reading engine property bags ---------------------------------------------------------------
# The engine hands over read-only proxies (Mapping and Sequence, not dict and list) that raise
# UnknownValueError on values not known during preview; these helpers never bypass that.


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, Sequence) and not isinstance(value, str) else ()


def _strings(value: Any) -> list[str]:
    return [item for item in _sequence(value) if isinstance(item, str)]


def _at(props: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    for key in path:
        props = _mapping(props.get(key))
    return props
