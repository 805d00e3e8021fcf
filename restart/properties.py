"""Property values as Pulumi's dynamic-provider host hands them over (maybe wrapped as secrets, maybe unknown), the
kubeconfig input both providers take, and the failures they hand back to it.

Imports only `pulumi` and `restart.request`: the provider modules that use it are re-imported by the engine's
provider host.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import rpc

from restart.request import RestartError


def plain(value: Any) -> Any:
    """A value without the RPC secret envelope (the host may hand values over wrapped or not)."""
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def known(value: Any) -> bool:
    """False for values a preview cannot know yet (the host hands them over as `Unknown`)."""
    return value is not None and value != rpc.UNKNOWN and not isinstance(value, Unknown)


def checked_kubeconfig(value: Any) -> tuple[Any, str | None]:
    """A known kubeconfig input as the provider hands it back (a secret), or why it is refused.

    The host does not accept secrets, so the engine sends them in clear; wrapping the value hands it back to the
    engine marked secret, whatever the engine infers on its own.
    """
    if not isinstance(value, str) or not value.strip():
        return value, "must be a non-empty kubeconfig document"
    return rpc.wrap_rpc_secret(value), None


@contextmanager
def failing_safely(what: str, unexpected: str, suffix: str = "") -> Iterator[None]:
    """Turns a failure of `what` into a `RestartError` the provider host may show.

    One of ours keeps its message (`suffix` added) and what it restarted. Any other (a client or loader error) may
    quote the kubeconfig in its message or chain, and the host sends the whole traceback to the engine: only its type
    is kept, with `unexpected` saying what is left behind. `from None` either way: a chained client error would bring
    its response headers along.
    """
    try:
        yield
    except RestartError as exc:
        raise RestartError(f"{what} failed: {exc}{suffix}", exc.restarted) from None
    except Exception as exc:
        raise RestartError(
            f"{what} failed unexpectedly ({type(exc).__module__}.{type(exc).__name__}); {unexpected}"
        ) from None
