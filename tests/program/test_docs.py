"""The documentation, `Pulumi.yaml` and the settings model describe the same keys, and the docs' links resolve.

The keys are derived from the settings model (every dataclass reachable from `StackSettings`) and checked
against what the parser accepts, so a key added to the model or the parser shows up here until it is
documented in `docs/configuration.md` and in `Pulumi.yaml`'s `config:` block.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from offline.engine import ROOT, run_program
from settings import model
from settings.parse import SECTIONS, parse_settings
from settings.rules import PROJECT, ConfigError
from settings.stack import stack_config, stack_settings

DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
LOCATION_KEY = "azure-native:location"

FIELD_KEYS = {(model.IstioSettings, "global_values"): "global"}
"""Fields whose config key is not their camelCase name (see `settings/parse.py`)."""
NOT_CONFIG_KEYS = {
    (model.ClusterSettings, "environment"),
    (model.ClusterSettings, "location"),
    (model.MeshSettings, "ambient"),
}
"""Fields that are not keys of their section: the stack's name, `azure-native:location`, and the ambient namespaces
(the items of `mesh.namespaces` with `mode: ambient`, whose keys `test_the_mesh_namespace_item_keys_are_documented`
checks)."""

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)


def camel_case(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def dataclass_of(annotation: Any) -> type | None:
    """The settings dataclass an annotation names (`X`, `X | None`), if it names one."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        found = [dataclass_of(arg) for arg in typing.get_args(annotation)]
        return next((cls for cls in found if cls is not None), None)
    return annotation if isinstance(annotation, type) and dataclasses.is_dataclass(annotation) else None


def model_keys(cls: type = model.StackSettings, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every settings key, e.g. `("cluster", "systemPool", "vmSize")`, walked from `StackSettings`."""
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if (cls, spec.name) in NOT_CONFIG_KEYS:
            continue
        key = FIELD_KEYS.get((cls, spec.name), camel_case(spec.name))
        below = dataclass_of(hints[spec.name])
        if path:  # StackSettings' own fields are the sections, not keys
            yield (*path, key)
        if below is not None:
            yield from model_keys(below, (*path, key))


def keys_of(section: str) -> list[tuple[str, ...]]:
    return [key[1:] for key in model_keys() if key[0] == section]


def markdown_sections(text: str, level: str = "## ") -> dict[str, str]:
    """Heading text -> the text below it, up to the next heading of the same level."""
    sections: dict[str, str] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith(level):
            heading = line[len(level) :].strip()
            sections[heading] = ""
        elif heading is not None:
            sections[heading] += line + "\n"
    return sections


def config_sections() -> dict[str, str]:
    """The sections of docs/configuration.md headed by a config key, e.g. "## `aks-istio:cluster`"."""
    found = {}
    for heading, body in markdown_sections(CONFIGURATION.read_text()).items():
        if match := re.fullmatch(r"`([a-z-]+:[A-Za-z]+)`", heading):
            found[match.group(1)] = body
    return found


def project_config() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert isinstance(config, dict)
    return config


def code_spans(text: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", text))


# --- the keys: the model, the parser, Pulumi.yaml and docs/configuration.md ---------------------------------


def test_the_model_walk_finds_every_section_and_nested_object() -> None:
    keys = {".".join(key) for key in model_keys()}
    assert {key.split(".")[0] for key in keys} == set(SECTIONS)
    assert {
        "cluster.systemPool.vmSize",
        "cluster.userPool.zones",
        "cluster.entraId.loginMode",
        "istio.cni.excludeNamespaces",
        "istio.gateway.serviceAnnotations",
        "istio.addons.kiali",
        "istio.global",
        "istio.canary.namespaces",
        "restart.timeoutSeconds",
    } <= keys
    assert not {"cluster.environment", "cluster.location", "istio.globalValues"} & keys


def allowed_keys_of(key: str) -> set[str]:
    """What the parser accepts in the object at `key` (e.g. `istio.cni`): it lists them for an unknown key."""
    # Just enough valid values for each object to be built, so that the unknown key is what fails.
    config: dict[str, Any] = {
        "istio": {"version": "1.29.6", "canary": {"version": "1.30.3"}},
        "cluster": {"entraId": {"adminGroupObjectIds": ["00000000-0000-0000-0000-000000000000"]}, "userPool": {}},
    }
    node = config
    for part in key.split("."):
        node = node.setdefault(part, {})
    node["noSuchKey"] = True
    with pytest.raises(ConfigError, match=r"unknown setting") as error:
        parse_settings("dev", config, "westeurope", ROOT)
    listed = re.search(rf"allowed keys of {PROJECT}:{re.escape(key)} are (.+)$", str(error.value))
    assert listed, str(error.value)
    return set(listed.group(1).split(", "))


OBJECT_KEYS = sorted(
    {".".join(key) for key in model_keys() if len(key) == 1}
    | {".".join(key[:-1]) for key in model_keys() if len(key) > 1}
)


@pytest.mark.parametrize("key", OBJECT_KEYS)
def test_the_model_keys_are_the_keys_the_parser_accepts(key: str) -> None:
    depth = key.count(".") + 1
    from_model = {path[-1] for path in model_keys() if len(path) == depth + 1 and ".".join(path[:-1]) == key}
    assert from_model == allowed_keys_of(key)


def test_every_declared_config_key_has_a_section_in_the_reference_and_back() -> None:
    documented = set(config_sections())
    declared = set(project_config())
    assert declared == {f"{PROJECT}:{section}" for section in SECTIONS}
    # azure-native:location is the provider's key, read by the program; Pulumi.yaml can only declare its own.
    assert documented == declared | {LOCATION_KEY}


@pytest.mark.parametrize("section", SECTIONS)
def test_every_settings_key_is_in_the_configuration_reference(section: str) -> None:
    spans = code_spans(config_sections()[f"{PROJECT}:{section}"])

    def documented(key: tuple[str, ...]) -> bool:
        # As `key`, as `parent.key`, or (an object) through its keys, `key.child`.
        return key[-1] in spans or ".".join(key[-2:]) in spans or any(s.startswith(f"{key[-1]}.") for s in spans)

    missing = [".".join(key) for key in keys_of(section) if not documented(key)]
    assert not missing, f"docs/configuration.md, section {PROJECT}:{section}, lacks {missing}"


def test_the_location_is_in_the_configuration_reference() -> None:
    assert LOCATION_KEY in code_spans(config_sections()[LOCATION_KEY])


@pytest.mark.parametrize("section", SECTIONS)
def test_every_settings_key_is_in_the_project_file_description(section: str) -> None:
    description = project_config()[f"{PROJECT}:{section}"]["description"]
    missing = [".".join(key) for key in keys_of(section) if not re.search(rf"(?<![\w.]){key[-1]}(?!\w)", description)]
    assert not missing, f"Pulumi.yaml, {PROJECT}:{section}, does not describe {missing}"


def test_the_mesh_namespace_item_keys_are_documented() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting") as error:
        parse_settings("dev", {"mesh": {"namespaces": [{"name": "shop", "noSuchKey": 1}]}}, "westeurope", ROOT)
    listed = re.search(r"are (.+)$", str(error.value))
    assert listed, str(error.value)
    keys = set(listed.group(1).split(", "))
    assert keys == {"name", "mode", "waypoint", "acknowledge"}
    spans = code_spans(config_sections()[f"{PROJECT}:mesh"])
    description = project_config()[f"{PROJECT}:mesh"]["description"]
    assert {f"namespaces[].{key}" for key in keys} <= spans
    assert all(re.search(rf"(?<![\w.]){key}(?!\w)", description) for key in keys)


def test_every_stack_output_is_in_the_configuration_reference() -> None:
    from offline.engine import stack_config as committed

    outputs = run_program("dev", committed("dev"), preview=True).outputs
    table = markdown_sections(CONFIGURATION.read_text())["Stack outputs"]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))
    assert documented == set(outputs)


# --- links -------------------------------------------------------------------------------------------------


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "examples/app/README.md"]


def github_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    anchors: set[str] = set()
    for line in CODE_BLOCK.sub("", text).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            candidate, n = slug, 0
            while candidate in anchors:
                n += 1
                candidate = f"{slug}-{n}"
            anchors.add(candidate)
    return anchors


def relative_links(path: Path) -> list[str]:
    targets = LINK.findall(CODE_BLOCK.sub("", path.read_text()))
    return [target for target in targets if not re.match(r"[a-z]+:", target)]


def test_the_readme_links_every_doc() -> None:
    linked = {(ROOT / target.split("#")[0]).resolve() for target in relative_links(ROOT / "README.md")}
    docs = {path.resolve() for path in DOCS.glob("*.md")}
    assert docs <= linked, f"README.md links none of {sorted(p.name for p in docs - linked)}"
    for target in linked:
        if target.parent == DOCS.resolve():
            assert target.is_file(), target


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(target)
            continue
        if anchor and resolved.suffix == ".md" and anchor not in github_anchors(resolved.read_text()):
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)}: broken links {broken}"


def test_the_readme_stays_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 170


# --- adding an environment -----------------------------------------------------------------------------------


def test_the_runbook_says_how_to_add_an_environment() -> None:
    sections = markdown_sections((DOCS / "operations.md").read_text())
    runbook = next(body for heading, body in sections.items() if "environment" in heading.lower())
    assert "Pulumi.<stack>.yaml" in runbook
    assert "GitHub environment" in runbook
    assert "repo:<owner>/<repo>:environment:" in runbook, "the federated credential's subject"


def test_a_third_stack_file_parses_and_previews(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.staging.yaml")

    settings = stack_settings("staging", tmp_path)
    assert (settings.cluster.name, settings.cluster.environment) == ("aks-istio-staging", "staging")

    run = run_program("staging", stack_config("staging", tmp_path), preview=True)
    assert run.outputs["clusterName"] == "aks-istio-staging"
    assert run.outputs["resourceGroupName"] == "rg-aks-istio-staging"
    assert run.secret_outputs == {"kubeconfig"}
    assert run.named("platform-aks").inputs["tags"]["environment"] == "staging"
