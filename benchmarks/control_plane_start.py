"""Start time and memory of the local control plane (`localkube`): etcd, kube-apiserver, kube-controller-manager.

Starts the control plane `--starts` times (default 3), one after the other. For each start: the seconds until the
API server is ready and the controller-manager has created the default ServiceAccount (what `ControlPlane` waits
for), then, after `--idle` seconds more, the resident memory (RSS) of each component. Prints the medians as a
Markdown table.

It runs localkube's binaries: the v1.36 bundle, or those the `AKS_ISTIO_*` variables name, which is how an older
Kubernetes is measured (docs/benchmarks.md says how).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from kubernetes import client

from localkube.binaries import find_binaries
from localkube.control_plane import ControlPlane

DEFAULT_STARTS = 3
DEFAULT_IDLE_SECONDS = 10.0
_MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure_start(idle_seconds: float) -> tuple[str, float, dict[str, int]]:
    """One start: the Kubernetes version, the seconds to start, and each component's RSS once idle."""
    binaries, missing = find_binaries()
    if binaries is None:
        sys.exit(f"no control plane: {missing}")
    with ControlPlane(binaries) as plane:
        with plane.api_client() as api:
            version = str(client.VersionApi(api).get_code().git_version)
        time.sleep(idle_seconds)
        return version, plane.startup_seconds, {process.name: rss_bytes(process.pid) for process in plane.processes}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--starts", type=int, default=DEFAULT_STARTS, help="how many starts (%(default)s)")
    parser.add_argument(
        "--idle", type=float, default=DEFAULT_IDLE_SECONDS, help="seconds after the start (%(default)s)"
    )
    args = parser.parse_args()
    if args.starts < 1:
        parser.error("--starts must be at least 1")
    starts = [measure_start(args.idle) for _ in range(args.starts)]
    version = starts[0][0]
    components = list(starts[0][2])
    print(f"### Local control plane, Kubernetes {version}: median of {len(starts)} starts")
    print()
    print("| Start | " + " | ".join(f"{name} RSS" for name in components) + " |")
    print("|---|" + "---|" * len(components))

    def mib(value: float) -> str:
        return f"{value / _MIB:.0f} MiB"

    for index, (_version, seconds, rss) in enumerate(starts, 1):
        print(f"| {index}: {seconds:.2f} s | " + " | ".join(mib(rss[name]) for name in components) + " |")
    medians = [statistics.median(rss[name] for _v, _s, rss in starts) for name in components]
    median_start = statistics.median(seconds for _v, seconds, _r in starts)
    print(f"| median: {median_start:.2f} s | " + " | ".join(mib(value) for value in medians) + " |")
    print()
    print(
        f"Start: until the API server is ready and the controller-manager has created the default ServiceAccount. "
        f"RSS: {args.idle:.0f} s after that, idle."
    )


if __name__ == "__main__":
    main()
