"""What a benchmark run measures: each scenario is a module with one function, listed in `__main__.SCENARIOS`.

A scenario receives the `Bench` (the cluster, its population rolled out, the client process) and the run's
limits, measures restarts with `Bench.measure` (the ways are in `article.py`, `baseline.py`, `program.py`), and
returns its runs and its figures for the report.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.restart_bench.bench import Bench, Step


@dataclass(frozen=True)
class Limits:
    pairs: int
    """The most repetitions of a scenario's compared runs."""
    budget: float
    """Seconds the whole benchmark should take; a scenario repeats fewer runs when short."""
    started: float
    """`time.monotonic()` when the benchmark started."""

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)


@dataclass(frozen=True)
class Figure:
    measure: str
    figure: str
    target: str = ""
    """A target from an issue, reported, never asserted."""


@dataclass(frozen=True)
class Outcome:
    title: str
    steps: list[Step]
    figures: list[Figure]


Scenario = Callable[[Bench, Limits], Outcome]

TARGET_FLOOR_RATIO = 1.3
"""The program without wait, at most this many times the bare client's floor."""


def target(wanted: str, met: bool) -> str:
    """A target and whether this run met it: reported, never asserted."""
    return f"{wanted}: {'met' if met else 'not met'}"


def alternating_ratios(steps: Sequence[Step], measured: Callable[[Step], bool]) -> str:
    """`0.97x, 0.78x`: each pair of runs (A B or B A) as the `measured` run's wall over the other's."""
    return ", ".join(
        f"{(a.seconds / b.seconds) if measured(a) else (b.seconds / a.seconds):.2f}x"
        for a, b in zip(steps[::2], steps[1::2], strict=False)
    )


def floor_figures(floors: Sequence[float], programs: Sequence[float], pairs: str) -> tuple[list[Figure], float]:
    """The floor's and the program's medians and their ratio against `TARGET_FLOOR_RATIO` (`pairs`: each pair's
    ratio, described); also the program's median."""
    floor_median, program_median = statistics.median(floors), statistics.median(programs)
    ratio = program_median / floor_median
    figures = [
        Figure(f"Floor, median of {len(floors)}", f"{floor_median:.2f} s"),
        Figure(f"Program without wait, median of {len(programs)}", f"{program_median:.2f} s"),
        Figure(
            "Program / floor",
            f"{ratio:.2f}x ({pairs})",
            target(f"within {TARGET_FLOOR_RATIO}x", ratio <= TARGET_FLOOR_RATIO),
        ),
    ]
    return figures, program_median
