"""Restart planning over plain pod and workload objects: no cluster, no client."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from restart.objects import (
    FINGERPRINT_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
    Redirection,
    WorkloadRef,
    has_sidecar,
    pod_revision,
    redirection,
    resolve_owner,
    same_image,
    selector_query,
    slim_pod,
    slim_workload,
)
from restart.plan import (
    ManualReason,
    SkipReason,
    fingerprint,
    mismatched_pods,
    plan_restart,
    restart_patch,
    rfc3339,
)
from restart.report import group_by_reason, summarize
from restart.request import name_list
from restart.rollout import rollout_complete, rollout_failure
from settings.data_plane import ControlPlane, DeclaredDataPlane

EXCLUDED = ("istio-system", "kube-system", "kube-node-lease", "kube-public")
PROXY_IMAGE = "docker.io/istio/proxyv2:1.30.3"


def pod_template_spec(
    app: str, *, sidecar: bool = True, redirect: str | None = "istio-init", native: bool = False
) -> dict[str, Any]:
    """A pod spec as istiod injects it, reduced to what planning reads (the full form: localkube/sidecar.py)."""
    containers: list[dict[str, Any]] = [{"name": app, "image": f"example.com/{app}:1"}]
    init: list[dict[str, Any]] = []
    if sidecar:
        if redirect is not None:
            init.append({"name": redirect, "image": PROXY_IMAGE})
        proxy: dict[str, Any] = {"name": "istio-proxy", "image": PROXY_IMAGE}
        if native:
            init.append({**proxy, "restartPolicy": "Always"})
        else:
            containers.append(proxy)
    spec: dict[str, Any] = {"containers": containers}
    if init:
        spec["initContainers"] = init
    return spec


API_VERSIONS = {"Job": "batch/v1", "VirtualMachineInstance": "kubevirt.io/v1", "Rollout": "argoproj.io/v1alpha1"}


def owner(kind: str, name: str, api_version: str | None = None) -> dict[str, Any]:
    api_version = api_version or API_VERSIONS.get(kind, "apps/v1")
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": f"uid-{name}", "controller": True}


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


def replicaset(namespace: str, name: str, deployment: str | None, kind: str = "Deployment") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if deployment is not None:
        meta["ownerReferences"] = [owner(kind, deployment)]
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


def declared(
    *,
    cni: bool = True,
    excluded: tuple[str, ...] | list[str] = EXCLUDED,
    proxy: str = "",
    canary: ControlPlane | None = None,
    on_canary: tuple[str, ...] = (),
    mesh: tuple[str, ...] = (),
) -> DeclaredDataPlane:
    """A declared data plane; the default plane's image "" is not compared (as a state from before images)."""
    return DeclaredDataPlane(
        default=ControlPlane("default", "", proxy),
        canary=canary,
        canary_namespaces=frozenset(on_canary if canary else ()),
        mesh_namespaces=frozenset(mesh),
        cni_enabled=cni,
        exclude_namespaces=frozenset(excluded),
    )


def plan(
    pods: list[dict[str, Any]],
    replicasets: list[dict[str, Any]] = (),  # type: ignore[assignment]
    workloads: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    *,
    cni: bool = True,
    excluded: tuple[str, ...] = EXCLUDED,
) -> Any:
    return plan_restart(declared(cni=cni, excluded=excluded), pods=pods, replicasets=replicasets, workloads=workloads)


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


def test_owners_are_matched_by_api_group_not_by_kind_alone() -> None:
    kruise = pod("ns", "db-0", owner("StatefulSet", "db", "apps.kruise.io/v1beta1"))
    assert resolve_owner(kruise, {}) == WorkloadRef("StatefulSet.apps.kruise.io", "ns", "db")
    argo_rs = replicaset("ns", "canary-6c9d", "canary", kind="Rollout")
    argo_pod = pod("ns", "canary-6c9d-x", owner("ReplicaSet", "canary-6c9d"))
    assert resolve_owner(argo_pod, {("ns", "canary-6c9d"): argo_rs}) == WorkloadRef(
        "Rollout.argoproj.io", "ns", "canary"
    )
    # An `apps` StatefulSet of the same name must not be rolled for the OpenKruise one's pods.
    result = plan([kruise, argo_pod], [argo_rs], [("StatefulSet", workload("ns", "db"))])
    assert result.restart == ()
    assert group_by_reason(result.manual) == {
        "unsupportedOwner": ["Rollout.argoproj.io/ns/canary", "StatefulSet.apps.kruise.io/ns/db"]
    }


def test_a_replicaset_created_after_the_list_is_traced_to_its_deployment_by_the_template_hash() -> None:
    subject = pod("shop", "cart-7f9-x", owner("ReplicaSet", "cart-7f9"))
    subject["metadata"]["labels"] = {"pod-template-hash": "7f9"}
    assert resolve_owner(subject, {}) == WorkloadRef("Deployment", "shop", "cart")
    cart = workload("shop", "cart")
    assert plan([subject], [], [("Deployment", cart)]).restart == (WorkloadRef("Deployment", "shop", "cart"),)
    # Not "a ReplicaSet without a Deployment": its owner was not found, and a person should look.
    assert group_by_reason(plan([subject]).manual) == {"ownerNotFound": ["Deployment/shop/cart"]}
    subject["metadata"]["labels"] = {}
    assert group_by_reason(plan([subject]).manual) == {"ownerNotFound": ["ReplicaSet (not found)/shop/cart-7f9"]}


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


def test_statefulsets_and_daemonsets_are_restarted_and_on_delete_or_partitioned_ones_left_to_a_person() -> None:
    rolling = workload("db", "pg", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    on_delete = workload("db", "legacy", updateStrategy={"type": "OnDelete"})
    staged = workload("db", "staged", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    daemon = workload("mon", "agent")
    pods = [
        pod("db", "pg-0", owner("StatefulSet", "pg"), native=True),
        pod("db", "legacy-0", owner("StatefulSet", "legacy")),
        pod("db", "staged-0", owner("StatefulSet", "staged")),
        pod("mon", "agent-a", owner("DaemonSet", "agent")),
    ]
    workloads = [("StatefulSet", rolling), ("StatefulSet", on_delete), ("StatefulSet", staged), ("DaemonSet", daemon)]
    result = plan(pods, [], workloads)
    # Namespace by namespace: `db` before `mon`, whatever the kinds.
    assert result.restart == (WorkloadRef("StatefulSet", "db", "pg"), WorkloadRef("DaemonSet", "mon", "agent"))
    assert result.manual == {
        WorkloadRef("StatefulSet", "db", "legacy"): ManualReason.ON_DELETE_STRATEGY,
        WorkloadRef("StatefulSet", "db", "staged"): ManualReason.PARTITIONED_ROLLOUT,
    }


def test_every_skip_reason() -> None:
    excluded = deployment_pods("kube-system", "coredns")
    paused = deployment_pods("shop", "held", workload={"paused": True})
    done_fingerprint = fingerprint(declared())
    done = deployment_pods("shop", "done", workload={"annotations": {FINGERPRINT_ANNOTATION: done_fingerprint}})
    other = deployment_pods("shop", "other", workload={"annotations": {FINGERPRINT_ANNOTATION: "an-older-one"}})
    plain = deployment_pods("shop", "plain", sidecar=False)
    gateway = deployment_pods("shop", "gateway", redirect=None)
    matching = deployment_pods("shop", "new", redirect="istio-validation")
    groups = [excluded, paused, done, other, plain, gateway, matching]
    result = plan([g[2] for g in groups], [g[1] for g in groups], [("Deployment", g[0]) for g in groups])
    assert result.restart == (WorkloadRef("Deployment", "shop", "other"),)
    # Restarted for this very setting, yet its pods still mismatch: not restarted again, but rechecked.
    assert result.recheck == (WorkloadRef("Deployment", "shop", "done"),)
    assert group_by_reason(result.skipped) == {
        "alreadyMatching": ["Deployment/shop/new"],
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
        "unsupportedOwner": ["VirtualMachineInstance.kubevirt.io/ns/vm"],
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
    base = fingerprint(declared(excluded=["kube-system", "istio-system"]))
    assert base == fingerprint(declared(excluded=["istio-system", "kube-system", "istio-system"]))
    assert base != fingerprint(declared(cni=False, excluded=["kube-system", "istio-system"]))
    assert base != fingerprint(declared(excluded=["kube-system"]))
    assert len(base) == 16 and base == fingerprint(declared(excluded=("istio-system", "kube-system")))
    # Without the CNI plugin its exclusion list means nothing: one fingerprint for every such setting.
    assert fingerprint(declared(cni=False, excluded=["kube-system"])) == fingerprint(
        declared(cni=False, excluded=["legacy", "kube-system"])
    )


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
                                          "readyReplicas": 3}, 2, True),
        ("StatefulSet", {"replicas": 3}, {"observedGeneration": 2, "updatedReplicas": 2,
                                          "readyReplicas": 3}, 2, False),
        ("StatefulSet", {"replicas": 3}, {"observedGeneration": 2, "updatedReplicas": 3,
                                          "readyReplicas": 2}, 2, False),
        # kubectl: without a partition, done when the current revision is the update revision.
        ("StatefulSet", {"replicas": 3}, {"observedGeneration": 2, "updatedReplicas": 3, "readyReplicas": 3,
                                          "currentRevision": "pg-1", "updateRevision": "pg-2"}, 2, False),
        ("StatefulSet", {"replicas": 3}, {"observedGeneration": 2, "updatedReplicas": 3, "readyReplicas": 3,
                                          "currentRevision": "pg-2", "updateRevision": "pg-2"}, 2, True),
        # With a partition, done once the pods at or above it are updated.
        ("StatefulSet", {"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}},
         {"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 3, "currentRevision": "pg-1",
          "updateRevision": "pg-2"}, 2, True),
        ("StatefulSet", {"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 1}}},
         {"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 3}, 2, False),
        ("DaemonSet", {}, {"observedGeneration": 2, "desiredNumberScheduled": 4, "updatedNumberScheduled": 4,
                           "numberAvailable": 4}, 2, True),
        ("DaemonSet", {}, {"observedGeneration": 2, "desiredNumberScheduled": 4, "updatedNumberScheduled": 3,
                           "numberAvailable": 4}, 2, False),
    ],
)  # fmt: skip
def test_rollout_complete(kind: str, spec: dict[str, Any], status: dict[str, Any], generation: int, done: bool) -> None:
    obj = {"metadata": {"generation": generation}, "spec": spec, "status": status}
    assert rollout_complete(kind, obj, generation) is done


def test_a_deployment_past_its_progress_deadline_has_failed_once_its_generation_is_seen() -> None:
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"}
    status = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "conditions": [condition]}
    stuck = {"metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": status}
    assert rollout_failure("Deployment", stuck, 2) == "timed out"
    assert rollout_failure("Deployment", {**stuck, "status": {**status, "observedGeneration": 1}}, 2) is None
    assert rollout_failure("Deployment", {**stuck, "status": {**status, "conditions": []}}, 2) is None
    assert rollout_failure("StatefulSet", stuck, 2) is None


def test_after_a_rollout_only_running_pods_with_the_old_redirection_count() -> None:
    cart = WorkloadRef("Deployment", "shop", "cart")
    new = pod("shop", "cart-9a-x", owner("ReplicaSet", "cart-9a"), redirect="istio-init")
    new["metadata"]["labels"] = {"pod-template-hash": "9a"}
    leaving = pod("shop", "cart-5d-x", owner("ReplicaSet", "cart-5d"))
    leaving["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    pending = pod("shop", "cart-5d-y", owner("ReplicaSet", "cart-5d"), phase="Pending")
    good = pod("shop", "web-1-x", owner("ReplicaSet", "web-1"), redirect="istio-validation")
    other = pod("shop", "api-1-x", owner("ReplicaSet", "api-1"))
    sets = [
        replicaset("shop", "cart-5d", "cart"),
        replicaset("shop", "web-1", "web"),
        replicaset("shop", "api-1", "api"),
    ]
    web = WorkloadRef("Deployment", "shop", "web")
    found = mismatched_pods(declared(), pods=[new, leaving, pending, good, other], replicasets=sets, owners=[cart, web])
    # The new ReplicaSet was not listed; its pod still counts. `api` was not restarted: not checked.
    assert found == {cart: ["cart-9a-x"]}


def test_outputs_and_messages_stay_bounded() -> None:
    grouped = {"noSidecar": [f"Deployment/ns/app-{i:03d}" for i in range(120)], "paused": ["Deployment/ns/held"]}
    summary = summarize(grouped)
    assert summary["noSidecar"]["count"] == 120 and len(summary["noSidecar"]["workloads"]) == 50
    assert summary["paused"] == {"count": 1, "workloads": ["Deployment/ns/held"]}
    assert name_list(range(25)).endswith("19 and 5 more")
    assert name_list(["a", "b"]) == "a, b"


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


# -- the proxy version: in-place Istio upgrades ------------------------------------------------------------

OLD_PROXY = "docker.io/istio/proxyv2:1.29.6"
NEW_PROXY = "docker.io/istio/proxyv2:1.30.3"


def with_proxy(
    objects: tuple[dict[str, Any], dict[str, Any], dict[str, Any]], image: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A Deployment's objects whose pod runs `image` as its `istio-proxy`."""
    spec = objects[2]["spec"]
    for container in spec["containers"] + spec.get("initContainers", []):
        if container["name"] == "istio-proxy":
            container["image"] = image
    return objects


@pytest.mark.parametrize(
    ("running", "declared", "same"),
    [
        ("docker.io/istio/proxyv2:1.30.3", "docker.io/istio/proxyv2:1.30.3", True),
        ("istio/proxyv2:1.30.3", "docker.io/istio/proxyv2:1.30.3", True),
        ("docker.io/istio/proxyv2:1.30.3@sha256:" + "a" * 64, "docker.io/istio/proxyv2:1.30.3", True),
        ("docker.io/istio/proxyv2:1.30.3-distroless", "docker.io/istio/proxyv2:1.30.3", False),
        ("docker.io/istio/proxyv2:1.29.6", "docker.io/istio/proxyv2:1.30.3", False),
        ("myacr.azurecr.io/istio/proxyv2:1.30.3", "docker.io/istio/proxyv2:1.30.3", False),
    ],
)
def test_a_proxy_image_is_compared_without_digest_or_docker_hubs_implicit_registry(
    running: str, declared: str, same: bool
) -> None:
    assert same_image(running, declared) is same


def test_an_istio_upgrade_restarts_the_workloads_on_another_proxy_and_says_why() -> None:
    old = with_proxy(deployment_pods("shop", "cart", redirect="istio-validation"), OLD_PROXY)
    new = with_proxy(deployment_pods("shop", "web", redirect="istio-validation"), NEW_PROXY)
    both = with_proxy(deployment_pods("shop", "legacy", redirect="istio-init"), OLD_PROXY)
    plan = plan_restart(
        declared(proxy=NEW_PROXY),
        pods=[old[2], new[2], both[2]],
        replicasets=[old[1], new[1], both[1]],
        workloads=[("Deployment", old[0]), ("Deployment", new[0]), ("Deployment", both[0])],
    )
    cart, legacy, web = (WorkloadRef("Deployment", "shop", name) for name in ("cart", "legacy", "web"))
    assert plan.restart == (cart, legacy)
    assert plan.reasons == {cart: ("proxyVersion",), legacy: ("proxyVersion", "redirection")}
    assert plan.skipped == {web: SkipReason.ALREADY_MATCHING}


def test_the_fingerprint_is_the_one_earlier_releases_wrote_on_the_workloads() -> None:
    assert fingerprint(declared(proxy=NEW_PROXY)) != fingerprint(declared(proxy=OLD_PROXY))
    # What earlier releases wrote into the workloads' annotations (computed by them): it must not move, or every
    # workload would be restarted once more after an upgrade of this program.
    assert fingerprint(declared(excluded=["istio-system", "kube-system"])) == "481a3ec1b03cfff5"
    assert fingerprint(declared(cni=False, excluded=["kube-system"])) == "917e0fa807f793fd"
    assert fingerprint(declared(excluded=["kube-system"], proxy="docker.io/istio/proxyv2:1.30.3")) == "cf93f722f789a6fe"
    canary = ControlPlane("1-30-3", "1.30.3", "docker.io/istio/proxyv2:1.30.3")
    with_canary = declared(
        excluded=["istio-system", "kube-system"],
        proxy="docker.io/istio/proxyv2:1.29.6",
        canary=canary,
        on_canary=("shop",),
        mesh=("shop", "payments"),
    )
    assert fingerprint(with_canary) == "43e2041bb43380ab"
    # The versions are not part of it: a state that lacks them fingerprints alike.
    assert fingerprint(replace(with_canary, default=replace(with_canary.default, version="1.29.6"))) == (
        "43e2041bb43380ab"
    )


def on_revision(
    objects: tuple[dict[str, Any], dict[str, Any], dict[str, Any]], revision: str, image: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A Deployment's objects whose pod was injected by `revision` with `image` (istiod labels its pods)."""
    with_proxy(objects, image)
    objects[2]["metadata"]["labels"] = {"istio.io/rev": revision}
    return objects


CANARY = ControlPlane("1-30-3", "", NEW_PROXY)


def canary_plan(*objects: tuple[dict[str, Any], dict[str, Any], dict[str, Any]], on_canary: tuple[str, ...]) -> Any:
    return plan_restart(
        declared(proxy=OLD_PROXY, canary=CANARY, on_canary=on_canary),
        pods=[o[2] for o in objects],
        replicasets=[o[1] for o in objects],
        workloads=[("Deployment", o[0]) for o in objects],
    )


def test_each_namespace_is_compared_with_its_own_control_plane() -> None:
    default_ok = on_revision(deployment_pods("pay", "api", redirect="istio-validation"), "default", OLD_PROXY)
    canary_ok = on_revision(deployment_pods("shop", "web", redirect="istio-validation"), "1-30-3", NEW_PROXY)
    to_canary = on_revision(deployment_pods("shop", "cart", redirect="istio-validation"), "default", OLD_PROXY)
    # Left on the canary after its namespace went back (roll back): same proxy as the canary, other revision.
    stray = on_revision(deployment_pods("pay", "late", redirect="istio-validation"), "1-30-3", NEW_PROXY)
    plan = canary_plan(default_ok, canary_ok, to_canary, stray, on_canary=("shop",))
    api, web, cart, late = (WorkloadRef("Deployment", ns, n) for ns, n in (("pay", "api"), ("shop", "web"),
                                                                        ("shop", "cart"), ("pay", "late")))  # fmt: skip
    assert plan.skipped == {api: SkipReason.ALREADY_MATCHING, web: SkipReason.ALREADY_MATCHING}
    assert plan.reasons == {cart: ("proxyVersion", "revision"), late: ("proxyVersion", "revision")}


def test_a_pod_without_a_revision_label_is_judged_by_its_proxy_alone() -> None:
    unlabelled = with_proxy(deployment_pods("pay", "old", redirect="istio-validation"), OLD_PROXY)
    plan = canary_plan(unlabelled, on_canary=())
    assert plan.restart == ()


def test_the_canarys_namespaces_roll_first_then_namespace_by_namespace() -> None:
    objects = [
        on_revision(deployment_pods(namespace, name, redirect="istio-validation"), "default", "docker.io/istio/x:1")
        for namespace, name in (("a-pay", "api"), ("z-shop", "web"), ("a-pay", "batch"), ("m-search", "idx"))
    ]
    plan = canary_plan(*objects, on_canary=("z-shop",))
    assert [str(ref) for ref in plan.restart] == [
        "Deployment/z-shop/web",
        "Deployment/a-pay/api",
        "Deployment/a-pay/batch",
        "Deployment/m-search/idx",
    ]


def test_the_fingerprint_covers_the_canary_and_its_namespaces() -> None:
    without = fingerprint(declared(proxy=OLD_PROXY))
    planes = declared(proxy=OLD_PROXY, canary=CANARY, on_canary=("shop",))
    moved = declared(proxy=OLD_PROXY, canary=CANARY, on_canary=("shop", "pay"))
    assert len({without, fingerprint(planes), fingerprint(moved)}) == 3


def test_mismatched_pods_after_a_rollout_compare_the_namespaces_plane() -> None:
    cart = on_revision(deployment_pods("shop", "cart", redirect="istio-validation"), "default", OLD_PROXY)
    ref = WorkloadRef("Deployment", "shop", "cart")
    left = mismatched_pods(
        declared(proxy=OLD_PROXY, canary=CANARY, on_canary=("shop",)), pods=[cart[2]], replicasets=[cart[1]],
        owners=[ref],
    )  # fmt: skip
    assert left == {ref: [cart[2]["metadata"]["name"]]}


def test_after_a_rollout_outside_the_mesh_the_canary_its_label_picks_is_accepted() -> None:
    """An app team's namespace labelled `istio.io/rev=canary`, outside `mesh.namespaces`: its new pods run the
    canary, which is declared; the post-rollout check must not call them mismatched."""
    web = on_revision(deployment_pods("team", "web", redirect="istio-validation"), "1-30-3", NEW_PROXY)
    ref = WorkloadRef("Deployment", "team", "web")
    data_plane = declared(proxy=OLD_PROXY, canary=CANARY, on_canary=("shop",), mesh=("shop", "pay"))
    assert mismatched_pods(data_plane, pods=[web[2]], replicasets=[web[1]], owners=[ref]) == {}
    # In a mesh namespace the same pods are on the wrong plane.
    shop = on_revision(deployment_pods("pay", "web", redirect="istio-validation"), "1-30-3", NEW_PROXY)
    shop_ref = WorkloadRef("Deployment", "pay", "web")
    assert mismatched_pods(data_plane, pods=[shop[2]], replicasets=[shop[1]], owners=[shop_ref]) == {
        shop_ref: [shop[2]["metadata"]["name"]]
    }


@pytest.mark.parametrize(
    ("selector", "query"),
    [
        ({"matchLabels": {"app": "cart", "tier": "web"}}, "app=cart,tier=web"),
        (
            {
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["web", "api"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "app", "operator": "Exists"},
                    {"key": "env", "operator": "NotIn", "values": ["dev"]},
                ]
            },
            "tier in (web,api),!canary,app,env notin (dev)",
        ),
        ({}, ""),
    ],
)
def test_a_workloads_selector_becomes_the_label_selector_of_its_pod_list(selector: dict[str, Any], query: str) -> None:
    assert selector_query({"spec": {"selector": selector}}) == query
    assert slim_workload({"metadata": {"name": "w"}, "spec": {"selector": selector}})["spec"]["selector"] == selector


def test_the_slim_pod_keeps_the_revision_label() -> None:
    cart = on_revision(deployment_pods("shop", "cart"), "1-30-3", NEW_PROXY)
    assert pod_revision(slim_pod(cart[2])) == "1-30-3"


def test_pods_left_on_a_removed_control_plane_that_cannot_be_rolled_are_stranded() -> None:
    """After a roll back or promotion the canary's revision is declared no more; its release goes next."""
    rolled = on_revision(deployment_pods("shop", "cart", redirect="istio-validation"), "1-30-3", NEW_PROXY)
    bare = pod("shop", "debug", redirect="istio-validation")
    bare["metadata"]["labels"] = {"istio.io/rev": "1-30-3"}
    plan = plan_restart(
        declared(proxy=NEW_PROXY), pods=[rolled[2], bare], replicasets=[rolled[1]],
        workloads=[("Deployment", rolled[0])], removing=frozenset({"1-30-3"}),
    )  # fmt: skip
    assert plan.restart == (WorkloadRef("Deployment", "shop", "cart"),), "rolled onto the default"
    assert plan.stranded == {WorkloadRef("Pod", "shop", "debug"): ("1-30-3",)}


def test_a_revision_this_update_does_not_remove_strands_nothing() -> None:
    """A tenant's bare pod labelled with a revision of its own (`zzz`) is not this stack's to protect."""
    squatter = pod("tenant", "squatter", redirect="istio-validation")
    squatter["metadata"]["labels"] = {"istio.io/rev": "zzz"}
    plan = plan_restart(declared(proxy=NEW_PROXY), pods=[squatter], replicasets=[], workloads=[])
    assert plan.stranded == {}
    removing = plan_restart(
        declared(proxy=NEW_PROXY), pods=[squatter], replicasets=[], workloads=[], removing=frozenset({"zzz"})
    )
    assert removing.stranded == {WorkloadRef("Pod", "tenant", "squatter"): ("zzz",)}


def test_outside_the_mesh_namespaces_any_declared_control_plane_is_accepted() -> None:
    """An app team's own namespace labelled `istio.io/rev=canary` is not moved back by the restart."""
    theirs = on_revision(deployment_pods("team-x", "api", redirect="istio-validation"), "1-30-3", NEW_PROXY)
    ours = on_revision(deployment_pods("shop", "web", redirect="istio-validation"), "1-30-3", NEW_PROXY)
    plan = plan_restart(
        declared(proxy=OLD_PROXY, canary=CANARY, mesh=("shop",)),
        pods=[theirs[2], ours[2]], replicasets=[theirs[1], ours[1]],
        workloads=[("Deployment", theirs[0]), ("Deployment", ours[0])],
    )  # fmt: skip
    assert plan.skipped == {WorkloadRef("Deployment", "team-x", "api"): SkipReason.ALREADY_MATCHING}
    assert plan.reasons == {WorkloadRef("Deployment", "shop", "web"): ("proxyVersion", "revision")}


def test_a_hostile_owner_reference_is_shown_escaped_and_bounded_everywhere() -> None:
    """Outputs, log lines and messages all print `WorkloadRef`s: a kind or name the API server never checked
    (an owner reference's) is replaced before anything uses it."""
    hostile = pod("tenant", "squatter", owner("Thing", "x\n::error::forged " + "a" * 300, "example.com/v1"))
    hostile["spec"]["containers"][0]["image"] = "docker.io/istio/proxyv2:1.30.3"
    result = plan([hostile])
    (ref,) = result.manual
    assert (
        str(ref)
        == "Thing.example.com/tenant/invalid(x\\x0a\\x3a\\x3aerror\\x3a\\x3aforged\\x20aaaaaaaaaaaaaaaaaaaaaa...)"
    )
    assert str(ref).isprintable() and len(str(ref)) < 120
    assert group_by_reason(result.manual) == {"unsupportedOwner": [str(ref)]}
    assert WorkloadRef("Deployment", "shop", "cart") == WorkloadRef("Deployment", "shop", "cart"), "valid names stay"
    assert str(WorkloadRef("Deployment", "shop", "cart")) == "Deployment/shop/cart"
