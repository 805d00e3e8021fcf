"""The article's way: `kubectl rollout restart deployment <name> -n <ns>`, one Deployment after the other."""

from __future__ import annotations

import os
import resource
import subprocess
import time

from benchmarks.restart_bench.baseline import get_and_patch_one_by_one
from benchmarks.restart_bench.bench import Bench, Step
from benchmarks.restart_bench.client_process import Answer

_KUBECTL_TIMEOUT_SECONDS = 120


def article(bench: Bench) -> Step:
    """With the real kubectl binary; without one, the Python client's GET and PATCH per Deployment."""
    if bench.kubectl is None:
        arguments = {"kubeconfig": bench.restarter_kubeconfig(), "targets": bench.population.targets}
        return bench.measure(
            "article",
            "article's way, NOT kubectl: GET + PATCH one by one (Python client)",
            lambda: bench.run_client(get_and_patch_one_by_one, arguments, timeouts=4),
        )
    kubectl, kubeconfig = bench.kubectl, str(bench.restarter_kubeconfig_file())
    cache = bench.scratch / "kubectl-cache"
    # A home of its own: nothing from the user's ~/.kube is read or written.
    environment = {**{k: v for k, v in os.environ.items() if k != "KUBECONFIG"}, "HOME": str(bench.scratch)}

    def command(*arguments: str) -> list[str]:
        return [str(kubectl.path), f"--kubeconfig={kubeconfig}", f"--cache-dir={cache}", *arguments]

    def one_by_one() -> Answer:
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        for namespace, name in bench.population.targets:
            done = subprocess.run(
                command("rollout", "restart", "deployment", name, "-n", namespace),
                env=environment,
                capture_output=True,
                text=True,
                timeout=_KUBECTL_TIMEOUT_SECONDS,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"kubectl rollout restart {namespace}/{name}: {done.stderr.strip()}")
        seconds = time.perf_counter() - started
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        return seconds, used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime, [], {}

    # As on a user's machine, kubectl's discovery cache is warm before the loop (one invocation, not measured).
    namespace, name = bench.population.targets[0]
    subprocess.run(
        command("get", "deployment", name, "-n", namespace, "-o", "name"),
        env=environment,
        capture_output=True,
        timeout=_KUBECTL_TIMEOUT_SECONDS,
        check=True,
    )
    return bench.measure("article", "article's way: `kubectl rollout restart`, one by one", one_by_one)
