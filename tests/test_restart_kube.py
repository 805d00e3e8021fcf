"""The restart against the Kubernetes API emulator, over real HTTP, through the official client.

Nothing in the client is replaced: faults are injected by the emulator, so what is tested is the HTTP
contract (status codes, headers, pagination, watches) the way a real API server would present it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from components.restart import SidecarRestartProvider
from components.restart_kube import RestartError, RestartRequest, RetryPolicy, run_restart
from components.restart_plan import FINGERPRINT_ANNOTATION, RESTARTED_AT_ANNOTATION, cni_fingerprint
from tests.kube_emulator import (
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
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=2.0, request_timeout=5.0)
CNI = PodShape(redirect="istio-validation")


@pytest.fixture
def emulator() -> Iterator[KubeEmulator]:
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
    assert "3 of 3 restarted" in messages
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


def test_persistent_server_errors_fail_after_a_bounded_number_of_attempts(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    emulator.faults.append(Fault(method="PATCH", status=503, message="etcd is sad", times=-1))
    with pytest.raises(RestartError, match=r"restarted 0 of 1 workloads.*after 4 attempts: HTTP 503: etcd is sad"):
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


def test_partial_failure_then_a_resumed_run_restarts_only_the_rest(emulator: KubeEmulator) -> None:
    for index in range(6):
        add_deployment(emulator, "shop", f"app-{index}")
    # The fourth PATCH fails hard; with one PATCH at a time, three are restarted before it.
    emulator.faults.append(Fault(method="PATCH", path_contains="/app-3", status=422, message="admission says no"))
    with pytest.raises(RestartError, match="restarted 3 of 6 workloads, then failed") as caught:
        run(emulator, max_concurrent=1)
    assert caught.value.restarted == ("Deployment/shop/app-0", "Deployment/shop/app-1", "Deployment/shop/app-2")

    resumed = run(emulator, max_concurrent=1)
    assert resumed.restarted == ("Deployment/shop/app-3", "Deployment/shop/app-4", "Deployment/shop/app-5")
    assert resumed.skipped == {
        "alreadyRestarted": ["Deployment/shop/app-0", "Deployment/shop/app-1", "Deployment/shop/app-2"]
    }
    generations = [emulator.get("deployments", "shop", f"app-{i}")["metadata"]["generation"] for i in range(6)]  # type: ignore[index]
    assert generations == [2] * 6, "every workload rolled exactly once for the change"

    again = run(emulator)
    assert again.restarted == ()


def test_waits_for_every_rollout_with_one_watch_per_kind() -> None:
    with KubeEmulator(rollout_delay=0.2, reinject="istio-validation") as emu:
        mixed_cluster(emu)
        messages: list[str] = []
        outcome = run(emu, messages, wait_for_rollout=True)
        assert len(outcome.restarted) == 3
        assert "3 of 3 rolled out" in messages
        assert emu.count(verb="watch") == 3
        assert {r.resource for r in emu.requests if r.verb == "watch"} == {"deployments", "statefulsets", "daemonsets"}
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
    with pytest.raises(RestartError, match=r"1 of 2 restarted workloads did not finish.*: Deployment/shop/stuck$") as c:
        run(emulator, wait_for_rollout=True, timeout_seconds=1)
    assert time.monotonic() - started < 5
    assert c.value.restarted == ("Deployment/shop/cart", "Deployment/shop/stuck")
    assert run(emulator).skipped == {"alreadyRestarted": ["Deployment/shop/cart", "Deployment/shop/stuck"]}


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


def test_provider_create_restarts_and_update_restarts_only_on_a_cni_change(emulator: KubeEmulator) -> None:
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

    provider.delete(created.id, switched.outs)
    assert emulator.count(method="PATCH") == 2


def test_provider_failure_keeps_the_kubeconfig_out_of_the_error(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "team-b", "cart")
    emulator.forbid("patch", "deployments", "team-b")
    with pytest.raises(Exception, match="sidecar restart failed: restarted 0 of 1") as caught:
        SidecarRestartProvider().create(props(emulator))
    chain = [caught.value, caught.value.__cause__, caught.value.__cause__.__cause__]  # type: ignore[union-attr]
    assert all(emulator.token not in str(exc) for exc in chain)
