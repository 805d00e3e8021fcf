"""The offline plan of the example app stack, on a platform stack planned offline too. No cloud, no Pulumi CLI.

    python examples/app/plan.py [--platform-stack dev] [--stack dev]

The platform program (`__main__.py` of the repository) runs first under Pulumi's mocks with its committed
`Pulumi.<platform stack>.yaml`, as a `pulumi up` would: its stack outputs become what the app's stack reference
reads, the kubeconfig marked secret as the platform exports it. Then the app program (`examples/app/__main__.py`)
runs under the mocks as a preview, configured from `examples/app/Pulumi.<stack>.yaml`, and its planned
resources are printed as text, with the verdict of the platform's policy pack. Secrets print as `[secret]`.
"""

from __future__ import annotations

import argparse
import contextlib
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parent
ROOT = APP_DIR.parents[1]
APP_PROJECT = "aks-istio-example-app"
STACK_REFERENCE_TYPE = "pulumi:pulumi:StackReference"


def platform_outputs(platform_stack: str) -> tuple[dict[str, Any], list[str]]:
    """The stack outputs of an offline `pulumi up` of the platform stack, and the names of the secret ones."""
    from pulumi.runtime import rpc

    from offline.engine import UNKNOWN, run_program, stack_config

    with contextlib.chdir(ROOT):  # where the Pulumi CLI runs the platform program (relative `operatorFile`s)
        run = run_program(platform_stack, stack_config(platform_stack), preview=False)
    outputs = {name: rpc.UNKNOWN if value is UNKNOWN else value for name, value in run.outputs.items()}
    return outputs, sorted(run.secret_outputs)


def app_config(stack: str, platform_stack: str) -> dict[str, Any]:
    """The app's stack file, its `platformStack` pointed at `platform_stack` (in the organization it names)."""
    from settings.yaml_file import read_yaml_file

    path = APP_DIR / f"Pulumi.{stack}.yaml"
    document = read_yaml_file(path, f"examples/app/{path.name}") if path.is_file() else None
    if not isinstance(document, Mapping):
        raise FileNotFoundError(f"no app stack file examples/app/Pulumi.{stack}.yaml")
    config = dict(document.get("config") or {})
    key = f"{APP_PROJECT}:platformStack"
    organization = str(config.get(key) or "organization").split("/", 1)[0]
    config[key] = f"{organization}/aks-istio/{platform_stack}"
    return config


def plan_app(stack: str, platform_stack: str) -> str:
    import pulumi
    from pulumi.runtime import rpc
    from pulumi.runtime.settings import get_root_resource
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from offline.engine import UNKNOWN, OfflineMocks, ProgramRun, RecordingMonitor
    from offline.render import as_text

    outputs, secret_names = platform_outputs(platform_stack)
    config = app_config(stack, platform_stack)

    class AppMocks(OfflineMocks):
        """The offline mocks, plus the platform stack reference answered with the platform's outputs."""

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
            if args.typ == STACK_REFERENCE_TYPE:
                return args.resource_id or args.name, {
                    "name": args.inputs["name"],
                    "outputs": outputs,
                    "secretOutputNames": secret_names,
                }
            resource_id, state = super().new_resource(args)
            metadata = state.get("metadata")
            if args.typ.startswith("kubernetes:") and isinstance(metadata, dict) and not metadata.get("name"):
                # Left to autonaming: the kubernetes provider picks the name on create.
                state["metadata"] = {**metadata, "name": rpc.UNKNOWN}
            return resource_id, state

    mocks = AppMocks(preview=True)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.settings.reset_options()
    pulumi.runtime.set_mocks(mocks, project=APP_PROJECT, stack=stack, preview=True, monitor=monitor)
    # The engine hands config to programs as strings.
    pulumi.runtime.set_all_config({key: str(value) for key, value in config.items()})
    _sync_await(run_pulumi_func(lambda: runpy.run_path(str(APP_DIR / "__main__.py"), run_name="__main__")))

    async def settle(value: Any) -> tuple[Any, bool]:
        output = pulumi.Output.from_input(value)
        known = await output.is_known()
        return (await output.future(with_unknowns=True) if known else UNKNOWN), await output.is_secret()

    app_outputs: dict[str, Any] = {}
    app_secrets: set[str] = set()
    root = get_root_resource()
    for name, value in (root.outputs if root else {}).items():
        app_outputs[name], secret = _sync_await(settle(value))
        if secret:
            app_secrets.add(name)
    # The Deployment and the Service share a name, and the renderer breaks ties by registration order, which
    # varies from run to run; in (name, type) order the plan is the same every time.
    resources = sorted(monitor.recorded, key=lambda r: (r.name, r.type))
    run = ProgramRun(stack, resources, app_outputs, app_secrets, mocks.invokes)
    # Its first line names the platform's project; the pack is the platform's, attached from the app's folder.
    body = as_text(run).split("\n", 1)[1].replace("--policy-pack policy`", "--policy-pack ../../policy`")
    header = (
        f"{APP_PROJECT}: offline plan of stack '{stack}' ({len(run.resources)} resources), reading the platform "
        f"stack {config[f'{APP_PROJECT}:platformStack']} as planned offline from Pulumi.{platform_stack}.yaml"
    )
    return f"{header}\n{body}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python examples/app/plan.py", description=__doc__.splitlines()[0])
    parser.add_argument("--platform-stack", default="dev", help="the platform's stack file to plan (default dev)")
    parser.add_argument("--stack", default="dev", help="the app's stack file, examples/app/Pulumi.<stack>.yaml")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # the platform's packages: offline/, settings/, the program itself
    from settings.rules import ConfigError

    try:
        text = plan_app(args.stack, args.platform_stack)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # The app refused the platform (a namespace outside the mesh, a missing output). Pulumi wraps that
        # error once per resource and input; the innermost one says what is wrong.
        cause: BaseException = exc
        while (inner := cause.__cause__ or cause.__context__) is not None:
            cause = inner
        print(f"error: the app program failed: {cause}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
