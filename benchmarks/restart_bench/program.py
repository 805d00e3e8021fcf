"""The program's way: `run_restart`, as the restart resource's provider runs it, in the client process."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from benchmarks.restart_bench.baseline import client_configuration
from benchmarks.restart_bench.bench import MAX_CONCURRENT, SYSTEM_NAMESPACES, Bench, Step
from benchmarks.restart_bench.client_process import Done
from localkube.raw import drain
from restart.request import RestartRequest
from restart.run import run_restart

PLAN_PHASE, PATCH_PHASE, WAIT_PHASE = "connect, lists, plan", "PATCHes", "wait and pod check"


def restart_inputs(bench: Bench, *, cni: bool, wait: bool, **more: Any) -> dict[str, Any]:
    """The resource's inputs (its property bag, as stored in a stack's state) for a restart to `cni`."""
    return {
        "kubeconfig": bench.restarter_kubeconfig(),
        "cniEnabled": cni,
        "excludeNamespaces": list(SYSTEM_NAMESPACES),
        "maxConcurrent": MAX_CONCURRENT,
        "waitForRollout": wait,
        "timeoutSeconds": round(bench.timeout),
        **more,
    }


def restart(inputs: dict[str, Any]) -> Done:
    """Job: `run_restart`, with its phases timed from its progress messages (nothing else of it is touched).

    Its first message reports the plan, made from the lists; one message follows each PATCH.
    """
    request = RestartRequest.from_inputs(inputs)
    started = time.perf_counter()
    marks: dict[str, float] = {}

    def progress(message: str) -> None:
        now = time.perf_counter() - started
        marks.setdefault(PLAN_PHASE, now)
        if message.startswith("restarted "):
            marks[PATCH_PHASE] = now

    outcome = run_restart(request, progress)
    phases = {PLAN_PHASE: marks.get(PLAN_PHASE, 0.0)}
    if PATCH_PHASE in marks:
        phases[PATCH_PHASE] = marks[PATCH_PHASE] - phases[PLAN_PHASE]
        if inputs["waitForRollout"]:
            phases[WAIT_PHASE] = time.perf_counter() - started - marks[PATCH_PHASE]
    return list(outcome.restarted), phases


def first_calls(inputs: dict[str, Any], namespace: str, name: str) -> Done:
    """Job: what the first run in a fresh process pays once (imports inside the client, the kubeconfig loader, TLS).

    Both paths, restarting nothing: a GET as the floor's client, and the program asked for the setting the pods
    already have.
    """
    with client.ApiClient(client_configuration(inputs["kubeconfig"], 1)) as api:
        drain(client.AppsV1Api(api).read_namespaced_deployment(name, namespace, _preload_content=False))
    restarted, _phases = restart(inputs)
    if restarted:
        raise RuntimeError(f"the warm-up restarted {len(restarted)} workloads")
    return restarted, {}


def warm_up(bench: Bench) -> None:
    """Runs the client process's one-off costs outside the measured runs, and records how long they took."""
    namespace, name = bench.population.targets[0]
    inputs = restart_inputs(bench, cni=bench.cni, wait=True)
    arguments = {"inputs": inputs, "namespace": namespace, "name": name}
    bench.warm_up_seconds, _cpu, _restarted, _phases = bench.run_client(first_calls, arguments)


def program(bench: Bench, *, wait: bool, slow_start: bool | None = None) -> Step:
    # The program records on each workload which setting it restarted it for (a fingerprint of cniEnabled and
    # excludeNamespaces) and never restarts twice for one setting. Other runs in between send kubectl's PATCH,
    # which leaves that record alone: a namespace name of this run's own (no such namespace exists) makes each
    # run's setting new, as a real change of the setting would be.
    # `slow_start` None: the input left out, so the default applies. Other populations' namespaces are excluded:
    # each bench restarts its own.
    excluded = [*SYSTEM_NAMESPACES, *bench.excluded, f"bench-{bench.population.name}-run-{bench.population.rollouts}"]
    more = {} if slow_start is None else {"slowStart": slow_start}
    inputs = restart_inputs(bench, cni=not bench.cni, wait=wait, excludeNamespaces=excluded, **more)
    way = "program, waitForRollout" if wait else "program, no wait"
    key = "program-wait" if wait else "program"
    if slow_start is not None:
        way += ", slow start" if slow_start else ", fixed window"
        key += "-slow" if slow_start else "-fixed"
    return bench.measure(
        key,
        f"{way} (maxConcurrent {MAX_CONCURRENT})",
        lambda: bench.run_client(restart, {"inputs": inputs}, timeouts=2),
    )
