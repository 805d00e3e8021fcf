"""Restart planning over plain pod and workload objects: no cluster, no client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from components.restart_plan import (
    FINGERPRINT_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
    ManualReason,
    Redirection,
    SkipReason,
    WorkloadRef,
    cni_fingerprint,
    group_by_reason,
    has_sidecar,
    plan_restart,
    redirection,
    resolve_owner,
    restart_patch,
    rfc3339,
    rollout_complete,
    slim_pod,
    slim_workload,
)
from tests.kube_emulator import pod_template_spec

EXCLUDED = ("istio-system", "kube-system", "kube-node-lease", "kube-public")


def owner(kind: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": f"uid-{name}", "controller": True}


def pod(
    namespace: str,
    name: str,
    controller: dict[str, Any] | None = None,
    *,
    sidecar: bool = True,
    redirect: str | None = "istio-init",
    native: bool = False,
    phase: str = "Running",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if controller is not None:
        meta["ownerReferences"] = [controller]
    spec = pod_template_spec(name, sidecar=sidecar, redirect=redirect, native=native)
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def replicaset(namespace: str, name: str, deployment: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if deployment is not None:
        meta["ownerReferences"] = [owner("Deployment", deployment)]
    return {"metadata": meta}


def workload(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", {})
    return {
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {**spec, "template": {"metadata": {"annotations": annotations}}},
    }


def deployment_pods(namespace: str, name: str, **shape: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A Deployment, its ReplicaSet and one pod."""
    rs_name = f"{name}-abc"
    return (
        workload(namespace, name, **shape.pop("workload", {})),
        replicaset(namespace, rs_name, name),
        pod(namespace, f"{rs_name}-x", owner("ReplicaSet", rs_name), **shape),
    )


def plan(
    pods: list[dict[str, Any]],
    replicasets: list[dict[str, Any]] = (),  # type: ignore[assignment]
    workloads: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    *,
    cni: bool = True,
    excluded: tuple[str, ...] = EXCLUDED,
) -> Any:
    return plan_restart(
        pods=pods, replicasets=replicasets, workloads=workloads, cni_enabled=cni, exclude_namespaces=excluded
    )


# -- reading pods ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ({"sidecar": True, "native": False}, True),
        ({"sidecar": True, "native": True}, True),
        ({"sidecar": False}, False),
    ],
)
def test_sidecar_is_found_as_container_or_native_init_container(shape: dict[str, Any], expected: bool) -> None:
    assert has_sidecar(pod("ns", "p", **shape)) is expected


def test_an_istio_proxy_init_container_without_restart_policy_always_is_not_a_sidecar() -> None:
    subject = {"spec": {"initContainers": [{"name": "istio-proxy"}], "containers": [{"name": "app"}]}}
    assert not has_sidecar(subject)


@pytest.mark.parametrize(
    ("redirect", "expected"),
    [("istio-init", Redirection.IPTABLES_INIT), ("istio-validation", Redirection.CNI), (None, Redirection.NONE)],
)
def test_redirection_is_read_from_the_init_containers(redirect: str | None, expected: Redirection) -> None:
    assert redirection(pod("ns", "p", redirect=redirect)) is expected
    assert redirection(pod("ns", "p", redirect=redirect, native=True)) is expected


# -- owners --------------------------------------------------------------------------------------------


def test_owner_of_a_deployment_pod_is_the_deployment_through_its_replicaset() -> None:
    rs = replicaset("shop", "cart-abc", "cart")
    subject = pod("shop", "cart-abc-x", owner("ReplicaSet", "cart-abc"))
    assert resolve_owner(subject, {("shop", "cart-abc"): rs}) == WorkloadRef("Deployment", "shop", "cart")


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet", "Job"])
def test_owner_of_other_pods_is_their_direct_controller(kind: str) -> None:
    assert resolve_owner(pod("ns", "p-0", owner(kind, "w")), {}) == WorkloadRef(kind, "ns", "w")


def test_owner_of_a_bare_pod_is_the_pod_and_of_an_orphan_replicaset_pod_the_replicaset() -> None:
    assert resolve_owner(pod("ns", "debug"), {}) == WorkloadRef("Pod", "ns", "debug")
    orphan = replicaset("ns", "legacy", None)
    subject = pod("ns", "legacy-x", owner("ReplicaSet", "legacy"))
    assert resolve_owner(subject, {("ns", "legacy"): orphan}) == WorkloadRef("ReplicaSet", "ns", "legacy")


# -- the plan ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("native", [False, True])
def test_switch_to_cni_restarts_the_istio_init_workloads_and_skips_the_rest(native: bool) -> None:
    old = deployment_pods("shop", "cart", redirect="istio-init", native=native)
    new = deployment_pods("shop", "web", redirect="istio-validation", native=native)
    plain = deployment_pods("shop", "batch", sidecar=False)
    result = plan(
        [old[2], new[2], plain[2]],
        [old[1], new[1], plain[1]],
        [("Deployment", old[0]), ("Deployment", new[0]), ("Deployment", plain[0])],
    )
    assert result.restart == (WorkloadRef("Deployment", "shop", "cart"),)
    assert result.skipped == {
        WorkloadRef("Deployment", "shop", "web"): SkipReason.ALREADY_MATCHING,
        WorkloadRef("Deployment", "shop", "batch"): SkipReason.NO_SIDECAR,
    }


def test_switch_away_from_cni_restarts_the_istio_validation_workloads() -> None:
    old = deployment_pods("shop", "cart", redirect="istio-init")
    new = deployment_pods("shop", "web", redirect="istio-validation")
    result = plan([old[2], new[2]], [old[1], new[1]], [("Deployment", old[0]), ("Deployment", new[0])], cni=False)
    assert result.restart == (WorkloadRef("Deployment", "shop", "web"),)
    assert result.skipped == {WorkloadRef("Deployment", "shop", "cart"): SkipReason.ALREADY_MATCHING}


def test_statefulsets_and_daemonsets_are_restarted_and_on_delete_ones_left_to_a_person() -> None:
    rolling = workload("db", "pg", updateStrategy={"type": "RollingUpdate"})
    on_delete = workload("db", "legacy", updateStrategy={"type": "OnDelete"})
    daemon = workload("mon", "agent")
    pods = [
        pod("db", "pg-0", owner("StatefulSet", "pg"), native=True),
        pod("db", "legacy-0", owner("StatefulSet", "legacy")),
        pod("mon", "agent-a", owner("DaemonSet", "agent")),
    ]
    result = plan(pods, [], [("StatefulSet", rolling), ("StatefulSet", on_delete), ("DaemonSet", daemon)])
    assert result.restart == (WorkloadRef("DaemonSet", "mon", "agent"), WorkloadRef("StatefulSet", "db", "pg"))
    assert result.manual == {WorkloadRef("StatefulSet", "db", "legacy"): ManualReason.ON_DELETE_STRATEGY}


def test_every_skip_reason() -> None:
    excluded = deployment_pods("kube-system", "coredns")
    paused = deployment_pods("shop", "held", workload={"paused": True})
    fingerprint = cni_fingerprint(True, EXCLUDED)
    done = deployment_pods("shop", "done", workload={"annotations": {FINGERPRINT_ANNOTATION: fingerprint}})
    other = deployment_pods("shop", "other", workload={"annotations": {FINGERPRINT_ANNOTATION: "an-older-one"}})
    plain = deployment_pods("shop", "plain", sidecar=False)
    gateway = deployment_pods("shop", "gateway", redirect=None)
    matching = deployment_pods("shop", "new", redirect="istio-validation")
    groups = [excluded, paused, done, other, plain, gateway, matching]
    result = plan([g[2] for g in groups], [g[1] for g in groups], [("Deployment", g[0]) for g in groups])
    assert result.restart == (WorkloadRef("Deployment", "shop", "other"),)
    assert group_by_reason(result.skipped) == {
        "alreadyMatching": ["Deployment/shop/new"],
        "alreadyRestarted": ["Deployment/shop/done"],
        "excludedNamespace": ["Deployment/kube-system/coredns"],
        "noRedirection": ["Deployment/shop/gateway"],
        "noSidecar": ["Deployment/shop/plain"],
        "paused": ["Deployment/shop/held"],
    }


def test_pods_without_a_rollable_owner_are_listed_for_a_manual_restart_never_planned() -> None:
    orphan = replicaset("ns", "legacy", None)
    pods = [
        pod("ns", "debug"),
        pod("ns", "migrate-x", owner("Job", "migrate")),
        pod("ns", "legacy-x", owner("ReplicaSet", "legacy")),
        pod("ns", "vm-x", owner("VirtualMachineInstance", "vm")),
        pod("ns", "gone-0", owner("StatefulSet", "gone")),
    ]
    result = plan(pods, [orphan], [])
    assert result.restart == ()
    assert group_by_reason(result.manual) == {
        "barePod": ["Pod/ns/debug"],
        "job": ["Job/ns/migrate"],
        "ownerNotFound": ["StatefulSet/ns/gone"],
        "replicaSetWithoutDeployment": ["ReplicaSet/ns/legacy"],
        "unsupportedOwner": ["VirtualMachineInstance/ns/vm"],
    }


def test_manual_pods_that_already_match_are_not_listed() -> None:
    result = plan([pod("ns", "debug", redirect="istio-validation")])
    assert result.manual == {}
    assert result.skipped == {WorkloadRef("Pod", "ns", "debug"): SkipReason.ALREADY_MATCHING}


def test_finished_and_terminating_pods_are_ignored() -> None:
    done = pod("ns", "migrate-x", owner("Job", "migrate"), phase="Succeeded")
    leaving = pod("ns", "debug")
    leaving["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert plan([done, leaving]) == plan([])


def test_a_deployment_half_way_through_a_rollout_is_restarted_if_any_pod_mismatches() -> None:
    dep, rs, new_pod = deployment_pods("shop", "cart", redirect="istio-validation")
    old_rs = replicaset("shop", "cart-old", "cart")
    old_pod = pod("shop", "cart-old-x", owner("ReplicaSet", "cart-old"))
    result = plan([new_pod, old_pod], [rs, old_rs], [("Deployment", dep)])
    assert result.restart == (WorkloadRef("Deployment", "shop", "cart"),)


def test_excluded_namespaces_are_skipped_whichever_the_direction() -> None:
    dep, rs, p = deployment_pods("legacy", "app", redirect="istio-validation")
    result = plan([p], [rs], [("Deployment", dep)], cni=False, excluded=("legacy",))
    assert result.skipped == {WorkloadRef("Deployment", "legacy", "app"): SkipReason.EXCLUDED_NAMESPACE}


# -- fingerprint, patch, rollout ----------------------------------------------------------------------------


def test_fingerprint_is_stable_and_ignores_order_and_repetition() -> None:
    base = cni_fingerprint(True, ["kube-system", "istio-system"])
    assert base == cni_fingerprint(True, ["istio-system", "kube-system", "istio-system"])
    assert base != cni_fingerprint(False, ["kube-system", "istio-system"])
    assert base != cni_fingerprint(True, ["kube-system"])
    assert len(base) == 16 and base == cni_fingerprint(True, ("istio-system", "kube-system"))


def test_restart_patch_is_kubectls_plus_the_fingerprint() -> None:
    moment = datetime(2024, 5, 1, 14, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2024-05-01T12:30:05Z"
    assert restart_patch("abc", rfc3339(moment)) == {
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {RESTARTED_AT_ANNOTATION: "2024-05-01T12:30:05Z", FINGERPRINT_ANNOTATION: "abc"}
                }
            }
        }
    }
    assert rfc3339(datetime(2024, 1, 1, tzinfo=UTC)).endswith("Z")


@pytest.mark.parametrize(
    ("kind", "spec", "status", "generation", "done"),
    [
        ("Deployment", {"replicas": 2}, {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                                         "availableReplicas": 2}, 2, True),
        ("Deployment", {"replicas": 2}, {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                                         "availableReplicas": 2}, 2, False),
        ("Deployment", {"replicas": 2}, {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2,
                                         "availableReplicas": 2}, 2, False),
        ("Deployment", {"replicas": 2}, {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                                         "availableReplicas": 1}, 2, False),
        ("StatefulSet", {"replicas": 3}, {"observedGeneration": 2, "updatedReplicas": 3,
                                          "availableReplicas": 3}, 2, True),
        ("StatefulSet", {"replicas": 3}, {"observedGeneration": 2, "updatedReplicas": 2,
                                          "availableReplicas": 3}, 2, False),
        ("DaemonSet", {}, {"observedGeneration": 2, "desiredNumberScheduled": 4, "updatedNumberScheduled": 4,
                           "numberAvailable": 4}, 2, True),
        ("DaemonSet", {}, {"observedGeneration": 2, "desiredNumberScheduled": 4, "updatedNumberScheduled": 3,
                           "numberAvailable": 4}, 2, False),
    ],
)  # fmt: skip
def test_rollout_complete(kind: str, spec: dict[str, Any], status: dict[str, Any], generation: int, done: bool) -> None:
    obj = {"metadata": {"generation": generation}, "spec": spec, "status": status}
    assert rollout_complete(kind, obj, generation) is done


def test_a_rollout_is_not_complete_before_the_patched_generation_is_seen() -> None:
    status = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
    stale = {"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": status}
    assert not rollout_complete("Deployment", stale, 2)


def test_slimming_keeps_what_planning_reads() -> None:
    dep, rs, p = deployment_pods("shop", "cart", workload={"paused": True})
    p["spec"]["containers"][0]["env"] = [{"name": "BIG", "value": "x" * 1000}]
    dep["spec"]["template"]["metadata"]["annotations"]["unrelated"] = "y" * 1000
    slim_plan = plan([slim_pod(p)], [slim_workload(rs)], [("Deployment", slim_workload(dep))])
    assert slim_plan == plan([p], [rs], [("Deployment", dep)])
    assert "BIG" not in str(slim_pod(p)) and "unrelated" not in str(slim_workload(dep))
