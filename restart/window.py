"""The rollout window, the restart's only executor: it restarts the planned workloads through a window of slots.

A restart takes a slot when its PATCH is sent. With `waitForRollout` the slot frees when the workload has rolled
out and its new pods were checked against the declared data plane; without, when the PATCH returns. The first
failure (a PATCH refused, a controller that gave up, a rollout past `timeoutSeconds`, new pods that run something
else than declared) stops new restarts; the PATCHes in flight finish, so the failure names every workload
restarted.

Slow start (`slowStart`, the default): the window opens with one slot, and each success opens one more, up to
`maxConcurrent`. A bad change thus stops at the first workload it reaches, while a healthy one doubles its width
every round (1, 2, 4, 8, then `maxConcurrent`), as TCP's slow start does: it pays about log2(`maxConcurrent`)
rounds once, not a round per workload.

Requests: one PATCH per restarted workload; with `waitForRollout`, one watch per restarted kind, from the
planning list's resourceVersion (renewed every `watch_window` seconds; a 410 relists that kind), and one pod list
per finished rollout, of that workload's pods alone (namespace and label selector).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import urllib3

from restart.kube import KINDS, Cluster, GoneError, Kind, Listing, RetryPolicy, WatchHandle
from restart.objects import CAPTURED_ANNOTATION, WorkloadRef, ref_of, selector_query, slim_workload
from restart.plan import RestartPlan, mismatched_pods
from restart.request import RestartError, RestartRequest, name_list
from restart.rollout import rollout_complete, rollout_failure
from settings.data_plane import DeclaredDataPlane
from settings.model import AMBIENT_MODE

Progress = Callable[[str], None]
Verify = Callable[[WorkloadRef, Mapping[str, Any]], str | None]
"""Checks a finished rollout's pods; returns why they are not on the declared data plane, or None."""


def _uid(obj: Mapping[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("uid") or "")


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
    sent: set[WorkloadRef] = field(default_factory=set)
    """PATCHes sent whose answer the window has not taken yet."""
    answers: list[tuple[WorkloadRef, Mapping[str, Any] | BaseException | None]] = field(default_factory=list)
    """PATCH answers: the patched workload, None (it was deleted first), or what the PATCH raised."""
    rolling: dict[WorkloadRef, _Rollout] = field(default_factory=dict)
    finished: list[tuple[WorkloadRef, Mapping[str, Any] | None]] = field(default_factory=list)
    """Rollouts done (or workloads deleted: None) and not yet checked by the window."""
    failure: str | None = None
    latest: dict[WorkloadRef, Mapping[str, Any] | None] = field(default_factory=dict)
    gone: dict[WorkloadRef, str] = field(default_factory=dict)
    """The uid of each planned workload the watch saw deleted: a PATCH answer of that same object is older."""
    changed: threading.Condition = field(default_factory=threading.Condition)

    def start(self, ref: WorkloadRef, generation: int, started: float, seen: Mapping[str, Any] | None) -> None:
        """Await `ref` at `generation`; `seen` is its newest object known here (the PATCH's answer, a listing)."""
        with self.changed:
            self.rolling[ref] = _Rollout(generation, started)
            # A watch event may already have brought a newer object, or an older one (even a deletion before
            # the workload was recreated and patched): keep whichever has the newer generation. At the same one the
            # event is the newer: `seen` is the PATCH's answer or a listing, and the watch runs on after either.
            # A deletion of the very object `seen` shows came after it, whatever the generations say.
            deleted_since = seen is not None and ref in self.gone and self.gone[ref] == _uid(seen)
            if seen is not None and not deleted_since and _generation(seen) > _generation(self.latest.get(ref)):
                self.latest[ref] = seen
            self._settle(ref)

    def in_window(self) -> int:
        """Workloads being patched, rolling out, or rolled out and not yet checked: each takes a slot."""
        with self.changed:
            return len(self.sent) + len(self.rolling) + len(self.finished)

    def send(self, ref: WorkloadRef) -> None:
        with self.changed:
            self.sent.add(ref)

    def answer(self, ref: WorkloadRef, answer: Mapping[str, Any] | BaseException | None) -> None:
        with self.changed:
            self.answers.append((ref, answer))
            self.changed.notify_all()

    def await_answers(self) -> None:
        """Until every PATCH sent has answered (each is bounded by its request timeout and retries)."""
        with self.changed:
            while self.sent - {ref for ref, _ in self.answers}:
                self.changed.wait(0.5)

    def take_answers(self) -> list[tuple[WorkloadRef, Mapping[str, Any] | BaseException | None]]:
        with self.changed:
            taken, self.answers = self.answers, []
            self.sent.difference_update(ref for ref, _ in taken)
            return taken

    def observe(self, ref: WorkloadRef, obj: Mapping[str, Any] | None, *, deleted_uid: str = "") -> None:
        """The newest object the watch (or a relist) shows of `ref`; None when it was deleted (`deleted_uid`: which)."""
        if ref not in self.targets:
            return
        with self.changed:
            self.latest[ref] = obj
            if obj is None and deleted_uid:
                self.gone[ref] = deleted_uid
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
            return not self.sent and not self.answers and not self.rolling and not self.finished

    def take_finished(self) -> list[tuple[WorkloadRef, Mapping[str, Any] | None]]:
        with self.changed:
            done, self.finished = self.finished, []
            return done

    def overdue(self, now: float, timeout_seconds: float) -> list[WorkloadRef]:
        with self.changed:
            return sorted(ref for ref, rollout in self.rolling.items() if now - rollout.started > timeout_seconds)

    def wait(self, seconds: float) -> None:
        with self.changed:
            if not self.finished and not self.answers and self.failure is None:
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
                        ref = ref_of(kind.kind, obj)
                        if event.get("type") == "DELETED":
                            tracker.observe(ref, None, deleted_uid=_uid(obj))
                        else:
                            tracker.observe(ref, slim_workload(obj))
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
    """Patched by this run, in the order their PATCHes returned."""
    deleted: tuple[WorkloadRef, ...]
    """Gone before their PATCH."""


class Window:
    """Restarts a plan's workloads in its order through the window; with `wait_for_rollout`, also awaits the ones an
    earlier run restarted for this same data plane (at the generation they have in the listing: the one that
    earlier restart produced)."""

    def __init__(
        self, cluster: Cluster, request: RestartRequest, *, retry: RetryPolicy, progress: Progress, verify: Verify
    ) -> None:
        self._cluster, self._retry, self._progress, self._verify = cluster, retry, progress, verify
        self._widest = max(1, request.max_concurrent)
        self._slow_start, self._wait = request.slow_start, request.wait_for_rollout
        self._timeout = request.timeout_seconds

    def width(self, successes: int) -> int:
        """The slots open after `successes` successful restarts."""
        return min(self._widest, 1 + successes) if self._slow_start else self._widest

    def run(self, plan: RestartPlan, listings: Mapping[str, Listing], body: dict[str, Any]) -> WindowResult:
        awaited = plan.recheck if self._wait else ()
        tracker = Tracker(frozenset((*plan.restart, *awaited)))
        kinds = sorted({ref.kind for ref in tracker.targets}) if self._wait else []
        stop, handles = threading.Event(), [WatchHandle() for _ in kinds]
        with (
            ThreadPoolExecutor(max_workers=max(1, len(kinds)), thread_name_prefix="rollout") as watchers,
            ThreadPoolExecutor(max_workers=self._widest, thread_name_prefix="restart") as patches,
        ):
            for kind, handle in zip(kinds, handles, strict=True):
                watchers.submit(
                    watch_kind, self._cluster, KINDS[kind], listings[kind], tracker, self._retry, stop, handle
                )

            def patch(ref: WorkloadRef) -> None:
                try:
                    tracker.answer(ref, self._cluster.patch(ref, body))
                except BaseException as exc:
                    tracker.answer(ref, exc)

            try:
                return self._slide(tracker, plan, awaited, listings, lambda ref: patches.submit(patch, ref))
            finally:
                stop.set()
                for handle in handles:
                    handle.close()

    def _slide(
        self,
        tracker: Tracker,
        plan: RestartPlan,
        awaited: tuple[WorkloadRef, ...],
        listings: Mapping[str, Listing],
        send: Callable[[WorkloadRef], object],
    ) -> WindowResult:
        listed = {ref_of(kind, obj): obj for kind in {ref.kind for ref in awaited} for obj in listings[kind].items}
        # Restarted by an earlier run for this same data plane: awaited first, never patched again.
        for ref in sorted(awaited):
            tracker.start(ref, _generation(listed.get(ref)), time.monotonic(), listed.get(ref))
        queue = list(plan.restart)
        restarted: list[WorkloadRef] = []
        deleted: list[WorkloadRef] = []
        left_mismatched: dict[WorkloadRef, str] = {}
        successes, rolled, total = 0, 0, len(plan.restart) + len(awaited)

        def take_answers() -> None:
            nonlocal successes, total
            for ref, answer in tracker.take_answers():
                if isinstance(answer, BaseException):
                    # Only our own messages are quoted: another exception's text may carry a credential.
                    why = str(answer) if isinstance(answer, RestartError) else f"an unexpected {type(answer).__name__}"
                    tracker.fail(why)
                elif answer is None:
                    deleted.append(ref)
                    total -= 1  # gone before its PATCH: nothing to roll out
                else:
                    restarted.append(ref)
                    # One line per workload: if the run fails later, the log still names everything it restarted.
                    why = ", ".join(plan.reasons.get(ref, ()))
                    self._progress(f"restarted {ref} for {why} ({len(restarted)} of {len(plan.restart)})")
                    if self._wait:
                        tracker.start(ref, _generation(answer), time.monotonic(), slim_workload(answer))
                    else:
                        successes += 1

        while True:
            take_answers()
            for ref, obj in tracker.take_finished():
                rolled += 1
                problem = self._checked(ref, obj)
                if problem is None:
                    successes += 1
                    self._progress(f"rolled out {ref} ({rolled} of {total})")
                elif ref in awaited:
                    # Known from an earlier run already: reported at the end, it stops no other restart.
                    left_mismatched[ref] = problem
                else:
                    tracker.fail(problem)
            overdue = tracker.overdue(time.monotonic(), self._timeout)
            if overdue:
                tracker.fail(
                    f"{len(overdue)} of {total} rollouts did not finish within {self._timeout} s: {name_list(overdue)}"
                )
            if tracker.failure is not None:
                # The PATCHes in flight finish first, so that the failure names every workload restarted.
                tracker.await_answers()
                take_answers()
                raise self._stopped(tracker, len(plan.restart), restarted, left_mismatched)
            # A watcher may report a failure at any moment: none is sent after it.
            while queue and tracker.failure is None and tracker.in_window() < self.width(successes):
                ref = queue.pop(0)
                tracker.send(ref)
                send(ref)
            if not queue and tracker.idle():
                break
            tracker.wait(1.0)
        if left_mismatched:
            done = tuple(str(ref) for ref in sorted(restarted))
            first = f"restarted {len(done)} workloads ({name_list(done)}); " if done else ""
            raise RestartError(
                f"{first}{len(left_mismatched)} workloads restarted by an earlier run for this change still run "
                f"other pods than declared: {'; '.join(left_mismatched[ref] for ref in sorted(left_mismatched))}",
                done,
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

    def _stopped(
        self, tracker: Tracker, planned: int, restarted: list[WorkloadRef], left_mismatched: Mapping[WorkloadRef, str]
    ) -> RestartError:
        rolling = sorted(tracker.rolling)
        done = tuple(str(ref) for ref in sorted(restarted))
        first = f"restarted {len(done)} of {planned} workloads" + (f" ({name_list(done)})" if done else "")
        if not planned:
            first = "restarted nothing"  # only workloads an earlier run restarted were awaited
        still = f"; still rolling out: {name_list(rolling)}" if rolling else ""
        then = " and waits for these" if self._wait else ""
        earlier = (
            f". Besides, {len(left_mismatched)} workloads restarted by an earlier run for this change still run other "
            f"pods than declared: {'; '.join(left_mismatched[ref] for ref in sorted(left_mismatched))}"
            if left_mismatched
            else ""
        )
        return RestartError(
            f"{first}, then: {tracker.failure}. No further restart was started{still}. The restarts are recorded on "
            f"the workloads: a re-run restarts only the others{then}{earlier}",
            done,
        )


def pod_check(cluster: Cluster, data_plane: DeclaredDataPlane, replicasets: Listing) -> Verify:
    """A Verify that lists the finished workload's pods (its namespace and selector) and compares them."""

    def verify(ref: WorkloadRef, obj: Mapping[str, Any]) -> str | None:
        pods = cluster.list_all(KINDS["Pod"], namespace=ref.namespace, label_selector=selector_query(obj)).items
        left = mismatched_pods(data_plane, pods=pods, replicasets=replicasets.items, owners=[ref])
        if not left:
            return None
        names = name_list(left[ref], limit=3)
        if data_plane.mode(ref.namespace) == AMBIENT_MODE:
            cause = (
                "in ambient mode they must run no sidecar and be captured by ztunnel: check that the namespace has no "
                f"injection label, and that the CNI node agent runs on their nodes (annotation {CAPTURED_ANNOTATION})"
            )
        else:
            cause = "istiod probably injected them before it served the new setting"
        return (
            f"the rollout of {ref} finished, but its pods {names} do not run the declared data plane: {cause}. "
            "It is not restarted twice for one change: restart it by hand (kubectl rollout restart) once that is "
            "mended"
        )

    return verify
