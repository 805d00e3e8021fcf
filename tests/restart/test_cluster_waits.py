"""The restart's requests, waits and refusals on the real control plane, counted by a proxy in front of it.

The real controllers decide when a rollout is done, stuck or past its progress deadline; the played kubelets
hold new pods un-Ready where a test needs a stuck rollout, and the played injector keeps injecting for the
old setting where a test needs an istiod that has not loaded the new one.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from localkube.cluster import Cluster
from localkube.faults import Fault, FaultProxy, is_watch
from localkube.namespaces import Namespaces
from localkube.rbac import grant
from localkube.waiting import wait_for
from localkube.workloads import create, daemonset, deployment, pod_template, read
from restart.kube import FIELD_MANAGER
from restart.objects import FINGERPRINT_ANNOTATION, RESTARTED_AT_ANNOTATION
from restart.request import RestartError
from tests.restart.cluster_helpers import (
    BOTH_FORMS,
    INJECTION,
    inject_for_cni,
    rbac_rules,
    rolled_out,
    sidecar_forms,
)
from tests.restart.cluster_helpers import run_via_proxy as run

pytestmark = pytest.mark.cluster


def prepared(cluster: Cluster, namespaces: Namespaces, *deployments: str, suffix: str = "shop") -> str:
    """A namespace whose Deployments run `istio-init` pods; istiod (the injector) now serves the CNI."""
    inject_for_cni(cluster, False)
    namespace = namespaces.create(suffix, INJECTION)
    create(cluster.api, namespace, *(deployment(name) for name in deployments))
    rolled_out(cluster, namespace, [("Deployment", name) for name in deployments])
    inject_for_cni(cluster, True)
    return namespace


def new_pods_of(namespace: str, app: str) -> Any:
    """Pods of `app` injected for the CNI: the ones a restart creates."""

    def matches(pod: dict[str, Any]) -> bool:
        init = {c["name"] for c in pod["spec"].get("initContainers", [])}
        meta = pod["metadata"]
        return (
            meta["namespace"] == namespace and meta.get("labels", {}).get("app") == app and "istio-validation" in init
        )

    return matches


def test_the_patch_is_kubectls_plus_the_fingerprint_under_the_programs_field_manager(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart", template=pod_template("cart", annotations={"team": "shop"})))
    rolled_out(cluster, shop, [("Deployment", "cart")])
    inject_for_cni(cluster, True)
    outcome = run(cluster, namespaces, proxy)
    cart = read(cluster.api, "Deployment", shop, "cart")
    assert cart["spec"]["template"]["metadata"]["annotations"] == {
        "team": "shop",
        RESTARTED_AT_ANNOTATION: outcome.restarted_at,
        FINGERPRINT_ANNOTATION: outcome.fingerprint,
    }
    assert cart["metadata"]["generation"] == 2
    managers = {entry["manager"] for entry in cart["metadata"]["managedFields"]}
    assert FIELD_MANAGER in managers
    (patch,) = [seen for seen in proxy.requests if seen.method == "PATCH"]
    assert patch.query == {"fieldManager": [FIELD_MANAGER]}


def test_it_decides_from_cluster_wide_lists_with_one_patch_per_restart_and_no_get(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    teams = [prepared(cluster, namespaces, *(f"app-{i}" for i in range(4)), suffix=f"team-{n}") for n in range(3)]
    outcome = run(cluster, namespaces, proxy, page_size=5)
    assert outcome.restarted == tuple(sorted(f"Deployment/{team}/app-{i}" for team in teams for i in range(4)))
    assert proxy.count("PATCH") == 12
    lists = [seen for seen in proxy.requests if seen.method == "GET"]
    assert all("/namespaces/" not in seen.path for seen in lists), "every list is cluster-wide"
    # StatefulSets and DaemonSets are listed only when a mesh pod (of another test, here) is owned by one.
    listed = {seen.path.rsplit("/", 1)[-1] for seen in lists}
    assert {"pods", "replicasets", "deployments"} <= listed <= {
        "pods", "replicasets", "deployments", "statefulsets", "daemonsets"
    }  # fmt: skip
    # Asked for pages of 5, but answered whole from the watch cache (resourceVersion 0): one request per kind.
    assert len(lists) == len(listed), "one list request per kind"


def test_a_forbidden_cluster_wide_list_names_verb_and_resource(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    prepared(cluster, namespaces, "cart")
    rules = [rule for rule in rbac_rules() if rule["resources"] != ["pods"]]
    revoke = grant(cluster.api, "reader", rules, name=f"{namespaces.prefix}-nopods")
    try:
        with pytest.raises(RestartError, match="forbidden: cannot list pods in all namespaces"):
            run(cluster, namespaces, proxy, user="reader")
    finally:
        revoke()
    assert proxy.count("PATCH") == 0


def test_rejected_credentials_fail_without_showing_them(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    document = yaml.safe_load(cluster.kubeconfig())
    document["users"][0]["user"]["token"] = "stale-token-123"
    with pytest.raises(RestartError, match=r"rejected the kubeconfig's credentials \(401") as caught:
        run(cluster, namespaces, proxy, kubeconfig=yaml.safe_dump(document))
    assert "stale-token-123" not in str(caught.value)


def test_an_exec_plugin_kubeconfig_like_kubelogins_signs_every_request(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Entra ID clusters hand out a kubeconfig that runs kubelogin; the restart must work with one."""
    shop = prepared(cluster, namespaces, "cart")
    calls, plugin = tmp_path / "calls", tmp_path / "kubelogin"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": cluster.control_plane.token()},
    }
    plugin.write_text(f"#!{sys.executable}\nopen({str(calls)!r}, 'a').write('x')\nprint({json.dumps(credential)!r})\n")
    plugin.chmod(0o755)
    document = yaml.safe_load(cluster.kubeconfig())
    document["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "args": ["get-token", "--login", "azurecli"],
        }
    }
    outcome = run(cluster, namespaces, proxy, kubeconfig=yaml.safe_dump(document))
    assert outcome.restarted == (f"Deployment/{shop}/cart",)
    assert calls.read_text(), "the plugin supplied the token"
    assert [seen.upstream_status for seen in proxy.requests if seen.method == "PATCH"] == [200]


@BOTH_FORMS
def test_it_waits_with_one_watch_per_kind_then_checks_the_pods(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, sidecar_form: str
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart", 2), daemonset("agent"))
    rolled_out(cluster, shop, [("Deployment", "cart"), ("DaemonSet", "agent")])
    inject_for_cni(cluster, True)
    outcome = run(cluster, namespaces, proxy, waitForRollout=True)
    assert outcome.restarted == (f"DaemonSet/{shop}/agent", f"Deployment/{shop}/cart")
    watches = [seen.path.rsplit("/", 1)[-1] for seen in proxy.requests if is_watch(seen.query)]
    assert sorted(watches) == ["daemonsets", "deployments"]
    assert proxy.count("GET", r"^/api/v1/pods$") == 1, "the list that planned"
    assert proxy.count("GET", rf"^/api/v1/namespaces/{shop}/pods$") == 2, "each finished rollout's pods, checked"
    assert run(cluster, namespaces, proxy).restarted == (), "re-injected: a second run finds nothing to do"
    assert sidecar_forms(cluster, shop) == {sidecar_form}


def test_a_stuck_rollout_fails_naming_it_and_a_rerun_waits_for_it_again_without_restarting_it(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    shop = prepared(cluster, namespaces, "cart", "stuck")
    release = cluster.kubelets.never_ready(new_pods_of(shop, "stuck"))
    started = time.monotonic()
    pattern = rf"1 of 2 rollouts did not finish within 3 s: Deployment/{shop}/stuck\. No further restart"
    with pytest.raises(RestartError, match=pattern) as caught:
        run(cluster, namespaces, proxy, waitForRollout=True, timeoutSeconds=3)
    assert time.monotonic() - started < 15
    assert caught.value.restarted == (f"Deployment/{shop}/cart", f"Deployment/{shop}/stuck")

    # Still stuck: the re-run does not patch it again, waits for it, and fails again: never success early.
    with pytest.raises(RestartError, match=r"restarted nothing, then: 1 of 1 rollouts did not finish") as again:
        run(cluster, namespaces, proxy, waitForRollout=True, timeoutSeconds=3)
    assert again.value.restarted == ()
    skipped = run(cluster, namespaces, proxy).skipped
    assert skipped.get("restartedButStillMismatched") == [f"Deployment/{shop}/stuck"], skipped

    # The next re-run finds it still rolling; its pods start once that run waits for it (as it opens its watch):
    # the rollout goes through and the re-run succeeds, still without a second restart.
    released = proxy.add(Fault("pass", "GET", query=is_watch, before=release))
    outcome = run(cluster, namespaces, proxy, waitForRollout=True, timeoutSeconds=60)
    assert released.fired == 1
    assert outcome.restarted == ()
    assert outcome.skipped.get("alreadyRestarted") == [f"Deployment/{shop}/stuck"], outcome.skipped
    assert proxy.count("PATCH") == 2
    assert read(cluster.api, "Deployment", shop, "stuck")["metadata"]["generation"] == 2


@BOTH_FORMS
def test_pods_injected_for_the_old_setting_fail_the_run_and_the_rerun(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, sidecar_form: str
) -> None:
    shop = prepared(cluster, namespaces, "cart")
    inject_for_cni(cluster, False)  # istiod has not loaded the CNI setting: new pods get `istio-init` again
    pattern = (
        rf"the rollout of Deployment/{shop}/cart finished, but its pods cart-\S+ do not run the declared data plane"
    )
    with pytest.raises(RestartError, match=pattern) as caught:
        run(cluster, namespaces, proxy, waitForRollout=True)
    assert caught.value.restarted == (f"Deployment/{shop}/cart",)
    with pytest.raises(RestartError, match=pattern):
        run(cluster, namespaces, proxy, waitForRollout=True)
    assert proxy.count("PATCH") == 1, "one change, one restart"


def test_a_deployment_past_its_progress_deadline_fails_the_wait_at_once(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart"), deployment("broken", progress_deadline_seconds=2))
    rolled_out(cluster, shop, [("Deployment", "cart"), ("Deployment", "broken")])
    inject_for_cni(cluster, True)
    cluster.kubelets.never_ready(new_pods_of(shop, "broken"))
    started = time.monotonic()
    with pytest.raises(RestartError, match=rf"the rollout of Deployment/{shop}/broken failed: .*progress"):
        run(cluster, namespaces, proxy, waitForRollout=True, timeoutSeconds=90)
    assert time.monotonic() - started < 45, "failed when the controller said so, not at the timeout"


def test_a_forbidden_watch_fails_the_wait_promptly_while_another_kind_still_waits(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    inject_for_cni(cluster, False)
    shop = namespaces.create("shop", INJECTION)
    create(cluster.api, shop, deployment("cart"), daemonset("agent"))
    rolled_out(cluster, shop, [("Deployment", "cart"), ("DaemonSet", "agent")])
    inject_for_cni(cluster, True)
    cluster.kubelets.never_ready(new_pods_of(shop, "cart"))
    rules = [
        {**rule, "verbs": [v for v in rule["verbs"] if v != "watch"]} if "daemonsets" in rule["resources"] else rule
        for rule in rbac_rules()
    ]
    # The daemonsets rule also covers deployments and statefulsets: give those their watch back.
    rules.append({"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": ["watch"]})
    revoke = grant(cluster.api, "restarter", rules, name=f"{namespaces.prefix}-nowatch")
    started = time.monotonic()
    try:
        with pytest.raises(RestartError, match=r"then: forbidden: cannot watch daemonsets.*No further restart") as c:
            run(cluster, namespaces, proxy, user="restarter", waitForRollout=True, timeoutSeconds=60)
    finally:
        revoke()
    assert time.monotonic() - started < 15, "the deployment watcher stops within its window"
    # The watches open as the first restarts start: the refusal stops the window after those, in rollout order.
    order = (f"DaemonSet/{shop}/agent", f"Deployment/{shop}/cart")
    assert c.value.restarted == order[: len(c.value.restarted)]
    assert all(ref in str(c.value) for ref in c.value.restarted)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault("status", method="GET", query=is_watch, code=410), id="http-410"),
        pytest.param(Fault("status", method="GET", query=is_watch, code=503), id="503"),
        pytest.param(Fault("drop_before", method="GET", query=is_watch), id="dropped"),
        # What the API server sends a watch from a resourceVersion its watch cache has moved past.
        pytest.param(Fault("watch_error", method="GET", code=410, cut_watch_after=0), id="expired-event"),
        pytest.param(Fault("watch_error", method="GET", code=410, cut_watch_after=1), id="expired-mid-stream"),
    ],
)
def test_the_wait_survives_expired_and_dropped_watches(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy, fault: Fault
) -> None:
    shop = prepared(cluster, namespaces, "cart")
    proxy.add(fault)
    outcome = run(cluster, namespaces, proxy, waitForRollout=True)
    assert outcome.restarted == (f"Deployment/{shop}/cart",)
    assert fault.fired == 1
    wait_for(lambda: read(cluster.api, "Deployment", shop, "cart")["status"].get("observedGeneration") == 2)


def test_a_failure_names_what_was_restarted_bounded_and_the_provider_keeps_it(
    cluster: Cluster, namespaces: Namespaces, proxy: FaultProxy
) -> None:
    names = [f"app-{index:02d}" for index in range(25)]
    shop = prepared(cluster, namespaces, *names)
    cluster.kubelets.never_ready(new_pods_of(shop, "app-00"))
    expected = rf"restarted 25 of 25 workloads \(Deployment/{shop}/app-00, .* and 5 more\)"
    with pytest.raises(RestartError, match=expected) as c:
        run(cluster, namespaces, proxy, waitForRollout=True, timeoutSeconds=20, maxConcurrent=10, slowStart=False)
    assert len(c.value.restarted) == 25
