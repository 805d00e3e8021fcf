"""What a restart reports: its plan before it starts, and its outcome (or why it stops) when it ends.

The outcome becomes the resource's outputs, grouped by reason and bounded (`summarize`), whatever the cluster's
size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from restart.objects import WorkloadRef
from restart.plan import RestartPlan, SkipReason
from restart.request import RestartError, RestartRequest, name_list
from restart.window import Progress, WindowResult
from settings.data_plane import DeclaredDataPlane


@dataclass(frozen=True)
class RestartOutcome:
    fingerprint: str
    restarted_at: str
    restarted: tuple[str, ...]
    restart_reasons: dict[str, list[str]]
    """`{reason: [workloads]}`: why each restarted workload was re-injected (`redirection`, `proxyVersion`, ...)."""
    skipped: dict[str, list[str]]
    manual_restart: dict[str, list[str]]


def group_by_reason(entries: Mapping[WorkloadRef, StrEnum | Iterable[StrEnum]]) -> dict[str, list[str]]:
    """`{reason: ["Kind/namespace/name", ...]}`, sorted; a workload with two reasons is under both."""
    grouped: dict[str, list[str]] = {}
    for ref in sorted(entries):
        reasons = entries[ref]
        for reason in (reasons,) if isinstance(reasons, StrEnum) else reasons:
            grouped.setdefault(str(reason), []).append(str(ref))
    return dict(sorted(grouped.items()))


SAMPLE_SIZE = 50
"""Names kept per reason in the `skipped` output: `alreadyMatching` alone can name every workload of the mesh."""


def summarize(grouped: Mapping[str, list[str]], limit: int = SAMPLE_SIZE) -> dict[str, dict[str, Any]]:
    """`{reason: {"count": n, "workloads": [the first `limit` names]}}`: bounded, whatever the cluster's size."""
    return {reason: {"count": len(names), "workloads": list(names[:limit])} for reason, names in grouped.items()}


def describe(data_plane: DeclaredDataPlane) -> str:
    """The declared data plane in one line, for the log and `make restart-plan`."""
    redirection = "the CNI plugin (istio-validation)" if data_plane.cni_enabled else "istio-init"
    default = data_plane.default
    text = f"{redirection}; default {default.version or 'revision'}: {default.proxy_image or 'proxy not compared'}"
    if data_plane.canary is not None:
        canary = data_plane.canary
        namespaces = ", ".join(sorted(data_plane.canary_namespaces)) or "no namespace yet"
        text += f"; canary {canary.version} (revision {canary.revision}): {canary.proxy_image} for {namespaces}"
    return text


def report_plan(request: RestartRequest, plan: RestartPlan, progress: Progress) -> None:
    progress(
        f"declared: {describe(request.data_plane)} (fingerprint {plan.fingerprint}): "
        f"{len(plan.restart)} workloads to restart, {len(plan.skipped)} skipped, "
        f"{len(plan.manual)} need a manual restart"
    )
    for ref, reason in sorted(plan.manual.items()):
        progress(f"needs a manual restart ({reason}): {ref}")
    if plan.recheck:
        action = "waiting for their rollouts" if request.wait_for_rollout else "not waiting (waitForRollout is off)"
        progress(
            f"{len(plan.recheck)} workloads were restarted for this setting by an earlier run and still run "
            f"pods other than the declared ones; not restarting them again, {action}: {name_list(plan.recheck)}"
        )


def _refuse_stranded(plan: RestartPlan, restarted: tuple[str, ...]) -> None:
    """Fail, so the update stops before Pulumi deletes a control plane that pods still use."""
    revisions = sorted({revision for found in plan.stranded.values() for revision in found})
    why = {**{ref: str(reason) for ref, reason in plan.manual.items()}, **{r: str(s) for r, s in plan.skipped.items()}}
    described = name_list(f"{ref} ({why.get(ref, 'not restarted')})" for ref in plan.stranded)
    done = f"restarted {len(restarted)} workloads ({name_list(restarted)}), but " if restarted else ""
    raise RestartError(
        f"{done}{len(plan.stranded)} workloads still run pods on revision {', '.join(revisions)}, which no declared "
        f"control plane has, and this program cannot restart them: {described}. Restart or delete them by hand, "
        "then run `pulumi up` again: until it succeeds, the control plane they use is not deleted",
        restarted,
    )


def outcome(request: RestartRequest, plan: RestartPlan, rolled: WindowResult, restarted_at: str) -> RestartOutcome:
    restarted = tuple(str(ref) for ref in sorted(rolled.restarted))
    if plan.stranded:
        _refuse_stranded(plan, restarted)
    skipped: dict[WorkloadRef, SkipReason] = dict(plan.skipped)
    skipped.update(dict.fromkeys(rolled.deleted, SkipReason.DELETED_BEFORE_RESTART))
    recheck_reason = (
        SkipReason.ALREADY_RESTARTED if request.wait_for_rollout else SkipReason.RESTARTED_BUT_STILL_MISMATCHED
    )
    skipped.update(dict.fromkeys(plan.recheck, recheck_reason))
    return RestartOutcome(
        fingerprint=plan.fingerprint,
        restarted_at=restarted_at,
        restarted=restarted,
        restart_reasons=group_by_reason({ref: plan.reasons.get(ref, ()) for ref in rolled.restarted}),
        skipped=group_by_reason(skipped),
        manual_restart=group_by_reason(plan.manual),
    )
