"""Semirings for the chain dynamic program (`condprob.chain`).

A semiring value is a tensor with one extra leading dimension of size `size` (1 for log and max,
k for k-best, 2 for entropy). Every semiring works on log-potentials: `lift` turns a
log-potential into a value, `weight` multiplies a value by an edge's log-potential, and `sum`
adds values over one dimension, returning backpointers where the semiring tracks them.
All reductions are safe for all -inf inputs (the semiring zero): they return the zero, never NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor

from condprob.errors import ValidationError

NEG_INF = float("-inf")


def logsumexp(x: Tensor, dim: int) -> Tensor:
    """log sum exp over `dim`. An all -inf slice gives -inf with gradient 0 (torch's own gives
    a NaN gradient there, which would poison every chain with an unreachable state)."""
    m = x.detach().amax(dim, keepdim=True)
    m = m.masked_fill(torch.isneginf(m), 0.0)
    total = torch.exp(x - m).sum(dim)
    empty = total == 0
    out = torch.log(total.masked_fill(empty, 1.0)) + m.squeeze(dim)
    return out.masked_fill(empty, NEG_INF)


class Semiring:
    """Base class: (R, sum, times) on log-potentials with a leading value dimension."""

    size: int = 1
    tracks_argmax: bool = False

    def lift(self, logpot: Tensor) -> Tensor:
        """The value of a single edge with log-potential `logpot`: shape (size, *logpot.shape)."""
        return logpot.unsqueeze(0)

    def weight(self, value: Tensor, logpot: Tensor) -> Tensor:
        """value (x) edge: multiply a value by a plain log-potential (broadcasting)."""
        return value + logpot

    def sum(self, value: Tensor, dim: int) -> tuple[Tensor, Tensor | None]:
        """(+) over `dim` (a non-leading dimension); returns (value, backpointers or None)."""
        raise NotImplementedError


class LogSemiring(Semiring):
    """(logsumexp, +): log partition functions."""

    def sum(self, value: Tensor, dim: int) -> tuple[Tensor, None]:
        return logsumexp(value, dim), None


class KMaxSemiring(Semiring):
    """The k best scores in decreasing order, with backpointers: (top-k merge, +).

    Backpointers index the flattened (rank, position) pairs: `rank * n + position`, where n is
    the size of the reduced dimension.
    """

    tracks_argmax = True

    def __init__(self, k: int):
        if not isinstance(k, int) or k < 1:
            raise ValidationError(f"k must be a positive integer, got {k!r}")
        self.size = k

    def lift(self, logpot: Tensor) -> Tensor:
        rest = logpot.new_full((self.size - 1, *logpot.shape), NEG_INF)
        return torch.cat([logpot.unsqueeze(0), rest], 0)

    def sum(self, value: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        k = self.size
        dim = dim % value.dim()
        n = value.shape[dim]
        moved = value.movedim(dim, -1).movedim(0, -2)  # (..., k, n)
        flat = moved.reshape(*moved.shape[:-2], k * n)
        top, idx = flat.topk(k, dim=-1)
        return top.movedim(-1, 0), idx.movedim(-1, 0)


class MaxSemiring(Semiring):
    """(max, +): Viterbi scores. It keeps no backpointers (max without indices is several times
    faster); `condprob.chain.viterbi` recomputes the argmax along the chosen path."""

    def sum(self, value: Tensor, dim: int) -> tuple[Tensor, None]:
        return value.amax(dim), None


class EntropySemiring(Semiring):
    """Values (log Z, H): the log mass of a set of weighted paths and the entropy of its normalised
    distribution. Product: (L1 + L2, H1 + H2). Sum: L = logsumexp L_i, H = sum_i w_i (H_i - log w_i)
    with w_i = exp(L_i - L) (an empty set contributes nothing).
    """

    size = 2

    def lift(self, logpot: Tensor) -> Tensor:
        return torch.stack([logpot, torch.zeros_like(logpot)])

    def weight(self, value: Tensor, logpot: Tensor) -> Tensor:
        mass, ent = value.unbind(0)
        mass = mass + logpot
        return torch.stack([mass, ent.expand_as(mass)])

    def sum(self, value: Tensor, dim: int) -> tuple[Tensor, None]:
        mass, ent = value.unbind(0)
        dim = dim - 1 if dim >= 0 else dim
        total = logsumexp(mass, dim)
        w = torch.exp(mass - total.unsqueeze(dim))
        w = torch.where(torch.isfinite(mass), w, torch.zeros_like(w))
        terms = torch.where(w > 0, w * ent - torch.special.xlogy(w, w), torch.zeros_like(w))
        return torch.stack([total, terms.sum(dim)]), None
