"""Property values as Pulumi's dynamic-provider host hands them over: maybe wrapped as secrets, maybe unknown.

Imports only `pulumi`: the provider modules that use it are re-imported by the engine's provider host.
"""

from __future__ import annotations

from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import rpc


def plain(value: Any) -> Any:
    """A value without the RPC secret envelope (the host may hand values over wrapped or not)."""
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def known(value: Any) -> bool:
    """False for values a preview cannot know yet (the host hands them over as `Unknown`)."""
    return value is not None and value != rpc.UNKNOWN and not isinstance(value, Unknown)
