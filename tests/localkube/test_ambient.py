"""Ambient mode in the harness: the injector leaves ambient namespaces alone, the played nodes capture their pods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from kubernetes import client

from localkube import workloads
from localkube.cluster import DEFAULT_REVISION, Cluster
from localkube.namespaces import Namespaces
from localkube.nodes import DATAPLANE_MODE, REDIRECTION
from localkube.sidecar import PROXY, STATUS_ANNOTATION
from localkube.waiting import pod_ready, wait_for, wait_for_rollout

pytestmark = pytest.mark.cluster

AMBIENT = {DATAPLANE_MODE: "ambient"}
INJECTED = {"istio-injection": "enabled"}
OPTED_OUT = {DATAPLANE_MODE: "none"}


def live_pods(api: client.ApiClient, namespace: str, app: str) -> list[dict[str, Any]]:
    return [pod for pod in workloads.pods(api, namespace, f"app={app}") if not pod["metadata"].get("deletionTimestamp")]


def has_sidecar(pod: Mapping[str, Any]) -> bool:
    spec = pod["spec"]
    names = [container["name"] for container in (spec.get("initContainers") or []) + spec["containers"]]
    return PROXY in names or STATUS_ANNOTATION in (pod["metadata"].get("annotations") or {})


def captured(pod: Mapping[str, Any]) -> bool:
    return (pod["metadata"].get("annotations") or {}).get(REDIRECTION) == "enabled"


def ready_pod(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        pod = workloads.read(api, "Pod", namespace, name)
        return pod if pod_ready(pod) else None

    return wait_for(ready, what=f"pod {namespace}/{name} to be Ready")


def test_an_ambient_namespace_gets_no_sidecar_and_its_pods_are_captured_as_they_start(
    cluster: Cluster, namespaces: Namespaces
) -> None:
    ambient = namespaces.create("ambient", AMBIENT)
    plain = namespaces.create("plain")
    opted_out = workloads.pod("opted-out", template=workloads.pod_template("opted-out", labels=OPTED_OUT))
    host_network = workloads.pod("host", template=workloads.pod_template("host"))
    host_network["spec"]["hostNetwork"] = True
    workloads.create(cluster.api, ambient, workloads.deployment("web", 2), opted_out, host_network)
    # The cni chart's first enablement selector: a pod labelled ambient is captured in any namespace.
    labelled = workloads.pod("labelled", template=workloads.pod_template("labelled", labels=AMBIENT))
    workloads.create(cluster.api, plain, workloads.deployment("web", 1), labelled)

    wait_for_rollout(cluster.api, "Deployment", ambient, "web")
    wait_for_rollout(cluster.api, "Deployment", plain, "web")
    # Captured before the pod is reported Running: a Ready pod shows its annotation already.
    for pod in live_pods(cluster.api, ambient, "web"):
        assert not has_sidecar(pod)
        assert captured(pod), pod["metadata"]
    assert captured(ready_pod(cluster.api, plain, "labelled"))
    for name in ("opted-out", "host"):
        assert not captured(ready_pod(cluster.api, ambient, name))
    [plain_pod] = live_pods(cluster.api, plain, "web")
    assert not captured(plain_pod)
    assert cluster.injector.injections(namespace=ambient) == cluster.injector.injections(namespace=plain) == 0


@pytest.mark.parametrize("injection", [INJECTED, {"istio.io/rev": DEFAULT_REVISION}], ids=["istio-injection", "rev"])
def test_injection_labels_win_over_the_ambient_label_and_sidecar_pods_are_not_captured(
    cluster: Cluster, namespaces: Namespaces, injection: dict[str, str]
) -> None:
    # istiod's webhook selectors never look at istio.io/dataplane-mode; the node agent skips pods with a sidecar.
    namespace = namespaces.create("both", {**AMBIENT, **injection})
    opted_out = workloads.pod_template("none", labels=OPTED_OUT)
    workloads.create(
        cluster.api, namespace, workloads.deployment("web", 2), workloads.deployment("none", 1, template=opted_out)
    )

    wait_for_rollout(cluster.api, "Deployment", namespace, "web")
    wait_for_rollout(cluster.api, "Deployment", namespace, "none")
    pods = live_pods(cluster.api, namespace, "web") + live_pods(cluster.api, namespace, "none")
    assert len(pods) == 3
    for pod in pods:
        assert has_sidecar(pod)
        assert pod["metadata"]["labels"]["istio.io/rev"] == DEFAULT_REVISION
        assert not captured(pod)
    assert cluster.injector.injections(DEFAULT_REVISION, namespace) == 3


def test_a_node_agent_held_back_leaves_pods_running_uncaptured_until_released(
    cluster: Cluster, namespaces: Namespaces
) -> None:
    held = namespaces.create("held", AMBIENT)
    other = namespaces.create("other", AMBIENT)
    release = cluster.kubelets.never_capture(lambda pod: pod["metadata"].get("namespace") == held)
    for namespace in (held, other):
        workloads.create(cluster.api, namespace, workloads.deployment("web", 2))
    for namespace in (held, other):
        wait_for_rollout(cluster.api, "Deployment", namespace, "web")

    assert not any(captured(pod) for pod in live_pods(cluster.api, held, "web"))
    assert all(captured(pod) for pod in live_pods(cluster.api, other, "web"))

    release()
    wait_for(lambda: all(captured(pod) for pod in live_pods(cluster.api, held, "web")), what="the held pods captured")


def test_without_ambient_capture_the_label_changes_nothing_until_it_is_switched_on(
    cluster: Cluster, namespaces: Namespaces
) -> None:
    assert cluster.kubelets.ambient_capture  # the default
    cluster.kubelets.ambient_capture = False  # the cluster fixture switches it back
    namespace = namespaces.create("ambient", AMBIENT)
    workloads.create(cluster.api, namespace, workloads.deployment("web", 2))
    wait_for_rollout(cluster.api, "Deployment", namespace, "web")
    pods = live_pods(cluster.api, namespace, "web")
    assert len(pods) == 2
    assert not any(captured(pod) or has_sidecar(pod) for pod in pods)

    cluster.kubelets.ambient_capture = True
    wait_for(lambda: all(captured(pod) for pod in live_pods(cluster.api, namespace, "web")), what="capture")
