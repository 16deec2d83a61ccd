"""The exact posterior of a hybrid program: a finite mixture of Gaussians with discrete labels.

A `Mixture` holds components (label, weight, Gaussian) on one Euclidean space; the weights sum to
one (exact Fractions when the program's inputs are exact and no Gaussian density enters them).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

from condprob.errors import ConditioningError, ValidationError
from condprob.finite import State
from condprob.gaussian import Gaussian
from condprob.spaces import FactorKey, Space

__all__ = ["Mixture"]


class Mixture:
    """sum_i w_i N(mean_i, cov_i), each component tagged with the label of its discrete branch."""

    def __init__(self, components: Sequence[tuple[Hashable, Any, Gaussian]]):
        comps = list(components)
        if not comps:
            raise ValidationError("a mixture needs at least one component")
        space = comps[0][2].space
        for label, w, g in comps:
            if not isinstance(g, Gaussian) or g.space != space:
                raise ValidationError(f"component {label!r} is not a Gaussian on {space}")
            if w < 0:
                raise ValidationError(f"component {label!r} has negative weight {w}")
        self.components = comps
        self.space: Space = space

    def __repr__(self) -> str:
        return f"Mixture({len(self.components)} components on {self.space})"

    @property
    def weights(self) -> list[Any]:
        return [w for _, w, _ in self.components]

    def _float_weights(self, g: Gaussian) -> torch.Tensor:
        return torch.tensor([float(w) for w in self.weights], dtype=g.dtype)

    def discrete(self) -> State:
        """The marginal on the discrete labels (exact when the weights are)."""
        probs: dict[Hashable, Any] = {}
        for label, w, _ in self.components:
            probs[label] = probs.get(label, 0) + w
        return State.from_dict(probs)

    def prob(self, event: Hashable | Callable[[Hashable], bool]) -> Any:
        """Probability of a label, or of a set of labels given by a predicate on labels."""
        test = event if callable(event) else (lambda lab: lab == event)
        return sum((w for lab, w, _ in self.components if test(lab)), 0)

    def given(self, event: Hashable | Callable[[Hashable], bool]) -> Mixture | Gaussian:
        """The mixture conditioned on a discrete event; a Gaussian when one component is left."""
        test = event if callable(event) else (lambda lab: lab == event)
        kept = [c for c in self.components if test(c[0])]
        mass = sum((w for _, w, _ in kept), 0)
        if not kept or mass == 0:
            raise ConditioningError(f"the label event {event!r}", "it has probability zero")
        if len(kept) == 1:
            return kept[0][2]
        return Mixture([(lab, w / mass, g) for lab, w, g in kept])

    def marginal(self, *keys: FactorKey) -> Mixture:
        """The mixture of the components' marginals on the given factors."""
        return Mixture([(lab, w, g.marginal(*keys)) for lab, w, g in self.components])

    @property
    def mean(self) -> torch.Tensor:
        """sum_i w_i mean_i."""
        g = self.components[0][2]
        w = self._float_weights(g)
        return (w[:, None] * torch.stack([c.mean for _, _, c in self.components])).sum(0)

    @property
    def cov(self) -> torch.Tensor:
        """Law of total covariance: sum_i w_i (cov_i + (m_i - m)(m_i - m)')."""
        g = self.components[0][2]
        w, m = self._float_weights(g), self.mean
        out = torch.zeros_like(g.cov)
        for wi, (_, _, c) in zip(w, self.components, strict=True):
            d = c.mean - m
            out += wi * (c.cov + torch.outer(d, d))
        return out

    def prob_below(self, weights: Any, threshold: float) -> torch.Tensor:
        """P(weights . x <= threshold) = sum_i w_i P_i(weights . x <= threshold)."""
        w = self._float_weights(self.components[0][2])
        return sum(wi * g.prob_below(weights, threshold)
                   for wi, (_, _, g) in zip(w, self.components, strict=True))

    def sample(self, n: int, *, generator: torch.Generator | None = None
               ) -> tuple[list[Hashable], torch.Tensor]:
        """n draws: their labels and their values, shape (n, dim) (seed with
        `generator=condprob.rng(seed)`)."""
        gen = generator
        w = self._float_weights(self.components[0][2])
        idx = torch.multinomial(w, n, replacement=True, generator=gen)
        out = torch.empty(n, self.space.dim, dtype=w.dtype)
        for i, (_, _, g) in enumerate(self.components):
            rows = (idx == i).nonzero()[:, 0]
            if len(rows):
                out[rows] = g.sample((len(rows),), generator=gen)
        return [self.components[i][0] for i in idx.tolist()], out

    def log_prob(self, value: Any) -> torch.Tensor:
        """log sum_i w_i N(value; mean_i, cov_i) (component densities as in `Gaussian.log_prob`)."""
        lw = self._float_weights(self.components[0][2]).log()
        lp = torch.stack([g.log_prob(value) + lw[i]
                          for i, (_, _, g) in enumerate(self.components)])
        return torch.logsumexp(lp, 0)
