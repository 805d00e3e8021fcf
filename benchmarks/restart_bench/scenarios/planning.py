"""Planning at the cost of the work, not of the cluster: the program beside the floor in a cluster three times larger
than the restart.

Besides the N Deployments restarted, 2N more run outside the mesh (`outside`: namespaces without injection, pods
without sidecars), as in a real cluster where the mesh is one tenant among others. The floor PATCHes only the N and
lists nothing, so whatever the program pays for the other 2N shows as its distance from the floor. Floor/program
pairs (no wait) while the time budget allows; the program's LISTs and their bytes, as the API server counts them.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.restart_bench.baseline import floor
from benchmarks.restart_bench.bench import Bench, Step
from benchmarks.restart_bench.client_process import Done
from benchmarks.restart_bench.population import Population
from benchmarks.restart_bench.program import PLAN_PHASE, program, restart_inputs
from benchmarks.restart_bench.progress import log
from benchmarks.restart_bench.scenarios import Figure, Limits, Outcome, alternating_ratios, floor_figures
from restart.kube import KINDS, Cluster, Listing, RetryPolicy, connect
from restart.objects import MESH_POD_LABEL, ROLLABLE_KINDS
from restart.plan import plan_restart
from restart.request import RestartRequest
from restart.run import plan_cluster

OUTSIDE_FACTOR = 2
LIST_WAYS: dict[str, tuple[str, dict[str, Any]]] = {
    "pods, all": ("Pod", {}),
    "pods, istiod's label": ("Pod", {"label_selector": MESH_POD_LABEL}),
    "pods, istiod's label, watch cache": ("Pod", {"label_selector": MESH_POD_LABEL, "from_cache": True}),
    "replicasets, whole": ("ReplicaSet", {}),
    "replicasets, metadata": ("ReplicaSet", {"metadata_only": True}),
    "replicasets, metadata, watch cache": ("ReplicaSet", {"metadata_only": True, "from_cache": True}),
    "deployments": ("Deployment", {}),
    "deployments, watch cache": ("Deployment", {"from_cache": True}),
    "statefulsets": ("StatefulSet", {}),
}
"""Each way of listing, timed alone, to see which option matters: the program now makes the last of each kind, and
made the first of each before (statefulsets: what a kind no mesh pod is owned by cost, now not listed)."""
LIST_REPEATS = 3


def list_costs(kubeconfig: str) -> Done:
    """Job: each of `LIST_WAYS` with the program's client (request, JSON decoding, slim copies), median of a few."""
    costs: dict[str, float] = {}
    with connect(kubeconfig, RetryPolicy(), 500, 1) as cluster:
        for name, (kind, options) in LIST_WAYS.items():
            seconds = []
            for _ in range(LIST_REPEATS):
                started = time.perf_counter()
                listing = cluster.list_all(KINDS[kind], **options)
                seconds.append(time.perf_counter() - started)
            costs[name] = statistics.median(seconds)
            costs[f"{name} (objects)"] = len(listing.items)
    return [], costs


def _whole_lists(cluster: Cluster) -> dict[str, Listing]:
    """The planning lists as the program made them before: every object of the five kinds, whole, from etcd."""
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        futures = {kind: pool.submit(cluster.list_all, spec) for kind, spec in KINDS.items()}
        return {kind: future.result() for kind, future in futures.items()}


PLANNING_REPEATS = 5


def planning_costs(inputs: dict[str, Any]) -> Done:
    """Job: connect, list and plan, the way before (five whole lists) and now (`plan_cluster`), alternating."""
    request = RestartRequest.from_inputs(inputs)
    before: list[float] = []
    now: list[float] = []
    for _ in range(PLANNING_REPEATS):
        started = time.perf_counter()
        with connect(request.kubeconfig, RetryPolicy(), 500, len(KINDS)) as cluster:
            listings = _whole_lists(cluster)
        planned = plan_restart(
            request.data_plane,
            pods=listings["Pod"].items,
            replicasets=listings["ReplicaSet"].items,
            workloads=[(kind, obj) for kind in ROLLABLE_KINDS for obj in listings[kind].items],
        )
        before.append(time.perf_counter() - started)
        started = time.perf_counter()
        plan = plan_cluster(request)
        now.append(time.perf_counter() - started)
        if plan.restart != planned.restart:
            raise RuntimeError("the two ways of listing planned different restarts")
    return [], {"before": statistics.median(before), "now": statistics.median(now), "restarts": len(plan.restart)}


def run(bench: Bench, limits: Limits) -> Outcome:
    outside = Population(bench.cluster.api, OUTSIDE_FACTOR * bench.n, "outside", injected=False)
    outside.create(None)
    steps: list[Step] = []
    for pair in range(limits.pairs):
        # The program's runs go to the CNI: back to istio-init, its fingerprint leaves out the exclusions (they
        # mean nothing without the CNI), so a second such run would find its own record and restart nothing.
        if bench.cni:
            steps += [floor(bench), program(bench, wait=False)]
        else:
            steps += [program(bench, wait=False), floor(bench)]
        pair_seconds = steps[-1].step_seconds + steps[-2].step_seconds
        if pair + 1 == limits.pairs or limits.left() < pair_seconds:
            break
    log("timing each way of listing, then planning with the lists of before and of now")
    _seconds, _cpu, _restarted, costs = bench.run_client(list_costs, {"kubeconfig": bench.restarter_kubeconfig()})
    inputs = restart_inputs(bench, cni=not bench.cni, wait=False)
    _seconds, _cpu, _restarted, planned = bench.run_client(planning_costs, {"inputs": inputs})
    costs.update({f"planning {key}": value for key, value in planned.items()})
    title = (
        f"Planning in a cluster three times larger than the restart: {bench.n} Deployments restarted, "
        f"{outside.n} more outside the mesh ({outside.namespaces} namespaces without injection)"
    )
    return Outcome(title, steps, figures(steps, costs))


def _kib(count: float) -> str:
    return f"{count / 1024:,.0f} KiB"


def figures(steps: list[Step], costs: dict[str, float]) -> list[Figure]:
    floors = [step.seconds for step in steps if step.key == "floor"]
    programs = [step for step in steps if step.key == "program"]
    pair_ratios = alternating_ratios(steps, lambda step: step.key == "program")
    planning = statistics.median(step.phases.get(PLAN_PHASE, 0.0) for step in programs)
    lists: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for step in programs:
        lists.update({name: count for name, count in step.kinds.items() if name.startswith("LIST ")})
        sizes.update(step.list_bytes)
    runs = len(programs)
    listed = ", ".join(f"{name.removeprefix('LIST ')} {count / runs:g}" for name, count in sorted(lists.items()))
    answered = ", ".join(f"{name} {_kib(count / runs)}" for name, count in sorted(sizes.items()))
    compared, _program_median = floor_figures(floors, [step.seconds for step in programs], f"each pair: {pair_ratios}")
    return [
        *compared,
        Figure("The program's connect, lists and plan (median)", f"{planning:.2f} s"),
        Figure("The program's LIST requests per run (pages)", listed or "none"),
        Figure(
            "Bytes the API server answered to them per run",
            f"{_kib(sum(sizes.values()) / runs)} ({answered})" if sizes else "none",
        ),
        Figure(
            f"Connect, list and plan alone ({costs['planning restarts']:.0f} restarts planned, median of "
            f"{PLANNING_REPEATS}, alternating): five whole lists from etcd (before) / the lists of now",
            f"{costs['planning before']:.2f} s / {costs['planning now']:.2f} s "
            f"({costs['planning now'] / costs['planning before']:.2f}x)",
        ),
        Figure(
            f"Each way of listing alone, in the client process (median of {LIST_REPEATS})",
            "; ".join(f"{name}: {costs[name]:.3f} s ({costs[f'{name} (objects)']:.0f} objects)" for name in LIST_WAYS),
        ),
    ]
