"""What the restart tests on the real control plane share: namespaces, the injector's setting, runs, RBAC."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from localkube.cluster import DEFAULT_REVISION, Cluster
from localkube.faults import FaultProxy
from localkube.namespaces import Namespaces
from localkube.raw import drain
from localkube.sidecar import PROXY
from localkube.waiting import rollout_complete, wait_for
from localkube.workloads import pods, read
from restart.kube import ISTIO_KINDS, RetryPolicy
from restart.report import RestartOutcome
from restart.request import RestartRequest
from restart.resource import SidecarRestartProvider
from restart.run import run_restart
from tests.support.provider_host import inputs

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=3.0, request_timeout=10.0, watch_window=2.0)
"""Retries in milliseconds, so a test of the retry rules takes seconds."""

INJECTION = {"istio-injection": "enabled"}
BOTH_FORMS = pytest.mark.parametrize("sidecar_form", ["native", "container"], indirect=True)
"""Runs the test with istiod injecting native sidecars, then regular `istio-proxy` containers."""
RBAC_FILE = Path(__file__).resolve().parents[2] / "docs/restart-rbac.yaml"
Workload = tuple[str, str]
"""(kind, name) in the test's namespace."""


def inject_for_cni(cluster: Cluster, enabled: bool) -> None:
    """What istiod injects once it serves the CNI setting: `istio-validation`, or `istio-init`."""
    cluster.injector.set_revision(DEFAULT_REVISION, hub="docker.io/istio", tag="1.30.3", cni=enabled)


_EXCLUDED: dict[str, list[str]] = {}


def others(cluster: Cluster, namespaces: Namespaces) -> list[str]:
    """Every namespace but this test's (system ones included), as the exclusion list.

    Read once per test: namespaces other tests left behind vanish as the namespace controller deletes them,
    and a shorter list would be another CNI setting (the fingerprint covers it) for the next run.
    """
    if namespaces.prefix not in _EXCLUDED:
        names = {ns.metadata.name for ns in client.CoreV1Api(cluster.api).list_namespace().items}
        _EXCLUDED[namespaces.prefix] = sorted(names - set(namespaces.created))
    return list(_EXCLUDED[namespaces.prefix])


def restart_inputs(cluster: Cluster, namespaces: Namespaces, user: str = "admin", **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"excludeNamespaces": others(cluster, namespaces), "timeoutSeconds": 120}
    return inputs(cluster.kubeconfig(user), **{**values, **overrides})


def rolled_out(cluster: Cluster, namespace: str, workloads: Iterable[Workload]) -> None:
    for kind, name in workloads:
        wait_for(lambda: rollout_complete(read(cluster.api, kind, namespace, name)), what=f"{kind} {name}")  # noqa: B023


def generations(cluster: Cluster, namespace: str, workloads: Iterable[Workload]) -> dict[Workload, int]:
    return {
        (kind, name): read(cluster.api, kind, namespace, name)["metadata"]["generation"] for kind, name in workloads
    }


def redirections(cluster: Cluster, namespace: str) -> dict[str, set[str]]:
    """For each running pod (not on its way out): the names of its init containers."""
    return {
        p["metadata"]["name"]: {c["name"] for c in p["spec"].get("initContainers", [])}
        for p in pods(cluster.api, namespace)
        if not p["metadata"].get("deletionTimestamp") and p.get("status", {}).get("phase") == "Running"
    }


def sidecars(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's `istio-proxy`, in either form: a container, or a native sidecar (`restartPolicy: Always`)."""
    spec = pod["spec"]
    return [c for c in spec.get("containers", []) if c["name"] == PROXY] + [
        c for c in spec.get("initContainers", []) if c["name"] == PROXY and c.get("restartPolicy") == "Always"
    ]


def sidecar_forms(cluster: Cluster, namespace: str) -> set[str]:
    """The forms (`native`, `container`) of the sidecars of the running pods of a namespace."""
    return {
        "native" if c["name"] in {i["name"] for i in p["spec"].get("initContainers", [])} else "container"
        for p in pods(cluster.api, namespace)
        if not p["metadata"].get("deletionTimestamp") and p.get("status", {}).get("phase") == "Running"
        for c in sidecars(p)
    }


def all_redirected_by(cluster: Cluster, namespace: str, container: str) -> bool:
    found = redirections(cluster, namespace)
    return bool(found) and all(container in names for names in found.values())


def refs(namespace: str, workloads: Iterable[Workload]) -> list[str]:
    return sorted(f"{kind}/{namespace}/{name}" for kind, name in workloads)


def rbac_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RBAC_FILE.read_text())
    assert document["kind"] == "ClusterRole"
    rules: list[dict[str, Any]] = document["rules"]
    return rules


def read_only_rules() -> list[dict[str, Any]]:
    """The published role without `patch`: it can plan and watch, but restart nothing."""
    return [{**rule, "verbs": [verb for verb in rule["verbs"] if verb != "patch"]} for rule in rbac_rules()]


def request_from(props: dict[str, Any]) -> RestartRequest:
    """The request the provider runs for a property bag; inputs its check refuses fail the test."""
    failures = SidecarRestartProvider().check({}, props).failures or []
    assert not failures, [(failure.property, failure.reason) for failure in failures]
    return RestartRequest.from_inputs(props)


def run_via_proxy(
    cluster: Cluster,
    namespaces: Namespaces,
    proxy: FaultProxy,
    user: str = "admin",
    *,
    page_size: int = 500,
    log: Callable[[str], None] = lambda _line: None,
    **inputs: Any,
) -> RestartOutcome:
    """One restart run through `proxy`, confined to this test's namespaces; `inputs` are the resource's inputs."""
    kubeconfig = proxy.kubeconfig(inputs.pop("kubeconfig", None) or cluster.kubeconfig(user))
    values = {"maxConcurrent": 4, "waitForRollout": False, "timeoutSeconds": 60, **inputs}
    props = restart_inputs(cluster, namespaces, kubeconfig=kubeconfig, **values)
    return run_restart(request_from(props), log, retry=FAST, page_size=page_size)


def create_istio_object(cluster: Cluster, namespace: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    """Creates one Istio object of `restart.kube.ISTIO_KINDS` as a team would (needs the `mesh_crds` fixture)."""
    at = ISTIO_KINDS[kind]
    body = {"apiVersion": f"{at.group}/{at.version}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    drain(
        client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
            at.group, at.version, namespace, at.plural, body, _preload_content=False
        )
    )
