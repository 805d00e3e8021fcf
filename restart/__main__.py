"""`make restart-plan STACK=<stack>`: which workloads the next `pulumi up` would re-inject, and why. Read-only.

With namespaces moving to ambient mode, it runs their move check first (`restart.ambient_check`), as `pulumi up`
will: the pull request shows what would refuse the move before it is merged.

It reads the stack's committed settings (`Pulumi.<stack>.yaml`), lists the cluster the kubeconfig names
(`--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`) with the restart's own lists and planner, and
prints the plan by namespace and reason. It never patches anything; the kubeconfig is read, never shown.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from restart.ambient_check import check_moves
from restart.ambient_findings import Finding
from restart.objects import WorkloadRef
from restart.plan import RestartPlan
from restart.request import RestartError, RestartRequest, name_list
from restart.run import plan_cluster
from settings.data_plane import DeclaredDataPlane
from settings.model import ConfigError, MeshSettings
from settings.stack import available_stacks, stack_settings

SHOWN_PER_NAMESPACE = 10
"""Names listed per namespace; a pull-request comment must stay readable for a cluster of thousands."""


def _by_namespace(refs: Iterable[WorkloadRef], why: dict[WorkloadRef, str]) -> list[str]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for ref in sorted(refs):
        # In code spans: a name read from the cluster cannot turn into Markdown (`WorkloadRef` checked it).
        grouped[ref.namespace].append(f"`{ref.kind}/{ref.name}`" + (f" ({why[ref]})" if why.get(ref) else ""))
    return [
        f"  - `{namespace}` ({len(names)}): {name_list(names, limit=SHOWN_PER_NAMESPACE)}"
        for namespace, names in grouped.items()
    ]


def render_moves(findings: Mapping[str, Sequence[Finding]], mesh: MeshSettings) -> list[str]:
    """The move check of the namespaces moving to ambient mode, as `pulumi up` will run it: each finding, and whether
    the namespace acknowledges it."""
    if not findings:
        return []
    lines = []
    for namespace, found in sorted(findings.items()):
        acknowledged = set(mesh.ambient[namespace].acknowledge) if namespace in mesh.ambient else set()
        blocking = [finding for finding in found if finding.key not in acknowledged]
        verdict = "refused until these are mended or acknowledged" if blocking else "no finding to block it"
        lines.append(f"  - `{namespace}`: {verdict}" + (":" if found else ""))
        lines += [
            f"    - `{finding.key}`{' (acknowledged)' if finding.key in acknowledged else ''}: {finding.advice}"
            for finding in found[:SHOWN_PER_NAMESPACE]
        ]
        if len(found) > SHOWN_PER_NAMESPACE:
            lines.append(f"    - and {len(found) - SHOWN_PER_NAMESPACE} more")
    return [f"- Moving to ambient mode ({len(findings)}), checked as `pulumi up` will check it:", *lines]


def render(stack: str, data_plane: DeclaredDataPlane, plan: RestartPlan, moves: Sequence[str] = ()) -> str:
    """The plan as Markdown: the moves to ambient mode and their check, counts, then the first names by namespace."""
    reasons = {ref: ", ".join(plan.reasons.get(ref, ())) for ref in (*plan.restart, *plan.recheck)}
    redirection = "the CNI plugin (istio-validation)" if data_plane.cni_enabled else "istio-init"
    planes = f"`{data_plane.default.proxy_image}` (revision default)"
    if (canary := data_plane.canary) is not None:
        on_canary = ", ".join(f"`{ns}`" for ns in sorted(data_plane.canary_namespaces)) or "no namespace yet"
        planes += f"; on the canary ({on_canary}): `{canary.proxy_image}` (revision {canary.revision})"
    if data_plane.ambient_namespaces:
        planes += f"; in ambient mode: {', '.join(f'`{ns}`' for ns in sorted(data_plane.ambient_namespaces))}"
    lines = [
        f"**Sidecar restart plan for `{stack}`**: pods should run {redirection} and {planes}.",
        "",
        *moves,
        f"- {len(plan.restart)} workloads to restart" + (":" if plan.restart else ""),
        *_by_namespace(plan.restart, reasons),
    ]
    if plan.recheck:
        lines += [f"- {len(plan.recheck)} restarted earlier for this change, still rolling out:"]
        lines += _by_namespace(plan.recheck, reasons)
    if plan.manual:
        lines += [f"- {len(plan.manual)} need a manual restart:"]
        lines += _by_namespace(plan.manual, {ref: str(reason) for ref, reason in plan.manual.items()})
    if plan.stranded:
        lines += [
            f"- {len(plan.stranded)} keep pods on a revision this update removes, and stop it until they are restarted "
            "or deleted by hand:"
        ]
        lines += _by_namespace(plan.stranded, {ref: ", ".join(revisions) for ref, revisions in plan.stranded.items()})
    counts: dict[str, int] = defaultdict(int)
    for reason in plan.skipped.values():
        counts[str(reason)] += 1
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items()))
    lines.append(f"- skipped: {skipped or 'none'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make restart-plan", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev", help=f"stack to plan ({', '.join(available_stacks())})")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    args = parser.parse_args(argv)
    path = Path(args.kubeconfig or os.environ.get("KUBECONFIG") or Path.home() / ".kube/config")
    try:
        settings = stack_settings(args.stack)
        kubeconfig = path.read_text()
        request = RestartRequest.of_settings(settings.istio, settings.restart, settings.mesh, kubeconfig)
        plan = plan_cluster(request)
        waypoints = {namespace: ambient.waypoint for namespace, ambient in settings.mesh.ambient.items()}
        moves = render_moves(check_moves(kubeconfig, waypoints), settings.mesh) if waypoints else []
    except (ConfigError, RestartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot read {exc.filename or path}: {exc.strerror}", file=sys.stderr)
        return 2
    sys.stdout.write(render(args.stack, request.data_plane, plan, moves))
    return 0


if __name__ == "__main__":
    sys.exit(main())
