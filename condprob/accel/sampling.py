"""Triton token-sampling kernels: fused temperature + Gumbel-max, fused temperature with
top-k / top-p / min-p filtering by dual-pivot rejection sampling (no sort), and the speculative
accept/reject step with its residual draw. Each program handles a
tile of ROWS rows, streaming the vocabulary in BLOCK-wide chunks, so that every reduction is a
(ROWS, BLOCK) tile operation.

The laws are those of `condprob.lm.sampling.sample_filtered` and of softmax(logits / t); the random
numbers differ (Philox streams of `tl.rand` seeded by `seed`). Computation is in float32; row
offsets are int64 (B V may pass 2^31); `seed` is not specialised on (a fresh seed per call must not
compile a fresh kernel). The dual-pivot loop stops after `MAX_ROUNDS` rounds (the interval at least
halves per round, so a float32 row needs far fewer): a row still open then raises instead of hanging.
`condprob.lm.sampling.sample_filtered` dispatches here for CUDA tensors when
`condprob.accel.gpu_available()`; on CPU the kernels run with TRITON_INTERPRET=1 (set before this
module is imported), which is how they are tested against the torch path.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from condprob.errors import CondprobError, ValidationError

MAX_ROUNDS = tl.constexpr(1024)  # a kernel global must be a constexpr


@triton.jit
def _cdf_step(w, offs, target, run, j, last, V):
    """One tile of inverse-CDF sampling over weights w: the first index whose running sum passes
    `target` (kept once found), the last index of positive weight, and the updated running sum."""
    cdf = tl.cumsum(w, 1) + run[:, None]
    hit = tl.min(tl.where((cdf > target[:, None]) & (w > 0), offs[None, :], V), 1)
    j = tl.where((j < 0) & (hit < V), hit, j)
    last = tl.maximum(last, tl.max(tl.where(w > 0, offs[None, :], 0), 1))
    return j, last, run + tl.sum(w, 1)


@triton.jit
def _tile(x_ptr, rows, rmask, V, start, inv_t, BLOCK: tl.constexpr):
    """Tempered logits of a (ROWS, BLOCK) tile (-inf outside the matrix), its columns and their
    flat int64 offsets (rows are int64)."""
    offs = start + tl.arange(0, BLOCK)
    inside = rmask[:, None] & (offs[None, :] < V)
    flat = rows[:, None] * V + offs[None, :]
    x = tl.load(x_ptr + flat, mask=inside, other=-float("inf"))
    return x.to(tl.float32) * inv_t, offs, inside, flat


@triton.jit(do_not_specialize=["seed"])
def _gumbel_max_kernel(x_ptr, out_ptr, B, V, inv_t, seed, ROWS: tl.constexpr,
                       BLOCK: tl.constexpr):
    """argmax(x / t + G) per row, G ~ Gumbel(0, 1) from tl.rand."""
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    rmask = rows < B
    best = tl.full((ROWS,), -float("inf"), tl.float32)
    arg = tl.zeros((ROWS,), tl.int32)
    for start in range(0, V, BLOCK):
        x, offs, inside, flat = _tile(x_ptr, rows, rmask, V, start, inv_t, BLOCK)
        u = tl.rand(seed, flat)
        u = tl.minimum(tl.maximum(u, 1e-12), 1.0 - 1e-7)
        score = tl.where(inside, x - tl.log(-tl.log(u)), -float("inf"))
        cmax = tl.max(score, 1)
        carg = tl.min(tl.where(score == cmax[:, None], offs[None, :], V), 1)
        take = cmax > best
        arg = tl.where(take, carg, arg)
        best = tl.where(take, cmax, best)
    tl.store(out_ptr + rows, arg, mask=rmask)


@triton.jit(do_not_specialize=["seed"])
def _filtered_kernel(x_ptr, out_ptr, B, V, inv_t, top_k, top_p, min_p, seed,
                     ROWS: tl.constexpr, BLOCK: tl.constexpr):
    """Dual-pivot rejection sampling from the filtered law of each row of the tile."""
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    rmask = rows < B
    m = tl.full((ROWS,), -float("inf"), tl.float32)
    for start in range(0, V, BLOCK):
        x, offs, inside, _ = _tile(x_ptr, rows, rmask, V, start, inv_t, BLOCK)
        m = tl.maximum(m, tl.max(x, 1))
    m = tl.where(rmask, m, 0.0)
    z = tl.zeros((ROWS,), tl.float32)
    for start in range(0, V, BLOCK):
        x, offs, inside, _ = _tile(x_ptr, rows, rmask, V, start, inv_t, BLOCK)
        z += tl.sum(tl.exp(x - m[:, None]), 1)
    z = tl.where(rmask, z, 1.0)
    low = tl.zeros((ROWS,), tl.float32)
    high = 1.0 / z
    min_thr = min_p / z
    done = tl.where(rmask, 0, 1)
    result = tl.zeros((ROWS,), tl.int32)
    rnd = 0
    while (tl.sum(1 - done, 0) > 0) & (rnd < MAX_ROUNDS):
        total = tl.zeros((ROWS,), tl.float32)
        for start in range(0, V, BLOCK):
            x, offs, inside, _ = _tile(x_ptr, rows, rmask, V, start, inv_t, BLOCK)
            p = tl.exp(x - m[:, None]) / z[:, None]
            total += tl.sum(tl.where(p > low[:, None], p, 0.0), 1)
        target = tl.rand(seed, rows * 4096 + rnd) * total
        run = tl.zeros((ROWS,), tl.float32)
        j = tl.full((ROWS,), -1, tl.int32)
        last = tl.zeros((ROWS,), tl.int32)
        for start in range(0, V, BLOCK):
            x, offs, inside, _ = _tile(x_ptr, rows, rmask, V, start, inv_t, BLOCK)
            p = tl.exp(x - m[:, None]) / z[:, None]
            w = tl.where(p > low[:, None], p, 0.0)
            j, last, run = _cdf_step(w, offs, target, run, j, last, V)
        j = tl.where(j < 0, last, j)
        xj = tl.load(x_ptr + rows * V + j, mask=rmask, other=0.0).to(tl.float32)
        piv1 = tl.exp(xj * inv_t - m) / z
        piv2 = (piv1 + high) / 2
        c1 = tl.zeros((ROWS,), tl.int32)
        c2 = tl.zeros((ROWS,), tl.int32)
        m1 = tl.zeros((ROWS,), tl.float32)
        m2 = tl.zeros((ROWS,), tl.float32)
        for start in range(0, V, BLOCK):
            x, offs, inside, _ = _tile(x_ptr, rows, rmask, V, start, inv_t, BLOCK)
            p = tl.exp(x - m[:, None]) / z[:, None]
            big1 = p > piv1[:, None]
            big2 = p > piv2[:, None]
            c1 += tl.sum(big1.to(tl.int32), 1)
            c2 += tl.sum(big2.to(tl.int32), 1)
            m1 += tl.sum(tl.where(big1, p, 0.0), 1)
            m2 += tl.sum(tl.where(big2, p, 0.0), 1)
        ok1 = (c1 < top_k) & (m1 < top_p) & (piv1 >= min_thr)
        ok2 = (c2 < top_k) & (m2 < top_p) & (piv2 >= min_thr)
        active = done == 0
        result = tl.where(active & ok1, j, result)
        rejected = active & (ok1 == 0)
        high = tl.where(rejected & ok2, piv2, high)
        low = tl.where(rejected, tl.where(ok2, piv1, piv2), low)
        done = tl.where(ok1, 1, done)
        rnd += 1
    tl.store(out_ptr + rows, tl.where(done == 1, result, -1), mask=rmask)


@triton.jit(do_not_specialize=["seed"])
def _speculative_kernel(p_ptr, q_ptr, d_ptr, out_ptr, B, N, V, seed, ROWS: tl.constexpr,
                        BLOCK: tl.constexpr):
    """Verify N drafts per row: accept draft i with probability min(1, p_i(x) / q_i(x)) while all
    earlier ones were accepted; then draw from norm(max(0, p_a - q_a)) (q_N = 0: the bonus)."""
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    rmask = rows < B
    still = rmask
    acc = tl.zeros((ROWS,), tl.int32)
    for i in range(0, N):
        x = tl.load(d_ptr + rows * N + i, mask=rmask, other=0)
        px = tl.load(p_ptr + (rows * (N + 1) + i) * V + x, mask=rmask, other=0.0)
        qx = tl.load(q_ptr + (rows * N + i) * V + x, mask=rmask, other=1.0)
        u = tl.rand(seed, rows * (N + 1) + i)
        still = still & (u * qx < px)
        tl.store(out_ptr + rows * (N + 1) + i, tl.where(still, x, -1), mask=rmask)
        acc += still.to(tl.int32)
    has_q = acc < N
    p_row = p_ptr + (rows * (N + 1) + acc) * V
    q_row = q_ptr + (rows * N + tl.minimum(acc, N - 1)) * V
    total = tl.zeros((ROWS,), tl.float32)
    for start in range(0, V, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        inside = rmask[:, None] & (offs[None, :] < V)
        p = tl.load(p_row[:, None] + offs[None, :], mask=inside, other=0.0)
        q = tl.load(q_row[:, None] + offs[None, :], mask=inside & has_q[:, None], other=0.0)
        total += tl.sum(tl.maximum(p - q, 0.0), 1)
    residual = total > 0
    total = tl.where(residual, total, 1.0)
    target = tl.rand(seed + 1, rows) * total
    run = tl.zeros((ROWS,), tl.float32)
    j = tl.full((ROWS,), -1, tl.int32)
    last = tl.zeros((ROWS,), tl.int32)
    for start in range(0, V, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        inside = rmask[:, None] & (offs[None, :] < V)
        p = tl.load(p_row[:, None] + offs[None, :], mask=inside, other=0.0)
        q = tl.load(q_row[:, None] + offs[None, :], mask=inside & has_q[:, None], other=0.0)
        w = tl.where(residual[:, None], tl.maximum(p - q, 0.0), p)
        j, last, run = _cdf_step(w, offs, target, run, j, last, V)
    j = tl.where(j < 0, last, j)
    tl.store(out_ptr + rows * (N + 1) + N, tl.where(has_q, -1, j), mask=rmask)
    tl.store(out_ptr + rows * (N + 1) + acc, j, mask=rmask & has_q)


def _check_tiles(rows: int, block: int) -> None:
    for name, n in (("rows", rows), ("block", block)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n & (n - 1):
            raise ValidationError(f"{name} must be a power of two, got {n!r}")


def _launch(kernel, logits: torch.Tensor, *args, rows: int, block: int | None) -> torch.Tensor:
    x = logits.reshape(-1, logits.shape[-1]).contiguous()
    b, v = x.shape
    block = block if block is not None else min(triton.next_power_of_2(v), 1024)
    _check_tiles(rows, block)
    out = torch.empty(b, dtype=torch.int32, device=x.device)
    kernel[(triton.cdiv(b, rows),)](x, out, b, v, *args, ROWS=rows, BLOCK=block)
    return out.long().reshape(logits.shape[:-1])


def gumbel_max_sample(logits: torch.Tensor, temperature: float = 1.0, seed: int = 0,
                      rows: int = 4, block: int | None = None) -> torch.Tensor:
    """One draw per row from softmax(logits / t) by the fused Gumbel-max kernel (`rows` and
    `block` are powers of two)."""
    return _launch(_gumbel_max_kernel, logits, 1.0 / temperature, seed, rows=rows, block=block)


def filtered_sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None, min_p: float | None = None, seed: int = 0,
                    rows: int = 4, block: int | None = None) -> torch.Tensor:
    """One draw per row from the tempered law filtered by top-k, top-p and min-p (their
    intersection), by the fused dual-pivot kernel. Raises CondprobError for rows that did not
    settle within `MAX_ROUNDS` rounds (logits whose float32 law is not a distribution)."""
    v = logits.shape[-1]
    out = _launch(_filtered_kernel, logits, 1.0 / temperature,
                  v + 1 if top_k is None else top_k, 2.0 if top_p is None else top_p,
                  0.0 if min_p is None else min_p, seed, rows=rows, block=block)
    if bool((out < 0).any()):
        bad = (out.reshape(-1) < 0).nonzero().flatten()[:10].tolist()
        raise CondprobError(f"filtered sampling did not settle within {MAX_ROUNDS.value} rounds in "
                            f"row(s) {bad} (flattened index): their float32 law is not a "
                            "distribution")
    return out


def speculative_verify(target: torch.Tensor, draft: torch.Tensor, drafts: torch.Tensor,
                       seed: int = 0, rows: int = 4, block: int | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused twin of `condprob.lm.speculative.speculative_step`: target (B, n+1, V) and
    draft (B, n, V) laws, drafts (B, n) -> (tokens (B, n+1) padded with -1, counts (B,))."""
    b, n = drafts.shape
    v = target.shape[-1]
    block = block if block is not None else min(triton.next_power_of_2(v), 1024)
    _check_tiles(rows, block)
    p = target.to(torch.float32).contiguous()
    q = draft.to(torch.float32).contiguous()
    d = drafts.to(torch.int32).contiguous()
    out = torch.empty(b, n + 1, dtype=torch.int32, device=p.device)
    _speculative_kernel[(triton.cdiv(b, rows),)](p, q, d, out, b, n, v, seed, ROWS=rows,
                                                  BLOCK=block)
    out = out.long()
    return out, (out >= 0).sum(-1)
