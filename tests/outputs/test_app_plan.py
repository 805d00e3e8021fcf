"""`python examples/app/plan.py`: the app stack's offline plan, on the platform's own offline run, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from functools import cache

import pytest

from offline.engine import ROOT, fake_kubeconfig

PLAN = ROOT / "examples/app/plan.py"
PLATFORM_STACKS = sorted(path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in ROOT.glob("Pulumi.*.yaml"))
"""The platform's stacks are data: whichever `Pulumi.<stack>.yaml` files the checkout has."""


@cache
def plan(*args: str) -> subprocess.CompletedProcess[str]:
    # From another directory than the repository's: the script finds the platform on its own.
    return subprocess.run(
        [sys.executable, str(PLAN), *args], capture_output=True, text=True, timeout=300, cwd=ROOT / "examples"
    )


@pytest.mark.parametrize("platform", PLATFORM_STACKS)
def test_the_plan_lists_the_apps_resources_on_the_platform_stack(platform: str) -> None:
    result = plan("--platform-stack", platform)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"aks-istio-example-app: offline plan of stack 'dev' (3 resources), reading the platform stack "
        f"organization/aks-istio/{platform}"
    )
    for line in (
        "+ kubernetes:apps/v1:Deployment  http-echo",
        "+ kubernetes:core/v1:Service  http-echo",
        "+ pulumi:providers:kubernetes  platform-cluster",
        "      provider: platform-cluster",
        "          namespace: shop",
        "    namespace: shop",
        "    every rule passes",
    ):
        assert f"\n{line}\n" in result.stdout, line


def test_the_kubeconfig_stays_secret() -> None:
    result = plan()

    assert "kubeconfig: '[secret]'" in result.stdout
    kubeconfig = fake_kubeconfig("aks-istio-dev")  # what the offline platform's cluster hands out
    for needle in ("offline-placeholder-token", "aks-istio-dev.hcp.example", "current-context", kubeconfig):
        assert needle not in result.stdout + result.stderr


def test_the_plan_is_the_same_every_time() -> None:
    again = subprocess.run([sys.executable, str(PLAN)], capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert again.returncode == 0, again.stderr
    assert again.stdout == plan().stdout


def test_an_unknown_platform_stack_is_one_error_line() -> None:
    result = plan("--platform-stack", "nope")

    assert result.returncode == 2
    assert result.stdout == ""
    stacks = ", ".join(PLATFORM_STACKS)
    assert result.stderr.strip().splitlines()[-1] == f"error: no stack file Pulumi.nope.yaml (stacks: {stacks})"
