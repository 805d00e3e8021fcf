"""Races between two requests of one run, and server latency, on the real control plane.

The fault proxy in front of the real API server acts on the cluster just before it forwards a chosen request
(`Fault.before`) and holds requests (`Fault.delay`): what happens between the run's list and its PATCH is then
on cue, and the real controllers and API server answer as they would in a busy cluster.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from localkube.cluster import Cluster
from localkube.faults import Fault, FaultProxy
from localkube.namespaces import Namespaces
from localkube.waiting import wait_for
from localkube.workloads import create, deployment, pods, read, rollout_restart
from tests.restart.cluster_helpers import INJECTION, all_redirected_by, generations, inject_for_cni, rolled_out
from tests.restart.cluster_helpers import run_via_proxy as run

pytestmark = pytest.mark.cluster

CART = ("Deployment", "cart")


def test_a_workload_deleted_between_list_and_patch_is_skipped(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart"), deployment("gone"))
    rolled_out(cluster, shop, [("Deployment", "cart"), ("Deployment", "gone")])
    inject_for_cni(cluster, True)
    apps = client.AppsV1Api(cluster.api)
    proxy.add(
        Fault("pass", "PATCH", r"/deployments/gone$", before=lambda: apps.delete_namespaced_deployment("gone", shop))
    )
    outcome = run(cluster, namespaces, proxy)
    assert outcome.restarted == (f"Deployment/{shop}/cart",)
    assert outcome.skipped["deletedBeforeRestart"] == [f"Deployment/{shop}/gone"]
    assert set(outcome.skipped) <= {"deletedBeforeRestart", "excludedNamespace"}, "what other tests left there"
    # The real API server answered the PATCH: 404, which the run takes for "nothing left to restart".
    [patch] = [seen for seen in proxy.requests if seen.method == "PATCH" and seen.path.endswith("/gone")]
    assert patch.upstream_status == 404


def test_a_pod_whose_replicaset_was_created_after_the_list_is_traced_to_its_deployment(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    """The run lists pods and ReplicaSets side by side: a rollout can finish between the two lists."""
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart"))
    rolled_out(cluster, shop, [CART])
    listed_hash = pods(cluster.api, shop)[0]["metadata"]["labels"]["pod-template-hash"]

    def only_new_pods() -> bool:
        current = pods(cluster.api, shop)
        return len(current) == 1 and current[0]["metadata"]["labels"]["pod-template-hash"] != listed_hash

    def roll_on_after_the_replicaset_list() -> None:
        wait_for(lambda: proxy.count("GET", r"^/apis/apps/v1/replicasets$", reached_server=True) >= 1)
        # Someone's `kubectl rollout restart`, finished before the pods are listed: only a new ReplicaSet's pods.
        rollout_restart(cluster.api, "Deployment", shop, "cart")
        wait_for(only_new_pods, what="the new ReplicaSet's pod alone")
        inject_for_cni(cluster, True)  # istiod serves the CNI from here on

    proxy.add(Fault("pass", "GET", r"^/api/v1/pods$", before=roll_on_after_the_replicaset_list))
    before = generations(cluster, shop, [CART])
    outcome = run(cluster, namespaces, proxy, waitForRollout=True)
    assert outcome.restarted == (f"Deployment/{shop}/cart",)
    # Once by the rollout in between, once by the run: traced, not reported as a ReplicaSet nobody owns.
    assert generations(cluster, shop, [CART]) == {CART: before[CART] + 2}
    assert all_redirected_by(cluster, shop, "istio-validation")


def test_at_most_max_concurrent_patches_are_in_flight(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    names = [f"app-{index}" for index in range(8)]
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, *(deployment(name) for name in names))
    rolled_out(cluster, shop, [("Deployment", name) for name in names])
    inject_for_cni(cluster, True)
    # A slow API server: each PATCH is held 0.3 s, so the run's PATCHes overlap as far as it lets them.
    proxy.add(Fault("pass", "PATCH", r"/deployments/[^/]+$", delay=0.3, times=None))
    outcome = run(cluster, namespaces, proxy, maxConcurrent=3)
    assert len(outcome.restarted) == 8
    assert proxy.max_in_flight("PATCH") == 3
    assert all(read(cluster.api, "Deployment", shop, name)["metadata"]["generation"] == 2 for name in names)
