"""The rollout window's rules over a scripted cluster: what a bad change can reach, and what stops it.

The real control plane (`test_cluster_upgrades.py`) shows the window end to end; here the order of events is
chosen, so that the bounds hold in every interleaving that matters, not only in the ones a real one produces.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from restart.kube import Kind, Listing, RetryPolicy, WatchHandle
from restart.objects import WorkloadRef
from restart.plan import RestartPlan
from restart.request import RestartError, RestartRequest
from restart.window import Window
from settings.data_plane import ControlPlane, DeclaredDataPlane

FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05, request_timeout=1.0, watch_window=0.2)


def deployment(ref: WorkloadRef, generation: int, observed: int) -> dict[str, Any]:
    return {
        "metadata": {"name": ref.name, "namespace": ref.namespace, "generation": generation},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": ref.name}}},
        "status": {"observedGeneration": observed, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
    }


class ScriptedCluster:
    """PATCH answers at once; the watch then reports that rollout finished (unless `stuck`)."""

    def __init__(self, stuck: frozenset[str] = frozenset(), refused: frozenset[str] = frozenset()) -> None:
        self.patched: list[WorkloadRef] = []
        self.stuck, self.refused = stuck, refused
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Condition()

    def patch(self, ref: WorkloadRef, _body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.patched.append(ref)
            if ref.name in self.refused:
                raise RestartError(f"PATCH of {ref} was refused")
            if ref.name not in self.stuck:
                self._events.append({"type": "MODIFIED", "object": deployment(ref, 2, 2)})
                self._lock.notify_all()
        return deployment(ref, 2, 1)

    def watch(
        self, _kind: Kind, _rv: str, seconds: float, _handle: WatchHandle | None = None
    ) -> Iterator[dict[str, Any]]:
        with self._lock:
            self._lock.wait_for(lambda: bool(self._events), timeout=seconds)
            events, self._events = self._events, []
        yield from events

    def list_all(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None) -> Listing:
        return Listing([], "1")


REFS = tuple(WorkloadRef("Deployment", "shop", f"app-{i}") for i in range(6))
LISTINGS = {"Deployment": Listing([deployment(ref, 1, 1) for ref in REFS], "1")}


def window(
    cluster: ScriptedCluster,
    verify: Any,
    width: int = 2,
    timeout: int = 30,
    slow_start: bool = False,
    wait: bool = True,
) -> Window:
    request = RestartRequest(
        kubeconfig="",
        data_plane=DeclaredDataPlane(ControlPlane("default", "", "")),
        max_concurrent=width,
        wait_for_rollout=wait,
        slow_start=slow_start,
        timeout_seconds=timeout,
    )
    return Window(cluster, request, retry=FAST, progress=lambda _l: None, verify=verify)  # type: ignore[arg-type]


def plan(restart: tuple[WorkloadRef, ...] = REFS, recheck: tuple[WorkloadRef, ...] = ()) -> RestartPlan:
    return RestartPlan(fingerprint="f", restart=restart, recheck=recheck)


def test_a_bad_change_reaches_at_most_the_windows_width() -> None:
    """Every new pod is wrong: the first check fails, and no restart starts after it."""
    cluster = ScriptedCluster()
    with pytest.raises(RestartError, match=r"then: bad pods of Deployment/shop/app-\d\. No further restart") as caught:
        window(cluster, lambda ref, _obj: f"bad pods of {ref}").run(plan(), LISTINGS, {})
    assert len(cluster.patched) <= 2, cluster.patched
    assert set(caught.value.restarted) == {str(ref) for ref in cluster.patched}


def test_a_good_change_goes_through_in_order_never_more_than_the_width_at_once() -> None:
    cluster = ScriptedCluster()
    in_flight: list[int] = []

    def verify(_ref: WorkloadRef, _obj: Mapping[str, Any]) -> None:
        in_flight.append(len(cluster.patched))
        return None

    result = window(cluster, verify, width=2).run(plan(), LISTINGS, {})
    assert result.restarted == REFS
    # When the n-th check runs, at most n + 1 restarts have started: one slot frees only after a check.
    assert all(started <= checked + 2 for checked, started in enumerate(in_flight)), in_flight


def test_a_failing_check_is_reported_with_what_was_restarted() -> None:
    def verify(_ref: WorkloadRef, _obj: Mapping[str, Any]) -> None:
        raise RestartError("forbidden: cannot list pods in namespace 'shop'")

    cluster = ScriptedCluster()
    with pytest.raises(
        RestartError, match=r"^restarted [12] of 6 workloads .*the check of .* failed: forbidden"
    ) as caught:
        window(cluster, verify).run(plan(), LISTINGS, {})
    assert caught.value.restarted


def test_an_unknown_error_of_the_check_is_shown_by_its_type_alone() -> None:
    def verify(_ref: WorkloadRef, _obj: Mapping[str, Any]) -> None:
        raise ValueError("Invalid header value b'Bearer secret-token-123'")

    with pytest.raises(RestartError, match=r"failed unexpectedly \(ValueError\)") as caught:
        window(ScriptedCluster(), verify).run(plan(), LISTINGS, {})
    assert "secret-token-123" not in str(caught.value)


def test_a_workload_restarted_earlier_that_still_mismatches_does_not_block_the_others() -> None:
    earlier = REFS[0]
    cluster = ScriptedCluster()

    def verify(ref: WorkloadRef, _obj: Mapping[str, Any]) -> str | None:
        return f"{ref} still runs istio-init" if ref == earlier else None

    listings = {"Deployment": Listing([deployment(earlier, 2, 2), *LISTINGS["Deployment"].items[1:]], "1")}
    with pytest.raises(
        RestartError, match=r"restarted 5 workloads .*1 workloads restarted by an earlier run"
    ) as caught:
        window(cluster, verify).run(plan(REFS[1:], (earlier,)), listings, {})
    assert cluster.patched == list(REFS[1:]), "the others were restarted all the same"
    assert len(caught.value.restarted) == 5


def test_a_stuck_rollout_times_out_and_stops_new_restarts() -> None:
    cluster = ScriptedCluster(stuck=frozenset({"app-0", "app-1"}))
    with pytest.raises(RestartError, match=r"2 of 6 rollouts did not finish within 1 s"):
        window(cluster, lambda _r, _o: None, width=2, timeout=1).run(plan(), LISTINGS, {})
    assert cluster.patched == list(REFS[:2])


def test_with_slow_start_a_bad_change_stops_at_the_first_workload() -> None:
    cluster = ScriptedCluster()
    with pytest.raises(RestartError, match=r"^restarted 1 of 6 workloads \(Deployment/shop/app-0\), then: bad"):
        window(cluster, lambda ref, _obj: f"bad pods of {ref}", width=4, slow_start=True).run(plan(), LISTINGS, {})
    assert cluster.patched == [REFS[0]]


def test_with_slow_start_each_success_opens_one_more_slot() -> None:
    cluster = ScriptedCluster()
    started_at_check: list[int] = []

    def verify(_ref: WorkloadRef, _obj: Mapping[str, Any]) -> None:
        started_at_check.append(len(cluster.patched))

    result = window(cluster, verify, width=4, slow_start=True).run(plan(), LISTINGS, {})
    assert result.restarted == REFS
    # At the k-th check, k - 1 rollouts succeeded, so min(4, k) slots are open besides the k - 1 checked ones.
    assert started_at_check[0] == 1
    assert all(started <= min(4, k) + k - 1 for k, started in enumerate(started_at_check, 1)), started_at_check


def test_without_waiting_a_slot_frees_when_the_patch_returns_and_a_refused_patch_stops_the_rest() -> None:
    cluster = ScriptedCluster(refused=frozenset({"app-2"}))
    with pytest.raises(RestartError, match=r"then: PATCH of Deployment/shop/app-2 was refused\. No further") as caught:
        window(cluster, lambda _r, _o: None, width=1, wait=False).run(plan(), LISTINGS, {})
    assert cluster.patched == list(REFS[:3]), "one at a time, in order, none after the refusal"
    assert caught.value.restarted == tuple(str(ref) for ref in REFS[:2])


def test_without_waiting_every_workload_is_patched_once_and_none_is_checked() -> None:
    cluster = ScriptedCluster(stuck=frozenset(ref.name for ref in REFS))
    result = window(cluster, lambda _r, _o: "never called", width=3, wait=False).run(plan(), LISTINGS, {})
    assert sorted(result.restarted) == sorted(REFS) and sorted(cluster.patched) == sorted(REFS)


class DeletingCluster(ScriptedCluster):
    """Every patched workload is deleted at once: the watch reports the deletion before the window takes the answer."""

    def patch(self, ref: WorkloadRef, _body: Mapping[str, Any]) -> dict[str, Any]:
        answer = deployment(ref, 2, 1)
        answer["metadata"]["uid"] = f"uid-{ref.name}"
        with self._lock:
            self.patched.append(ref)
            self._events.append({"type": "DELETED", "object": {**answer, "metadata": dict(answer["metadata"])}})
            self._lock.notify_all()
        return answer


def test_a_workload_deleted_right_after_its_patch_is_not_awaited_until_the_timeout() -> None:
    cluster = DeletingCluster()
    started = time.monotonic()
    result = window(cluster, lambda _r, _o: "never called: nothing left to check", timeout=5).run(
        plan(REFS[:2]), LISTINGS, {}
    )
    assert sorted(result.restarted) == sorted(REFS[:2])
    assert time.monotonic() - started < 4, "the deletion ended the wait; the timeout did not"
