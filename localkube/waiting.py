"""Waiting for pods and rollouts, judged as kubelets and `kubectl rollout status` judge them.

Written independently of the restart tool's own rollout rules, so that tests can use these as the oracle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubernetes import client

from localkube import workloads

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """A condition did not hold in time; an AssertionError so that pytest reports it as a failed test."""


def wait_for(condition: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.1, what: str = "") -> T:
    """Calls `condition` until it returns something truthy, and returns that; raises WaitTimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise WaitTimeoutError(f"timed out after {timeout:g}s waiting for {what or condition!r}; last: {result!r}")
        time.sleep(interval)


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Running with the Ready condition True: what Deployments count as available (after minReadySeconds)."""
    status = pod.get("status", {})
    return status.get("phase") == "Running" and any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions", [])
    )


def wait_for_rollout(
    api: client.ApiClient, kind: str, namespace: str, name: str, *, timeout: float = 60.0
) -> dict[str, Any]:
    """Waits until the workload's rollout is complete (see `rollout_complete`); returns the object as JSON."""

    def complete() -> dict[str, Any] | None:
        workload = workloads.read(api, kind, namespace, name)
        return workload if rollout_complete(workload) else None

    return wait_for(complete, timeout=timeout, what=f"the rollout of {kind} {namespace}/{name}")


def rollout_complete(workload: Mapping[str, Any]) -> bool:
    """True when `kubectl rollout status` would report the rollout of this object (as JSON) as done.

    Raises RuntimeError for a Deployment whose progress deadline passed (kubectl fails there too).
    """
    kind = workload["kind"]
    meta, spec, status = workload["metadata"], workload["spec"], workload.get("status", {})
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False
    if kind == "Deployment":
        return _deployment_complete(spec, status)
    if kind == "StatefulSet":
        return _statefulset_complete(spec, status)
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        return bool(status.get("updatedNumberScheduled", 0) >= desired and status.get("numberAvailable", 0) >= desired)
    raise ValueError(f"no rollout status for kind {kind}")


def _deployment_complete(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    for condition in status.get("conditions", []):
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            raise RuntimeError(f"deployment exceeded its progress deadline: {condition.get('message')}")
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    return bool(
        updated >= wanted and status.get("replicas", 0) <= updated and status.get("availableReplicas", 0) >= updated
    )


def _statefulset_complete(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    strategy = spec.get("updateStrategy", {})
    if strategy.get("type") == "OnDelete":
        raise ValueError("an OnDelete StatefulSet has no rollout status")
    wanted = spec.get("replicas", 1)
    if status.get("readyReplicas", 0) < wanted:
        return False
    partition = strategy.get("rollingUpdate", {}).get("partition") or 0
    if partition:
        return bool(status.get("updatedReplicas", 0) >= wanted - partition)
    return bool(status.get("updateRevision") == status.get("currentRevision"))
