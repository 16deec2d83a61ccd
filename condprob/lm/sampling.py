"""Sorting-free sampling from filtered next-token laws (dual-pivot rejection sampling).

`sample_filtered` draws from softmax(logits / t) restricted to the intersection of the top-k,
top-p and min-p sets (each computed on the tempered law, as the filters of `condprob.lm.filters`
define them, ties included) without sorting the vocabulary. Every kept set is an upper set
{i : p_i >= threshold}, so a draw j from p restricted to {p > low}, with low below the threshold,
is a draw from the filtered law once accepted. Rejections raise `low` (FlashInfer's dual pivots:
pivot1 = p_j, pivot2 = (pivot1 + high) / 2), at least halving the search interval.
Each round costs a few passes over the vocabulary; sorting costs O(V log V) per row.

Three implementations share that law: the fused Triton kernels (`condprob.accel.sampling`, CUDA
tensors with a GPU backend), the compiled CPU kernels (`condprob.lm.cpu_kernels`, numba; top-k
there selects its candidates by chunk maxima instead of rejection) and `sample_filtered_torch`,
the torch twin for any other device.
"""

from __future__ import annotations

import numpy as np
import torch

from condprob.accel import gpu_available
from condprob.errors import ValidationError
from condprob.lm.filters import MinP, Temperature, TopK, TopP, check_logits, temper


def _inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index j with cdf[j-1] <= u * total < cdf[j]; guarded so that weights[j] > 0."""
    cdf = torch.cumsum(weights, -1)
    target = (u * cdf[:, -1]).unsqueeze(-1)
    j = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    over = j >= weights.shape[-1]
    if over.any():
        last = torch.arange(weights.shape[-1], device=weights.device)
        j[over] = torch.where(weights[over] > 0, last, -1).amax(-1)
    return j


def _satisfies(probs: torch.Tensor, pivot: torch.Tensor, top_k: int | None,
               top_p: float | None, min_thr: torch.Tensor | None) -> torch.Tensor:
    """Whether a token of probability `pivot` (per row) is kept by every filter."""
    ok = torch.ones_like(pivot, dtype=torch.bool) if min_thr is None else pivot >= min_thr
    if top_k is None and top_p is None:
        return ok
    above = probs > pivot.unsqueeze(-1)
    if top_k is not None:
        ok &= above.sum(-1) < top_k
    if top_p is not None:
        ok &= (probs * above).sum(-1, dtype=torch.float64) < top_p
    return ok


def _use_triton(logits: torch.Tensor) -> bool:
    """The fused Triton kernel serves CUDA tensors when a GPU backend is present."""
    return logits.is_cuda and gpu_available()


def sample_filtered(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None, min_p: float | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row of `logits` (..., V) from the filtered, tempered law, sort-free.

    The law equals softmax(F(logits / t)) where F keeps the intersection of the top-k, top-p and
    min-p sets (see `condprob.lm.filters`). CUDA tensors go to the fused Triton kernels of
    `condprob.accel.sampling` when a GPU backend is present (seeded from `generator`): Gumbel-max
    without filters, dual-pivot rejection with them. CPU tensors go to the compiled kernels of
    `condprob.lm.cpu_kernels` (uniforms from `generator`); the first call of a process imports
    numba and loads them from its on-disk cache, or compiles them if the cache lacks them.
    """
    check_logits(logits, top=False)  # the type and shape now; the values where they are read
    Temperature(temperature)
    if top_k is not None:
        TopK(top_k)
    if top_p is not None:
        TopP(top_p)
    if min_p is not None:
        MinP(min_p)
    if top_p is not None and top_p >= 1.0:
        top_p = None
    if _use_triton(logits):
        from condprob.accel.sampling import filtered_sample, gumbel_max_sample

        check_logits(logits)
        if temperature < 1:  # the kernels scale by 1/t in float32: temper first if it overflows
            biggest = float(logits.masked_fill(torch.isinf(logits), 0).abs().amax())
            if temperature * torch.finfo(torch.float32).max / 2 <= max(biggest, 1.0):
                logits, temperature = temper(logits, temperature), 1.0

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                                 device=None if generator is None else generator.device))
        if top_k is None and top_p is None and min_p is None:
            return gumbel_max_sample(logits, temperature, seed=seed)
        return filtered_sample(logits, temperature, top_k, top_p, min_p, seed=seed)
    if logits.device.type == "cpu":
        return _sample_cpu(logits, temperature, top_k, top_p, min_p, generator)
    return sample_filtered_torch(logits, temperature, top_k, top_p, min_p, generator,
                                 check=True)


_ROUNDS = 4
"""Dual-pivot rounds per call of the compiled kernel (most rows accept their first draw)."""


def _sample_cpu(logits: torch.Tensor, temperature: float, top_k: int | None,
                top_p: float | None, min_p: float | None,
                generator: torch.Generator | None) -> torch.Tensor:
    """The CPU path of `sample_filtered`: the compiled kernels of `condprob.lm.cpu_kernels`
    (numba, imported here so that importing condprob.lm does not import it; compiled on the
    first call of a process that finds no numba cache), which also check the logits' values."""
    from condprob.lm import cpu_kernels

    flat = logits.detach().reshape(-1, logits.shape[-1])
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()  # half precision: exact in float32
    scaled = (flat if temperature == 1 else temper(flat, temperature)).contiguous()
    rows, vocab = scaled.shape
    out = np.full(rows, -1, dtype=np.int64)
    if top_k is not None and top_k < vocab:
        probs = scaled[:, :0] if top_p is None else torch.softmax(scaled, -1)
        u = torch.rand(rows, generator=generator, dtype=torch.float64)
        cpu_kernels.topk_draw(scaled.numpy(), top_k, 1.0 if top_p is None else top_p,
                              min_p or 0.0, probs.numpy(), u.numpy(), out)
        bad = out < 0
    else:
        probs = torch.softmax(scaled, -1).numpy()
        low, high = np.zeros(rows), np.full(rows, -1.0)
        while (out == -1).any():
            u = torch.rand(rows, _ROUNDS, generator=generator, dtype=torch.float64)
            cpu_kernels.nucleus_draw(probs, 1.0 if top_p is None else top_p, min_p or 0.0,
                                     u.numpy(), low, high, out)
        bad = out == -2
    if bad.any():
        check_logits(flat)  # the kernels flag a row only for a NaN, a +inf or no finite logit
        raise ValidationError(f"no token could be drawn in row(s) {np.flatnonzero(bad).tolist()}"
                              " of the logits")
    return torch.from_numpy(out).reshape(logits.shape[:-1])


def sample_filtered_torch(logits: torch.Tensor, temperature: float = 1.0,
                          top_k: int | None = None, top_p: float | None = None,
                          min_p: float | None = None,
                          generator: torch.Generator | None = None,
                          check: bool = False) -> torch.Tensor:
    """The torch path of `sample_filtered` on any device (arguments already validated; with
    `check`, the values of the logits are checked here, by the pass that reads them first)."""
    batch = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    if check and (top_k is None or top_k >= flat.shape[-1] or temperature != 1):
        check_logits(flat)
    flat = flat if temperature == 1 else temper(flat, temperature)
    if top_k is None or top_k >= flat.shape[-1]:
        probs = torch.softmax(flat, -1)
        return _dual_pivot(probs, None, top_p, min_p, generator).reshape(batch)
    # Top-k first: the kept set lies among the k largest, so the sampler runs on k candidates.
    # One more candidate shows whether the k-th ties with the next (the filter keeps ties).
    cand, idx = torch.topk(flat, top_k + 1, dim=-1)
    if check:
        check_logits(flat, top=cand[:, 0])
    tied = cand[:, top_k] == cand[:, top_k - 1]
    cand, idx = cand[:, :top_k], idx[:, :top_k]
    if top_p is None and min_p is None:
        # top-k alone: the law is softmax over the candidates (sorted, the first is the largest)
        weights = torch.exp(cand - cand[:, :1])
        j = _inverse_cdf(weights, torch.rand(weights.shape[0], generator=generator,
                                             dtype=weights.dtype, device=weights.device))
    else:
        lse = torch.logsumexp(flat, -1, keepdim=True)
        j = _dual_pivot(torch.exp(cand - lse), None, top_p, min_p, generator)
    out = idx.gather(-1, j.unsqueeze(-1)).squeeze(-1)
    if bool(tied.any()):  # rows whose k-th candidate ties with the next: on the whole law
        out[tied] = _dual_pivot(torch.softmax(flat[tied], -1), top_k, top_p, min_p, generator)
    return out.reshape(batch)


def _dual_pivot(probs: torch.Tensor, top_k: int | None, top_p: float | None,
                min_p: float | None, generator: torch.Generator | None) -> torch.Tensor:
    """Dual-pivot rejection sampling on rows of probabilities (a sub-vector of the law allowed:
    the filters only look at tokens above the pivot, which the sub-vector must contain)."""
    pmax = probs.amax(-1)
    min_thr = None if min_p is None else min_p * pmax
    out = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    rows = torch.arange(probs.shape[0], device=probs.device)
    low = torch.zeros_like(pmax)
    high = pmax.clone()
    first = True
    while rows.numel():
        p = probs if first else probs[rows]
        u = torch.rand(rows.numel(), generator=generator, dtype=p.dtype, device=p.device)
        j = _inverse_cdf(p if first else p * (p > low[rows].unsqueeze(-1)), u)
        first = False
        piv1 = p.gather(-1, j.unsqueeze(-1)).squeeze(-1)
        ok1 = _satisfies(p, piv1, top_k, top_p, None if min_thr is None else min_thr[rows])
        out[rows[ok1]] = j[ok1]
        rej = ~ok1
        if not bool(rej.any()):
            break
        # the second pivot only for the rejected rows (most rows accept their first draw)
        rows, p, piv1 = rows[rej], p[rej], piv1[rej]
        piv2 = (piv1 + high[rows]) / 2
        ok2 = _satisfies(p, piv2, top_k, top_p, None if min_thr is None else min_thr[rows])
        low[rows] = torch.where(ok2, piv1, piv2)
        high[rows] = torch.where(ok2, piv2, high[rows])
    return out


def sample_sorted(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, min_p: float | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The same law as `sample_filtered`, by the filters' masks (sort-based reference)."""
    scaled = Temperature(temperature)(logits)
    keep = torch.ones_like(scaled, dtype=torch.bool)
    for f in (TopK(top_k) if top_k else None, TopP(top_p) if top_p else None,
              MinP(min_p) if min_p else None):
        if f is not None:
            keep &= f.keep(scaled)
    probs = torch.softmax(scaled.masked_fill(~keep, float("-inf")), -1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(logits.shape[:-1])

