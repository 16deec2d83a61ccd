"""Token filters: decoding methods as transformations of a next-token law.

Each filter maps logits (..., V) to logits where the removed tokens are -inf and the kept ones are
unchanged, so softmax of the result is the filtered, renormalised law. All filters keep at least the
most probable token, and all are tie-inclusive: tokens with equal probability are kept or removed
together, which makes the result independent of the order of the vocabulary.

- `Temperature(t)`: softmax(logits / t); a t so small that logits / t overflows gives the greedy
  limit (the maximal tokens, ties kept), never NaN.
- `TopK(k)`: keep p_i >= the k-th largest probability.
- `TopP(p)`: keep i when the mass of the strictly more probable tokens is below p (nucleus);
  TopP(1) keeps every token of positive probability. Masses are summed in float64.
- `MinP(p)`: keep p_i >= p * max_j p_j.
- `Typical(mass)`: sort by |-log p_i - H(p)|; keep i when the mass of the strictly more typical
  tokens is below `mass` (Meister et al. 2022).
- `Eta(eps)`: drop p_i < min(eps, sqrt(eps) exp(-H(p))) (Hewitt et al. 2022).
- `Epsilon(eps)`: drop p_i < eps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from condprob.errors import ValidationError
from condprob.semiring import NEG_INF


def check_logits(logits: torch.Tensor, name: str = "logits",
                 top: torch.Tensor | Literal[False] | None = None) -> torch.Tensor:
    """Validate a (..., V) floating tensor of logits: no NaN, no +inf, no row all -inf.

    `top`: the row maxima when the caller has them already (`torch.topk` puts NaN first, as
    `amax` propagates it), which saves the check's one pass over the vocabulary; False checks
    the type and shape only (for a caller that checks the values later)."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise ValidationError(f"{name} must be a floating tensor, got dtype {logits.dtype}")
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValidationError(f"{name} must have a non-empty last (vocabulary) dimension")
    if top is False:
        return logits
    if top is None:
        top = logits.amax(-1)  # one pass: NaN propagates, +inf and all -inf rows show in the max
    if torch.isnan(top).any():
        raise ValidationError(f"{name} contain NaN")
    if (top == float("inf")).any():
        raise ValidationError(f"{name} contain +inf")
    if (top == NEG_INF).any():
        raise ValidationError(f"{name} have a row where every token is -inf (no distribution)")
    return logits


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats of softmax(logits) over the last dimension; 0 log 0 = 0."""
    logp = torch.log_softmax(logits, -1)
    return -torch.where(logp == NEG_INF, 0.0, logp.exp() * logp).sum(-1)


def temper(logits: torch.Tensor, t: float) -> torch.Tensor:
    """logits / t, the logits of softmax(logits / t).

    Where that overflows (t tiny, such as 1e-40, gives +inf, 0/0, or -inf for a whole row of
    negative logits), the logits are first shifted by their row maximum, which leaves the law
    unchanged: the maximal tokens get 0 and the others a very negative number or -inf, the greedy
    limit t -> 0 with ties kept, never NaN.
    """
    scaled = logits / t
    if scaled.shape[-1] == 0 or bool(torch.isfinite(scaled.amax(-1)).all()):
        return scaled  # the amax is not finite for +inf, NaN or a row of -inf
    wide = logits.double()
    top = wide.amax(-1, keepdim=True)
    return ((wide - top.masked_fill(torch.isneginf(top), 0.0)) / t).to(logits.dtype)


def mass_prefix_mask(probs: torch.Tensor, key: torch.Tensor, mass: float) -> torch.Tensor:
    """Keep i when sum_{j: key_j < key_i} p_j < mass (ties in `key` kept together).

    Top-p is the case key = -p, locally typical sampling the case key = |-log p - H|. The sums
    are taken in float64, so the kept set does not drift with the vocabulary size in float32.
    """
    skey, order = torch.sort(key, dim=-1)
    sp = probs.gather(-1, order).double()
    exclusive = torch.cumsum(sp, -1) - sp
    count = (exclusive < mass).sum(-1, keepdim=True).clamp(min=1)
    threshold = skey.gather(-1, count - 1)
    return key <= threshold


def _unit_interval(name: str, value: float, closed_right: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number, got {value!r}")
    ok = 0 < value <= 1 if closed_right else 0 < value < 1
    if not ok:
        interval = "(0, 1]" if closed_right else "(0, 1)"
        raise ValidationError(f"{name} must lie in {interval}, got {value!r}")
    return float(value)


def _at_least(probs: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """probs >= threshold, always keeping the most probable tokens."""
    return (probs >= threshold) | (probs == probs.amax(-1, keepdim=True))


class Filter:
    """A decoding method: logits (..., V) -> logits with removed tokens set to -inf."""

    def keep(self, logits: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the kept tokens (never empty)."""
        raise NotImplementedError

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        check_logits(logits)
        return logits.masked_fill(~self.keep(logits), NEG_INF)


@dataclass(frozen=True)
class Temperature(Filter):
    """softmax(logits / t): t < 1 sharpens, t > 1 flattens."""

    t: float

    def __post_init__(self) -> None:
        if isinstance(self.t, bool) or not isinstance(self.t, int | float) or not (
            0 < self.t < math.inf
        ):
            raise ValidationError(f"temperature must be a positive finite number, got {self.t!r}")

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return temper(check_logits(logits), self.t)


@dataclass(frozen=True)
class TopK(Filter):
    """Keep the tokens whose probability is at least the k-th largest."""

    k: int

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValidationError(f"top-k needs a positive integer k, got {self.k!r}")

    def keep(self, logits: torch.Tensor) -> torch.Tensor:
        k = min(self.k, logits.shape[-1])
        return logits >= torch.topk(logits, k, dim=-1).values[..., -1:]


@dataclass(frozen=True)
class TopP(Filter):
    """Nucleus: keep i when the mass of the strictly more probable tokens is below p."""

    p: float

    def __post_init__(self) -> None:
        _unit_interval("top-p", self.p, closed_right=True)

    def keep(self, logits: torch.Tensor) -> torch.Tensor:
        if self.p >= 1:  # every token of positive probability, whatever the rounding of the sums
            return logits > NEG_INF
        probs = torch.softmax(logits.double(), -1)  # float64: float32 rows keep the same set
        return mass_prefix_mask(probs, -probs, self.p)


@dataclass(frozen=True)
class MinP(Filter):
    """Keep p_i >= p * max_j p_j."""

    p: float

    def __post_init__(self) -> None:
        _unit_interval("min-p", self.p, closed_right=True)

    def keep(self, logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits, -1)
        return probs >= self.p * probs.amax(-1, keepdim=True)


@dataclass(frozen=True)
class Typical(Filter):
    """Locally typical: keep the most typical tokens (|-log p - H| smallest) up to `mass`."""

    mass: float

    def __post_init__(self) -> None:
        _unit_interval("typical mass", self.mass, closed_right=True)

    def keep(self, logits: torch.Tensor) -> torch.Tensor:
        if self.mass >= 1:
            return logits > NEG_INF
        wide = logits.double()
        logp = torch.log_softmax(wide, -1)
        dev = (-logp - entropy(wide).unsqueeze(-1)).abs()
        return mass_prefix_mask(logp.exp(), dev, self.mass) & (logp > NEG_INF)


@dataclass(frozen=True)
class Eta(Filter):
    """Drop p_i < eta with eta = min(eps, sqrt(eps) exp(-H(p)))."""

    eps: float

    def __post_init__(self) -> None:
        _unit_interval("eta epsilon", self.eps, closed_right=False)

    def keep(self, logits: torch.Tensor) -> torch.Tensor:
        eta = torch.clamp(math.sqrt(self.eps) * torch.exp(-entropy(logits)), max=self.eps)
        return _at_least(torch.softmax(logits, -1), eta.unsqueeze(-1))


@dataclass(frozen=True)
class Epsilon(Filter):
    """Drop p_i < eps."""

    eps: float

    def __post_init__(self) -> None:
        _unit_interval("epsilon", self.eps, closed_right=False)

    def keep(self, logits: torch.Tensor) -> torch.Tensor:
        return _at_least(torch.softmax(logits, -1), self.eps)


def filtered_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None, min_p: float | None = None) -> torch.Tensor:
    """The law `sample_filtered` draws from: softmax(F(logits / t)), F keeping the intersection
    of the top-k, top-p and min-p sets of the tempered logits (in the dtype of `logits`)."""
    scaled = temper(logits, temperature)
    keep = torch.ones_like(scaled, dtype=torch.bool)
    for f in (TopK(top_k) if top_k is not None else None,
              TopP(top_p) if top_p is not None else None,
              MinP(min_p) if min_p is not None else None):
        if f is not None:
            keep &= f.keep(scaled)
    return torch.softmax(scaled.masked_fill(~keep, NEG_INF), -1)
