"""Progress lines for the person watching a run."""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    """On stderr, so that the tables on stdout stay clean."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
