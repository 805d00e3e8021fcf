"""The restart in one pass: read the cluster -> plan -> roll out through the window (which verifies) -> report.

Requests made for one run, whatever the cluster's size:
- one paginated, cluster-wide list per kind (pods, replicasets, deployments, statefulsets, daemonsets),
  run side by side;
- exactly one PATCH per workload restarted, through the rollout window (`restart.window`), which with
  `wait_for_rollout` also watches each restarted kind and lists each finished workload's pods once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from restart.kube import KINDS, Cluster, Listing, RetryPolicy, connect
from restart.objects import ROLLABLE_KINDS, ref_of
from restart.plan import RestartPlan, plan_restart, restart_patch, rfc3339
from restart.report import RestartOutcome, outcome, report_plan
from restart.request import RestartRequest
from restart.window import Progress, Window, pod_check
from settings.data_plane import DeclaredDataPlane
from settings.model import DEFAULT_REVISION, ISTIO_NAMESPACE


def _read_cluster(cluster: Cluster) -> dict[str, Listing]:
    # Side by side, not one after the other: pods and ReplicaSets are the biggest lists. A pod whose
    # ReplicaSet was created after the ReplicaSets were listed is still traced to its Deployment
    # (see `resolve_owner`).
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        futures = {kind: pool.submit(cluster.list_all, spec) for kind, spec in KINDS.items()}
        return {kind: future.result() for kind, future in futures.items()}


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


def plan_cluster(request: RestartRequest, *, retry: RetryPolicy | None = None, page_size: int = 500) -> RestartPlan:
    """What a run of `request` would restart, skip and report now: the same lists and planner, no PATCH."""
    with connect(request.kubeconfig, retry or RetryPolicy(), page_size, len(KINDS)) as cluster:
        listings = _read_cluster(cluster)
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
        listings = _read_cluster(cluster)
        plan = _plan(request.data_plane, listings, request.removing)
        report_plan(request, plan, progress)
        restarted_at = rfc3339(now())
        verify = pod_check(cluster, request.data_plane, listings["ReplicaSet"])
        window = Window(cluster, request, retry=retry, progress=progress, verify=verify)
        rolled = window.run(plan, listings, restart_patch(plan.fingerprint, restarted_at))
    return outcome(request, plan, rolled, restarted_at)
