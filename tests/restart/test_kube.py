"""The restart against the Kubernetes API emulator, over real HTTP, through the official client.

The real control plane (`test_cluster.py`, `test_cluster_faults.py`) is where the restart is proved; what
stays here is what it cannot show, or cannot show on cue:
- native sidecars (`istio-proxy` as an init container with `restartPolicy: Always`): the v1.24 API server
  drops the field (`mixed_cluster`'s StatefulSet);
- races the emulator scripts between two requests of one run: a workload deleted, a ReplicaSet created, or
  pods injected by an istiod that still serves the old setting, between the list and the patch or the wait;
- server behaviour a test must control: latency (PATCHes in flight), a watch answered 403 or 410 mid-wait,
  a Deployment reported past its progress deadline at a given moment;
- kubeconfig handling with no server at all (unreadable, refused, unreachable, exec plugins).
Nothing in the client is replaced: what is tested is the HTTP contract.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from restart.kube import RetryPolicy
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
    assert [m.split(" (")[0] for m in logged] == [f"restarted {ref} for redirection" for ref in outcome.restarted]
    assert sorted(m.split(" (")[1] for m in logged) == ["1 of 3)", "2 of 3)", "3 of 3)"]
    # The bare pod and the Job's pod are reported, never deleted.
    assert emulator.get("pods", "shop", "debug-0") is not None
    assert emulator.get("pods", "shop", "migrate-0") is not None


def test_at_most_max_concurrent_patches_in_flight(emulator: KubeEmulator) -> None:
    for index in range(12):
        add_deployment(emulator, "shop", f"app-{index}")
    emulator.latency = 0.05
    run(emulator, max_concurrent=3)
    assert emulator.max_in_flight["PATCH"] == 3


def test_a_pod_whose_replicaset_was_not_listed_is_traced_to_its_deployment(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    # As if the ReplicaSet were created after the ReplicaSets were listed.
    emulator.delete("replicasets", "shop", "cart-5d8f7c")
    assert run(emulator).restarted == ("Deployment/shop/cart",)


def test_a_workload_deleted_between_list_and_patch_is_skipped(emulator: KubeEmulator) -> None:
    add_deployment(emulator, "shop", "cart")
    add_deployment(emulator, "shop", "gone")
    emulator.faults.append(Fault(method="PATCH", path_contains="/deployments/gone", delete_object=True))
    outcome = run(emulator)
    assert outcome.restarted == ("Deployment/shop/cart",)
    assert outcome.skipped == {"deletedBeforeRestart": ["Deployment/shop/gone"]}


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


@pytest.mark.parametrize(
    "fault",
    [
        # An ERROR event with 410 in a watch already streaming: the real API server sends one only when its
        # watch cache has moved past the watch's resourceVersion, which a test cannot bring about on cue.
        pytest.param({"compact": True}, id="expired-event"),
    ],
)
def test_the_wait_survives_expired_and_dropped_watches(emulator: KubeEmulator, fault: dict[str, Any]) -> None:
    add_deployment(emulator, "shop", "cart")
    emulator.rollout_delay = 0.2
    if fault.pop("compact", False):
        # The window watches from the planning list's resourceVersion; history moves on and is compacted first.
        def expire() -> None:
            add_deployment(emulator, "elsewhere", "moved-on")
            emulator.compact()

        emulator.faults.append(Fault(method="GET", watch=True, action=expire))
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
