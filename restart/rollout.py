"""When a rollout is done, or has failed for good: `kubectl rollout status`'s rules, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from restart.objects import metadata_of, partition


def _observed(workload: Mapping[str, Any], min_generation: int) -> bool:
    """The controller has seen a generation at least as new as the one the patch produced."""
    generation = int(metadata_of(workload).get("generation") or 0)
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
