"""IstioOperator files: the article's file, each translated field, each refused field, conflicts, export."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from offline.engine import stack_config
from settings.model import SYSTEM_NAMESPACES, AddonSettings, CniSettings, GatewaySettings, IstioSettings, MeshSettings
from settings.operator_file import istio_config_from_operator, merge_operator_config, operator_manifest
from settings.parse import parse_istio
from settings.rules import ConfigError
from settings.stack import ROOT
from tests.support.reference import SEED_FILE, SEED_RELATIVE
from tests.support.scenarios import CNI_DISABLED, DEV, MINIMAL, PROD

SOURCE = "install-istio.yaml"
ALL_ADDONS = {"grafana": True, "tracing": True, "kiali": True, "prometheus": True}
# A file without spec.components.ingressGateways keeps the default profile's gateway where istioctl put it.
GATEWAY_IN_ISTIO_SYSTEM = {"gateway": {"namespace": "istio-system"}}


def operator(spec: Mapping[str, Any], **document: Any) -> dict[str, Any]:
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "spec": dict(spec),
        **document,
    }


def translate(spec: Mapping[str, Any], **document: Any) -> dict[str, Any]:
    return istio_config_from_operator(operator(spec, **document), SOURCE)


def write_operator_file(spec: Mapping[str, Any], directory: Path) -> Path:
    path = directory / SOURCE
    path.write_text(yaml.safe_dump(operator(spec)))
    return path


def without_file(settings: IstioSettings) -> IstioSettings:
    return dataclasses.replace(settings, operator_file=None)


# --- The article's file ---------------------------------------------------------------------------


def test_the_seed_file_translates_to_the_cni_exclusions_and_all_four_addons() -> None:
    document = yaml.safe_load(SEED_FILE.read_text())
    assert istio_config_from_operator(document, SOURCE) == {
        "cni": {"enabled": True, "excludeNamespaces": list(SYSTEM_NAMESPACES)},
        "addons": ALL_ADDONS,
        **GATEWAY_IN_ISTIO_SYSTEM,
    }


def test_the_seed_file_gives_exactly_the_settings_of_the_equivalent_stack_config() -> None:
    from_file = parse_istio({"operatorFile": SEED_RELATIVE}, ROOT)
    equivalent = parse_istio(
        {
            "cni": {"enabled": True, "excludeNamespaces": list(SYSTEM_NAMESPACES)},
            "addons": ALL_ADDONS,
            **GATEWAY_IN_ISTIO_SYSTEM,
        },
        Path.cwd(),
    )
    assert from_file.operator_file == SEED_RELATIVE
    assert without_file(from_file) == equivalent
    assert from_file.cni == CniSettings(enabled=True, exclude_namespaces=SYSTEM_NAMESPACES)
    assert from_file.addons == AddonSettings(grafana=True, tracing=True, kiali=True, prometheus=True)
    assert from_file.gateway == GatewaySettings(namespace="istio-system")


def test_the_dev_stack_agrees_with_the_seed_file() -> None:
    dev_istio = stack_config("dev")["aks-istio:istio"]
    assert "gateway" not in dev_istio  # so the file's gateway namespace does not conflict with it
    with_file = parse_istio({**dev_istio, "operatorFile": SEED_RELATIVE}, ROOT)
    assert without_file(with_file) == parse_istio({**dev_istio, **GATEWAY_IN_ISTIO_SYSTEM}, Path.cwd())


# --- Fields that translate ------------------------------------------------------------------------


def test_components_and_values_translate() -> None:
    config = translate(
        {
            "profile": "default",
            "hub": "myregistry.azurecr.io/istio",
            "tag": "1.30.3",
            "namespace": "istio-system",
            "components": {
                "base": {"enabled": True},
                "cni": {"enabled": False, "namespace": "istio-system"},
                "ingressGateways": [{"name": "edge", "namespace": "edge-ingress", "enabled": True}],
                "egressGateways": [{"name": "istio-egressgateway", "enabled": False}],
                "pilot": {
                    "enabled": True,
                    "k8s": {
                        "replicaCount": 2,
                        "hpaSpec": {"minReplicas": 2, "maxReplicas": 5},
                        "resources": {"requests": {"cpu": "500m"}},
                        "env": [{"name": "PILOT_TRACE_SAMPLING", "value": "10"}],
                        "nodeSelector": {"agentpool": "system"},
                    },
                },
                "telemetry": {"enabled": False},
            },
            "values": {
                "cni": {
                    "excludeNamespaces": ["istio-system", "kube-system"],
                    "chained": False,
                    "repair": {"enabled": False},
                },
                "global": {"logAsJson": True, "proxy": {"logLevel": "info"}},
                "pilot": {"traceSampling": 10.0, "cni": {"enabled": False}},
                "sidecarInjectorWebhook": {"rewriteAppHTTPProbe": False},
            },
            "meshConfig": {"accessLogFile": "/dev/stdout"},
        }
    )
    assert config == {
        "version": "1.30.3",
        "global": {
            "hub": "myregistry.azurecr.io/istio",
            "logAsJson": True,
            "proxy": {"logLevel": "info"},
        },
        "cni": {
            "enabled": False,
            "excludeNamespaces": ["istio-system", "kube-system"],
            "chained": False,
            "repair": False,
        },
        "gateway": {"enabled": True, "name": "edge", "namespace": "edge-ingress"},
        "pilot": {
            "replicaCount": 2,
            "autoscaleMin": 2,
            "autoscaleMax": 5,
            "resources": {"requests": {"cpu": "500m"}},
            "env": {"PILOT_TRACE_SAMPLING": "10"},
            "nodeSelector": {"agentpool": "system"},
            "traceSampling": 10.0,
            "sidecarInjectorWebhook": {"rewriteAppHTTPProbe": False},
        },
        "meshConfig": {"accessLogFile": "/dev/stdout"},
    }


def test_a_disabled_ingress_gateway_translates() -> None:
    config = translate({"components": {"ingressGateways": [{"name": "istio-ingressgateway", "enabled": False}]}})
    assert config == {"gateway": {"enabled": False, "name": "istio-ingressgateway"}}


def test_a_gateway_without_a_namespace_stays_where_istioctl_put_it(tmp_path: Path) -> None:
    # Moving it would replace its Service, and with it the LoadBalancer IP.
    for gateway in ({"name": "istio-ingressgateway"}, {"name": "istio-ingressgateway", "enabled": True}):
        config = translate({"components": {"ingressGateways": [gateway]}})
        assert config["gateway"]["namespace"] == "istio-system"
    spec = {"components": {"ingressGateways": [{"name": "istio-ingressgateway", "enabled": True}]}}
    settings = parse_istio({"operatorFile": write_operator_file(spec, tmp_path).name}, tmp_path)
    assert settings.gateway == GatewaySettings(enabled=True, name="istio-ingressgateway", namespace="istio-system")


def test_the_stack_config_cannot_move_a_gateway_the_file_leaves_in_istio_system() -> None:
    from_file = translate({"components": {"ingressGateways": [{"name": "istio-ingressgateway"}]}})
    with pytest.raises(ConfigError, match=r"gateway\.namespace.*istio-system when left out"):
        merge_operator_config({"gateway": {"namespace": "istio-ingress"}}, from_file, SOURCE)


def test_a_file_without_ingress_gateways_keeps_the_default_profile_gateway_in_istio_system(tmp_path: Path) -> None:
    # istioctl's default profile installs istio-ingressgateway in istio-system; moving it would
    # replace its Service, and with it the LoadBalancer IP.
    spec = {"components": {"cni": {"enabled": True}}}
    assert translate(spec) == {"cni": {"enabled": True}, **GATEWAY_IN_ISTIO_SYSTEM}
    path = write_operator_file(spec, tmp_path).name
    settings = parse_istio({"operatorFile": path}, tmp_path)
    assert settings.gateway == GatewaySettings(enabled=True, name="istio-ingressgateway", namespace="istio-system")
    with pytest.raises(ConfigError) as failure:
        parse_istio({"operatorFile": path, "gateway": {"namespace": "istio-ingress"}}, tmp_path)
    message = str(failure.value)
    assert "aks-istio:istio.gateway.namespace" in message
    assert "'istio-ingress'" in message and "'istio-system'" in message
    assert SOURCE in message and "spec.components.ingressGateways[0].namespace" in message


@pytest.mark.parametrize("field", ["tag", "values.global.tag"])
def test_the_image_tag_is_the_istio_version(field: str) -> None:
    spec: dict[str, Any] = {"tag": "1.29.2"} if field == "tag" else {"values": {"global": {"tag": "1.29.2"}}}
    assert translate(spec) == {"version": "1.29.2", **GATEWAY_IN_ISTIO_SYSTEM}
    merged = merge_operator_config({"version": "1.29.2"}, translate(spec), SOURCE)
    assert merged == {"version": "1.29.2", **GATEWAY_IN_ISTIO_SYSTEM}
    with pytest.raises(ConfigError, match=r"istio\.version.*'1\.30\.3'.*'1\.29\.2'.*spec\.tag"):
        merge_operator_config({"version": "1.30.3"}, translate(spec), SOURCE)


def test_a_tag_with_a_variant_fails_pointing_to_global_variant() -> None:
    with pytest.raises(ConfigError, match=r"spec\.tag: '1\.30\.3-distroless'.*values\.global\.variant"):
        translate({"tag": "1.30.3-distroless"})
    with pytest.raises(ConfigError, match=r"spec\.values\.global\.tag: 1\.3 is not supported"):
        translate({"values": {"global": {"tag": 1.3}}})


def test_an_old_tag_fails_naming_it_instead_of_mixing_versions() -> None:
    with pytest.raises(ConfigError, match=r"spec\.tag: '1\.5\.0' is not supported.*1\.24 or newer"):
        translate({"tag": "1.5.0"})
    with pytest.raises(ConfigError, match=r"spec\.values\.global\.tag: '1\.30\.2' contradicts '1\.30\.3'"):
        translate({"tag": "1.30.3", "values": {"global": {"tag": "1.30.2"}}})


def test_pilot_cni_alone_sets_the_cni_switch() -> None:
    assert translate({"values": {"pilot": {"cni": {"enabled": True, "provider": "default"}}}}) == {
        "pilot": {"cni": {"provider": "default"}},
        "cni": {"enabled": True},
        **GATEWAY_IN_ISTIO_SYSTEM,
    }


def test_the_pre_1_6_cni_switch_is_an_alias() -> None:
    assert translate({"values": {"cni": {"enabled": True}}}) == {"cni": {"enabled": True}, **GATEWAY_IN_ISTIO_SYSTEM}


def test_legacy_values_mesh_config_merges_with_spec_mesh_config() -> None:
    config = translate(
        {"meshConfig": {"accessLogFile": "/dev/stdout"}, "values": {"meshConfig": {"enableTracing": True}}}
    )
    assert config == {"meshConfig": {"enableTracing": True, "accessLogFile": "/dev/stdout"}, **GATEWAY_IN_ISTIO_SYSTEM}


def test_disabled_addons_and_unknown_disabled_addons_translate() -> None:
    config = translate({"addonComponents": {"grafana": {"enabled": False}, "istiocoredns": {"enabled": False}}})
    assert config == {"addons": {"grafana": False}, **GATEWAY_IN_ISTIO_SYSTEM}


# --- Fields that cannot be honoured -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {"components": {"egressGateways": [{"name": "istio-egressgateway", "enabled": True}]}},
            r"spec\.components\.egressGateways\[0\]",
        ),
        (
            {"components": {"ingressGateways": [{"name": "a", "enabled": True}, {"name": "b", "enabled": True}]}},
            r"spec\.components\.ingressGateways: 2 gateways",
        ),
        (
            {"components": {"ingressGateways": [{"name": "a", "k8s": {"replicaCount": 3}}]}},
            r"spec\.components\.ingressGateways\[0\]\.k8s",
        ),
        (
            {"components": {"ingressGateways": [{"name": "a", "label": {"x": "y"}}]}},
            r"spec\.components\.ingressGateways\[0\]\.label",
        ),
        ({"components": {"pilot": {"enabled": False}}}, r"spec\.components\.pilot\.enabled"),
        ({"components": {"pilot": {"k8s": {"strategy": {}}}}}, r"spec\.components\.pilot\.k8s\.strategy"),
        (
            {"components": {"pilot": {"k8s": {"hpaSpec": {"metrics": []}}}}},
            r"spec\.components\.pilot\.k8s\.hpaSpec\.metrics",
        ),
        (
            {"components": {"pilot": {"k8s": {"env": [{"name": "A", "valueFrom": {}}]}}}},
            r"spec\.components\.pilot\.k8s\.env\[0\]",
        ),
        ({"components": {"base": {"enabled": False}}}, r"spec\.components\.base\.enabled"),
        (
            {"components": {"cni": {"enabled": True, "namespace": "kube-system"}}},
            r"spec\.components\.cni\.namespace",
        ),
        ({"components": {"cni": {"enabled": True, "k8s": {}}}}, r"spec\.components\.cni\.k8s"),
        ({"components": {"istiodRemote": {"enabled": True}}}, r"spec\.components\.istiodRemote\.enabled"),
        ({"components": {"ztunnel": {"enabled": True}}}, r"spec\.components\.ztunnel\.enabled"),
        ({"components": {"cni": {"enabled": "yes"}}}, r"spec\.components\.cni\.enabled: 'yes'"),
        ({"profile": "demo"}, r"spec\.profile: 'demo' is not supported"),
        ({"revision": "1-30"}, r"spec\.revision"),
        ({"namespace": "mesh"}, r"spec\.namespace"),
        ({"installPackagePath": "/charts"}, r"spec\.installPackagePath"),
        ({"values": {"cni": {"cniBinDir": "/opt/cni/bin"}}}, r"spec\.values\.cni\.cniBinDir"),
        ({"values": {"cni": {"repair": {"deletePods": True}}}}, r"spec\.values\.cni\.repair\.deletePods"),
        ({"values": {"gateways": {"istio-ingressgateway": {}}}}, r"spec\.values\.gateways"),
        ({"values": {"kiali": {"enabled": True}}}, r"spec\.values\.kiali: addon chart values"),
        ({"values": {"pilot": {"enabled": False}}}, r"spec\.values\.pilot\.enabled"),
        ({"values": {"global": {"istioNamespace": "mesh"}}}, r"spec\.values\.global\.istioNamespace"),
        (
            {"components": {"cni": {"enabled": True}}, "values": {"pilot": {"cni": {"enabled": False}}}},
            r"spec\.values\.pilot\.cni\.enabled: False contradicts",
        ),
        (
            {"hub": "a.io", "values": {"global": {"hub": "b.io"}}},
            r"spec\.values\.global\.hub: 'b\.io' contradicts 'a\.io'",
        ),
        ({"addonComponents": {"istiocoredns": {"enabled": True}}}, r"spec\.addonComponents\.istiocoredns"),
        (
            {"addonComponents": {"grafana": {"enabled": True, "k8s": {}}}},
            r"spec\.addonComponents\.grafana\.k8s",
        ),
    ],
)
def test_a_field_that_cannot_be_honoured_fails_naming_it_and_the_file(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"operatorFile '{SOURCE}': {field}"):
        translate(spec)


@pytest.mark.parametrize(
    "document",
    [
        {"apiVersion": "install.istio.io/v1alpha1", "kind": "Deployment"},
        {"apiVersion": "v1", "kind": "IstioOperator"},
        {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "data": {}},
    ],
)
def test_a_document_that_is_not_an_istio_operator_fails(document: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=SOURCE):
        istio_config_from_operator(document, SOURCE)


# --- Merging with stack config --------------------------------------------------------------------


def test_settings_given_in_both_places_must_agree() -> None:
    from_file = translate(yaml.safe_load(SEED_FILE.read_text())["spec"])
    with pytest.raises(ConfigError) as failure:
        merge_operator_config({"cni": {"enabled": False}}, from_file, SOURCE)
    message = str(failure.value)
    assert "aks-istio:istio.cni.enabled" in message and "False" in message and "True" in message
    assert SOURCE in message and "spec.components.cni.enabled" in message
    with pytest.raises(ConfigError, match=r"addons\.kiali.*spec\.addonComponents\.kiali\.enabled"):
        merge_operator_config({"addons": {"kiali": False}}, from_file, SOURCE)
    with pytest.raises(ConfigError, match=r"cni\.excludeNamespaces.*spec\.values\.cni\.excludeNamespaces"):
        merge_operator_config({"cni": {"excludeNamespaces": ["istio-system"]}}, from_file, SOURCE)


def test_exclusions_given_in_both_places_agree_in_any_order() -> None:
    from_file = translate(yaml.safe_load(SEED_FILE.read_text())["spec"])
    reordered = list(reversed(SYSTEM_NAMESPACES))
    merged = merge_operator_config({"cni": {"excludeNamespaces": reordered}}, from_file, SOURCE)
    assert merged["cni"]["excludeNamespaces"] == reordered  # the stack config's order
    with pytest.raises(ConfigError, match=r"cni\.excludeNamespaces"):
        merge_operator_config({"cni": {"excludeNamespaces": [*reordered, "gatekeeper-system"]}}, from_file, SOURCE)


def test_agreeing_and_complementary_settings_merge() -> None:
    from_file = translate(yaml.safe_load(SEED_FILE.read_text())["spec"])
    merged = merge_operator_config(
        {"version": "1.29.2", "cni": {"enabled": True, "chained": True}, "gateway": {"enabled": False}},
        from_file,
        SOURCE,
    )
    assert merged == {
        "version": "1.29.2",
        "cni": {"enabled": True, "chained": True, "excludeNamespaces": list(SYSTEM_NAMESPACES)},
        "gateway": {"enabled": False, "namespace": "istio-system"},
        "addons": ALL_ADDONS,
    }


def test_a_conflict_reaches_the_stack_settings_as_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"spec\.components\.cni\.enabled"):
        parse_istio({"operatorFile": SEED_RELATIVE, "cni": {"enabled": False}}, ROOT)


# --- Export ---------------------------------------------------------------------------------------

ROUND_TRIP = {"defaults": IstioSettings(), "dev": DEV, "prod": PROD, "cni-disabled": CNI_DISABLED, "minimal": MINIMAL}


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_export_then_import_gives_the_same_settings(name: str, tmp_path: Path) -> None:
    settings = ROUND_TRIP[name]
    exported = tmp_path / "istio-operator.yaml"
    exported.write_text(operator_manifest(settings, MeshSettings(("shop",))))
    # The Istio version is istioctl's own, not part of the file: it stays in stack config.
    imported = parse_istio({"version": settings.version, "operatorFile": exported.name}, tmp_path)
    assert without_file(imported) == settings


def test_the_export_is_the_modern_istioctl_form() -> None:
    settings = ROUND_TRIP["dev"]
    text = operator_manifest(settings, MeshSettings(("shop", "payments")))
    document = yaml.safe_load(text)
    assert (document["apiVersion"], document["kind"]) == ("install.istio.io/v1alpha1", "IstioOperator")
    spec = document["spec"]
    assert spec["components"]["cni"] == {"enabled": True, "namespace": "istio-system"}
    assert spec["values"]["cni"]["excludeNamespaces"] == list(SYSTEM_NAMESPACES)
    assert spec["values"]["pilot"]["cni"] == {"enabled": True}
    assert spec["components"]["ingressGateways"] == [
        {"name": "istio-ingressgateway", "namespace": "istio-ingress", "enabled": True}
    ]
    # istioctl no longer has addon components: they are named in a comment and an annotation.
    assert "addonComponents" not in spec
    assert document["metadata"]["annotations"]["aks-istio/addons"] == "grafana,tracing,kiali,prometheus"
    assert "# enabled: grafana, tracing, kiali, prometheus" in text
    assert "shop, payments" in text and "enforce=baseline" in text


def test_gateway_service_annotations_come_from_the_operator_files_k8s_block() -> None:
    spec = {
        "components": {
            "ingressGateways": [
                {
                    "name": "istio-ingressgateway",
                    "enabled": True,
                    "k8s": {"serviceAnnotations": {"service.beta.kubernetes.io/azure-pip-name": "pip-mesh"}},
                }
            ]
        }
    }
    config = istio_config_from_operator(
        {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": spec}, SOURCE
    )
    assert config["gateway"]["serviceAnnotations"] == {"service.beta.kubernetes.io/azure-pip-name": "pip-mesh"}
    spec["components"]["ingressGateways"][0]["k8s"]["resources"] = {"requests": {"cpu": "1"}}
    with pytest.raises(ConfigError, match=r"ingressGateways\[0\]\.k8s.*only serviceAnnotations maps"):
        istio_config_from_operator(
            {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": spec}, SOURCE
        )


# --- Hostile files and paths ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "/dev/zero",
            r"operatorFile: '/dev/zero' is not allowed; expected a relative path to a file inside the project",
        ),
        ("/dev/stdin", r"'/dev/stdin' is not allowed"),
        ("../../etc/passwd", r"'../../etc/passwd' is not allowed; .* \(it resolves outside it\)"),
        ("a\0b.yaml", r"'a\\x00b.yaml' is not allowed"),
        ("missing.yaml", r"operatorFile: 'missing.yaml': not a regular file"),
    ],
)
def test_an_operator_file_outside_the_project_or_not_a_file_is_refused_in_one_line(
    tmp_path: Path, setting: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        parse_istio({"operatorFile": setting}, tmp_path)
    assert "\n" not in str(caught.value)


def test_a_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    project, outside = tmp_path / "project", tmp_path / "secret.yaml"
    project.mkdir()
    outside.write_text("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n")
    (project / "istio.yaml").symlink_to(outside)
    with pytest.raises(ConfigError, match=r"resolves outside it"):
        parse_istio({"operatorFile": "istio.yaml"}, project)


def test_an_operator_alias_bomb_or_binary_file_is_refused_within_a_second(tmp_path: Path) -> None:
    from tests.settings.test_yaml_file import BOMB

    (tmp_path / "bomb.yaml").write_text(BOMB)
    (tmp_path / "binary.yaml").write_bytes(b"spec:\n  tag: \xff\xfe\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"operatorFile: 'bomb.yaml':\d+:\d+: refused: the document expands"):
        parse_istio({"operatorFile": "bomb.yaml"}, tmp_path)
    with pytest.raises(ConfigError, match=r"operatorFile: 'binary.yaml': not UTF-8 text"):
        parse_istio({"operatorFile": "binary.yaml"}, tmp_path)
    assert time.monotonic() - started < 1.0


def test_a_key_given_twice_in_an_operator_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "twice.yaml").write_text("spec:\n  tag: 1.30.3\n  tag: 1.29.6\n")
    with pytest.raises(ConfigError, match=r"'twice.yaml':3:3: the key 'tag' is given twice"):
        parse_istio({"operatorFile": "twice.yaml"}, tmp_path)


DOTTED = IstioSettings(
    pilot={
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "podAnnotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        "env": {"PILOT_ENABLE.STATUS": "true"},
    },
    mesh_config={"defaultConfig": {"proxyMetadata": {"ISTIO_META.DNS_CAPTURE": "true"}}},
)


def test_map_keys_with_dots_are_data_not_paths_and_survive_a_round_trip(tmp_path: Path) -> None:
    """`kubernetes.io/os` stays one key: dots are path separators only where the IstioOperator schema has a path."""
    spec = {
        "values": {
            "pilot": dict(DOTTED.pilot),
        },
        "meshConfig": dict(DOTTED.mesh_config),
    }
    config = translate(spec)
    assert config["pilot"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert config["pilot"]["env"] == {"PILOT_ENABLE.STATUS": "true"}
    assert config["meshConfig"]["defaultConfig"]["proxyMetadata"] == {"ISTIO_META.DNS_CAPTURE": "true"}
    # read -> export -> read gives the same settings, for these keys as for the article's file
    exported = tmp_path / "exported.yaml"
    exported.write_text(operator_manifest(DOTTED, MeshSettings(("shop",))))
    again = parse_istio({"version": DOTTED.version, "operatorFile": exported.name}, tmp_path)
    assert (again.pilot, again.mesh_config) == (DOTTED.pilot, DOTTED.mesh_config)
    seed = parse_istio({"operatorFile": SEED_RELATIVE}, ROOT)
    (tmp_path / "seed-exported.yaml").write_text(operator_manifest(seed, MeshSettings(())))
    assert without_file(parse_istio({"operatorFile": "seed-exported.yaml"}, tmp_path)) == without_file(seed)
