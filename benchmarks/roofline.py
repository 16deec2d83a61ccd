"""How close to the machine's limit: single-core peaks measured in the run, and the share of them a
benchmark row achieves.

The peaks are the best of a few runs, on one thread, by the harness's clock: float32 and float64
GEMM (`torch.mm` of 1024 x 1024 matrices, 2 n^3 flops) and memory bandwidth (`copy_` of a 64 MB
tensor, bytes read plus bytes written). A row's `Work` states the arithmetic and the memory
traffic one call needs at least; its roofline time is max(flops / GEMM peak, bytes / bandwidth),
and the share printed is that time over the measured time (100% would be the machine's limit).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.roofline
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

GEMM_N = 1024
COPY_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Work:
    """What one call must do at least: `flops` arithmetic operations (a multiply-add is 2; a max
    counts as one) in `dtype`, and `bytes` of memory read plus written."""

    flops: float = 0.0
    bytes: float = 0.0
    dtype: torch.dtype = torch.float32


@dataclass(frozen=True)
class Peaks:
    """Single-core peaks: GEMM GFLOP/s in float32 and float64, copy bandwidth in GB/s."""

    gemm32: float
    gemm64: float
    copy: float

    def gemm(self, dtype: torch.dtype) -> float:
        return self.gemm64 if dtype == torch.float64 else self.gemm32

    def describe(self) -> str:
        return (f"single-core peaks measured in this run: GEMM {self.gemm32:.1f} GFLOP/s float32, "
                f"{self.gemm64:.1f} GFLOP/s float64; copy {self.copy:.1f} GB/s")


def _best(fn, repeat: int) -> float:
    from benchmarks.harness import CLOCK

    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = CLOCK()
        fn()
        best = min(best, CLOCK() - t0)
    return best


@lru_cache(maxsize=1)
def peaks() -> Peaks:
    """Measure the peaks once per process (about a second), on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = []
        for dtype in (torch.float32, torch.float64):
            a = torch.rand(GEMM_N, GEMM_N, dtype=dtype)
            b = torch.rand(GEMM_N, GEMM_N, dtype=dtype)
            c = torch.empty(GEMM_N, GEMM_N, dtype=dtype)
            seconds = _best(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), 3)
            out.append(2 * GEMM_N**3 / seconds / 1e9)
        src = torch.ones(COPY_BYTES // 4)
        dst = torch.empty_like(src)
        seconds = _best(lambda: dst.copy_(src), 5)
        out.append(2 * COPY_BYTES / seconds / 1e9)
    finally:
        torch.set_num_threads(threads)
    return Peaks(*out)


def share(work: Work, seconds: float, p: Peaks | None = None) -> str:
    """The achieved throughput of one call taking `seconds` and its share of the roofline."""
    p = p or peaks()
    t_flops = work.flops / (p.gemm(work.dtype) * 1e9)
    t_bytes = work.bytes / (p.copy * 1e9)
    bound = "compute" if t_flops >= t_bytes else "memory"
    parts = []
    if work.flops:
        parts.append(f"{work.flops / seconds / 1e9:.2f} GFLOP/s")
    if work.bytes:
        parts.append(f"{work.bytes / seconds / 1e9:.2f} GB/s")
    return f"{', '.join(parts)}: {100 * max(t_flops, t_bytes) / seconds:.1f}% of peak ({bound})"


def chain_work(batch: int, steps: int, states: int, passes: int) -> Work:
    """A linear-chain dynamic program: `passes` sweeps of batch x steps x states^2 multiply-adds
    (forward = 1; forward-backward = 2; with the transition gradient = 3), float32."""
    return Work(flops=2.0 * passes * batch * steps * states**2)


def main() -> None:
    print(peaks().describe())


if __name__ == "__main__":
    main()
