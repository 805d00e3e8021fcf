"""What a benchmark run measures: each scenario is a module with one function, listed in `__main__.SCENARIOS`.

A scenario receives the `Bench` (the cluster, its population rolled out, the client process) and the run's
limits, measures restarts with `Bench.measure` (the ways are in `article.py`, `baseline.py`, `program.py`), and
returns its runs and its figures for the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
