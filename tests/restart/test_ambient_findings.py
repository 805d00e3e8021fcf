"""What breaks silently when a namespace moves to ambient mode, read from its Istio objects; the refusal's message."""

from __future__ import annotations

from typing import Any

import pytest

from restart.ambient_findings import (
    AUTHORIZATION_POLICY,
    DESTINATION_RULE,
    ENVOY_FILTER,
    PEER_AUTHENTICATION,
    SHOWN_FINDINGS,
    VIRTUAL_SERVICE,
    Finding,
    ambient_findings,
    refusal,
)

NS = "shop"
ROOT = "istio-system"
SELECTOR = {"matchLabels": {"app": "web"}}


def obj(name: str, spec: Any, namespace: str = NS) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def keys(kind: str, *objects: dict[str, Any], waypoint: str = "", namespace: str = NS) -> list[str]:
    return [f.key for f in ambient_findings(namespace, waypoint=waypoint, objects={kind: list(objects)})]


def one(kind: str, item: dict[str, Any], waypoint: str = "") -> Finding:
    (finding,) = ambient_findings(NS, waypoint=waypoint, objects={kind: [item]})
    return finding


def policy(name: str, namespace: str = NS, **spec: Any) -> dict[str, Any]:
    return obj(name, spec, namespace)


def rule(**parts: Any) -> list[dict[str, Any]]:
    return [parts]


# AuthorizationPolicy


@pytest.mark.parametrize(
    "rules",
    [
        rule(to=[{"operation": {"methods": ["GET"]}}]),
        rule(to=[{"operation": {"ports": ["8080"], "paths": ["/admin"]}}]),
        rule(to=[{"operation": {"notHosts": ["a.example"]}}]),
        rule(to=[{"operation": {"notMethods": ["DELETE"]}}]),
        rule(to=[{"operation": {"notPaths": ["/x"]}}]),
        rule(to=[{"operation": {"hosts": ["a.example"]}}]),
        rule(**{"from": [{"source": {"requestPrincipals": ["issuer/subject"]}}]}),
        rule(**{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}),
        rule(**{"from": [{"source": {"remoteIpBlocks": ["10.0.0.0/8"]}}]}),
        rule(when=[{"key": "request.headers[x-user]", "values": ["admin"]}]),
        rule(when=[{"key": "request.auth.claims[groups]", "values": ["ops"]}]),
    ],
)
def test_an_l7_selector_policy_is_a_finding_that_names_its_attributes(rules: list[dict[str, Any]]) -> None:
    finding = one(AUTHORIZATION_POLICY, policy("allow-get", selector=SELECTOR, action="ALLOW", rules=rules))
    assert finding.key == "AuthorizationPolicy/shop/allow-get"
    assert "deny-all" in finding.problem and "L7 attributes" in finding.problem
    assert "targetRefs" in finding.remedy and "L4 rules" in finding.remedy


def test_the_l7_attributes_are_named_in_the_problem() -> None:
    rules = [
        {"to": [{"operation": {"methods": ["GET"], "ports": ["80"]}}], "when": [{"key": "request.headers[x-a]"}]},
        {"from": [{"source": {"requestPrincipals": ["*"], "principals": ["cluster.local/ns/a/sa/b"]}}]},
    ]
    finding = one(AUTHORIZATION_POLICY, policy("p", selector=SELECTOR, action="DENY", rules=rules))
    assert "(methods, requestPrincipals, when request.headers)" in finding.problem


@pytest.mark.parametrize("action", ["CUSTOM", "AUDIT"])
def test_custom_and_audit_actions_are_findings_even_with_l4_rules(action: str) -> None:
    item = policy("ext-authz", selector=SELECTOR, action=action, provider={"name": "opa"},
                  rules=rule(to=[{"operation": {"ports": ["8080"]}}]))  # fmt: skip
    finding = one(AUTHORIZATION_POLICY, item)
    assert f"cannot run its {action} action" in finding.problem


@pytest.mark.parametrize(
    "rules",
    [
        rule(to=[{"operation": {"ports": ["8080"], "notPorts": ["9090"]}}]),
        rule(**{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"], "namespaces": ["a"]}}]}),
        rule(**{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"], "notIpBlocks": ["10.1.0.0/16"]}}]}),
        rule(**{"from": [{"source": {"serviceAccounts": ["a/b"]}}]}),
        rule(when=[{"key": "source.ip", "values": ["10.0.0.1"]}, {"key": "destination.port", "values": ["80"]}]),
        rule(to=[{"operation": {"methods": []}}]),
    ],
)
def test_an_l4_only_selector_policy_is_no_finding(rules: list[dict[str, Any]]) -> None:
    assert keys(AUTHORIZATION_POLICY, policy("l4", selector=SELECTOR, action="ALLOW", rules=rules)) == []


def test_a_namespace_wide_l7_policy_is_a_finding_and_one_with_target_refs_is_the_waypoints() -> None:
    l7 = rule(to=[{"operation": {"paths": ["/admin"]}}])
    waypoint_ref = [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}]
    assert keys(
        AUTHORIZATION_POLICY,
        policy("namespace-wide", action="DENY", rules=l7),
        policy("on-waypoint", action="DENY", rules=l7, targetRefs=waypoint_ref),
        policy("on-waypoint-old-field", action="DENY", rules=l7, targetRef=waypoint_ref[0]),
        policy("custom-on-waypoint", action="CUSTOM", provider={"name": "opa"}, targetRefs=waypoint_ref),
    ) == ["AuthorizationPolicy/shop/namespace-wide"]


def test_mesh_wide_policies_come_from_the_root_namespace_and_other_namespaces_are_ignored() -> None:
    l7 = rule(to=[{"operation": {"methods": ["GET"]}}])
    assert keys(
        AUTHORIZATION_POLICY,
        policy("mesh-wide", ROOT, action="ALLOW", rules=l7),
        policy("root-selector", ROOT, selector=SELECTOR, action="AUDIT"),
        policy("root-on-gateway", ROOT, action="ALLOW", rules=l7, targetRefs=[{"kind": "Gateway", "name": "ingress"}]),
        policy("elsewhere", "other", action="CUSTOM"),
        policy("mesh-l4", ROOT, action="ALLOW", rules=rule(to=[{"operation": {"ports": ["80"]}}])),
    ) == ["AuthorizationPolicy/istio-system/mesh-wide", "AuthorizationPolicy/istio-system/root-selector"]


def test_the_remedy_names_the_declared_waypoint_or_asks_for_one() -> None:
    item = policy("p", selector=SELECTOR, rules=rule(to=[{"operation": {"methods": ["GET"]}}]))
    assert "to the waypoint `waypoint`" in one(AUTHORIZATION_POLICY, item, waypoint="waypoint").remedy
    assert "declare a waypoint for the namespace" in one(AUTHORIZATION_POLICY, item).remedy


# PeerAuthentication


def test_disable_is_a_finding_in_the_namespace_and_mesh_wide() -> None:
    assert keys(
        PEER_AUTHENTICATION,
        policy("plain", mtls={"mode": "DISABLE"}),
        policy("plain-port", selector=SELECTOR, mtls={"mode": "STRICT"}, portLevelMtls={"8080": {"mode": "DISABLE"}}),
        policy("mesh-plain", ROOT, mtls={"mode": "DISABLE"}),
    ) == [
        "PeerAuthentication/istio-system/mesh-plain",
        "PeerAuthentication/shop/plain",
        "PeerAuthentication/shop/plain-port",
    ]
    finding = one(PEER_AUTHENTICATION, policy("plain", mtls={"mode": "DISABLE"}))
    assert "DISABLE" in finding.problem and "istio.io/dataplane-mode: none" in finding.remedy


def test_strict_and_permissive_are_no_findings_nor_is_a_root_selector_policy() -> None:
    assert (
        keys(
            PEER_AUTHENTICATION,
            policy("strict", mtls={"mode": "STRICT"}),
            policy("permissive", mtls={"mode": "PERMISSIVE"}, portLevelMtls={"80": {"mode": "STRICT"}}),
            policy("mesh-strict", ROOT, mtls={"mode": "STRICT"}),
            # Selects workloads of istio-system only.
            policy("istiod-plain", ROOT, selector={"matchLabels": {"app": "istiod"}}, mtls={"mode": "DISABLE"}),
            policy("unset", mtls={"mode": "UNSET"}),
        )
        == []
    )


# EnvoyFilter


def patch(context: str) -> dict[str, Any]:
    return {"applyTo": "HTTP_FILTER", "match": {"context": context}, "patch": {"operation": "MERGE", "value": {}}}


def test_envoy_filters_in_the_namespace_are_findings_whatever_they_match() -> None:
    assert keys(
        ENVOY_FILTER,
        policy("inbound", configPatches=[patch("SIDECAR_INBOUND")]),
        policy("gateway", configPatches=[patch("GATEWAY")]),
    ) == ["EnvoyFilter/shop/gateway", "EnvoyFilter/shop/inbound"]
    finding = one(ENVOY_FILTER, policy("inbound", configPatches=[patch("SIDECAR_INBOUND")]))
    assert "ignore" in finding.problem and "WasmPlugin" in finding.remedy


def test_a_root_envoy_filter_for_gateways_alone_is_no_finding() -> None:
    assert keys(
        ENVOY_FILTER,
        policy("gateways-only", ROOT, configPatches=[patch("GATEWAY"), patch("GATEWAY")]),
        policy("any", ROOT, configPatches=[patch("GATEWAY"), patch("ANY")]),
        policy("no-context", ROOT, configPatches=[{"applyTo": "CLUSTER"}]),
        policy("elsewhere", "other", configPatches=[patch("SIDECAR_INBOUND")]),
    ) == ["EnvoyFilter/istio-system/any", "EnvoyFilter/istio-system/no-context"]


# VirtualService and DestinationRule


HTTP = [{"route": [{"destination": {"host": "web", "subset": "v2"}}]}]


def test_mesh_http_routes_need_a_waypoint() -> None:
    assert keys(
        VIRTUAL_SERVICE,
        policy("default-mesh", hosts=["web"], http=HTTP),
        policy("explicit-mesh", hosts=["web"], gateways=["istio-system/ingress", "mesh"], http=HTTP),
        policy("gateway-only", hosts=["web.example"], gateways=["istio-system/ingress"], http=HTTP),
        policy("tcp-only", hosts=["db"], tcp=[{"route": [{"destination": {"host": "db"}}]}]),
        policy("root", ROOT, hosts=["web"], http=HTTP),
    ) == ["VirtualService/shop/default-mesh", "VirtualService/shop/explicit-mesh"]
    finding = one(VIRTUAL_SERVICE, policy("default-mesh", hosts=["web"], http=HTTP))
    assert "waypoint" in finding.problem and "HTTPRoute" in finding.remedy


def test_subsets_and_traffic_policies_need_a_waypoint() -> None:
    assert keys(
        DESTINATION_RULE,
        policy("subsets", host="web", subsets=[{"name": "v2", "labels": {"version": "v2"}}]),
        policy("lb", host="web", trafficPolicy={"loadBalancer": {"simple": "LEAST_REQUEST"}}),
        policy("host-only", host="web"),
        policy("empty", host="web", subsets=[], trafficPolicy={}),
    ) == ["DestinationRule/shop/lb", "DestinationRule/shop/subsets"]


def test_with_a_waypoint_declared_routes_and_subsets_are_no_findings() -> None:
    objects = {
        VIRTUAL_SERVICE: [policy("routes", hosts=["web"], http=HTTP)],
        DESTINATION_RULE: [policy("subsets", host="web", subsets=[{"name": "v2"}])],
    }
    assert ambient_findings(NS, waypoint="waypoint", objects=objects) == []
    assert [f.kind for f in ambient_findings(NS, waypoint="", objects=objects)] == [VIRTUAL_SERVICE, DESTINATION_RULE]


# All kinds together


def test_findings_are_sorted_by_kind_then_name_and_repeated_objects_count_once() -> None:
    ap = policy("b-policy", selector=SELECTOR, action="CUSTOM")
    objects = {
        DESTINATION_RULE: [policy("rule", subsets=[{"name": "v1"}])],
        ENVOY_FILTER: [policy("z-filter"), policy("a-filter")],
        AUTHORIZATION_POLICY: [ap, ap, policy("a-policy", action="AUDIT")],
        PEER_AUTHENTICATION: [policy("plain", mtls={"mode": "DISABLE"})],
    }
    found = [f.key for f in ambient_findings(NS, waypoint="", objects=objects)]
    assert found == [
        "AuthorizationPolicy/shop/a-policy",
        "AuthorizationPolicy/shop/b-policy",
        "PeerAuthentication/shop/plain",
        "EnvoyFilter/shop/a-filter",
        "EnvoyFilter/shop/z-filter",
        "DestinationRule/shop/rule",
    ]
    shuffled = {kind: list(reversed(items)) for kind, items in reversed(objects.items())}
    assert [f.key for f in ambient_findings(NS, waypoint="", objects=shuffled)] == found


def test_the_root_namespace_itself_can_move() -> None:
    item = policy("plain", ROOT, selector=SELECTOR, mtls={"mode": "DISABLE"})
    assert keys(PEER_AUTHENTICATION, item, namespace=ROOT) == ["PeerAuthentication/istio-system/plain"]


MALFORMED: list[Any] = [
    None,
    "policy",
    42,
    [],
    {},
    {"metadata": "shop"},
    {"metadata": {"name": "no-namespace"}, "spec": {"action": "CUSTOM"}},
    {"metadata": {"namespace": NS}, "spec": {"action": "CUSTOM"}},
    {"metadata": {"name": 7, "namespace": NS}, "spec": {"action": "CUSTOM"}},
    {"metadata": {"name": "", "namespace": NS}, "spec": {"action": "CUSTOM"}},
    obj("list-spec", ["action", "CUSTOM"]),
    obj("string-spec", "CUSTOM"),
    obj("rules-dict", {"rules": {"to": "GET"}}),
    obj("rules-strings", {"rules": ["GET", 1, None]}),
    obj("to-string", {"rules": [{"to": "GET", "from": 3, "when": "request.headers"}]}),
    obj("operation-list", {"rules": [{"to": [{"operation": ["GET"]}, "x", None]}]}),
    obj("source-list", {"rules": [{"from": [{"source": ["a"]}]}]}),
    obj("when-not-a-dict", {"rules": [{"when": ["request.headers", {"key": 5}, {"values": ["a"]}]}]}),
    obj("selector-string", {"selector": "app=web", "action": ["CUSTOM"]}),
    obj("mtls-string", {"mtls": "DISABLE", "portLevelMtls": ["DISABLE"]}),
    obj("ports-not-dicts", {"portLevelMtls": {"80": "DISABLE", "81": None}}),
    obj("patches-dict", {"configPatches": {"match": {"context": "GATEWAY"}}}, ROOT),
    obj("patches-strings", {"configPatches": ["GATEWAY"]}, ROOT),
    obj("http-dict", {"http": {"route": []}, "gateways": "mesh"}),
    obj("subsets-string", {"subsets": "v2", "trafficPolicy": "none"}),
]


@pytest.mark.parametrize("kind", [AUTHORIZATION_POLICY, PEER_AUTHENTICATION, ENVOY_FILTER, VIRTUAL_SERVICE,
                                  DESTINATION_RULE])  # fmt: skip
def test_malformed_objects_never_raise_and_are_skipped_where_not_understood(kind: str) -> None:
    found = ambient_findings(NS, waypoint="", objects={kind: MALFORMED})
    # The well-formed objects hold nothing that is understood as a finding, but an EnvoyFilter is one in the
    # namespace whatever it holds, and a root one whose patches are not understood cannot match gateways alone.
    well_formed = {item["metadata"]["name"] for item in MALFORMED[10:]} - {"list-spec", "string-spec"}
    understood = well_formed if kind == ENVOY_FILTER else set()
    assert {f.name for f in found} == understood
    for objects in (None, [], "x", {kind: None}, {kind: 5}, {kind: "abc"}, {kind: {"a": 1}}):
        assert ambient_findings(NS, waypoint="", objects=objects) == []  # type: ignore[arg-type]


def test_names_from_the_cluster_cannot_inject_markdown_or_control_characters() -> None:
    hostile = policy("x`](http://evil)\x1b[31m\n- AuthorizationPolicy/shop/ok", action="CUSTOM")
    hostile["metadata"]["namespace"] = NS
    (finding,) = ambient_findings(NS, waypoint="w`\n", objects={AUTHORIZATION_POLICY: [hostile]})
    assert finding.name.startswith("invalid(") and all(c.isalnum() or c in "().-\\" for c in finding.name)
    assert "\n" not in finding.remedy and "`\n" not in finding.remedy
    assert "\x1b" not in str(finding) and "\n" not in str(finding)
    message = refusal({NS: [finding]}, {})
    assert message is not None and "\x1b" not in message and "](" not in message


# The refusal


def finding(name: str, namespace: str = NS) -> Finding:
    return Finding(ENVOY_FILTER, namespace, name, "it stops", "replace it")


def test_the_refusal_names_each_unacknowledged_object_with_its_problem_and_remedy() -> None:
    mesh = Finding(PEER_AUTHENTICATION, ROOT, "mesh-plain", "ambient ignores DISABLE", "remove it")
    findings = {"shop": [finding("lua"), mesh], "cart": [mesh, finding("tap", "cart")]}
    message = refusal(findings, {"shop": ["EnvoyFilter/shop/lua"], "cart": []})
    assert message is not None
    lines = message.splitlines()
    assert lines[0].startswith("ambient mode refused for `cart`, `shop`: 3 Istio objects")
    assert "No namespace label was changed." in lines[0]
    assert lines[1:4] == [
        "- in `cart`: PeerAuthentication/istio-system/mesh-plain: ambient ignores DISABLE. Remove it.",
        "- in `cart`: EnvoyFilter/cart/tap: it stops. Replace it.",
        "- in `shop`: PeerAuthentication/istio-system/mesh-plain: ambient ignores DISABLE. Remove it.",
    ]
    assert "EnvoyFilter/shop/lua" not in message, "acknowledged"
    assert "under the namespace's `acknowledge` in `aks-istio:mesh`" in lines[-1]
    assert "`PeerAuthentication/istio-system/mesh-plain`" in lines[-1], "an example key"


def test_the_refusal_is_none_when_every_finding_is_acknowledged_or_none_was_found() -> None:
    findings = {"shop": [finding("lua"), finding("tap")], "cart": []}
    assert refusal(findings, {"shop": {"EnvoyFilter/shop/lua", "EnvoyFilter/shop/tap", "stale/key"}}) is None
    assert refusal({}, {}) is None
    # An acknowledgement holds for its own namespace only.
    assert refusal({"cart": [finding("lua", "shop")]}, {"shop": ["EnvoyFilter/shop/lua"]}) is not None


def test_the_refusal_is_bounded() -> None:
    findings = {NS: [finding(f"filter-{index:03}") for index in range(SHOWN_FINDINGS + 7)]}
    message = refusal(findings, {})
    assert message is not None
    listed = [line for line in message.splitlines() if line.startswith("- in ")]
    assert len(listed) == SHOWN_FINDINGS
    assert "- and 7 more" in message.splitlines()
    assert f"{SHOWN_FINDINGS + 7} Istio objects" in message
