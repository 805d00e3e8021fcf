"""Render a recorded program run as text (for people), JSON (for diffs) or Mermaid (for a picture)."""

from __future__ import annotations

import heapq
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


class DependencyOrder:
    """The order in which each resource's children (and the roots) are applied, computed once for a whole run.

    Registration order varies from run to run (the SDK registers asynchronously); this order does not, so two
    plans of the same program are byte-identical.

    A sibling needs another when something in its subtree depends on something in the other's (or uses it as its
    provider). Such an edge matters only below the two resources' lowest common ancestor, so each edge is placed
    once, at that ancestor's children: the work grows with the resources and their dependencies, not with their
    product.
    """

    def __init__(self, run: ProgramRun) -> None:
        by_urn = {r.urn: r for r in run.resources}
        self._children: dict[str, list[RecordedResource]] = {}
        for resource in by_urn.values():
            # A parent outside the run (the stack) makes a root: the roots are the children of "".
            parent = resource.parent if resource.parent in by_urn else ""
            self._children.setdefault(parent, []).append(resource)
        self._parent = {urn: (r.parent if r.parent in by_urn else "") for urn, r in by_urn.items()}
        self._depth: dict[str, int] = {}
        self._needs: dict[str, set[str]] = {urn: set() for urn in by_urn}
        for resource in by_urn.values():
            wanted = [*resource.dependencies]
            if resource.provider:
                wanted.append(resource.provider.rsplit("::", 1)[0])
            for urn in wanted:
                if urn in by_urn:
                    self._place(resource.urn, urn)
        self._ordered: dict[str, list[RecordedResource]] = {}

    def _depth_of(self, urn: str) -> int:
        chain = []
        while urn and urn not in self._depth:
            chain.append(urn)
            urn = self._parent[urn]
        depth = self._depth.get(urn, 0)
        for item in reversed(chain):
            depth += 1
            self._depth[item] = depth
        return depth

    def _place(self, dependent: str, dependency: str) -> None:
        """The sibling holding `dependent` needs the sibling holding `dependency`, below their common parent."""
        a, b = dependent, dependency
        depth_a, depth_b = self._depth_of(a), self._depth_of(b)
        while depth_a > depth_b:
            a, depth_a = self._parent[a], depth_a - 1
        while depth_b > depth_a:
            b, depth_b = self._parent[b], depth_b - 1
        if a == b:
            return  # one contains the other: no order between siblings follows
        while self._parent[a] != self._parent[b]:
            a, b = self._parent[a], self._parent[b]
        self._needs[a].add(b)

    def children(self, parent: str) -> list[RecordedResource]:
        """The children of `parent` (`""` for the roots) in the order they are applied, ties by name."""
        if parent not in self._ordered:
            self._ordered[parent] = self._order(self._children.get(parent, []))
        return self._ordered[parent]

    def _order(self, siblings: list[RecordedResource]) -> list[RecordedResource]:
        # Each step takes the first sibling in name order whose needs are met; should a cycle appear (a Pulumi
        # program has none), the first one left in name order.
        pending = sorted(siblings, key=lambda r: (r.name, r.type))  # names can repeat across types
        position = {r.urn: index for index, r in enumerate(pending)}
        unmet = {r.urn: len(self._needs[r.urn]) for r in pending}
        needed_by: dict[str, list[str]] = {}
        for resource in pending:
            for urn in self._needs[resource.urn]:
                needed_by.setdefault(urn, []).append(resource.urn)
        ready = [position[urn] for urn, count in unmet.items() if count == 0]
        heapq.heapify(ready)
        done: set[str] = set()
        ordered: list[RecordedResource] = []
        first_left = 0
        while len(ordered) < len(pending):
            while ready and pending[ready[0]].urn in done:
                heapq.heappop(ready)
            if ready:
                chosen = pending[heapq.heappop(ready)]
            else:
                while pending[first_left].urn in done:
                    first_left += 1
                chosen = pending[first_left]
            done.add(chosen.urn)
            ordered.append(chosen)
            for urn in needed_by.get(chosen.urn, []):
                unmet[urn] -= 1
                if unmet[urn] == 0 and urn not in done:
                    heapq.heappush(ready, position[urn])
        return ordered


def as_text(run: ProgramRun) -> str:
    lines = [
        f"aks-istio: offline plan of stack '{run.stack}' ({len(run.resources)} resources)",
        "Rendered by the program itself under Pulumi's mocks: no cloud or cluster was contacted.",
        f"Values that Azure or Kubernetes compute are unknown offline and shown as {UNKNOWN_TEXT};",
        f"secrets are shown as {SECRET_TEXT}.",
        "",
    ]
    order = DependencyOrder(run)

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
        for child in order.children(resource.urn):
            emit(child, depth + 1)

    for root in order.children(""):
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
