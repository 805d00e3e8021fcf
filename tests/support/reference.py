"""Istio 1.30.3's charts and injection template, and the article's IstioOperator file, for the tests.

Copied unchanged (Apache-2.0, see `fixtures/istio-1.30.3/LICENSE`) from the reference set that sits
in `../shared/reference` beside the checkout, so `make test` needs nothing outside the repository;
`test_fixtures_match_the_shared_reference` keeps the copies equal to it wherever it is present.
"""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures"
SHARED_REFERENCE = TESTS.parents[1] / "shared/reference"
CHARTS = FIXTURES / "istio-1.30.3/charts"
INJECTION_TEMPLATE = FIXTURES / "istio-1.30.3/injection/injection-template.yaml"
SEED_FILE = FIXTURES / "seed/install-istio.yaml"
SEED_RELATIVE = str(SEED_FILE.relative_to(TESTS.parent))
"""The seed file as a stack setting gives it: relative to the project root."""
