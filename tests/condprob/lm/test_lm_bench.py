"""The lm benchmark script runs on tiny inputs (no peers) and checks its own draws."""

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def test_lm_benchmark_smoke():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    bench = importlib.import_module("benchmarks.bench_lm")
    text = bench.main(["--smoke", "--repeat", "1", "--part", "sampling"])
    assert "draws in kept set: 100%" in text and "index build, e-mail" in text
    assert "n/a" in text


@pytest.mark.slow
def test_lm_conditioning_benchmark_smoke():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    bench = importlib.import_module("benchmarks.bench_lm")
    text = bench.main(["--smoke", "--repeat", "1", "--part", "conditioning"])
    assert "exact twist (backward filter)" in text and "final ESS 1.00" in text
    assert "tokenization bias" in text and "max |LP - two-step|" in text.replace("\\|", "|")
    assert "speculative_generate, 4 draft(s)" in text
