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
KNOWN_OWNERS = {("apps", "ReplicaSet"), ("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"),
                ("batch", "Job")}  # fmt: skip
"""Owner kinds recognised by their API group as well as their kind: `apps.kruise.io` also has a StatefulSet."""
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
"""The Deployment controller names each ReplicaSet `<deployment>-<hash>` and labels its pods with the hash."""


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
    """Restarted by an earlier run for this same setting; its rollout was awaited and its pods now match."""
    RESTARTED_BUT_STILL_MISMATCHED = "restartedButStillMismatched"
    """Restarted by an earlier run for this same setting, pods still mismatched, and no wait was asked for."""
    PAUSED = "paused"
    DELETED_BEFORE_RESTART = "deletedBeforeRestart"


class ManualReason(StrEnum):
    """Why pods that need re-injection cannot be recreated by rolling an owner."""

    BARE_POD = "barePod"
    JOB = "job"
    REPLICASET_WITHOUT_DEPLOYMENT = "replicaSetWithoutDeployment"
    ON_DELETE_STRATEGY = "onDeleteUpdateStrategy"
    PARTITIONED_ROLLOUT = "partitionedRollout"
    """A StatefulSet with `rollingUpdate.partition > 0` only replaces the pods at or above the partition."""
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
    recheck: tuple[WorkloadRef, ...] = ()
    """Workloads an earlier run restarted for this same setting whose pods still mismatch, sorted.

    Not patched again (one change, one restart): their rollout may still be running, may be stuck, or
    istiod may have injected the new pods before it served the new setting. The caller waits for them
    and checks their pods, or reports them.
    """


def cni_fingerprint(enabled: bool, exclude_namespaces: Iterable[str]) -> str:
    """A short stable hash of the CNI setting; the order and repetition of namespaces do not matter.

    Without the CNI plugin its exclusion list has no effect, so every disabled setting hashes alike: a
    change of the list alone while the CNI stays off restarts nothing.
    """
    namespaces = sorted(set(exclude_namespaces)) if enabled else []
    canonical = json.dumps({"enabled": enabled, "excludeNamespaces": namespaces})
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


def is_running(pod: Mapping[str, Any]) -> bool:
    """Running and not being deleted: what a finished rollout leaves, without the old pods on their way out."""
    return is_active(pod) and (pod.get("status") or {}).get("phase") == "Running"


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


def owner_kind(owner: Mapping[str, Any]) -> str:
    """The owner's kind, qualified with its API group unless it is one we handle (`Rollout.argoproj.io`).

    Matching by kind alone would take an OpenKruise `StatefulSet` (group `apps.kruise.io`) for an `apps` one.
    """
    kind = str(owner.get("kind", ""))
    api_version = str(owner.get("apiVersion", ""))
    group = api_version.split("/")[0] if "/" in api_version else ""
    if not group or (group, kind) in KNOWN_OWNERS:
        return kind
    return f"{kind}.{group}"


MISSING_REPLICASET = "ReplicaSet (not found)"
"""The owner kind of a pod whose ReplicaSet was not listed (deleted in between)."""


def _deployment_by_hash(pod: Mapping[str, Any], replicaset_name: str) -> str | None:
    """The Deployment a ReplicaSet was named after, when the pod carries the matching template hash."""
    template_hash = str((_meta(pod).get("labels") or {}).get(POD_TEMPLATE_HASH_LABEL) or "")
    suffix = f"-{template_hash}"
    if template_hash and replicaset_name.endswith(suffix) and len(replicaset_name) > len(suffix):
        return replicaset_name[: -len(suffix)]
    return None


def resolve_owner(pod: Mapping[str, Any], replicasets: Mapping[tuple[str, str], Mapping[str, Any]]) -> WorkloadRef:
    """The object a pod is recreated through: Pod -> ReplicaSet -> Deployment, or its direct controller.

    Returns the pod itself for a bare pod, the ReplicaSet's own controller when it is not a Deployment
    (an Argo `Rollout.argoproj.io`, reported as unsupported), and the ReplicaSet when nothing controls it.
    A ReplicaSet missing from `replicasets` was created after they were listed (a rollout under way, or
    the one just awaited): the Deployment controller's naming rule names its Deployment, which the caller
    still has to find; without the rule's label it is `MISSING_REPLICASET`, never "without a Deployment".
    """
    namespace = str(_meta(pod).get("namespace", ""))
    owner = controller_of(pod)
    if owner is None:
        return ref_of("Pod", pod)
    kind, name = owner_kind(owner), str(owner.get("name", ""))
    if kind != "ReplicaSet":
        return WorkloadRef(kind, namespace, name)
    replicaset = replicasets.get((namespace, name))
    if replicaset is None:
        deployment = _deployment_by_hash(pod, name)
        if deployment is not None:
            return WorkloadRef("Deployment", namespace, deployment)
        return WorkloadRef(MISSING_REPLICASET, namespace, name)
    rs_owner = controller_of(replicaset)
    if rs_owner is None:
        return WorkloadRef("ReplicaSet", namespace, name)
    return WorkloadRef(owner_kind(rs_owner), namespace, str(rs_owner.get("name", "")))


def template_annotations(workload: Mapping[str, Any]) -> Mapping[str, str]:
    template = (workload.get("spec") or {}).get("template") or {}
    annotations: Mapping[str, str] = (template.get("metadata") or {}).get("annotations") or {}
    return annotations


def is_paused(workload: Mapping[str, Any]) -> bool:
    return bool((workload.get("spec") or {}).get("paused"))


def partition(workload: Mapping[str, Any]) -> int:
    """A StatefulSet's `rollingUpdate.partition`: only pods with an ordinal at or above it are replaced."""
    strategy = (workload.get("spec") or {}).get("updateStrategy") or {}
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def manual_strategy(workload: Mapping[str, Any]) -> ManualReason | None:
    """Why a template change would not replace all of the workload's pods, if it would not.

    `OnDelete` keeps every pod; a StatefulSet partition keeps the pods below it, and such a rollout
    never reaches all replicas.
    """
    strategy = (workload.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return ManualReason.ON_DELETE_STRATEGY
    if partition(workload) > 0:
        return ManualReason.PARTITIONED_ROLLOUT
    return None


def _manual_reason(owner: WorkloadRef) -> ManualReason:
    if owner.kind == "Pod":
        return ManualReason.BARE_POD
    if owner.kind == "Job":
        return ManualReason.JOB
    if owner.kind == "ReplicaSet":
        return ManualReason.REPLICASET_WITHOUT_DEPLOYMENT
    if owner.kind == MISSING_REPLICASET:
        return ManualReason.OWNER_NOT_FOUND
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
    recheck: list[WorkloadRef] = []
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
        elif is_paused(workload):
            skipped[owner] = SkipReason.PAUSED
        elif (reason := manual_strategy(workload)) is not None:
            manual[owner] = reason
        elif template_annotations(workload).get(FINGERPRINT_ANNOTATION) == fingerprint:
            recheck.append(owner)
        else:
            restart.append(owner)
    return RestartPlan(
        fingerprint=fingerprint,
        restart=tuple(sorted(restart)),
        skipped=skipped,
        manual=manual,
        recheck=tuple(sorted(recheck)),
    )


def mismatched_pods(
    *,
    pods: Iterable[Mapping[str, Any]],
    replicasets: Iterable[Mapping[str, Any]],
    owners: Iterable[WorkloadRef],
    cni_enabled: bool,
) -> dict[WorkloadRef, list[str]]:
    """After rollouts finished: the running pods of `owners` whose sidecar still has the wrong redirection.

    Pods being deleted or not running are left out: the old pods of a finished rollout are on their way
    out. What is left means istiod injected the new pods for the old setting.
    """
    wanted = desired_redirection(cni_enabled)
    watched = set(owners)
    replicaset_index = {(ref.namespace, ref.name): rs for rs in replicasets for ref in [ref_of("ReplicaSet", rs)]}
    found: dict[WorkloadRef, list[str]] = {}
    for pod in pods:
        if not is_running(pod) or not has_sidecar(pod) or redirection(pod) in (wanted, Redirection.NONE):
            continue
        owner = resolve_owner(pod, replicaset_index)
        if owner in watched:
            found.setdefault(owner, []).append(str(_meta(pod).get("name", "")))
    return {owner: sorted(names) for owner, names in sorted(found.items())}


def group_by_reason(entries: Mapping[WorkloadRef, StrEnum]) -> dict[str, list[str]]:
    """`{reason: ["Kind/namespace/name", ...]}`, sorted."""
    grouped: dict[str, list[str]] = {}
    for ref in sorted(entries):
        grouped.setdefault(str(entries[ref]), []).append(str(ref))
    return dict(sorted(grouped.items()))


SAMPLE_SIZE = 50
"""Names kept per reason in the `skipped` output: `noSidecar` alone can name every pod owner of a cluster."""


def summarize(grouped: Mapping[str, list[str]], limit: int = SAMPLE_SIZE) -> dict[str, dict[str, Any]]:
    """`{reason: {"count": n, "workloads": [the first `limit` names]}}`: bounded, whatever the cluster's size."""
    return {reason: {"count": len(names), "workloads": list(names[:limit])} for reason, names in grouped.items()}


def name_list(refs: Iterable[object], limit: int = 20) -> str:
    """`a, b, c and 7 more`: names for a message, bounded."""
    names = [str(ref) for ref in refs]
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def restart_patch(fingerprint: str, restarted_at: str) -> dict[str, Any]:
    """The strategic-merge patch of `kubectl rollout restart`, plus the fingerprint it was made for.

    Both annotations travel in the one PATCH, so a workload is restarted and recorded as restarted at
    once: a later run for the same setting skips it even if this run fails afterwards.
    """
    annotations = {RESTARTED_AT_ANNOTATION: restarted_at, FINGERPRINT_ANNOTATION: fingerprint}
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def _observed(workload: Mapping[str, Any], min_generation: int) -> bool:
    """The controller has seen a generation at least as new as the one the patch produced."""
    generation = int(_meta(workload).get("generation") or 0)
    observed = int((workload.get("status") or {}).get("observedGeneration") or 0)
    return generation >= min_generation and observed >= generation


def rollout_complete(kind: str, workload: Mapping[str, Any], min_generation: int) -> bool:
    """Whether the rollout started by a patch that produced `min_generation` has finished.

    Mirrors `kubectl rollout status`: the controller has seen the new generation, every replica runs
    the new template and is available, and no old replica is left.
    """
    if not _observed(workload, min_generation):
        return False
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        return (
            int(status.get("updatedNumberScheduled") or 0) >= desired
            and int(status.get("numberAvailable") or 0) >= desired
        )
    replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
    updated = int(status.get("updatedReplicas") or 0)
    if kind == "Deployment":
        current = int(status.get("replicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        return updated >= replicas and current <= updated and available >= updated
    return _statefulset_complete(workload, replicas, updated)


def _statefulset_complete(workload: Mapping[str, Any], replicas: int, updated: int) -> bool:
    """kubectl's rule: all replicas ready; with a partition, the pods above it updated; else one revision."""
    status = workload.get("status") or {}
    if int(status.get("readyReplicas") or 0) < replicas:
        return False
    keep = partition(workload)
    if keep > 0:
        return updated >= replicas - keep
    current, target = status.get("currentRevision"), status.get("updateRevision")
    if current and target:
        return bool(current == target)
    # Controllers that report no revisions: every replica carries the new template.
    return updated >= replicas


def rollout_failure(kind: str, workload: Mapping[str, Any], min_generation: int) -> str | None:
    """Why the rollout will not finish by itself, as `kubectl rollout status` gives up on it; else None.

    A Deployment whose `Progressing` condition says `ProgressDeadlineExceeded` has stopped trying.
    """
    if kind != "Deployment" or not _observed(workload, min_generation):
        return None
    for condition in (workload.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return str(condition.get("message") or "ProgressDeadlineExceeded")
    return None


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only what planning reads, so a cluster's worth of pods fits in little memory."""
    meta, spec = _meta(pod), pod.get("spec") or {}
    return {
        "metadata": {
            **{key: meta[key] for key in ("name", "namespace", "ownerReferences", "deletionTimestamp") if key in meta},
            "labels": {
                key: value for key, value in (meta.get("labels") or {}).items() if key == POD_TEMPLATE_HASH_LABEL
            },
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
