"""Sidecar restart at scale: 2,000 Deployments in 200 namespaces, a quarter of them with `istio-init` pods.

Runs the restart against the API emulator with 20 ms added to every request and `maxConcurrent: 10`,
switching to the CNI, and compares it with
- the ideal: ceil(restarts / maxConcurrent) x latency + list requests x latency;
- the article's way: list each namespace's Deployments, then `kubectl rollout restart` every one of
  them, one at a time (one PATCH each, sequentially);
- the same restart with `waitForRollout` (one watch per kind instead of polling each workload).

Usage: `python -m benchmarks.restart_bench [--runs 3] [--skip-baseline]`; prints a markdown table.
Stops itself: every phase has a deadline and the whole run ends within about two minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml
from kubernetes import client, config

from restart.plan import restart_patch, rfc3339
from restart.request import RestartRequest
from restart.run import RestartOutcome, run_restart
from tests.support.kube_emulator import KubeEmulator, PodShape, add_deployment

NAMESPACES = 200
PER_NAMESPACE = 10
LATENCY = 0.020
MAX_CONCURRENT = 10
ROLLOUT_DELAY = 0.5
EXCLUDED = ("istio-system", "kube-node-lease", "kube-public", "kube-system")
BASELINE_DEADLINE = 90.0


def populate(emulator: KubeEmulator) -> frozenset[str]:
    """2,000 Deployments; every fourth one runs `istio-init` pods, the rest are CNI pods or have no sidecar.

    Returns the `Deployment/namespace/name` of those created with `istio-init` pods: what must be restarted.
    """
    shapes = [PodShape(redirect="istio-init"), PodShape(redirect="istio-validation"), PodShape(sidecar=False)]
    istio_init: set[str] = set()
    for ns in range(NAMESPACES):
        for index in range(PER_NAMESPACE):
            position = ns * PER_NAMESPACE + index
            shape = shapes[0] if position % 4 == 0 else shapes[1 + position % 2]
            namespace, name = f"team-{ns:03d}", f"app-{index}"
            if shape is shapes[0]:
                istio_init.add(f"Deployment/{namespace}/{name}")
            add_deployment(emulator, namespace, name, shape)
    return frozenset(istio_init)


@dataclass(frozen=True)
class Measurement:
    seconds: float
    restarted: tuple[str, ...]
    requests: Counter[str]
    expected: frozenset[str]
    """The `istio-init` Deployments the emulator was populated with."""

    @property
    def restarts(self) -> int:
        return len(self.restarted)


def _serve(connection: Connection, rollout_delay: float) -> None:
    """In the emulator's own process, as an API server would be: answer "counts" and "stop"."""
    # Rollouts re-inject for the CNI, as istiod serving the new setting does: the wait's pod check passes.
    with KubeEmulator(rollout_delay=rollout_delay, reinject="istio-validation") as emulator:
        expected = populate(emulator)
        emulator.latency = LATENCY
        connection.send((emulator.kubeconfig(), expected))
        while (command := connection.recv()) != "stop":
            assert command == "counts"
            connection.send(emulator.request_counts())


def measure(run: Callable[[str], tuple[str, ...]], rollout_delay: float = 0.05) -> Measurement:
    """Time `run(kubeconfig)` against a freshly populated emulator running in a separate process."""
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    server = context.Process(target=_serve, args=(theirs, rollout_delay), daemon=True)
    server.start()
    try:
        if not ours.poll(60):
            raise TimeoutError("the emulator did not start within 60 s")
        kubeconfig, expected = ours.recv()
        started = time.perf_counter()
        restarted = run(kubeconfig)
        seconds = time.perf_counter() - started
        ours.send("counts")
        requests: Counter[str] = ours.recv()
        ours.send("stop")
        return Measurement(seconds, restarted, requests, expected)
    finally:
        server.join(10)
        if server.is_alive():
            server.terminate()


def provider_way(wait: bool) -> Callable[[str], tuple[str, ...]]:
    def run(kubeconfig: str) -> tuple[str, ...]:
        request = RestartRequest(
            kubeconfig=kubeconfig,
            cni_enabled=True,
            exclude_namespaces=EXCLUDED,
            max_concurrent=MAX_CONCURRENT,
            wait_for_rollout=wait,
            timeout_seconds=60,
        )
        outcome: RestartOutcome = run_restart(request, lambda _message: None)
        return outcome.restarted

    return run


def article_way(kubeconfig: str) -> tuple[str, ...]:
    """Per namespace: list its Deployments, then restart each one, one request at a time."""
    configuration = client.Configuration()
    config.load_kube_config_from_dict(yaml.safe_load(kubeconfig), client_configuration=configuration)
    deadline = time.monotonic() + BASELINE_DEADLINE
    body = restart_patch("article", rfc3339(datetime.now(UTC)))
    restarted: list[str] = []
    with client.ApiClient(configuration) as api:
        apps = client.AppsV1Api(api)
        for ns in range(NAMESPACES):
            namespace = f"team-{ns:03d}"
            listed: Any = apps.list_namespaced_deployment(namespace, _preload_content=False)
            items = json.loads(listed.data)["items"]
            listed.release_conn()
            for item in items:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the article's way passed {BASELINE_DEADLINE:.0f} s; stopped")
                response: Any = apps.patch_namespaced_deployment(
                    item["metadata"]["name"], namespace, body, _preload_content=False
                )
                response.read()
                response.release_conn()
                restarted.append(f"Deployment/{namespace}/{item['metadata']['name']}")
    return tuple(restarted)


def list_requests(requests: Counter[str]) -> int:
    return sum(count for key, count in requests.items() if key.startswith("list "))


def ideal_seconds(restarts: int, requests: Counter[str]) -> float:
    return math.ceil(restarts / MAX_CONCURRENT) * LATENCY + list_requests(requests) * LATENCY


def describe(requests: Counter[str]) -> str:
    return ", ".join(f"{key}: {count}" for key, count in sorted(requests.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-baseline", action="store_true", help="leave out the article's way (about 45 s)")
    args = parser.parse_args()

    # The first call in a process pays the client's one-off start-up; measured apart, as the provider's.
    with KubeEmulator() as warm_up:
        add_deployment(warm_up, "warm", "up")
        started = time.perf_counter()
        provider_way(False)(warm_up.kubeconfig())
        startup = time.perf_counter() - started

    plain = [measure(provider_way(False)) for _ in range(args.runs)]
    waited = [measure(provider_way(True), rollout_delay=ROLLOUT_DELAY) for _ in range(args.runs)]
    for measurement in plain + waited:
        # Exactly the `istio-init` Deployments the emulator was populated with: no more, no fewer.
        assert set(measurement.restarted) == measurement.expected, "the restarts are not the istio-init Deployments"
        assert len(measurement.restarted) == len(measurement.expected) == 500
    median_plain = statistics.median(m.seconds for m in plain)
    median_waited = statistics.median(m.seconds for m in waited)
    sample, sample_waited = plain[0], waited[0]
    ideal = ideal_seconds(sample.restarts, sample.requests)
    article_requests = NAMESPACES + NAMESPACES * PER_NAMESPACE
    article_ideal = article_requests * LATENCY

    rows = [
        ("Restarts", f"{sample.restarts} of {NAMESPACES * PER_NAMESPACE} Deployments: exactly the `istio-init` ones"),
        ("API requests", f"{sum(sample.requests.values())} ({describe(sample.requests)})"),
        ("Wall time, median of " + str(args.runs), f"{median_plain:.2f} s (runs: "
         + ", ".join(f"{m.seconds:.2f}" for m in plain) + ")"),
        ("Ideal", f"{ideal:.2f} s = ceil({sample.restarts}/{MAX_CONCURRENT}) x 20 ms + "
         f"{list_requests(sample.requests)} list pages x 20 ms"),
        ("Ratio to ideal", f"{median_plain / ideal:.2f}x"),
        ("Client start-up (once per provider process)", f"{startup:.2f} s"),
    ]  # fmt: skip
    if not args.skip_baseline:
        try:
            article = measure(article_way)
            rows.append(
                (
                    "Article's way (measured once)",
                    f"{article.seconds:.1f} s, {article.restarts} restarts, "
                    f"{sum(article.requests.values())} requests ({describe(article.requests)}); "
                    f"floor {article_ideal:.0f} s",
                )
            )
            rows.append(("Speed-up over the article's way", f"{article.seconds / median_plain:.0f}x"))
        except TimeoutError as exc:
            rows.append(("Article's way", str(exc)))
    wait_requests = sample_waited.requests - sample.requests
    rows += [
        (f"With waitForRollout (rollouts take {ROLLOUT_DELAY:.1f} s), median", f"{median_waited:.2f} s "
         f"(+{median_waited - median_plain:.2f} s)"),
        ("Requests the wait adds", f"{sum(wait_requests.values())} ({describe(wait_requests)})"),
        ("Polling each workload instead", f"at least {sample.restarts} GETs per polling round"),
    ]  # fmt: skip

    print(f"### Sidecar restart: {NAMESPACES * PER_NAMESPACE} Deployments, {NAMESPACES} namespaces, "
          f"20 ms per request, maxConcurrent {MAX_CONCURRENT}\n")  # fmt: skip
    print("| Measure | Value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
