"""Smoke tests of the benchmark runner, the core benchmark and the GPU check (tiny sizes, no peers)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from datetime import UTC, datetime
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
SKIP = "from benchmarks.harness import skip\nskip('no GPU backend here')\n"


def test_runner_records_success_failure_and_timeout(run_all: ModuleType, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "old.md").write_text("### old table\n")
    scripts = {"bench_ok.py": OK, "bench_bad.py": BAD, "bench_slow.py": SLOW,
               "bench_skip.py": SKIP}
    for name, code in scripts.items():
        (tmp_path / name).write_text(code)
    started = time.time()
    found = run_all.discover(tmp_path)
    assert [s.name for s in found] == sorted(scripts)
    outcomes = [run_all.run_script(s, timeout=1 if s.name == "bench_slow.py" else 60,
                                   args=[str(results)]) for s in found]
    assert [o.status for o in outcomes] == ["failed (exit 1)", "ok",
                                            "skipped: no GPU backend here", "timed out"]
    assert "boom in the benchmark" in outcomes[0].tail
    text = run_all.collect(outcomes, started, results)
    assert "| bench_ok.py | ok |" in text and "| bench_bad.py | failed (exit 1) |" in text
    assert "| bench_slow.py | timed out |" in text
    assert "| bench_skip.py | skipped: no GPU backend here |" in text
    assert "boom in the benchmark" not in text
    assert "### ok table" in text and "### old table" in text
    assert "speed-up = peer time / condprob time" in text


def test_table_separates_times_from_other_figures_and_escapes_notation() -> None:
    harness = _load("benchmarks.harness")
    table = harness.Table("recompose marginal >> <id, c>")
    table.add_time("recompose <id, c>", 0.002, "peer | one", 0.010, note="run once")
    table.add_time("stopped peer", 0.5, "slow peer", 300, at_least=True)
    table.add_time("missing peer", 0.5, "absent", None, note="not installed")
    table.add_value("max error", "1.0e-15", "peer", "3.2e-06")
    text = table.markdown(datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    time_part, value_part = text.split("**Accuracy and other figures**")
    assert "Measured 2026-01-02 03:04 UTC on " in time_part
    assert "| recompose &lt;id, c> | 2.00 ms | peer \\| one (run once) | 10.00 ms | 5.0x |" in time_part
    assert "| stopped peer | 500.00 ms | slow peer | > 300.00 s | > 600.0x |" in time_part
    assert "| missing peer | 500.00 ms | absent (not installed) | n/a | n/a |" in time_part
    assert "| task | condprob | peer | peer's figure |\n" in value_part
    assert "| max error | 1.0e-15 | peer | 3.2e-06 |" in value_part
    assert "x |" not in value_part


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


def test_gpu_check_needs_a_gpu(tmp_path: Path, capsys) -> None:
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    gpu_check = _load("benchmarks.gpu_check")
    if gpu_check.peak_bandwidth("NVIDIA GH200 480GB") != 4000.0:
        raise AssertionError("GH200 must not read as H200")
    assert gpu_check.peak_bandwidth("NVIDIA H200") == 4800.0
    assert gpu_check.peak_bandwidth("NVIDIA L40S") == 864.0
    assert gpu_check.peak_bandwidth("Some CPU") is None
    from condprob import accel

    if accel.gpu_available():
        pytest.skip("a GPU backend is present")
    assert gpu_check.main([str(tmp_path)]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "gpu_check.md").exists()


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_kernel_in_the_interpreter(tmp_path: Path) -> None:
    """The whole GPU check on tiny sizes under TRITON_INTERPRET=1 on CPU (its own process, so
    that the interpreter setting and the reloaded kernels stay there)."""
    import subprocess

    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", str(tmp_path), "--smoke"],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (tmp_path / "gpu_check.md").read_text()
    assert text in proc.stdout
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    kernels = {row.split(" | ")[0].lstrip("| ") for row in rows}
    assert kernels == {"dispatch", "Gumbel-max sampling", "filtered sampling",
                       "speculative verification", "chain log Z + gradient", "chain marginals",
                       "chain Viterbi"}
    assert all(" | ok | " in row for row in rows), rows
    assert "- every kernel agrees with its twin: yes" in text


def test_roofline_share_is_the_roofline_time_over_the_measured_time() -> None:
    roofline = _load("benchmarks.roofline")
    import torch

    peaks = roofline.Peaks(gemm32=100.0, gemm64=50.0, copy=10.0)
    # 1 GFLOP in 0.1 s against 100 GFLOP/s: the roofline time 0.01 s is 10% of it
    assert roofline.share(roofline.Work(flops=1e9), 0.1, peaks) == \
        "10.00 GFLOP/s: 10.0% of peak (compute)"
    # float64 work is held to the float64 peak; 1 GB moved at 10 GB/s bounds it by memory
    work = roofline.Work(flops=1e9, bytes=1e9, dtype=torch.float64)
    assert roofline.share(work, 0.5, peaks) == \
        "2.00 GFLOP/s, 2.00 GB/s: 20.0% of peak (memory)"
    assert roofline.chain_work(2, 3, 4, 3).flops == 2 * 3 * 2 * 3 * 16
