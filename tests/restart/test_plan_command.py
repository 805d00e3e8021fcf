"""`make restart-plan`: the next `pulumi up`'s re-injections, printed from the real cluster, nothing patched."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from localkube import mesh_crds as crds
from localkube.cluster import Cluster
from localkube.faults import FaultProxy
from localkube.namespaces import Namespaces
from localkube.workloads import create, deployment, pod
from restart.__main__ import main, render, render_moves
from restart.ambient_findings import Finding
from restart.kube import Listing
from restart.objects import WorkloadRef
from restart.plan import RestartPlan
from restart.run import _installed_revisions
from settings.data_plane import ControlPlane, DeclaredDataPlane
from settings.model import AmbientNamespace, MeshSettings
from tests.restart.cluster_helpers import (
    INJECTION,
    inject_for_cni,
    rolled_out,
)
from tests.restart.cluster_helpers import create_istio_object as add
from tests.restart.test_ambient_gate import L7_RULES, SELECTOR


@pytest.mark.cluster
def test_it_prints_what_up_would_restart_by_namespace_and_reason_and_patches_nothing(
    cluster: Cluster, namespaces: Namespaces, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart"), deployment("web"), pod("debug"))
    rolled_out(cluster, shop, [("Deployment", "cart"), ("Deployment", "web")])
    inject_for_cni(cluster, True)  # the dev stack declares the CNI: every pod above needs re-injection
    kubeconfig = tmp_path / "kubeconfig"
    with FaultProxy(cluster.control_plane.server, cluster.control_plane.ca_file) as proxy:
        kubeconfig.write_text(proxy.kubeconfig(cluster.kubeconfig()))
        assert main(["--stack", "dev", "--kubeconfig", str(kubeconfig)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("**Sidecar restart plan for `dev`**: pods should run the CNI plugin (istio-validation)")
    assert f"  - `{shop}` (2): `Deployment/cart` (redirection), `Deployment/web` (redirection)\n" in out
    assert f"  - `{shop}` (1): `Pod/debug` (barePod)\n" in out
    assert {seen.method for seen in proxy.requests} == {"GET"}, "read-only"
    assert cluster.control_plane.token() not in out


def test_an_unreadable_kubeconfig_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "dev", "--kubeconfig", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"error: cannot read {tmp_path / 'missing'}: No such file or directory\n"


FORGED = "x\n- 0 workloads to restart\n\n**All clear, approve**\n::error::forged"


@pytest.mark.cluster
def test_a_forged_owner_name_cannot_forge_the_plan_or_a_workflow_command(
    cluster: Cluster, namespaces: Namespaces, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The API server does not check an owner reference's kind and name; a tenant's pod carries a hostile one."""
    inject_for_cni(cluster, False)
    tenant = namespaces.create("tenant", INJECTION)
    squatter = pod("squatter")
    squatter["metadata"]["ownerReferences"] = [
        {"apiVersion": "example.com/v1", "kind": "Thing\n## owned", "name": FORGED, "uid": "1", "controller": True}
    ]
    create(cluster.api, tenant, squatter)
    inject_for_cni(cluster, True)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(cluster.kubeconfig())
    assert main(["--stack", "dev", "--kubeconfig", str(kubeconfig)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert not any(line.startswith(("::", "#", "- 0 workloads", "**All clear")) for line in lines), out
    assert "- 0 workloads to restart" not in lines
    assert all(line.isprintable() for line in lines), out
    assert (
        f"  - `{tenant}` (1): `invalid(Thing\\x0a\\x23\\x23\\x20owned.example.com)/"
        "invalid(x\\x0a-\\x200\\x20workloads\\x20to\\x20restart\\x0a\\x0a\\x2a\\x2aAll\\x20clear\\x2c...)` "
        "(unsupportedOwner)"
    ) in out


def test_the_plan_shows_pods_that_would_stop_the_update_and_installed_istiods_tell_what_is_removed() -> None:
    istiods = Listing(
        [
            {"metadata": {"namespace": "istio-system", "name": name}}
            for name in ("istiod", "istiod-1-30-3", "istio-ingressgateway")
        ]
        + [{"metadata": {"namespace": "team", "name": "istiod-zzz"}}],
        "1",
    )
    assert _installed_revisions(istiods) == {"default", "1-30-3"}
    debug = WorkloadRef("Pod", "shop", "debug")
    plan = RestartPlan(fingerprint="f", restart=(), stranded={debug: ("1-30-3",)})
    data_plane = DeclaredDataPlane(ControlPlane("default", "1.30.3", "docker.io/istio/proxyv2:1.30.3"))
    out = render("dev", data_plane, plan)
    assert "- 1 keep pods on a revision this update removes, and stop it until they are restarted or deleted by " in out
    assert "  - `shop` (1): `Pod/debug` (1-30-3)\n" in out


def test_the_plan_shows_the_move_check_of_each_namespace_moving_to_ambient() -> None:
    mesh = MeshSettings(
        ("shop", "payments", "cart"),
        ambient={
            "payments": AmbientNamespace(acknowledge=("PeerAuthentication/payments/plain",)),
            "cart": AmbientNamespace(waypoint="waypoint"),
        },
    )
    deny = Finding("AuthorizationPolicy", "payments", "get-only", "ztunnel enforces it as deny-all", "rewrite it")
    plain = Finding("PeerAuthentication", "payments", "plain", "ambient ignores DISABLE", "remove it")
    lines = render_moves({"payments": [deny, plain], "cart": []}, mesh)
    assert lines == [
        "- Moving to ambient mode (2), checked as `pulumi up` will check it:",
        "  - `cart`: no finding to block it",
        "  - `payments`: refused until these are mended or acknowledged:",
        "    - `AuthorizationPolicy/payments/get-only`: ztunnel enforces it as deny-all. Rewrite it.",
        "    - `PeerAuthentication/payments/plain` (acknowledged): ambient ignores DISABLE. Remove it.",
    ]
    data_plane = DeclaredDataPlane(ControlPlane("default", "1.30.3", "p"), ambient_namespaces=frozenset({"payments"}))
    out = render("staging", data_plane, RestartPlan(fingerprint="f", restart=()), lines)
    assert "; in ambient mode: `payments`." in out.splitlines()[0]
    assert out.splitlines()[2] == lines[0]
    assert render_moves({}, mesh) == []


@pytest.mark.cluster
def test_the_pull_request_sees_what_would_refuse_a_move_to_ambient(
    cluster: Cluster, mesh_crds: crds.Installed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The staging stack declares `payments` in ambient mode; in the cluster it still runs sidecars, and a team's
    selector-based L7 AuthorizationPolicy would turn into deny-all. The plan shows the finding and the workloads the
    move would re-inject, read-only."""
    core = client.CoreV1Api(cluster.api)
    core.create_namespace({"metadata": {"name": "payments", "labels": INJECTION}})
    try:
        create(cluster.api, "payments", deployment("pay"))
        rolled_out(cluster, "payments", [("Deployment", "pay")])
        add(cluster, "payments", "AuthorizationPolicy", "get-only", {"selector": SELECTOR, "rules": L7_RULES})
        kubeconfig = tmp_path / "kubeconfig"
        with FaultProxy(cluster.control_plane.server, cluster.control_plane.ca_file) as proxy:
            kubeconfig.write_text(proxy.kubeconfig(cluster.kubeconfig()))
            assert main(["--stack", "staging", "--kubeconfig", str(kubeconfig)]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0].endswith("; in ambient mode: `payments`.")
        assert "- Moving to ambient mode (1), checked as `pulumi up` will check it:\n" in out
        assert "  - `payments`: refused until these are mended or acknowledged:\n" in out
        assert "    - `AuthorizationPolicy/payments/get-only`: ztunnel cannot read its L7 attributes" in out
        assert "  - `payments` (1): `Deployment/pay` (dataplaneMode)\n" in out
        assert {seen.method for seen in proxy.requests} == {"GET"}, "read-only"
    finally:
        core.delete_namespace("payments")
