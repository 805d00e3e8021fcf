"""The GitHub workflows, as GitHub reads them: tests gate deploys, and the stacks come from the stack files.

The workflows are linted by `.ci/lint-workflows` (schema, zizmor); these tests pin what a user relies on:
`ci` runs `.ci/run` on every pull request and push to main, `up` deploys only a commit `ci` passed on,
every stack is found from its `Pulumi.<stack>.yaml` (prod promoted last), and the set-up lives once.
And what keeps a pull request's code from credentials it should not hold: each stack's preview in its own
`preview-<stack>` environment, the base side of a fork's plan diff built without the fork's code, the
credential-holding jobs installing only hash-pinned packages and checksummed tools, and comments edited
only when the `github-actions[bot]` account wrote them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from offline.engine import available_stacks
from tests.support.npm_layer import layer_folder

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SETUP_ACTION = ROOT / ".github" / "actions" / "pulumi-setup" / "action.yml"
SETUP_USES = "$/.github/actions/pulumi-setup"
STACKS_MATRIX = "${{ fromJSON(needs.stacks.outputs.stacks) }}"
HEAD_SHA = "${{ github.event.workflow_run.head_sha }}"
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
"""How GitHub runs a `run:` step on Linux (`shell: bash`)."""

DEPLOY_GUARDS = (
    "github.event.workflow_run.conclusion == 'success'",
    "github.event.workflow_run.event == 'push'",
    "github.event.workflow_run.head_branch == 'main'",
    "github.event.workflow_run.head_repository.full_name == github.repository",
)
SETUP_ONLY = ("actions/setup-python@", "Azure/login@", "pulumi/auth-actions@")
"""Set-up actions of every job that reaches Azure: used by the composite action, by none of those jobs."""


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), path
    return document


def workflow(name: str) -> dict[str, Any]:
    return load(WORKFLOWS / name)


def triggers(document: dict[str, Any]) -> dict[str, Any]:
    """The `on:` mapping; YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True."""
    on = document.get("on", document.get(True))
    assert isinstance(on, dict)
    return on


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def step(job: dict[str, Any], step_id: str) -> dict[str, Any]:
    (found,) = [candidate for candidate in steps(job) if candidate.get("id") == step_id]
    return found


def strings(node: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """Every key and string value of a YAML tree, with the path of keys to it (a key's own path ends with it)."""
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            found.append(((*path, str(key)), str(key)))
            found.extend(strings(value, (*path, str(key))))
        return found
    if isinstance(node, list):
        return [item for index, value in enumerate(node) for item in strings(value, (*path, str(index)))]
    return [(path, node)] if isinstance(node, str) else []


def uses(node: object) -> list[str]:
    """Every `uses:` of a YAML tree: the actions its steps run."""
    if isinstance(node, dict):
        own = [node["uses"]] if isinstance(node.get("uses"), str) else []
        return own + [found for value in node.values() for found in uses(value)]
    if isinstance(node, list):
        return [found for value in node for found in uses(value)]
    return []


def all_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def test_ci_runs_the_test_command_on_every_pull_request_and_push_to_main() -> None:
    ci = workflow("ci.yml")
    assert ci["name"] == "ci"  # the name `up.yml` waits for
    on = triggers(ci)
    assert set(on) == {"pull_request", "push"}
    assert not (on["pull_request"] or {}).get("branches"), "every pull request, whatever its base"
    assert on["push"] == {"branches": ["main"]}

    (job,) = ci["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert job["timeout-minutes"] == 90
    assert job["permissions"] == {"contents": "read"}
    (python,) = [s for s in steps(job) if s.get("uses", "").startswith("actions/setup-python@")]
    assert python["with"]["python-version"] == "3.11"
    (checkout,) = [s for s in steps(job) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["persist-credentials"] is False
    assert steps(job)[-1]["run"].strip() == "bash .ci/run"


def test_ci_keeps_one_run_per_commit_of_main() -> None:
    """`up.yml` deploys a commit only on its own successful ci run, so a push never cancels another's."""
    concurrency = workflow("ci.yml")["concurrency"]
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert "github.sha" in concurrency["group"]


def test_up_runs_only_after_ci_passed_on_a_push_to_main() -> None:
    up = workflow("up.yml")
    assert triggers(up) == {
        "workflow_run": {"workflows": ["ci"], "types": ["completed"], "branches": ["main"]},
    }, "no push or manual trigger: nothing deploys without a green ci run"
    for name, job in up["jobs"].items():
        for guard in DEPLOY_GUARDS:
            assert guard in job["if"], f"{name} lacks `{guard}`"
        assert "github.event.repository.fork == false" in job["if"], name


def test_up_deploys_exactly_the_commit_ci_tested() -> None:
    for name, job in workflow("up.yml")["jobs"].items():
        checkouts = [s for s in steps(job) if s.get("uses", "").startswith("actions/checkout@")]
        assert checkouts, name
        for checkout in checkouts:
            assert checkout["with"]["ref"] == HEAD_SHA, name
            assert checkout["with"]["persist-credentials"] is False, name


def test_only_the_newest_commit_of_main_deploys() -> None:
    jobs = workflow("up.yml")["jobs"]
    assert jobs["stacks"]["outputs"]["newest"] == "${{ steps.newest.outputs.newest }}"
    for name in ("up", "up-prod"):
        assert "needs.stacks.outputs.newest == 'true'" in jobs[name]["if"], name
        # The first step after the checkout, before any credential is set up.
        assert steps(jobs[name])[1]["name"] == "Refuse a commit older than main's", name


def fake_gh(tmp_path: Path, main_sha: str) -> dict[str, str]:
    """An environment whose `gh api .../commits/main` answers `main_sha`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(f'#!/bin/sh\n[ "$2" = "repos/owner/repo/commits/main" ] && echo {main_sha}\n')
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    output = tmp_path / "output"
    output.write_text("")
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_REPOSITORY": "owner/repo",
        "GITHUB_OUTPUT": str(output),
        "HEAD_SHA": "a" * 40,
    }


@pytest.mark.parametrize(("main_sha", "newest"), [("a" * 40, "true"), ("b" * 40, "false")])
def test_a_commit_main_has_moved_past_is_skipped(tmp_path: Path, main_sha: str, newest: str) -> None:
    env = fake_gh(tmp_path, main_sha)
    script = step(workflow("up.yml")["jobs"]["stacks"], "newest")["run"]
    subprocess.run([*BASH, "-c", script], env=env, cwd=tmp_path, check=True, capture_output=True)
    assert Path(env["GITHUB_OUTPUT"]).read_text() == f"newest={newest}\n"


@pytest.mark.parametrize("job", ["up", "up-prod"])
@pytest.mark.parametrize(("main_sha", "deploys"), [("a" * 40, True), ("b" * 40, False)])
def test_a_deploy_of_an_older_commit_fails(tmp_path: Path, job: str, main_sha: str, deploys: bool) -> None:
    """A re-run, or an approval given after a newer push, must not roll the stack back."""
    env = fake_gh(tmp_path, main_sha)
    script = steps(workflow("up.yml")["jobs"][job])[1]["run"]
    result = subprocess.run([*BASH, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert (result.returncode == 0) is deploys, result.stdout
    if not deploys:
        assert "main has moved on" in result.stdout


def test_no_workflow_lists_the_stacks_by_hand() -> None:
    """Adding a `Pulumi.<stack>.yaml` (and its GitHub environment) is all a new stack takes."""
    stack_word = re.compile(r"(?<![\w/.-])(dev|staging)(?![\w.-])")
    for path in all_workflows():
        text = path.read_text()
        assert not stack_word.search(text), f"{path.name} names a stack: {stack_word.search(text)}"

    # prod, only where it is promoted: its own job, and the first wave's exclusion of it.
    for name in ("preview.yml", "up.yml", "preview-comment.yml"):
        for key_path, value in strings(workflow(name)):
            if re.search(r"\bprod\b", value):
                assert name == "up.yml", f"{name} names prod at {key_path}"
                assert key_path[:2] == ("jobs", "up-prod") or key_path[:5] == (
                    "jobs",
                    "up",
                    "strategy",
                    "matrix",
                    "exclude",
                ), f"prod outside the promotion job, at {key_path}"


def test_the_matrices_come_from_the_stacks_job() -> None:
    preview = workflow("preview.yml")["jobs"]
    up = workflow("up.yml")["jobs"]
    for job in (preview["cloud-preview"], up["up"]):
        assert job["needs"] == "stacks"
        assert job["strategy"]["matrix"]["stack"] == STACKS_MATRIX
        assert job["strategy"]["fail-fast"] is False
    # The fork's offline plan covers the same stacks.
    assert "stacks" in preview["offline-plan"]["needs"]
    assert preview["offline-plan"]["env"]["STACKS"] == "${{ needs.stacks.outputs.stacks }}"
    # Each stack is previewed and deployed under its own name.
    assert step(preview["cloud-preview"], "restart-plan")["env"]["STACK"] == "${{ matrix.stack }}"
    (preview_step,) = [s for s in steps(preview["cloud-preview"]) if s.get("name") == "pulumi preview"]
    assert preview_step["with"]["stack-name"] == "${{ matrix.stack }}"
    (up_step,) = [s for s in steps(up["up"]) if s.get("name") == "pulumi up"]
    assert up_step["with"]["stack-name"] == "${{ matrix.stack }}"


def test_every_other_stack_deploys_before_prod() -> None:
    jobs = workflow("up.yml")["jobs"]
    first, prod = jobs["up"], jobs["up-prod"]
    assert first["environment"] == "${{ matrix.stack }}"
    assert first["strategy"]["matrix"]["exclude"] == [{"stack": "prod"}]
    assert first["concurrency"] == {"group": "pulumi-up-${{ matrix.stack }}", "cancel-in-progress": False}

    assert set(prod["needs"]) == {"stacks", "up"}
    assert prod["environment"] == "prod"  # its required reviewer is the approval
    assert prod["concurrency"] == {"group": "pulumi-up-prod", "cancel-in-progress": False}
    (up_step,) = [s for s in steps(prod) if s.get("name") == "pulumi up"]
    assert up_step["with"]["stack-name"] == "prod"
    assert up_step["with"]["command"] == "up"


def test_the_setup_lives_once_in_the_composite_action() -> None:
    action = load(SETUP_ACTION)
    assert action["runs"]["using"] == "composite"
    uses = [s.get("uses", "") for s in action["runs"]["steps"]]
    for shared in (*SETUP_ONLY, "pulumi/actions@"):
        assert any(use.startswith(shared) for use in uses), shared
    (cli,) = [s for s in action["runs"]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert cli["with"] == {"pulumi-version-file": ".pulumi-version"}  # no command: installs the CLI only
    runs = "\n".join(s.get("run", "") for s in action["runs"]["steps"])
    assert "policy/.venv/bin/pip install" in runs
    assert "kubelogin" in runs
    assert set(action["outputs"]) == {"pulumi-access-token"}

    preview = workflow("preview.yml")["jobs"]
    up = workflow("up.yml")["jobs"]
    for job in (preview["cloud-preview"], up["up"], up["up-prod"]):
        (setup,) = [s for s in steps(job) if s.get("uses") == SETUP_USES]
        assert setup["id"] == "setup"
        assert setup["with"]["azure-client-id"] == "${{ vars.AZURE_CLIENT_ID }}"
        assert setup["with"]["policy-pack-config"] == "${{ vars.POLICY_PACK_CONFIG }}"
        assert not [s for s in steps(job) if s.get("uses", "").startswith(SETUP_ONLY)]
        assert "steps.setup.outputs.pulumi-access-token" in yaml.safe_dump(job)


def test_every_job_has_a_timeout() -> None:
    for path in all_workflows():
        for name, job in workflow(path.name)["jobs"].items():
            assert isinstance(job.get("timeout-minutes"), int), f"{path.name}: {name}"


def test_every_action_is_pinned_to_a_commit() -> None:
    pinned = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
    for path in [*all_workflows(), SETUP_ACTION]:
        for action in uses(load(path)):
            assert action.startswith("$/") or pinned.match(action), f"{path.name}: {action}"


def stack_listing(workflow_name: str) -> str:
    return str(step(workflow(workflow_name)["jobs"]["stacks"], "list")["run"])


def list_stacks(directory: Path) -> list[str]:
    """Run the workflows' stack listing in `directory`; the `stacks` output it writes, parsed."""
    output = directory / "github-output"
    output.write_text("")
    subprocess.run(
        [*BASH, "-c", stack_listing("up.yml")],
        cwd=directory,
        env={**os.environ, "GITHUB_OUTPUT": str(output)},
        check=True,
        capture_output=True,
    )
    (line,) = output.read_text().splitlines()
    name, _, value = line.partition("=")
    assert name == "stacks"
    stacks = yaml.safe_load(value)  # JSON, as fromJSON reads it
    assert isinstance(stacks, list)
    return stacks


def test_preview_and_up_list_the_stacks_alike() -> None:
    assert stack_listing("preview.yml") == stack_listing("up.yml")


def test_the_listing_finds_the_repository_stacks(tmp_path: Path) -> None:
    for stack_file in [ROOT / "Pulumi.yaml", *ROOT.glob("Pulumi.*.yaml")]:
        shutil.copy(stack_file, tmp_path)
    assert list_stacks(tmp_path) == sorted(available_stacks())


def test_a_new_stack_file_is_a_new_stack(tmp_path: Path) -> None:
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml"):
        shutil.copy(ROOT / name, tmp_path)
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.staging.yaml")
    assert list_stacks(tmp_path) == ["dev", "prod", "staging"]


@pytest.mark.parametrize("name", ["Pulumi.a b.yaml", "Pulumi.$(id).yaml", "Pulumi..yaml"])
def test_a_file_that_names_no_stack_is_refused(tmp_path: Path, name: str) -> None:
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / name)
    with pytest.raises(subprocess.CalledProcessError):
        list_stacks(tmp_path)


def test_no_stack_file_is_refused(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path)
    with pytest.raises(subprocess.CalledProcessError):
        list_stacks(tmp_path)
