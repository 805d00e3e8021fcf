"""The restart's orchestration: list the cluster, plan, then restart: through the rollout window, or all at once.

Requests made for one run, whatever the cluster's size:
- one paginated, cluster-wide list per kind (pods, replicasets, deployments, statefulsets, daemonsets),
  run side by side;
- exactly one PATCH per workload restarted;
- with `wait_for_rollout`, the rollout window (`restart.window`): at most `max_concurrent` workloads rolling
  out at once, one watch per restarted kind, one list of each finished workload's pods;
- without it, the PATCHes alone, at most `max_concurrent` in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from restart.kube import KINDS, Cluster, Listing, RetryPolicy, connect
from restart.objects import ROLLABLE_KINDS, WorkloadRef
from restart.plan import (
    RestartPlan,
    SkipReason,
    group_by_reason,
    name_list,
    plan_restart,
    restart_patch,
    rfc3339,
)
from restart.request import RestartError, RestartRequest
from restart.window import Progress, Window, pod_check


@dataclass(frozen=True)
class RestartOutcome:
    fingerprint: str
    restarted_at: str
    restarted: tuple[str, ...]
    restart_reasons: dict[str, list[str]]
    """`{reason: [workloads]}`: why each restarted workload was re-injected (`redirection`, `proxyVersion`)."""
    skipped: dict[str, list[str]]
    manual_restart: dict[str, list[str]]


def _list_cluster(cluster: Cluster) -> dict[str, Listing]:
    # Side by side, not one after the other: pods and ReplicaSets are the biggest lists. A pod whose
    # ReplicaSet was created after the ReplicaSets were listed is still traced to its Deployment
    # (see `resolve_owner`).
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        futures = {kind: pool.submit(cluster.list_all, spec) for kind, spec in KINDS.items()}
        return {kind: future.result() for kind, future in futures.items()}


def _plan(request: RestartRequest, listings: Mapping[str, Listing]) -> RestartPlan:
    return plan_restart(
        pods=listings["Pod"].items,
        replicasets=listings["ReplicaSet"].items,
        workloads=[(kind, obj) for kind in ROLLABLE_KINDS for obj in listings[kind].items],
        cni_enabled=request.cni_enabled,
        exclude_namespaces=request.exclude_namespaces,
        planes=request.planes(),
    )


class _NotStarted:
    """A PATCH left out because another one failed first."""


_NOT_STARTED = _NotStarted()


def _restart_all(
    cluster: Cluster, plan: RestartPlan, body: dict[str, Any], max_concurrent: int, progress: Progress
) -> tuple[dict[WorkloadRef, int], list[WorkloadRef]]:
    """PATCH every target, at most `max_concurrent` at once; the generations produced, and those found deleted.

    On the first failure no further PATCH starts; the ones in flight finish, so what was restarted is known.
    """
    targets = plan.restart
    generations: dict[WorkloadRef, int] = {}
    deleted: list[WorkloadRef] = []
    failure: BaseException | None = None
    stop = threading.Event()

    def patch_unless_stopped(ref: WorkloadRef) -> dict[str, Any] | _NotStarted | None:
        # Checked in the worker itself: a queued PATCH must not start once another one has failed.
        if stop.is_set():
            return _NOT_STARTED
        try:
            return cluster.patch(ref, body)
        except Exception:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=max(1, max_concurrent), thread_name_prefix="restart") as pool:
        futures: dict[Future[dict[str, Any] | _NotStarted | None], WorkloadRef] = {
            pool.submit(patch_unless_stopped, ref): ref for ref in targets
        }
        for future in as_completed(futures):
            ref = futures[future]
            try:
                patched = future.result()
            except Exception as exc:
                failure = failure or exc
                continue
            if isinstance(patched, _NotStarted):
                continue
            if patched is None:
                deleted.append(ref)
                continue
            generations[ref] = int((patched.get("metadata") or {}).get("generation") or 0)
            # One line per workload: if the run fails later, the log still names everything it restarted.
            why = ", ".join(plan.reasons.get(ref, ()))
            progress(f"restarted {ref} for {why} ({len(generations)} of {len(targets)})")
    if failure is not None:
        done = tuple(str(ref) for ref in sorted(generations))
        names = f" ({name_list(done)})" if done else ""
        # Only our own messages are quoted: another exception's text may carry a credential.
        why = str(failure) if isinstance(failure, RestartError) else f"an unexpected {type(failure).__name__}"
        raise RestartError(
            f"restarted {len(done)} of {len(targets)} workloads{names}, then failed: {why}. "
            "The restarts are recorded on the workloads: a re-run restarts only the others.",
            done,
        ) from None
    return generations, deleted


def _planes_text(request: RestartRequest) -> str:
    text = f"default: {request.proxy_image or 'proxy not compared'}"
    if request.canary_revision:
        namespaces = ", ".join(request.canary_namespaces) or "no namespace yet"
        text += f"; canary {request.canary_revision}: {request.canary_proxy_image} for {namespaces}"
    return text


def _report_plan(request: RestartRequest, plan: RestartPlan, progress: Progress) -> None:
    progress(
        f"CNI {'enabled' if request.cni_enabled else 'disabled'}, {_planes_text(request)} "
        f"(fingerprint {plan.fingerprint}): "
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
    retry = retry or RetryPolicy()
    with connect(request.kubeconfig, retry, page_size, len(KINDS)) as cluster:
        return _plan(request, _list_cluster(cluster))


def _by_reason(reasons: Mapping[WorkloadRef, tuple[str, ...]]) -> dict[str, list[str]]:
    """`{reason: ["Kind/namespace/name", ...]}`: a workload re-injected for two reasons is under both."""
    grouped: dict[str, list[str]] = {}
    for ref in sorted(reasons):
        for reason in reasons[ref]:
            grouped.setdefault(str(reason), []).append(str(ref))
    return dict(sorted(grouped.items()))


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


def run_restart(
    request: RestartRequest,
    progress: Progress,
    *,
    retry: RetryPolicy | None = None,
    page_size: int = 500,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RestartOutcome:
    """List the cluster, restart what the plan says, optionally wait; raise RestartError on any failure."""
    retry = retry or RetryPolicy()
    pool_size = max(1, request.max_concurrent) + len(KINDS)
    with connect(request.kubeconfig, retry, page_size, pool_size) as cluster:
        listings = _list_cluster(cluster)
        plan = _plan(request, listings)
        _report_plan(request, plan, progress)
        restarted_at = rfc3339(now())
        body = restart_patch(plan.fingerprint, restarted_at)
        if request.wait_for_rollout:
            window = Window(
                cluster,
                width=request.max_concurrent,
                timeout_seconds=request.timeout_seconds,
                retry=retry,
                progress=progress,
                verify=pod_check(cluster, request, listings["ReplicaSet"]),
            )
            rolled = window.run(plan.restart, plan.recheck, listings, body, plan.reasons)
            restarted, deleted = list(rolled.restarted), list(rolled.deleted)
        else:
            generations, deleted = _restart_all(cluster, plan, body, request.max_concurrent, progress)
            restarted = list(generations)
    if plan.stranded:
        _refuse_stranded(plan, tuple(str(ref) for ref in sorted(restarted)))
    skipped: dict[WorkloadRef, Any] = dict(plan.skipped)
    skipped.update({ref: SkipReason.DELETED_BEFORE_RESTART for ref in deleted})
    recheck_reason = (
        SkipReason.ALREADY_RESTARTED if request.wait_for_rollout else SkipReason.RESTARTED_BUT_STILL_MISMATCHED
    )
    skipped.update(dict.fromkeys(plan.recheck, recheck_reason))
    return RestartOutcome(
        fingerprint=plan.fingerprint,
        restarted_at=restarted_at,
        restarted=tuple(str(ref) for ref in sorted(restarted)),
        restart_reasons=_by_reason({ref: plan.reasons.get(ref, ()) for ref in restarted}),
        skipped=group_by_reason(skipped),
        manual_restart=group_by_reason(plan.manual),
    )
