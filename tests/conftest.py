"""Fixtures every test folder may use: the real control plane of `localkube` (tests marked `cluster`),
and Pulumi's real dynamic-provider host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pulumi.runtime.proto import provider_pb2

from tests.support.provider_host import TIMEOUT, Host

pytest_plugins = ["localkube.plugin"]


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    """`python -m pulumi.dynamic`, started and configured as the engine does; stopped after the module."""
    running = Host()
    try:
        running.stub.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True), timeout=TIMEOUT)
        yield running
    finally:
        running.close()
