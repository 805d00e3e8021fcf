"""The test run itself reads well: it ends on pytest's summary, with no stray tracebacks after it.

Pulumi's mocks leave futures behind when a program fails on purpose; if nothing retrieves their exceptions,
asyncio prints "Future exception was never retrieved" for each one when the interpreter exits.
"""

from __future__ import annotations

import subprocess
import sys

from offline.engine import ROOT

NOISY = [
    "tests/outputs/test_example_app.py",
    "tests/settings/test_parse.py::test_bad_input_stops_the_program_before_any_resource",
]


def test_the_programs_failing_on_purpose_leave_no_traceback_behind() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *NOISY],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert "Future exception was never retrieved" not in output
    assert "Traceback" not in output
    assert output.rstrip().splitlines()[-1].endswith("s"), "the last line is pytest's summary"
