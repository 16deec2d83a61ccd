"""Gumbel tricks: Gumbel-max with exposed noise, counterfactual generation, Gumbel-top-k and
stochastic beam search.

- Gumbel-max: argmax(logits + G) with G ~ Gumbel(0, 1) i.i.d. is a draw from softmax(logits).
- The Gumbel-max structural causal model (Oberst & Sontag 2019; Chatzi et al. 2024): token_t =
  argmax(logits_t + G_t). Given an observed token, the posterior noise is sampled top-down: the
  maximum is Gumbel(logsumexp(logits)), the others are Gumbels truncated below it. Regenerating
  with that noise under an intervention gives the counterfactual text.
- Gumbel-top-k: the k largest logits + G are k draws without replacement (Plackett-Luce).
- Stochastic beam search (Kool et al. 2019): Gumbel-top-k over whole sequences, computed
  step by step with truncated Gumbels G~ = -log(exp(-T) - exp(-Z) + exp(-G)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch

from condprob.errors import ValidationError, check_nonnegative_int, check_positive_int
from condprob.lm.filters import NEG_INF, check_logits
from condprob.lm.kernel import TokenKernel, as_prefix


def gumbel_noise(shape: Sequence[int], generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise: -log(-log U), U ~ Uniform(0, 1) kept away from 0 and 1."""
    u = torch.rand(tuple(shape), generator=generator, dtype=dtype, device=device)
    tiny = torch.finfo(dtype).tiny
    return -torch.log(-torch.log(u.clamp(min=tiny, max=1 - torch.finfo(dtype).eps)))


def gumbel_max(logits: torch.Tensor, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax(logits + G), G): a draw from softmax(logits) together with its noise."""
    check_logits(logits)
    g = gumbel_noise(logits.shape, generator, logits.dtype, logits.device)
    return (logits + g).argmax(-1), g


def truncated_gumbel(location: torch.Tensor, bound: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Gumbel(location) conditioned to be <= bound: -log(exp(-bound) + exp(-G)), stably."""
    g = location + gumbel_noise(location.shape, generator, location.dtype, location.device)
    return -torch.logaddexp(-bound, -g)


def shift_gumbel(perturbed: torch.Tensor, target_max: torch.Tensor) -> torch.Tensor:
    """Kool et al.'s truncation: values with maximum Z = max(perturbed) mapped to maximum T.

    -log(exp(-T) - exp(-Z) + exp(-G)) written as T - relu(v) - log1p(exp(-|v|)),
    v = T - G + log1mexp(G - Z).
    """
    z = perturbed.amax(-1, keepdim=True)
    t = target_max.unsqueeze(-1)
    diff = perturbed - z
    log1mexp = torch.where(diff > -0.6931, torch.log(-torch.expm1(diff)),
                           torch.log1p(-torch.exp(diff)))
    v = t - perturbed + log1mexp
    out = t - torch.relu(v) - torch.log1p(torch.exp(-v.abs()))
    out = torch.where(diff == 0, t.expand_as(out), out)
    return torch.where(perturbed == NEG_INF, NEG_INF, out)


def posterior_gumbel(logits: torch.Tensor, observed: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise G ~ Gumbel(0, 1)^V conditioned on argmax(logits + G) = observed (rows of (..., V)).

    Tokens of logit -inf never win, so their noise keeps its prior law.
    """
    check_logits(logits)
    obs = torch.as_tensor(observed, dtype=torch.long).unsqueeze(-1)
    if obs.shape != logits.shape[:-1] + (1,):
        raise ValidationError(f"observed tokens of shape {tuple(obs.shape[:-1])} for logits "
                              f"of shape {tuple(logits.shape)}")
    if (logits.gather(-1, obs) == NEG_INF).any():
        raise ValidationError("an observed token has probability zero under the model")
    top = torch.logsumexp(logits, -1, keepdim=True)
    top = top + gumbel_noise(top.shape, generator, logits.dtype, logits.device)
    finite = logits > NEG_INF
    loc = torch.where(finite, logits, 0.0)
    perturbed = truncated_gumbel(loc, top, generator)
    perturbed = perturbed.scatter(-1, obs, top)
    prior = gumbel_noise(logits.shape, generator, logits.dtype, logits.device)
    return torch.where(finite, perturbed - loc, prior)


def counterfactual(factual: TokenKernel, sequence: torch.Tensor | Sequence, prefix_len: int,
                   intervened: TokenKernel | None = None, do: Mapping[int, int] | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Counterfactual continuation of `sequence` (B, T) under the Gumbel-max SCM.

    The noise of each generated position t >= prefix_len is sampled from its posterior given the
    factual token; the text is then regenerated with that noise by `intervened` (default: the
    factual model) with the tokens in `do` ({position: token}) forced. Without an intervention the
    factual text comes back.
    """
    seq = as_prefix(sequence, factual.vocab_size)
    model = factual if intervened is None else intervened
    if model.vocab_size != factual.vocab_size:
        raise ValidationError("the intervened model must share the factual vocabulary")
    do = dict(do or {})
    for pos in do:
        if not prefix_len <= pos < seq.shape[1]:
            raise ValidationError(f"intervention position {pos} is outside the generated span "
                                  f"[{prefix_len}, {seq.shape[1]})")
    out = seq[:, :prefix_len].clone()
    for t in range(prefix_len, seq.shape[1]):
        noise = posterior_gumbel(factual.logits(seq[:, :t]), seq[:, t], generator)
        if t in do:
            nxt = torch.full((seq.shape[0],), do[t], dtype=torch.long)
        else:
            nxt = (model.logits(out) + noise).argmax(-1)
        out = torch.cat([out, nxt.unsqueeze(-1)], -1)
    return out


def gumbel_topk(logits: torch.Tensor, k: int, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """k tokens per row without replacement, in sampling order, with their perturbed logits."""
    check_logits(logits)
    finite = (logits > NEG_INF).sum(-1)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or (finite < k).any():
        raise ValidationError(f"k must be a positive integer at most the number of tokens of "
                              f"positive probability ({int(finite.min())}), got {k!r}")
    perturbed = logits + gumbel_noise(logits.shape, generator, logits.dtype, logits.device)
    vals, idx = torch.topk(perturbed, k, dim=-1)
    return idx, vals


class Beam(NamedTuple):
    """Result of a beam search: sequences (k, T), log-probabilities (k,), perturbed log-probs (k,)
    in decreasing order, and `threshold`, the (k+1)-th largest perturbed log-probability over all
    sequences (the largest key of a dropped subtree at any step; -inf if none was dropped)."""

    sequences: torch.Tensor
    log_probs: torch.Tensor
    keys: torch.Tensor
    threshold: torch.Tensor


def _step_logits(kernel: TokenKernel, seqs: torch.Tensor) -> torch.Tensor:
    """Next-token log-probabilities; after eos only eos (with probability one)."""
    lp = kernel.logits(seqs)
    if kernel.eos is not None and seqs.shape[1]:
        done = (seqs == kernel.eos).any(-1, keepdim=True)
        stay = torch.full_like(lp, NEG_INF)
        stay[:, kernel.eos] = 0.0
        lp = torch.where(done, stay, lp)
    return lp


def stochastic_beam_search(kernel: TokenKernel, prefix: Sequence[int] | torch.Tensor, k: int,
                           steps: int, generator: torch.Generator | None = None) -> Beam:
    """k continuations of `prefix` of `steps` tokens, drawn without replacement from the kernel's
    sequence law (Kool et al. 2019). Sequences that reach eos are padded with eos."""
    root = as_prefix(prefix, kernel.vocab_size)
    if root.shape[0] != 1:
        raise ValidationError("stochastic beam search starts from a single prefix")
    check_positive_int(k, "beam size k")
    check_nonnegative_int(steps, "steps")
    seqs, logp = root, torch.zeros(1, dtype=torch.float64)
    keys = gumbel_noise((1,), generator)
    threshold = torch.tensor(NEG_INF, dtype=torch.float64)
    for _ in range(steps):
        lp = _step_logits(kernel, seqs).double()
        child = logp.unsqueeze(-1) + lp
        g = child + gumbel_noise(child.shape, generator)
        g = torch.where(child == NEG_INF, NEG_INF, g)
        gt = shift_gumbel(g, keys).reshape(-1)
        n = int((gt > NEG_INF).sum())
        take = min(k, n)
        top_vals, top_idx = torch.topk(gt, min(take + 1, gt.numel()))
        if top_vals.numel() > take:
            threshold = torch.maximum(threshold, top_vals[take])
        top_vals, top_idx = top_vals[:take], top_idx[:take]
        parent, tok = top_idx // lp.shape[-1], top_idx % lp.shape[-1]
        seqs = torch.cat([seqs[parent], tok.unsqueeze(-1)], -1)
        logp = child.reshape(-1)[top_idx]
        keys = top_vals
    return Beam(seqs, logp, keys, threshold)


def sbs_estimate(beam: Beam, values: torch.Tensor) -> torch.Tensor:
    """Kool et al.'s estimator of E[f] from a stochastic beam: sum p(y) f(y) / q(y) with
    q(y) = 1 - exp(-exp(log p(y) - threshold)), unbiased given the threshold (k+1-th key)."""
    if beam.threshold == NEG_INF:
        return (beam.log_probs.exp() * values).sum()
    q = -torch.expm1(-torch.exp(beam.log_probs - beam.threshold))
    return (beam.log_probs.exp() * values / q).sum()
