"""Run every benchmark script and collect their tables into benchmarks/RESULTS.md.

Each `benchmarks/bench_*.py` runs in turn in its own process (one thread, the repository root on
`PYTHONPATH`), its output streamed; a script that fails or times out is recorded and the others
still run. Every table in `benchmarks/results/*.md` (each stamped with the machine and time it was
measured) then goes into `benchmarks/RESULTS.md` after a note on how to read them, and one row per
script of the run closes it. `condprob bench [core crf ...]` and `python -m benchmarks.run_all
[core ...]` call `main`.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.harness import RESULTS, ROOT, SKIPPED, SPEEDUP, cell, machine, one_thread_env

BENCHMARKS = ROOT / "benchmarks"


@dataclass
class Outcome:
    """How one benchmark script ended: `status` is "ok", "skipped: REASON" (it called
    `harness.skip`), "failed (exit N)" or "timed out"."""

    script: Path
    status: str
    seconds: float
    tail: str


def discover(folder: Path = BENCHMARKS, only: list[str] | None = None) -> list[Path]:
    """The bench_*.py scripts in `folder`, by name; `only` keeps those named (core or bench_core)."""
    scripts = sorted(folder.glob("bench_*.py"))
    if only:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in only}
        unknown = wanted - {s.stem.removeprefix("bench_") for s in scripts}
        if unknown:
            raise ValueError(f"no benchmark named {sorted(unknown)} in {folder}")
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    return scripts


def run_script(script: Path, timeout: float, args: list[str] | None = None,
               tail_lines: int = 40) -> Outcome:
    """Run one script with the repository root on PYTHONPATH, echoing its output as it comes."""
    env = one_thread_env(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(script), *(args or [])], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def echo() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            tail.append(line)

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout)
        if rc == SKIPPED:
            status = "skipped: " + (tail[-1].strip() if tail else "nothing to measure here")
        else:
            status = "ok" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        status = "timed out"
    reader.join(timeout=5)
    return Outcome(script, status, time.perf_counter() - t0, "".join(tail))


READING = f"""Each area compares condprob with named peer libraries measured side by side in one run, \
on the machine and at the time stated under its title. **Time** tables give the speed-up = \
{SPEEDUP}: above 1x condprob is faster, below 1x the peer is. **Accuracy and other figures** \
tables put condprob's figure and the peer's side by side (for errors, lower is better). Times \
are CPU time of the process on one thread (on a shared machine that leaves out the waits for a \
core, on both sides alike); first calls in a fresh process are marked as such. Where a Time table \
has a throughput column, it gives condprob's achieved GFLOP/s or GB/s and its share of this \
machine's single-core peak (GEMM and copy bandwidth, measured in the same run; \
`benchmarks/roofline.py`). GPU rows appear only for runs on a machine with a GPU."""


def collect(outcomes: list[Outcome], started: float, results: Path = RESULTS) -> str:
    """RESULTS.md text: how to read it, every area's tables (each stamped with its own machine and
    time), then one row per script of this run."""
    stamp = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Benchmark results", "", READING]
    for table in sorted(results.glob("*.md")):
        lines += ["", table.read_text().rstrip()]
    lines += ["", "### Scripts of the last run", "", f"Started {stamp} on {machine()}.", "",
              "| script | outcome | seconds |", "|---|---|---|"]
    lines += [f"| {o.script.name} | {cell(o.status)} | {o.seconds:.1f} |" for o in outcomes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (all, or those named) and write RESULTS.md; 1 if any failed."""
    parser = argparse.ArgumentParser(prog="condprob bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run, e.g. core crf (default: all)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=[], help="same as names")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per script")
    parser.add_argument("--out", type=Path, default=BENCHMARKS / "RESULTS.md")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv[1:] if argv[:1] == ["--"] else argv)
    try:
        scripts = discover(only=args.names + args.only)
    except ValueError as exc:
        parser.error(str(exc))
    started = time.time()
    outcomes = []
    for script in scripts:
        print(f"[bench] {script.name} ...", flush=True)
        outcome = run_script(script, args.timeout)
        print(f"[bench] {script.name}: {outcome.status} in {outcome.seconds:.1f} s", flush=True)
        outcomes.append(outcome)
    args.out.write_text(collect(outcomes, started))
    print(f"[bench] results collected in {args.out}")
    return 1 if any(o.status != "ok" for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
