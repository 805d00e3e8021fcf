"""The restarter's requests, as the API server counts them.

The total is API Priority and Fairness's dispatch counter for the flow schema `global-default`, which only the
`restarter` user reaches (every other client here is in `system:masters`, whose requests are exempt); the
breakdown is `apiserver_request_total` for the verbs and resources that no other client uses here.
"""

from __future__ import annotations

import re
import ssl
import urllib.request
from collections import Counter
from dataclasses import dataclass

from localkube.control_plane import ControlPlane

# The restarter is not in system:masters, so APF puts its requests here; every other client here is exempt.
RESTARTER_FLOW_SCHEMA = "global-default"
_SAMPLE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_WORKLOAD_RESOURCES = ("pods", "replicasets", "deployments", "statefulsets", "daemonsets")


@dataclass(frozen=True)
class Counters:
    """The API server's request counters at one moment."""

    restarter: float
    requests: Counter[tuple[str, str, str, str]]
    """`apiserver_request_total` by (verb, resource, subresource, scope)."""
    list_bytes: Counter[str]
    """`apiserver_response_sizes_sum` of the LISTs of pods and workloads, by resource: bytes the server answered."""


def read_counters(plane: ControlPlane) -> Counters:
    """The API server's counters now, from its /metrics (as admin)."""
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    request = urllib.request.Request(f"{plane.server}/metrics", headers={"Authorization": f"Bearer {plane.token()}"})
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return parse_counters(response.read().decode())


def parse_counters(text: str) -> Counters:
    restarter = 0.0
    requests: Counter[tuple[str, str, str, str]] = Counter()
    list_bytes: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.startswith(
            (
                "apiserver_request_total{",
                "apiserver_flowcontrol_dispatched_requests_total{",
                "apiserver_response_sizes_sum{",
            )
        ):
            continue
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        labels, value = dict(_LABEL.findall(sample[2])), float(sample[3])
        if sample[1] == "apiserver_request_total":
            key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""), labels["scope"])
            requests[key] += round(value)
        elif sample[1] == "apiserver_response_sizes_sum":
            resource_name = labels.get("resource", "")
            if labels.get("verb") == "LIST" and not labels.get("subresource") and resource_name in _WORKLOAD_RESOURCES:
                list_bytes[resource_name] += round(value)
        elif labels.get("flow_schema") == RESTARTER_FLOW_SCHEMA:
            restarter += value
    return Counters(restarter, requests, list_bytes)


def breakdown(before: Counters, after: Counters) -> tuple[int, Counter[str]]:
    """The restarter's requests between two readings: the total, and those of the kinds only a restarter makes here.

    PATCH and GET of Deployments, and LISTs of pods and workloads: the controller-manager and the played kubelets
    watch from informers (their watches end at random moments, so watches are left in "other"), update status
    subresources, and GET ReplicaSets. "other" is the rest: watches, and kubectl's discovery.
    """
    total = round(after.restarter - before.restarter)
    kinds: Counter[str] = Counter()
    for (verb, resource_name, subresource, _scope), value in (after.requests - before.requests).items():
        if subresource or resource_name not in _WORKLOAD_RESOURCES:
            continue
        if (verb in ("PATCH", "GET") and resource_name == "deployments") or verb == "LIST":
            kinds[f"{verb} {resource_name}"] += round(value)
    other = total - sum(kinds.values())
    if other:
        kinds["other"] = other
    return total, kinds


def listed_bytes(before: Counters, after: Counters) -> Counter[str]:
    """Bytes the API server answered to LISTs of pods and workloads between two readings, by resource."""
    return after.list_bytes - before.list_bytes


def describe_kinds(kinds: Counter[str]) -> str:
    """`PATCH deployments 500, LIST 7 (pods 1, replicasets 2, ...), other 6`."""
    by_verb: dict[str, dict[str, int]] = {}
    for name, count in kinds.items():
        verb, _, resource_name = name.partition(" ")
        by_verb.setdefault(verb, {})[resource_name] = count
    rank = {"PATCH": 0, "GET": 1, "LIST": 2}
    parts = []
    for verb in sorted(by_verb, key=lambda verb: rank.get(verb, len(rank))):
        counts = by_verb[verb]
        if verb == "other" and counts[""] < 0:
            # More of these kinds than the restarter's total: another client made some in the window.
            parts.append(f"{-counts['']:,} of these by another client")
        elif verb == "other":
            parts.append(f"other {counts['']:,}")
        elif len(counts) == 1:
            [(resource_name, count)] = counts.items()
            parts.append(f"{verb} {resource_name} {count:,}")
        else:
            listed = ", ".join(f"{resource_name} {count:,}" for resource_name, count in sorted(counts.items()))
            parts.append(f"{verb} {sum(counts.values()):,} ({listed})")
    return ", ".join(parts) or "none"
