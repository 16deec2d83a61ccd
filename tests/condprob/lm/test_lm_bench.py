"""The lm benchmark script runs on tiny inputs (no peers) and checks its own draws."""

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_lm_benchmark_smoke():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    bench = importlib.import_module("benchmarks.bench_lm")
    text = bench.main(["--smoke", "--repeat", "1"])
    assert "draws in kept set: 100%" in text and "index build, e-mail" in text
    assert "n/a" in text
