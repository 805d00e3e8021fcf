"""Time and peak memory to evaluate the whole program for a stack under mocks, beside the floor.

The floor imports the same Pulumi SDKs and registers one resource of each kind the program uses, so
the ratio shows what the program itself adds. Paired runs in fresh processes; medians reported.
Target: at most 1.3x the floor's wall time and peak memory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from offline.engine import ROOT

RUNS = 7
TARGET = 1.3


def kind(resource_type: str) -> str:
    """What costs the same to register: every component is one kind, every dynamic resource another."""
    if resource_type.startswith("aks-istio:"):
        return "component"
    if resource_type.startswith("pulumi-python:dynamic/"):
        return "dynamic resource"
    return resource_type


def measure(*args: str) -> tuple[float, float, set[str]]:
    """Wall seconds, peak RSS in MiB, and the resource types registered, for one fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.evaluate", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    types = set(process.stdout.read().split())
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"benchmarks.evaluate {' '.join(args)} failed")
    return elapsed, usage.ru_maxrss / 1024, types


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="paired runs per stack (%(default)s)")
    runs = parser.parse_args().runs
    if runs < 1:
        parser.error("--runs must be at least 1")
    print(
        "| stack | program wall (s) | floor wall (s) | wall ratio | program peak (MiB) | floor peak (MiB) "
        "| memory ratio |\n|---|---|---|---|---|---|---|"
    )
    worst = 0.0
    for stack in ("dev", "prod"):
        samples = []
        for _ in range(runs):
            program = measure("program", stack)
            floor = measure("floor")
            samples.append((program, floor))
        uncovered = {kind(t) for t in samples[0][0][2]} - {kind(t) for t in samples[0][1][2]}
        if uncovered:
            print(f"note: the floor registers no {', '.join(sorted(uncovered))}", file=sys.stderr)
        wall_ratio = statistics.median(p[0] / f[0] for p, f in samples)
        memory_ratio = statistics.median(p[1] / f[1] for p, f in samples)
        worst = max(worst, wall_ratio, memory_ratio)
        print(
            f"| {stack} | {statistics.median(p[0] for p, _ in samples):.2f} "
            f"| {statistics.median(f[0] for _, f in samples):.2f} | {wall_ratio:.2f}x "
            f"| {statistics.median(p[1] for p, _ in samples):.0f} | {statistics.median(f[1] for _, f in samples):.0f} "
            f"| {memory_ratio:.2f}x |"
        )
    verdict = "within" if worst <= TARGET else "ABOVE"
    print(f"\nmedian of {runs} paired runs; worst ratio {worst:.2f}x, {verdict} the {TARGET}x target")


if __name__ == "__main__":
    main()
