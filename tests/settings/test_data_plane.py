"""Reading the Istio release back from a proxy image, for states written before the version was recorded."""

from __future__ import annotations

import pytest

from settings.data_plane import image_release


@pytest.mark.parametrize(
    ("image", "release"),
    [
        ("docker.io/istio/proxyv2:1.30.3", "1.30.3"),
        ("docker.io/istio/proxyv2:1.29.6-distroless", "1.29.6"),
        ("registry.example:5000/istio/proxyv2:1.30.3@sha256:" + "a" * 64, "1.30.3"),
        ("registry.example:5000/istio/proxyv2@sha256:" + "a" * 64, ""),
        ("registry.example:5000/istio/proxyv2", ""),
        ("docker.io/istio/proxyv2:latest", ""),
        ("", ""),
    ],
)
def test_the_release_is_the_tags_or_nothing(image: str, release: str) -> None:
    assert image_release(image) == release
