"""Sidecar restart on the real control plane: N Deployments re-injected three ways, one after the other.

Starts kube-apiserver, kube-controller-manager and etcd on 127.0.0.1 (`localkube`: 3 played nodes and the
played istiod injector), creates N Deployments (default 500, one replica each, ten per namespace labelled
`istio-injection=enabled`, at most 50 namespaces) while the injector's revision `1-30-3` injects `istio-init`, waits
until all are rolled out, switches the injector to the CNI (`istio-validation`) and restarts all N:
1. the article's way: `kubectl rollout restart deployment <name> -n <ns>` for one Deployment after the other, with
   the official kubectl binary (see `benchmarks/kubectl.py`);
2. the floor: the official `kubernetes` client sending the same strategic-merge PATCH of
   `kubectl.kubernetes.io/restartedAt` to every Deployment from 10 threads, waiting for nothing;
3. the program: `run_restart` with maxConcurrent 10, without waitForRollout, and (reported apart) with it.
All three run as the unprivileged user `restarter`, holding the program's documented ClusterRole
(`docs/restart-rbac.yaml`) plus `get` on Deployments, which `kubectl rollout restart` needs. The machine has 2 cores,
so nothing is measured side by side, and after every run the benchmark waits until all N rollouts are over and
the cluster is quiet before the next one starts.

Every run restarts all N from the same state: every Deployment runs one pod whose redirection mismatches the
injector's setting (and keeps one old ReplicaSet). Rolling all N back before each run would cost a second rollout
of N pods per run, as long as the measured one's; instead each run starts where the previous one left the pods.
The floor's runs go back from the CNI to `istio-init` (the injector switched back first); the program's runs go
from `istio-init` to the CNI, as the article does. The work is the same either way: one PATCH per Deployment,
one new pod each. (If the time budget leaves no room for a last floor run, the run with waitForRollout goes from
the CNI to `istio-init`; the table says which.)

Requests are counted by the API server, not by a proxy (a Python proxy on the same 2 cores would slow what it
counts): the total is API Priority and Fairness's dispatch counter for the flow schema `global-default`, which
only the `restarter` user reaches (every other client here is in `system:masters`, whose requests are exempt);
the breakdown is `apiserver_request_total` for the verbs and resources that no other client uses here.

Usage: `python -m benchmarks.restart_bench [--deployments N | --quick] [--pairs 3] [--budget 480]`; prints
markdown tables. Every process it starts (the control plane, the client process, kubectl) is stopped at the end,
also on a failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import multiprocessing
import os
import re
import resource
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self, TypeVar

import yaml
from kubernetes import client, config

from benchmarks.kubectl import Kubectl, find_kubectl
from localkube import workloads
from localkube.binaries import Binaries, find_binaries
from localkube.cluster import DEFAULT_REVISION, Cluster, running_cluster
from localkube.namespaces import Namespaces
from localkube.raw import drain, read_json
from localkube.rbac import grant
from localkube.sidecar import INIT, VALIDATION
from localkube.waiting import rollout_complete
from restart.objects import RESTARTED_AT_ANNOTATION
from restart.request import RestartRequest
from restart.run import run_restart

DEFAULT_DEPLOYMENTS = 500
QUICK_DEPLOYMENTS = 50
PER_NAMESPACE = 10
MAX_NAMESPACES = 50
MAX_CONCURRENT = 10
NODES = 3
DEFAULT_PAIRS = 3
DEFAULT_BUDGET_SECONDS = 480.0
RESTARTER = "restarter"
# The restarter is not in system:masters, so APF puts its requests here; every other client here is exempt.
RESTARTER_FLOW_SCHEMA = "global-default"
SYSTEM_NAMESPACES = ("istio-system", "kube-node-lease", "kube-public", "kube-system")
BENCH_LABEL = "benchmarks.aks-istio.dev/restart"
SELECTOR = f"{BENCH_LABEL}=true"
# One old ReplicaSet kept, not the default ten: every program run then lists the same 2N ReplicaSets, instead of
# N more in each run, and the runs stay comparable.
REVISION_HISTORY = 1
PROXY_HUB, PROXY_TAG = "docker.io/istio", "1.30.3"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
RBAC_FILE = Path(__file__).resolve().parent.parent / "docs" / "restart-rbac.yaml"
# `apiserver_request_total` counts a request when it ends, a watch once the server has seen it closed: the reading
# after a run waits this long (not measured).
COUNTER_DELAY_SECONDS = 1.0
# After the rollouts: the controllers still post events and collect garbage for a moment.
QUIET_SECONDS = 3.0
POLL_SECONDS = 2.0  # each poll lists N Deployments: often enough, without loading the API server
TARGET_FLOOR_RATIO = 1.3
TARGET_SPEEDUP = 10.0

T = TypeVar("T")


def log(message: str) -> None:
    """Progress on stderr, so that the tables on stdout stay clean."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def kubectl_timestamp() -> str:
    """`time.Now().Format(time.RFC3339)`, what `kubectl rollout restart` writes (here in UTC; kubectl uses local
    time, which changes the offset only)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kubectl_patch(restarted_at: str) -> dict[str, Any]:
    """The strategic-merge patch `kubectl rollout restart` sends."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: restarted_at}}}}}


# The measured clients run in a process of their own, as the program runs in Pulumi's provider host: in this one
# they would share the interpreter's lock with the played kubelets' and the injector's threads, which are busy
# with the very pods the PATCHes create. Only plain data crosses the pipe.
Job = tuple[str, dict[str, Any]]
Done = tuple[list[str], dict[str, float]]
"""What a job restarted (`Deployment/<namespace>/<name>`), and how long its phases took (seconds by name)."""
Answer = tuple[float, float, list[str], dict[str, float]]
"""Wall seconds and CPU seconds of the client process, then the job's `Done`."""


def _client_configuration(kubeconfig: str, pool_size: int) -> client.Configuration:
    configuration = client.Configuration()
    config.load_kube_config_from_dict(yaml.safe_load(kubeconfig), client_configuration=configuration)
    # The loader makes the client re-read the whole kubeconfig before every request, which a static token does not
    # need; the program turns that off too, so the floor does not pay what the program does not.
    configuration.refresh_api_key_hook = None
    configuration.connection_pool_maxsize = pool_size
    return configuration


def _floor(kubeconfig: str, targets: Sequence[tuple[str, str]], concurrency: int) -> Done:
    """The same PATCH to every Deployment, `concurrency` at a time; nothing listed first, nothing awaited after."""
    body = kubectl_patch(kubectl_timestamp())
    with client.ApiClient(_client_configuration(kubeconfig, concurrency)) as api:
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


def _one_by_one(kubeconfig: str, targets: Sequence[tuple[str, str]]) -> Done:
    """What `kubectl rollout restart` sends for each Deployment (a GET, then the PATCH), one after the other.

    Only used when there is no kubectl: it leaves out kubectl's start-up, so it understates the article's way.
    """
    restarted: list[str] = []
    with client.ApiClient(_client_configuration(kubeconfig, 1)) as api:
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


def _warm_up(request: RestartRequest, namespace: str, name: str) -> Done:
    """What the first run in a fresh process pays once (imports inside the client, the kubeconfig loader, TLS set-up).

    Both paths, restarting nothing: a GET as the floor's client, and the program asked for the setting the pods
    already have.
    """
    with client.ApiClient(_client_configuration(request.kubeconfig, 1)) as api:
        drain(client.AppsV1Api(api).read_namespaced_deployment(name, namespace, _preload_content=False))
    restarted, _phases = _program(request)
    if restarted:
        raise RuntimeError(f"the warm-up restarted {len(restarted)} workloads")
    return restarted, {}


def _program(request: RestartRequest) -> Done:
    """`run_restart`, with its phases timed from its progress messages (nothing else of it is touched).

    Its first message reports the plan, made from the lists; one message follows each PATCH.
    """
    started = time.perf_counter()
    marks: dict[str, float] = {}

    def progress(message: str) -> None:
        now = time.perf_counter() - started
        marks.setdefault("connect, lists, plan", now)
        if message.startswith("restarted "):
            marks["PATCHes"] = now

    outcome = run_restart(request, progress)
    phases = {"connect, lists, plan": marks.get("connect, lists, plan", 0.0)}
    if "PATCHes" in marks:
        phases["PATCHes"] = marks["PATCHes"] - phases["connect, lists, plan"]
        if request.wait_for_rollout:
            phases["wait and pod check"] = time.perf_counter() - started - marks["PATCHes"]
    return list(outcome.restarted), phases


def _serve_jobs(connection: Connection) -> None:
    """The client process's loop: run each job sent, answer with its timing, stop on None or when the parent dies."""
    # Ctrl-C reaches the whole process group; the parent stops this process in its own clean-up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    jobs: dict[str, Callable[..., Done]] = {
        "floor": _floor,
        "one_by_one": _one_by_one,
        "program": _program,
        "warm_up": _warm_up,
    }
    while True:
        try:
            job = connection.recv()
        except EOFError:
            return
        if job is None:
            return
        name, arguments = job
        started, cpu = time.perf_counter(), time.process_time()
        try:
            restarted, phases = jobs[name](**arguments)
        except Exception as exc:
            connection.send(f"{type(exc).__name__}: {exc}")
            continue
        connection.send((time.perf_counter() - started, time.process_time() - cpu, restarted, phases))


class ClientProcess:
    """Context manager: a spawned process (not forked: this one runs threads) that runs the measured clients."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, theirs = context.Pipe()
        self._process = context.Process(target=_serve_jobs, args=(theirs,), name="restart-bench-client", daemon=True)
        self._process.start()
        theirs.close()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def run(self, job: Job, timeout: float) -> Answer:
        self._connection.send(job)
        if not self._connection.poll(timeout):
            raise TimeoutError(f"the {job[0]} run did not finish within {timeout:.0f} s")
        answer: Answer | str = self._connection.recv()
        if isinstance(answer, str):
            raise RuntimeError(f"the {job[0]} run failed: {answer}")
        return answer

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        with contextlib.suppress(OSError):
            self._connection.send(None)
        self._process.join(5)
        if self._process.is_alive():  # still inside a job: the run was interrupted or failed
            self._process.terminate()
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()


def in_parallel(call: Callable[[T], str], items: Iterable[T], workers: int) -> list[str]:
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        return list(pool.map(call, items))
    finally:
        # On a failure or Ctrl-C the queued calls are dropped instead of run to the end.
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class Counters:
    """The API server's request counters at one moment."""

    restarter: float
    requests: Counter[tuple[str, str, str, str]]
    """`apiserver_request_total` by (verb, resource, subresource, scope)."""


_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_WORKLOAD_RESOURCES = ("pods", "replicasets", "deployments", "statefulsets", "daemonsets")


def parse_counters(text: str) -> Counters:
    restarter = 0.0
    requests: Counter[tuple[str, str, str, str]] = Counter()
    for line in text.splitlines():
        if not line.startswith(("apiserver_request_total{", "apiserver_flowcontrol_dispatched_requests_total{")):
            continue
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        labels, value = dict(_LABEL.findall(sample[2])), float(sample[3])
        if sample[1] == "apiserver_request_total":
            key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""), labels["scope"])
            requests[key] += round(value)
        elif labels.get("flow_schema") == RESTARTER_FLOW_SCHEMA:
            restarter += value
    return Counters(restarter, requests)


def breakdown(before: Counters, after: Counters) -> tuple[int, Counter[str]]:
    """The restarter's requests between two readings: the total, and those of the kinds only a restarter makes here.

    PATCH and GET of Deployments, and LISTs of pods and workloads: the controller-manager and the played kubelets
    watch from informers (their watches end at random moments, so watches are left in "other"), update status
    subresources, and GET ReplicaSets. "other" is the rest: watches, and kubectl's discovery.
    """
    total = round(after.restarter - before.restarter)
    kinds: Counter[str] = Counter()
    for (verb, resource_name, subresource, _scope), value in (after.requests - before.requests).items():
        if subresource or resource_name not in _WORKLOAD_RESOURCES:
            continue
        if (verb in ("PATCH", "GET") and resource_name == "deployments") or verb == "LIST":
            kinds[f"{verb} {resource_name}"] += round(value)
    other = total - sum(kinds.values())
    if other:
        kinds["other"] = other
    return total, kinds


def describe_kinds(kinds: Counter[str]) -> str:
    """`PATCH deployments 500, LIST 7 (pods 1, replicasets 2, ...), other 6`."""
    by_verb: dict[str, dict[str, int]] = {}
    for name, count in kinds.items():
        verb, _, resource_name = name.partition(" ")
        by_verb.setdefault(verb, {})[resource_name] = count
    rank = {"PATCH": 0, "GET": 1, "LIST": 2}
    parts = []
    for verb in sorted(by_verb, key=lambda verb: rank.get(verb, len(rank))):
        counts = by_verb[verb]
        if verb == "other" and counts[""] < 0:
            # More of these kinds than the restarter's total: another client made some in the window.
            parts.append(f"{-counts['']:,} of these by another client")
        elif verb == "other":
            parts.append(f"other {counts['']:,}")
        elif len(counts) == 1:
            [(resource_name, count)] = counts.items()
            parts.append(f"{verb} {resource_name} {count:,}")
        else:
            listed = ", ".join(f"{resource_name} {count:,}" for resource_name, count in sorted(counts.items()))
            parts.append(f"{verb} {sum(counts.values()):,} ({listed})")
    return ", ".join(parts) or "none"


def _machine_busy_ticks() -> int:
    """CPU ticks the machine spent busy, on all cores (idle, iowait and steal left out).

    Interrupts count: the kernel charges a tick spent in one to the process it interrupted as well, so the
    processes' own ticks (`_process_ticks`) include them too.
    """
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in stat.readline().split()[1:8])
    return user + nice + system + irq + softirq


def _process_ticks(pid: int) -> int:
    """User and system ticks of a process, with those of its children it waited for (each kubectl)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(value) for value in fields[11:15])


@dataclass(frozen=True)
class Step:
    """One measured restart of all N Deployments."""

    way: str
    key: str
    """`article`, `floor`, `program` or `program-wait`."""
    direction: str
    seconds: float
    client_cpu: float
    requests: int
    kinds: Counter[str]
    one_generation: int
    problems: tuple[str, ...]
    other_cores: float
    step_seconds: float
    """Including the wait until the cluster settled: what the next such run will cost."""
    phases: dict[str, float]


class Bench:
    def __init__(
        self, cluster: Cluster, clients: ClientProcess, kubectl: Kubectl | None, deployments: int, scratch: Path
    ) -> None:
        self.cluster = cluster
        self.clients = clients
        self.kubectl = kubectl
        self.n = deployments
        self.scratch = scratch
        self.namespaces = min(MAX_NAMESPACES, math.ceil(deployments / PER_NAMESPACE))
        self.targets: list[tuple[str, str]] = []
        self.cni = False
        self._rollouts = 0
        self._runs = 0
        self.warm_up_seconds = 0.0
        self._core = client.CoreV1Api(cluster.api)
        self._apps = client.AppsV1Api(cluster.api)
        self.settle_timeout = 120.0 + 0.6 * deployments

    # Setting up.
    def prepare(self) -> None:
        rules = yaml.safe_load(RBAC_FILE.read_text())["rules"]
        grant(
            self.cluster.api,
            RESTARTER,
            [*rules, {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}],
            name="restart-bench",
        )
        self._inject(cni=False)
        names = Namespaces(self.cluster.api, prefix="bench")
        labels = {"istio-injection": "enabled", BENCH_LABEL: "true"}
        spaces = [names.create(f"{index:03d}", labels) for index in range(self.namespaces)]
        # Namespace by namespace, as the article restarts them.
        self.targets = sorted(
            (spaces[index % self.namespaces], f"app-{index // self.namespaces:03d}") for index in range(self.n)
        )

        def create(target: tuple[str, str]) -> str:
            namespace, name = target
            workloads.create(self.cluster.api, namespace, self._manifest(name))
            return name

        log(f"creating {self.n} Deployments in {self.namespaces} namespaces (pods get istio-init)")
        in_parallel(create, self.targets, 8)
        self._settle()

    @staticmethod
    def _manifest(name: str) -> dict[str, Any]:
        manifest = workloads.deployment(name, template=workloads.pod_template(name, labels={BENCH_LABEL: "true"}))
        manifest["metadata"]["labels"] = {BENCH_LABEL: "true"}
        manifest["spec"]["revisionHistoryLimit"] = REVISION_HISTORY
        return manifest

    def _inject(self, cni: bool) -> None:
        self.cluster.injector.set_revision(DEFAULT_REVISION, hub=PROXY_HUB, tag=PROXY_TAG, cni=cni)

    # Reading the cluster (as admin; never inside a measured run).
    def _items(self, listing: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = read_json(listing)["items"]
        return items

    def _deployments(self) -> list[dict[str, Any]]:
        listing = self._apps.list_deployment_for_all_namespaces(label_selector=SELECTOR, _preload_content=False)
        return [{"kind": "Deployment", **item} for item in self._items(listing)]

    def _generations(self) -> dict[str, int]:
        return {
            f"Deployment/{item['metadata']['namespace']}/{item['metadata']['name']}": item["metadata"]["generation"]
            for item in self._deployments()
        }

    def _unsettled(self) -> str | None:
        """What is still moving, or None once every rollout is over and every pod has the injector's redirection."""
        deployments = self._deployments()
        pending = sum(not rollout_complete(item) for item in deployments)
        if len(deployments) != self.n or pending:
            return f"{pending} of {len(deployments)} rollouts still running"
        pods = self._items(self._core.list_pod_for_all_namespaces(label_selector=SELECTOR, _preload_content=False))
        wanted = VALIDATION if self.cni else INIT
        settled = [
            pod
            for pod in pods
            if not pod["metadata"].get("deletionTimestamp")
            and wanted in [container["name"] for container in pod["spec"].get("initContainers", [])]
        ]
        if len(pods) != self.n or len(settled) != self.n:
            return f"{len(settled)} of {len(pods)} pods with {wanted} and not terminating, {self.n} wanted"
        replicasets = self._apps.list_replica_set_for_all_namespaces(label_selector=SELECTOR, _preload_content=False)
        kept = self.n * min(1 + self._rollouts, 1 + REVISION_HISTORY)
        if (found := len(self._items(replicasets))) != kept:
            return f"{found} ReplicaSets, {kept} once the old ones are cleaned up"
        return None

    def _settle(self) -> None:
        deadline = time.monotonic() + self.settle_timeout
        while (state := self._unsettled()) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not settle within {self.settle_timeout:.0f} s: {state}")
            time.sleep(POLL_SECONDS)
        time.sleep(QUIET_SECONDS)

    def _counters(self) -> Counters:
        plane = self.cluster.control_plane
        context = ssl.create_default_context(cafile=str(plane.ca_file))
        request = urllib.request.Request(
            f"{plane.server}/metrics", headers={"Authorization": f"Bearer {plane.token()}"}
        )
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return parse_counters(response.read().decode())

    def _own_ticks(self) -> int:
        pids = [os.getpid(), self.clients.pid, *(process.pid for process in self.cluster.control_plane.processes)]
        return sum(_process_ticks(pid) for pid in pids)

    # Measuring.
    def _measure(self, key: str, way: str, run: Callable[[], Answer]) -> Step:
        """Restarts all N with `run`, which returns its wall and client CPU seconds, what it restarted (empty: it
        does not say) and its phases."""
        step_started = time.monotonic()
        to_cni = not self.cni
        self._inject(cni=to_cni)
        self.cni = to_cni
        direction = "istio-init → CNI" if to_cni else "CNI → istio-init"
        log(f"{way} ({direction})")
        generations = self._generations()
        before = self._counters()
        busy, own = _machine_busy_ticks(), self._own_ticks()
        window = time.perf_counter()
        seconds, client_cpu, restarted, phases = run()
        window = time.perf_counter() - window
        busy, own = _machine_busy_ticks() - busy, self._own_ticks() - own
        time.sleep(COUNTER_DELAY_SECONDS)
        requests, kinds = breakdown(before, self._counters())
        after = self._generations()
        self._rollouts += 1
        problems = [
            f"{name}: generation {generations.get(name)} -> {after.get(name)}"
            for name in sorted(set(generations) | set(after))
            if after.get(name, 0) - generations.get(name, 0) != 1
        ]
        expected = {f"Deployment/{namespace}/{name}" for namespace, name in self.targets}
        if key.startswith("program") and set(restarted) != expected:
            problems.append(f"it restarted {len(restarted)} workloads, not the {self.n} Deployments")
        log(f"  {seconds:.2f} s, {requests} requests ({describe_kinds(kinds)}); waiting for the rollouts to end")
        self._settle()
        return Step(
            way=way,
            key=key,
            direction=direction,
            seconds=seconds,
            client_cpu=client_cpu,
            requests=requests,
            kinds=kinds,
            one_generation=sum(after.get(name, 0) - generations.get(name, 0) == 1 for name in expected),
            problems=tuple(problems),
            # Both sides are sampled at the clock's tick, so a quiet machine can come out a little below zero.
            other_cores=max(0, busy - own) / os.sysconf("SC_CLK_TCK") / window,
            phases=phases,
            step_seconds=time.monotonic() - step_started,
        )

    def warm_up(self) -> None:
        """Runs the client process's one-off costs outside the measured runs, and records how long they took."""
        request = RestartRequest(
            kubeconfig=self.cluster.kubeconfig(RESTARTER), cni_enabled=self.cni, exclude_namespaces=SYSTEM_NAMESPACES
        )
        namespace, name = self.targets[0]
        arguments = {"request": request, "namespace": namespace, "name": name}
        self.warm_up_seconds, _cpu, _restarted, _phases = self.clients.run(("warm_up", arguments), self.settle_timeout)

    def article(self) -> Step:
        kubeconfig = str(self.cluster.kubeconfig_file(RESTARTER))
        if self.kubectl is None:

            def fallback() -> Answer:
                arguments = {"kubeconfig": self.cluster.kubeconfig(RESTARTER), "targets": self.targets}
                return self.clients.run(("one_by_one", arguments), self.settle_timeout * 4)

            return self._measure(
                "article", "article's way, NOT kubectl: GET + PATCH one by one (Python client)", fallback
            )
        kubectl = self.kubectl
        cache = self.scratch / "kubectl-cache"
        # A home of its own: nothing from the user's ~/.kube is read or written.
        environment = {**{k: v for k, v in os.environ.items() if k != "KUBECONFIG"}, "HOME": str(self.scratch)}

        def command(*arguments: str) -> list[str]:
            return [str(kubectl.path), f"--kubeconfig={kubeconfig}", f"--cache-dir={cache}", *arguments]

        def one_by_one() -> Answer:
            cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            for namespace, name in self.targets:
                done = subprocess.run(
                    command("rollout", "restart", "deployment", name, "-n", namespace),
                    env=environment,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"kubectl rollout restart {namespace}/{name}: {done.stderr.strip()}")
            seconds = time.perf_counter() - started
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            return seconds, used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime, [], {}

        # As on a user's machine, kubectl's discovery cache is warm before the loop (one invocation, not measured).
        namespace, name = self.targets[0]
        subprocess.run(
            command("get", "deployment", name, "-n", namespace, "-o", "name"),
            env=environment,
            capture_output=True,
            timeout=120,
            check=True,
        )
        return self._measure("article", "article's way: `kubectl rollout restart`, one by one", one_by_one)

    def floor(self) -> Step:
        arguments = {
            "kubeconfig": self.cluster.kubeconfig(RESTARTER),
            "targets": self.targets,
            "concurrency": MAX_CONCURRENT,
        }
        return self._measure(
            "floor",
            f"floor: bare client, the same PATCH, {MAX_CONCURRENT} threads",
            lambda: self.clients.run(("floor", arguments), self.settle_timeout),
        )

    def program(self, wait: bool) -> Step:
        self._runs += 1
        request = RestartRequest(
            kubeconfig=self.cluster.kubeconfig(RESTARTER),
            cni_enabled=not self.cni,
            # The program records on each workload which setting it restarted it for (a fingerprint of cniEnabled
            # and excludeNamespaces) and never restarts twice for one setting. The floor's runs in between send
            # kubectl's PATCH, which leaves that record alone: a namespace name of this run's own (no such
            # namespace exists) makes each run's setting new, as a real change of the setting would be.
            exclude_namespaces=(*SYSTEM_NAMESPACES, f"bench-run-{self._runs}"),
            max_concurrent=MAX_CONCURRENT,
            wait_for_rollout=wait,
            timeout_seconds=round(self.settle_timeout),
        )
        way = "program, waitForRollout" if wait else "program, no wait"
        return self._measure(
            "program-wait" if wait else "program",
            f"{way} (maxConcurrent {MAX_CONCURRENT})",
            lambda: self.clients.run(("program", {"request": request}), self.settle_timeout * 2),
        )

    def run(self, pairs: int, budget: float, started: float) -> list[Step]:
        """The article's way, then floor/program pairs while the time budget allows, then the waited program."""
        steps = [self.article()]
        pair_seconds = 0.0
        for pair in range(pairs):
            steps += [self.floor(), self.program(wait=False)]
            pair_seconds = steps[-1].step_seconds + steps[-2].step_seconds
            left = budget - (time.monotonic() - started)
            # Another pair, then the last floor run and the waited run: about two pairs' time.
            if pair + 1 == pairs or left < 2 * pair_seconds:
                break
        if budget - (time.monotonic() - started) >= pair_seconds:
            steps.append(self.floor())
        else:
            log("no time left for another floor run: the waited run goes from the CNI back to istio-init")
        steps.append(self.program(wait=True))
        return steps


def report(bench: Bench, steps: Sequence[Step], kubectl: Kubectl | None, why: str, started: float) -> str:
    lines = [
        f"### Sidecar restart on a real control plane: {bench.n} Deployments (1 replica each) in {bench.namespaces} "
        f"namespaces, {NODES} played nodes, Kubernetes v1.24, 2 cores",
        "",
        "| Run | Way | Pods re-injected | Wall | Requests | Of which | Client CPU | One new generation | "
        "Other processes' CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for index, step in enumerate(steps, 1):
        generations = f"{step.one_generation} of {bench.n}"
        if step.problems:
            generations += f" (NOT exact: {'; '.join(step.problems[:3])})"
        lines.append(
            f"| {index} | {step.way} | {step.direction} | {step.seconds:.2f} s | {step.requests:,} | "
            f"{describe_kinds(step.kinds)} | {step.client_cpu:.2f} s | {generations} | {step.other_cores:.2f} cores |"
        )

    def walls(key: str) -> list[float]:
        return [step.seconds for step in steps if step.key == key]

    floor, program, waited, article = walls("floor"), walls("program"), walls("program-wait"), walls("article")
    floor_median, program_median = statistics.median(floor), statistics.median(program)
    ratio, speedup = program_median / floor_median, article[0] / program_median
    pair_ratios = [
        f"{later.seconds / earlier.seconds:.2f}x"
        for earlier, later in itertools.pairwise(steps)
        if (earlier.key, later.key) == ("floor", "program")
    ]
    phases = "; ".join(
        f"run {index}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in step.phases.items())
        for index, step in enumerate(steps, 1)
        if step.phases
    )
    met = {True: "met", False: "not met"}
    if kubectl is not None:
        baseline = f"the real kubectl binary, {kubectl.version} ({kubectl.origin})"
    else:
        baseline = f"NOT kubectl ({why}): the Python client's GET and PATCH per Deployment, one by one"
    lines += [
        "",
        "| Measure | Figure | Target (from the issue, reported, not asserted) |",
        "|---|---|---|",
        f"| Floor, median of {len(floor)} | {floor_median:.2f} s | |",
        f"| Program without wait, median of {len(program)} | {program_median:.2f} s | |",
        f"| Program / floor | {ratio:.2f}x (each program run / the floor run before it: {', '.join(pair_ratios)}) "
        f"| within {TARGET_FLOOR_RATIO}x: {met[ratio <= TARGET_FLOOR_RATIO]} |",
        f"| Article's way / program | {speedup:.1f}x ({article[0]:.1f} s / {program_median:.2f} s) | more than "
        f"{TARGET_SPEEDUP:.0f}x: {met[speedup > TARGET_SPEEDUP]} |",
        f"| Program with waitForRollout (the real rollouts of all {bench.n}) | {waited[0]:.2f} s | |",
        f"| The program's phases (from its progress messages) | {phases} | |",
        f"| The client process's first calls (once, not in the runs above: a GET and a program run that restarts "
        f"nothing) | {bench.warm_up_seconds:.2f} s | |",
        f"| Article's way run with | {baseline} | |",
        f"| Whole benchmark | {(time.monotonic() - started) / 60:.1f} min | under about 8 min at N=500 (`--budget`) |",
        "",
        "Requests: the total is counted by the API server for the `restarter` user alone (API Priority and Fairness, "
        f"flow schema `{RESTARTER_FLOW_SCHEMA}`); the kinds by `apiserver_request_total`; `other` is watches and "
        "kubectl's discovery. Client CPU: the measured client's process (for kubectl, its processes). "
        "Other processes' CPU: what processes outside this benchmark used of the 2 cores during the run "
        "(the machine may be shared). Each run starts once the previous one's rollouts are over.",
    ]
    return "\n".join(lines)


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Unwinds like Ctrl-C does, so the control plane and the client process are stopped on the way out.
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=DEFAULT_DEPLOYMENTS, help="N (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_DEPLOYMENTS}")
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS, help="most floor/program pairs (%(default)s)")
    parser.add_argument(
        "--budget", type=float, default=DEFAULT_BUDGET_SECONDS, help="seconds; fewer pairs when short (%(default)s)"
    )
    args = parser.parse_args()
    deployments = QUICK_DEPLOYMENTS if args.quick else args.deployments
    if deployments < 1 or args.pairs < 1:
        parser.error("--deployments and --pairs must be at least 1")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.monotonic()

    binaries, missing = find_binaries()
    if binaries is None:
        sys.exit(f"no control plane: {missing}")
    kubectl, why = find_kubectl()
    if kubectl is None:
        log(f"no kubectl ({why}); the article's way falls back to the Python client, one Deployment at a time")
    else:
        log(f"kubectl {kubectl.version}: {kubectl.origin}")
    try:
        steps, bench = _run(binaries, kubectl, deployments, args.pairs, args.budget, started)
    except (KeyboardInterrupt, SystemExit):
        log("interrupted: everything this benchmark started has been stopped")
        raise
    print(report(bench, steps, kubectl, why or "", started))


def _run(
    binaries: Binaries, kubectl: Kubectl | None, deployments: int, pairs: int, budget: float, started: float
) -> tuple[list[Step], Bench]:
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restart-bench-")))
        clients = stack.enter_context(ClientProcess())
        log(f"starting the control plane ({NODES} played nodes)")
        cluster = stack.enter_context(running_cluster(binaries, nodes=NODES))
        bench = Bench(cluster, clients, kubectl, deployments, scratch)
        bench.prepare()
        bench.warm_up()
        steps = bench.run(pairs, budget, started)
        log("stopping the control plane")
    return steps, bench


if __name__ == "__main__":
    main()
