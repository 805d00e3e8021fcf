"""The restart against the Kubernetes API emulator, over real HTTP, through the official client.

Nothing in the client is replaced: faults are injected by the emulator, so what is tested is the HTTP
contract (status codes, headers, pagination, watches) the way a real API server would present it.
"""

from __future__ import annotations

import email.utils
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from restart.kube import FIELD_MANAGER, RetryPolicy
from restart.objects import FINGERPRINT_ANNOTATION, RESTARTED_AT_ANNOTATION
from restart.plan import cni_fingerprint
from restart.request import RestartError, RestartRequest
from restart.resource import SidecarRestartProvider
from restart.run import run_restart
from tests.support.kube_emulator import (
    Fault,
    KubeEmulator,
    PodShape,
    add_bare_pod,
    add_daemonset,
    add_deployment,
    add_job_pod,
    add_orphan_replicaset,
    add_statefulset,
    kubeconfig_for,
)

EXCLUDED = ("istio-system", "kube-node-lease", "kube-public", "kube-system")
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=2.0, request_timeout=5.0, watch_window=1.0)
CNI = PodShape(redirect="istio-validation")


@pytest.fixture
def slow_emulator() -> Iterator[KubeEmulator]:
    """A cluster whose rollouts have not replaced the pods yet when the next run lists them."""
    with KubeEmulator(rollout_delay=0.02) as emu:
        yield emu


def request(emu: KubeEmulator, **overrides: Any) -> RestartRequest:
    values: dict[str, Any] = {
        "kubeconfig": emu.kubeconfig(),
        "cni_enabled": True,
        "exclude_namespaces": EXCLUDED,
        "max_concurrent": 4,
        "wait_for_rollout": False,
        "timeout_seconds": 10,
    }
    values.update(overrides)
    return RestartRequest(**values)


def run(emu: KubeEmulator, messages: list[str] | None = None, page_size: int = 500, **overrides: Any) -> Any:
    sink = messages if messages is not None else []
    return run_restart(request(emu, **overrides), sink.append, retry=FAST, page_size=page_size)


def patched(emu: KubeEmulator) -> list[str]:
    """`namespace/name` of every PATCH the emulator answered, in order."""
    return [f"{r.path.split('/')[-3]}/{r.path.split('/')[-1]}" for r in emu.requests if r.method == "PATCH"]


def mixed_cluster(emu: KubeEmulator) -> None:
    add_deployment(emu, "shop", "cart", replicas=2)
    add_deployment(emu, "shop", "web", CNI)
    add_deployment(emu, "shop", "batch", PodShape(sidecar=False))
    add_deployment(emu, "shop", "held", paused=True)
    add_deployment(emu, "kube-system", "coredns")
    add_statefulset(emu, "db", "pg", PodShape(native=True))
    add_statefulset(emu, "db", "legacy", on_delete=True)
    add_daemonset(emu, "mon", "agent")
    add_bare_pod(emu, "shop", "debug")
    add_job_pod(emu, "shop", "migrate")
    add_orphan_replicaset(emu, "shop", "old")


def test_restarts_exactly_the_mismatched_workloads_and_reports_the_rest(emulator: KubeEmulator) -> None:
    mixed_cluster(emulator)
    messages: list[str] = []
    outcome = run(emulator, messages)

    assert outcome.restarted == ("DaemonSet/mon/agent", "Deployment/shop/cart", "StatefulSet/db/pg")
    assert outcome.skipped == {
        "alreadyMatching": ["Deployment/shop/web"],
        "excludedNamespace": ["Deployment/kube-system/coredns"],
        "noSidecar": ["Deployment/shop/batch"],
        "paused": ["Deployment/shop/held"],
    }
    assert outcome.manual_restart == {
        "barePod": ["Pod/shop/debug-0"],
        "job": ["Job/shop/migrate"],
        "onDeleteUpdateStrategy": ["StatefulSet/db/legacy"],
        "replicaSetWithoutDeployment": ["ReplicaSet/shop/old"],
    }
    assert outcome.fingerprint == cni_fingerprint(True, EXCLUDED)
    # Each workload is named as it is restarted (in the order the PATCHes finish), so the log tells what
    # was done even if the run fails later.
    logged = sorted(m for m in messages if m.startswith("restarted "))
    assert [m.split(" (")[0] for m in logged] == [f"restarted {ref}" for ref in outcome.restarted]
    assert sorted(m.split(" (")[1] for m in logged) == ["1 of 3)", "2 of 3)", "3 of 3)"]
    # The bare pod and the Job's pod are reported, never deleted.
    assert emulator.get("pods", "shop", "debug-0") is not None
    assert emulator.get("pods", "shop", "migrate-0") is not None


def test_the_patch_is_kubectls_strategic_merge_plus_the_fingerprint(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart", template_annotations={"team": "shop"})
    outcome = run(emulator)
    annotations = emulator.get("deployments", "shop", "cart")["spec"]["template"]["metadata"]["annotations"]  # type: ignore[index]
    assert annotations == {
        "team": "shop",
        RESTARTED_AT_ANNOTATION: outcome.restarted_at,
        FINGERPRINT_ANNOTATION: outcome.fingerprint,
    }
    assert emulator.get("deployments", "shop", "cart")["metadata"]["generation"] == 2  # type: ignore[index]
    assert [r.content_type for r in emulator.requests if r.method == "PATCH"] == [
        "application/strategic-merge-patch+json"
    ]
    assert [r.query for r in emulator.requests if r.method == "PATCH"] == [f"fieldManager={FIELD_MANAGER}"]


def test_decides_from_cluster_wide_lists_one_patch_per_restart_no_get(emulator: KubeEmulator) -> None:
    for ns in range(6):
        for index in range(5):
            add_deployment(emulator, f"team-{ns}", f"app-{index}", CNI if index % 2 else PodShape())
    outcome = run(emulator, page_size=7)

    assert len(outcome.restarted) == 18
    counts = emulator.request_counts()
    # 30 pods, 30 replicasets, 30 deployments in pages of 7: 5 pages each; one page for the empty kinds.
    assert counts == {
        "list pods": 5,
        "list replicasets": 5,
        "list deployments": 5,
        "list statefulsets": 1,
        "list daemonsets": 1,
        "patch deployments": 18,
    }
    assert all("/namespaces/" not in r.path for r in emulator.requests if r.verb == "list")
    assert sorted(patched(emulator)) == sorted(ref.split("/", 1)[1] for ref in outcome.restarted)


def test_at_most_max_concurrent_patches_in_flight(emulator: KubeEmulator) -> None:
    for index in range(12):
        add_deployment(emulator, "shop", f"app-{index}")
    emulator.latency = 0.05
    run(emulator, max_concurrent=3)
    assert emulator.max_in_flight["PATCH"] == 3


def test_429_is_retried_after_the_time_the_server_asks(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    emulator.faults.append(Fault(method="PATCH", status=429, retry_after=1, times=1))
    started = time.monotonic()
    outcome = run(emulator)
    assert outcome.restarted == ("Deployment/shop/cart",)
    assert time.monotonic() - started >= 1.0
    assert patched(emulator) == ["shop/cart", "shop/cart"]


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({}, id="no-retry-after"),
        pytest.param({"retry_after_header": "in-a-while"}, id="unreadable-retry-after"),
    ],
)
def test_429_without_a_usable_retry_after_backs_off(emulator: KubeEmulator, fault: dict[str, Any]) -> None:
    add_deployment(emulator, "shop", "cart")
    emulator.faults.append(Fault(method="PATCH", status=429, times=2, **fault))
    started = time.monotonic()
    assert run(emulator).restarted == ("Deployment/shop/cart",)
    assert time.monotonic() - started < 1.0, "FAST's backoff is milliseconds"
    assert emulator.count(verb="patch") == 3


def test_429_with_an_http_date_retry_after_waits_until_then(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    # HTTP dates have whole seconds: two seconds ahead waits at least one.
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    emulator.faults.append(Fault(method="PATCH", status=429, retry_after_header=when))
    started = time.monotonic()
    assert run(emulator).restarted == ("Deployment/shop/cart",)
    assert 0.9 <= time.monotonic() - started <= FAST.max_delay + 1


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_with_backoff(emulator: KubeEmulator, status: int) -> None:
    add_deployment(emulator, "shop", "cart")
    emulator.faults.append(Fault(method="PATCH", status=status, times=2))
    emulator.faults.append(Fault(method="GET", path_contains="/pods", status=status, times=1))
    outcome = run(emulator)
    assert outcome.restarted == ("Deployment/shop/cart",)
    assert emulator.count(verb="patch") == 3
    assert emulator.count(verb="list", resource="pods") == 2


def test_dropped_connections_are_retried(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    emulator.faults.append(Fault(method="PATCH", drop=True, times=1))
    emulator.faults.append(Fault(method="GET", path_contains="/replicasets", drop=True, times=1))
    outcome = run(emulator)
    assert outcome.restarted == ("Deployment/shop/cart",)
    assert emulator.count(verb="patch") == 2


def test_a_patch_applied_but_unanswered_is_retried_harmlessly(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    emulator.faults.append(Fault(method="PATCH", drop_after_apply=True))
    outcome = run(emulator, wait_for_rollout=True)
    assert outcome.restarted == ("Deployment/shop/cart",)
    assert emulator.count(verb="patch") == 2
    # The retry carries the same timestamp: the template does not change again, so one rollout only.
    assert emulator.get("deployments", "shop", "cart")["metadata"]["generation"] == 2  # type: ignore[index]
    assert len([key for key in emulator.objects["replicasets"] if key[0] == "shop"]) == 2


def test_an_expired_continue_token_restarts_the_list(emulator: KubeEmulator) -> None:
    for index in range(5):
        add_deployment(emulator, "shop", f"app-{index}")
    emulator.faults.append(Fault(method="GET", path_contains="/pods", query_contains="continue=", status=410))
    outcome = run(emulator, page_size=2)
    assert len(outcome.restarted) == 5
    # 5 pods in pages of 2: 3 pages; the second failed, so the list started over.
    assert emulator.count(verb="list", resource="pods") == 2 + 3


def test_a_partitioned_statefulset_is_left_to_a_person(emulator: KubeEmulator) -> None:
    add_statefulset(emulator, "db", "staged", replicas=3, partition=2)
    add_statefulset(emulator, "db", "pg", replicas=3)
    outcome = run(emulator, wait_for_rollout=True)
    assert outcome.restarted == ("StatefulSet/db/pg",)
    assert outcome.manual_restart == {"partitionedRollout": ["StatefulSet/db/staged"]}


def test_a_pod_whose_replicaset_was_not_listed_is_traced_to_its_deployment(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    # As if the ReplicaSet were created after the ReplicaSets were listed.
    emulator.delete("replicasets", "shop", "cart-5d8f7c")
    assert run(emulator).restarted == ("Deployment/shop/cart",)


def test_persistent_server_errors_fail_after_a_bounded_number_of_attempts(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    emulator.faults.append(Fault(method="PATCH", status=503, message="etcd is sad", times=-1))
    with pytest.raises(
        RestartError, match=r"restarted 0 of 1 workloads, then.*after 4 attempts: HTTP 503: etcd is sad"
    ):
        run(emulator)
    assert emulator.count(verb="patch") == FAST.attempts


def test_a_workload_deleted_between_list_and_patch_is_skipped(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    add_deployment(emulator, "shop", "gone")
    emulator.faults.append(Fault(method="PATCH", path_contains="/deployments/gone", delete_object=True))
    outcome = run(emulator)
    assert outcome.restarted == ("Deployment/shop/cart",)
    assert outcome.skipped == {"deletedBeforeRestart": ["Deployment/shop/gone"]}


def test_forbidden_patch_names_verb_resource_and_namespace(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "team-b", "cart")
    emulator.forbid("patch", "deployments", "team-b")
    with pytest.raises(RestartError) as caught:
        run(emulator)
    message = str(caught.value)
    assert "forbidden: cannot patch deployments in namespace 'team-b'" in message
    assert emulator.token not in message and emulator.token not in repr(caught.value.__cause__)


def test_forbidden_cluster_wide_list_names_verb_and_resource(emulator: KubeEmulator) -> None:
    emulator.forbid("list", "pods")
    with pytest.raises(RestartError, match="forbidden: cannot list pods in all namespaces"):
        run(emulator)
    assert emulator.count(method="PATCH") == 0


def test_rejected_credentials_fail_without_showing_them(emulator: KubeEmulator) -> None:
    with pytest.raises(RestartError, match=r"rejected the kubeconfig's credentials \(401") as caught:
        run(emulator, kubeconfig=emulator.kubeconfig(token="stale-token-123"))
    assert "stale-token-123" not in str(caught.value)


def test_an_unreachable_api_server_fails_clearly_and_quickly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.
    unreachable = RestartRequest(
        kubeconfig=kubeconfig_for(f"http://127.0.0.1:{port}", "t"), cni_enabled=True, exclude_namespaces=()
    )
    started = time.monotonic()
    with pytest.raises(RestartError, match=rf"API server at http://127.0.0.1:{port} is unreachable"):
        run_restart(unreachable, print, retry=FAST)
    assert time.monotonic() - started < 5


def test_an_unreadable_kubeconfig_is_reported_without_its_content() -> None:
    secret_line = "token: super-secret-value: ["
    with pytest.raises(RestartError, match="not valid YAML") as caught:
        run_restart(RestartRequest(kubeconfig=secret_line, cni_enabled=True, exclude_namespaces=()), print, retry=FAST)
    assert "super-secret" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({"contexts": 5}, "cannot be used: AttributeError", id="malformed"),
        pytest.param({"current-context": "nope"}, "cannot be used: ConfigException", id="no-such-context"),
        pytest.param({"clusters": [{"name": "emulator", "cluster": {}}]}, "names no API server", id="no-server"),
    ],
)
def test_a_kubeconfig_the_client_refuses_is_reported_without_its_content(change: dict[str, Any], expected: str) -> None:
    document = {**json.loads(kubeconfig_for("http://127.0.0.1:1", "super-secret-token")), **change}
    request = RestartRequest(kubeconfig=json.dumps(document), cni_enabled=True, exclude_namespaces=())
    with pytest.raises(RestartError, match=expected) as caught:
        run_restart(request, print, retry=FAST)
    assert "super-secret" not in str(caught.value) and caught.value.__cause__ is None


def test_partial_failure_then_a_resumed_run_restarts_only_the_rest(slow_emulator: KubeEmulator) -> None:
    emulator = slow_emulator
    for index in range(6):
        add_deployment(emulator, "shop", f"app-{index}")
    # The fourth PATCH fails hard; with one PATCH at a time, three are restarted before it.
    emulator.faults.append(Fault(method="PATCH", path_contains="/app-3", status=422, message="admission says no"))
    first = ("Deployment/shop/app-0", "Deployment/shop/app-1", "Deployment/shop/app-2")
    with pytest.raises(RestartError, match=rf"restarted 3 of 6 workloads \({', '.join(first)}\), then failed") as c:
        run(emulator, max_concurrent=1)
    assert c.value.restarted == first

    # Their pods are not replaced yet: not restarted again, and reported as such (no wait was asked for).
    resumed = run(emulator, max_concurrent=1)
    assert resumed.restarted == ("Deployment/shop/app-3", "Deployment/shop/app-4", "Deployment/shop/app-5")
    assert resumed.skipped == {"restartedButStillMismatched": list(first)}
    generations = [emulator.get("deployments", "shop", f"app-{i}")["metadata"]["generation"] for i in range(6)]  # type: ignore[index]
    assert generations == [2] * 6, "every workload rolled exactly once for the change"
    assert run(emulator).restarted == ()


def test_waits_for_every_rollout_with_one_watch_per_kind_then_checks_the_pods() -> None:
    with KubeEmulator(rollout_delay=0.2, reinject="istio-validation") as emu:
        mixed_cluster(emu)
        messages: list[str] = []
        outcome = run(emu, messages, wait_for_rollout=True)
        assert len(outcome.restarted) == 3
        assert "3 of 3 rolled out" in messages
        assert emu.count(verb="watch") == 3
        assert {r.resource for r in emu.requests if r.verb == "watch"} == {"deployments", "statefulsets", "daemonsets"}
        # One more list of pods after the wait; the Deployment's old pods are still terminating then.
        assert emu.count(verb="list", resource="pods") == 2
        assert emu.get("pods", "shop", "cart-5d8f7c-0")["metadata"]["deletionTimestamp"]  # type: ignore[index]
        for ref in outcome.restarted:
            kind, namespace, name = ref.split("/")
            obj = emu.get({"Deployment": "deployments", "StatefulSet": "statefulsets"}.get(kind, "daemonsets"),
                          namespace, name)  # fmt: skip
            assert obj is not None and obj["status"]["observedGeneration"] == 2
        # Re-injected pods match now: a second run finds nothing to do.
        assert run(emu).restarted == ()


def test_a_rollout_that_does_not_finish_fails_naming_it_and_keeps_the_record(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    add_deployment(emulator, "shop", "stuck")
    emulator.stall("deployments", "shop", "stuck")
    started = time.monotonic()
    with pytest.raises(RestartError, match=r"1 of 2 rollouts did not finish within 1 s: Deployment/shop/stuck$") as c:
        run(emulator, wait_for_rollout=True, timeout_seconds=1)
    assert time.monotonic() - started < 5
    assert c.value.restarted == ("Deployment/shop/cart", "Deployment/shop/stuck")
    assert run(emulator).skipped == {
        "alreadyMatching": ["Deployment/shop/cart"],
        "restartedButStillMismatched": ["Deployment/shop/stuck"],
    }


def test_a_rerun_after_a_stuck_rollout_waits_for_it_again_and_never_reports_success_early(
    emulator: KubeEmulator,
) -> None:
    add_deployment(emulator, "shop", "stuck")
    emulator.stall("deployments", "shop", "stuck")
    with pytest.raises(RestartError, match="did not finish"):
        run(emulator, wait_for_rollout=True, timeout_seconds=1)

    # Still stuck: the re-run does not patch it again, waits for it, and fails again.
    with pytest.raises(RestartError, match=r"restarted nothing, then: 1 of 1 rollouts did not finish.*stuck") as c:
        run(emulator, wait_for_rollout=True, timeout_seconds=1)
    assert c.value.restarted == ()
    assert emulator.count(verb="patch") == 1

    # Once the rollout goes through, the re-run succeeds, still without a second restart.
    emulator.unstall("deployments", "shop", "stuck")
    outcome = run(emulator, wait_for_rollout=True, timeout_seconds=5)
    assert outcome.restarted == ()
    assert outcome.skipped == {"alreadyMatching": ["Deployment/shop/stuck"]}
    assert emulator.count(verb="patch") == 1


def test_a_rerun_while_the_rollout_is_still_running_waits_for_it(slow_emulator: KubeEmulator) -> None:
    add_deployment(slow_emulator, "shop", "busy")
    slow_emulator.stall("deployments", "shop", "busy")
    run(slow_emulator)
    # `busy` is still rolling when the next run lists it; it finishes, re-injected, during that run's wait.
    slow_emulator.reinject = "istio-validation"
    finish = threading.Timer(0.1, slow_emulator.unstall, args=("deployments", "shop", "busy"))
    slow_emulator.faults.append(Fault(method="GET", watch=True, action=finish.start))
    outcome = run(slow_emulator, wait_for_rollout=True, timeout_seconds=5)
    assert outcome.restarted == ()
    assert outcome.skipped == {"alreadyRestarted": ["Deployment/shop/busy"]}
    assert slow_emulator.count(verb="patch") == 1 and slow_emulator.count(verb="watch") == 1


def test_pods_injected_for_the_old_setting_after_the_rollout_fail_the_run_and_the_rerun() -> None:
    # istiod had not loaded the CNI setting yet: the new pods come with `istio-init` again.
    with KubeEmulator(rollout_delay=0.02, reinject="istio-init") as emu:
        add_deployment(emu, "shop", "cart", replicas=2)
        add_deployment(emu, "shop", "web", CNI)
        pattern = r"still run pods without istio-validation: Deployment/shop/cart \(pods cart-7b0000-0, cart-7b0000-1\)"
        with pytest.raises(RestartError, match=pattern) as caught:
            run(emu, wait_for_rollout=True)
        assert caught.value.restarted == ("Deployment/shop/cart",)
        # No second restart for the same change: the re-run checks again and fails again.
        with pytest.raises(RestartError, match=pattern):
            run(emu, wait_for_rollout=True)
        assert emu.count(verb="patch") == 1


def test_a_deployment_past_its_progress_deadline_fails_the_wait_at_once(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    add_deployment(emulator, "shop", "slow")
    emulator.stall("deployments", "shop", "slow")
    add_deployment(emulator, "shop", "broken")
    emulator.exceed_progress_deadline("shop", "broken")
    started = time.monotonic()
    with pytest.raises(RestartError, match=r"the rollout of Deployment/shop/broken failed: .*timed out progressing"):
        run(emulator, wait_for_rollout=True, timeout_seconds=30)
    assert time.monotonic() - started < 5


def test_a_forbidden_watch_fails_the_wait_promptly_while_another_kind_still_waits(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    emulator.stall("deployments", "shop", "cart")
    add_daemonset(emulator, "mon", "agent")
    emulator.forbid("watch", "daemonsets")
    started = time.monotonic()
    with pytest.raises(RestartError, match=r"restarted 2 workloads .*forbidden: cannot watch daemonsets") as caught:
        run(emulator, wait_for_rollout=True, timeout_seconds=30)
    assert time.monotonic() - started < 5, "the deployment watcher stops within its window"
    assert caught.value.restarted == ("DaemonSet/mon/agent", "Deployment/shop/cart")


def test_a_watch_cut_mid_stream_resumes_where_it_was(emulator: KubeEmulator) -> None:
    for name in ("a", "b", "c"):
        add_deployment(emulator, "shop", name)
    emulator.rollout_delay = 0.2
    # The first watch delivers the three PATCH events, then the connection drops before any rollout ends.
    emulator.faults.append(Fault(method="GET", watch=True, drop_after_events=3))
    outcome = run(emulator, wait_for_rollout=True, timeout_seconds=10)
    assert len(outcome.restarted) == 3
    watches = [r for r in emulator.requests if r.verb == "watch"]
    assert len(watches) == 2
    assert watches[0].query != watches[1].query, "the second watch resumes from the last event seen"


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 410}, id="http-410"),
        pytest.param({"compact": True}, id="expired-event"),
        pytest.param({"drop": True}, id="dropped"),
        pytest.param({"status": 503}, id="503"),
    ],
)
def test_the_wait_survives_expired_and_dropped_watches(emulator: KubeEmulator, fault: dict[str, Any]) -> None:
    add_deployment(emulator, "shop", "cart")
    emulator.rollout_delay = 0.2
    if fault.pop("compact", False):
        emulator.faults.append(Fault(method="GET", watch=True, action=emulator.compact))
    else:
        emulator.faults.append(Fault(method="GET", watch=True, **fault))
    outcome = run(emulator, wait_for_rollout=True, timeout_seconds=10)
    assert outcome.restarted == ("Deployment/shop/cart",)
    assert emulator.count(verb="watch") == 2


def test_emulator_objects_are_valid_for_the_clients_models(emulator: KubeEmulator) -> None:
    mixed_cluster(emulator)
    configuration = client.Configuration()
    config.load_kube_config_from_dict(yaml.safe_load(emulator.kubeconfig()), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        assert len(core.list_pod_for_all_namespaces().items) == 13
        assert apps.list_daemon_set_for_all_namespaces().items[0].status.number_misscheduled == 0
        assert len(apps.list_stateful_set_for_all_namespaces().items) == 2
        assert len(apps.list_replica_set_for_all_namespaces().items) == 6
        assert len(apps.list_namespaced_deployment("shop", label_selector="app=cart").items) == 1
        assert len(apps.list_namespaced_deployment("shop", limit=2).items) == 2


# -- the provider's methods, called directly -----------------------------------------------------------------


def props(emu: KubeEmulator, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "cniEnabled": True,
        "excludeNamespaces": list(EXCLUDED),
        "kubeconfig": emu.kubeconfig(),
        "maxConcurrent": 4,
        "waitForRollout": False,
        "timeoutSeconds": 30,
    }
    values.update(overrides)
    return SidecarRestartProvider().check({}, values).inputs


def test_provider_check_and_diff_make_no_api_call(emulator: KubeEmulator) -> None:
    provider = SidecarRestartProvider()
    olds = props(emulator)
    assert provider.diff("id", olds, props(emulator)).changes is False
    assert provider.diff("id", olds, props(emulator, cniEnabled=False)).changes is True
    assert emulator.requests == []


def test_provider_create_restarts_and_update_restarts_only_on_a_cni_change(slow_emulator: KubeEmulator) -> None:
    emulator = slow_emulator
    add_deployment(emulator, "shop", "cart")
    add_deployment(emulator, "shop", "web", CNI)
    provider = SidecarRestartProvider()
    created = provider.create(props(emulator))
    assert created.outs is not None and created.outs["restarted"] == ["Deployment/shop/cart"]
    assert emulator.count(method="PATCH") == 1

    rotated = props(emulator, kubeconfig=emulator.kubeconfig() + "\n", maxConcurrent=2)
    before = len(emulator.requests)
    updated = provider.update(created.id, created.outs, rotated)
    assert len(emulator.requests) == before, "a kubeconfig rotation or option change talks to no cluster"
    assert updated.outs is not None and updated.outs["restarted"] == ["Deployment/shop/cart"]
    assert updated.outs["maxConcurrent"] == 2

    switched = provider.update(created.id, updated.outs, props(emulator, cniEnabled=False))
    assert switched.outs is not None and switched.outs["restarted"] == ["Deployment/shop/web"]
    assert switched.outs["fingerprint"] == cni_fingerprint(False, EXCLUDED)

    # The exclusions mean nothing while the CNI stays off: a state update, no restart.
    before = len(emulator.requests)
    relisted = provider.update(created.id, switched.outs, props(emulator, cniEnabled=False, excludeNamespaces=["x"]))
    assert len(emulator.requests) == before
    assert relisted.outs is not None and relisted.outs["excludeNamespaces"] == ["x"]
    assert relisted.outs["fingerprint"] == switched.outs["fingerprint"]

    provider.delete(created.id, switched.outs)
    assert emulator.count(method="PATCH") == 2


def test_provider_failure_keeps_the_kubeconfig_out_of_the_error(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "team-b", "cart")
    emulator.forbid("patch", "deployments", "team-b")
    with pytest.raises(RestartError, match="sidecar restart failed: restarted 0 of 1") as caught:
        SidecarRestartProvider().create(props(emulator))
    chain = [caught.value, caught.value.__cause__, caught.value.__cause__.__cause__]  # type: ignore[union-attr]
    assert all(emulator.token not in str(exc) for exc in chain)


def test_provider_failure_names_what_was_restarted(emulator: KubeEmulator) -> None:
    for index in range(25):
        add_deployment(emulator, "shop", f"app-{index:02d}")
    emulator.stall("deployments", "shop", "app-00")
    with pytest.raises(RestartError, match=r"restarted 25 workloads \(Deployment/shop/app-00, .* and 5 more\)") as c:
        SidecarRestartProvider().create(props(emulator, waitForRollout=True, timeoutSeconds=1))
    assert len(c.value.restarted) == 25


def test_an_unexpected_error_is_wrapped_without_the_kubeconfig(emulator: KubeEmulator) -> None:
    # A list whose items are not objects: no error of ours expects it.
    emulator.faults.append(Fault(method="GET", path_contains="/pods", body=b'{"metadata": {}, "items": ["x"]}'))
    with pytest.raises(RestartError, match=r"failed unexpectedly \(builtins.AttributeError\)") as caught:
        SidecarRestartProvider().create(props(emulator))
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert emulator.token not in str(caught.value)


def test_an_exec_plugin_kubeconfig_like_kubelogins_signs_every_request(emulator: KubeEmulator, tmp_path: Any) -> None:
    """Entra ID clusters hand out a kubeconfig that runs kubelogin; the restart must work with one."""
    calls = tmp_path / "calls"
    plugin = tmp_path / "fake-kubelogin"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": emulator.token},
    }
    plugin.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(calls)!r}, 'a').write('x')\nprint({json.dumps(credential)!r})\n"
    )
    plugin.chmod(0o755)
    kubeconfig = json.loads(emulator.kubeconfig())
    kubeconfig["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "args": ["get-token", "--login", "azurecli"],
        }
    }
    add_deployment(emulator, "shop", "cart", PodShape(redirect="istio-init"))
    outcome = run(emulator, kubeconfig=json.dumps(kubeconfig))
    assert outcome.restarted == ("Deployment/shop/cart",)
    assert calls.read_text()  # the plugin supplied the token
    assert patched(emulator) == ["shop/cart"]
