"""Smoke tests of the benchmark runner and the core benchmark (tiny sizes, no peers, seconds)."""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> ModuleType:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def run_all() -> ModuleType:
    return _load("benchmarks.run_all")


OK = """
import sys, pathlib
print("measuring")
pathlib.Path(sys.argv[1], "ok.md").write_text("### ok table\\n| a |\\n")
"""
BAD = 'print("about to fail")\nraise RuntimeError("boom in the benchmark")\n'
SLOW = "import time\ntime.sleep(60)\n"


def test_runner_records_success_failure_and_timeout(run_all: ModuleType, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    stale = results / "old.md"
    stale.write_text("### old table\n")
    os.utime(stale, (1e9, 1e9))
    for name, code in (("bench_ok.py", OK), ("bench_bad.py", BAD), ("bench_slow.py", SLOW)):
        (tmp_path / name).write_text(code)
    started = time.time()
    scripts = run_all.discover(tmp_path)
    assert [s.name for s in scripts] == ["bench_bad.py", "bench_ok.py", "bench_slow.py"]
    outcomes = [run_all.run_script(s, timeout=1 if s.name == "bench_slow.py" else 60,
                                   args=[str(results)]) for s in scripts]
    assert [o.status for o in outcomes] == ["failed (exit 1)", "ok", "timed out"]
    assert "boom in the benchmark" in outcomes[0].tail
    text = run_all.collect(outcomes, started, results)
    assert "| bench_ok.py | ok |" in text and "| bench_bad.py | failed (exit 1) |" in text
    assert "## bench_slow.py: timed out" in text and "boom in the benchmark" in text
    assert "### ok table" in text and "### old table" in text
    assert "old.md: not refreshed by this run" in text
    assert "ok.md: not refreshed" not in text


def test_runner_selects_by_name(run_all: ModuleType, tmp_path: Path) -> None:
    for name in ("bench_core.py", "bench_crf.py"):
        (tmp_path / name).write_text("")
    assert [s.name for s in run_all.discover(tmp_path, ["core"])] == ["bench_core.py"]
    assert [s.name for s in run_all.discover(tmp_path, ["bench_crf"])] == ["bench_crf.py"]
    with pytest.raises(ValueError, match="no benchmark named \\['nope'\\]"):
        run_all.discover(tmp_path, ["nope"])


def test_runner_cli_rejects_unknown_names(run_all: ModuleType, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_all.main(["--", "no_such_area"])
    assert exit_info.value.code == 2
    assert "no benchmark named ['no_such_area']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_all.main(["--only", "no_such_area"])


def test_core_benchmark_runs_on_tiny_inputs() -> None:
    bench = _load("benchmarks.bench_core")
    text = bench.main(["--smoke", "--repeat", "1"])
    assert "(a) 4x4 disintegrate + recompose, exact Fractions" in text
    assert "(c) HMM filter, 6 states x 4 steps, float64" in text
