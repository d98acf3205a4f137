"""The benchmark suite runs (tiny sizes): a broken benchmark is found by CI, not on release day."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_smoke_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "--smoke"], cwd=REPO, capture_output=True, text=True,
                         timeout=1200, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| scenario |" in out.stdout
