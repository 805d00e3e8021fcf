"""Render a recorded program run as text (for people), JSON (for diffs) or Mermaid (for a picture)."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from pulumi.runtime import rpc

from offline.engine import UNKNOWN, ProgramRun, RecordedResource, is_secret_input
from offline.policy_check import pack_violations

SECRET_TEXT = "[secret]"
UNKNOWN_TEXT = "(known after apply)"
_SDK_NOISE = {"apiVersion", "kind"}
"""Keys the kubernetes SDK fills in by itself; they add nothing to a plan."""


def _urn_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


def _provider_name(reference: str) -> str:
    # A provider reference is "<urn>::<id>"; the resource name is the URN's last segment.
    return reference.rsplit("::", 2)[-2] if reference else ""


def printable(value: Any) -> Any:
    """Secrets become `[secret]`, values only the cloud knows become `(known after apply)`."""
    if is_secret_input(value):
        return SECRET_TEXT
    if value is UNKNOWN or value == rpc.UNKNOWN:
        return UNKNOWN_TEXT
    if isinstance(value, dict):
        return {k: printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire format carries every number as a double
    return value


def _inputs(resource: RecordedResource) -> dict[str, Any]:
    # `__provider` and friends are the engine's bookkeeping (the pickled dynamic provider), not settings.
    return {k: printable(v) for k, v in resource.inputs.items() if k not in _SDK_NOISE and not k.startswith("__")}


class _ReadableDumper(yaml.SafeDumper):
    """YAML with multi-line strings (manifests, scripts) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ReadableDumper.add_representer(str, _represent_str)


def _yaml(value: Any) -> str:
    return yaml.dump(value, Dumper=_ReadableDumper, sort_keys=True, default_flow_style=False, width=100)


def _outputs(run: ProgramRun) -> dict[str, Any]:
    return {
        name: SECRET_TEXT if name in run.secret_outputs else printable(value)
        for name, value in sorted(run.outputs.items())
    }


def as_json(run: ProgramRun) -> str:
    names = {r.urn: r.name for r in run.resources}
    resources = [
        {
            "type": r.type,
            "name": r.name,
            "parent": names.get(r.parent),
            "provider": _provider_name(r.provider) or None,
            "dependsOn": sorted(names.get(urn, _urn_name(urn)) for urn in r.dependencies),
            "ignoreChanges": r.options.get("ignoreChanges") or [],
            "inputs": _inputs(r),
        }
        for r in sorted(run.resources, key=lambda r: r.urn)
    ]
    policy = [{"level": v.level, "policy": v.policy, "message": v.message} for v in pack_violations(run)]
    document = {"stack": run.stack, "resources": resources, "outputs": _outputs(run), "policyViolations": policy}
    return json.dumps(document, indent=2, sort_keys=True)


def in_dependency_order(siblings: list[RecordedResource], run: ProgramRun) -> list[RecordedResource]:
    """Siblings in the order they are applied (what they or their children need first), ties by name.

    Registration order varies from run to run (the SDK registers asynchronously); this order does not,
    so two plans of the same program are byte-identical.
    """
    by_urn = {r.urn: r for r in run.resources}
    sibling_urns = {r.urn for r in siblings}

    def sibling_of(urn: str) -> str | None:
        while urn and urn not in sibling_urns:
            urn = by_urn[urn].parent if urn in by_urn else ""
        return urn or None

    def needs(resource: RecordedResource) -> set[str]:
        subtree = [r for r in run.resources if sibling_of(r.urn) == resource.urn]
        wanted = {d for r in subtree for d in r.dependencies} | {
            r.provider.rsplit("::", 1)[0] for r in subtree if r.provider
        }
        return {s for s in map(sibling_of, wanted) if s and s != resource.urn}

    pending = sorted(siblings, key=lambda r: (r.name, r.type))  # names can repeat across types
    requirements = {r.urn: needs(r) for r in pending}
    done: set[str] = set()
    ordered: list[RecordedResource] = []
    while pending:
        # A Pulumi program has no dependency cycle; should one appear, fall back to name order.
        ready = next((r for r in pending if requirements[r.urn] <= done), pending[0])
        pending.remove(ready)
        done.add(ready.urn)
        ordered.append(ready)
    return ordered


def as_text(run: ProgramRun) -> str:
    lines = [
        f"aks-istio: offline plan of stack '{run.stack}' ({len(run.resources)} resources)",
        "Rendered by the program itself under Pulumi's mocks: no cloud or cluster was contacted.",
        f"Values that Azure or Kubernetes compute are unknown offline and shown as {UNKNOWN_TEXT};",
        f"secrets are shown as {SECRET_TEXT}.",
        "",
    ]
    children: dict[str, list[RecordedResource]] = {}
    for resource in run.resources:
        children.setdefault(resource.parent, []).append(resource)
    known = {r.urn for r in run.resources}
    roots = in_dependency_order([r for r in run.resources if r.parent not in known], run)

    def emit(resource: RecordedResource, depth: int) -> None:
        pad = "    " * depth
        lines.append(f"{pad}+ {resource.type}  {resource.name}")
        details: dict[str, Any] = {}
        if resource.provider and not resource.type.startswith("pulumi:providers:"):
            details["provider"] = _provider_name(resource.provider)
        if resource.dependencies:
            details["dependsOn"] = sorted(_urn_name(urn) for urn in resource.dependencies)
        if resource.options.get("ignoreChanges"):
            details["ignoreChanges"] = resource.options["ignoreChanges"]
        inputs = _inputs(resource)
        if resource.custom and inputs:
            details["inputs"] = inputs
        if details:
            body = _yaml(details)
            lines.extend(f"{pad}      {line}" for line in body.rstrip().splitlines())
        for child in in_dependency_order(children.get(resource.urn, []), run):
            emit(child, depth + 1)

    for root in roots:
        emit(root, 0)
    lines += ["", "Outputs:"]
    body = _yaml(_outputs(run))
    lines.extend(f"    {line}" for line in body.rstrip().splitlines())
    lines += ["", "Policy pack `policy/` (as `pulumi preview --policy-pack policy` evaluates it):"]
    violations = pack_violations(run)
    lines += [f"    {v.level}: {v.policy}: {v.message}" for v in violations] or ["    every rule passes"]
    if any(v.level == "mandatory" for v in violations):
        lines.append(
            "    A mandatory violation blocks `pulumi preview` and `pulumi up` where the pack is attached (CI)."
        )
    return "\n".join(lines) + "\n"


def as_mermaid(run: ProgramRun) -> str:
    """The resource graph; sorted by name, so that it is the same for every run (registration order is not)."""

    def node(urn: str) -> str:
        return "n" + re.sub(r"[^A-Za-z0-9]", "_", _urn_name(urn))

    lines = ["graph TD"]
    resources = sorted(run.resources, key=lambda r: (r.name, r.type))
    known = {r.urn for r in resources}
    for resource in resources:
        short_type = resource.type.split(":")[-1]
        lines.append(f'    {node(resource.urn)}["{resource.name}<br/><small>{short_type}</small>"]')
    for resource in resources:
        if resource.parent in known:
            lines.append(f"    {node(resource.parent)} --> {node(resource.urn)}")
        for urn in sorted(set(resource.dependencies)):
            if urn in known and urn != resource.parent:
                lines.append(f"    {node(urn)} -. dependsOn .-> {node(resource.urn)}")
    return "\n".join(lines) + "\n"


def as_istio_operator(run: ProgramRun) -> str:
    manifest = run.outputs.get("istioOperatorManifest")
    if not isinstance(manifest, str):
        raise SystemExit("this stack exports no istioOperatorManifest")
    return manifest


RENDERERS = {"text": as_text, "json": as_json, "mermaid": as_mermaid, "istio-operator": as_istio_operator}
