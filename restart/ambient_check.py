"""Reading the cluster for ambient mode's move check: which declared namespaces are about to move, and their findings.

Requests, for N namespaces about to move (all through `restart.kube.Cluster`, with its retry and error rules):
- one GET per namespace declared ambient (`get` on namespaces): its labels say whether it runs ambient already;
- per kind of `POLICY_KINDS`, one paginated list in each moving namespace and one in the root namespace (`list`
  on the five Istio resources), side by side. A kind the API server does not serve (its CRD is not installed)
  reads as no objects. Lists read etcd, not the watch cache: a policy written a moment ago counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from restart.ambient_findings import POLICY_KINDS, Finding, ambient_findings
from restart.kube import ISTIO_KINDS, NAMESPACE, Cluster, RetryPolicy, connect
from settings.model import AMBIENT_MODE, DATAPLANE_MODE_LABEL, ISTIO_NAMESPACE

LISTS_AT_ONCE = len(POLICY_KINDS)
"""Lists in flight at once: one per kind, as the restart reads its kinds side by side."""


def moving_to_ambient(cluster: Cluster, declared: Iterable[str]) -> list[str]:
    """The declared ambient namespaces whose live Namespace is not labelled for ambient mode yet, sorted.

    A namespace that does not exist is not moving: it has no pods, and is created with its labels.
    """
    moving = []
    for name in sorted(set(declared)):
        namespace = cluster.read(NAMESPACE, name)
        if namespace is None:
            continue
        labels = (namespace.get("metadata") or {}).get("labels") or {}
        if labels.get(DATAPLANE_MODE_LABEL) != AMBIENT_MODE:
            moving.append(name)
    return moving


def read_findings(
    cluster: Cluster, moves: Mapping[str, str], *, root_namespace: str = ISTIO_NAMESPACE
) -> dict[str, list[Finding]]:
    """For each namespace of `moves` (namespace -> its waypoint's name, or ""), what breaks when it moves to ambient.

    Every namespace of `moves` is a key, with an empty list when nothing was found.
    """
    if not moves:
        return {}
    scopes = sorted({*moves, root_namespace})
    with ThreadPoolExecutor(max_workers=LISTS_AT_ONCE) as pool:
        listed = {
            (kind, namespace): pool.submit(
                cluster.list_all, ISTIO_KINDS[kind], namespace=namespace, absent_kind_is_empty=True
            )
            for kind in POLICY_KINDS
            for namespace in scopes
        }
        items: dict[tuple[str, str], list[dict[str, Any]]] = {
            key: future.result().items for key, future in listed.items()
        }
    return {
        namespace: ambient_findings(
            namespace,
            waypoint=waypoint,
            objects={
                kind: [*items[kind, namespace], *(items[kind, root_namespace] if namespace != root_namespace else [])]
                for kind in POLICY_KINDS
            },
            root_namespace=root_namespace,
        )
        for namespace, waypoint in sorted(moves.items())
    }


def check_moves(
    kubeconfig: str, waypoints: Mapping[str, str], *, retry: RetryPolicy | None = None, page_size: int = 500
) -> dict[str, list[Finding]]:
    """Connects with `kubeconfig`, and returns the findings of each namespace of `waypoints` (every namespace declared
    ambient -> its waypoint's name, or "") that is about to move. Read-only: `get` and `list` requests alone."""
    with connect(kubeconfig, retry or RetryPolicy(), page_size, LISTS_AT_ONCE) as cluster:
        moving = moving_to_ambient(cluster, waypoints)
        return read_findings(cluster, {namespace: waypoints[namespace] for namespace in moving})
