"""Which workloads a change of the declared data plane has to restart, decided from plain API objects.

Every function here is pure: it reads pods and workloads as the Kubernetes API returns them (camelCase
JSON dicts) and never talks to a cluster, so the whole decision can be tested without one.

A pod needs re-injection when what it runs differs from what its namespace should run (`pod_mismatch`): a sidecar
in a namespace of ambient mode, or none in a sidecar namespace of the mesh (unless the pod opted out); and for a
sidecar, its traffic redirection (with the CNI plugin, istiod injects an `istio-validation` init container; without
it, an `istio-init` init container that needs NET_ADMIN/NET_RAW), the revision that injected it (the
`istio.io/rev` label: `default`, or a canary's such as `1-30-3`), its `istio-proxy` image, or HBONE once the mesh
runs ambient mode. Pods are recreated by rolling their owning workload, the way `kubectl rollout restart` does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from restart.objects import (
    FINGERPRINT_ANNOTATION,
    MISSING_REPLICASET,
    RESTARTED_AT_ANNOTATION,
    ROLLABLE_KINDS,
    Redirection,
    WorkloadRef,
    asks_for_sidecar,
    has_sidecar,
    is_active,
    is_captured,
    is_paused,
    is_running,
    left_out_of_ambient,
    metadata_of,
    partition,
    pod_revision,
    redirection,
    ref_of,
    resolve_owner,
    same_image,
    sidecar_image,
    sidecar_not_due,
    speaks_hbone,
    template_annotations,
)
from settings.data_plane import ControlPlane, DeclaredDataPlane
from settings.model import AMBIENT_MODE, DATAPLANE_MODE_LABEL, INJECTION_LABEL, REVISION_LABEL, SIDECAR_MODE


class SkipReason(StrEnum):
    """Why a workload with pods is left alone."""

    EXCLUDED_NAMESPACE = "excludedNamespace"
    NO_SIDECAR = "noSidecar"
    """Its active pods have no `istio-proxy`. Since the restart lists only the pods istiod labelled as injected
    (`restart.objects.MESH_POD_LABEL`), this names only a workload whose pods carry that label without a sidecar
    (a label copied into a pod template by hand); pods outside the mesh are not listed, so not reported."""
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


class RestartReason(StrEnum):
    """Why a workload is re-injected: what its pods run differs from the declared data plane."""

    REDIRECTION = "redirection"
    """`istio-init` where the CNI is wanted, or `istio-validation` where it is not."""
    PROXY_VERSION = "proxyVersion"
    """An `istio-proxy` image other than the one istiod injects now (an Istio upgrade, another hub or variant)."""
    REVISION = "revision"
    """Injected by another control plane than the namespace's (moved to or from the canary, promoted, rolled back)."""
    DATAPLANE_MODE = "dataplaneMode"
    """A sidecar in a namespace of ambient mode, or none in a sidecar namespace of the mesh (moved back from ambient,
    or new to the mesh), where the pod did not opt out (`sidecar.istio.io/inject: "false"`)."""
    HBONE = "hbone"
    """A sidecar injected before the mesh ran ambient mode's components: without HBONE it cannot reach ambient pods."""


@dataclass(frozen=True)
class RestartPlan:
    fingerprint: str
    restart: tuple[WorkloadRef, ...]
    """Workloads to roll, in order: the canary's namespaces first, then by namespace, kind and name."""
    skipped: Mapping[WorkloadRef, SkipReason] = field(default_factory=dict)
    manual: Mapping[WorkloadRef, ManualReason] = field(default_factory=dict)
    reasons: Mapping[WorkloadRef, tuple[RestartReason, ...]] = field(default_factory=dict)
    """Why each workload to restart (and to recheck) is re-injected."""
    stranded: Mapping[WorkloadRef, tuple[str, ...]] = field(default_factory=dict)
    """Workloads left with pods on a revision this update removes (a canary promoted or rolled back) that this run
    does not restart (a bare pod, a Job, a paused or excluded workload): they would lose their control plane.
    A revision this stack never deployed (a tenant's own label) strands nothing: it is not this stack's to remove."""
    recheck: tuple[WorkloadRef, ...] = ()
    """Workloads an earlier run restarted for this same setting whose pods still mismatch, sorted.

    Not patched again (one change, one restart): their rollout may still be running, may be stuck, or
    istiod may have injected the new pods before it served the new setting. The caller waits for them
    and checks their pods, or reports them.
    """


def fingerprint(data_plane: DeclaredDataPlane) -> str:
    """A short stable hash of the declared data plane (`DeclaredDataPlane.describe`).

    A contract with running clusters: every restart records it on the workloads it patches
    (`FINGERPRINT_ANNOTATION`), and a re-run of the same change recognises them by it, so it never restarts one
    twice (resumability). Keep its format: a new one would restart every workload once more. Every setting with
    the CNI off hashes alike whatever its exclusions, so changing the list alone restarts nothing.
    """
    return hashlib.sha256(json.dumps(data_plane.describe()).encode()).hexdigest()[:16]


def mismatch(
    pod: Mapping[str, Any], wanted: Redirection, acceptable: tuple[ControlPlane, ...]
) -> tuple[RestartReason, ...]:
    """How a sidecar pod differs from the data planes its namespace may run (empty: it matches one, or has no
    redirection). `acceptable` is never empty; its first plane is the one a mismatched pod is compared with."""
    mode = redirection(pod)
    if mode is Redirection.NONE:
        return ()
    reasons: list[RestartReason] = []
    if mode is not wanted:
        reasons.append(RestartReason.REDIRECTION)
    revision = pod_revision(pod)
    # A pod injected before istiod labelled its pods carries no revision: the image decides then.
    candidates = acceptable if revision is None else tuple(p for p in acceptable if p.revision == revision)
    if not candidates:
        reasons.append(RestartReason.REVISION)
        candidates = acceptable[:1]
    image = sidecar_image(pod) or ""
    if all(plane.proxy_image and not same_image(image, plane.proxy_image) for plane in candidates):
        reasons.append(RestartReason.PROXY_VERSION)
    return tuple(sorted(reasons))


def pod_mismatch(
    pod: Mapping[str, Any], data_plane: DeclaredDataPlane, sidecar: bool | None = None
) -> tuple[RestartReason, ...]:
    """How a pod differs from what its namespace should run (empty: it matches, or it is not compared).

    A pod's own `sidecar.istio.io/inject` wins over its namespace's mode, as it does for istiod's webhook: `"false"`
    keeps it without a sidecar in a sidecar namespace, `"true"` gets it one in an ambient namespace (compared then as
    any sidecar). A sidecar without redirection (a gateway) is not compared. `sidecar`: `has_sidecar(pod)`, when the
    caller knows it already.
    """
    namespace = str(metadata_of(pod).get("namespace", ""))
    mode = data_plane.mode(namespace)
    if not (has_sidecar(pod) if sidecar is None else sidecar):
        due = mode == SIDECAR_MODE and not sidecar_not_due(pod)
        return (RestartReason.DATAPLANE_MODE,) if due else ()
    if mode == AMBIENT_MODE and not asks_for_sidecar(pod):
        return (RestartReason.DATAPLANE_MODE,)
    reasons = mismatch(pod, desired_redirection(data_plane.cni_enabled), data_plane.acceptable(namespace))
    if data_plane.hbone and not speaks_hbone(pod) and redirection(pod) is not Redirection.NONE:
        return tuple(sorted((*reasons, RestartReason.HBONE)))
    return reasons


def not_captured(pod: Mapping[str, Any], data_plane: DeclaredDataPlane) -> bool:
    """A pod of an ambient namespace, without a sidecar, that ztunnel has not captured (nor was meant to)."""
    namespace = str(metadata_of(pod).get("namespace", ""))
    return (
        data_plane.mode(namespace) == AMBIENT_MODE
        and not has_sidecar(pod)
        and not left_out_of_ambient(pod)
        and not is_captured(pod)
    )


def desired_redirection(cni_enabled: bool) -> Redirection:
    return Redirection.CNI if cni_enabled else Redirection.IPTABLES_INIT


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
    """One of its pods has a sidecar, or should have one (its namespace runs sidecars)."""
    compared: bool = False
    """One of its pods is compared with the declaration: redirected by its sidecar, or due a change of mode."""
    reasons: set[RestartReason] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    """Revisions of its pods that this update removes: once their istiod is deleted, they are gone."""


def plan_restart(
    data_plane: DeclaredDataPlane,
    *,
    pods: Iterable[Mapping[str, Any]],
    replicasets: Iterable[Mapping[str, Any]],
    workloads: Iterable[tuple[str, Mapping[str, Any]]],
    removing: frozenset[str] = frozenset(),
) -> RestartPlan:
    """Decide, for every owner of an active pod, whether to restart it, skip it (and why) or leave it to a person.

    `workloads` are `(kind, object)` pairs of Deployments, StatefulSets and DaemonSets; `removing` the revisions
    this update removes (`RestartRequest.removing`). The workloads to restart come in rollout order: the canary's
    namespaces first (a bad canary shows on them), then namespace by namespace.
    """
    excluded = data_plane.exclude_namespaces
    replicaset_index = {(ref.namespace, ref.name): rs for rs in replicasets for ref in [ref_of("ReplicaSet", rs)]}
    workload_index = {ref_of(kind, obj): obj for kind, obj in workloads}

    declared_fingerprint = fingerprint(data_plane)
    owners: dict[WorkloadRef, _OwnerPods] = {}
    for pod in pods:
        if not is_active(pod):
            continue
        state = owners.setdefault(resolve_owner(pod, replicaset_index), _OwnerPods())
        sidecar = has_sidecar(pod)
        reasons = pod_mismatch(pod, data_plane, sidecar)
        if sidecar:
            state.sidecar = True
            revision = pod_revision(pod)
            if revision in removing:
                state.removed.add(revision)
            state.compared = state.compared or bool(reasons) or redirection(pod) is not Redirection.NONE
        elif reasons:
            state.sidecar = state.compared = True
        state.reasons.update(reasons)

    restart: list[WorkloadRef] = []
    recheck: list[WorkloadRef] = []
    skipped: dict[WorkloadRef, SkipReason] = {}
    manual: dict[WorkloadRef, ManualReason] = {}
    for owner, state in owners.items():
        if owner.namespace in excluded:
            skipped[owner] = SkipReason.EXCLUDED_NAMESPACE
        elif not state.sidecar:
            skipped[owner] = SkipReason.NO_SIDECAR
        elif not state.compared:
            skipped[owner] = SkipReason.NO_REDIRECTION
        elif not state.reasons:
            skipped[owner] = SkipReason.ALREADY_MATCHING
        elif owner.kind not in ROLLABLE_KINDS:
            manual[owner] = _manual_reason(owner)
        elif (workload := workload_index.get(owner)) is None:
            manual[owner] = ManualReason.OWNER_NOT_FOUND
        elif is_paused(workload):
            skipped[owner] = SkipReason.PAUSED
        elif (reason := manual_strategy(workload)) is not None:
            manual[owner] = reason
        elif template_annotations(workload).get(FINGERPRINT_ANNOTATION) == declared_fingerprint:
            recheck.append(owner)
        else:
            restart.append(owner)
    moving = set(restart) | set(recheck)
    return RestartPlan(
        fingerprint=declared_fingerprint,
        restart=tuple(sorted(restart, key=lambda ref: _rollout_order(ref, data_plane))),
        skipped=skipped,
        manual=manual,
        reasons={owner: tuple(sorted(owners[owner].reasons)) for owner in (*restart, *recheck)},
        recheck=tuple(sorted(recheck)),
        stranded={
            owner: tuple(sorted(state.removed))
            for owner, state in sorted(owners.items())
            # Excluded namespaces are left alone entirely, as for every other reason.
            if state.removed and owner not in moving and owner.namespace not in excluded
        },
    )


def _rollout_order(ref: WorkloadRef, data_plane: DeclaredDataPlane) -> tuple[bool, str, str, str]:
    """The canary's namespaces first, then namespace by namespace (kind and name within one)."""
    return (ref.namespace not in data_plane.canary_namespaces, ref.namespace, ref.kind, ref.name)


def mismatched_pods(
    data_plane: DeclaredDataPlane,
    *,
    pods: Iterable[Mapping[str, Any]],
    replicasets: Iterable[Mapping[str, Any]],
    owners: Iterable[WorkloadRef],
) -> dict[WorkloadRef, list[str]]:
    """After rollouts finished: the running pods of `owners` that still differ from the declared data plane, or
    that ztunnel did not capture in an ambient namespace.

    Pods being deleted or not running are left out: the old pods of a finished rollout are on their way
    out. What is left means istiod injected the new pods for the old setting, or the CNI node agent did not
    capture them.
    """
    watched = set(owners)
    replicaset_index = {(ref.namespace, ref.name): rs for rs in replicasets for ref in [ref_of("ReplicaSet", rs)]}
    found: dict[WorkloadRef, list[str]] = {}
    for pod in pods:
        if not is_running(pod) or not (pod_mismatch(pod, data_plane) or not_captured(pod, data_plane)):
            continue
        owner = resolve_owner(pod, replicaset_index)
        if owner in watched:
            found.setdefault(owner, []).append(str(metadata_of(pod).get("name", "")))
    return {owner: sorted(names) for owner, names in sorted(found.items())}


def label_refusal(namespace: str, labels: Mapping[str, str] | None, data_plane: DeclaredDataPlane) -> str | None:
    """Why the workloads of `namespace` may not be moved between modes yet: its live labels (None: no such
    namespace) do not say its declared mode, so istiod would inject its new pods as before. The Namespace's update
    comes first in the same `pulumi up`; a targeted run, or a hand edit since, can leave it out."""
    mode = data_plane.mode(namespace)
    labels = labels or {}
    injected = labels.get(INJECTION_LABEL) == "enabled" or bool(labels.get(REVISION_LABEL))
    ambient = labels.get(DATAPLANE_MODE_LABEL) == AMBIENT_MODE
    if mode == AMBIENT_MODE and (injected or not ambient):
        wanted = f"{DATAPLANE_MODE_LABEL}=ambient and no {INJECTION_LABEL} or {REVISION_LABEL}"
    elif mode == SIDECAR_MODE and not injected:
        wanted = f"{INJECTION_LABEL}=enabled or {REVISION_LABEL}"
    else:
        return None
    shown = ", ".join(f"{key}={value}" for key, value in sorted(labels.items()) if "istio" in key) or "none of Istio's"
    return f"namespace {namespace} is declared {mode} but its labels are {shown} (wanted: {wanted})"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def restart_patch(fingerprint: str, restarted_at: str) -> dict[str, Any]:
    """The strategic-merge patch of `kubectl rollout restart`, plus the fingerprint it was made for.

    Both annotations travel in the one PATCH, so a workload is restarted and recorded as restarted at
    once: a later run for the same setting skips it even if this run fails afterwards.
    """
    annotations = {RESTARTED_AT_ANNOTATION: restarted_at, FINGERPRINT_ANNOTATION: fingerprint}
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}
