"""The first-order linear recurrence x_i = a_i x_{i-1} + b_i (x_{-1} = 0) along a sequence axis.

Exponential-kernel point processes carry their history in such a state (a_i = e^{-beta dt_i} in
(0, 1], b_i >= 0), so the scan is all products and sums of non-negative numbers: no cancellation.
It runs in sqrt(L) chunks (sequential inside chunks, vectorised across chunks), and its gradient
is the reverse recurrence (the same scan run the other way), so autograd stores only a and x.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from condprob.errors import ValidationError

__all__ = ["linear_scan"]


def _scan(a: Tensor, b: Tensor, reverse: bool) -> Tensor:
    """x along dim 1 of contiguous (B, L, P) tensors: x_i = a_i x_{i-1} + b_i, or with `reverse`
    x_i = a_i x_{i+1} + b_i (x_L = 0); a may be (B, L, 1), one factor for all P.

    In chunks of C = isqrt(L) steps: each chunk's last state from zero and its gain (the
    product of its a), vectorised across chunks; then the state entering each chunk, one step
    per chunk; then the recurrence again from those states, so x is the plain recurrence
    restarted at every chunk. The L mod C steps outside the whole chunks (after them, or before
    them with `reverse`) run one by one. Views of a, b and x: no copies but x."""
    B, L, P = b.shape
    x = torch.empty_like(b)
    if L == 0:
        return x
    C = math.isqrt(L)
    nc, n = L // C, L // C * C
    lo = L - n if reverse else 0
    a_c, b_c, x_c = (t[:, lo:lo + n].view(B, nc, C, t.shape[2]).unbind(2) for t in (a, b, x))
    steps = range(C - 1, -1, -1) if reverse else range(C)
    chunks = range(nc - 1, -1, -1) if reverse else range(nc)
    rest = range(lo - 1, -1, -1) if reverse else range(n, L)
    end, gain = b_c[steps[0]].clone(), a_c[steps[0]].clone()
    for c in steps[1:]:
        torch.addcmul(b_c[c], a_c[c], end, out=end)
        gain.mul_(a_c[c])
    start = torch.zeros_like(end)
    ends, gains, starts = end.unbind(1), gain.unbind(1), start.unbind(1)
    for k_prev, k in zip(chunks, chunks[1:], strict=False):
        torch.addcmul(ends[k_prev], gains[k_prev], starts[k_prev], out=starts[k])
    torch.addcmul(b_c[steps[0]], a_c[steps[0]], start, out=x_c[steps[0]])
    for c_prev, c in zip(steps, steps[1:], strict=False):
        torch.addcmul(b_c[c], a_c[c], x_c[c_prev], out=x_c[c])
    i_prev = lo if reverse else n - 1
    for i in rest:
        torch.addcmul(b[:, i], a[:, i], x[:, i_prev], out=x[:, i])
        i_prev = i
    return x


def _shift(x: Tensor, reverse: bool) -> Tensor:
    """x_{i-1} at i (x_{i+1} with `reverse`) along dim 1, zero past the ends."""
    pad = (0, 0, 0, 1) if reverse else (0, 0, 1, 0)
    return torch.nn.functional.pad(x[:, 1:] if reverse else x[:, :-1], pad)


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, reverse: bool) -> Tensor:  # type: ignore[override]
        x = _scan(a, b, reverse)
        ctx.reverse = reverse
        ctx.save_for_backward(a, x)
        return x

    @staticmethod
    def backward(ctx, gx: Tensor):  # type: ignore[override]
        a, x = ctx.saved_tensors
        # gb_i = gx_i + a_{i+1} gb_{i+1}: the recurrence run the other way (differentiable, so
        # Hessians work); x_i depends on a_i through x_{i-1} (x_{i+1} with reverse).
        gb = _LinearScan.apply(_shift(a, not ctx.reverse).contiguous(), gx.contiguous(),
                               not ctx.reverse)
        ga = gb * _shift(x, ctx.reverse)
        return ga if a.shape == ga.shape else ga.sum(2, keepdim=True), gb, None


def linear_scan(a: Tensor, b: Tensor) -> Tensor:
    """x_i = a_i x_{i-1} + b_i along dim 1 of (B, L, P) tensors a and b (differentiable); a may
    also be (B, L, 1), one factor for all P."""
    if b.ndim != 3 or a.shape not in (b.shape, (*b.shape[:2], 1)):
        raise ValidationError(f"linear_scan needs a and b of one shape (B, L, P) (or a of shape "
                              f"(B, L, 1)), got {tuple(a.shape)} and {tuple(b.shape)}")
    return _LinearScan.apply(a.contiguous(), b.contiguous(), False)
