"""`python -m benchmarks.restart_bench`: starts the cluster, runs the scenarios asked for, prints the report."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from benchmarks.restart_bench import __doc__ as description
from benchmarks.restart_bench.bench import NODES, Bench
from benchmarks.restart_bench.client_process import ClientProcess
from benchmarks.restart_bench.kubectl import Kubectl, find_kubectl
from benchmarks.restart_bench.population import Population
from benchmarks.restart_bench.program import warm_up
from benchmarks.restart_bench.progress import log
from benchmarks.restart_bench.report import report
from benchmarks.restart_bench.scenarios import Limits, Outcome, Scenario, planning, slowstart, ways
from localkube.binaries import Binaries, find_binaries
from localkube.cluster import running_cluster

SCENARIOS: dict[str, Scenario] = {
    "ways": ways.run,
    "slowstart": slowstart.run,
    "planning": planning.run,
}
"""Each scenario's name on the command line, and the function that runs it."""
DEFAULT_DEPLOYMENTS = 500
QUICK_DEPLOYMENTS = 50
DEFAULT_PAIRS = 3
DEFAULT_BUDGET_SECONDS = 480.0


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.restart_bench", description=(description or "").splitlines()[0]
    )
    parser.add_argument("--deployments", type=int, default=DEFAULT_DEPLOYMENTS, help="N (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_DEPLOYMENTS}")
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS, help="most repetitions (%(default)s)")
    parser.add_argument(
        "--budget", type=float, default=DEFAULT_BUDGET_SECONDS, help="seconds; fewer pairs when short (%(default)s)"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="what to measure, one after the other (repeatable; default: ways)",
    )
    args = parser.parse_args()
    deployments = QUICK_DEPLOYMENTS if args.quick else args.deployments
    if deployments < 1 or args.pairs < 1:
        parser.error("--deployments and --pairs must be at least 1")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    limits = Limits(pairs=args.pairs, budget=args.budget, started=time.monotonic())

    binaries, missing = find_binaries()
    if binaries is None:
        sys.exit(f"no control plane: {missing}")
    kubectl, why = find_kubectl()
    if kubectl is None:
        log(f"no kubectl ({why}); the article's way falls back to the Python client, one Deployment at a time")
    else:
        log(f"kubectl {kubectl.version}: {kubectl.origin}")
    try:
        print(_run(binaries, kubectl, why or "", deployments, args.scenario or ["ways"], limits))
    except (KeyboardInterrupt, SystemExit):
        log("interrupted: everything this benchmark started has been stopped")
        raise


def _run(
    binaries: Binaries, kubectl: Kubectl | None, why: str, deployments: int, scenarios: list[str], limits: Limits
) -> str:
    """Runs the scenarios in one cluster; returns the report, written once everything has been stopped."""
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="restart-bench-")))
        clients = stack.enter_context(ClientProcess())
        log(f"starting the control plane ({NODES} played nodes)")
        cluster = stack.enter_context(running_cluster(binaries, nodes=NODES))
        bench = Bench(cluster, clients, kubectl, Population(cluster.api, deployments), scratch)
        bench.prepare()
        warm_up(bench)
        outcomes: list[Outcome] = [SCENARIOS[name](bench, limits) for name in scenarios]
        log("stopping the control plane")
    return report(bench, outcomes, kubectl, why, limits.started)


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Unwinds like Ctrl-C does, so the control plane and the client process are stopped on the way out.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
