"""The restart on a real Kubernetes control plane, through Pulumi's real dynamic-provider host.

kube-apiserver and kube-controller-manager are the real ones (v1.36, `localkube`): the Deployment,
ReplicaSet, StatefulSet and DaemonSet controllers roll the workloads out, the API server paginates, patches
and watches; only the nodes and istiod's injector are played. Every test lives in namespaces of its own and
excludes all the others, so that what another test left behind is never restarted here.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from kubernetes import client

from localkube.cluster import Cluster
from localkube.namespaces import Namespaces
from localkube.rbac import grant
from localkube.sidecar import NATIVE_SIDECAR
from localkube.waiting import rollout_complete, wait_for
from localkube.workloads import create, daemonset, deployment, job, pod, pod_template, read, replicaset, statefulset
from restart.objects import FINGERPRINT_ANNOTATION, RESTARTED_AT_ANNOTATION
from restart.plan import fingerprint
from tests.restart.cluster_helpers import (
    BOTH_FORMS,
    INJECTION,
    all_redirected_by,
    generations,
    inject_for_cni,
    others,
    rbac_rules,
    read_only_rules,
    redirections,
    refs,
    request_from,
    restart_inputs,
    rolled_out,
    sidecar_forms,
)
from tests.support.provider_host import Host, as_dict, checked, clear_text_places, engine_view, update
from tests.support.provider_host import create as host_create

pytestmark = pytest.mark.cluster

ROLLED = (("Deployment", "cart"), ("StatefulSet", "db"), ("DaemonSet", "agent"))


@BOTH_FORMS
def test_the_cni_switch_reinjects_every_workload_both_ways(
    cluster: Cluster, namespaces: Namespaces, host: Host, sidecar_form: str
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart", 3), statefulset("db", 2), daemonset("agent"))
    rolled_out(cluster, shop, ROLLED)
    assert all_redirected_by(cluster, shop, "istio-init")
    assert sidecar_forms(cluster, shop) == {sidecar_form}
    before = generations(cluster, shop, ROLLED)

    inject_for_cni(cluster, True)
    created = as_dict(host_create(host, engine_view(checked(host, restart_inputs(cluster, namespaces)))).properties)
    assert created["restarted"] == refs(shop, ROLLED)
    # waitForRollout: once the resource is created, the real controllers have finished every rollout.
    for kind, name in ROLLED:
        assert rollout_complete(read(cluster.api, kind, shop, name)), (kind, name)
    assert generations(cluster, shop, ROLLED) == {ref: generation + 1 for ref, generation in before.items()}
    assert all_redirected_by(cluster, shop, "istio-validation"), redirections(cluster, shop)
    assert len(redirections(cluster, shop)) == 3 + 2 + len(cluster.nodes)
    assert sidecar_forms(cluster, shop) == {sidecar_form}
    template = read(cluster.api, "Deployment", shop, "cart")["spec"]["template"]["metadata"]["annotations"]
    assert template[RESTARTED_AT_ANNOTATION] == created["restartedAt"]
    assert template[FINGERPRINT_ANNOTATION] == created["fingerprint"]

    inject_for_cni(cluster, False)
    news = engine_view(checked(host, restart_inputs(cluster, namespaces, cniEnabled=False)))
    switched = update(host, engine_view(created), news)
    assert switched["restarted"] == refs(shop, ROLLED)
    assert generations(cluster, shop, ROLLED) == {ref: generation + 2 for ref, generation in before.items()}
    assert all_redirected_by(cluster, shop, "istio-init"), redirections(cluster, shop)


@BOTH_FORMS
def test_what_cannot_be_rolled_is_reported_and_the_rest_skipped(
    cluster: Cluster, namespaces: Namespaces, host: Host, sidecar_form: str
) -> None:
    inject_for_cni(cluster, False)
    app = namespaces.create("app", INJECTION)
    infra = namespaces.create("infra", INJECTION)
    plain = namespaces.create("plain")
    create(
        cluster.api,
        app,
        deployment("web"),
        deployment("frozen"),
        job("batch"),
        pod("lonely"),
        replicaset("orphan"),
        statefulset("keep", update_strategy="OnDelete"),
        statefulset("canary", 2, partition=1),
        daemonset("agent", update_strategy="OnDelete"),
    )
    create(cluster.api, infra, deployment("collector"))
    create(cluster.api, plain, deployment("legacy"))
    expected_pods = 1 + 1 + 1 + 1 + 1 + 1 + 2 + len(cluster.nodes)
    wait_for(lambda: len(redirections(cluster, app)) == expected_pods, what=f"{expected_pods} running pods")
    rolled_out(cluster, app, [("Deployment", "frozen")])
    # Paused once it runs: a Deployment created paused would have no pods at all.
    client.AppsV1Api(cluster.api).patch_namespaced_deployment("frozen", app, {"spec": {"paused": True}})
    rolled_out(cluster, infra, [("Deployment", "collector")])
    rolled_out(cluster, plain, [("Deployment", "legacy")])
    before = generations(cluster, app, [("Deployment", "frozen"), ("StatefulSet", "keep"), ("StatefulSet", "canary")])

    inject_for_cni(cluster, True)
    excluded = [name for name in others(cluster, namespaces)] + [infra]
    news = restart_inputs(cluster, namespaces, excludeNamespaces=excluded)
    outs = as_dict(host_create(host, engine_view(checked(host, news))).properties)

    assert outs["restarted"] == [f"Deployment/{app}/web"]
    assert outs["manualRestart"] == {
        "barePod": [f"Pod/{app}/lonely"],
        "job": [f"Job/{app}/batch"],
        "onDeleteUpdateStrategy": [f"DaemonSet/{app}/agent", f"StatefulSet/{app}/keep"],
        "partitionedRollout": [f"StatefulSet/{app}/canary"],
        "replicaSetWithoutDeployment": [f"ReplicaSet/{app}/orphan"],
    }
    skipped = {reason: entry["workloads"] for reason, entry in outs["skipped"].items()}
    assert skipped["paused"] == [f"Deployment/{app}/frozen"]
    assert f"Deployment/{infra}/collector" in skipped["excludedNamespace"]
    # Pods without a sidecar are not listed (by istiod's label), so they are not reported either.
    assert "noSidecar" not in skipped
    assert all(f"Deployment/{plain}/legacy" not in names for names in skipped.values())
    assert generations(cluster, app, before) == before, "nothing it reports is patched"
    assert read(cluster.api, "Pod", app, "lonely")["metadata"].get("deletionTimestamp") is None, "nor deleted"
    assert sidecar_forms(cluster, app) == {sidecar_form}


def test_both_sidecar_forms_side_by_side_are_switched_and_keep_their_form(
    cluster: Cluster, namespaces: Namespaces, host: Host
) -> None:
    """Native sidecars by default, regular containers where a pod or its namespace asks: one run handles both."""
    inject_for_cni(cluster, False)
    native = namespaces.create("native", INJECTION)
    regular = namespaces.create("regular", {**INJECTION, NATIVE_SIDECAR: "false"})
    opted_out = pod_template("legacy", annotations={NATIVE_SIDECAR: "false"})
    create(cluster.api, native, deployment("cart", 2), deployment("legacy", template=opted_out), statefulset("db"))
    create(cluster.api, regular, deployment("web"), daemonset("agent"))
    in_native = (("Deployment", "cart"), ("Deployment", "legacy"), ("StatefulSet", "db"))
    in_regular = (("Deployment", "web"), ("DaemonSet", "agent"))
    rolled_out(cluster, native, in_native)
    rolled_out(cluster, regular, in_regular)
    assert sidecar_forms(cluster, native) == {"native", "container"}
    assert sidecar_forms(cluster, regular) == {"container"}

    inject_for_cni(cluster, True)
    created = as_dict(host_create(host, engine_view(checked(host, restart_inputs(cluster, namespaces)))).properties)
    assert created["restarted"] == sorted(refs(native, in_native) + refs(regular, in_regular))
    for namespace in (native, regular):
        assert all_redirected_by(cluster, namespace, "istio-validation"), redirections(cluster, namespace)
    assert sidecar_forms(cluster, native) == {"native", "container"}
    assert sidecar_forms(cluster, regular) == {"container"}
    again = as_dict(host_create(host, engine_view(checked(host, restart_inputs(cluster, namespaces)))).properties)
    assert again["restarted"] == [], "re-injected in either form: nothing left to do"


def test_a_failed_run_and_its_rerun_restart_every_workload_exactly_once(
    cluster: Cluster, namespaces: Namespaces, host: Host
) -> None:
    inject_for_cni(cluster, False)
    first, second = namespaces.create("a-shop", INJECTION), namespaces.create("b-shop", INJECTION)
    names = [("Deployment", f"svc-{index}") for index in range(3)]
    for namespace in (first, second):
        create(cluster.api, namespace, *(deployment(name, 2) for _, name in names))
        rolled_out(cluster, namespace, names)
    before = {namespace: generations(cluster, namespace, names) for namespace in (first, second)}
    inject_for_cni(cluster, True)

    # The identity may patch in the first namespace only: the run fails part-way, on the API server's own 403.
    revoke_read = grant(cluster.api, "restarter", read_only_rules(), name=f"{namespaces.prefix}-read")
    revoke_patch = grant(
        cluster.api,
        "restarter",
        [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}],
        name=f"{namespaces.prefix}-patch",
        namespace=first,
    )
    try:
        news = engine_view(checked(host, restart_inputs(cluster, namespaces, user="restarter", maxConcurrent=1)))
        with pytest.raises(grpc.RpcError) as failed:
            host_create(host, news)
    finally:
        revoke_patch()
        revoke_read()
    message = failed.value.details()  # type: ignore[attr-defined]
    assert "then: forbidden" in message and "No further restart was started" in message
    # Short: one traceback of our own error, no chained client exception with its response headers.
    assert message.count("Traceback") == 1 and "HTTP response headers" not in message, message
    assert message.splitlines()[-1].startswith("restart.request.RestartError: sidecar restart failed: restarted 3")
    assert all(ref in message for ref in refs(first, names)), message

    # The re-run restarts only the others: the first run's restarts are recorded on the workloads.
    rerun = as_dict(host_create(host, engine_view(checked(host, restart_inputs(cluster, namespaces)))).properties)
    assert rerun["restarted"] == refs(second, names)
    for namespace in (first, second):
        once = {ref: generation + 1 for ref, generation in before[namespace].items()}
        assert generations(cluster, namespace, names) == once, namespace
        assert all_redirected_by(cluster, namespace, "istio-validation")

    # A create retried with the same setting (the engine lost the first answer) restarts nothing.
    retried = as_dict(host_create(host, engine_view(checked(host, restart_inputs(cluster, namespaces)))).properties)
    assert retried["restarted"] == []
    assert retried["skipped"]["alreadyMatching"]["count"] == 2 * len(names)
    for namespace in (first, second):
        assert generations(cluster, namespace, names) == {ref: gen + 1 for ref, gen in before[namespace].items()}


def test_the_published_cluster_role_is_all_the_restart_needs(
    cluster: Cluster, namespaces: Namespaces, host: Host
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart", 2), statefulset("db"), daemonset("agent"))
    rolled_out(cluster, shop, ROLLED)
    inject_for_cni(cluster, True)
    revoke = grant(cluster.api, "restarter", rbac_rules(), name=f"{namespaces.prefix}-restart")
    try:
        news = engine_view(checked(host, restart_inputs(cluster, namespaces, user="restarter")))
        outs = as_dict(host_create(host, news).properties)
    finally:
        revoke()
    assert outs["restarted"] == refs(shop, ROLLED)
    assert all_redirected_by(cluster, shop, "istio-validation")


def test_without_patch_the_run_fails_with_kubernetes_own_403_and_no_credential(
    cluster: Cluster, namespaces: Namespaces, host: Host
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart"))
    rolled_out(cluster, shop, [("Deployment", "cart")])
    inject_for_cni(cluster, True)
    revoke = grant(cluster.api, "reader", read_only_rules(), name=f"{namespaces.prefix}-read")
    logged = len(host.stderr)
    try:
        with pytest.raises(grpc.RpcError) as failed:
            host_create(host, engine_view(checked(host, restart_inputs(cluster, namespaces, user="reader"))))
    finally:
        revoke()
    message = failed.value.details()  # type: ignore[attr-defined]
    assert "forbidden: cannot patch deployments" in message
    # Kubernetes' own wording for the verb, resource and user.
    assert 'deployments.apps "cart" is forbidden: User "reader" cannot patch resource "deployments"' in message
    token = cluster.control_plane.token("reader")
    assert token not in message
    assert not any(token in line for line in host.stderr[logged:])
    assert clear_text_places({"message": message}, token) == []


def pending_pod(name: str) -> dict[str, Any]:
    manifest = pod(name)
    manifest["spec"]["schedulerName"] = "nobody"
    return manifest


def test_thousands_of_pods_are_listed_through_real_continue_tokens(cluster: Cluster, namespaces: Namespaces) -> None:
    """2,000 bare sidecar pods, listed 100 a page: every one of them is found (and left to a person).

    They stay pending (a scheduler nobody plays): the list is what is tested, not 2,000 kubelet updates.
    """
    from concurrent.futures import ThreadPoolExecutor

    from restart.run import run_restart

    inject_for_cni(cluster, False)
    crowd = namespaces.create("crowd", INJECTION)
    count = 2000
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda index: create(cluster.api, crowd, pending_pod(f"p-{index:04d}")), range(count)))
    inject_for_cni(cluster, True)
    request = request_from(restart_inputs(cluster, namespaces))
    outcome = run_restart(request, lambda _message: None, page_size=100)
    assert len(outcome.manual_restart["barePod"]) == count
    assert outcome.fingerprint == fingerprint(request.data_plane)
