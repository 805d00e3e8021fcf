"""`make plan`: the offline rendering of each committed stack, as people and pull requests read it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest

from offline.engine import ROOT, ProgramRun, RecordedResource, available_stacks, run_program, stack_config
from offline.render import as_text


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offline", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("stack", available_stacks())
def test_text_plan_shows_the_tree_hides_secrets_and_says_what_is_unknown(stack: str) -> None:
    result = plan("--stack", stack)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"offline plan of stack '{stack}'" in text
    assert "unknown offline" in text
    assert "+ aks-istio:cluster:AksCluster  platform" in text
    assert "    + azure-native:containerservice:ManagedCluster  platform-aks" in text
    assert "kubeconfig: '[secret]'" in text
    assert "oidcIssuerUrl: (known after apply)" in text
    assert "offline-placeholder-token" not in text and "apiVersion: v1\nclusters" not in text


def test_text_plan_is_byte_identical_across_runs_and_in_install_order() -> None:
    first, again = plan("--stack", "prod"), plan("--stack", "prod")
    assert first.stdout == again.stdout
    order = [line.split()[-1] for line in first.stdout.splitlines() if line.lstrip().startswith("+ ")]
    assert order.index("platform-k8s") < order.index("mesh") < order.index("sidecar-restart")
    assert order.index("mesh-base") < order.index("mesh-cni") < order.index("mesh-istiod") < order.index("mesh-gateway")


def test_json_plan_is_stable_for_diffs_and_differs_between_stacks() -> None:
    first, again, prod = plan("--format", "json"), plan("--format", "json"), plan("--stack", "prod", "--format", "json")
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    dev_doc, prod_doc = json.loads(first.stdout), json.loads(prod.stdout)
    assert dev_doc["outputs"]["kubeconfig"] == "[secret]"
    cluster = next(r for r in dev_doc["resources"] if r["name"] == "platform-aks")
    assert cluster["parent"] == "platform" and cluster["dependsOn"] == ["platform-rg"]
    assert {r["name"] for r in prod_doc["resources"]} - {r["name"] for r in dev_doc["resources"]} >= {
        "platform-userpool",
        "platform-net-admin-policy",
    }


def test_mermaid_plan_draws_parents_and_dependencies() -> None:
    result = plan("--format", "mermaid")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("graph TD\n")
    assert "nplatform --> nplatform_aks" in result.stdout
    assert "nplatform_rg -. dependsOn .-> nplatform_aks" in result.stdout


def test_unknown_stack_fails_clearly() -> None:
    result = plan("--stack", "no-such-stack")
    assert result.returncode == 2
    assert f"no stack file Pulumi.no-such-stack.yaml (stacks: {', '.join(available_stacks())})" in result.stderr


def test_a_stack_with_a_canary_plans_both_control_planes() -> None:
    from offline.engine import run_program, stack_config
    from offline.render import as_text

    config = stack_config("dev")
    config["aks-istio:istio"] = {**config["aks-istio:istio"], "version": "1.29.6"}
    config["aks-istio:istio"]["canary"] = {"version": "1.30.3", "namespaces": ["shop"]}
    text = as_text(run_program("dev", config, preview=True))
    assert "+ kubernetes:helm.sh/v3:Release  mesh-istiod\n" in text
    assert "+ kubernetes:helm.sh/v3:Release  mesh-istiod-canary\n" in text
    assert "name: istiod-1-30-3" in text and "revision: 1-30-3" in text
    assert "istio.io/rev: canary" in text
    assert "+ pulumi-python:dynamic/istio:IstioUpgradeGuard  istio-upgrade-guard" in text


@pytest.mark.parametrize("output", ["mermaid", "json"])
def test_every_format_is_byte_identical_across_runs(output: str) -> None:
    first, again = plan("--stack", "dev", "--format", output), plan("--stack", "dev", "--format", output)
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout


def test_the_plan_shows_the_policy_packs_verdict() -> None:
    from offline.engine import run_program, stack_config
    from offline.render import as_text

    assert "Policy pack `policy/`" in plan("--stack", "dev").stdout
    assert "    every rule passes\n" in plan("--stack", "dev").stdout
    config = stack_config("dev")
    config["aks-istio:istio"] = {**config["aks-istio:istio"], "cni": {"enabled": False}}
    config["aks-istio:cluster"] = {**config["aks-istio:cluster"], "azurePolicy": False}
    text = as_text(run_program("dev", config, preview=True))
    verdict = text[text.index("Policy pack") :]
    assert "mandatory: istio-cni-with-system-namespaces-excluded: istiod release" in verdict
    assert "pilot.cni.enabled to False" in verdict
    assert "blocks `pulumi preview`" in verdict


class CountingList(list[RecordedResource]):
    """The run's resources, counting every resource a renderer visits by iterating over them."""

    visits = 0

    def __iter__(self) -> Iterator[RecordedResource]:
        for resource in super().__iter__():
            CountingList.visits += 1
            yield resource


def with_mesh_namespaces(run: ProgramRun, count: int) -> ProgramRun:
    """The run, with `count` mesh namespaces registered as the program registers its two (same parent, same
    dependencies, and the restart after each)."""
    template = run.named("mesh-ns-shop")
    restart = run.named("sidecar-restart")
    added = []
    for index in range(count - 2):
        name = f"mesh-ns-team-{index}"
        added.append(replace(template, name=name, urn=template.urn.rsplit("::", 1)[0] + f"::{name}"))
    restart = replace(restart, dependencies=[*restart.dependencies, *(r.urn for r in added)])
    others = [r for r in run.resources if r.name != "sidecar-restart"]
    return replace(run, resources=CountingList([*others, *added, restart]))


def test_the_text_plan_of_a_large_stack_visits_each_resource_a_bounded_number_of_times() -> None:
    run = run_program("dev", stack_config("dev"), preview=True)
    small = with_mesh_namespaces(run, 200)
    CountingList.visits = 0
    as_text(small)
    small_visits = CountingList.visits
    large = with_mesh_namespaces(run, 2000)
    CountingList.visits = 0
    text = as_text(large)
    large_visits = CountingList.visits
    assert text.count("+ kubernetes:core/v1:Namespace  mesh-ns-") == 2000
    # Linear: ten times the namespaces, at most about ten times the visits (quadratic would be a hundred).
    assert large_visits <= 12 * small_visits, (small_visits, large_visits)
    assert large_visits <= 20 * len(large.resources), large_visits
