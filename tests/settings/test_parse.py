"""Stack settings: defaults, the committed stack files, and a clear error for every bad input."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from offline.engine import ROOT, RecordedResource, run_program, stack_config
from settings.model import SYSTEM_NAMESPACES
from settings.parse import parse_settings
from settings.rules import ConfigError


def settings_of(objects: dict[str, Any], stack: str = "dev", location: str | None = "westeurope") -> Any:
    return parse_settings(stack, objects, location, ROOT)


def test_defaults_for_an_empty_stack() -> None:
    settings = settings_of({})
    cluster = settings.cluster
    assert cluster.name == "aks-istio-dev"
    assert cluster.resource_group_name == "rg-aks-istio-dev"
    assert cluster.network_plugin == "azure-overlay"
    assert cluster.kubernetes_version is None
    assert cluster.user_pool is None
    assert not cluster.system_pool.autoscaling
    assert settings.istio.version == "1.30.3"
    assert settings.istio.cni.enabled is True
    assert settings.istio.cni.exclude_namespaces == SYSTEM_NAMESPACES
    assert settings.istio.gateway.enabled is True
    assert not any(vars(settings.istio.addons).values())
    assert settings.mesh.namespaces == ()
    assert (settings.restart.max_concurrent, settings.restart.wait_for_rollout) == (10, True)


def test_committed_stacks_parse() -> None:
    dev = settings_of({k.split(":")[1]: v for k, v in stack_config("dev").items() if k.startswith("aks-istio:")})
    prod = settings_of(
        {k.split(":")[1]: v for k, v in stack_config("prod").items() if k.startswith("aks-istio:")}, stack="prod"
    )
    assert prod.cluster.system_pool.autoscaling and prod.cluster.system_pool.zones == ("1", "2", "3")
    assert prod.cluster.user_pool is not None and prod.cluster.user_pool.max_count == 12
    assert prod.cluster.system_pool.vm_size != dev.cluster.system_pool.vm_size
    assert prod.cluster.azure_policy and not dev.cluster.azure_policy
    assert dev.mesh.namespaces == ("shop", "payments")


BAD_INPUTS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("wrong type for count", {"cluster": {"systemPool": {"count": "three"}}}, ["systemPool.count", "'three'"]),
    ("negative count", {"cluster": {"systemPool": {"count": -1}}}, ["systemPool.count", "-1", "from 1 to 1000"]),
    ("bool is not a count", {"cluster": {"systemPool": {"count": True}}}, ["systemPool.count", "True"]),
    (
        "min above max",
        {"cluster": {"systemPool": {"count": 3, "minCount": 5, "maxCount": 4}}},
        ["minCount", "5", "maxCount (4)"],
    ),
    (
        "count outside the autoscaler range",
        {"cluster": {"systemPool": {"count": 9, "minCount": 1, "maxCount": 4}}},
        ["systemPool.count", "9", "between minCount (1) and maxCount (4)"],
    ),
    ("min without max", {"cluster": {"systemPool": {"minCount": 1}}}, ["minCount and maxCount go together"]),
    ("unknown cluster key", {"cluster": {"nodeCount": 3}}, ["aks-istio:cluster.nodeCount", "unknown setting"]),
    ("unknown pool key", {"cluster": {"userPool": {"vmsize": "x"}}}, ["userPool.vmsize", "unknown setting"]),
    ("bad zone", {"cluster": {"systemPool": {"zones": ["4"]}}}, ["systemPool.zones", "'4'", "'1', '2' or '3'"]),
    ("bad vm size", {"cluster": {"systemPool": {"vmSize": "big"}}}, ["vmSize", "'big'", "Standard_"]),
    ("bad network plugin", {"cluster": {"networkPlugin": "calico"}}, ["networkPlugin", "'calico'", "azure-overlay"]),
    ("bad upgrade channel", {"cluster": {"autoUpgradeChannel": "weekly"}}, ["autoUpgradeChannel", "'weekly'"]),
    ("bad cluster name", {"cluster": {"name": "-aks"}}, ["cluster.name", "'-aks'", "letters, digits"]),
    ("bad kubernetes version", {"cluster": {"kubernetesVersion": "latest"}}, ["kubernetesVersion", "'latest'"]),
    ("tag value not a string", {"cluster": {"tags": {"owner": 7}}}, ["tags.owner", "7"]),
    ("cluster not an object", {"cluster": ["a"]}, ["aks-istio:cluster", "expected an object"]),
    ("unsupported istio version", {"istio": {"version": "1.22.3"}}, ["istio.version", "'1.22.3'", "1.24 or newer"]),
    (
        "an Istio release that does not support the cluster's Kubernetes",
        {"cluster": {"kubernetesVersion": "1.30"}, "istio": {"version": "1.30.3"}},
        ["istio.version", "'1.30.3'", "kubernetesVersion '1.30'", "supports Kubernetes 1.32, 1.33, 1.34, 1.35, 1.36"],
    ),
    (
        "a downgrade acknowledged from no release",
        {"istio": {"allowDowngradeFrom": "latest"}},
        ["istio.allowDowngradeFrom", "'latest'", "MAJOR.MINOR.PATCH"],
    ),
    (
        "a canary below the default",
        {"istio": {"version": "1.30.3", "canary": {"version": "1.29.6"}}},
        ["istio.canary.version", "'1.29.6'", "newer than aks-istio:istio.version ('1.30.3')"],
    ),
    (
        "a canary as old as the default",
        {"istio": {"version": "1.30.3", "canary": {"version": "1.30.3"}}},
        ["istio.canary.version", "'1.30.3'", "newer than"],
    ),
    (
        "a canary three minors above",
        {"istio": {"version": "1.27.3", "canary": {"version": "1.30.3"}}},
        ["istio.canary.version", "'1.30.3'", "at most 2 minors above"],
    ),
    (
        "a canary without a version",
        {"istio": {"canary": {"namespaces": ["shop"]}}},
        ["istio.canary.version", "None", "MAJOR.MINOR.PATCH"],
    ),
    (
        "a canary namespace outside the mesh",
        {
            "mesh": {"namespaces": ["shop"]},
            "istio": {"version": "1.29.6", "canary": {"version": "1.30.3", "namespaces": ["search"]}},
        },
        ["istio.canary.namespaces", "'search'", "mesh namespaces (aks-istio:mesh.namespaces: shop)"],
    ),
    (
        "a canary that does not support the cluster's Kubernetes",
        {"cluster": {"kubernetesVersion": "1.31"}, "istio": {"version": "1.29.6", "canary": {"version": "1.30.3"}}},
        ["istio.canary.version", "'1.30.3'", "kubernetesVersion '1.31'"],
    ),
    (
        "an unknown canary key",
        {"istio": {"version": "1.29.6", "canary": {"version": "1.30.3", "namespace": ["shop"]}}},
        ["istio.canary.namespace", "unknown setting"],
    ),
    (
        "a pinned image tag with a canary",
        {"istio": {"version": "1.29.6", "canary": {"version": "1.30.3"}, "global": {"tag": "1.29.6"}}},
        ["istio.global.tag", "'1.29.6'", "pin the canary's images to 1.29.6"],
    ),
    (
        "a full proxy image with a canary",
        {
            "istio": {
                "version": "1.29.6",
                "canary": {"version": "1.30.3"},
                "global": {"proxy": {"image": "myacr.azurecr.io/proxyv2:1.29.6"}},
            }
        },
        ["istio.global.proxy.image", "pins one proxy for both control planes"],
    ),
    (
        "a gateway named like istiod",
        {"istio": {"gateway": {"name": "istiod", "namespace": "istio-system"}}},
        ["istio.gateway.name", "'istiod'", "a release name of its own"],
    ),
    (
        "a gateway named like a canary",
        {"istio": {"gateway": {"name": "istiod-1-30-3"}}},
        ["istio.gateway.name", "'istiod-1-30-3'"],
    ),
    ("a namespace with a trailing newline", {"mesh": {"namespaces": ["shop\n"]}}, ["mesh.namespaces", "'shop\\n'"]),
    ("a version with a newline", {"cluster": {"kubernetesVersion": "1.33\n"}}, ["kubernetesVersion", "'1.33\\n'"]),
    (
        "a version in Arabic-Indic digits",
        {"cluster": {"kubernetesVersion": "\u0661.\u0663\u0663", "autoUpgradeChannel": "none"}},
        ["kubernetesVersion"],
    ),
    ("an Istio version with leading zeros", {"istio": {"version": "01.030.3"}}, ["istio.version", "'01.030.3'"]),
    (
        "a resource group with a newline",
        {"cluster": {"resourceGroupName": "rg-x\n"}},
        ["resourceGroupName", "'rg-x\\n'"],
    ),
    (
        "a pilot value of the wrong type",
        {"istio": {"pilot": {"replicaCount": "two"}}},
        ["istio.pilot.replicaCount", "'two'", "expected a number"],
    ),
    ("a global value of the wrong type", {"istio": {"global": {"hub": 5}}}, ["istio.global.hub", "5", "a string"]),
    (
        "a location that is no Azure region",
        {},
        ["azure-native:location", "'west-europe'", "an Azure region name such as westeurope", "did you mean"],
    ),
    (
        "a tag the program sets itself",
        {"cluster": {"tags": {"Environment": "staging"}}},
        ["cluster.tags.Environment", "the program sets it"],
    ),
    (
        "a tag name Azure refuses",
        {"cluster": {"tags": {"team/owner": "x"}}},
        ["cluster.tags", "'team/owner'", "without < > % & \\ ? /"],
    ),
    (
        "a meshConfig key istiod does not have",
        {"istio": {"meshConfig": {"accesLogFile": "/dev/stdout"}}},
        ["istio.meshConfig.accesLogFile", "not a field of Istio's MeshConfig", "did you mean 'accessLogFile'"],
    ),
    (
        "a meshConfig field Istio removed",
        {"istio": {"meshConfig": {"mixerCheckServer": "x"}}},
        ["istio.meshConfig.mixerCheckServer", "not a field"],
    ),
    ("malformed istio version", {"istio": {"version": "1.30"}}, ["istio.version", "'1.30'", "MAJOR.MINOR.PATCH"]),
    ("cni enabled not a bool", {"istio": {"cni": {"enabled": "yes"}}}, ["cni.enabled", "'yes'", "true or false"]),
    (
        "system namespace dropped from the exclusions",
        {"istio": {"cni": {"excludeNamespaces": ["kube-system"]}}},
        ["cni.excludeNamespaces", "missing: istio-system, kube-node-lease, kube-public"],
    ),
    (
        "namespace not a DNS label",
        {"mesh": {"namespaces": ["Shop_Front"]}},
        ["mesh.namespaces", "'Shop_Front'", "DNS labels"],
    ),
    ("namespace listed twice", {"mesh": {"namespaces": ["shop", "shop"]}}, ["mesh.namespaces", "more than once"]),
    (
        "mesh namespace excluded from the CNI",
        {
            "istio": {"cni": {"excludeNamespaces": [*SYSTEM_NAMESPACES, "legacy"]}},
            "mesh": {"namespaces": ["legacy"]},
        },
        ["mesh.namespaces", "'legacy'", "cni.excludeNamespaces"],
    ),
    ("system namespace in the mesh", {"mesh": {"namespaces": ["kube-system"]}}, ["'kube-system'", "system"]),
    (
        "mesh namespace is the gateway's",
        {"mesh": {"namespaces": ["istio-ingress"]}},
        ["'istio-ingress'", "gateway"],
    ),
    ("unknown addon", {"istio": {"addons": {"jaeger": True}}}, ["addons.jaeger", "unknown setting"]),
    (
        "mesh namespace that already exists",
        {"mesh": {"namespaces": ["default"]}},
        ["mesh.namespaces", "'default'", "application namespace of its own"],
    ),
    (
        "gateway in a kube namespace",
        {"istio": {"gateway": {"namespace": "kube-public"}}},
        ["gateway.namespace", "'kube-public'", "namespace of its own or istio-system"],
    ),
    (
        "gateway name too long for a Helm release",
        {"istio": {"gateway": {"name": "g" * 54}}},
        ["gateway.name", "at most 53 characters"],
    ),
    ("empty istio version", {"istio": {"version": ""}}, ["istio.version", "''", "MAJOR.MINOR.PATCH"]),
    (
        "pinned version on a channel that upgrades minors",
        {"cluster": {"kubernetesVersion": "1.33", "autoUpgradeChannel": "rapid"}},
        ["kubernetesVersion", "'1.33'", "autoUpgradeChannel 'rapid'", "leave kubernetesVersion unset"],
    ),
    (
        "pinned patch version on the patch channel",
        {"cluster": {"kubernetesVersion": "1.33.2"}},
        ["kubernetesVersion", "'1.33.2'", "autoUpgradeChannel 'patch'", "MAJOR.MINOR"],
    ),
    (
        "Azure Policy denying istio-init without the CNI",
        {"cluster": {"azurePolicy": True}, "istio": {"cni": {"enabled": False}}},
        ["cluster.azurePolicy", "cni.enabled false", "istio-init"],
    ),
    (
        "pilot.cni.enabled contradicting cni.enabled",
        {"istio": {"pilot": {"cni": {"enabled": False}}}},
        ["istio.pilot.cni.enabled", "False", "must match"],
    ),
    (
        "istiod value that is not a chart key",
        {"istio": {"pilot": {"autoscaleEnabeld": False}}},
        ["aks-istio:istio.pilot.autoscaleEnabeld", "not a key of the Istio 1.30.3 chart"],
    ),
    (
        "global value that is not a chart key",
        {"istio": {"global": {"mtls": {"enabled": True}}}},
        ["aks-istio:istio.global.mtls", "not a key"],
    ),
    (
        "image tag apart from the chart version",
        {"istio": {"global": {"tag": "1.5.0"}}},
        ["istio.global.tag", "'1.5.0'", "istio.global.variant"],
    ),
    (
        "Entra ID admin group that is not a GUID",
        {"cluster": {"entraId": {"adminGroupObjectIds": ["platform-admins"]}}},
        ["entraId.adminGroupObjectIds", "'platform-admins'", "GUIDs"],
    ),
    (
        "Entra ID without an admin group",
        {"cluster": {"entraId": {}}},
        ["entraId.adminGroupObjectIds: not set", "at least one"],
    ),
    (
        "interactive kubelogin mode",
        {
            "cluster": {
                "entraId": {"adminGroupObjectIds": ["11111111-2222-3333-4444-555555555555"], "loginMode": "devicecode"}
            }
        },
        ["entraId.loginMode", "'devicecode'", "azurecli"],
    ),
    (
        "gateway service annotation that is not a string",
        {
            "istio": {
                "gateway": {"serviceAnnotations": {"service.beta.kubernetes.io/azure-load-balancer-internal": True}}
            }
        },
        ["gateway.serviceAnnotations.service.beta.kubernetes.io/azure-load-balancer-internal", "True", "quote"],
    ),
    ("zero concurrency", {"restart": {"maxConcurrent": 0}}, ["restart.maxConcurrent", "0", "from 1 to 100"]),
    ("negative timeout", {"restart": {"timeoutSeconds": -5}}, ["restart.timeoutSeconds", "-5"]),
    ("unknown top-level object", {"clusters": {}}, ["aks-istio:clusters", "unknown setting"]),
]


@pytest.mark.parametrize(("case", "objects", "fragments"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_fails_with_a_message_naming_key_value_and_allowed(
    case: str, objects: dict[str, Any], fragments: list[str]
) -> None:
    location = "west-europe" if case == "a location that is no Azure region" else "westeurope"
    with pytest.raises(ConfigError) as failure:
        settings_of(objects, location=location)
    for fragment in fragments:
        assert fragment in str(failure.value), f"{case}: {fragment!r} not in {failure.value}"
    assert "\n" not in str(failure.value), "one line, whatever the value"


def test_real_chart_keys_pass() -> None:
    istio = settings_of(
        {
            "istio": {
                "pilot": {
                    "autoscaleEnabled": False,
                    "env": {"PILOT_ENABLE_X": "true"},
                    "resources": {"requests": {"cpu": "1"}},
                },
                "global": {"logging": {"level": "default:info"}, "variant": "distroless", "hub": "myregistry.io/istio"},
                "meshConfig": {"accessLogFile": "/dev/stdout"},
            }
        }
    ).istio
    assert istio.pilot["autoscaleEnabled"] is False
    assert istio.global_values["variant"] == "distroless"


def test_zones_given_as_numbers_are_zones() -> None:
    settings = settings_of({"cluster": {"systemPool": {"zones": [1, 2, "3"]}}})
    assert settings.cluster.system_pool.zones == ("1", "2", "3")


def test_default_names_from_an_odd_stack_name_fail_clearly() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.name: the default 'aks-istio-dev\.eu', made from the stack name"):
        settings_of({}, stack="dev.eu")
    assert (
        settings_of({"cluster": {"name": "aks-eu"}}, stack="dev.eu").cluster.resource_group_name
        == "rg-aks-istio-dev.eu"
    )


def test_missing_location_is_named() -> None:
    with pytest.raises(ConfigError, match="azure-native:location: not set"):
        settings_of({}, location=None)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("aks-istio:restart", {"maxConcurrent": -1}, "maxConcurrent"),
        (
            "aks-istio:mesh",
            {"namespace": ["shop"]},
            r"^aks-istio:mesh\.namespace: unknown setting; did you mean 'namespaces'\? allowed keys of aks-istio:mesh",
        ),
        ("aks-istio:istio", {"version": "1.20.0"}, "1.24 or newer"),
    ],
)
def test_bad_input_stops_the_program_before_any_resource(key: str, value: Any, message: str) -> None:
    """One line (a RunError is shown without a traceback), and nothing registered first."""
    recorded: list[RecordedResource] = []
    with pytest.raises(pulumi.RunError, match=message) as caught:
        run_program("dev", {**stack_config("dev"), key: value}, recorded=recorded)
    assert "\n" not in str(caught.value) and caught.value.__suppress_context__
    assert recorded == []


def test_a_canary_is_read_with_its_revision_and_the_charts_both_planes_share() -> None:
    settings = settings_of(
        {
            "mesh": {"namespaces": ["shop", "payments"]},
            "istio": {"version": "1.29.6", "canary": {"version": "1.30.3", "namespaces": ["shop"]}},
        }
    )
    canary = settings.istio.canary
    assert (canary.version, canary.namespaces, canary.revision) == ("1.30.3", ("shop",), "1-30-3")
    assert settings.istio.shared_chart_version == "1.30.3"
    assert settings.istio.canary_proxy_image == "docker.io/istio/proxyv2:1.30.3"
    assert settings.istio.proxy_image == "docker.io/istio/proxyv2:1.29.6"
    assert settings_of({}).istio.canary is None


@pytest.mark.parametrize(
    ("objects", "secret"),
    [
        ({"restart": {"maxConcurrent": "hunter2-secret"}}, "hunter2-secret"),
        ({"restart": {"timeoutSeconds": 987654321}}, "987654321"),
        ({"cluster": {"tags": {"owner": ["hunter2-secret"]}}}, "hunter2-secret"),
        ({"mesh": {"namespaces": ["Hunter2_Secret"]}}, "Hunter2_Secret"),
    ],
    ids=["wrong-type", "out-of-range", "nested", "in-a-list"],
)
def test_a_bad_value_of_a_secret_key_is_never_shown(objects: dict[str, Any], secret: str) -> None:
    with pytest.raises(ConfigError) as shown:
        settings_of(objects)
    assert secret in str(shown.value), "shown when the key is not secret"
    with pytest.raises(ConfigError) as hidden:
        parse_settings("dev", objects, "westeurope", ROOT, secret=set(objects))
    assert secret not in str(hidden.value) and "[secret]" in str(hidden.value), hidden.value
    assert str(hidden.value).startswith("aks-istio:")


def test_the_program_hides_the_values_of_keys_pulumi_holds_as_secrets() -> None:
    config = {**stack_config("dev"), "aks-istio:restart": {"maxConcurrent": "hunter2-secret"}}
    with pytest.raises(pulumi.RunError) as caught:
        run_program("dev", config, secret_keys=["aks-istio:restart"])
    assert "hunter2-secret" not in str(caught.value)
    assert (
        str(caught.value)
        == "aks-istio:restart.maxConcurrent: [secret] is not allowed; expected a whole number from 1 to 100"
    )


def test_meshconfig_fields_pass_in_either_spelling_istiod_reads() -> None:
    settings = settings_of({"istio": {"meshConfig": {"accessLogFile": "/dev/stdout", "enable_tracing": True}}})
    assert settings.istio.mesh_config == {"accessLogFile": "/dev/stdout", "enable_tracing": True}


def test_chart_values_kubernetes_reads_as_a_number_or_a_string_pass_and_null_unsets() -> None:
    pilot = {"rollingMaxUnavailable": 0, "rollingMaxSurge": "50%", "pdb": {"minAvailable": "50%"}, "hub": None}
    settings = settings_of({"istio": {"pilot": pilot, "global": {"proxy": {"excludeInboundPorts": 8080}}}})
    assert settings.istio.pilot == pilot


@pytest.mark.parametrize("location", ["West Europe", "WestEurope", "westeurope"])
def test_a_region_is_known_by_its_name_or_display_name_in_any_case(location: str) -> None:
    assert settings_of({}, location=location).cluster.location == location


def test_stack_file_numbers_reach_the_settings_as_the_cli_passes_them() -> None:
    assert settings_of({"restart": {"timeoutSeconds": 1e3}}).restart.timeout_seconds == 1000


def test_a_long_secret_value_shown_shortened_is_hidden_all_the_same() -> None:
    secret = "s3cret-" * 60
    objects = {"istio": {"pilot": {"hub": [secret]}}}
    with pytest.raises(ConfigError) as caught:
        parse_settings("dev", objects, "westeurope", ROOT, secret={"istio"})
    assert "s3cret" not in str(caught.value)
