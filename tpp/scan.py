"""The first-order linear recurrence x_i = a_i x_{i-1} + b_i (x_{-1} = 0) along a sequence axis.

Exponential-kernel point processes carry their history in such a state (a_i = e^{-beta dt_i} in
(0, 1], b_i >= 0), so the scan is all products and sums of non-negative numbers: no cancellation.
It runs in two sqrt(L) passes (a sequential pass inside chunks, vectorised across chunks, then a
pass over chunk carries), and its gradient is the reverse recurrence, so autograd stores only
a and x.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from condprob.errors import ValidationError

__all__ = ["linear_scan"]


def _scan(a: Tensor, b: Tensor) -> Tensor:
    """x along dim 1 of (B, L, P) tensors, chunked."""
    B, L, P = b.shape
    if L == 0:
        return b.clone()
    C = max(1, math.isqrt(L))
    nc = -(-L // C)
    pad = nc * C - L
    if pad:
        a = torch.cat([a, a.new_ones(B, pad, P)], 1)
        b = torch.cat([b, b.new_zeros(B, pad, P)], 1)
    # chunk position first, so that each step of the sequential pass reads contiguous memory
    a_c = a.view(B, nc, C, P).permute(2, 0, 1, 3).contiguous()
    x_c = b.view(B, nc, C, P).permute(2, 0, 1, 3).clone(memory_format=torch.contiguous_format)
    for c in range(1, C):
        torch.addcmul(x_c[c], a_c[c], x_c[c - 1], out=x_c[c])
    decay = torch.cumprod(a_c, dim=0)
    ends, decay_end = x_c[-1].unbind(1), decay[-1].unbind(1)
    carries = torch.zeros_like(x_c[0])
    for k in range(1, nc):
        torch.addcmul(ends[k - 1], decay_end[k - 1], carries[:, k - 1], out=carries[:, k])
    x_c.addcmul_(decay, carries)
    return x_c.permute(1, 2, 0, 3).reshape(B, nc * C, P)[:, :L]


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:  # type: ignore[override]
        x = _scan(a, b)
        x = x if x._base is None else x.clone()  # autograd needs a fresh tensor, not a view
        ctx.save_for_backward(a, x)
        return x

    @staticmethod
    def backward(ctx, gx: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        a, x = ctx.saved_tensors
        # gb_i = gx_i + a_{i+1} gb_{i+1}: the same recurrence run backwards.
        a_next = torch.nn.functional.pad(a[:, 1:], (0, 0, 0, 1), value=0.0)
        gb = linear_scan(a_next.flip(1), gx.flip(1)).flip(1)  # differentiable: Hessians work
        x_prev = torch.nn.functional.pad(x[:, :-1], (0, 0, 1, 0), value=0.0)
        return gb * x_prev, gb


def linear_scan(a: Tensor, b: Tensor) -> Tensor:
    """x_i = a_i x_{i-1} + b_i along dim 1 of (B, L, P) tensors a and b (differentiable)."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValidationError(f"linear_scan needs a and b of one shape (B, L, P), got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return _LinearScan.apply(a.contiguous(), b.contiguous())
