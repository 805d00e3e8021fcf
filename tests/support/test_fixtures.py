"""The vendored reference files are the shared reference set, byte for byte."""

from __future__ import annotations

import pytest

from tests.support.reference import FIXTURES, SHARED_REFERENCE


@pytest.mark.skipif(not SHARED_REFERENCE.is_dir(), reason="no ../shared/reference beside this checkout")
def test_fixtures_match_the_shared_reference() -> None:
    vendored = sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file())
    assert vendored
    for relative in vendored:
        assert (FIXTURES / relative).read_bytes() == (SHARED_REFERENCE / relative).read_bytes(), relative
