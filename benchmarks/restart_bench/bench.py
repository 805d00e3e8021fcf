"""The cluster a benchmark runs in, and how one restart of all N is measured."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from benchmarks.restart_bench.client_process import Answer, ClientProcess, Job
from benchmarks.restart_bench.counters import breakdown, describe_kinds, listed_bytes, read_counters
from benchmarks.restart_bench.cpu import machine_busy_ticks, process_ticks
from benchmarks.restart_bench.kubectl import Kubectl
from benchmarks.restart_bench.population import Population
from benchmarks.restart_bench.progress import log
from localkube.cluster import DEFAULT_REVISION, Cluster
from localkube.rbac import grant
from localkube.sidecar import INIT, VALIDATION

RESTARTER = "restarter"
SYSTEM_NAMESPACES = ("istio-system", "kube-node-lease", "kube-public", "kube-system")
MAX_CONCURRENT = 10
NODES = 3
PROXY_HUB, PROXY_TAG = "docker.io/istio", "1.30.3"
RBAC_FILE = Path(__file__).resolve().parents[2] / "docs" / "restart-rbac.yaml"
# `apiserver_request_total` counts a request when it ends, a watch once the server has seen it closed: the reading
# after a run waits this long (not measured).
COUNTER_DELAY_SECONDS = 1.0


@dataclass(frozen=True)
class Step:
    """One measured restart of all N Deployments."""

    way: str
    key: str
    """What kind of run it was (`article`, `floor`, `program`, `program-wait`, ...): scenarios group runs by it."""
    direction: str
    seconds: float
    client_cpu: float
    requests: int
    kinds: Counter[str]
    one_generation: int
    """Of the `population` Deployments, how many got exactly one new generation."""
    population: int
    problems: tuple[str, ...]
    other_cores: float
    step_seconds: float
    """Including the wait until the cluster settled: what the next such run will cost."""
    phases: dict[str, float]
    list_bytes: Counter[str]
    """Bytes of the LISTs of pods and workloads the API server answered in the run, by resource."""


class Bench:
    """A running cluster with the population created, the client process, and the injector's current setting.

    Each measured run flips the injector between `istio-init` and the CNI first, so that every run restarts all N.
    """

    def __init__(
        self,
        cluster: Cluster,
        clients: ClientProcess,
        kubectl: Kubectl | None,
        population: Population,
        scratch: Path,
    ) -> None:
        self.cluster = cluster
        self.clients = clients
        self.kubectl = kubectl
        self.population = population
        self.scratch = scratch
        self.cni = False
        self.excluded: list[str] = []
        """Namespaces of other populations in the cluster, which no program run of this bench may touch."""
        self.warm_up_seconds = 0.0
        self.kubernetes_version = str(client.VersionApi(cluster.api).get_code().git_version)

    @property
    def n(self) -> int:
        return self.population.n

    @property
    def timeout(self) -> float:
        """How long one run of all N may take before the benchmark gives up."""
        return self.population.settle_timeout

    @property
    def redirection(self) -> str:
        """The init container the injector currently gives pods."""
        return VALIDATION if self.cni else INIT

    def restarter_kubeconfig(self) -> str:
        return self.cluster.kubeconfig(RESTARTER)

    def restarter_kubeconfig_file(self) -> Path:
        return self.cluster.kubeconfig_file(RESTARTER)

    def prepare(self) -> None:
        """The restarter's permissions, the injector on `istio-init`, and the population, rolled out."""
        rules = yaml.safe_load(RBAC_FILE.read_text())["rules"]
        grant(
            self.cluster.api,
            RESTARTER,
            [*rules, {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}],
            name="restart-bench",
        )
        self.inject(cni=False)
        self.population.create(self.redirection)

    def run_client(self, job: Job, arguments: dict[str, Any], timeouts: float = 1.0) -> Answer:
        """Runs `job` in the client process, allowed `timeouts` times one run's time."""
        return self.clients.run(job, arguments, self.timeout * timeouts)

    def inject(self, cni: bool) -> None:
        """Sets what the injector gives new pods: `istio-validation` (the CNI) or `istio-init`."""
        self.cluster.injector.set_revision(DEFAULT_REVISION, hub=PROXY_HUB, tag=PROXY_TAG, cni=cni)
        self.cni = cni

    def _own_ticks(self) -> int:
        pids = [os.getpid(), self.clients.pid, *(process.pid for process in self.cluster.control_plane.processes)]
        return sum(process_ticks(pid) for pid in pids)

    def measure(self, key: str, way: str, run: Callable[[], Answer]) -> Step:
        """Flips the injector, restarts all N with `run`, and waits until the cluster settled again.

        `run` returns its wall and client CPU seconds, what it restarted (empty: it does not say) and its phases.
        """
        step_started = time.monotonic()
        self.inject(cni=not self.cni)
        direction = "istio-init → CNI" if self.cni else "CNI → istio-init"
        log(f"{way} ({direction})")
        plane, population = self.cluster.control_plane, self.population
        generations = population.generations()
        before = read_counters(plane)
        busy, own = machine_busy_ticks(), self._own_ticks()
        window = time.perf_counter()
        seconds, client_cpu, restarted, phases = run()
        window = time.perf_counter() - window
        busy, own = machine_busy_ticks() - busy, self._own_ticks() - own
        time.sleep(COUNTER_DELAY_SECONDS)
        counted = read_counters(plane)
        requests, kinds = breakdown(before, counted)
        after = population.generations()
        population.rollouts += 1
        problems = [
            f"{name}: generation {generations.get(name)} -> {after.get(name)}"
            for name in sorted(set(generations) | set(after))
            if after.get(name, 0) - generations.get(name, 0) != 1
        ]
        expected = population.names
        if restarted and set(restarted) != expected:
            problems.append(f"it restarted {len(restarted)} workloads, not the {self.n} Deployments")
        log(f"  {seconds:.2f} s, {requests} requests ({describe_kinds(kinds)}); waiting for the rollouts to end")
        population.settle(self.redirection)
        return Step(
            way=way,
            key=key,
            direction=direction,
            seconds=seconds,
            client_cpu=client_cpu,
            requests=requests,
            kinds=kinds,
            population=self.n,
            one_generation=sum(after.get(name, 0) - generations.get(name, 0) == 1 for name in expected),
            problems=tuple(problems),
            # Both sides are sampled at the clock's tick, so a quiet machine can come out a little below zero.
            other_cores=max(0, busy - own) / os.sysconf("SC_CLK_TCK") / window,
            phases=phases,
            list_bytes=listed_bytes(before, counted),
            step_seconds=time.monotonic() - step_started,
        )
