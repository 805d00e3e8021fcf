"""Per-test namespaces under a random prefix, so that tests sharing one control plane never see each other."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube.raw import drain


class Namespaces:
    """Creates `<prefix>-<suffix>` namespaces for one test and deletes them afterwards.

    Deletion is not awaited (the namespace controller finishes it in the background): the prefix is never reused.
    """

    def __init__(self, api: client.ApiClient, prefix: str | None = None) -> None:
        self._core = client.CoreV1Api(api)
        self.prefix = prefix or f"t{secrets.token_hex(3)}"
        self.created: list[str] = []

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def create(self, suffix: str, labels: Mapping[str, str] | None = None) -> str:
        """Creates the namespace `<prefix>-<suffix>` with `labels`; returns its name."""
        name = self.name(suffix)
        drain(
            self._core.create_namespace(
                {"metadata": {"name": name, "labels": dict(labels or {})}}, _preload_content=False
            )
        )
        self.created.append(name)
        return name

    def label(self, suffix: str, labels: Mapping[str, str | None]) -> None:
        """Sets (or, with None, removes) labels of one of this test's namespaces."""
        drain(
            self._core.patch_namespace(
                self.name(suffix),
                {"metadata": {"labels": dict(labels)}},
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
        )

    def delete_all(self) -> None:
        for name in self.created:
            try:
                drain(self._core.delete_namespace(name, _preload_content=False))
            except ApiException as exc:
                if exc.status != 404:
                    raise
        self.created.clear()
