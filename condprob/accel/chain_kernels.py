"""Triton kernels of the chain engine: log-space forward, backward (marginals and transition
marginals) and Viterbi, for chains sharing one transition matrix.

One program handles one chain; the S x S transition tile stays in registers (S <= 64, padded to a
power of two). Chains are right padded with lengths (the engine compacts arbitrary masks first).
All reductions are safe for all -inf slices: log-sum-exp shifts by the max only where it is
finite, so impossible states stay -inf and never become NaN. Offsets into the (B, T, S) tensors
are int64 (B T S may pass 2^31), and the Viterbi backtrace reads the backpointers other threads of
its program wrote only after a barrier.

    alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + trans[i, j]) + unary[t, j]
    beta_t[i]  = logsumexp_j(trans[i, j] + unary[t+1, j] + beta_{t+1}[j]),  beta_{n-1} = end
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

NEG = float("-inf")


@triton.jit
def _lse(x, axis: tl.constexpr):
    m = tl.max(x, axis=axis)
    m = tl.where(m == float("-inf"), 0.0, m)
    if axis == 0:
        s = tl.sum(tl.exp(x - m[None, :]), axis=0)
    else:
        s = tl.sum(tl.exp(x - m[:, None]), axis=1)
    return tl.log(s) + m


@triton.jit
def _load_tile(TR, S, i, ok):
    """The S x S transition tile (padded with -inf)."""
    return tl.load(TR + i[:, None] * S + i[None, :], mask=ok[:, None] & ok[None, :],
                   other=float("-inf"))


@triton.jit
def _load_first(U, START, b, base, S, i, ok):
    """alpha_0 = start + unary[0] of chain b (padded with -inf)."""
    return tl.load(START + b * S + i, mask=ok, other=float("-inf")) + tl.load(
        U + base + i, mask=ok, other=float("-inf"))


@triton.jit
def _forward_kernel(U, TR, START, END, LEN, ALPHA, LOGZ, T, S, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    i = tl.arange(0, BLOCK)
    ok = i < S
    tr = _load_tile(TR, S, i, ok)
    n = tl.load(LEN + b)
    base = b * T * S
    alpha = _load_first(U, START, b, base, S, i, ok)
    tl.store(ALPHA + base + i, alpha, mask=ok)
    for t in range(1, T):
        new = _lse(alpha[:, None] + tr, 0) + tl.load(U + base + t * S + i, mask=ok,
                                                      other=float("-inf"))
        alpha = tl.where(t < n, new, alpha)
        tl.store(ALPHA + base + t * S + i, alpha, mask=ok)
    fin = alpha + tl.load(END + b * S + i, mask=ok, other=float("-inf"))
    m = tl.max(fin, axis=0)
    m = tl.where(m == float("-inf"), 0.0, m)
    tl.store(LOGZ + b, tl.log(tl.sum(tl.exp(fin - m), axis=0)) + m)


@triton.jit
def _backward_kernel(U, TR, END, LEN, ALPHA, LOGZ, MARG, PAIR, T, S, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    i = tl.arange(0, BLOCK)
    ok = i < S
    tr = _load_tile(TR, S, i, ok)
    n = tl.load(LEN + b)
    logz = tl.load(LOGZ + b)
    base = b * T * S
    beta = tl.load(END + b * S + i, mask=ok, other=float("-inf"))
    last = tl.load(ALPHA + base + (n - 1) * S + i, mask=ok, other=float("-inf"))
    tl.store(MARG + base + (n - 1) * S + i, tl.exp(last + beta - logz), mask=ok)
    acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for k in range(0, T - 1):
        t = T - 2 - k
        active = (i * 0 + t) < n - 1  # the scalar test, as a vector for masks
        live = ok & active
        v = tl.load(U + base + (t + 1) * S + i, mask=live, other=float("-inf")) + beta
        x = tr + v[None, :]
        a = tl.load(ALPHA + base + t * S + i, mask=live, other=float("-inf"))
        acc += tl.exp(a[:, None] + x - logz)
        new = _lse(x, 1)
        beta = tl.where(active, new, beta)
        tl.store(MARG + base + t * S + i, tl.exp(a + beta - logz), mask=live)
    tl.store(PAIR + b * S * S + i[:, None] * S + i[None, :], acc, mask=ok[:, None] & ok[None, :])


@triton.jit
def _viterbi_kernel(U, TR, START, END, LEN, BP, PATH, SCORE, T, S, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    i = tl.arange(0, BLOCK)
    ok = i < S
    tr = _load_tile(TR, S, i, ok)
    n = tl.load(LEN + b)
    base = b * T * S
    alpha = _load_first(U, START, b, base, S, i, ok)
    for t in range(1, T):
        x = alpha[:, None] + tr
        best, arg = tl.max(x, axis=0, return_indices=True)
        new = best + tl.load(U + base + t * S + i, mask=ok, other=float("-inf"))
        alpha = tl.where(t < n, new, alpha)
        tl.store(BP + base + t * S + i, arg.to(tl.int32), mask=ok)
    fin = alpha + tl.load(END + b * S + i, mask=ok, other=float("-inf"))
    top, state = tl.max(fin, axis=0, return_indices=True)
    tl.store(SCORE + b, top)
    state = state.to(tl.int32)
    tl.debug_barrier()  # the backpointers were stored by every thread of the program
    for k in range(0, T):
        t = T - 1 - k
        if t < n - 1:
            state = tl.load(BP + base + (t + 1) * S + state)
        tl.store(PATH + b * T + t, tl.where(t < n, state, -1))


def _prepare(unary: Tensor, trans: Tensor, start: Tensor, end: Tensor, lengths: Tensor):
    f32 = torch.float32
    b, t, s = unary.shape
    return (unary.to(f32).contiguous(), trans.to(f32).contiguous(), start.to(f32).contiguous(),
            end.to(f32).contiguous(), lengths.to(torch.int32).contiguous(), b, t, s,
            triton.next_power_of_2(s))


def forward(unary: Tensor, trans: Tensor, start: Tensor, end: Tensor,
            lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(log Z (B,), log alphas (B, T, S)) for unary (B, T, S), trans (S, S), start/end (B, S)."""
    u, tr, st, en, ln, b, t, s, block = _prepare(unary, trans, start, end, lengths)
    alpha = torch.empty_like(u)
    logz = torch.empty(b, dtype=u.dtype, device=u.device)
    _forward_kernel[(b,)](u, tr, st, en, ln, alpha, logz, t, s, BLOCK=block)
    return logz, alpha


def backward(unary: Tensor, trans: Tensor, end: Tensor, lengths: Tensor, alpha: Tensor,
             logz: Tensor) -> tuple[Tensor, Tensor]:
    """(marginals (B, T, S), transition marginals summed over time (B, S, S))."""
    u, tr, _, en, ln, b, t, s, block = _prepare(unary, trans, end, end, lengths)
    marg = torch.zeros_like(u)
    pair = torch.empty(b, s, s, dtype=u.dtype, device=u.device)
    # three S x S tiles live at once: 8 warps at S = 64 keep them in registers (4 warps spill)
    _backward_kernel[(b,)](u, tr, en, ln, alpha, logz, marg, pair, t, s, BLOCK=block,
                           num_warps=8 if block >= 64 else 4)
    return marg, pair


def viterbi(unary: Tensor, trans: Tensor, start: Tensor, end: Tensor,
            lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(best scores (B,), paths (B, T) with -1 after each length)."""
    u, tr, st, en, ln, b, t, s, block = _prepare(unary, trans, start, end, lengths)
    bp = torch.zeros(b, t, s, dtype=torch.int32, device=u.device)
    path = torch.empty(b, t, dtype=torch.int32, device=u.device)
    score = torch.empty(b, dtype=u.dtype, device=u.device)
    _viterbi_kernel[(b,)](u, tr, st, en, ln, bp, path, score, t, s, BLOCK=block)
    return score, path.long()


class LogPartition(torch.autograd.Function):
    """log Z by the forward kernel; gradients (marginals) by the backward kernel."""

    @staticmethod
    def forward(ctx, unary, trans, start, end, lengths):  # noqa: D102
        logz, alpha = forward(unary, trans, start, end, lengths)
        ctx.save_for_backward(unary, trans, end, lengths, alpha, logz)
        return logz.to(unary.dtype)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        unary, trans, end, lengths, alpha, logz = ctx.saved_tensors
        marg, pair = backward(unary, trans, end, lengths, alpha, logz)
        ok = torch.isfinite(logz)
        g = torch.where(ok, g.to(marg.dtype), torch.zeros_like(g, dtype=marg.dtype))
        marg = torch.nan_to_num(marg) * g[:, None, None]
        pair = (torch.nan_to_num(pair) * g[:, None, None]).sum(0)
        rows = torch.arange(marg.shape[0], device=marg.device)
        gs, ge = marg[:, 0], marg[rows, lengths.long() - 1]
        dt = unary.dtype
        return marg.to(dt), pair.to(trans.dtype), gs.to(dt), ge.to(dt), None
