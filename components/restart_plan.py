"""Which workloads a change of the Istio CNI setting has to restart, decided from plain API objects.

Every function here is pure: it reads pods and workloads as the Kubernetes API returns them (camelCase
JSON dicts) and never talks to a cluster, so the whole decision can be tested without one.

A pod needs re-injection when it carries an Istio sidecar whose traffic redirection does not match the
desired mode: with the CNI plugin, istiod injects an `istio-validation` init container; without it, an
`istio-init` init container that needs NET_ADMIN/NET_RAW. Pods are recreated by rolling their owning
workload, the way `kubectl rollout restart` does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
"""The annotation `kubectl rollout restart` sets on the pod template."""
FINGERPRINT_ANNOTATION = "aks-istio.dev/cni-fingerprint"
"""Records on the pod template which CNI setting the workload was last restarted for."""

SIDECAR_CONTAINER = "istio-proxy"
IPTABLES_INIT_CONTAINER = "istio-init"
CNI_VALIDATION_CONTAINER = "istio-validation"

ROLLABLE_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
"""Kinds whose pods are recreated by a change of the pod template."""


class Redirection(StrEnum):
    """How a pod's traffic is redirected into its sidecar, read from its init containers."""

    IPTABLES_INIT = IPTABLES_INIT_CONTAINER
    CNI = CNI_VALIDATION_CONTAINER
    NONE = "none"
    """No redirection set up in the pod (gateways, `interceptionMode: NONE`)."""


class SkipReason(StrEnum):
    """Why a workload with pods is left alone."""

    EXCLUDED_NAMESPACE = "excludedNamespace"
    NO_SIDECAR = "noSidecar"
    NO_REDIRECTION = "noRedirection"
    ALREADY_MATCHING = "alreadyMatching"
    ALREADY_RESTARTED = "alreadyRestarted"
    PAUSED = "paused"
    DELETED_BEFORE_RESTART = "deletedBeforeRestart"


class ManualReason(StrEnum):
    """Why pods that need re-injection cannot be recreated by rolling an owner."""

    BARE_POD = "barePod"
    JOB = "job"
    REPLICASET_WITHOUT_DEPLOYMENT = "replicaSetWithoutDeployment"
    ON_DELETE_STRATEGY = "onDeleteUpdateStrategy"
    OWNER_NOT_FOUND = "ownerNotFound"
    UNSUPPORTED_OWNER = "unsupportedOwner"


@dataclass(frozen=True, order=True)
class WorkloadRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class RestartPlan:
    fingerprint: str
    restart: tuple[WorkloadRef, ...]
    """Workloads to roll, sorted."""
    skipped: Mapping[WorkloadRef, SkipReason] = field(default_factory=dict)
    manual: Mapping[WorkloadRef, ManualReason] = field(default_factory=dict)


def cni_fingerprint(enabled: bool, exclude_namespaces: Iterable[str]) -> str:
    """A short stable hash of the CNI setting; the order and repetition of namespaces do not matter."""
    canonical = json.dumps({"enabled": enabled, "excludeNamespaces": sorted(set(exclude_namespaces))})
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def desired_redirection(cni_enabled: bool) -> Redirection:
    return Redirection.CNI if cni_enabled else Redirection.IPTABLES_INIT


def _containers(pod: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return list((pod.get("spec") or {}).get(key) or [])


def has_sidecar(pod: Mapping[str, Any]) -> bool:
    """An `istio-proxy` container, or its native-sidecar form: an init container with `restartPolicy: Always`."""
    if any(c.get("name") == SIDECAR_CONTAINER for c in _containers(pod, "containers")):
        return True
    return any(
        c.get("name") == SIDECAR_CONTAINER and c.get("restartPolicy") == "Always"
        for c in _containers(pod, "initContainers")
    )


def redirection(pod: Mapping[str, Any]) -> Redirection:
    names = {c.get("name") for c in _containers(pod, "initContainers")}
    if IPTABLES_INIT_CONTAINER in names:
        return Redirection.IPTABLES_INIT
    if CNI_VALIDATION_CONTAINER in names:
        return Redirection.CNI
    return Redirection.NONE


def is_active(pod: Mapping[str, Any]) -> bool:
    """Pods that run or will run: finished pods and pods being deleted are not re-injected."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def ref_of(kind: str, obj: Mapping[str, Any]) -> WorkloadRef:
    meta = _meta(obj)
    return WorkloadRef(kind, str(meta.get("namespace", "")), str(meta.get("name", "")))


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for owner in _meta(obj).get("ownerReferences") or []:
        if owner.get("controller"):
            found: Mapping[str, Any] = owner
            return found
    return None


def resolve_owner(pod: Mapping[str, Any], replicasets: Mapping[tuple[str, str], Mapping[str, Any]]) -> WorkloadRef:
    """The object a pod is recreated through: Pod -> ReplicaSet -> Deployment, or its direct controller.

    Returns the pod itself for a bare pod, and the ReplicaSet when no Deployment controls it.
    """
    namespace = str(_meta(pod).get("namespace", ""))
    owner = controller_of(pod)
    if owner is None:
        return ref_of("Pod", pod)
    kind, name = str(owner.get("kind", "")), str(owner.get("name", ""))
    if kind == "ReplicaSet":
        replicaset = replicasets.get((namespace, name))
        rs_owner = controller_of(replicaset) if replicaset is not None else None
        if rs_owner is not None and rs_owner.get("kind") == "Deployment":
            return WorkloadRef("Deployment", namespace, str(rs_owner.get("name", "")))
    return WorkloadRef(kind, namespace, name)


def template_annotations(workload: Mapping[str, Any]) -> Mapping[str, str]:
    template = (workload.get("spec") or {}).get("template") or {}
    annotations: Mapping[str, str] = (template.get("metadata") or {}).get("annotations") or {}
    return annotations


def is_paused(workload: Mapping[str, Any]) -> bool:
    return bool((workload.get("spec") or {}).get("paused"))


def rolls_on_template_change(workload: Mapping[str, Any]) -> bool:
    """StatefulSets and DaemonSets with `updateStrategy: OnDelete` keep their pods on a template change."""
    strategy = (workload.get("spec") or {}).get("updateStrategy") or {}
    return strategy.get("type") != "OnDelete"


def _manual_reason(owner: WorkloadRef) -> ManualReason:
    if owner.kind == "Pod":
        return ManualReason.BARE_POD
    if owner.kind == "Job":
        return ManualReason.JOB
    if owner.kind == "ReplicaSet":
        return ManualReason.REPLICASET_WITHOUT_DEPLOYMENT
    return ManualReason.UNSUPPORTED_OWNER


@dataclass
class _OwnerPods:
    """What the active pods of one owner look like, aggregated over all of them."""

    sidecar: bool = False
    redirected: bool = False
    mismatched: bool = False


def plan_restart(
    *,
    pods: Iterable[Mapping[str, Any]],
    replicasets: Iterable[Mapping[str, Any]],
    workloads: Iterable[tuple[str, Mapping[str, Any]]],
    cni_enabled: bool,
    exclude_namespaces: Iterable[str],
) -> RestartPlan:
    """Decide, for every owner of an active pod, whether to restart it, skip it (and why) or leave it to a person.

    `workloads` are `(kind, object)` pairs of Deployments, StatefulSets and DaemonSets.
    """
    excluded = set(exclude_namespaces)
    fingerprint = cni_fingerprint(cni_enabled, excluded)
    wanted = desired_redirection(cni_enabled)
    replicaset_index = {(ref.namespace, ref.name): rs for rs in replicasets for ref in [ref_of("ReplicaSet", rs)]}
    workload_index = {ref_of(kind, obj): obj for kind, obj in workloads}

    owners: dict[WorkloadRef, _OwnerPods] = {}
    for pod in pods:
        if not is_active(pod):
            continue
        state = owners.setdefault(resolve_owner(pod, replicaset_index), _OwnerPods())
        if not has_sidecar(pod):
            continue
        state.sidecar = True
        mode = redirection(pod)
        if mode is not Redirection.NONE:
            state.redirected = True
            state.mismatched = state.mismatched or mode is not wanted

    restart: list[WorkloadRef] = []
    skipped: dict[WorkloadRef, SkipReason] = {}
    manual: dict[WorkloadRef, ManualReason] = {}
    for owner, state in owners.items():
        if owner.namespace in excluded:
            skipped[owner] = SkipReason.EXCLUDED_NAMESPACE
        elif not state.sidecar:
            skipped[owner] = SkipReason.NO_SIDECAR
        elif not state.redirected:
            skipped[owner] = SkipReason.NO_REDIRECTION
        elif not state.mismatched:
            skipped[owner] = SkipReason.ALREADY_MATCHING
        elif owner.kind not in ROLLABLE_KINDS:
            manual[owner] = _manual_reason(owner)
        elif (workload := workload_index.get(owner)) is None:
            manual[owner] = ManualReason.OWNER_NOT_FOUND
        elif template_annotations(workload).get(FINGERPRINT_ANNOTATION) == fingerprint:
            skipped[owner] = SkipReason.ALREADY_RESTARTED
        elif is_paused(workload):
            skipped[owner] = SkipReason.PAUSED
        elif not rolls_on_template_change(workload):
            manual[owner] = ManualReason.ON_DELETE_STRATEGY
        else:
            restart.append(owner)
    return RestartPlan(fingerprint=fingerprint, restart=tuple(sorted(restart)), skipped=skipped, manual=manual)


def group_by_reason(entries: Mapping[WorkloadRef, StrEnum]) -> dict[str, list[str]]:
    """`{reason: ["Kind/namespace/name", ...]}`, sorted, the shape reported in the resource's outputs."""
    grouped: dict[str, list[str]] = {}
    for ref in sorted(entries):
        grouped.setdefault(str(entries[ref]), []).append(str(ref))
    return dict(sorted(grouped.items()))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def restart_patch(fingerprint: str, restarted_at: str) -> dict[str, Any]:
    """The strategic-merge patch of `kubectl rollout restart`, plus the fingerprint it was made for.

    Both annotations travel in the one PATCH, so a workload is restarted and recorded as restarted at
    once: a later run for the same setting skips it even if this run fails afterwards.
    """
    annotations = {RESTARTED_AT_ANNOTATION: restarted_at, FINGERPRINT_ANNOTATION: fingerprint}
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def rollout_complete(kind: str, workload: Mapping[str, Any], min_generation: int) -> bool:
    """Whether the rollout started by a patch that produced `min_generation` has finished.

    Mirrors `kubectl rollout status`: the controller has seen the new generation, every replica runs
    the new template and is available, and no old replica is left.
    """
    meta, spec, status = _meta(workload), workload.get("spec") or {}, workload.get("status") or {}
    generation = int(meta.get("generation") or 0)
    if generation < min_generation or int(status.get("observedGeneration") or 0) < generation:
        return False
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        return (
            int(status.get("updatedNumberScheduled") or 0) >= desired
            and int(status.get("numberAvailable") or 0) >= desired
        )
    replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if kind == "Deployment":
        current = int(status.get("replicas") or 0)
        return updated >= replicas and current <= updated and available >= updated
    return updated >= replicas and available >= replicas


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only what planning reads, so a cluster's worth of pods fits in little memory."""
    meta, spec = _meta(pod), pod.get("spec") or {}
    return {
        "metadata": {
            key: meta[key] for key in ("name", "namespace", "ownerReferences", "deletionTimestamp") if key in meta
        },
        "spec": {
            "containers": [{"name": c.get("name")} for c in spec.get("containers") or []],
            "initContainers": [
                {"name": c.get("name"), "restartPolicy": c.get("restartPolicy")}
                for c in spec.get("initContainers") or []
            ],
        },
        "status": {"phase": (pod.get("status") or {}).get("phase")},
    }


def slim_workload(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Keep what planning and rollout tracking read: identity, owners, pause, strategy, our annotations."""
    meta, spec = _meta(obj), obj.get("spec") or {}
    annotations = template_annotations(obj)
    return {
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "ownerReferences", "generation", "resourceVersion")
            if key in meta
        },
        "spec": {
            "replicas": spec.get("replicas"),
            "paused": spec.get("paused"),
            "updateStrategy": spec.get("updateStrategy"),
            "template": {
                "metadata": {
                    "annotations": {
                        key: annotations[key]
                        for key in (FINGERPRINT_ANNOTATION, RESTARTED_AT_ANNOTATION)
                        if key in annotations
                    }
                }
            },
        },
        "status": dict(obj.get("status") or {}),
    }
