"""Istio's real charts of two releases, rendered by Helm with the program's own values: what a canary upgrade relies on.

The values tests check key names; these check the objects Helm would install. Which webhook injects which mesh
namespace, that the default and canary control planes never claim the same namespace or the same object, that the
revision tag disappears with the canary, that the CNI plugin skips the system namespaces, and that the proxy image
istiod injects is the one the program reports. The charts are the unchanged sources in `../shared/reference`; their
published copies differ only in the default `global.hub`/`global.tag`, which each render sets to the release.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.addon_values import tracing_mesh_config
from components.istio_values import base_values, canary_istiod_values, cni_values, gateway_values, istiod_values
from localkube.npm_layer import layer_binary
from settings.model import ISTIO_NAMESPACE, SYSTEM_NAMESPACES, CanarySettings, IstioSettings
from tests.support.helm import render_chart
from tests.support.reference import SHARED_REFERENCE
from tests.support.scenarios import CNI_DISABLED, DEV, PROD

OLD, NEW = "1.29.6", "1.30.3"
RELEASES = (OLD, NEW)
"""The two Istio releases whose charts the reference set holds: a canary upgrade goes from OLD to NEW."""
DEFAULT_HUB = "docker.io/istio"
"""The published charts' default `global.hub`, used when the settings set none."""
CHART_DIRS = {"base": "base", "cni": "istio-cni", "istiod": "istiod", "gateway": "gateway"}

# Release names the program gives the Istio charts (the gateway's comes from its settings).
BASE_RELEASE = "istio-base"
CNI_RELEASE = "istio-cni"
ISTIOD_RELEASE = "istiod"
CANARY_REVISION = "1-30-3"
CANARY_RELEASE = f"istiod-{CANARY_REVISION}"

# The labels the program puts on namespaces, the contract these renders are checked against: a default mesh
# namespace, a mesh namespace moved to the canary's tag, and the ingress gateway's own namespace. Mesh namespaces
# also get Pod Security `baseline` when the CNI is on (`PSA_BASELINE`), so both forms are checked.
DEFAULT_NAMESPACE_LABELS: dict[str, str] = {"istio-injection": "enabled"}
CANARY_NAMESPACE_LABELS: dict[str, str] = {"istio.io/rev": "canary"}
PSA_BASELINE: dict[str, str] = {"pod-security.kubernetes.io/enforce": "baseline"}
GATEWAY_NAMESPACE_LABELS: dict[str, str] = dict(PSA_BASELINE)
APP_POD_LABELS: dict[str, str] = {"app": "web"}
"""An application pod as teams deploy it: no Istio label of its own."""

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
    }
)

Document = dict[str, Any]
Renders = dict[str, tuple[Document, ...]]
"""Helm release name -> the objects it renders."""


def with_psa(labels: Mapping[str, str]) -> list[dict[str, str]]:
    """A mesh namespace's labels without and with Pod Security `baseline` (CNI off and on)."""
    return [dict(labels), {**labels, **PSA_BASELINE}]


# --- Rendering ------------------------------------------------------------------------------------------------


def helm_path() -> Path:
    path, origin = layer_binary("helm")
    if path is None:
        pytest.skip(origin)
    return path


def chart_dir(chart: str, release: str) -> Path:
    if not SHARED_REFERENCE.is_dir():
        pytest.skip(f"no Istio reference charts at {SHARED_REFERENCE}")
    assert release in RELEASES, f"no reference charts for Istio {release}"
    return SHARED_REFERENCE / f"istio-{release}/charts/{CHART_DIRS[chart]}"


@cache
def _render(chart: str, release: str, name: str, namespace: str, values_json: str) -> tuple[Document, ...]:
    return tuple(render_chart(helm_path(), chart_dir(chart, release), name, namespace, json.loads(values_json)))


def render(chart: str, release: str, name: str, namespace: str, values: Mapping[str, Any]) -> tuple[Document, ...]:
    """One chart of one release, with the images of that release: cached, since each helm call takes a while."""
    return _render(chart, release, name, namespace, json.dumps(values, sort_keys=True))


def with_release_images(values: Mapping[str, Any], istio: IstioSettings, release: str) -> dict[str, Any]:
    """The values plus the image defaults of the published chart: `global.tag` the release, `global.hub` the settings'
    hub (else the published one)."""
    merged = copy.deepcopy(dict(values))
    merged["global"] = {
        **merged.get("global", {}),
        "hub": istio.global_values.get("hub") or DEFAULT_HUB,
        "tag": release,
    }
    return merged


def render_istiod(istio: IstioSettings) -> tuple[Document, ...]:
    values = with_release_images(istiod_values(istio, tracing_mesh_config(istio)), istio, istio.version)
    return render("istiod", istio.version, ISTIOD_RELEASE, ISTIO_NAMESPACE, values)


def render_canary(istio: IstioSettings) -> tuple[Document, ...]:
    assert istio.canary is not None
    values = canary_istiod_values(istio, tracing_mesh_config(istio))
    release = istio.canary.version
    return render("istiod", release, CANARY_RELEASE, ISTIO_NAMESPACE, with_release_images(values, istio, release))


def render_cni(istio: IstioSettings, release: str) -> tuple[Document, ...]:
    return render("cni", release, CNI_RELEASE, ISTIO_NAMESPACE, with_release_images(cni_values(istio), istio, release))


def render_all(istio: IstioSettings) -> Renders:
    """Every Istio release the program installs for these settings, at the chart version it installs it with."""
    shared = istio.shared_chart_version
    renders: Renders = {
        BASE_RELEASE: render(
            "base", shared, BASE_RELEASE, ISTIO_NAMESPACE, with_release_images(base_values(istio), istio, shared)
        ),
        ISTIOD_RELEASE: render_istiod(istio),
    }
    if istio.cni.enabled:
        renders[CNI_RELEASE] = render_cni(istio, shared)
    if istio.canary is not None:
        renders[CANARY_RELEASE] = render_canary(istio)
    if istio.gateway.enabled:
        gateway = istio.gateway
        values = with_release_images(gateway_values(istio), istio, istio.version)
        renders[gateway.name] = render("gateway", istio.version, gateway.name, gateway.namespace, values)
    return renders


# --- Reading the renders --------------------------------------------------------------------------------------


def find(documents: Iterable[Document], kind: str, name: str) -> Document:
    matches = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def of_kind(documents: Iterable[Document], kind: str) -> list[Document]:
    return [d for d in documents if d["kind"] == kind]


def identity(document: Document, release_namespace: str) -> tuple[str, str, str | None, str]:
    """What Helm checks ownership by: group, kind, namespace (none when cluster-scoped) and name."""
    group = document["apiVersion"].rpartition("/")[0]
    namespace = None if document["kind"] in CLUSTER_SCOPED_KINDS else document["metadata"].get("namespace")
    if document["kind"] not in CLUSTER_SCOPED_KINDS and namespace is None:
        namespace = release_namespace  # Helm installs an unqualified namespaced object into the release's namespace
    return group, document["kind"], namespace, document["metadata"]["name"]


def injector_values(documents: Iterable[Document], revision: str = "") -> dict[str, Any]:
    """The values istiod's injector reads: ConfigMap `istio-sidecar-injector[-<rev>]`, key `values` (JSON)."""
    name = f"istio-sidecar-injector-{revision}" if revision else "istio-sidecar-injector"
    values: dict[str, Any] = json.loads(find(documents, "ConfigMap", name)["data"]["values"])
    return values


def mesh_config(documents: Iterable[Document], revision: str = "") -> dict[str, Any]:
    """The mesh config istiod serves: ConfigMap `istio[-<rev>]`, key `mesh` (YAML)."""
    name = f"istio-{revision}" if revision else "istio"
    mesh: dict[str, Any] = yaml.safe_load(find(documents, "ConfigMap", name)["data"]["mesh"]) or {}
    return mesh


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics: matchLabels and every matchExpression must hold; no selector selects all."""
    if not selector:
        return True
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In":
            holds = key in labels and labels[key] in values
        elif operator == "NotIn":
            holds = key not in labels or labels[key] not in values
        elif operator == "Exists":
            holds = key in labels
        elif operator == "DoesNotExist":
            holds = key not in labels
        else:
            raise ValueError(f"unknown selector operator {operator!r}")
        if not holds:
            return False
    return True


def webhooks(documents: Iterable[Document]) -> list[tuple[str, Document]]:
    """(configuration name, webhook) of every MutatingWebhookConfiguration."""
    return [
        (config["metadata"]["name"], hook)
        for config in of_kind(documents, "MutatingWebhookConfiguration")
        for hook in config.get("webhooks") or []
    ]


def selecting_namespace(documents: Iterable[Document], namespace_labels: Mapping[str, str]) -> list[str]:
    """`configuration/webhook` of every mutating webhook whose namespaceSelector takes the namespace."""
    return [
        f"{config}/{hook['name']}"
        for config, hook in webhooks(documents)
        if selector_matches(hook.get("namespaceSelector"), namespace_labels)
    ]


def injecting(
    documents: Iterable[Document], namespace_labels: Mapping[str, str], pod_labels: Mapping[str, str]
) -> list[tuple[str, str]]:
    """(configuration, service it calls) of every mutating webhook a new pod would be sent to."""
    return [
        (config, hook["clientConfig"]["service"]["name"])
        for config, hook in webhooks(documents)
        if selector_matches(hook.get("namespaceSelector"), namespace_labels)
        and selector_matches(hook.get("objectSelector"), pod_labels)
    ]


def proxy_image(values: Mapping[str, Any], mesh: Mapping[str, Any]) -> str:
    """The sidecar image istiod builds from the injector's values, as its `ProxyImage` does.

    `<hub>/<proxy.image>:<tag>[-<variant>]`; a `proxy.image` with a `/` is used as it is; the mesh config's
    `defaultConfig.image.imageType` overrides `global.variant`, and the variant `default` adds no suffix.
    """
    global_values = values["global"]
    name = str((global_values.get("proxy") or {}).get("image") or "proxyv2")
    if "/" in name:
        return name
    variant = str(global_values.get("variant") or "")
    image_type = ((mesh.get("defaultConfig") or {}).get("image") or {}).get("imageType")
    if image_type is not None:
        variant = str(image_type)
    tag = str(global_values["tag"])
    suffix = f"-{variant}" if variant and variant != "default" else ""
    return f"{global_values['hub']}/{name}:{tag}{suffix}"


# --- Settings -------------------------------------------------------------------------------------------------


def at(istio: IstioSettings, version: str, canary: str | None = None) -> IstioSettings:
    """The scenario at a release the reference set holds, with a canary at `canary` when given."""
    canary_settings = CanarySettings(version=canary, namespaces=("shop",)) if canary else None
    return dataclasses.replace(istio, version=version, canary=canary_settings)


SCENARIOS = {"dev": DEV, "prod": PROD}
CANARY_SCENARIOS = [pytest.param(at(s, OLD, NEW), id=name) for name, s in SCENARIOS.items()]


# --- The selector matcher itself ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {}, True),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
        (
            {"matchLabels": {"b": "2"}, "matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]},
            {"b": "2"},
            True,
        ),
    ],
)
def test_selector_matcher_follows_kubernetes_semantics(
    selector: dict[str, Any] | None, labels: dict[str, str], expected: bool
) -> None:
    """The checks below are only as good as this matcher."""
    assert selector_matches(selector, labels) is expected


# --- 1. The default control plane -----------------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
def test_default_control_plane_injects_default_namespaces_only(release: str) -> None:
    """A namespace labelled `istio-injection=enabled` gets sidecars from `istiod`; one on the canary's tag does not."""
    istio = at(DEV, release)
    assert istio.cni.enabled
    documents = render_istiod(istio)
    find(documents, "Deployment", "istiod")
    injector = find(documents, "MutatingWebhookConfiguration", "istio-sidecar-injector")
    for labels in with_psa(DEFAULT_NAMESPACE_LABELS):
        assert selecting_namespace([injector], labels), labels
        assert injecting([injector], labels, APP_POD_LABELS) == [("istio-sidecar-injector", "istiod")]
    for labels in with_psa(CANARY_NAMESPACE_LABELS):
        assert selecting_namespace(documents, labels) == [], labels


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("istio", [DEV, CNI_DISABLED], ids=["cni", "no-cni"])
def test_injector_knows_whether_the_cni_plugin_redirects_traffic(release: str, istio: IstioSettings) -> None:
    """`pilot.cni.enabled` decides istio-validation (CNI) or istio-init (NET_ADMIN/NET_RAW) in every injected pod."""
    values = injector_values(render_istiod(at(istio, release)))
    assert values["pilot"]["cni"]["enabled"] is istio.cni.enabled


# --- 2. Default and canary side by side -----------------------------------------------------------------------


@pytest.mark.parametrize("istio", CANARY_SCENARIOS)
def test_canary_control_plane_runs_the_new_release_under_its_revision(istio: IstioSettings) -> None:
    """`istiod-1-30-3` runs pilot 1.30.3 and injects `istio.io/rev=1-30-3` and `istio.io/rev=canary` namespaces."""
    assert istio.canary is not None
    assert istio.canary.revision == CANARY_REVISION
    documents = render_canary(istio)
    hub = istio.global_values.get("hub") or DEFAULT_HUB
    variant = istio.global_values.get("variant")
    deployment = find(documents, "Deployment", CANARY_RELEASE)
    images = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert images["discovery"] == f"{hub}/pilot:{NEW}" + (f"-{variant}" if variant else "")

    revision = find(documents, "MutatingWebhookConfiguration", f"istio-sidecar-injector-{CANARY_REVISION}")
    assert selecting_namespace([revision], {"istio.io/rev": CANARY_REVISION})

    tag = find(documents, "MutatingWebhookConfiguration", "istio-revision-tag-canary")
    for labels in with_psa(CANARY_NAMESPACE_LABELS):
        assert selecting_namespace([tag], labels), labels
    called = [hook["clientConfig"]["service"] for hook in tag["webhooks"]]
    services = {(service["namespace"], service["name"]) for service in called}
    assert services == {(ISTIO_NAMESPACE, CANARY_RELEASE)}


@pytest.mark.parametrize("istio", CANARY_SCENARIOS)
def test_default_and_canary_never_select_each_others_namespaces(istio: IstioSettings) -> None:
    """While both run, moving a namespace is a label change: neither control plane reaches into the other's."""
    default, canary = render_istiod(istio), render_canary(istio)
    for labels in with_psa(CANARY_NAMESPACE_LABELS):
        assert selecting_namespace(default, labels) == [], labels
    for labels in with_psa(DEFAULT_NAMESPACE_LABELS):
        assert selecting_namespace(canary, labels) == [], labels


@pytest.mark.parametrize("istio", CANARY_SCENARIOS)
def test_every_namespace_gets_exactly_one_injector_during_a_canary(istio: IstioSettings) -> None:
    """Two webhooks for one pod would inject it twice (or race); none would leave it without a sidecar."""
    all_documents = [d for documents in render_all(istio).values() for d in documents]
    for labels in with_psa(DEFAULT_NAMESPACE_LABELS):
        assert injecting(all_documents, labels, APP_POD_LABELS) == [("istio-sidecar-injector", ISTIOD_RELEASE)]
    for labels in with_psa(CANARY_NAMESPACE_LABELS):
        assert injecting(all_documents, labels, APP_POD_LABELS) == [("istio-revision-tag-canary", CANARY_RELEASE)]
    # The ingress gateway asks for injection on the pod itself; it stays on the default control plane.
    gateway = find(render_all(istio)[istio.gateway.name], "Deployment", istio.gateway.name)
    gateway_pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert injecting(all_documents, GATEWAY_NAMESPACE_LABELS, gateway_pod_labels) == [
        ("istio-sidecar-injector", ISTIOD_RELEASE)
    ]


# --- 3. No object has two owners -------------------------------------------------------------------------------


@pytest.mark.parametrize("istio", CANARY_SCENARIOS)
def test_no_two_releases_render_the_same_object(istio: IstioSettings) -> None:
    """Helm refuses to install a release whose object another release already owns."""
    renders = render_all(istio)
    assert set(renders) == {BASE_RELEASE, CNI_RELEASE, ISTIOD_RELEASE, CANARY_RELEASE, istio.gateway.name}
    namespaces = {name: ISTIO_NAMESPACE for name in renders} | {istio.gateway.name: istio.gateway.namespace}
    owned = {name: [identity(d, namespaces[name]) for d in documents] for name, documents in renders.items()}
    for name, identities in owned.items():
        assert len(identities) == len(set(identities)), f"{name} renders an object twice"
    names = sorted(owned)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = set(owned[first]) & set(owned[second])
            assert not shared, f"{first} and {second} both render {sorted(shared, key=str)}"


# --- 4. After promotion ----------------------------------------------------------------------------------------


def test_after_promotion_no_revision_tag_is_left_and_istiod_injects() -> None:
    """With the canary promoted (version 1.30.3, no canary), only `istiod` injects and no tag webhook remains."""
    istio = at(DEV, NEW)
    renders = render_all(istio)
    all_documents = [d for documents in renders.values() for d in documents]
    for name, documents in renders.items():
        tags = [w["metadata"]["name"] for w in of_kind(documents, "MutatingWebhookConfiguration")]
        assert not [t for t in tags if t.startswith("istio-revision-tag-")], name
    injector = find(renders[ISTIOD_RELEASE], "MutatingWebhookConfiguration", "istio-sidecar-injector")
    assert {h["clientConfig"]["service"]["name"] for h in injector["webhooks"]} == {ISTIOD_RELEASE}
    for labels in with_psa(DEFAULT_NAMESPACE_LABELS):
        assert injecting(all_documents, labels, APP_POD_LABELS) == [("istio-sidecar-injector", ISTIOD_RELEASE)]
    # A namespace still labelled for the canary's tag would get no sidecar at all: it must move back first.
    for labels in with_psa(CANARY_NAMESPACE_LABELS):
        assert injecting(all_documents, labels, APP_POD_LABELS) == []


# --- 5. The CNI plugin -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_cni_plugin_leaves_the_excluded_namespaces_alone(release: str, scenario: str) -> None:
    """The node agent runs on every node and skips the namespaces the settings exclude, system ones included."""
    istio = at(SCENARIOS[scenario], release)
    documents = render_cni(istio, release)
    find(documents, "DaemonSet", "istio-cni-node")
    config = find(documents, "ConfigMap", "istio-cni-config")
    excluded = config["data"]["EXCLUDE_NAMESPACES"].split(",")
    assert excluded == list(istio.cni.exclude_namespaces)
    assert set(SYSTEM_NAMESPACES) <= set(excluded)


# --- 6. The proxy image ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "release", "expected"),
    [
        ("dev", OLD, f"docker.io/istio/proxyv2:{OLD}"),
        ("dev", NEW, f"docker.io/istio/proxyv2:{NEW}"),
        ("prod", OLD, f"myregistry.azurecr.io/istio/proxyv2:{OLD}-distroless"),
        ("prod", NEW, f"myregistry.azurecr.io/istio/proxyv2:{NEW}-distroless"),
    ],
)
def test_injected_proxy_image_is_the_one_the_program_reports(scenario: str, release: str, expected: str) -> None:
    """The restart plan compares running sidecars against `proxy_image`: it must be what istiod injects."""
    istio = at(SCENARIOS[scenario], release)
    assert istio.proxy_image == expected
    documents = render_istiod(istio)
    # The sidecar template takes its image from istiod's ProxyImage, built from these values.
    assert "{{ .ProxyImage }}" in find(documents, "ConfigMap", "istio-sidecar-injector")["data"]["config"]
    assert proxy_image(injector_values(documents), mesh_config(documents)) == istio.proxy_image


@pytest.mark.parametrize("istio", CANARY_SCENARIOS)
def test_canary_injects_the_proxy_image_the_program_reports(istio: IstioSettings) -> None:
    """During a canary both images are in use: the default's for default namespaces, the canary's for the others."""
    assert istio.canary is not None
    default, canary = render_istiod(istio), render_canary(istio)
    assert proxy_image(injector_values(default), mesh_config(default)) == istio.proxy_image
    canary_image = proxy_image(injector_values(canary, CANARY_REVISION), mesh_config(canary, CANARY_REVISION))
    assert canary_image == istio.canary_proxy_image
    assert canary_image.split(":")[-1].startswith(NEW)


@pytest.mark.parametrize(
    "changes",
    [
        {"global_values": {**PROD.global_values, "variant": "default"}},
        {"mesh_config": {"defaultConfig": {"image": {"imageType": "debug"}}}},
    ],
    ids=["variant-default", "mesh-image-type"],
)
def test_proxy_image_follows_istiods_variant_rules(changes: dict[str, Any]) -> None:
    """Settings the program accepts whose injected image istiod builds differently from `proxy_image`."""
    istio = dataclasses.replace(at(PROD, NEW), **changes)
    documents = render_istiod(istio)
    assert proxy_image(injector_values(documents), mesh_config(documents)) == istio.proxy_image
