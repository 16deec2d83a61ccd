"""Conditional Poisson sampling and conditional Poisson stochastic beam search (Meister, Amini,
Vieira & Cotterell 2021).

The conditional Poisson design draws a set S of size K with P(S) proportional to prod_{i in S} w_i.
Its normaliser is the elementary symmetric polynomial e_K(w); the table W[r, i] = e_r(w_1..w_i)
obeys W[r, i] = W[r, i-1] + w_i W[r-1, i-1], i.e. row r is the cumulative sum of w_i W[r-1, i-1],
so each row is one `logcumsumexp` (log space, K passes, no loop over items). Sampling draws the
largest included item with P(i) proportional to w_i W[r-1, i-1], then recurses below it. Inclusion
probabilities pi_i = w_i sum_r W[r, i-1] Wbar[K-1-r, i+1] / W[K, N] (Wbar: suffix table) sum to K.
The beam search applies the design at every step to the children of the beam and keeps the
product of the conditional inclusion probabilities, which makes the Horvitz-Thompson estimator
sum_{y in beam} p(y) f(y) / pi(y) unbiased for E_p[f].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from condprob.errors import ValidationError, check_nonnegative_int, check_positive_int
from condprob.lm.filters import NEG_INF
from condprob.lm.gumbel import _step_logits
from condprob.lm.kernel import TokenKernel, as_prefix


def _check(log_w: torch.Tensor, k: int) -> torch.Tensor:
    if not isinstance(log_w, torch.Tensor) or log_w.ndim != 1 or not log_w.is_floating_point():
        raise ValidationError("log-weights must be a 1-D floating tensor")
    if torch.isnan(log_w).any() or (log_w == float("inf")).any():
        raise ValidationError("log-weights must not be NaN or +inf")
    positive = int((log_w > NEG_INF).sum())
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= positive:
        raise ValidationError(f"set size k must be an integer in [1, {positive}] (the number of "
                              f"items of positive weight), got {k!r}")
    return log_w.double()


def log_esp_table(log_w: torch.Tensor, k: int) -> torch.Tensor:
    """log W (k+1, N+1): W[r, i] = e_r(w_1, ..., w_i), the elementary symmetric polynomials."""
    n = log_w.shape[0]
    table = torch.full((k + 1, n + 1), NEG_INF, dtype=log_w.dtype)
    table[0] = 0.0
    for r in range(1, k + 1):
        table[r, 1:] = torch.logcumsumexp(log_w + table[r - 1, :-1], 0)
    return table


def log_normaliser(log_w: torch.Tensor, k: int) -> torch.Tensor:
    """log e_k(w): the log of the sum over k-sets of prod w."""
    log_w = _check(log_w, k)
    return log_esp_table(log_w, k)[k, -1]


def inclusion_probabilities(log_w: torch.Tensor, k: int) -> torch.Tensor:
    """P(i in S) under the conditional Poisson design of size k; they sum to k."""
    log_w = _check(log_w, k)
    fwd = log_esp_table(log_w, k)
    bwd = log_esp_table(log_w.flip(0), k)
    n = log_w.shape[0]
    terms = torch.stack([fwd[r, :n] + bwd[k - 1 - r, :n].flip(0) for r in range(k)])
    return torch.exp(log_w + torch.logsumexp(terms, 0) - fwd[k, n])


def conditional_poisson_sample(log_w: torch.Tensor, k: int, num_samples: int = 1,
                               generator: torch.Generator | None = None) -> torch.Tensor:
    """Sets of size k drawn with P(S) proportional to prod_{i in S} w_i: (num_samples, k) item
    indices in decreasing order."""
    log_w = _check(log_w, k)
    table = log_esp_table(log_w, k)
    upper = torch.full((num_samples,), log_w.shape[0], dtype=torch.long)
    out = torch.empty(num_samples, k, dtype=torch.long)
    for j, r in enumerate(range(k, 0, -1)):
        u = torch.rand(num_samples, generator=generator, dtype=torch.float64)
        target = torch.log(u) + table[r, upper]
        n = torch.searchsorted(table[r, 1:].contiguous(), target.unsqueeze(-1), right=True)
        n = torch.minimum(n.squeeze(-1), upper - 1)
        out[:, j] = n
        upper = n
    return out


def horvitz_thompson(values: torch.Tensor, log_probs: torch.Tensor,
                     log_inclusion: torch.Tensor) -> torch.Tensor:
    """Horvitz-Thompson estimate of E_p[f] = sum_y p(y) f(y) from a sample set:
    sum over the set of p(y) f(y) / pi(y)."""
    return (torch.exp(log_probs - log_inclusion) * values).sum(-1)


class CPBeam(NamedTuple):
    """Result of `cp_beam_search`: sequences (k, T), their log-probabilities and the log of their
    (products of conditional) inclusion probabilities."""

    sequences: torch.Tensor
    log_probs: torch.Tensor
    log_inclusion: torch.Tensor


def cp_beam_search(kernel: TokenKernel, prefix: Sequence[int] | torch.Tensor, k: int,
                   steps: int, generator: torch.Generator | None = None) -> CPBeam:
    """Conditional Poisson stochastic beam search: at each step a conditional Poisson set of size
    k among the children of the beam, with weights w = p(y_<=t)."""
    seqs = as_prefix(prefix, kernel.vocab_size)
    if seqs.shape[0] != 1:
        raise ValidationError("beam search starts from a single prefix")
    check_positive_int(k, "beam size k")
    check_nonnegative_int(steps, "steps")
    logp = torch.zeros(1, dtype=torch.float64)
    log_incl = torch.zeros(1, dtype=torch.float64)
    for _ in range(steps):
        lp = _step_logits(kernel, seqs).double()
        child = (logp.unsqueeze(-1) + lp).reshape(-1)
        alive = torch.nonzero(child > NEG_INF).squeeze(-1)
        if alive.numel() <= k:
            chosen, incl = alive, torch.zeros(alive.numel(), dtype=torch.float64)
        else:
            pick = conditional_poisson_sample(child[alive], k, 1, generator)[0]
            chosen = alive[pick]
            incl = inclusion_probabilities(child[alive], k)[pick].log()
        parent, tok = chosen // lp.shape[-1], chosen % lp.shape[-1]
        seqs = torch.cat([seqs[parent], tok.unsqueeze(-1)], -1)
        logp = child[chosen]
        log_incl = log_incl[parent] + incl
    return CPBeam(seqs, logp, log_incl)
