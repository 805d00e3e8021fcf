"""Slow start beside the fixed window, in one cluster: what a bad change reaches, and what a healthy one costs.

A population of its own (200 Deployments, `slowstart`), which the other scenarios' program runs exclude, and which
excludes theirs:
1. healthy: all 200 restarted with waitForRollout and maxConcurrent 10, with slow start and with the fixed window,
   alternating A B B A (so both go each way between `istio-init` and the CNI equally often); medians compared;
2. a bad change: the played kubelets never report the new pods Ready, and timeoutSeconds is short, so the first
   rollout fails; how many workloads each window restarted before it stopped.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from benchmarks.restart_bench.bench import MAX_CONCURRENT, SYSTEM_NAMESPACES, Bench, Step
from benchmarks.restart_bench.client_process import Done
from benchmarks.restart_bench.population import BENCH_LABEL, Population
from benchmarks.restart_bench.program import program, restart_inputs
from benchmarks.restart_bench.progress import log
from benchmarks.restart_bench.scenarios import Figure, Limits, Outcome, alternating_ratios, target
from localkube.sidecar import VALIDATION
from restart.request import RestartError, RestartRequest
from restart.run import run_restart

DEPLOYMENTS = 200
TARGET_RATIO = 1.15
TARGET_REACH = 1
FAILURE_TIMEOUT_SECONDS = 10


def failing_restart(inputs: dict[str, Any]) -> Done:
    """Job: a run expected to stop at its first failure; returns what it restarted before it stopped."""
    try:
        outcome = run_restart(RestartRequest.from_inputs(inputs), lambda _message: None)
    except RestartError as exc:
        return list(exc.restarted), {}
    raise RuntimeError(f"the run did not fail: it restarted {len(outcome.restarted)} workloads")


def run(bench: Bench, limits: Limits) -> Outcome:
    own = Bench(
        bench.cluster,
        bench.clients,
        bench.kubectl,
        Population(bench.cluster.api, DEPLOYMENTS, "slowstart"),
        bench.scratch,
    )
    own.inject(cni=False)
    own.population.create(own.redirection)
    own.excluded = bench.population.namespace_names
    bench.excluded = [*bench.excluded, *own.population.namespace_names]

    steps: list[Step] = []
    order = itertools.cycle([True, False, False, True])
    for pair in range(limits.pairs):
        steps += [program(own, wait=True, slow_start=next(order)), program(own, wait=True, slow_start=next(order))]
        pair_seconds = steps[-1].step_seconds + steps[-2].step_seconds
        # Another pair, and the bad change's two short runs after it.
        if pair + 1 == limits.pairs or limits.left() < pair_seconds + 4 * FAILURE_TIMEOUT_SECONDS:
            break
    reach = bad_change(own)
    return Outcome(
        f"Slow start and the fixed window ({DEPLOYMENTS} Deployments of their own, maxConcurrent {MAX_CONCURRENT})",
        steps,
        figures(steps, reach),
    )


def bad_change(own: Bench) -> dict[bool, int]:
    """Workloads restarted by a run whose first rollout fails, with slow start (True) and with the fixed window."""
    # Runs always go from istio-init to the CNI here: an even number of healthy runs brought the pods back.
    assert not own.cni, "the bad change goes to the CNI"
    own.inject(cni=True)
    population = own.population

    def new_pod(pod: Any) -> bool:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        init = [container.get("name") for container in (pod.get("spec") or {}).get("initContainers") or []]
        return bool(labels.get(BENCH_LABEL) == population.name and VALIDATION in init)

    release = own.cluster.kubelets.never_ready(new_pod)
    reach: dict[bool, int] = {}
    try:
        for slow_start in (True, False):
            way = "slow start" if slow_start else "fixed window"
            log(f"a bad change ({way}): the new pods never become Ready, timeoutSeconds {FAILURE_TIMEOUT_SECONDS}")
            # A namespace name of each run's own: a new data plane each time, so that the second run does not wait
            # for what the first one restarted.
            excluded = [*SYSTEM_NAMESPACES, *own.excluded, f"bench-bad-change-{way.replace(' ', '-')}"]
            inputs = restart_inputs(
                own,
                cni=True,
                wait=True,
                excludeNamespaces=excluded,
                slowStart=slow_start,
                timeoutSeconds=FAILURE_TIMEOUT_SECONDS,
            )
            _seconds, _cpu, restarted, _phases = own.run_client(failing_restart, {"inputs": inputs})
            reach[slow_start] = len(restarted)
            log(f"  stopped after restarting {len(restarted)}")
    finally:
        release()
    log("waiting for the held rollouts to end")
    population.rolled_out()
    return reach


def figures(steps: list[Step], reach: dict[bool, int]) -> list[Figure]:
    def walls(key: str) -> list[float]:
        return [step.seconds for step in steps if step.key == key]

    slow, fixed = walls("program-wait-slow"), walls("program-wait-fixed")
    ratio = statistics.median(slow) / statistics.median(fixed)
    pair_ratios = alternating_ratios(steps, lambda step: step.key.endswith("slow"))
    return [
        Figure(
            "A bad change (its first rollout fails): workloads restarted, slow start / fixed window",
            f"{reach[True]} / {reach[False]}",
            target(f"exactly {TARGET_REACH} with slow start", reach[True] == TARGET_REACH),
        ),
        Figure(f"Slow start, waitForRollout, median of {len(slow)}", f"{statistics.median(slow):.2f} s"),
        Figure(f"Fixed window, waitForRollout, median of {len(fixed)}", f"{statistics.median(fixed):.2f} s"),
        Figure(
            f"Slow start / fixed window ({DEPLOYMENTS} healthy Deployments)",
            f"{ratio:.2f}x (each pair: {pair_ratios})",
            target(f"within {TARGET_RATIO}x", ratio <= TARGET_RATIO),
        ),
    ]
