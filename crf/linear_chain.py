"""`LinearChainCRF`: a linear-chain CRF over label sequences on the core's chain engine.

    p(y | x) = exp(start[y_1] + sum_t (emit[t, y_t] + trans[y_{t-1}, y_t]) + end[y_n]) / Z(x)

Emissions (*batch, T, L) come from any encoder. Masks may be any pattern (right or left padding,
holes): masked positions are skipped. Every quantity is exact: log_prob, log_partition,
marginals, Viterbi, k-best, exact samples, entropy, and the likelihood of partial labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from condprob import chain as ch
from condprob.errors import ValidationError
from condprob.protocol import SampleShape, as_sample_shape, num_draws
from crf.distribution import CRFDistribution
from crf.kernel import CRFKernel

REDUCTIONS = ("none", "sum", "mean", "token_mean")


def _minus_inf_at(values: Tensor, outside: Tensor | None) -> Tensor:
    """values with -inf where `outside` (an `_outside` mask, None for nowhere)."""
    return values if outside is None else values.masked_fill(outside, float("-inf"))


class LinearChainCRF(nn.Module):
    """A linear-chain CRF with learned transition, start and end scores.

    Args:
        labels: the number of labels or their names.
        init_scale: transition/start/end scores start uniform in [-init_scale, init_scale].
    """

    def __init__(self, labels: int | Sequence[str], init_scale: float = 0.1):
        super().__init__()
        if isinstance(labels, int):
            if labels < 1:
                raise ValidationError(f"the number of labels must be positive, got {labels}")
            labels = [str(i) for i in range(labels)]
        if isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
            raise ValidationError(f"labels must be a number of labels or a list of names, got "
                                  f"{labels!r}")
        self.labels = list(labels)
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ValidationError(f"labels must be a non-empty list of distinct names, got "
                                  f"{self.labels}")
        n = len(self.labels)
        self.transitions = nn.Parameter(torch.empty(n, n))
        self.start = nn.Parameter(torch.empty(n))
        self.end = nn.Parameter(torch.empty(n))
        for p in (self.transitions, self.start, self.end):
            nn.init.uniform_(p, -init_scale, init_scale)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    # Inputs ---------------------------------------------------------------------------------
    def _check(self, emissions: Tensor, mask: Tensor | None) -> None:
        if not isinstance(emissions, Tensor) or emissions.dim() < 2:
            raise ValidationError("emissions must be a tensor of shape (*batch, T, num_labels)")
        if emissions.shape[-1] != self.num_labels:
            raise ValidationError(f"emissions have {emissions.shape[-1]} labels in the last "
                                  f"dimension, the CRF has {self.num_labels}")
        if mask is not None and (not isinstance(mask, Tensor) or mask.dtype != torch.bool
                                 or mask.shape != emissions.shape[:-1]):
            raise ValidationError(f"mask must be a bool tensor of shape "
                                  f"{tuple(emissions.shape[:-1])}, got "
                                  f"{getattr(mask, 'dtype', type(mask).__name__)} "
                                  f"{tuple(getattr(mask, 'shape', ()))}")

    def _check_tags(self, emissions: Tensor, tags: Tensor, mask: Tensor | None) -> Tensor:
        self._check(emissions, mask)
        if not isinstance(tags, Tensor) or tags.is_floating_point() or tags.is_complex():
            raise ValidationError(f"tags must be an integer tensor of label indices, got "
                                  f"{type(tags).__name__}" + (f" of dtype {tags.dtype}"
                                                             if isinstance(tags, Tensor) else ""))
        if tags.shape != emissions.shape[:-1]:
            raise ValidationError(f"tags must have shape {tuple(emissions.shape[:-1])}, got "
                                  f"{tuple(tags.shape)}")
        tags = tags.long()
        if mask is None:  # one reduction over the tags
            low, high = tags.aminmax() if tags.numel() else (0, 0)
            bad = int(low) < 0 or int(high) >= self.num_labels
        else:
            bad = bool((mask & ((tags < 0) | (tags >= self.num_labels))).any())
        if bad:
            raise ValidationError(f"tags must lie in [0, {self.num_labels}) at unmasked positions")
        return tags

    def label_chain(self, emissions: Tensor, mask: Tensor | None = None) -> ch.Chain:
        """The chain over labels (no constraint)."""
        self._check(emissions, mask)
        dt = emissions.dtype
        return ch.Chain(emissions, self.transitions.to(dt), self.start.to(dt), self.end.to(dt),
                        mask)

    def chain(self, emissions: Tensor, mask: Tensor | None = None,
              allowed: Tensor | None = None) -> ch.Chain:
        """The chain the model's distribution lives on; `allowed` (*batch, T, L) bool restricts
        the labels of each position."""
        c = self.label_chain(emissions, mask)
        if allowed is None:
            return c
        return ch.Chain(emissions.masked_fill(~allowed, float("-inf")), c.pairwise, c.start,
                        c.end, mask)

    def _chains(self, emissions: Tensor, mask: Tensor | None) -> tuple[ch.Chain, ch.Chain]:
        """(label_chain, chain) of the emissions, built once when they are the same chain."""
        labels = self.label_chain(emissions, mask)
        if type(self).chain is LinearChainCRF.chain:  # no constraint: chain is label_chain
            return labels, labels
        return labels, self.chain(emissions, mask)

    def _to_labels(self, states: Tensor) -> Tensor:
        return states

    def _to_label_marginals(self, marginals: Tensor) -> Tensor:
        return marginals

    def _outside(self, tags: Tensor, mask: Tensor | None) -> Tensor | None:
        """(*batch,) bool: gold sequences the model gives probability zero by construction;
        None where no sequence can be (no constraint)."""
        return None

    # Densities ------------------------------------------------------------------------------
    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """log Z(x), shape (*batch,)."""
        return ch.log_partition(self.chain(emissions, mask))

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """The unnormalised log-score of label sequences (*batch, T); -inf if not allowed."""
        tags = self._check_tags(emissions, tags, mask)
        return self._score(self.label_chain(emissions, mask), tags, self._outside(tags, mask))

    @staticmethod
    def _score(labels: ch.Chain, tags: Tensor, outside: Tensor | None) -> Tensor:
        """score on the label chain for tags that `_check_tags` returned, with `outside` their
        `_outside` mask."""
        return _minus_inf_at(ch.score(labels, tags), outside)

    def log_prob(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """log p(tags | x), shape (*batch,); exactly -inf for impossible sequences. Raises
        ConditioningError where x allows no sequence at all (e.g. every label -inf at a position)."""
        tags = self._check_tags(emissions, tags, mask)
        return self._log_prob(emissions, tags, mask, self._outside(tags, mask))

    def _log_prob(self, emissions: Tensor, tags: Tensor, mask: Tensor | None,
                  outside: Tensor | None) -> Tensor:
        """log_prob for tags that `_check_tags` returned, with `outside` their `_outside` mask."""
        labels, model = self._chains(emissions, mask)
        if labels is model:  # score and normaliser from one pass (and one backward pass)
            return _minus_inf_at(ch.log_prob(model, tags), outside)
        return self._score(labels, tags, outside) - ch.log_normaliser(model)

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None,
            reduction: str = "mean") -> Tensor:
        """Negative log-likelihood with reduction none (per sequence), sum, mean (over
        sequences) or token_mean (over unmasked tokens). Raises ValidationError when a gold
        sequence has probability zero (use `log_prob` to get -inf instead), ConditioningError
        when x allows no sequence at all."""
        if reduction not in REDUCTIONS:
            raise ValidationError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        tags = self._check_tags(emissions, tags, mask)
        outside = self._outside(tags, mask)
        if outside is not None and bool(outside.any()):
            raise ValidationError(
                f"gold sequence(s) at flattened batch index "
                f"{outside.reshape(-1).nonzero().flatten().tolist()} lie outside the model's "
                "language (probability zero); fix the data or the constraint")
        loss = -self._log_prob(emissions, tags, mask, outside)
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        if reduction == "mean":
            return loss.mean()
        tokens = tags.numel() if mask is None else mask.sum()
        return loss.sum() / tokens

    forward = nll

    def partial_log_likelihood(self, emissions: Tensor, allowed: Tensor,
                               mask: Tensor | None = None) -> Tensor:
        """log p(y_t in allowed_t for all t | x) for label sets allowed (*batch, T, L) bool:
        the marginal likelihood of partially labelled sequences."""
        if allowed.dtype != torch.bool or allowed.shape != emissions.shape:
            raise ValidationError(f"allowed must be a bool tensor of shape "
                                  f"{tuple(emissions.shape)}, got {allowed.dtype} "
                                  f"{tuple(allowed.shape)}")
        return (ch.log_partition(self.chain(emissions, mask, allowed))
                - ch.log_normaliser(self.chain(emissions, mask)))

    # Inference ------------------------------------------------------------------------------
    def marginals(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """p(y_t = l | x), shape (*batch, T, L); zero at masked positions."""
        return self._to_label_marginals(ch.marginals(self.chain(emissions, mask)))

    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Viterbi: (log-score of the best sequence (*batch,), labels (*batch, T) with -1 at
        masked positions)."""
        best, states = ch.viterbi(self.chain(emissions, mask))
        return best, self._to_labels(states)

    def top_k(self, emissions: Tensor, k: int, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The k best distinct sequences: (scores (k, *batch), labels (k, *batch, T)); missing
        ones (fewer than k sequences) have score -inf and labels -1."""
        scores, states = ch.kbest(self.chain(emissions, mask), k)
        return scores, self._to_labels(states)

    def sample(self, emissions: Tensor, sample_shape: SampleShape = (), *,
               mask: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples, shape sample_shape + (*batch, T), -1 at masked positions."""
        shape = as_sample_shape(sample_shape)
        chain = self.chain(emissions, mask)
        if num_draws(shape) == 0:
            return torch.empty((*shape, *torch.as_tensor(emissions).shape[:-1]), dtype=torch.long)
        draws = self._to_labels(ch.sample(chain, num_draws(shape), generator))
        return draws.reshape(*shape, *draws.shape[1:])

    def entropy(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """The entropy of p(y | x) in nats, shape (*batch,)."""
        return ch.entropy(self.chain(emissions, mask))

    def distribution(self, emissions: Tensor, mask: Tensor | None = None) -> CRFDistribution:
        """p(y | x) as a torch/Pyro distribution (`crf.CRFDistribution`)."""
        return CRFDistribution(self, emissions, mask)

    def kernel(self) -> CRFKernel:
        """The CRF as a Markov kernel emissions -> label sequences in the core's protocol."""
        return CRFKernel(self)

    def extra_repr(self) -> str:
        return f"labels={self.num_labels}"
