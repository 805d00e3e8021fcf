"""Builders for the objects restart tests run against, as JSON dicts, and one call to create any of them.

Every workload's pods carry the label `app: <name>`. Containers run `registry.k8s.io/pause` (nothing pulls it:
the played kubelets only report it). `inject` sets the pod label `sidecar.istio.io/inject` when not None.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from localkube.raw import drain, read_json

PAUSE_IMAGE = "registry.k8s.io/pause:3.7"
Manifest = dict[str, Any]


def pod_template(
    app: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    inject: bool | None = None,
    image: str = PAUSE_IMAGE,
) -> Manifest:
    pod_labels = {"app": app, **(labels or {})}
    if inject is not None:
        pod_labels["sidecar.istio.io/inject"] = "true" if inject else "false"
    metadata: Manifest = {"labels": pod_labels}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "metadata": metadata,
        "spec": {
            "containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080, "name": "http"}]}],
            "terminationGracePeriodSeconds": 30,
        },
    }


def deployment(
    name: str,
    replicas: int = 1,
    *,
    strategy: Mapping[str, Any] | None = None,
    paused: bool = False,
    progress_deadline_seconds: int | None = None,
    template: Manifest | None = None,
) -> Manifest:
    """`strategy`: e.g. {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}."""
    spec: Manifest = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": template or pod_template(name),
        "paused": paused,
    }
    if strategy is not None:
        spec["strategy"] = dict(strategy)
    if progress_deadline_seconds is not None:
        spec["progressDeadlineSeconds"] = progress_deadline_seconds
    return _object("apps/v1", "Deployment", name, spec)


def statefulset(
    name: str,
    replicas: int = 1,
    *,
    partition: int | None = None,
    update_strategy: str = "RollingUpdate",
    pod_management_policy: str = "Parallel",
    template: Manifest | None = None,
) -> Manifest:
    """Parallel pod management by default, so scaling up is fast; a rolling update still goes pod by pod."""
    strategy: Manifest = {"type": update_strategy}
    if partition is not None:
        strategy["rollingUpdate"] = {"partition": partition}
    spec: Manifest = {
        "replicas": replicas,
        "serviceName": name,
        "selector": {"matchLabels": {"app": name}},
        "template": template or pod_template(name),
        "updateStrategy": strategy,
        "podManagementPolicy": pod_management_policy,
    }
    return _object("apps/v1", "StatefulSet", name, spec)


def daemonset(
    name: str,
    *,
    update_strategy: str = "RollingUpdate",
    max_unavailable: int | str = 1,
    template: Manifest | None = None,
) -> Manifest:
    strategy: Manifest = {"type": update_strategy}
    if update_strategy == "RollingUpdate":
        strategy["rollingUpdate"] = {"maxUnavailable": max_unavailable}
    spec: Manifest = {
        "selector": {"matchLabels": {"app": name}},
        "template": template or pod_template(name),
        "updateStrategy": strategy,
    }
    return _object("apps/v1", "DaemonSet", name, spec)


def replicaset(name: str, replicas: int = 1, *, template: Manifest | None = None) -> Manifest:
    """A ReplicaSet no Deployment owns."""
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": template or pod_template(name),
    }
    return _object("apps/v1", "ReplicaSet", name, spec)


def job(name: str, *, completions: int = 1, parallelism: int = 1, template: Manifest | None = None) -> Manifest:
    """The played kubelets keep Job pods Running: the Job never completes unless a test deletes it."""
    pod = copy.deepcopy(template) if template else pod_template(name)
    pod["spec"]["restartPolicy"] = "Never"
    spec = {"completions": completions, "parallelism": parallelism, "backoffLimit": 0, "template": pod}
    return _object("batch/v1", "Job", name, spec)


def pod(name: str, *, template: Manifest | None = None) -> Manifest:
    """A bare pod, owned by nothing."""
    body = template or pod_template(name)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **body["metadata"]}, "spec": body["spec"]}


def create(api: client.ApiClient, namespace: str, *manifests: Manifest) -> list[Manifest]:
    """Creates each object in `namespace`; returns them as the API server stored them."""
    return [
        read_json(_method(api, manifest["kind"], "create")(namespace, manifest, _preload_content=False))
        for manifest in manifests
    ]


RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_PATCHERS = {"Deployment": "deployment", "StatefulSet": "stateful_set", "DaemonSet": "daemon_set"}


def rollout_restart(api: client.ApiClient, kind: str, namespace: str, name: str) -> str:
    """What `kubectl rollout restart` sends: a strategic merge patch of the template's restartedAt annotation.

    Returns the timestamp written (RFC 3339, as kubectl writes it).
    """
    restarted_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}}
    patcher = getattr(client.AppsV1Api(api), f"patch_namespaced_{_PATCHERS[kind]}")
    drain(
        patcher(name, namespace, patch, _content_type="application/strategic-merge-patch+json", _preload_content=False)
    )
    return restarted_at


def read(api: client.ApiClient, kind: str, namespace: str, name: str) -> Manifest:
    """One object as JSON (kinds as in `create`)."""
    return read_json(_method(api, kind, "read")(name, namespace, _preload_content=False))


def pods(api: client.ApiClient, namespace: str, label_selector: str | None = None) -> list[Manifest]:
    """The pods of a namespace as JSON, terminating ones included."""
    core = client.CoreV1Api(api)
    items: list[Manifest] = read_json(
        core.list_namespaced_pod(namespace, label_selector=label_selector, _preload_content=False)
    )["items"]
    return items


_METHOD_SUFFIXES = {
    "Deployment": ("AppsV1Api", "deployment"),
    "StatefulSet": ("AppsV1Api", "stateful_set"),
    "DaemonSet": ("AppsV1Api", "daemon_set"),
    "ReplicaSet": ("AppsV1Api", "replica_set"),
    "Job": ("BatchV1Api", "job"),
    "Pod": ("CoreV1Api", "pod"),
    "Service": ("CoreV1Api", "service"),
    "ConfigMap": ("CoreV1Api", "config_map"),
}


def _method(api: client.ApiClient, kind: str, verb: str) -> Callable[..., Any]:
    """`AppsV1Api(api).create_namespaced_deployment` for ("Deployment", "create"), and so on."""
    group, suffix = _METHOD_SUFFIXES[kind]
    method: Callable[..., Any] = getattr(getattr(client, group)(api), f"{verb}_namespaced_{suffix}")
    return method


def _object(api_version: str, kind: str, name: str, spec: Manifest) -> Manifest:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec}
