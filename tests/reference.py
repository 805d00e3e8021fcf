"""Paths into `../shared/reference`: Istio 1.30.3's charts and the article's IstioOperator file."""

from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared/reference"
CHARTS = REFERENCE / "istio-1.30.3/charts"
INJECTION_TEMPLATE = REFERENCE / "istio-1.30.3/injection/injection-template.yaml"
SEED_FILE = REFERENCE / "seed/install-istio.yaml"
