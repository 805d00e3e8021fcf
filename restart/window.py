"""The rollout window: restart the planned workloads so that at most `max_concurrent` roll out at once.

With `waitForRollout`, `maxConcurrent` bounds the workloads whose rollout is in progress, not the requests: the
next restart starts when a rollout has finished and its new pods were checked against the declared data plane.
The first rollout that fails (the controller gave up, its deadline of `timeoutSeconds` passed, or its new pods run
something else than declared) stops new restarts, so a bad change reaches at most `max_concurrent` workloads,
and the failure names them.

Requests: one PATCH per restarted workload; one watch per restarted kind, from the planning list's
resourceVersion (renewed every `watch_window` seconds; a 410 relists that kind); and one pod list per finished
rollout, of that workload's pods alone (namespace and label selector).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import urllib3

from restart.kube import KINDS, Cluster, GoneError, Kind, Listing, RetryPolicy, WatchHandle
from restart.objects import WorkloadRef, ref_of, selector_query, slim_workload
from restart.plan import mismatched_pods, name_list
from restart.request import RestartError, RestartRequest
from restart.rollout import rollout_complete, rollout_failure

Progress = Callable[[str], None]
Verify = Callable[[WorkloadRef, Mapping[str, Any]], str | None]
"""Checks a finished rollout's pods; returns why they are not on the declared data plane, or None."""


def _generation(obj: Mapping[str, Any] | None) -> int:
    return int(((obj or {}).get("metadata") or {}).get("generation") or -1) if obj is not None else -1


@dataclass
class _Rollout:
    generation: int
    started: float


@dataclass
class Tracker:
    """Which restarted workloads are still rolling out; fed by the watchers, read by the window.

    Every object the watchers see for a planned workload is kept, so a rollout that finished before its PATCH's
    answer was registered is still noticed when it is.
    """

    targets: frozenset[WorkloadRef]
    rolling: dict[WorkloadRef, _Rollout] = field(default_factory=dict)
    finished: list[tuple[WorkloadRef, Mapping[str, Any] | None]] = field(default_factory=list)
    """Rollouts done (or workloads deleted: None) and not yet checked by the window."""
    failure: str | None = None
    latest: dict[WorkloadRef, Mapping[str, Any] | None] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def start(self, ref: WorkloadRef, generation: int, started: float, seen: Mapping[str, Any] | None) -> None:
        """Await `ref` at `generation`; `seen` is its newest object known here (the PATCH's answer, a listing)."""
        with self.changed:
            self.rolling[ref] = _Rollout(generation, started)
            # A watch event may already have brought a newer object, or an older one (even a deletion before
            # the workload was recreated and patched): keep whichever has the newer generation.
            if seen is not None and _generation(seen) >= _generation(self.latest.get(ref)):
                self.latest[ref] = seen
            self._settle(ref)

    def in_window(self) -> int:
        """Workloads rolling out, or rolled out and not yet checked: each still counts against the window."""
        with self.changed:
            return len(self.rolling) + len(self.finished)

    def observe(self, ref: WorkloadRef, obj: Mapping[str, Any] | None) -> None:
        if ref not in self.targets:
            return
        with self.changed:
            self.latest[ref] = obj
            self._settle(ref)

    def fail(self, reason: str) -> None:
        with self.changed:
            self.failure = self.failure or reason
            self.changed.notify_all()

    def _settle(self, ref: WorkloadRef) -> None:
        rollout = self.rolling.get(ref)
        if rollout is None or ref not in self.latest:
            return
        obj = self.latest[ref]
        if obj is None:
            del self.rolling[ref]  # deleted while it rolled out: nothing left to wait for
            self.finished.append((ref, None))
        # Failure first, as kubectl checks it: a timed-out Deployment may still report old replicas as ready.
        elif (reason := rollout_failure(ref.kind, obj, rollout.generation)) is not None:
            self.failure = self.failure or f"the rollout of {ref} failed: {reason}"
        elif rollout_complete(ref.kind, obj, rollout.generation):
            del self.rolling[ref]
            self.finished.append((ref, obj))
        else:
            return
        self.changed.notify_all()

    def idle(self) -> bool:
        with self.changed:
            return not self.rolling and not self.finished

    def take_finished(self) -> list[tuple[WorkloadRef, Mapping[str, Any] | None]]:
        with self.changed:
            done, self.finished = self.finished, []
            return done

    def overdue(self, now: float, timeout_seconds: float) -> list[WorkloadRef]:
        with self.changed:
            return sorted(ref for ref, rollout in self.rolling.items() if now - rollout.started > timeout_seconds)

    def wait(self, seconds: float) -> None:
        with self.changed:
            if not self.finished and self.failure is None:
                self.changed.wait(seconds)


def watch_kind(
    cluster: Cluster,
    kind: Kind,
    listing: Listing,
    tracker: Tracker,
    retry: RetryPolicy,
    stop: threading.Event,
    handle: WatchHandle,
) -> None:
    """Feed the tracker with one kind's events until `stop` is set; a failure for good goes to the tracker."""
    resource_version, failures = listing.resource_version, 0
    try:
        while not stop.is_set():
            opened = time.monotonic()
            try:
                for event in cluster.watch(kind, resource_version, retry.watch_window, handle):
                    obj = event.get("object") or {}
                    resource_version = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
                    if event.get("type") != "BOOKMARK":
                        gone = event.get("type") == "DELETED"
                        tracker.observe(ref_of(kind.kind, obj), None if gone else slim_workload(obj))
                failures = 0
                if time.monotonic() - opened < 1.0:
                    stop.wait(0.5)  # a watch that ends at once must not turn into a tight loop of requests
            except GoneError:
                # The watch fell too far behind: a fresh list tells the current state and where to resume.
                fresh = cluster.list_all(kind)
                listed = {ref_of(kind.kind, obj): obj for obj in fresh.items}
                for ref in tracker.targets:
                    if ref.kind == kind.kind:
                        tracker.observe(ref, listed.get(ref))
                resource_version = fresh.resource_version
            except urllib3.exceptions.HTTPError:
                if stop.is_set():
                    return
                failures += 1
                if failures >= retry.attempts:
                    tracker.fail(f"watch {kind.plural} failed {retry.attempts} times in a row")
                    return
                stop.wait(min(retry.max_delay, retry.base_delay * 2**failures))
    except RestartError as exc:
        tracker.fail(str(exc))
    except Exception as exc:
        if not stop.is_set():
            tracker.fail(f"watch {kind.plural} failed unexpectedly ({type(exc).__name__})")


@dataclass(frozen=True)
class WindowResult:
    restarted: tuple[WorkloadRef, ...]
    """Patched by this run, in the order they were started."""
    deleted: tuple[WorkloadRef, ...]
    """Gone before their PATCH."""


class Window:
    (
        """Restarts `targets` in order, at most `width` rolling out at once; awaits `awaited` (restarted earlier) too.

    An awaited workload is awaited at the generation it has in the listing: the one its earlier restart produced.
    """
        ""
    )

    def __init__(
        self,
        cluster: Cluster,
        *,
        width: int,
        timeout_seconds: int,
        retry: RetryPolicy,
        progress: Progress,
        verify: Verify,
    ) -> None:
        self._cluster, self._width, self._timeout = cluster, max(1, width), timeout_seconds
        self._retry, self._progress, self._verify = retry, progress, verify

    def run(
        self,
        targets: tuple[WorkloadRef, ...],
        awaited: tuple[WorkloadRef, ...],
        listings: Mapping[str, Listing],
        body: dict[str, Any],
        reasons: Mapping[WorkloadRef, Iterable[str]],
    ) -> WindowResult:
        every = frozenset((*targets, *awaited))
        tracker = Tracker(every)
        kinds = sorted({ref.kind for ref in every})
        stop, handles = threading.Event(), [WatchHandle() for _ in kinds]
        with ThreadPoolExecutor(max_workers=max(1, len(kinds)), thread_name_prefix="rollout") as pool:
            for kind, handle in zip(kinds, handles, strict=True):
                pool.submit(watch_kind, self._cluster, KINDS[kind], listings[kind], tracker, self._retry, stop, handle)
            try:
                return self._slide(tracker, targets, awaited, listings, body, reasons)
            finally:
                stop.set()
                for handle in handles:
                    handle.close()

    def _slide(
        self,
        tracker: Tracker,
        targets: tuple[WorkloadRef, ...],
        awaited: tuple[WorkloadRef, ...],
        listings: Mapping[str, Listing],
        body: dict[str, Any],
        reasons: Mapping[WorkloadRef, Iterable[str]],
    ) -> WindowResult:
        listed = {
            ref_of(kind, obj): obj for kind in {ref.kind for ref in tracker.targets} for obj in listings[kind].items
        }
        # Restarted by an earlier run for this same data plane: awaited first, never patched again.
        for ref in sorted(awaited):
            tracker.start(ref, _generation(listed.get(ref)), time.monotonic(), listed.get(ref))
        queue = list(targets)
        restarted: list[WorkloadRef] = []
        deleted: list[WorkloadRef] = []
        left_mismatched: dict[WorkloadRef, str] = {}
        total, done = len(targets) + len(awaited), 0
        while True:
            for ref, obj in tracker.take_finished():
                done += 1
                problem = self._checked(ref, obj)
                if problem is None:
                    self._progress(f"rolled out {ref} ({done} of {total})")
                elif ref in awaited:
                    # Known from an earlier run already: reported at the end, it stops no other restart.
                    left_mismatched[ref] = problem
                else:
                    tracker.fail(problem)
            if tracker.failure is not None:
                raise self._stopped(tracker, tracker.failure, restarted)
            overdue = tracker.overdue(time.monotonic(), self._timeout)
            if overdue:
                raise self._stopped(
                    tracker,
                    f"{len(overdue)} of {total} rollouts did not finish within {self._timeout} s: {name_list(overdue)}",
                    restarted,
                )
            while queue and tracker.failure is None and tracker.in_window() < self._width:
                ref = queue.pop(0)
                try:
                    patched = self._cluster.patch(ref, body)
                except RestartError as exc:
                    raise self._stopped(tracker, str(exc), restarted) from None
                if patched is None:
                    deleted.append(ref)
                    total -= 1
                    continue
                restarted.append(ref)
                tracker.start(ref, _generation(patched), time.monotonic(), slim_workload(patched))
                # One line per workload: if the run fails later, the log still names everything it restarted.
                why = ", ".join(reasons.get(ref, ()))
                self._progress(f"restarted {ref} for {why} ({len(restarted)} of {len(targets)})")
            if not queue and tracker.idle():
                break
            tracker.wait(1.0)
        if left_mismatched:
            done_names = tuple(str(ref) for ref in sorted(restarted))
            first = f"restarted {len(done_names)} workloads ({name_list(done_names)}); " if done_names else ""
            raise RestartError(
                f"{first}{len(left_mismatched)} workloads restarted by an earlier run for this change still run "
                f"other pods than declared: {'; '.join(left_mismatched[ref] for ref in sorted(left_mismatched))}",
                done_names,
            )
        return WindowResult(tuple(restarted), tuple(deleted))

    def _checked(self, ref: WorkloadRef, obj: Mapping[str, Any] | None) -> str | None:
        """Why the finished rollout's pods are wrong, or None; a failure of the check itself is a reason too."""
        if obj is None:
            return None  # deleted while it rolled out: no pods left to check
        try:
            return self._verify(ref, obj)
        except RestartError as exc:
            return f"the check of {ref}'s new pods failed: {exc}"
        except Exception as exc:
            return f"the check of {ref}'s new pods failed unexpectedly ({type(exc).__name__})"

    def _stopped(self, tracker: Tracker, reason: str, restarted: list[WorkloadRef]) -> RestartError:
        rolling = sorted(tracker.rolling)
        done = tuple(str(ref) for ref in sorted(restarted))
        first = f"restarted {len(done)} workloads ({name_list(done)})" if done else "restarted nothing"
        still = f"; still rolling out: {name_list(rolling)}" if rolling else ""
        return RestartError(
            f"{first}, then: {reason}. No further restart was started{still}. The restarts are recorded on the "
            "workloads: a re-run restarts only the others and waits for these",
            done,
        )


def pod_check(cluster: Cluster, request: RestartRequest, replicasets: Listing) -> Verify:
    """A Verify that lists the finished workload's pods (its namespace and selector) and compares them."""

    def verify(ref: WorkloadRef, obj: Mapping[str, Any]) -> str | None:
        pods = cluster.list_all(KINDS["Pod"], namespace=ref.namespace, label_selector=selector_query(obj)).items
        planes = request.planes()
        left = mismatched_pods(
            pods=pods,
            replicasets=replicasets.items,
            owners=[ref],
            cni_enabled=request.cni_enabled,
            proxy_image=request.proxy_image,
            canary=planes.canary,
            canary_namespaces=planes.canary_namespaces,
        )
        if not left:
            return None
        names = name_list(left[ref], limit=3)
        return (
            f"the rollout of {ref} finished, but its pods {names} do not run the declared data plane: istiod "
            "probably injected them before it served the new setting. It is not restarted twice for one change: "
            "restart it by hand (kubectl rollout restart) once istiod is up to date"
        )

    return verify
