"""The restart in one pass: read the cluster -> plan -> roll out through the window (which verifies) -> report.

Requests made for one run, sized by the mesh rather than by the cluster (`_read_cluster`):
- paginated, cluster-wide lists, served from the API server's watch cache, run side by side: the pods istiod
  injected (by its label), the ReplicaSets' metadata alone, the Deployments, and the StatefulSets or DaemonSets
  only when a listed pod is owned by one;
- exactly one PATCH per workload restarted, through the rollout window (`restart.window`), which with
  `wait_for_rollout` also watches each restarted kind and lists each finished workload's pods once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from restart.kube import KINDS, NAMESPACE, Cluster, Listing, RetryPolicy, connect
from restart.objects import MESH_POD_LABEL, ROLLABLE_KINDS, controller_of, owner_kind, ref_of
from restart.plan import RestartPlan, RestartReason, label_refusal, plan_restart, restart_patch, rfc3339
from restart.report import RestartOutcome, outcome, report_plan
from restart.request import RestartError, RestartRequest
from restart.window import Progress, Window, pod_check
from settings.data_plane import DeclaredDataPlane
from settings.model import DEFAULT_REVISION, ISTIO_NAMESPACE


def _read_cluster(cluster: Cluster, entering: frozenset[str] = frozenset()) -> dict[str, Listing]:
    """The pods of the mesh and what owns them, at the cost of the mesh rather than of the cluster.

    - Pods by istiod's label (`MESH_POD_LABEL`): a pod without a sidecar is never re-injected, so pods outside the
      mesh are not transferred, nor reported (no `noSidecar` skips; `excludedNamespace` names mesh workloads only).
    - ReplicaSets as metadata: their owner references are all that tracing a pod to its Deployment reads.
    - Every list from the API server's watch cache (resourceVersion "0"): it may be a moment behind etcd, which is
      safe here: a pod created in that moment was injected by the istiod of now; a PATCH applies to the workload as
      it is (a strategic merge of two annotations); each rollout is awaited by a watch from the list's version, so
      nothing after it is missed, and its new pods are checked; a pod whose ReplicaSet the list missed is still
      traced to its Deployment (`resolve_owner`).
    - StatefulSets and DaemonSets only when a listed pod is owned by one; Deployments side by side with the pods,
      since most meshes run mostly Deployments (waiting for the pods first would add the pods' list to the time).
    - Every pod of the `entering` namespaces as well: their pods may lack the sidecar they are due, and istiod's
      label finds only the pods it injected.
    """
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        pods = pool.submit(cluster.list_all, KINDS["Pod"], label_selector=MESH_POD_LABEL, from_cache=True)
        replicasets = pool.submit(cluster.list_all, KINDS["ReplicaSet"], metadata_only=True, from_cache=True)
        deployments = pool.submit(cluster.list_all, KINDS["Deployment"], from_cache=True)
        whole = [
            pool.submit(cluster.list_all, KINDS["Pod"], namespace=namespace, from_cache=True)
            for namespace in sorted(entering)
        ]
        listings = {"Pod": _merged(pods.result(), *(listing.result() for listing in whole))}
        owned = {owner_kind(owner) for pod in listings["Pod"].items if (owner := controller_of(pod)) is not None}
        others = {
            kind: pool.submit(cluster.list_all, KINDS[kind], from_cache=True)
            for kind in ROLLABLE_KINDS
            if kind != "Deployment" and kind in owned
        }
        listings["ReplicaSet"], listings["Deployment"] = replicasets.result(), deployments.result()
        for kind in ROLLABLE_KINDS:
            if kind != "Deployment":
                listings[kind] = others[kind].result() if kind in others else Listing([], "")
        return listings


def _merged(first: Listing, *others: Listing) -> Listing:
    """One listing of pods from several, each pod once (the whole namespaces repeat the injected pods)."""
    seen = {_identity(pod) for pod in first.items}
    items = list(first.items)
    for listing in others:
        for pod in listing.items:
            if (identity := _identity(pod)) not in seen:
                seen.add(identity)
                items.append(pod)
    return Listing(items, first.resource_version)


def _identity(pod: Mapping[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def _plan(data_plane: DeclaredDataPlane, listings: Mapping[str, Listing], removing: frozenset[str]) -> RestartPlan:
    return plan_restart(
        data_plane,
        pods=listings["Pod"].items,
        replicasets=listings["ReplicaSet"].items,
        workloads=[(kind, obj) for kind in ROLLABLE_KINDS for obj in listings[kind].items],
        removing=removing,
    )


def _installed_revisions(deployments: Listing) -> frozenset[str]:
    """The revisions of the istiod Deployments the program installs: `istiod` (`default`) and `istiod-<revision>`."""
    names = (ref_of("Deployment", deployment) for deployment in deployments.items)
    return frozenset(
        DEFAULT_REVISION if ref.name == "istiod" else ref.name.removeprefix("istiod-")
        for ref in names
        if ref.namespace == ISTIO_NAMESPACE and (ref.name == "istiod" or ref.name.startswith("istiod-"))
    )


def _require_labelled(cluster: Cluster, data_plane: DeclaredDataPlane, plan: RestartPlan) -> None:
    """Each namespace whose workloads move between modes is labelled for its mode already, or nothing is patched:
    a workload restarted before its namespace's label changes would be injected as before."""
    moving = sorted({ref.namespace for ref in plan.restart if RestartReason.DATAPLANE_MODE in plan.reasons[ref]})
    refusals = [
        refusal
        for namespace in moving
        if (refusal := label_refusal(namespace, _labels(cluster.read(NAMESPACE, namespace)), data_plane))
    ]
    if refusals:
        raise RestartError(
            "; ".join(refusals) + ". No workload was restarted. The Namespace's labels change first in the same "
            "`pulumi up`: after a targeted run, run `pulumi up` again; after a hand edit, `pulumi up --refresh` puts "
            "back what the stack declares, and a label added by hand is removed by hand (`kubectl label namespace "
            "<namespace> istio-injection-`)"
        )


def _labels(namespace: Mapping[str, Any] | None) -> Mapping[str, str] | None:
    return None if namespace is None else (namespace.get("metadata") or {}).get("labels") or {}


def plan_cluster(request: RestartRequest, *, retry: RetryPolicy | None = None, page_size: int = 500) -> RestartPlan:
    """What a run of `request` would restart, skip and report now: the same lists and planner, no PATCH.

    No state here either: the namespaces joining the sidecars are the declared sidecar namespaces that the cluster
    does not label for injection yet (new to the mesh, or in ambient mode), as the last rollout left them."""
    with connect(request.kubeconfig, retry or RetryPolicy(), page_size, len(KINDS)) as cluster:
        live = {
            str(namespace["metadata"]["name"]): namespace["metadata"]["labels"]
            for namespace in cluster.list_all(NAMESPACE).items
        }
        entering = frozenset(
            namespace
            for namespace in request.data_plane.sidecar_namespaces
            if label_refusal(namespace, live.get(namespace), request.data_plane)
        )
        listings = _read_cluster(cluster, entering)
    # No state here: the revisions this update would remove are the installed istiods' that are not declared.
    removing = _installed_revisions(listings["Deployment"]) - request.data_plane.revisions
    return _plan(request.data_plane, listings, removing)


def run_restart(
    request: RestartRequest,
    progress: Progress,
    *,
    retry: RetryPolicy | None = None,
    page_size: int = 500,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RestartOutcome:
    """Read the cluster, plan, roll out through the window, report; raise RestartError on any failure."""
    retry = retry or RetryPolicy()
    pool_size = max(1, request.max_concurrent) + len(KINDS)
    with connect(request.kubeconfig, retry, page_size, pool_size) as cluster:
        listings = _read_cluster(cluster, request.entering)
        plan = _plan(request.data_plane, listings, request.removing)
        _require_labelled(cluster, request.data_plane, plan)
        report_plan(request, plan, progress)
        restarted_at = rfc3339(now())
        verify = pod_check(cluster, request.data_plane, listings["ReplicaSet"])
        window = Window(cluster, request, retry=retry, progress=progress, verify=verify)
        rolled = window.run(plan, listings, restart_patch(plan.fingerprint, restarted_at))
    return outcome(request, plan, rolled, restarted_at)
