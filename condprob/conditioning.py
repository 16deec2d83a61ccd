"""The conditioning operations, one entry point each, dispatching on the kind of kernel.

- `disintegrate(joint, along)`: joint on X @ Y -> (marginal on X, conditional kernel X -> Y).
- `invert(kernel, prior)`: the Bayesian inverse (dagger) c† : Y -> X of c : X -> Y w.r.t. prior.
- `update(state, evidence)`: Pearl's rule, sigma | p (x) = sigma(x) p(x) / sigma(p).
- `jeffrey(prior, kernel, evidence)`: Jeffrey's rule, evidence >> c† (soft evidence on Y).
- `condition(joint, event)`: exact conditioning of a joint on an event.

Zero-probability evidence raises `condprob.ConditioningError` naming the event.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from condprob.protocol import Morphism, check_composable


class Disintegration(NamedTuple):
    """Result of `disintegrate`: `joint = <id, kernel>` after marginal, on the marginal's support.

    `null` marks the outcomes of the marginal with probability zero, where the kernel is the
    documented fallback of the kind (for finite kernels: the marginal of the other factors).
    """

    marginal: Morphism
    kernel: Morphism
    null: Any


def disintegrate(joint: Morphism, along: Any = 0) -> Disintegration:
    """Split a joint state into its marginal on the factors `along` and the conditional kernel.

    joint(x, y) = marginal(x) * kernel(x)(y); `along` names factors by name or index.
    """
    return joint._disintegrate(along)


def invert(kernel: Morphism, prior: Morphism) -> Morphism:
    """Bayesian inversion: c†(y)(x) = prior(x) c(x)(y) / (prior >> c)(y)."""
    check_composable(prior, kernel)
    return kernel._invert(prior)


def update(state: Morphism, evidence: Any) -> Morphism:
    """Pearl update: (state | p)(x) = state(x) p(x) / sum_x state(x) p(x)."""
    return state._update(evidence)


def jeffrey(prior: Morphism, kernel: Morphism, evidence: Morphism) -> Morphism:
    """Jeffrey update with soft evidence (a state on the kernel's codomain): evidence >> c†."""
    check_composable(evidence, invert(kernel, prior))
    return evidence >> invert(kernel, prior)


def condition(joint: Morphism, event: Any) -> Morphism:
    """Exact conditioning of a joint state on an event (a sharp predicate or equation)."""
    return joint._condition(event)
