"""Shared benchmark harness: medians of wall times, peers run in their own environments, and
markdown tables of figures with ratios.

Times are CPU time of the process (`time.process_time`) by default: the benchmarks run on one
thread, where CPU time equals wall time on an idle machine, and on a shared machine it leaves out
the time spent waiting for a core, for every side alike. `BENCH_CLOCK=wall` measures wall time
instead; GPU timings pass `clock=time.perf_counter` (the CPU waits while the device works).

Peers never enter the library's environment: `run_peer("funsor", code)` runs `code` with the
Python of `.peers/funsor` (made by `benchmarks/peers/make_env.sh`) and reads the JSON object that
the code prints on its last line.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from benchmarks.roofline import Work, peaks, share

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".peers"
RESULTS = ROOT / "benchmarks" / "results"

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
"""Thread limits of every timed process: torch's OpenMP and MKL, numpy's OpenBLAS."""


def one_thread_env(**extra: str) -> dict[str, str]:
    """The environment of a timed subprocess: this one's, limited to one thread, plus `extra`."""
    return {**os.environ, **ONE_THREAD, **extra}


CLOCK: Callable[[], float] = (time.perf_counter if os.environ.get("BENCH_CLOCK") == "wall"
                              else time.process_time)
"""The clock of `median_time` (see the module docstring)."""

PEER_PRELUDE = f"""
import json, statistics, time
def median_time(fn, repeat=5, warmup=1, clock=time.{CLOCK.__name__}):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = clock(); fn(); ts.append(clock() - t0)
    return statistics.median(ts)
"""


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1,
                clock: Callable[[], float] | None = None) -> float:
    """Median time of `fn()` in seconds over `repeat` runs after `warmup` runs, by `clock`
    (default `CLOCK`)."""
    clock = clock or CLOCK
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def over_rounds(runs: list[dict], keys: tuple[str, ...]) -> dict:
    """The last run's results with each timing in `keys` replaced by its least value over the
    rounds (the load of a shared machine comes and goes and only ever adds time)."""
    return {**runs[-1], **{k: min(r[k] for r in runs) for k in keys}}


def peer_python(name: str) -> Path | None:
    """The Python of a peer's environment, or None when it has not been created."""
    exe = PEERS / name / "bin" / "python"
    return exe if (PEERS / name / ".installed").exists() else None


def run_peer(name: str, code: str, timeout: float = 1800) -> dict | None:
    """Run `code` (with `median_time` predefined) in the peer's environment; return its JSON.

    Returns None when the peer environment is missing; raises RuntimeError when the code fails.
    """
    exe = peer_python(name)
    if exe is None:
        return None
    env = one_thread_env()
    proc = subprocess.run(
        [str(exe), "-c", PEER_PRELUDE + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"peer {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    """One line describing the machine the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def fmt_seconds(t: float | None) -> str:
    if t is None:
        return "n/a"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.1f} us"


SKIPPED = 75
"""Exit status of a benchmark script with nothing to measure here (e.g. no GPU); see `skip`."""

SPEEDUP = "peer time / condprob time"
REACH = "condprob throughput, share of peak"


def skip(reason: str) -> NoReturn:
    """End a benchmark script that has nothing to measure on this machine; the runner records
    "skipped: REASON" and no table."""
    print(reason, flush=True)
    raise SystemExit(SKIPPED)


def cell(text: str) -> str:
    """`text` as one markdown table cell: `<` escaped (so `<id, c>` is not read as an HTML tag)
    and `|` escaped (so it does not split the cell)."""
    return text.replace("<", "&lt;").replace("|", "\\|")


class Table:
    """One benchmark area's figures, printed as two markdown tables: times with the speed-up
    (peer time / condprob time), and other figures (errors, scores, checks) side by side."""

    def __init__(self, title: str):
        self.title = title
        self.times: list[tuple[str, str, str, str, str, str]] = []
        self.values: list[tuple[str, str, str, str, str]] = []

    def add_time(self, task: str, ours: float, peer: str, theirs: float | None,
                 note: str = "", at_least: bool = False, work: Work | None = None) -> None:
        """A timing row; the speed-up is the peer's time over ours (above 1: we are faster).

        `theirs=None` reads n/a (peer missing or failed, said in `note`); `at_least` marks a peer
        stopped after `theirs` seconds, so both its time and the speed-up are lower bounds.
        `work` (what one call must compute and move) adds our achieved throughput and its share
        of the machine's single-core peak (`benchmarks.roofline`).
        """
        bound = "> " if at_least else ""
        speedup = f"{bound}{theirs / ours:.1f}x" if theirs is not None and ours > 0 else "n/a"
        peer_cell = peer + (f" ({note})" if note else "")
        theirs_cell = bound + fmt_seconds(theirs)
        reach = "" if work is None or ours <= 0 else share(work, ours)
        self.times.append((task, fmt_seconds(ours), peer_cell, theirs_cell, speedup, reach))

    def add_value(self, task: str, ours: str, peer: str, theirs: str, note: str = "") -> None:
        """A row of other figures (errors, scores, counts, checks), ours and the peer's side by
        side, with an optional note (e.g. their difference)."""
        self.values.append((task, ours, peer, theirs, note))

    def markdown(self, measured: datetime | None = None) -> str:
        """The table as markdown, stamped with the machine and the time of measurement."""
        stamp = (measured or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
        lines = [f"### {cell(self.title)}", "", f"Measured {stamp} on {machine()}."]
        if self.times:
            head = ["task", "condprob", "peer", "peer time", SPEEDUP]
            rows: list[tuple[str, ...]] = [r[:5] for r in self.times]
            title = f"**Time** (last column: {SPEEDUP}; above 1x condprob is faster)"
            if any(r[5] for r in self.times):
                head.append(REACH)
                rows = list(self.times)
                title = (f"**Time** (column 5: {SPEEDUP}, above 1x condprob is faster; last "
                         f"column: our throughput as a share of the {peaks().describe()})")
            lines += ["", title, "", *_rows(head, rows)]
        if self.values:
            head = ["task", "condprob", "peer", "peer's figure", "note"]
            rows = self.values
            if not any(r[4] for r in rows):
                head, rows = head[:4], [r[:4] for r in rows]
            lines += ["", "**Accuracy and other figures** (side by side)", "",
                      *_rows(head, rows)]
        return "\n".join(lines) + "\n"

    def emit(self, name: str) -> str:
        """Print the table and write it to benchmarks/results/NAME.md."""
        text = self.markdown()
        print(text)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.md").write_text(text)
        return text


def _rows(head: list[str], rows: list[tuple[str, ...]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(cell(c) for c in r) + " |" for r in rows)]
