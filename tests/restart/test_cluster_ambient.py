"""Namespaces moved between sidecars and ambient mode on the real control plane, through Pulumi's provider host.

The played injector is istiod with the ambient profile (HBONE on, and no injection where a namespace carries only
the ambient label); the played nodes are the CNI node agent, which captures ambient pods as they start. The test
changes each namespace's labels as the Namespace resources do in the same `pulumi up`, before the rollout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from kubernetes import client

from localkube import mesh_crds as crds
from localkube.cluster import DEFAULT_REVISION, Cluster
from localkube.namespaces import Namespaces
from localkube.nodes import REDIRECTION
from localkube.waiting import wait_for
from localkube.workloads import create, deployment, pods, read, rollout_restart, statefulset
from tests.restart.cluster_helpers import create_istio_object as add
from tests.restart.cluster_helpers import generations, restart_inputs, rolled_out, sidecars
from tests.restart.test_ambient_gate import L7_RULES, SELECTOR, declared
from tests.restart.test_ambient_gate import checked as gate_checked
from tests.restart.test_ambient_gate import create as gate_create
from tests.restart.test_ambient_gate import inputs as gate_inputs
from tests.support.provider_host import Host, as_dict, checked, engine_view, update
from tests.support.provider_host import create as host_create

pytestmark = pytest.mark.cluster

VERSION = "1.30.3"
PROXY = f"docker.io/istio/proxyv2:{VERSION}"
INJECTION = {"istio-injection": "enabled"}
TO_AMBIENT = {"istio.io/dataplane-mode": "ambient", "istio-injection": None}
TO_SIDECARS = {"istio-injection": "enabled", "istio.io/dataplane-mode": None}
SHOP = (("Deployment", "cart"), ("StatefulSet", "db"))
PAYMENTS = (("Deployment", "pay"), ("Deployment", "ledger"), ("Deployment", "fraud"))


@dataclass
class AmbientMesh:
    cluster: Cluster
    namespaces: Namespaces
    host: Host
    shop: str
    payments: str
    state: dict[str, Any]

    def declared(self, ambient: tuple[str, ...] = (), **options: Any) -> dict[str, Any]:
        values = {
            "version": VERSION,
            "proxyImage": PROXY,
            "meshNamespaces": [self.shop, self.payments],
            "ambientNamespaces": list(ambient),
            "hbone": True,
            **options,
        }
        return restart_inputs(self.cluster, self.namespaces, **values)

    def apply(self, ambient: tuple[str, ...] = (), host: Host | None = None, **options: Any) -> dict[str, Any]:
        """`pulumi up` of a stage: the restart updated from the last state to what the stage declares."""
        host = host or self.host
        news = engine_view(checked(host, self.declared(ambient, **options)))
        self.state = update(host, engine_view(self.state), news)
        return self.state

    def labels(self, namespace: str) -> dict[str, str]:
        labels = client.CoreV1Api(self.cluster.api).read_namespace(namespace).metadata.labels or {}
        return {key: value for key, value in labels.items() if "istio" in key}

    def running(self, namespace: str) -> list[dict[str, Any]]:
        return [
            pod
            for pod in pods(self.cluster.api, namespace)
            if not pod["metadata"].get("deletionTimestamp") and pod.get("status", {}).get("phase") == "Running"
        ]

    def generations(self) -> dict[str, dict[tuple[str, str], int]]:
        return {
            "shop": generations(self.cluster, self.shop, SHOP),
            "payments": generations(self.cluster, self.payments, PAYMENTS),
        }


def refs(namespace: str, workloads: tuple[tuple[str, str], ...]) -> list[str]:
    return sorted(f"{kind}/{namespace}/{name}" for kind, name in workloads)


def ambient_pods(mesh: AmbientMesh, namespace: str) -> bool:
    """Every running pod of the namespace without a sidecar and captured by ztunnel."""
    running = mesh.running(namespace)
    return bool(running) and all(
        not sidecars(pod) and (pod["metadata"].get("annotations") or {}).get(REDIRECTION) == "enabled"
        for pod in running
    )


def hbone_sidecars(mesh: AmbientMesh, namespace: str) -> bool:
    """Every running pod of the namespace with a sidecar that speaks HBONE."""
    running = mesh.running(namespace)
    return bool(running) and all(
        any(
            env == {"name": "ISTIO_META_ENABLE_HBONE", "value": "true"}
            for sidecar in sidecars(pod)
            for env in sidecar.get("env", [])
        )
        for pod in running
    )


@pytest.fixture
def mesh(cluster: Cluster, namespaces: Namespaces, host: Host) -> Iterator[AmbientMesh]:
    """Two sidecar namespaces on Istio 1.30.3 with ambient mode's components: sidecars injected with HBONE."""
    injector = cluster.injector
    saved = injector.state()
    injector.set_revision(DEFAULT_REVISION, tag=VERSION, cni=True, hbone=True)
    shop, payments = namespaces.create("shop", INJECTION), namespaces.create("payments", INJECTION)
    create(cluster.api, shop, deployment("cart", 2), statefulset("db"))
    create(cluster.api, payments, *(deployment(name) for _kind, name in PAYMENTS))
    rolled_out(cluster, shop, SHOP)
    rolled_out(cluster, payments, PAYMENTS)
    ambient_mesh = AmbientMesh(cluster, namespaces, host, shop, payments, {})
    news = engine_view(checked(host, ambient_mesh.declared()))
    ambient_mesh.state = as_dict(host_create(host, news).properties)
    assert ambient_mesh.state["restarted"] == [], ambient_mesh.state["restartReasons"]
    try:
        yield ambient_mesh
    finally:
        injector.restore(saved)


def test_a_namespace_moved_to_ambient_and_back_re_injects_exactly_its_workloads_each_way(
    mesh: AmbientMesh, record_property: Callable[[str, object], None]
) -> None:
    """`record_property` keeps what was observed in the JUnit report (`pytest --junitxml`), for the record."""
    start = mesh.generations()
    assert mesh.labels(mesh.payments) == {"istio-injection": "enabled"}
    record_property("labels before", mesh.labels(mesh.payments))

    # To ambient: the Namespace's labels change first (ambient on, injection off), then the rollout.
    mesh.namespaces.label("payments", TO_AMBIENT)
    assert mesh.labels(mesh.payments) == {"istio.io/dataplane-mode": "ambient"}
    moved = mesh.apply(ambient=(mesh.payments,))
    record_property("to ambient: labels", mesh.labels(mesh.payments))
    record_property("to ambient: restarted", moved["restarted"])
    record_property("to ambient: restartReasons", moved["restartReasons"])
    assert moved["restarted"] == refs(mesh.payments, PAYMENTS)
    assert moved["restartReasons"] == {"dataplaneMode": refs(mesh.payments, PAYMENTS)}
    assert ambient_pods(mesh, mesh.payments)
    assert hbone_sidecars(mesh, mesh.shop)
    after_move = mesh.generations()
    assert after_move["shop"] == start["shop"]
    assert all(after_move["payments"][w] == start["payments"][w] + 1 for w in PAYMENTS)

    # Back to sidecars: the injection label returns, the ambient label goes, and the rollout re-injects them.
    mesh.namespaces.label("payments", TO_SIDECARS)
    assert mesh.labels(mesh.payments) == {"istio-injection": "enabled"}
    back = mesh.apply()
    record_property("back: labels", mesh.labels(mesh.payments))
    record_property("back: restarted", back["restarted"])
    record_property("back: restartReasons", back["restartReasons"])
    assert back["restarted"] == refs(mesh.payments, PAYMENTS)
    assert back["restartReasons"] == {"dataplaneMode": refs(mesh.payments, PAYMENTS)}
    assert hbone_sidecars(mesh, mesh.payments)
    after_back = mesh.generations()
    assert after_back["shop"] == start["shop"]
    assert all(after_back["payments"][w] == start["payments"][w] + 2 for w in PAYMENTS)


def test_enabling_ambient_mode_re_injects_every_sidecar_once_for_hbone(
    mesh: AmbientMesh, record_property: Callable[[str, object], None]
) -> None:
    """Sidecars injected before the ambient profile lack HBONE: turning ambient mode on re-injects each once."""
    mesh.cluster.injector.set_revision(DEFAULT_REVISION, tag=VERSION, cni=True, hbone=False)
    for namespace, workloads in ((mesh.shop, SHOP), (mesh.payments, PAYMENTS)):
        for kind, name in workloads:
            rollout_restart(mesh.cluster.api, kind, namespace, name)
        rolled_out(mesh.cluster, namespace, workloads)
    mesh.state = mesh.apply(hbone=False)
    assert not hbone_sidecars(mesh, mesh.shop)

    mesh.cluster.injector.set_revision(DEFAULT_REVISION, tag=VERSION, cni=True, hbone=True)
    switched = mesh.apply()
    record_property("hbone: restartReasons", switched["restartReasons"])
    everything = sorted(refs(mesh.shop, SHOP) + refs(mesh.payments, PAYMENTS))
    assert switched["restarted"] == everything
    assert switched["restartReasons"] == {"hbone": everything}
    assert hbone_sidecars(mesh, mesh.shop) and hbone_sidecars(mesh, mesh.payments)


def test_a_run_killed_part_way_is_resumed_by_the_next_and_restarts_nothing_twice(
    mesh: AmbientMesh, record_property: Callable[[str, object], None]
) -> None:
    """One workload at a time; the second's new pods never become Ready, and the provider host is killed while it
    waits. The re-run (a new host, the same change) restarts only what the first did not reach."""
    start = mesh.generations()
    mesh.namespaces.label("payments", TO_AMBIENT)
    # Rollout order is by name: fraud, ledger, pay. ledger's new (ambient) pods hang.
    release = mesh.cluster.kubelets.never_ready(
        lambda pod: (
            pod["metadata"].get("namespace") == mesh.payments
            and pod["metadata"]["name"].startswith("ledger-")
            and not sidecars(pod)
        )
    )
    doomed = Host()
    failure: list[BaseException] = []

    def first_run() -> None:
        try:
            mesh.apply(ambient=(mesh.payments,), host=doomed, maxConcurrent=1, slowStart=False)
        except BaseException as exc:
            failure.append(exc)

    runner = threading.Thread(target=first_run, daemon=True)
    try:
        runner.start()
        wait_for(
            lambda: (
                read(mesh.cluster.api, "Deployment", mesh.payments, "ledger")["metadata"]["generation"]
                > start["payments"][("Deployment", "ledger")]
            ),
            what="the first run to reach ledger",
        )
        doomed.process.kill()
        runner.join(timeout=30)
        assert not runner.is_alive() and failure, "the killed run must end in an error"
    finally:
        doomed.close()
        release()
    killed = mesh.generations()["payments"]
    record_property("killed: generations before, after the killed run", (start["payments"], killed))
    assert killed[("Deployment", "pay")] == start["payments"][("Deployment", "pay")]  # never reached

    resumed = mesh.apply(ambient=(mesh.payments,), maxConcurrent=1, slowStart=False)
    record_property("resumed: restarted", resumed["restarted"])
    record_property("resumed: skipped", resumed["skipped"])
    assert resumed["restarted"] == [f"Deployment/{mesh.payments}/pay"]
    final = mesh.generations()
    assert all(final["payments"][w] == start["payments"][w] + 1 for w in PAYMENTS), final
    assert final["shop"] == start["shop"]
    assert ambient_pods(mesh, mesh.payments)


def test_a_blocked_move_changes_no_label_and_restarts_nothing_until_acknowledged(
    mesh: AmbientMesh, mesh_crds: crds.Installed, record_property: Callable[[str, object], None]
) -> None:
    """`pulumi up` of a move whose namespace has a selector-based L7 AuthorizationPolicy: the move check, which every
    namespace's labels depend on, refuses it, so the engine changes no label and runs no rollout. Acknowledged, the
    same move goes through: labels, then the rollout."""
    start = mesh.generations()
    add(mesh.cluster, mesh.payments, "AuthorizationPolicy", "get-only", {"selector": SELECTOR, "rules": L7_RULES})
    key = f"AuthorizationPolicy/{mesh.payments}/get-only"
    kubeconfig = mesh.cluster.kubeconfig()

    with pytest.raises(grpc.RpcError) as refused:
        gate_create(mesh.host, engine_view(gate_checked(mesh.host, gate_inputs(kubeconfig, declared(mesh.payments)))))
    refusal = refused.value.details()  # type: ignore[attr-defined]
    record_property(
        "blocked: refusal",
        refusal[refusal.index("ambient mode refused") :] if "ambient mode refused" in refusal else refusal,
    )
    assert key in refusal and "No namespace label was changed." in refusal
    # The engine stops there: what depends on the check (the labels, then the rollout) is not run.
    assert mesh.labels(mesh.payments) == {"istio-injection": "enabled"}
    assert mesh.generations() == start
    record_property("blocked: labels after", mesh.labels(mesh.payments))

    acknowledged = gate_inputs(kubeconfig, declared(mesh.payments, acknowledge=[key]))
    accepted = as_dict(gate_create(mesh.host, engine_view(gate_checked(mesh.host, acknowledged))).properties)
    assert accepted["accepted"] == {mesh.payments: [key]}
    mesh.namespaces.label("payments", TO_AMBIENT)
    moved = mesh.apply(ambient=(mesh.payments,))
    assert moved["restarted"] == refs(mesh.payments, PAYMENTS)
    assert ambient_pods(mesh, mesh.payments)
    assert mesh.generations()["shop"] == start["shop"]


def test_a_move_whose_namespace_labels_did_not_change_restarts_nothing(mesh: AmbientMesh) -> None:
    """A targeted `pulumi up` (or a hand edit) left the namespace labelled for sidecars: re-injecting now would give
    the new pods sidecars again, so the rollout stops before its first PATCH."""
    start = mesh.generations()
    with pytest.raises(grpc.RpcError) as refused:
        mesh.apply(ambient=(mesh.payments,))
    message = refused.value.details()  # type: ignore[attr-defined]
    assert f"namespace {mesh.payments} is declared ambient but its labels are istio-injection=enabled" in message
    assert "No workload was restarted" in message
    assert mesh.generations() == start
