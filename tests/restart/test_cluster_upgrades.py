"""Istio upgrades on the real control plane: in place, canary, promote and roll back, each re-injecting exactly
the workloads it should, through Pulumi's real dynamic-provider host.

The played injector is the two control planes: revision `default` (the unrevisioned istiod, which serves
`istio-injection=enabled`) and revision `1-30-3` behind the tag `canary` (`istio.io/rev=canary`). What the
program's Helm releases and namespace labels would do at each stage, the test does to the injector and the
namespaces, then runs the restart with the inputs the program declares for that stage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2

from localkube.cluster import DEFAULT_REVISION, Cluster
from localkube.injector import DEFAULT_TAG
from localkube.namespaces import Namespaces
from localkube.waiting import wait_for
from localkube.workloads import create, daemonset, deployment, pod, pods, statefulset
from restart.request import RestartError, RestartRequest
from restart.run import run_restart
from tests.restart.cluster_helpers import (
    BOTH_FORMS,
    FAST,
    INJECTION,
    all_redirected_by,
    generations,
    request_from,
    restart_inputs,
    rolled_out,
    sidecar_forms,
    sidecars,
)
from tests.support.provider_host import Host, as_dict, checked, diff, engine_view, update
from tests.support.provider_host import create as host_create

pytestmark = pytest.mark.cluster

OLD, NEW = "1.29.6", "1.30.3"
OLD_PROXY, NEW_PROXY = f"docker.io/istio/proxyv2:{OLD}", f"docker.io/istio/proxyv2:{NEW}"
CANARY = "1-30-3"
ON_CANARY = {"istio.io/rev": "canary", "istio-injection": None}
ON_DEFAULT = {"istio-injection": "enabled", "istio.io/rev": None}
SHOP = (("Deployment", "cart"), ("StatefulSet", "db"))
PAYMENTS = (("Deployment", "pay"), ("DaemonSet", "agent"))


@dataclass
class Mesh:
    """Two mesh namespaces on Istio 1.29.6, the restart created for that, and the state the engine keeps."""

    cluster: Cluster
    namespaces: Namespaces
    host: Host
    shop: str
    payments: str
    state: dict[str, Any]
    form: str
    """The sidecar form istiod injects: `native` or `container`."""

    def apply(self, **declared: Any) -> dict[str, Any]:
        """`pulumi up` of a stage: the restart updated from the last state to the inputs this stage declares."""
        news = engine_view(checked(self.host, restart_inputs(self.cluster, self.namespaces, **declared)))
        self.state = update(self.host, engine_view(self.state), news)
        return self.state

    def request(self, **inputs: Any) -> RestartRequest:
        """A run on this mesh (its two namespaces) with a canary, called directly (not through the provider host)."""
        values = {
            "version": OLD,
            "proxyImage": OLD_PROXY,
            "canaryVersion": NEW,
            "canaryRevision": CANARY,
            "canaryProxyImage": NEW_PROXY,
            "meshNamespaces": [self.shop, self.payments],
            **inputs,
        }
        return request_from(restart_inputs(self.cluster, self.namespaces, **values))

    def move(self, suffix: str, labels: dict[str, str | None]) -> None:
        self.namespaces.label(suffix, labels)

    def sidecars(self, namespace: str) -> set[tuple[str, str]]:
        """(revision, proxy image) of the running pods of a namespace; each in the mesh's sidecar form."""
        assert sidecar_forms(self.cluster, namespace) == {self.form}
        return {
            (p["metadata"]["labels"].get("istio.io/rev", ""), container["image"])
            for p in pods(self.cluster.api, namespace)
            if not p["metadata"].get("deletionTimestamp") and p.get("status", {}).get("phase") == "Running"
            for container in sidecars(p)
        }

    def generations(self) -> dict[str, dict[tuple[str, str], int]]:
        return {
            "shop": generations(self.cluster, self.shop, SHOP),
            "payments": generations(self.cluster, self.payments, PAYMENTS),
        }


def refs(namespace: str, workloads: tuple[tuple[str, str], ...]) -> list[str]:
    return sorted(f"{kind}/{namespace}/{name}" for kind, name in workloads)


def canary_inputs(*on_canary: str) -> dict[str, Any]:
    return {"canaryRevision": CANARY, "canaryProxyImage": NEW_PROXY, "canaryNamespaces": list(on_canary)}


@pytest.fixture
def mesh(cluster: Cluster, namespaces: Namespaces, host: Host, sidecar_form: str) -> Iterator[Mesh]:
    """In the sidecar form the test asks for (`sidecar_form`: native unless parametrized)."""
    injector = cluster.injector
    saved = injector.state()
    injector.set_revision(DEFAULT_REVISION, tag=OLD, cni=True)
    injector.set_tag(DEFAULT_TAG, DEFAULT_REVISION)
    shop, payments = namespaces.create("shop", INJECTION), namespaces.create("payments", INJECTION)
    create(cluster.api, shop, deployment("cart", 2), statefulset("db"))
    create(cluster.api, payments, deployment("pay"), daemonset("agent"))
    rolled_out(cluster, shop, SHOP)
    rolled_out(cluster, payments, PAYMENTS)
    news = engine_view(checked(host, restart_inputs(cluster, namespaces, proxyImage=OLD_PROXY)))
    state = as_dict(host_create(host, news).properties)
    assert state["restarted"] == [], state["restartReasons"]  # every pod already runs the declared data plane
    try:
        yield Mesh(cluster, namespaces, host, shop, payments, state, sidecar_form)
    finally:
        injector.restore(saved)


def add_canary(mesh: Mesh) -> None:
    """The canary's istiod release: revision 1-30-3 and its tag, beside the default."""
    mesh.cluster.injector.set_revision(CANARY, tag=NEW, cni=True)
    mesh.cluster.injector.set_tag("canary", CANARY)


def remove_canary(mesh: Mesh) -> None:
    """Pulumi deletes the canary's release at the end of the update, after the restart succeeded."""
    mesh.cluster.injector.remove_tag("canary")
    mesh.cluster.injector.remove_revision(CANARY)


@BOTH_FORMS
def test_canary_then_promote_reinjects_each_namespace_once_per_move(mesh: Mesh) -> None:
    start = mesh.generations()

    # 1. A canary beside the default, no namespace on it yet: nothing to re-inject.
    add_canary(mesh)
    assert mesh.apply(proxyImage=OLD_PROXY, **canary_inputs())["restarted"] == []

    # 2. shop moves to the canary: its workloads alone, for both the revision and the proxy.
    mesh.move("shop", ON_CANARY)
    moved = mesh.apply(proxyImage=OLD_PROXY, **canary_inputs(mesh.shop))
    assert moved["restarted"] == refs(mesh.shop, SHOP)
    assert moved["restartReasons"] == {"proxyVersion": refs(mesh.shop, SHOP), "revision": refs(mesh.shop, SHOP)}
    assert mesh.sidecars(mesh.shop) == {(CANARY, NEW_PROXY)}
    assert mesh.sidecars(mesh.payments) == {("default", OLD_PROXY)}
    assert mesh.generations()["payments"] == start["payments"], "payments was not touched"

    # 3. Promote: the default istiod upgraded in place to 1.30.3, shop back on it; the canary still runs.
    mesh.cluster.injector.set_revision(DEFAULT_REVISION, tag=NEW, cni=True)
    mesh.move("shop", ON_DEFAULT)
    promoted = mesh.apply(proxyImage=NEW_PROXY)
    assert promoted["restarted"] == sorted(refs(mesh.shop, SHOP) + refs(mesh.payments, PAYMENTS))
    assert promoted["restartReasons"] == {
        "proxyVersion": refs(mesh.payments, PAYMENTS),
        "revision": refs(mesh.shop, SHOP),
    }
    remove_canary(mesh)
    assert mesh.sidecars(mesh.shop) == mesh.sidecars(mesh.payments) == {("default", NEW_PROXY)}
    twice = {ref: generation + 2 for ref, generation in start["shop"].items()}
    once = {ref: generation + 1 for ref, generation in start["payments"].items()}
    assert mesh.generations() == {"shop": twice, "payments": once}

    # 4. A plain `pulumi up` afterwards: no diff, so nothing runs.
    unchanged = engine_view(checked(mesh.host, restart_inputs(mesh.cluster, mesh.namespaces, proxyImage=NEW_PROXY)))
    assert diff(mesh.host, engine_view(mesh.state), unchanged).changes == provider_pb2.DiffResponse.DIFF_NONE


def test_a_roll_back_moves_only_the_canarys_namespaces_back(mesh: Mesh) -> None:
    start = mesh.generations()
    add_canary(mesh)
    mesh.move("shop", ON_CANARY)
    assert mesh.apply(proxyImage=OLD_PROXY, **canary_inputs(mesh.shop))["restarted"] == refs(mesh.shop, SHOP)

    # Roll back: the canary removed, `version` unchanged; shop back on the default, re-injected, then the canary goes.
    mesh.move("shop", ON_DEFAULT)
    rolled_back = mesh.apply(proxyImage=OLD_PROXY)
    assert rolled_back["restarted"] == refs(mesh.shop, SHOP)
    assert rolled_back["restartReasons"] == {
        "proxyVersion": refs(mesh.shop, SHOP),
        "revision": refs(mesh.shop, SHOP),
    }
    remove_canary(mesh)
    assert mesh.sidecars(mesh.shop) == mesh.sidecars(mesh.payments) == {("default", OLD_PROXY)}
    assert mesh.generations()["payments"] == start["payments"]


def test_an_in_place_upgrade_reinjects_every_workload_on_the_old_proxy(mesh: Mesh) -> None:
    mesh.cluster.injector.set_revision(DEFAULT_REVISION, tag=NEW, cni=True)
    upgraded = mesh.apply(proxyImage=NEW_PROXY)
    everything = sorted(refs(mesh.shop, SHOP) + refs(mesh.payments, PAYMENTS))
    assert upgraded["restarted"] == everything
    assert upgraded["restartReasons"] == {"proxyVersion": everything}
    assert mesh.sidecars(mesh.shop) == mesh.sidecars(mesh.payments) == {("default", NEW_PROXY)}


@BOTH_FORMS
def test_the_window_rolls_the_canarys_namespaces_first_one_rollout_at_a_time(mesh: Mesh) -> None:
    """maxConcurrent=1: each restart starts after the previous rollout finished and its pods were checked."""
    add_canary(mesh)
    mesh.move("payments", ON_CANARY)  # sorts after shop: the order comes from the canary, not the name
    mesh.cluster.injector.set_revision(DEFAULT_REVISION, tag=OLD, cni=False)  # and a CNI switch, for every pod
    mesh.cluster.injector.set_revision(CANARY, tag=NEW, cni=False)
    lines: list[str] = []
    request = mesh.request(cniEnabled=False, canaryNamespaces=[mesh.payments], maxConcurrent=1)
    outcome = run_restart(request, lines.append, retry=FAST)
    assert len(outcome.restarted) == 4
    events = [line.split(" ")[:2] for line in lines if line.startswith(("restarted ", "rolled out "))]
    order = [ref for verb, ref in events if verb == "restarted"]
    assert order == [*refs(mesh.payments, PAYMENTS), *refs(mesh.shop, SHOP)]
    # Strictly alternating: never two rollouts at once.
    assert [verb for verb, _ in events] == ["restarted", "rolled"] * 4
    assert mesh.sidecars(mesh.payments) == {(CANARY, NEW_PROXY)}


@pytest.mark.parametrize(("slow_start", "reached"), [(True, 1), (False, 2)], ids=["slow-start", "fixed-window"])
def test_a_bad_canary_stops_after_the_window_and_names_what_it_reached(
    mesh: Mesh, slow_start: bool, reached: int
) -> None:
    """New pods that never become Ready: with slow start the first workload alone is restarted; with a fixed
    window, at most maxConcurrent."""
    add_canary(mesh)
    for suffix in ("shop", "payments"):
        mesh.move(suffix, ON_CANARY)
    release = mesh.cluster.kubelets.never_ready(
        lambda pod: pod["metadata"].get("labels", {}).get("istio.io/rev") == CANARY
    )
    try:
        request = mesh.request(
            canaryNamespaces=[mesh.payments, mesh.shop], maxConcurrent=2, timeoutSeconds=4, slowStart=slow_start
        )
        with pytest.raises(RestartError, match=r"rollouts did not finish within 4 s: .*No further restart") as caught:
            run_restart(request, lambda _line: None, retry=FAST)
    finally:
        release()
    assert len(caught.value.restarted) == reached, caught.value
    assert all(ref in str(caught.value) for ref in caught.value.restarted)


@BOTH_FORMS
def test_a_roll_back_fails_while_a_pod_it_cannot_restart_still_runs_on_the_canary(mesh: Mesh) -> None:
    """Pulumi would delete the canary's istiod next: the update stops first, naming the pod."""
    add_canary(mesh)
    mesh.move("shop", ON_CANARY)
    assert mesh.apply(proxyImage=OLD_PROXY, **canary_inputs(mesh.shop))["restarted"] == refs(mesh.shop, SHOP)
    create(mesh.cluster.api, mesh.shop, pod("debug"))
    wait_for(lambda: any(p["metadata"]["name"] == "debug" and p.get("status", {}).get("phase") == "Running"
                         for p in pods(mesh.cluster.api, mesh.shop)), what="the bare pod")  # fmt: skip

    mesh.move("shop", ON_DEFAULT)
    news = engine_view(checked(mesh.host, restart_inputs(mesh.cluster, mesh.namespaces, proxyImage=OLD_PROXY)))
    with pytest.raises(grpc.RpcError) as caught:
        update(mesh.host, engine_view(mesh.state), news)
    message = caught.value.details()  # type: ignore[attr-defined]
    assert f"restarted 2 workloads ({', '.join(refs(mesh.shop, SHOP))}), but 1 workloads still run pods on " in message
    assert "revision 1-30-3, which no declared control plane has, and this program cannot restart them: " in message
    assert f"Pod/{mesh.shop}/debug (barePod). Restart or delete them by hand" in message


def test_a_namespace_outside_the_mesh_labelled_for_the_canary_is_reinjected_and_verified(mesh: Mesh) -> None:
    """An app team labels its own namespace (not in `mesh.namespaces`) `istio.io/rev=canary`. A CNI switch re-injects
    it with the mesh; its new pods run the canary, which its label picks, and the post-rollout check accepts them."""
    add_canary(mesh)
    mesh.move("shop", ON_CANARY)
    assert mesh.apply(proxyImage=OLD_PROXY, **canary_inputs(mesh.shop))["restarted"] == refs(mesh.shop, SHOP)
    team = mesh.namespaces.create("team", {"istio.io/rev": "canary"})
    create(mesh.cluster.api, team, deployment("web"))
    rolled_out(mesh.cluster, team, (("Deployment", "web"),))
    assert mesh.sidecars(team) == {(CANARY, NEW_PROXY)}

    mesh.cluster.injector.set_revision(DEFAULT_REVISION, tag=OLD, cni=False)
    mesh.cluster.injector.set_revision(CANARY, tag=NEW, cni=False)
    request = mesh.request(cniEnabled=False, canaryNamespaces=[mesh.shop])
    outcome = run_restart(request, lambda _line: None, retry=FAST)
    team_web = f"Deployment/{team}/web"
    assert outcome.restarted == tuple(sorted([*refs(mesh.shop, SHOP), *refs(mesh.payments, PAYMENTS), team_web]))
    assert outcome.restart_reasons == {"redirection": list(outcome.restarted)}
    assert mesh.sidecars(team) == mesh.sidecars(mesh.shop) == {(CANARY, NEW_PROXY)}
    assert all_redirected_by(mesh.cluster, team, "istio-init")

    again = run_restart(request, lambda _line: None, retry=FAST)
    assert again.restarted == ()
    assert team_web in again.skipped["alreadyMatching"]


def test_a_tenants_pod_on_a_revision_of_its_own_blocks_no_update(mesh: Mesh) -> None:
    """A bare pod outside the mesh labelled `istio.io/rev: zzz`, with a container named `istio-proxy`: no revision
    of this stack, none this update removes, so a CNI switch restarts the mesh and succeeds."""
    tenant = mesh.namespaces.create("tenant")
    squatter = pod("squatter")
    squatter["metadata"]["labels"] = {"istio.io/rev": "zzz"}
    squatter["spec"]["containers"].append({"name": "istio-proxy", "image": "example.com/not-istio:1"})
    create(mesh.cluster.api, tenant, squatter)
    mesh.cluster.injector.set_revision(DEFAULT_REVISION, tag=OLD, cni=False)
    switched = mesh.apply(proxyImage=OLD_PROXY, cniEnabled=False)
    assert switched["restarted"] == sorted(refs(mesh.shop, SHOP) + refs(mesh.payments, PAYMENTS))
    assert "Pod/" + tenant + "/squatter" not in str(switched["manualRestart"])
