"""The restart's orchestration: list the cluster, plan, patch, wait for the rollouts, check the new pods.

Requests made for one run, whatever the cluster's size:
- one paginated, cluster-wide list per kind (pods, replicasets, deployments, statefulsets, daemonsets),
  run side by side;
- exactly one PATCH per workload restarted, at most `max_concurrent` in flight;
- with `wait_for_rollout`, one watch per restarted kind, started from the list's resourceVersion so that
  no status change after the patches can be missed (renewed every `watch_window` seconds, so that a
  failure of another kind's watch is noticed promptly), then one more paginated list of pods to check
  that the new pods carry the wanted redirection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3

from restart.kube import KINDS, Cluster, GoneError, Kind, Listing, RetryPolicy, connect
from restart.objects import ROLLABLE_KINDS, WorkloadRef, ref_of
from restart.plan import (
    RestartPlan,
    SkipReason,
    desired_redirection,
    group_by_reason,
    mismatched_pods,
    name_list,
    plan_restart,
    restart_patch,
    rfc3339,
)
from restart.request import RestartError, RestartRequest
from restart.rollout import rollout_complete, rollout_failure

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RestartOutcome:
    fingerprint: str
    restarted_at: str
    restarted: tuple[str, ...]
    restart_reasons: dict[str, list[str]]
    """`{reason: [workloads]}`: why each restarted workload was re-injected (`redirection`, `proxyVersion`)."""
    skipped: dict[str, list[str]]
    manual_restart: dict[str, list[str]]


class _Reporter:
    """Thread-safe "n of m" progress, one line per tenth of the way (and always the last)."""

    def __init__(self, progress: Progress, total: int, verb: str) -> None:
        self._progress, self._total, self._verb = progress, total, verb
        self._done = 0
        self._step = max(1, total // 10)
        self._lock = threading.Lock()

    def advance(self) -> None:
        with self._lock:
            self._done += 1
            if self._done % self._step == 0 or self._done == self._total:
                self._progress(f"{self._done} of {self._total} {self._verb}")


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
        proxy_image=request.proxy_image,
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
        raise RestartError(
            f"restarted {len(done)} of {len(targets)} workloads{names}, then failed: {failure}. "
            "The restarts are recorded on the workloads: a re-run restarts only the others.",
            done,
        ) from failure
    return generations, deleted


def _await_kind(
    cluster: Cluster,
    kind: Kind,
    targets: Mapping[WorkloadRef, int],
    listing: Listing,
    deadline: float,
    retry: RetryPolicy,
    reporter: _Reporter,
    stop: threading.Event,
) -> set[WorkloadRef]:
    """Follow one kind's watch until every target has rolled out, the deadline passes or `stop` is set.

    Returns the unfinished targets; raises RestartError as soon as a rollout fails for good.
    """
    remaining = dict(targets)

    def settle(ref: WorkloadRef, obj: Mapping[str, Any] | None) -> None:
        if ref not in remaining:
            return
        # Failure first, as kubectl checks it: a timed-out Deployment may still report old replicas as ready.
        if obj is not None and (reason := rollout_failure(kind.kind, obj, remaining[ref])) is not None:
            raise RestartError(f"the rollout of {ref} failed: {reason}")
        if obj is None or rollout_complete(kind.kind, obj, remaining[ref]):
            del remaining[ref]
            reporter.advance()

    def settle_from(objects: Iterable[Mapping[str, Any]]) -> None:
        listed = {ref_of(kind.kind, obj): obj for obj in objects}
        for ref in list(remaining):
            settle(ref, listed.get(ref))

    # A workload restarted by an earlier run may have finished (or failed) before this run's list.
    settle_from(listing.items)
    resource_version, failures = listing.resource_version, 0
    while remaining and not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        try:
            for event in cluster.watch(kind, resource_version, min(retry.watch_window, left)):
                obj = event.get("object") or {}
                resource_version = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
                if event.get("type") != "BOOKMARK":
                    settle(ref_of(kind.kind, obj), None if event.get("type") == "DELETED" else obj)
                if not remaining or stop.is_set():
                    break
            failures = 0
        except GoneError:
            # The watch fell too far behind: a fresh list tells the current state and where to resume.
            fresh = cluster.list_all(kind)
            settle_from(fresh.items)
            resource_version = fresh.resource_version
        except urllib3.exceptions.HTTPError:
            failures += 1
            if failures >= retry.attempts:
                raise
            time.sleep(min(retry.max_delay, retry.base_delay * 2**failures, max(0.0, deadline - time.monotonic())))
    return set(remaining)


def _wait_for_rollouts(
    cluster: Cluster,
    targets: Mapping[WorkloadRef, int],
    listings: Mapping[str, Listing],
    timeout_seconds: int,
    retry: RetryPolicy,
    progress: Progress,
) -> None:
    """Wait for every target's rollout (to at least its generation), one watcher per kind side by side.

    The first watcher to fail stops the others (at their next event or window's end), so a 403 on one
    kind fails the run promptly instead of after the timeout.
    """
    deadline = time.monotonic() + timeout_seconds
    reporter = _Reporter(progress, len(targets), "rolled out")
    stop = threading.Event()
    by_kind: dict[str, dict[WorkloadRef, int]] = {}
    for ref, generation in targets.items():
        by_kind.setdefault(ref.kind, {})[ref] = generation
    unfinished: list[WorkloadRef] = []
    with ThreadPoolExecutor(max_workers=max(1, len(by_kind)), thread_name_prefix="rollout") as pool:
        futures = [
            pool.submit(_await_kind, cluster, KINDS[kind], kinds, listings[kind], deadline, retry, reporter, stop)
            for kind, kinds in by_kind.items()
        ]
        try:
            for future in as_completed(futures):
                unfinished.extend(future.result())
        finally:
            stop.set()
    if unfinished:
        raise RestartError(
            f"{len(unfinished)} of {len(targets)} rollouts did not finish within {timeout_seconds} s: "
            f"{name_list(sorted(unfinished))}"
        )


def _verify_pods(
    cluster: Cluster, owners: Mapping[WorkloadRef, int], listings: Mapping[str, Listing], request: RestartRequest
) -> None:
    """Once the rollouts finished: fail if any of their running pods still differs from the declared data plane.

    That happens when istiod had not loaded the new injection setting yet when the pods were created.
    """
    left = mismatched_pods(
        pods=cluster.list_all(KINDS["Pod"]).items,
        replicasets=listings["ReplicaSet"].items,
        owners=owners,
        cni_enabled=request.cni_enabled,
        proxy_image=request.proxy_image,
    )
    if not left:
        return
    wanted = f"{desired_redirection(request.cni_enabled)}" + (
        f" and {request.proxy_image}" if request.proxy_image else ""
    )
    described = name_list(f"{owner} (pods {name_list(pods, limit=3)})" for owner, pods in left.items())
    raise RestartError(
        f"the rollouts finished, but {len(left)} workloads still run pods without {wanted}: {described}. "
        "istiod probably injected them before it served the new setting. They are not restarted twice for "
        "one change: restart them by hand (kubectl rollout restart) once istiod is up to date"
    )


def _wait_and_verify(
    cluster: Cluster,
    request: RestartRequest,
    generations: Mapping[WorkloadRef, int],
    rechecked: Mapping[WorkloadRef, int],
    listings: Mapping[str, Listing],
    retry: RetryPolicy,
    progress: Progress,
) -> None:
    restarted = tuple(str(ref) for ref in sorted(generations))
    targets = {**rechecked, **generations}
    try:
        _wait_for_rollouts(cluster, targets, listings, request.timeout_seconds, retry, progress)
        _verify_pods(cluster, targets, listings, request)
    except Exception as exc:
        done = f"restarted {len(restarted)} workloads ({name_list(restarted)})" if restarted else "restarted nothing"
        raise RestartError(f"{done}, then: {exc}", restarted) from exc


def _current_generations(refs: tuple[WorkloadRef, ...], listings: Mapping[str, Listing]) -> dict[WorkloadRef, int]:
    wanted = set(refs)
    found: dict[WorkloadRef, int] = {}
    for kind in ROLLABLE_KINDS:
        for obj in listings[kind].items:
            if (ref := ref_of(kind, obj)) in wanted:
                found[ref] = int((obj.get("metadata") or {}).get("generation") or 0)
    return found


def _report_plan(request: RestartRequest, plan: RestartPlan, progress: Progress) -> None:
    progress(
        f"CNI {'enabled' if request.cni_enabled else 'disabled'}, proxy {request.proxy_image or 'not compared'} "
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
        generations, deleted = _restart_all(cluster, plan, body, request.max_concurrent, progress)
        # Restarted by an earlier run: awaited at the generation that restart produced, never patched again.
        rechecked = _current_generations(plan.recheck, listings)
        if request.wait_for_rollout and (generations or rechecked):
            _wait_and_verify(cluster, request, generations, rechecked, listings, retry, progress)
    skipped: dict[WorkloadRef, Any] = dict(plan.skipped)
    skipped.update({ref: SkipReason.DELETED_BEFORE_RESTART for ref in deleted})
    recheck_reason = (
        SkipReason.ALREADY_RESTARTED if request.wait_for_rollout else SkipReason.RESTARTED_BUT_STILL_MISMATCHED
    )
    skipped.update(dict.fromkeys(plan.recheck, recheck_reason))
    return RestartOutcome(
        fingerprint=plan.fingerprint,
        restarted_at=restarted_at,
        restarted=tuple(str(ref) for ref in sorted(generations)),
        restart_reasons=_by_reason({ref: plan.reasons.get(ref, ()) for ref in generations}),
        skipped=group_by_reason(skipped),
        manual_restart=group_by_reason(plan.manual),
    )
