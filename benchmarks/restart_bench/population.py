"""The workloads a benchmark restarts: N Deployments in their namespaces, created, read and awaited."""

from __future__ import annotations

import math
import time
from typing import Any

from kubernetes import client

from benchmarks.restart_bench.progress import log
from benchmarks.restart_bench.threads import in_parallel
from localkube import workloads
from localkube.namespaces import Namespaces
from localkube.raw import read_json
from localkube.waiting import rollout_complete

BENCH_LABEL = "benchmarks.aks-istio.dev/restart"
PER_NAMESPACE = 10
MAX_NAMESPACES = 50
# One old ReplicaSet kept, not the default ten: every program run then lists the same 2N ReplicaSets, instead of
# N more in each run, and the runs stay comparable.
REVISION_HISTORY = 1


class Population:
    """N Deployments of one replica each, ten per namespace labelled `istio-injection=enabled` (twenty per namespace
    without that label and without sidecars, with `injected=False`: workloads outside the mesh).

    Its objects carry the label `benchmarks.aks-istio.dev/restart=<name>`, so that several populations (say, one
    restarted and one left alone) can live in one cluster and be read apart. All reads are as admin and never
    inside a measured run.
    """

    def __init__(
        self, api: client.ApiClient, deployments: int, name: str = "restart", *, injected: bool = True
    ) -> None:
        self.n = deployments
        self.name = name
        self.injected = injected
        self.selector = f"{BENCH_LABEL}={name}"
        per_namespace = PER_NAMESPACE if injected else 2 * PER_NAMESPACE
        self.namespaces = min(MAX_NAMESPACES, math.ceil(deployments / per_namespace))
        self.targets: list[tuple[str, str]] = []
        """(namespace, name) of every Deployment, namespace by namespace, as the article restarts them."""
        self.rollouts = 0
        """How many times all N were rolled out since they were created."""
        self.settle_timeout = 120.0 + 0.6 * deployments
        # Each poll lists N Deployments: often enough, without loading the API server.
        self.poll_seconds = min(2.0, max(0.25, deployments / 250))
        # After the rollouts the controllers still post events and collect garbage for a moment.
        self.quiet_seconds = min(3.0, max(1.0, deployments / 150))
        self._api = api
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)

    @property
    def namespace_names(self) -> list[str]:
        return sorted({namespace for namespace, _ in self.targets})

    @property
    def names(self) -> set[str]:
        return {f"Deployment/{namespace}/{name}" for namespace, name in self.targets}

    def create(self, redirection: str | None) -> None:
        """Creates the namespaces and Deployments, and waits until every pod runs with `redirection` (None: without
        a sidecar)."""
        spaces = Namespaces(self._api, prefix=f"bench-{self.name}")
        labels = {BENCH_LABEL: self.name}
        if self.injected:
            labels["istio-injection"] = "enabled"
        created = [spaces.create(f"{index:03d}", labels) for index in range(self.namespaces)]
        self.targets = sorted(
            (created[index % self.namespaces], f"app-{index // self.namespaces:03d}") for index in range(self.n)
        )

        def create(target: tuple[str, str]) -> str:
            namespace, name = target
            workloads.create(self._api, namespace, self._manifest(name))
            return name

        log(f"creating {self.n} Deployments in {self.namespaces} namespaces (pods get {redirection or 'no sidecar'})")
        in_parallel(create, self.targets, 8)
        self.settle(redirection)

    def _manifest(self, name: str) -> dict[str, Any]:
        labels = {BENCH_LABEL: self.name}
        manifest = workloads.deployment(name, template=workloads.pod_template(name, labels=labels))
        manifest["metadata"]["labels"] = labels
        manifest["spec"]["revisionHistoryLimit"] = REVISION_HISTORY
        return manifest

    def generations(self) -> dict[str, int]:
        """Each Deployment's `metadata.generation`, by `Deployment/<namespace>/<name>`."""
        return {
            f"Deployment/{item['metadata']['namespace']}/{item['metadata']['name']}": item["metadata"]["generation"]
            for item in self._deployments()
        }

    def settle(self, redirection: str | None) -> None:
        """Waits until every rollout is over and every pod runs with `redirection` (None: without init containers),
        then a quiet moment more."""
        deadline = time.monotonic() + self.settle_timeout
        while (state := self._unsettled(redirection)) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not settle within {self.settle_timeout:.0f} s: {state}")
            time.sleep(self.poll_seconds)
        time.sleep(self.quiet_seconds)

    def _items(self, listing: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = read_json(listing)["items"]
        return items

    def _deployments(self) -> list[dict[str, Any]]:
        listing = self._apps.list_deployment_for_all_namespaces(label_selector=self.selector, _preload_content=False)
        return [{"kind": "Deployment", **item} for item in self._items(listing)]

    def rolled_out(self) -> None:
        """Waits until every rollout is over, whatever the pods run."""
        deadline = time.monotonic() + self.settle_timeout
        while pending := sum(not rollout_complete(item) for item in self._deployments()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pending} rollouts still running after {self.settle_timeout:.0f} s")
            time.sleep(self.poll_seconds)

    def _unsettled(self, redirection: str | None) -> str | None:
        """What is still moving, or None once every rollout is over and every pod has `redirection`."""
        deployments = self._deployments()
        pending = sum(not rollout_complete(item) for item in deployments)
        if len(deployments) != self.n or pending:
            return f"{pending} of {len(deployments)} rollouts still running"
        pods = self._items(self._core.list_pod_for_all_namespaces(label_selector=self.selector, _preload_content=False))

        def redirected(pod: dict[str, Any]) -> bool:
            init = [container["name"] for container in pod["spec"].get("initContainers", [])]
            return redirection in init if redirection is not None else not init

        settled = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp") and redirected(pod)]
        if len(pods) != self.n or len(settled) != self.n:
            wanted = redirection or "no sidecar"
            return f"{len(settled)} of {len(pods)} pods with {wanted} and not terminating, {self.n} wanted"
        replicasets = self._apps.list_replica_set_for_all_namespaces(
            label_selector=self.selector, _preload_content=False
        )
        kept = self.n * min(1 + self.rollouts, 1 + REVISION_HISTORY)
        if (found := len(self._items(replicasets))) != kept:
            return f"{found} ReplicaSets, {kept} once the old ones are cleaned up"
        return None
