"""The laws of finite kernels (Cho & Jacobs), as functions you can call on your own kernels.

Each `law_*` function raises `AssertionError` with a message if the law fails. Comparisons are exact
in the exact backend and within `atol` (default 1e-10) in float64. Laws that hold only almost
everywhere compare on the support of the relevant state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from condprob import backend as B
from condprob.conditioning import disintegrate, invert, jeffrey
from condprob.finite import Kernel, Predicate, State, copy, discard, graph, identity, swap

ATOL = 1e-10


def _support(state: State) -> np.ndarray:
    return ~np.asarray(B.zero_mask(state.probs))


def assert_same(a: Kernel, b: Kernel, support: Any = None, atol: float = ATOL,
                what: str = "kernels") -> None:
    """Assert two kernels are equal (on the rows where `support` is True, if given)."""
    if a.dom != b.dom or a.cod != b.cod:
        raise AssertionError(f"{what}: spaces differ: {a.dom} -> {a.cod} vs {b.dom} -> {b.cod}")
    x, y = a.array, b.array
    if support is not None:
        rows = np.flatnonzero(np.asarray(support).reshape(-1))
        x, y = x[..., rows, :], y[..., rows, :]
    if a.exact and b.exact:
        ok = B.equal(x, y)
        diff = "not exactly equal"
    else:
        fx, fy = B.to_float(x), B.to_float(y)
        err = (fx - fy).abs().max().item() if fx.numel() else 0.0
        ok, diff = err <= atol, f"max difference {err:.3g} > {atol:g}"
    if not ok:
        raise AssertionError(f"{what}: {diff}\n{x}\nvs\n{y}")


# Category and monoidal structure ----------------------------------------------------------
def law_associativity(f: Kernel, g: Kernel, h: Kernel) -> None:
    """(f >> g) >> h == f >> (g >> h)."""
    assert_same((f >> g) >> h, f >> (g >> h), what="associativity")


def law_identity(f: Kernel) -> None:
    """id >> f == f == f >> id."""
    assert_same(identity(f.dom) >> f, f, what="left identity")
    assert_same(f >> identity(f.cod), f, what="right identity")


def law_interchange(f1: Kernel, g1: Kernel, f2: Kernel, g2: Kernel) -> None:
    """(f1 >> g1) @ (f2 >> g2) == (f1 @ f2) >> (g1 @ g2) (functoriality of @, interchange)."""
    assert_same((f1 >> g1) @ (f2 >> g2), (f1 @ f2) >> (g1 @ g2), what="interchange")


def law_tensor_identity(f: Kernel, g: Kernel) -> None:
    """id @ id == id on the product, and f @ g == (f @ id) >> (id @ g)."""
    assert_same(identity(f.dom) @ identity(g.dom), identity(f.dom @ g.dom), what="id @ id")
    assert_same(f @ g, (f @ identity(g.dom)) >> (identity(f.cod) @ g), what="f @ g split")


def law_copy_comonoid(space: Any) -> None:
    """Copy is coassociative, commutative, and discard is its counit."""
    c, i, d = copy(space), identity(space), discard(space)
    assert_same(c >> (c @ i), c >> (i @ c), what="coassociativity of copy")
    assert_same(c >> swap(space, space), c, what="commutativity of copy")
    assert_same(c >> (d @ i), i, what="left counit")
    assert_same(c >> (i @ d), i, what="right counit")


def law_discard_naturality(f: Kernel) -> None:
    """f >> discard == discard (every kernel is causal: the Markov law)."""
    assert_same(f >> discard(f.cod), discard(f.dom), what="discard naturality")


def law_swap_involution(x: Any, y: Any) -> None:
    """swap >> swap == id."""
    assert_same(swap(x, y) >> swap(y, x), identity(x @ y), what="swap involution")


# Disintegration ---------------------------------------------------------------------------
def law_disintegration(joint: State, along: Any = 0) -> None:
    """The joint is recovered: `marginal >> <id, c> == joint` (with the factors put back in order)."""
    marginal, kernel, _ = disintegrate(joint, along)
    rebuilt = marginal >> graph(kernel)
    keys = (along,) if isinstance(along, int | str) else tuple(along)
    xs = joint.cod.factor_indices(keys)
    order = xs + tuple(i for i in range(joint.cod.ndim) if i not in xs)
    back = tuple(order.index(i) for i in range(joint.cod.ndim))
    assert_same(rebuilt.marginal(*back), joint, what="disintegration")


def law_disintegration_unique(state: State, c: Kernel) -> None:
    """Disintegrating `<id, c>` after state gives c back, state-almost everywhere."""
    _, kernel, _ = disintegrate(state >> graph(c), 0)
    assert_same(kernel, c, support=_support(state), what="disintegration uniqueness a.e.")


# Bayesian inversion -----------------------------------------------------------------------
def law_inversion(prior: State, c: Kernel) -> None:
    """prior(x) c(x)(y) == (prior >> c)(y) c†(y)(x) for all x, y."""
    d = invert(c, prior)
    lhs = prior >> graph(c)
    rhs = (prior >> c) >> graph(d)
    assert_same(lhs, rhs >> swap(c.cod, c.dom), what="Bayesian inversion")


def law_inversion_is_disintegration(prior: State, c: Kernel) -> None:
    """c† is the disintegration of the swapped joint (B2)."""
    joint = prior >> graph(c) >> swap(c.dom, c.cod)
    assert_same(invert(c, prior), disintegrate(joint, 0).kernel, what="dagger = disintegration")


def law_inversion_involution(prior: State, c: Kernel) -> None:
    """(c† w.r.t. prior)† w.r.t. (prior >> c) == c, prior-a.e."""
    twice = invert(invert(c, prior), prior >> c)
    assert_same(twice, c, support=_support(prior), what="inverting twice")


def law_inversion_composite(prior: State, c: Kernel, d: Kernel) -> None:
    """(c >> d)† w.r.t. prior == d† w.r.t. (prior >> c) >> c† w.r.t. prior, (prior >> c >> d)-a.e."""
    lhs = invert(c >> d, prior)
    rhs = invert(d, prior >> c) >> invert(c, prior)
    assert_same(lhs, rhs, support=_support(prior >> c >> d), what="inversion of a composite")


def law_inversion_tensor(p: State, c: Kernel, q: State, d: Kernel) -> None:
    """(c @ d)† w.r.t. (p @ q) == c† @ d†, and id† == id."""
    lhs = invert(c @ d, p @ q)
    rhs = invert(c, p) @ invert(d, q)
    assert_same(lhs, rhs, support=_support((p >> c) @ (q >> d)), what="inversion of a tensor")
    assert_same(invert(identity(c.dom), p), identity(c.dom), support=_support(p),
                what="inversion of the identity")


def law_inversion_recovers_prior(prior: State, c: Kernel) -> None:
    """(prior >> c) >> c† == prior."""
    assert_same((prior >> c) >> invert(c, prior), prior, what="c† after prior >> c")


# Updates ----------------------------------------------------------------------------------
def law_pearl(state: State, p: Predicate, q: Predicate) -> None:
    """(s | p) | q == s | (p & q) == (s | q) | p, and s | truth == s (needs s |= p & q > 0)."""
    both = state | (p & q)
    assert_same((state | p) | q, both, what="Pearl composition")
    assert_same((state | q) | p, both, what="Pearl commutation")
    assert_same(state | Predicate.truth(state.cod), state, what="update with truth")


def law_jeffrey_point(prior: State, c: Kernel, y: Any) -> None:
    """Jeffrey on point evidence y equals Pearl on the likelihood c << 1_y (needs (prior >> c)(y) > 0)."""
    point = State.point(y, c.cod, exact=prior.exact)
    pearl = prior | (c << Predicate.event([y], c.cod))
    assert_same(jeffrey(prior, c, point), pearl, what="Jeffrey = Pearl on point evidence")


def all_finite_laws() -> list:
    """The law functions of this module."""
    return [law_associativity, law_identity, law_interchange, law_tensor_identity,
            law_copy_comonoid, law_discard_naturality, law_swap_involution, law_disintegration,
            law_disintegration_unique, law_inversion, law_inversion_is_disintegration,
            law_inversion_involution, law_inversion_composite, law_inversion_tensor,
            law_inversion_recovers_prior, law_pearl, law_jeffrey_point]


__all__ = ["assert_same", "all_finite_laws"] + [f.__name__ for f in all_finite_laws()]
