"""CRF chain kernels on a GPU: Triton (dispatched automatically) against the torch path of the
chain engine and against torch-struct 0.5, on the same GPU.

Settings: float32, batch 32, length 100, 20 and 64 labels; log Z + backward, marginals, Viterbi.
torch-struct runs in the `crf` peer environment; on a GPU machine create that environment with a
CUDA build of torch 2.13.0 (its figures read n/a when the peer's torch sees no GPU).

    .venv/bin/python -m benchmarks.bench_crf_gpu
"""

from __future__ import annotations

import torch

from benchmarks.harness import Table, run_peer, skip
from condprob import accel
from condprob import chain as ch

B, T = 32, 100
SIZES = (20, 64)

PEER_STRUCT = """
import torch
out = {}
if torch.cuda.is_available():
    from torch_struct import LinearChainCRF
    def cuda_time(fn, repeat=10):
        fn(); torch.cuda.synchronize()
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter(); fn(); torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)
    for L in SIZES:
        pot = torch.randn(B, T - 1, L, L, device="cuda", requires_grad=True)
        out[f"part{L}"] = cuda_time(lambda: LinearChainCRF(pot).partition.sum().backward())
        out[f"vit{L}"] = cuda_time(lambda: LinearChainCRF(pot.detach()).argmax)
print(json.dumps(out))
"""


def cuda_time(fn, repeat: int = 10) -> float:
    import statistics
    import time

    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(L: int, use_triton: bool) -> dict[str, float]:
    torch.manual_seed(0)
    unary = torch.randn(B, T, L, device="cuda", requires_grad=True)
    trans = torch.randn(L, L, device="cuda", requires_grad=True)
    original = accel.chain_kernels_apply
    if not use_triton:
        accel.chain_kernels_apply = lambda *a: False
    try:
        chain = ch.Chain(unary, trans)
        out = {
            "logz": cuda_time(lambda: ch.log_partition(ch.Chain(unary, trans)).sum().backward()),
            "marg": cuda_time(lambda: ch.marginals(chain)),
            "vit": cuda_time(lambda: ch.viterbi(chain)),
        }
    finally:
        accel.chain_kernels_apply = original
    return out


def main() -> None:
    if not accel.gpu_available():
        skip("no GPU backend for Triton (run on a GPU machine)")
    prelude = f"B, T, SIZES = {B}, {T}, {SIZES!r}\n"
    peer = run_peer("crf", prelude + PEER_STRUCT) or {}
    table = Table(f"Chain kernels on {torch.cuda.get_device_name()}: float32, batch 32, "
                  "length 100 (lower time is better)")
    for L in SIZES:
        tri, torch_path = measure(L, True), measure(L, False)
        for key, task in (("logz", "log Z + backward"), ("marg", "marginals"),
                          ("vit", "Viterbi")):
            table.add_time(f"{task}, {L} labels (Triton)", tri[key], "condprob torch path",
                           torch_path[key])
        table.add_time(f"log Z + backward, {L} labels (Triton)", tri["logz"], "torch-struct 0.5",
                       peer.get(f"part{L}"))
        table.add_time(f"Viterbi, {L} labels (Triton)", tri["vit"], "torch-struct 0.5",
                       peer.get(f"vit{L}"))
    table.emit("crf_gpu")


if __name__ == "__main__":
    main()
