"""The NET_ADMIN policy pack over a planned stack, as `pulumi preview --policy-pack policy` evaluates it.

Every resource rule over every planned resource, then every stack rule over all of them, with the pack's
default configuration and the engine's read-only proxies (an unknown value a rule reads fails as in a preview).
"""

from __future__ import annotations

from dataclasses import dataclass

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import unknown_checking_proxy

from offline.engine import ProgramRun, reveal
from policy.net_admin_guard import POLICIES


@dataclass(frozen=True, order=True)
class Violation:
    level: str
    """`mandatory` (blocks the preview) or `advisory`."""
    policy: str
    message: str


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def pack_violations(run: ProgramRun) -> list[Violation]:
    """What the pack reports for the planned resources, mandatory ones first."""
    found: list[Violation] = []

    def reporter(policy: ResourceValidationPolicy | StackValidationPolicy):  # type: ignore[no-untyped-def]
        level = str((policy.enforcement_level or EnforcementLevel.MANDATORY).value)
        return lambda message, _urn=None: found.append(Violation(level, policy.name, str(message)))

    stack_resources = []
    for resource in run.resources:
        props = reveal(resource.inputs)
        args = ResourceValidationArgs(
            resource.type, unknown_checking_proxy(props), resource.urn, resource.name, _options(), None, None
        )
        for policy in POLICIES:
            if isinstance(policy, ResourceValidationPolicy):
                policy.validate(args, reporter(policy))
        stack_resources.append(
            PolicyResource(
                resource.type,
                unknown_checking_proxy(props),
                resource.urn,
                resource.name,
                _options(),
                None,
                None,
                [],
                {},
            )
        )
    for policy in POLICIES:
        if isinstance(policy, StackValidationPolicy):
            try:
                policy.validate(StackValidationArgs(stack_resources), reporter(policy))
            except _NotApplicableError:
                continue
    return sorted(found, key=lambda v: (v.level != "mandatory", v.policy, v.message))
