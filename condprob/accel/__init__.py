"""Triton kernels and the one decision of whether to use them.

`gpu_available()` is the single test every dispatch in condprob uses: a CUDA device is visible to
torch, Triton has an active GPU driver and its CPU interpreter is off. Kernel modules (`condprob.accel.chain_kernels`, ...)
import Triton and are imported lazily, only when a dispatch decides to use them, so that tests can
set TRITON_INTERPRET=1 before the kernels are decorated and run them on CPU. Every kernel has a
torch twin it is tested against.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

MAX_CHAIN_STATES = 64
"""Largest state count the chain kernels keep in registers (one S x S tile per program)."""


def gpu_available() -> bool:
    """Whether a GPU backend for Triton is present: torch sees CUDA, Triton has an active GPU
    driver, and Triton's CPU interpreter is off (TRITON_INTERPRET=1 runs kernels on the host)."""
    if not _gpu_backend():
        return False
    import triton

    return not triton.knobs.runtime.interpret


@lru_cache(maxsize=1)
def _gpu_backend() -> bool:
    try:
        if not torch.cuda.is_available():
            return False
        import triton

        triton.runtime.driver.active.get_current_target()
        return True
    except Exception:  # no triton, no driver, or a driver that fails to initialise
        return False


def chain_kernels_apply(unary: Tensor, pairwise: Tensor) -> bool:
    """Whether the chain engine should run the Triton chain kernels on these potentials: a GPU
    backend, CUDA tensors of at most single precision (the kernels compute in float32; float64
    stays on the torch path), one transition matrix shared by all steps and chains, and at most
    `MAX_CHAIN_STATES` states."""
    return (unary.is_cuda and unary.dtype != torch.float64 and pairwise.dim() == 2
            and unary.shape[-1] <= MAX_CHAIN_STATES and gpu_available())
