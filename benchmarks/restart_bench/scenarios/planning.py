"""Planning at the cost of the work, not of the cluster: the program beside the floor in a cluster three times larger
than the restart.

Besides the N Deployments restarted, 2N more run outside the mesh (`outside`: namespaces without injection, pods
without sidecars), as in a real cluster where the mesh is one tenant among others. The floor PATCHes only the N and
lists nothing, so whatever the program pays for the other 2N shows as its distance from the floor. Floor/program
pairs (no wait) while the time budget allows; the program's LISTs and their bytes, as the API server counts them.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter

from benchmarks.restart_bench.baseline import floor
from benchmarks.restart_bench.bench import Bench, Step
from benchmarks.restart_bench.population import Population
from benchmarks.restart_bench.program import PLAN_PHASE, program
from benchmarks.restart_bench.scenarios import Figure, Limits, Outcome

OUTSIDE_FACTOR = 2
TARGET_FLOOR_RATIO = 1.3
_MET = {True: "met", False: "not met"}


def run(bench: Bench, limits: Limits) -> Outcome:
    outside = Population(bench.cluster.api, OUTSIDE_FACTOR * bench.n, "outside", injected=False)
    outside.create(None)
    steps: list[Step] = []
    for pair in range(limits.pairs):
        steps += [floor(bench), program(bench, wait=False)]
        pair_seconds = steps[-1].step_seconds + steps[-2].step_seconds
        if pair + 1 == limits.pairs or limits.left() < pair_seconds:
            break
    title = (
        f"Planning in a cluster three times larger than the restart: {bench.n} Deployments restarted, "
        f"{outside.n} more outside the mesh ({outside.namespaces} namespaces without injection)"
    )
    return Outcome(title, steps, figures(steps))


def _kib(count: float) -> str:
    return f"{count / 1024:,.0f} KiB"


def figures(steps: list[Step]) -> list[Figure]:
    floors = [step.seconds for step in steps if step.key == "floor"]
    programs = [step for step in steps if step.key == "program"]
    floor_median = statistics.median(floors)
    program_median = statistics.median(step.seconds for step in programs)
    ratio = program_median / floor_median
    pair_ratios = ", ".join(
        f"{later.seconds / earlier.seconds:.2f}x"
        for earlier, later in itertools.pairwise(steps)
        if (earlier.key, later.key) == ("floor", "program")
    )
    planning = statistics.median(step.phases.get(PLAN_PHASE, 0.0) for step in programs)
    lists: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for step in programs:
        lists.update({name: count for name, count in step.kinds.items() if name.startswith("LIST ")})
        sizes.update(step.list_bytes)
    runs = len(programs)
    listed = ", ".join(f"{name.removeprefix('LIST ')} {count / runs:g}" for name, count in sorted(lists.items()))
    answered = ", ".join(f"{name} {_kib(count / runs)}" for name, count in sorted(sizes.items()))
    return [
        Figure(f"Floor, median of {len(floors)}", f"{floor_median:.2f} s"),
        Figure(f"Program without wait, median of {runs}", f"{program_median:.2f} s"),
        Figure(
            "Program / floor",
            f"{ratio:.2f}x (each program run / the floor run before it: {pair_ratios})",
            f"within {TARGET_FLOOR_RATIO}x: {_MET[ratio <= TARGET_FLOOR_RATIO]}",
        ),
        Figure("The program's connect, lists and plan (median)", f"{planning:.2f} s"),
        Figure("The program's LIST requests per run (pages)", listed or "none"),
        Figure(
            "Bytes the API server answered to them per run",
            f"{_kib(sum(sizes.values()) / runs)} ({answered})" if sizes else "none",
        ),
    ]
