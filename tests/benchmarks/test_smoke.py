"""`make bench` at a small size, so that the benchmarks cannot rot: each runs to the end and prints its figures.

What the figures are is the benchmarks' business (docs/benchmarks.md): nothing here is timed or compared.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from localkube.binaries import Binaries

ROOT = Path(__file__).resolve().parents[2]
SMOKE_DEPLOYMENTS = 20
_TIMEOUT_SECONDS = 600.0


def run_module(module: str, *arguments: str) -> str:
    """Runs `python -m module arguments` from the project root; returns its stdout, failing with its stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the restart benchmark then stops the control plane it started.
        process.terminate()
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        pytest.fail(f"{module} did not finish within {_TIMEOUT_SECONDS:.0f} s:\n{err[-3000:]}")
    assert process.returncode == 0, f"{module} exited {process.returncode}:\n{err[-3000:]}"
    return out


def test_the_program_benchmark_prints_both_stacks_and_the_verdict() -> None:
    out = run_module("benchmarks.program_bench", "--runs", "1")
    assert re.search(r"^\| dev \| [\d.]+ \|", out, re.MULTILINE), out
    assert re.search(r"^\| prod \| [\d.]+ \|", out, re.MULTILINE), out
    assert "worst ratio" in out, out


@pytest.mark.cluster
def test_the_restart_benchmark_restarts_every_deployment_once_per_run_and_prints_its_figures(
    kube_binaries: Binaries,
) -> None:
    out = run_module("benchmarks.restart_bench", "--deployments", str(SMOKE_DEPLOYMENTS), "--pairs", "1")
    runs = re.findall(r"^\| \d+ \| (.+)$", out, re.MULTILINE)
    # The article's way, one floor/program pair, the last floor run and the program with waitForRollout.
    assert len(runs) == 5, out
    assert all(f"| {SMOKE_DEPLOYMENTS} of {SMOKE_DEPLOYMENTS} |" in run for run in runs), out
    for measure in ("Floor, median of", "Program / floor", "Article's way / program", "Whole benchmark"):
        assert f"| {measure}" in out, out
