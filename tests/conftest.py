"""Fixtures every test folder may use: the real control plane of `tests/controlplane` (tests marked `cluster`)."""

pytest_plugins = ["tests.controlplane.plugin"]
