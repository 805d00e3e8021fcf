"""The restart in one pass: read the cluster -> plan -> roll out through the window -> report.

Requests made for one run, whatever the cluster's size:
- one paginated, cluster-wide list per kind (pods, replicasets, deployments, statefulsets, daemonsets),
  run side by side;
- exactly one PATCH per workload restarted, through the rollout window (`restart.window`), which with
  `wait_for_rollout` also watches each restarted kind and lists each finished workload's pods once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from restart.kube import KINDS, Cluster, Listing, RetryPolicy, connect
from restart.objects import ROLLABLE_KINDS, WorkloadRef
from restart.plan import RestartPlan, SkipReason, group_by_reason, name_list, plan_restart, restart_patch, rfc3339
from restart.request import RestartError, RestartRequest
from restart.window import Progress, Window, WindowResult, pod_check
from settings.data_plane import DeclaredDataPlane


@dataclass(frozen=True)
class RestartOutcome:
    fingerprint: str
    restarted_at: str
    restarted: tuple[str, ...]
    restart_reasons: dict[str, list[str]]
    """`{reason: [workloads]}`: why each restarted workload was re-injected (`redirection`, `proxyVersion`, ...)."""
    skipped: dict[str, list[str]]
    manual_restart: dict[str, list[str]]


def _read_cluster(cluster: Cluster) -> dict[str, Listing]:
    # Side by side, not one after the other: pods and ReplicaSets are the biggest lists. A pod whose
    # ReplicaSet was created after the ReplicaSets were listed is still traced to its Deployment
    # (see `resolve_owner`).
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        futures = {kind: pool.submit(cluster.list_all, spec) for kind, spec in KINDS.items()}
        return {kind: future.result() for kind, future in futures.items()}


def _plan(data_plane: DeclaredDataPlane, listings: Mapping[str, Listing]) -> RestartPlan:
    return plan_restart(
        data_plane,
        pods=listings["Pod"].items,
        replicasets=listings["ReplicaSet"].items,
        workloads=[(kind, obj) for kind in ROLLABLE_KINDS for obj in listings[kind].items],
    )


def describe(data_plane: DeclaredDataPlane) -> str:
    """The declared data plane in one line, for the log and `make restart-plan`."""
    redirection = "the CNI plugin (istio-validation)" if data_plane.cni_enabled else "istio-init"
    default = data_plane.default
    text = f"{redirection}; default {default.version or 'revision'}: {default.proxy_image or 'proxy not compared'}"
    if data_plane.canary is not None:
        canary = data_plane.canary
        namespaces = ", ".join(sorted(data_plane.canary_namespaces)) or "no namespace yet"
        text += f"; canary {canary.version} (revision {canary.revision}): {canary.proxy_image} for {namespaces}"
    return text


def _report_plan(request: RestartRequest, plan: RestartPlan, progress: Progress) -> None:
    progress(
        f"declared: {describe(request.data_plane)} (fingerprint {plan.fingerprint}): "
        f"{len(plan.restart)} workloads to restart, {len(plan.skipped)} skipped, "
        f"{len(plan.manual)} need a manual restart"
    )
    for ref, reason in sorted(plan.manual.items()):
        progress(f"needs a manual restart ({reason}): {ref}")
    if plan.recheck:
        action = "waiting for their rollouts" if request.wait_for_rollout else "not waiting (waitForRollout is off)"
        progress(
            f"{len(plan.recheck)} workloads were restarted for this setting by an earlier run and still run "
            f"pods other than the declared ones; not restarting them again, {action}: {name_list(plan.recheck)}"
        )


def plan_cluster(request: RestartRequest, *, retry: RetryPolicy | None = None, page_size: int = 500) -> RestartPlan:
    """What a run of `request` would restart, skip and report now: the same lists and planner, no PATCH."""
    with connect(request.kubeconfig, retry or RetryPolicy(), page_size, len(KINDS)) as cluster:
        return _plan(request.data_plane, _read_cluster(cluster))


def _refuse_stranded(plan: RestartPlan, restarted: tuple[str, ...]) -> None:
    """Fail, so the update stops before Pulumi deletes a control plane that pods still use."""
    revisions = sorted({revision for found in plan.stranded.values() for revision in found})
    why = {**{ref: str(reason) for ref, reason in plan.manual.items()}, **{r: str(s) for r, s in plan.skipped.items()}}
    described = name_list(f"{ref} ({why.get(ref, 'not restarted')})" for ref in plan.stranded)
    done = f"restarted {len(restarted)} workloads ({name_list(restarted)}), but " if restarted else ""
    raise RestartError(
        f"{done}{len(plan.stranded)} workloads still run pods on revision {', '.join(revisions)}, which no declared "
        f"control plane has, and this program cannot restart them: {described}. Restart or delete them by hand, "
        "then run `pulumi up` again: until it succeeds, the control plane they use is not deleted",
        restarted,
    )


def _outcome(request: RestartRequest, plan: RestartPlan, rolled: WindowResult, restarted_at: str) -> RestartOutcome:
    restarted = tuple(str(ref) for ref in sorted(rolled.restarted))
    if plan.stranded:
        _refuse_stranded(plan, restarted)
    skipped: dict[WorkloadRef, SkipReason] = dict(plan.skipped)
    skipped.update(dict.fromkeys(rolled.deleted, SkipReason.DELETED_BEFORE_RESTART))
    recheck_reason = (
        SkipReason.ALREADY_RESTARTED if request.wait_for_rollout else SkipReason.RESTARTED_BUT_STILL_MISMATCHED
    )
    skipped.update(dict.fromkeys(plan.recheck, recheck_reason))
    return RestartOutcome(
        fingerprint=plan.fingerprint,
        restarted_at=restarted_at,
        restarted=restarted,
        restart_reasons=group_by_reason({ref: plan.reasons.get(ref, ()) for ref in rolled.restarted}),
        skipped=group_by_reason(skipped),
        manual_restart=group_by_reason(plan.manual),
    )


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
        plan = _plan(request.data_plane, listings)
        _report_plan(request, plan, progress)
        restarted_at = rfc3339(now())
        verify = pod_check(cluster, request.data_plane, listings["ReplicaSet"])
        window = Window(cluster, request, retry=retry, progress=progress, verify=verify)
        rolled = window.run(plan, listings, restart_patch(plan.fingerprint, restarted_at))
    return _outcome(request, plan, rolled, restarted_at)
