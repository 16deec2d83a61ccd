"""Scores of texts under a token kernel: surprisal, entropy, and the conditional probability
curvature of Fast-DetectGPT (Bao et al. 2024), computed analytically from the kernel.

For a text x with prefix length m, scoring law p and sampling law q (default q = p):
`curvature(x) = (log p(x) - mu) / sigma` with `mu = sum_t E_{y ~ q(.|x<t)} log p(y | x<t)` and
`sigma^2 = sum_t Var_{y ~ q(.|x<t)} log p(y | x<t)` (sums over the generated positions t >= m).
Machine-generated text tends to score high: it sits near the modes of the model. Models that give
every position's logits (`all_logits`) score a text in one call (`TokenKernel.all_log_probs`).
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


def prefix_log_probs(kernel: TokenKernel, sequences: Sequence[Sequence[int]]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """log P(sequence) from the empty prefix (B,) and the next-token law after it (B, V), for
    token sequences of any lengths: one batched model call when the model gives every position's
    logits (`model.all_logits`), else one call per prefix."""
    seqs = [list(s) for s in sequences]
    width = max((len(s) for s in seqs), default=0)
    lengths = torch.tensor([len(s) for s in seqs])
    padded = as_prefix([s + [0] * (width - len(s)) for s in seqs] or [[]], kernel.vocab_size)
    lp = kernel.all_log_probs(padded)
    rows = torch.arange(len(seqs))
    tok = lp[:, :-1].gather(-1, padded.unsqueeze(-1)).squeeze(-1)
    tok = torch.where(torch.arange(width) < lengths.unsqueeze(-1), tok, 0.0)
    return tok.sum(-1), lp[rows, lengths]


def token_scores(kernel: TokenKernel, tokens: torch.Tensor | Sequence,
                 prefix_len: int = 1) -> TokenScores:
    """`log p(x_t | x_<t)`, the surprisal `-log p(x_t | x_<t)` and `H(. | x_<t)` at each position."""
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
    lp = kernel.all_log_probs(seq[:, :-1], prefix_len).double()
    q = lp.exp() if ref is kernel else ref.all_log_probs(seq[:, :-1], prefix_len).double().exp()
    total = lp.gather(-1, seq[:, prefix_len:, None])[..., 0].sum(-1)
    finite = torch.where(q > 0, lp, 0.0)
    m = (q * finite).sum(-1)
    mean = m.sum(-1)
    var = ((q * finite**2).sum(-1) - m**2).sum(-1)
    if (var <= 0).any():
        raise ValidationError("the sampling law is deterministic at every position: the "
                              "curvature is undefined (zero variance)")
    return (total - mean) / var.sqrt()
