"""Scores of texts under a token kernel: surprisal, entropy, and the conditional probability
curvature of Fast-DetectGPT (Bao et al. 2024), computed analytically from the kernel.

For a text x with prefix length m, scoring law p and sampling law q (default q = p):
curvature(x) = (log p(x) - mu) / sigma with mu = sum_t E_{y ~ q(.|x<t)} log p(y | x<t) and
sigma^2 = sum_t Var_{y ~ q(.|x<t)} log p(y | x<t) (sums over the generated positions t >= m).
Machine-generated text tends to score high: it sits near the modes of the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from condprob.errors import ValidationError
from condprob.lm.kernel import TokenKernel, as_prefix


class TokenScores(NamedTuple):
    """Per-position log-probabilities, surprisals and entropies (B, T - prefix_len)."""

    log_prob: torch.Tensor
    surprisal: torch.Tensor
    entropy: torch.Tensor


def token_scores(kernel: TokenKernel, tokens: torch.Tensor | Sequence,
                 prefix_len: int = 1) -> TokenScores:
    """log p(x_t | x_<t), the surprisal -log p(x_t | x_<t) and H(. | x_<t) at each position."""
    lp, h = kernel.score(tokens, prefix_len)
    return TokenScores(lp, -lp, h)


def curvature(kernel: TokenKernel, tokens: torch.Tensor | Sequence, prefix_len: int = 1,
              reference: TokenKernel | None = None) -> torch.Tensor:
    """Fast-DetectGPT's analytic conditional probability curvature of each text (B,)."""
    seq = as_prefix(tokens, kernel.vocab_size)
    ref = kernel if reference is None else reference
    if ref.vocab_size != kernel.vocab_size:
        raise ValidationError("the reference kernel must share the scoring kernel's vocabulary")
    if not 1 <= prefix_len < seq.shape[1]:
        raise ValidationError(f"prefix_len must lie in [1, {seq.shape[1]}), got {prefix_len}")
    total = torch.zeros(seq.shape[0], dtype=torch.float64)
    mean = torch.zeros_like(total)
    var = torch.zeros_like(total)
    for t in range(prefix_len, seq.shape[1]):
        lp = kernel.logits(seq[:, :t]).double()
        q = ref.logits(seq[:, :t]).double().exp()
        total += lp.gather(-1, seq[:, t : t + 1]).squeeze(-1)
        finite = torch.where(q > 0, lp, 0.0)
        m = (q * finite).sum(-1)
        mean += m
        var += (q * finite**2).sum(-1) - m**2
    if (var <= 0).any():
        raise ValidationError("the sampling law is deterministic at every position: the "
                              "curvature is undefined (zero variance)")
    return (total - mean) / var.sqrt()
