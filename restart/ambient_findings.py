"""What stops working silently when a namespace moves from sidecars to ambient mode, read from its Istio policy objects.

Istio's migration guide ("Migrating from sidecar to ambient") lists what ztunnel, the node proxy that replaces the
sidecars, does not do: L7 authorization (a policy with L7 attributes is enforced as deny-all), PeerAuthentication's
`DISABLE`, EnvoyFilters, and, without a waypoint, VirtualService routes and DestinationRule subsets and traffic
policies. `ambient_findings` reads the objects of one namespace and of the root namespace (mesh-wide ones) and names
each such object with what breaks and what to do; `refusal` is the message that refuses the move while a finding is
not acknowledged in the namespace's settings.

Pure functions over the objects as the API returns them (camelCase JSON dicts). A tenant writes these objects, so
nothing here trusts their shape: what is not understood is skipped, and names are shown only through
`restart.objects.readable`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from restart.objects import readable
from settings.model import FINDING_KINDS, ISTIO_NAMESPACE

AUTHORIZATION_POLICY = "AuthorizationPolicy"
PEER_AUTHENTICATION = "PeerAuthentication"
ENVOY_FILTER = "EnvoyFilter"
VIRTUAL_SERVICE = "VirtualService"
DESTINATION_RULE = "DestinationRule"
POLICY_KINDS = FINDING_KINDS
"""The kinds the check reads, in the order findings are listed (the kinds an acknowledgement may name)."""

SHOWN_FINDINGS = 20
"""Findings a refusal names; the rest are counted. A pull request's comment must stay readable."""

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
"""Kubernetes' object names (a DNS-1123 subdomain), as `restart.objects` checks them."""
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,62}")
"""How an attribute a `when` condition reads may be shown (`request.headers`); anything else shows as `when`."""

_L4_OPERATION = frozenset({"ports", "notPorts"})
"""An `operation`'s fields ztunnel enforces; every other one (hosts, methods, paths and their `not` forms) is L7."""
_L4_SOURCE = frozenset(
    {"principals", "notPrincipals", "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks", "serviceAccounts",
     "notServiceAccounts", "trustDomains", "notTrustDomains"}
)  # fmt: skip
"""A `source`'s fields ztunnel enforces (identities, namespaces, the peer's address); `requestPrincipals` and
`remoteIpBlocks` (read from the request: a JWT, X-Forwarded-For) and their `not` forms are L7."""
_L4_CONDITIONS = frozenset({"source.ip", "source.namespace", "source.principal", "destination.ip", "destination.port"})
"""The `when` keys ztunnel enforces; `request.*`, `remote.ip`, `connection.sni` and `experimental.*` need a proxy
that reads the request."""
_UNSUPPORTED_ACTIONS = ("CUSTOM", "AUDIT")
_DISABLE = "DISABLE"
_GATEWAY_CONTEXT = "GATEWAY"
_MESH_GATEWAY = "mesh"


@dataclass(frozen=True, order=True)
class Finding:
    """One Istio object that does not work as it does today once the namespace is in ambient mode."""

    kind: str
    """One of `POLICY_KINDS`."""
    namespace: str
    """The object's namespace: the moving namespace, or the root namespace for a mesh-wide object."""
    name: str
    problem: str
    """What silently breaks once the namespace is ambient: one sentence, without its final period."""
    remedy: str
    """What to do: one sentence, without its final period."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "namespace", readable(self.namespace, _NAME))
        object.__setattr__(self, "name", readable(self.name, _NAME))

    @property
    def key(self) -> str:
        """`Kind/namespace/name`: what a team lists under the namespace's `acknowledge` to accept the finding."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def advice(self) -> str:
        """What breaks and what to do, as sentences."""
        return f"{self.problem}. {self.remedy[:1].upper()}{self.remedy[1:]}."

    def __str__(self) -> str:
        return f"{self.key}: {self.advice}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: Any) -> Iterator[Mapping[str, Any]]:
    """The dicts of a list; anything else in it, or a value that is no list, is skipped."""
    if isinstance(value, list | tuple):
        yield from (item for item in value if isinstance(item, Mapping))


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list | tuple) else []


def _filled(value: Any) -> bool:
    """A field that says something: a non-empty list, dict or string."""
    return isinstance(value, list | tuple | Mapping | str) and len(value) > 0


@dataclass(frozen=True)
class _Object:
    namespace: str
    name: str
    spec: Mapping[str, Any]


def _objects(items: Iterable[Any], namespaces: Collection[str]) -> Iterator[_Object]:
    """The well-formed objects in `namespaces`: dict metadata with a string name and namespace, a dict spec or none."""
    if not isinstance(items, Iterable) or isinstance(items, str | bytes | Mapping):
        return
    for item in items:
        if not isinstance(item, Mapping):
            continue
        meta = item.get("metadata")
        spec = item.get("spec")
        if not isinstance(meta, Mapping) or not (spec is None or isinstance(spec, Mapping)):
            continue
        name, namespace = meta.get("name"), meta.get("namespace")
        if isinstance(name, str) and name and isinstance(namespace, str) and namespace in namespaces:
            yield _Object(namespace, name, spec or {})


def _targets_a_waypoint(spec: Mapping[str, Any]) -> bool:
    """`targetRef(s)` bind a policy to a waypoint, a Service or a gateway: ztunnel does not enforce it."""
    return _filled(spec.get("targetRefs")) or _filled(spec.get("targetRef"))


def _has_selector(spec: Mapping[str, Any]) -> bool:
    return _filled(_mapping(spec.get("selector")).get("matchLabels"))


def _l7_attributes(spec: Mapping[str, Any]) -> list[str]:
    """The L7 attributes an AuthorizationPolicy's rules read (field names, and the attributes of `when` keys)."""
    found: set[str] = set()
    for rule in _mappings(spec.get("rules")):
        for to in _mappings(rule.get("to")):
            found.update(_fields_beyond(_mapping(to.get("operation")), _L4_OPERATION))
        for source_of in _mappings(rule.get("from")):
            found.update(_fields_beyond(_mapping(source_of.get("source")), _L4_SOURCE))
        for condition in _mappings(rule.get("when")):
            key = condition.get("key")
            if isinstance(key, str) and key not in _L4_CONDITIONS:
                attribute = key.split("[", 1)[0]
                found.add(f"when {attribute}" if _ATTRIBUTE.fullmatch(attribute) else "when")
    # Only names read from our own vocabulary or checked above reach a message.
    return sorted(name if _ATTRIBUTE.fullmatch(name.removeprefix("when ")) else "an unknown field" for name in found)


def _fields_beyond(match: Mapping[str, Any], l4_fields: Collection[str]) -> Iterator[str]:
    """The set fields of a rule's `operation` or `source` that are not among its L4 ones."""
    return (
        field for field, value in match.items() if isinstance(field, str) and field not in l4_fields and _filled(value)
    )


def _waypoint_remedy(waypoint: str, what: str) -> str:
    if waypoint:
        return f"{what} with `targetRefs` to the waypoint `{readable(waypoint, _NAME)}`"
    return f"declare a waypoint for the namespace and {what} with `targetRefs` to it"


def _authorization_policies(items: Iterable[Any], scope: Collection[str], waypoint: str) -> Iterator[Finding]:
    remedy = (
        _waypoint_remedy(waypoint, "rewrite it")
        + ", and keep only L4 rules (ports, principals, namespaces, IP blocks) in selector policies"
    )
    for policy in _objects(items, scope):
        # In the namespace, a selector policy or a namespace-wide one (an empty selector selects every workload);
        # in the root namespace, every one without targetRefs applies mesh-wide (a selector there matches in
        # every namespace). Policies with targetRefs are the waypoint's (or a Service's): ztunnel leaves them.
        if _targets_a_waypoint(policy.spec):
            continue
        action = policy.spec.get("action")
        if action in _UNSUPPORTED_ACTIONS:
            problem = (
                f"ztunnel cannot run its {action} action and enforces it as deny-all for the workloads it applies to"
            )
        elif attributes := _l7_attributes(policy.spec):
            problem = (
                f"ztunnel cannot read its L7 attributes ({', '.join(attributes)}) and enforces it as deny-all for the "
                "workloads it applies to"
            )
        else:
            continue
        yield Finding(AUTHORIZATION_POLICY, policy.namespace, policy.name, problem, remedy)


def _disables_mtls(spec: Mapping[str, Any]) -> bool:
    if _mapping(spec.get("mtls")).get("mode") == _DISABLE:
        return True
    return any(_mapping(port).get("mode") == _DISABLE for port in _mapping(spec.get("portLevelMtls")).values())


def _peer_authentications(items: Iterable[Any], namespace: str, root: str) -> Iterator[Finding]:
    for policy in _objects(items, {namespace, root}):
        # A selector in the root namespace selects workloads of the root namespace only: mesh-wide is without one.
        if policy.namespace != namespace and _has_selector(policy.spec):
            continue
        if _disables_mtls(policy.spec):
            yield Finding(
                PEER_AUTHENTICATION,
                policy.namespace,
                policy.name,
                "ambient mode does not honour its DISABLE mode: ztunnel keeps mTLS, and where a STRICT policy "
                "applies it refuses the plaintext callers this exception lets in",
                "remove it, or keep the workloads that need plaintext out of ambient mode with the label "
                "`istio.io/dataplane-mode: none` on their pods",
            )


def _gateway_only(spec: Mapping[str, Any]) -> bool:
    """Every patch of a root-namespace EnvoyFilter matches gateways alone (ingress and egress gateways keep Envoy)."""
    patches = spec.get("configPatches")
    if not isinstance(patches, list | tuple):
        return False
    return all(_mapping(_mapping(patch).get("match")).get("context") == _GATEWAY_CONTEXT for patch in patches)


def _envoy_filters(items: Iterable[Any], namespace: str, root: str) -> Iterator[Finding]:
    for envoy_filter in _objects(items, {namespace, root}):
        if envoy_filter.namespace != namespace and _gateway_only(envoy_filter.spec):
            continue
        yield Finding(
            ENVOY_FILTER,
            envoy_filter.namespace,
            envoy_filter.name,
            "ztunnel does not apply EnvoyFilters and waypoints ignore them: what it patches stops once the namespace "
            "is ambient",
            "replace it with Istio's APIs or a WasmPlugin on the waypoint, or keep the namespace on sidecars",
        )


def _routes_mesh_traffic(spec: Mapping[str, Any]) -> bool:
    """HTTP routes bound to the mesh: no `gateways` (the mesh is the default), or `mesh` among them."""
    if not _filled(spec.get("http")) or not isinstance(spec.get("http"), list | tuple):
        return False
    gateways = spec.get("gateways")
    return not _filled(gateways) or _MESH_GATEWAY in _strings(gateways)


def _routing(items: Mapping[str, Iterable[Any]], namespace: str) -> Iterator[Finding]:
    for service in _objects(items.get(VIRTUAL_SERVICE, ()), {namespace}):
        if _routes_mesh_traffic(service.spec):
            yield Finding(
                VIRTUAL_SERVICE,
                service.namespace,
                service.name,
                "ztunnel routes at L4 only: without a waypoint nothing applies its HTTP routes in ambient mode",
                "declare a waypoint for the namespace (VirtualService on a waypoint is Alpha: prefer an HTTPRoute)",
            )
    for rule in _objects(items.get(DESTINATION_RULE, ()), {namespace}):
        subsets, policy = rule.spec.get("subsets"), rule.spec.get("trafficPolicy")
        if (isinstance(subsets, list | tuple) and subsets) or (isinstance(policy, Mapping) and policy):
            yield Finding(
                DESTINATION_RULE,
                rule.namespace,
                rule.name,
                "ztunnel balances at L4 only: without a waypoint its subsets and traffic policy do not apply in "
                "ambient mode",
                "declare a waypoint for the namespace (on a waypoint, each subset needs a Service of its own)",
            )


def ambient_findings(
    namespace: str,
    *,
    waypoint: str,
    objects: Mapping[str, Iterable[Mapping[str, Any]]],
    root_namespace: str = ISTIO_NAMESPACE,
) -> list[Finding]:
    """What silently breaks when `namespace` moves to ambient mode, sorted and without repeats.

    `objects`: for each kind of `POLICY_KINDS`, its objects in `namespace` and in `root_namespace` (others are
    ignored); `waypoint`: the name of the waypoint the namespace declares, or "" for none.
    """
    if not isinstance(objects, Mapping):
        return []
    found: set[Finding] = set()
    found.update(_authorization_policies(objects.get(AUTHORIZATION_POLICY, ()), {namespace, root_namespace}, waypoint))
    found.update(_peer_authentications(objects.get(PEER_AUTHENTICATION, ()), namespace, root_namespace))
    found.update(_envoy_filters(objects.get(ENVOY_FILTER, ()), namespace, root_namespace))
    if not waypoint:
        found.update(_routing(objects, namespace))
    order = {kind: index for index, kind in enumerate(POLICY_KINDS)}
    return sorted(found, key=lambda finding: (order[finding.kind], finding.namespace, finding.name, finding.problem))


def refusal(
    findings_by_namespace: Mapping[str, Sequence[Finding]], acknowledged: Mapping[str, Collection[str]]
) -> str | None:
    """The message that refuses moving the namespaces to ambient mode, or None when every finding is acknowledged.

    `findings_by_namespace`: the findings of each moving namespace; `acknowledged`: the finding keys each namespace's
    settings accept.
    """
    open_findings = [
        (namespace, finding)
        for namespace in sorted(findings_by_namespace)
        for finding in findings_by_namespace[namespace]
        if finding.key not in acknowledged.get(namespace, ())
    ]
    if not open_findings:
        return None
    namespaces = sorted({readable(namespace, _NAME) for namespace, _ in open_findings})
    count = len(open_findings)
    lines = [
        f"ambient mode refused for {', '.join(f'`{ns}`' for ns in namespaces)}: {count} Istio "
        f"object{'s' if count != 1 else ''} would stop working as they do, silently, once the pods lose their "
        "sidecars. No namespace label was changed.",
    ]
    lines += [f"- in `{readable(ns, _NAME)}`: {finding}" for ns, finding in open_findings[:SHOWN_FINDINGS]]
    if count > SHOWN_FINDINGS:
        lines.append(f"- and {count - SHOWN_FINDINGS} more")
    example = open_findings[0][1].key
    lines.append(
        "Fix each one, or to move anyway, list its key (the `Kind/namespace/name` that starts each line, such as "
        f"`{example}`) under the namespace's `acknowledge` in `aks-istio:mesh`."
    )
    return "\n".join(lines)
