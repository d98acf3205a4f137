"""Each benchmark scenario runs (tiny sizes): a broken benchmark is found by CI, not on release day.

One test per scenario, each in its own process (`python -m bench --smoke --only NAME`), so the scenarios
spread over `make test`'s workers and a slow one is timed out as itself.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import SMOKE

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SMOKE))
def test_bench_smoke_runs(scenario: str) -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--only", scenario], cwd=REPO,
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{scenario}: " in out.stdout and "not saved (smoke)" in out.stdout, out.stdout[-3000:]
    assert "| scenario |" in out.stdout
