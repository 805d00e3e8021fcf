"""The harness behaves like a cluster with Istio: controllers roll, the played nodes run pods, istiod injects."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from localkube import workloads
from localkube.binaries import KUBERNETES_VERSION, Binaries
from localkube.cluster import DEFAULT_REVISION, Cluster
from localkube.control_plane import ControlPlane, StartupError
from localkube.namespaces import Namespaces
from localkube.rbac import grant
from localkube.sidecar import INIT, NATIVE_SIDECAR, PROXY, STATUS_ANNOTATION, VALIDATION
from localkube.waiting import pod_ready, rollout_complete, wait_for, wait_for_rollout

pytestmark = pytest.mark.cluster

INJECTED = {"istio-injection": "enabled"}
ONE_AT_A_TIME = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def live_pods(api: client.ApiClient, namespace: str, app: str) -> list[dict[str, Any]]:
    return [pod for pod in workloads.pods(api, namespace, f"app={app}") if not pod["metadata"].get("deletionTimestamp")]


def containers(pod: Mapping[str, Any], key: str = "containers") -> dict[str, dict[str, Any]]:
    return {container["name"]: container for container in pod["spec"].get(key) or []}


def assert_injected(pod: Mapping[str, Any], revision: str, image: str, init: str = VALIDATION) -> None:
    """Injected by `revision` as istiod 1.30 does by default: `istio-proxy` a native sidecar after `init`."""
    assert pod["metadata"]["labels"]["istio.io/rev"] == revision
    assert list(containers(pod)) == ["app"]
    assert list(containers(pod, "initContainers")) == [init, PROXY]
    assert containers(pod, "initContainers")[PROXY]["restartPolicy"] == "Always"
    assert containers(pod, "initContainers")[PROXY]["image"] == image
    assert containers(pod, "initContainers")[init]["image"] == image
    assert "restartPolicy" not in containers(pod, "initContainers")[init]
    status = json.loads(pod["metadata"]["annotations"][STATUS_ANNOTATION])
    assert status["revision"] == revision
    assert status["initContainers"] == [init, PROXY]


def test_deployment_in_an_injected_namespace_becomes_available_with_sidecars(
    cluster: Cluster, namespaces: Namespaces
) -> None:
    namespace = namespaces.create("shop", INJECTED)
    workloads.create(cluster.api, namespace, workloads.deployment("web", 3))

    deployment = wait_for_rollout(cluster.api, "Deployment", namespace, "web")

    assert deployment["status"]["availableReplicas"] == 3
    pods = live_pods(cluster.api, namespace, "web")
    assert len(pods) == 3
    for pod in pods:
        assert pod_ready(pod)
        assert pod["spec"]["nodeName"] in cluster.nodes
        assert_injected(pod, DEFAULT_REVISION, "docker.io/istio/proxyv2:1.30.3")
        assert "add" not in containers(pod, "initContainers")[VALIDATION]["securityContext"]["capabilities"]
    # The played kubelet reports the native sidecar running beside the app, its other init container done.
    statuses = {status["name"]: status for status in pods[0]["status"]["initContainerStatuses"]}
    assert statuses[PROXY]["started"] and "running" in statuses[PROXY]["state"]
    assert statuses[VALIDATION]["state"]["terminated"]["exitCode"] == 0
    assert cluster.injector.injections(DEFAULT_REVISION, namespace) == 3


def test_the_sidecar_form_is_native_unless_the_pod_namespace_or_revision_asks_for_a_container(
    cluster: Cluster, namespaces: Namespaces
) -> None:
    """Istio's pod annotation wins, then the namespace's label of the same name, then the revision's setting."""
    legacy = {NATIVE_SIDECAR: "false"}
    own_init = {"name": "migrate", "image": workloads.PAUSE_IMAGE}

    def template(app: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        manifest = workloads.pod_template(app, annotations=annotations)
        manifest["spec"]["initContainers"] = [own_init]
        return manifest

    native = namespaces.create("native", INJECTED)
    regular = namespaces.create("regular", {**INJECTED, NATIVE_SIDECAR: "false"})
    cluster.injector.set_revision("legacy", cni=False, native=False)
    old_istiod = namespaces.create("old-istiod", {"istio.io/rev": "legacy"})
    workloads.create(
        cluster.api,
        native,
        workloads.deployment("default", template=template("default")),
        workloads.deployment("opted-out", template=template("opted-out", legacy)),
    )
    workloads.create(
        cluster.api,
        regular,
        workloads.deployment("default", template=template("default")),
        workloads.deployment("opted-in", template=template("opted-in", {NATIVE_SIDECAR: "true"})),
    )
    workloads.create(cluster.api, old_istiod, workloads.deployment("default", template=template("default")))
    for namespace, app in ((native, "default"), (native, "opted-out"), (regular, "default"), (regular, "opted-in"),
                           (old_istiod, "default")):  # fmt: skip
        wait_for_rollout(cluster.api, "Deployment", namespace, app)

    def form(namespace: str, app: str) -> tuple[list[str], list[str]]:
        [pod] = live_pods(cluster.api, namespace, app)
        assert pod_ready(pod)
        return list(containers(pod, "initContainers")), list(containers(pod))

    # Native: the redirection first, then the proxy, so that the pod's own init containers run in the mesh.
    assert form(native, "default") == form(regular, "opted-in") == ([VALIDATION, PROXY, "migrate"], ["app"])
    # A regular container: istio-validation still first, istio-init after the pod's own init containers.
    assert form(native, "opted-out") == form(regular, "default") == ([VALIDATION, "migrate"], ["app", PROXY])
    assert form(old_istiod, "default") == (["migrate", INIT], ["app", PROXY])


def test_a_restartedat_patch_rolls_the_deployment_and_old_pods_terminate_gracefully(
    cluster: Cluster, namespaces: Namespaces
) -> None:
    cluster.kubelets.deletion_delay = 1.0  # long enough for polling to see every old pod terminating
    namespace = namespaces.create("shop", INJECTED)
    workloads.create(cluster.api, namespace, workloads.deployment("web", 3, strategy=ONE_AT_A_TIME))
    before = wait_for_rollout(cluster.api, "Deployment", namespace, "web")
    old_pods = {pod["metadata"]["uid"]: pod["metadata"]["name"] for pod in live_pods(cluster.api, namespace, "web")}
    old_hash = next(iter(workloads.pods(cluster.api, namespace)))["metadata"]["labels"]["pod-template-hash"]

    restarted_at = workloads.rollout_restart(cluster.api, "Deployment", namespace, "web")
    terminating: set[str] = set()

    def rolled() -> dict[str, Any] | None:
        for pod in workloads.pods(cluster.api, namespace, "app=web"):
            if pod["metadata"].get("deletionTimestamp"):
                assert pod["metadata"]["uid"] in old_pods
                terminating.add(pod["metadata"]["uid"])
        deployment = workloads.read(cluster.api, "Deployment", namespace, "web")
        status = deployment["status"]
        done = (
            status.get("observedGeneration") == deployment["metadata"]["generation"]
            and status.get("updatedReplicas") == status.get("availableReplicas") == status.get("replicas") == 3
        )
        if not done or workloads.pods(cluster.api, namespace, f"pod-template-hash={old_hash}"):
            return None
        return deployment

    after = wait_for(rolled, timeout=60, what="the restarted rollout and the old pods' deletion")

    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["spec"]["template"]["metadata"]["annotations"][workloads.RESTARTED_AT] == restarted_at
    assert terminating == set(old_pods), "every old pod went through graceful termination"
    new_pods = live_pods(cluster.api, namespace, "web")
    assert len(new_pods) == 3
    assert not {pod["metadata"]["uid"] for pod in new_pods} & set(old_pods)
    assert all(pod_ready(pod) for pod in new_pods)
    assert {pod["metadata"]["labels"]["pod-template-hash"] for pod in new_pods} != {old_hash}
    apps = client.AppsV1Api(cluster.api)
    replica_sets = {
        rs.metadata.labels["pod-template-hash"]: rs for rs in apps.list_namespaced_replica_set(namespace).items
    }
    assert len(replica_sets) == 2
    assert replica_sets[old_hash].spec.replicas == 0
    assert cluster.injector.injections(namespace=namespace) == 6


def test_switching_a_revision_off_the_cni_makes_new_pods_use_istio_init(
    cluster: Cluster, namespaces: Namespaces
) -> None:
    namespace = namespaces.create("shop", INJECTED)
    workloads.create(cluster.api, namespace, workloads.deployment("web", 2))
    wait_for_rollout(cluster.api, "Deployment", namespace, "web")

    cluster.injector.set_revision(DEFAULT_REVISION, tag="1.30.3", cni=False)
    workloads.rollout_restart(cluster.api, "Deployment", namespace, "web")
    wait_for_rollout(cluster.api, "Deployment", namespace, "web")

    new_pods = live_pods(cluster.api, namespace, "web")
    assert len(new_pods) == 2
    for pod in new_pods:
        assert_injected(pod, DEFAULT_REVISION, "docker.io/istio/proxyv2:1.30.3", init=INIT)
        capabilities = containers(pod, "initContainers")[INIT]["securityContext"]["capabilities"]
        assert capabilities["add"] == ["NET_ADMIN", "NET_RAW"]


def test_a_daemonset_gets_one_pod_per_node_and_rolls(cluster: Cluster, namespaces: Namespaces) -> None:
    namespace = namespaces.create("agents", INJECTED)
    workloads.create(cluster.api, namespace, workloads.daemonset("agent"))
    daemonset = wait_for_rollout(cluster.api, "DaemonSet", namespace, "agent")
    assert daemonset["status"]["desiredNumberScheduled"] == len(cluster.nodes)
    first = live_pods(cluster.api, namespace, "agent")
    assert sorted(pod["spec"]["nodeName"] for pod in first) == sorted(cluster.nodes)

    workloads.rollout_restart(cluster.api, "DaemonSet", namespace, "agent")
    wait_for_rollout(cluster.api, "DaemonSet", namespace, "agent")

    second = live_pods(cluster.api, namespace, "agent")
    assert sorted(pod["spec"]["nodeName"] for pod in second) == sorted(cluster.nodes)
    assert not {pod["metadata"]["uid"] for pod in second} & {pod["metadata"]["uid"] for pod in first}
    assert all(pod_ready(pod) for pod in second)
    assert cluster.injector.injections(namespace=namespace) == 2 * len(cluster.nodes)


def test_a_statefulset_rolls_pod_by_pod_under_the_same_names(cluster: Cluster, namespaces: Namespaces) -> None:
    namespace = namespaces.create("db", INJECTED)
    workloads.create(cluster.api, namespace, workloads.statefulset("db", 3))
    before = wait_for_rollout(cluster.api, "StatefulSet", namespace, "db")
    first = {pod["metadata"]["name"]: pod["metadata"]["uid"] for pod in live_pods(cluster.api, namespace, "db")}
    assert sorted(first) == ["db-0", "db-1", "db-2"]

    workloads.rollout_restart(cluster.api, "StatefulSet", namespace, "db")
    after = wait_for_rollout(cluster.api, "StatefulSet", namespace, "db")

    assert after["status"]["updateRevision"] != before["status"]["updateRevision"]
    pods = live_pods(cluster.api, namespace, "db")
    assert {pod["metadata"]["name"]: pod["metadata"]["uid"] for pod in pods}.keys() == first.keys()
    for pod in pods:
        assert pod["metadata"]["uid"] != first[pod["metadata"]["name"]]
        assert pod["metadata"]["labels"]["controller-revision-hash"] == after["status"]["updateRevision"]
        assert pod_ready(pod)


def test_pods_outside_injected_namespaces_or_opted_out_are_not_injected(
    cluster: Cluster, namespaces: Namespaces
) -> None:
    plain = namespaces.create("plain")
    injected = namespaces.create("shop", INJECTED)
    workloads.create(cluster.api, plain, workloads.deployment("web", 2))
    opted_out_by_label = workloads.deployment("batch", 1, template=workloads.pod_template("batch", inject=False))
    opted_out_by_annotation = workloads.pod(
        "debug", template=workloads.pod_template("debug", annotations={"sidecar.istio.io/inject": "false"})
    )
    workloads.create(cluster.api, injected, opted_out_by_label, opted_out_by_annotation)

    wait_for_rollout(cluster.api, "Deployment", plain, "web")
    wait_for_rollout(cluster.api, "Deployment", injected, "batch")
    wait_for(lambda: pod_ready(workloads.read(cluster.api, "Pod", injected, "debug")), what="the bare pod")

    pods = workloads.pods(cluster.api, plain) + workloads.pods(cluster.api, injected)
    assert len(pods) == 4
    for pod in pods:
        assert list(containers(pod)) == ["app"]
        assert not pod["spec"].get("initContainers")
        assert "istio.io/rev" not in pod["metadata"]["labels"]
    assert cluster.injector.injections(namespace=plain) == cluster.injector.injections(namespace=injected) == 0


@pytest.mark.parametrize("namespace_label", ["canary", "1-29-6"], ids=["tag", "revision"])
def test_an_istio_rev_namespace_gets_the_revision_its_label_names(
    cluster: Cluster, namespaces: Namespaces, namespace_label: str
) -> None:
    cluster.injector.set_revision("1-29-6", hub="docker.io/istio", tag="1.29.6", cni=True)
    cluster.injector.set_tag("canary", "1-29-6")
    namespace = namespaces.create("canary", {"istio.io/rev": namespace_label})
    stable = namespaces.create("stable", INJECTED)
    for name in (namespace, stable):
        workloads.create(cluster.api, name, workloads.deployment("web", 2))
    for name in (namespace, stable):
        wait_for_rollout(cluster.api, "Deployment", name, "web")

    for pod in live_pods(cluster.api, namespace, "web"):
        assert_injected(pod, "1-29-6", "docker.io/istio/proxyv2:1.29.6")
    for pod in live_pods(cluster.api, stable, "web"):
        assert_injected(pod, DEFAULT_REVISION, "docker.io/istio/proxyv2:1.30.3")
    assert cluster.injector.injections("1-29-6", namespace) == 2


def test_a_revision_with_a_variant_and_an_unknown_revision(cluster: Cluster, namespaces: Namespaces) -> None:
    cluster.injector.set_revision("distroless", tag="1.30.3", variant="distroless")
    distroless = namespaces.create("distroless", {"istio.io/rev": "distroless"})
    unknown = namespaces.create("unknown", {"istio.io/rev": "no-such-revision"})
    for name in (distroless, unknown):
        workloads.create(cluster.api, name, workloads.deployment("web", 1))
        wait_for_rollout(cluster.api, "Deployment", name, "web")

    [pod] = live_pods(cluster.api, distroless, "web")
    assert_injected(pod, "distroless", "docker.io/istio/proxyv2:1.30.3-distroless")
    # istiod has no webhook for a revision it does not run: the pod is admitted as it is.
    [pod] = live_pods(cluster.api, unknown, "web")
    assert list(containers(pod)) == ["app"]


def test_a_never_ready_hold_stalls_a_rollout_until_released(cluster: Cluster, namespaces: Namespaces) -> None:
    namespace = namespaces.create("shop", INJECTED)
    workloads.create(cluster.api, namespace, workloads.deployment("web", 2, strategy=ONE_AT_A_TIME))
    wait_for_rollout(cluster.api, "Deployment", namespace, "web")
    release = cluster.kubelets.never_ready(
        lambda pod: (
            pod["metadata"].get("namespace") == namespace
            and workloads.RESTARTED_AT in (pod["metadata"].get("annotations") or {})
        )
    )

    workloads.rollout_restart(cluster.api, "Deployment", namespace, "web")

    def surge_bound() -> list[dict[str, Any]]:
        new = [
            pod
            for pod in live_pods(cluster.api, namespace, "web")
            if workloads.RESTARTED_AT in pod["metadata"].get("annotations", {}) and pod["spec"].get("nodeName")
        ]
        status = workloads.read(cluster.api, "Deployment", namespace, "web")["status"]
        return new if status.get("updatedReplicas") == 1 else []

    [surge] = wait_for(surge_bound, what="the surge pod to be bound and counted")
    time.sleep(10 * cluster.kubelets.ready_delay)  # ample time to become Ready, were it not held
    assert not pod_ready(workloads.read(cluster.api, "Pod", namespace, surge["metadata"]["name"]))
    deployment = workloads.read(cluster.api, "Deployment", namespace, "web")
    assert deployment["status"]["updatedReplicas"] == 1
    assert deployment["status"]["availableReplicas"] == 2
    assert not rollout_complete(deployment)

    release()
    wait_for_rollout(cluster.api, "Deployment", namespace, "web")


def test_users_authenticate_with_their_kubeconfig_and_rbac_applies(cluster: Cluster, namespaces: Namespaces) -> None:
    namespace = namespaces.create("shop")
    workloads.create(cluster.api, namespace, workloads.deployment("web", 1))
    document = yaml.safe_load(cluster.kubeconfig("restarter"))
    assert "certificate-authority-data" in document["clusters"][0]["cluster"]
    with config.new_client_from_config_dict(document) as restarter:
        apps = client.AppsV1Api(restarter)
        with pytest.raises(ApiException) as denied:
            apps.list_namespaced_deployment(namespace)
        assert denied.value.status == 403

        rules = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}]
        revoke = grant(cluster.api, "restarter", rules, name=f"{namespace}-read", namespace=namespace)
        try:
            assert [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items] == ["web"]
            with pytest.raises(ApiException) as forbidden:
                workloads.rollout_restart(restarter, "Deployment", namespace, "web")
            assert forbidden.value.status == 403
        finally:
            revoke()


def test_a_hundred_pod_deployment_restarts(cluster: Cluster, namespaces: Namespaces) -> None:
    errors_before = len(cluster.kubelets.errors), len(cluster.injector.errors)
    namespace = namespaces.create("big", INJECTED)
    workloads.create(cluster.api, namespace, workloads.deployment("web", 100))
    wait_for_rollout(cluster.api, "Deployment", namespace, "web", timeout=120)

    workloads.rollout_restart(cluster.api, "Deployment", namespace, "web")
    wait_for_rollout(cluster.api, "Deployment", namespace, "web", timeout=120)

    assert len(live_pods(cluster.api, namespace, "web")) == 100
    # At least: a create that fails after admission is retried by the ReplicaSet controller, and counted again.
    assert cluster.injector.injections(namespace=namespace) >= 200
    assert (len(cluster.kubelets.errors), len(cluster.injector.errors)) == errors_before


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_processes_are_gone_after_the_context_exits(kube_binaries: Binaries) -> None:
    with ControlPlane(kube_binaries, users=["someone"]) as plane:
        pids, workdir = list(plane.started_pids), plane.workdir
        assert len(pids) == 3
        assert all(_alive(pid) for pid in pids)
        with plane.api_client("someone") as someone:
            assert client.VersionApi(someone).get_code().git_version == KUBERNETES_VERSION
    assert not any(_alive(pid) for pid in pids)
    assert not workdir.exists()


def test_a_start_up_failing_half_way_stops_what_had_started(kube_binaries: Binaries) -> None:
    plane = ControlPlane(kube_binaries, apiserver_flags=["--no-such-flag"])
    with pytest.raises(StartupError, match="kube-apiserver exited") as failure, plane:
        pass
    assert "no-such-flag" in str(failure.value), "the error shows the tail of the log"
    assert len(plane.started_pids) == 2  # etcd and the API server; the controller-manager never started
    assert not any(_alive(pid) for pid in plane.started_pids)
