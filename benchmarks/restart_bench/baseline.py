"""The floor: the official `kubernetes` client sending kubectl's PATCH to every Deployment, nothing else.

Its jobs run in the client process (`client_process.py`); `floor` measures one such run of all N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml
from kubernetes import client, config

from benchmarks.restart_bench.bench import MAX_CONCURRENT, Bench, Step
from benchmarks.restart_bench.client_process import Done
from benchmarks.restart_bench.threads import in_parallel
from localkube.raw import drain
from restart.objects import RESTARTED_AT_ANNOTATION

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
# The loader is untyped; the annotation says what the call returns.
_load_kubeconfig: Callable[..., None] = config.load_kube_config_from_dict


def kubectl_timestamp() -> str:
    """`time.Now().Format(time.RFC3339)`, what `kubectl rollout restart` writes (here in UTC; kubectl uses local
    time, which changes the offset only)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kubectl_patch(restarted_at: str) -> dict[str, Any]:
    """The strategic-merge patch `kubectl rollout restart` sends."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: restarted_at}}}}}


def client_configuration(kubeconfig: str, pool_size: int) -> client.Configuration:
    configuration = client.Configuration()
    _load_kubeconfig(yaml.safe_load(kubeconfig), client_configuration=configuration)
    # The loader makes the client re-read the whole kubeconfig before every request, which a static token does not
    # need; the program turns that off too, so the floor does not pay what the program does not.
    configuration.refresh_api_key_hook = None
    configuration.connection_pool_maxsize = pool_size
    return configuration


def patch_all(kubeconfig: str, targets: Sequence[tuple[str, str]], concurrency: int) -> Done:
    """Job: the same PATCH to every Deployment, `concurrency` at a time; nothing listed first, nothing awaited."""
    body = kubectl_patch(kubectl_timestamp())
    with client.ApiClient(client_configuration(kubeconfig, concurrency)) as api:
        apps = client.AppsV1Api(api)

        def patch(target: tuple[str, str]) -> str:
            namespace, name = target
            drain(
                apps.patch_namespaced_deployment(
                    name, namespace, body, _content_type=STRATEGIC_MERGE, _preload_content=False
                )
            )
            return f"Deployment/{namespace}/{name}"

        return in_parallel(patch, targets, concurrency), {}


def get_and_patch_one_by_one(kubeconfig: str, targets: Sequence[tuple[str, str]]) -> Done:
    """Job: what `kubectl rollout restart` sends for each Deployment (a GET, then the PATCH), one after the other.

    Only used when there is no kubectl: it leaves out kubectl's start-up, so it understates the article's way.
    """
    restarted: list[str] = []
    with client.ApiClient(client_configuration(kubeconfig, 1)) as api:
        apps = client.AppsV1Api(api)
        for namespace, name in targets:
            drain(apps.read_namespaced_deployment(name, namespace, _preload_content=False))
            body = kubectl_patch(kubectl_timestamp())
            drain(
                apps.patch_namespaced_deployment(
                    name, namespace, body, _content_type=STRATEGIC_MERGE, _preload_content=False
                )
            )
            restarted.append(f"Deployment/{namespace}/{name}")
    return restarted, {}


def floor(bench: Bench) -> Step:
    arguments = {
        "kubeconfig": bench.restarter_kubeconfig(),
        "targets": bench.population.targets,
        "concurrency": MAX_CONCURRENT,
    }
    return bench.measure(
        "floor",
        f"floor: bare client, the same PATCH, {MAX_CONCURRENT} threads",
        lambda: bench.run_client(patch_all, arguments),
    )
