"""The folders are layers, and imports point only down them: the tree itself shows the program's flow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from offline.engine import ROOT

LAYERS: dict[str, set[str]] = {
    "aks_istio_outputs": set(),  # installed into app stacks on its own: it imports nothing of the project
    "settings": {"settings"},
    "components": {"settings", "components"},
    "restart": {"settings", "restart"},
    # The offline plan also evaluates the policy pack (`policy/`), as `pulumi preview --policy-pack` would.
    "offline": {"settings", "components", "restart", "offline", "aks_istio_outputs", "policy"},
    # The cluster double of the tests and the benchmarks: a Kubernetes of its own, knowing nothing of the program.
    "localkube": {"localkube"},
    # Measures the program's layers on localkube; nothing of the program imports it.
    "benchmarks": {"settings", "components", "restart", "offline", "localkube", "benchmarks"},
}
"""What each layer may import of the project (its own modules included)."""
COMPATIBILITY_SHIMS = {"components/restart.py": {"restart"}}
"""Old import paths kept alive for pickled state (see the module)."""
PROJECT_PACKAGES = {*LAYERS, "tests", "policy"}


def project_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & PROJECT_PACKAGES


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    modules = sorted((ROOT / layer).rglob("*.py"))
    assert modules, layer
    for module in modules:
        relative = module.relative_to(ROOT).as_posix()
        allowed = LAYERS[layer] | COMPATIBILITY_SHIMS.get(relative, set())
        assert project_imports(module) <= allowed, f"{relative} imports {project_imports(module) - allowed}"


def test_the_program_composes_the_layers_and_nothing_else() -> None:
    assert project_imports(ROOT / "__main__.py") == {"settings", "components", "restart"}


def test_tests_mirror_the_packages() -> None:
    for layer in ("settings", "components", "restart", "offline"):
        assert (ROOT / "tests" / layer).is_dir(), layer
    assert (ROOT / "tests/outputs").is_dir()
