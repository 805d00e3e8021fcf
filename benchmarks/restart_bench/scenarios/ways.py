"""The three ways compared: the article's kubectl loop, the bare client's floor, and the program.

The article's way once, then floor/program pairs while the time budget allows, then the program with
waitForRollout. The floor's runs go back from the CNI to `istio-init`, the program's go from `istio-init` to the
CNI, as the article does (the work is the same either way: one PATCH per Deployment, one new pod each). If the
budget leaves no room for a last floor run, the waited run goes from the CNI to `istio-init`; the table says which.
"""

from __future__ import annotations

import itertools

from benchmarks.restart_bench.article import article
from benchmarks.restart_bench.baseline import floor
from benchmarks.restart_bench.bench import Bench, Step
from benchmarks.restart_bench.program import program
from benchmarks.restart_bench.progress import log
from benchmarks.restart_bench.scenarios import Figure, Limits, Outcome, floor_figures, target

TARGET_SPEEDUP = 10.0


def run(bench: Bench, limits: Limits) -> Outcome:
    steps = [article(bench)]
    pair_seconds = 0.0
    for pair in range(limits.pairs):
        steps += [floor(bench), program(bench, wait=False)]
        pair_seconds = steps[-1].step_seconds + steps[-2].step_seconds
        # Another pair, then the last floor run and the waited run: about two pairs' time.
        if pair + 1 == limits.pairs or limits.left() < 2 * pair_seconds:
            break
    if limits.left() >= pair_seconds:
        steps.append(floor(bench))
    else:
        log("no time left for another floor run: the waited run goes from the CNI back to istio-init")
    steps.append(program(bench, wait=True))
    return Outcome("The article's way, the floor and the program", steps, figures(bench, steps))


def figures(bench: Bench, steps: list[Step]) -> list[Figure]:
    def walls(key: str) -> list[float]:
        return [step.seconds for step in steps if step.key == key]

    floors, programs, waited, articles = walls("floor"), walls("program"), walls("program-wait"), walls("article")
    pair_ratios = ", ".join(
        f"{later.seconds / earlier.seconds:.2f}x"
        for earlier, later in itertools.pairwise(steps)
        if (earlier.key, later.key) == ("floor", "program")
    )
    phases = "; ".join(
        f"run {index}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in step.phases.items())
        for index, step in enumerate(steps, 1)
        if step.phases
    )
    compared, program_median = floor_figures(
        floors, programs, f"each program run / the floor run before it: {pair_ratios}"
    )
    speedup = articles[0] / program_median
    return [
        *compared,
        Figure(
            "Article's way / program",
            f"{speedup:.1f}x ({articles[0]:.1f} s / {program_median:.2f} s)",
            target(f"more than {TARGET_SPEEDUP:.0f}x", speedup > TARGET_SPEEDUP),
        ),
        Figure(f"Program with waitForRollout (the real rollouts of all {bench.n})", f"{waited[0]:.2f} s"),
        Figure("The program's phases (from its progress messages)", phases),
    ]
