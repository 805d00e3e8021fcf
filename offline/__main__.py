"""`python -m offline --stack dev --format text`: the desired state of a stack, without any cloud."""

from __future__ import annotations

import argparse
import sys

import pulumi

from offline.engine import available_stacks, run_program, stack_config
from offline.render import RENDERERS
from settings.rules import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make plan", description=__doc__)
    parser.add_argument("--stack", default="dev", help=f"stack to render ({', '.join(available_stacks())})")
    parser.add_argument("--format", default="text", choices=sorted(RENDERERS), help="output format")
    args = parser.parse_args(argv)
    try:
        # A preview: values the cloud computes stay unknown, exactly as `pulumi preview` shows them.
        run = run_program(args.stack, stack_config(args.stack), preview=True)
    except (ConfigError, pulumi.RunError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(RENDERERS[args.format](run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
