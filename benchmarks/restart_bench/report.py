"""The benchmark's Markdown: per scenario, its runs and its figures; then what every scenario shares."""

from __future__ import annotations

import time
from collections.abc import Sequence

from benchmarks.restart_bench.bench import NODES, Bench, Step
from benchmarks.restart_bench.counters import RESTARTER_FLOW_SCHEMA, describe_kinds
from benchmarks.restart_bench.kubectl import Kubectl
from benchmarks.restart_bench.scenarios import Figure, Outcome

BUDGET_TARGET = "under about 8 min at N=500 (`--budget`)"


def report(bench: Bench, outcomes: Sequence[Outcome], kubectl: Kubectl | None, why: str, started: float) -> str:
    population = bench.population
    lines = [
        f"### Sidecar restart on a real control plane: {bench.n} Deployments (1 replica each) in "
        f"{population.namespaces} namespaces, {NODES} played nodes, Kubernetes {bench.kubernetes_version}",
    ]
    for outcome in outcomes:
        lines += [
            "",
            f"#### {outcome.title}",
            "",
            *runs_table(outcome.steps),
            "",
            *figures_table(outcome.figures),
        ]
    if kubectl is not None:
        baseline = f"the real kubectl binary, {kubectl.version} ({kubectl.origin})"
    else:
        baseline = f"NOT kubectl ({why}): the Python client's GET and PATCH per Deployment, one by one"
    common = [
        Figure(
            "The client process's first calls (once, not in the runs above: a GET and a program run that restarts "
            "nothing)",
            f"{bench.warm_up_seconds:.2f} s",
        ),
        Figure("Article's way run with", baseline),
        Figure("Whole benchmark", f"{(time.monotonic() - started) / 60:.1f} min", BUDGET_TARGET),
    ]
    lines += [
        "",
        "#### Every scenario",
        "",
        *figures_table(common),
        "",
        "Requests: the total is counted by the API server for the `restarter` user alone (API Priority and Fairness, "
        f"flow schema `{RESTARTER_FLOW_SCHEMA}`); the kinds by `apiserver_request_total`; `other` is watches and "
        "kubectl's discovery. Client CPU: the measured client's process (for kubectl, its processes). "
        "Other processes' CPU: what processes outside this benchmark used of the machine's cores during the run "
        "(the machine may be shared). Each run starts once the previous one's rollouts are over.",
    ]
    return "\n".join(lines)


def runs_table(steps: Sequence[Step]) -> list[str]:
    lines = [
        "| Run | Way | Pods re-injected | Wall | Requests | Of which | Client CPU | One new generation | "
        "Other processes' CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for index, step in enumerate(steps, 1):
        generations = f"{step.one_generation} of {step.population}"
        if step.problems:
            generations += f" (NOT exact: {'; '.join(step.problems[:3])})"
        lines.append(
            f"| {index} | {step.way} | {step.direction} | {step.seconds:.2f} s | {step.requests:,} | "
            f"{describe_kinds(step.kinds)} | {step.client_cpu:.2f} s | {generations} | {step.other_cores:.2f} cores |"
        )
    return lines


def figures_table(figures: Sequence[Figure]) -> list[str]:
    return [
        "| Measure | Figure | Target (from the issue, reported, not asserted) |",
        "|---|---|---|",
        *(f"| {figure.measure} | {figure.figure} | {figure.target} |" for figure in figures),
    ]
