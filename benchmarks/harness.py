"""Shared benchmark harness: medians of wall times, peers run in their own environments, and
markdown tables of figures with ratios.

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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".peers"
RESULTS = ROOT / "benchmarks" / "results"

PEER_PRELUDE = """
import json, statistics, time
def median_time(fn, repeat=5, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
"""


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn()` in seconds over `repeat` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
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


class Table:
    """Rows of (task, our figure, peer, peer's figure, ratio peer/ours) printed as markdown."""

    def __init__(self, title: str):
        self.title = title
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add_time(self, task: str, ours: float, peer: str, theirs: float | None,
                 note: str = "") -> None:
        """A timing row; the ratio is the peer's time over ours (above 1: we are faster)."""
        ratio = f"{theirs / ours:.1f}x" if theirs is not None and ours > 0 else "n/a"
        peer_cell = peer + (f" ({note})" if note else "")
        self.rows.append((task, fmt_seconds(ours), peer_cell, fmt_seconds(theirs), ratio))

    def add_value(self, task: str, ours: str, peer: str, theirs: str, ratio: str = "") -> None:
        """A row of any figures (errors, scores, counts)."""
        self.rows.append((task, ours, peer, theirs, ratio))

    def markdown(self) -> str:
        head = ["task", "condprob", "peer", "peer figure", "ratio"]
        lines = [f"### {self.title}", "", f"Machine: {machine()}", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def emit(self, name: str) -> str:
        """Print the table and write it to benchmarks/results/NAME.md."""
        text = self.markdown()
        print(text)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.md").write_text(text)
        return text
