"""Istio's CRDs and the Gateway API's, installed into the control plane, serve the objects ambient mode reads."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube import mesh_crds as crds
from localkube.cluster import Cluster
from localkube.namespaces import Namespaces
from localkube.raw import drain, read_json
from localkube.waiting import wait_for

pytestmark = pytest.mark.cluster

SELECTOR = {"matchLabels": {"app": "web"}}
# (group, version, plural, kind, spec): one object of each kind the migration reads, and a waypoint.
OBJECTS: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    (
        "security.istio.io",
        "v1",
        "authorizationpolicies",
        "AuthorizationPolicy",
        {"selector": SELECTOR, "action": "ALLOW", "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]},
    ),
    ("security.istio.io", "v1", "peerauthentications", "PeerAuthentication", {"mtls": {"mode": "DISABLE"}}),
    (
        "networking.istio.io",
        "v1alpha3",
        "envoyfilters",
        "EnvoyFilter",
        {
            "workloadSelector": {"labels": {"app": "web"}},
            "configPatches": [
                {
                    "applyTo": "HTTP_FILTER",
                    "match": {"context": "SIDECAR_INBOUND"},
                    "patch": {"operation": "INSERT_BEFORE", "value": {"name": "example.filter"}},
                }
            ],
        },
    ),
    (
        "networking.istio.io",
        "v1",
        "virtualservices",
        "VirtualService",
        {
            "hosts": ["web"],
            "http": [
                {"match": [{"uri": {"prefix": "/v2"}}], "route": [{"destination": {"host": "web", "subset": "v2"}}]}
            ],
        },
    ),
    (
        "networking.istio.io",
        "v1",
        "destinationrules",
        "DestinationRule",
        {"host": "web", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]},
    ),
    (
        "gateway.networking.k8s.io",
        "v1",
        "gateways",
        "Gateway",
        # What `istioctl waypoint generate` writes.
        {"gatewayClassName": "istio-waypoint", "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]},
    ),
)


def test_the_mesh_crds_are_established_and_installing_again_changes_nothing(
    cluster: Cluster, mesh_crds: crds.Installed
) -> None:
    extensions = client.ApiextensionsV1Api(cluster.api)
    names = {
        crd["metadata"]["name"]
        for crd in read_json(extensions.list_custom_resource_definition(_preload_content=False))["items"]
    }
    wanted = {
        "authorizationpolicies.security.istio.io",
        "peerauthentications.security.istio.io",
        "envoyfilters.networking.istio.io",
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
        "gateways.gateway.networking.k8s.io",
        "gatewayclasses.gateway.networking.k8s.io",
        "httproutes.gateway.networking.k8s.io",
    }
    assert wanted <= names
    assert crds.install(cluster.api).objects == []


def test_one_object_of_each_kind_and_an_istio_waypoint_gateway_are_created(
    cluster: Cluster, namespaces: Namespaces, mesh_crds: crds.Installed
) -> None:
    namespace = namespaces.create("policies")
    custom = client.CustomObjectsApi(cluster.api)
    for group, version, plural, kind, spec in OBJECTS:
        body = {"apiVersion": f"{group}/{version}", "kind": kind, "metadata": {"name": "web"}, "spec": spec}
        created = read_json(
            custom.create_namespaced_custom_object(group, version, namespace, plural, body, _preload_content=False)
        )
        assert created["kind"] == kind
        expected = spec
        if kind == "Gateway":  # the CRD's structural schema fills in its defaults, as a real API server does
            expected = {
                **spec,
                "listeners": [{**spec["listeners"][0], "allowedRoutes": {"namespaces": {"from": "Same"}}}],
            }
        assert created["spec"] == expected
        read = read_json(
            custom.get_namespaced_custom_object(group, version, namespace, plural, "web", _preload_content=False)
        )
        assert read["metadata"]["uid"] == created["metadata"]["uid"]


def test_the_crd_schemas_and_the_gateway_apis_admission_policy_are_enforced(
    cluster: Cluster, namespaces: Namespaces, mesh_crds: crds.Installed
) -> None:
    namespace = namespaces.create("invalid")
    custom = client.CustomObjectsApi(cluster.api)
    bogus = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "bogus"},
        "spec": {"action": "BOGUS"},
    }
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(
            "security.istio.io", "v1", namespace, "authorizationpolicies", bogus, _preload_content=False
        )
    assert refused.value.status == 422

    # The ValidatingAdmissionPolicy of the standard channel refuses a Gateway API CRD older than v1.5.0.
    extensions = client.ApiextensionsV1Api(cluster.api)
    downgrade = {"metadata": {"annotations": {"gateway.networking.k8s.io/bundle-version": "v1.4.0"}}}

    def downgrade_refused() -> str | None:
        try:
            drain(
                extensions.patch_custom_resource_definition(
                    "gateways.gateway.networking.k8s.io",
                    downgrade,
                    dry_run="All",
                    _content_type="application/merge-patch+json",
                    _preload_content=False,
                )
            )
        except ApiException as exc:
            return str(exc.body) if exc.status == 422 else None
        return None  # the API server loads admission policies asynchronously

    message = wait_for(downgrade_refused, timeout=30, interval=0.5, what="the admission policy to refuse a downgrade")
    assert "safe-upgrades.gateway.networking.k8s.io" in message
