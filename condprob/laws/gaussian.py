"""Laws of Gaussian kernels and of the exact-conditioning language (Stein & Staton), with
Hypothesis strategies for random Gaussian states, kernels and affine conditioning problems.

Each `law_*` function raises `AssertionError` if the law fails; comparisons are in float64 within
`atol` (default 1e-8, scaled by the problem's magnitude). The strategies draw well-conditioned
problems so that the laws can be checked at tight tolerances.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st

from condprob.conditioning import condition, disintegrate, invert
from condprob.dsl import Model, normal
from condprob.dsl import condition as dsl_condition
from condprob.errors import ConditioningError
from condprob.gaussian import Gaussian, LinearGaussian, copy, discard, identity
from condprob.spaces import Euclidean

ATOL = 1e-8

__all__ = [
    "affine_problems",
    "assert_same_gaussian",
    "gaussian_kernels",
    "gaussian_states",
    "law_condition_forms",
    "law_conditions_commute",
    "law_disintegration_gaussian",
    "law_discard_gaussian",
    "law_draws_commute",
    "law_drop_unused_draw",
    "law_failure_absorbs",
    "law_fresh_variable",
    "law_inversion_gaussian",
    "law_repeat_condition",
    "law_schur_complement",
    "law_substitution",
]


# Strategies ---------------------------------------------------------------------------------
def _matrix(rows: int, cols: int, batch: tuple[int, ...] = ()) -> st.SearchStrategy[torch.Tensor]:
    size = math.prod(batch) * rows * cols
    return st.lists(st.integers(-4, 4), min_size=size, max_size=size).map(
        lambda v: torch.tensor(v, dtype=torch.float64).reshape(*batch, rows, cols) / 2)


@st.composite
def gaussian_states(draw: Any, dim: int, rank: int | None = None,
                    batch: tuple[int, ...] = ()) -> Gaussian:
    """Gaussian states on R^dim with small-integer means and factors (rank <= `rank`), batched
    over `batch` (each entry drawn independently)."""
    k = draw(st.integers(1, dim)) if rank is None else rank
    mean = draw(_matrix(dim, 1, batch))[..., 0]
    lf = draw(_matrix(dim, k, batch))
    return Gaussian(mean, lf @ lf.mT, Euclidean(dim))


@st.composite
def gaussian_kernels(draw: Any, dom: int, cod: int, batch: tuple[int, ...] = ()) -> LinearGaussian:
    """Linear-Gaussian kernels R^dom -> R^cod, with possibly singular (or zero) noise, batched
    over `batch`."""
    k = draw(st.integers(0, cod))
    q = draw(_matrix(cod, k, batch)) if k else torch.zeros(*batch, cod, 0, dtype=torch.float64)
    return LinearGaussian(draw(_matrix(cod, dom, batch)), draw(_matrix(cod, 1, batch))[..., 0],
                          q @ q.mT, Euclidean(dom), Euclidean(cod))


@st.composite
def affine_problems(draw: Any, max_dim: int = 4) -> dict[str, Any]:
    """A random affine program: `n` latents, terms s = S z + a and t = T z + b (r-vectors) and an
    invertible r x r matrix `inv` (triangular with unit diagonal)."""
    n = draw(st.integers(2, max_dim))
    r = draw(st.integers(1, n - 1))
    inv = torch.eye(r, dtype=torch.float64) + torch.tril(draw(_matrix(r, r)), -1)
    return {"n": n, "r": r, "S": draw(_matrix(r, n)), "a": draw(_matrix(r, 1))[:, 0],
            "T": draw(_matrix(r, n)), "b": draw(_matrix(r, 1))[:, 0], "inv": inv}


# Comparisons --------------------------------------------------------------------------------
def assert_same_gaussian(p: LinearGaussian, q: LinearGaussian, atol: float = ATOL,
                         what: str = "kernels") -> None:
    """Same spaces, and matrix, offset and covariance within atol (relative to their scale) in
    every batch entry (batch shapes broadcast: an unbatched kernel is compared with each entry)."""
    if p.dom != q.dom or p.cod != q.cod:
        raise AssertionError(f"{what}: spaces differ: {p.dom} -> {p.cod} vs {q.dom} -> {q.cod}")
    for name, u, v in (("matrix", p.matrix, q.matrix), ("offset", p.offset, q.offset),
                       ("covariance", p.cov, q.cov)):
        if u.numel() == 0:
            continue
        scale = max(1.0, float(u.abs().max()), float(v.abs().max()))
        err = float((u - v).abs().max())
        if err > atol * scale:
            raise AssertionError(f"{what}: {name} differs by {err:.3g}\n{u}\nvs\n{v}")


def _outcome(build: Callable[[], Gaussian]) -> Gaussian | str:
    try:
        return build()
    except ConditioningError:
        return "failure"


def _same_outcome(a: Gaussian | str, b: Gaussian | str, what: str) -> None:
    if isinstance(a, str) or isinstance(b, str):
        if a != b:
            raise AssertionError(f"{what}: one side failed and the other did not")
        return
    assert_same_gaussian(a, b, what=what)


def _program(spec: dict[str, Any], conds: Callable[[Any, Any, Any], list[Any]],
             extra: int = 0) -> Callable[[], Gaussian]:
    """Draw z ~ N(0, I_n) (and `extra` unused normals), impose conds(z, s, t), return z."""
    def build() -> Gaussian:
        with Model() as m:
            z = normal(shape=(spec["n"],), name="z")
            for _ in range(extra):
                normal(name="unused")
            s = spec["S"] @ z + spec["a"]
            t = spec["T"] @ z + spec["b"]
            for c in conds(z, s, t):
                dsl_condition(c)
            return m.posterior(z)
    return build


# Kernel laws --------------------------------------------------------------------------------
def law_disintegration_gaussian(joint: Gaussian, along: Any = 0) -> None:
    """`joint == marginal >> <id, kernel>` (with `along` the leading factors)."""
    d = disintegrate(joint, along)
    rebuilt = d.marginal >> copy(d.marginal.cod) >> (identity(d.marginal.cod) @ d.kernel)
    assert_same_gaussian(rebuilt, joint, what="disintegration")


def law_inversion_gaussian(prior: Gaussian, c: LinearGaussian) -> None:
    """`<id, c> prior == swap of <id, c†> (prior >> c)`, and `(prior >> c) >> c† == prior`."""
    dagger = invert(c, prior)
    fwd = prior >> copy(prior.cod) >> (identity(prior.cod) @ c)
    back = (prior >> c) >> copy(c.cod) >> (dagger @ identity(c.cod))
    assert_same_gaussian(back, fwd, what="Bayesian inversion (joint)")
    assert_same_gaussian((prior >> c) >> dagger, prior, what="inversion round trip")


def law_discard_gaussian(f: LinearGaussian) -> None:
    """f >> discard == discard (causality) and copy then discard one side is the identity."""
    assert_same_gaussian(f >> discard(f.cod), discard(f.dom), what="discard naturality")
    assert_same_gaussian(copy(f.cod) >> (identity(f.cod) @ discard(f.cod)), identity(f.cod),
                         what="counit")


def law_schur_complement(state: Gaussian, matrix: torch.Tensor, rhs: torch.Tensor) -> None:
    """For full-rank S = A cov A': mean + cov A' S^-1 (b - A mean), cov - cov A' S^-1 A cov."""
    post = condition(state, (matrix, rhs))
    ca = state.cov @ matrix.T
    s = matrix @ ca
    mean = state.mean + ca @ torch.linalg.solve(s, rhs - matrix @ state.mean)
    cov = state.cov - ca @ torch.linalg.solve(s, ca.T)
    assert_same_gaussian(post, Gaussian(mean, (cov + cov.T) / 2, post.cod, validate=False),
                         what="Schur complement")


# Language laws (Stein & Staton) --------------------------------------------------------------
def law_conditions_commute(spec: dict[str, Any]) -> None:
    """S1: (s == t; z[0] == 0) and (z[0] == 0; s == t) give the same posterior (or both fail)."""
    one = _outcome(_program(spec, lambda z, s, t: [s == t, z[0] == 0]))
    two = _outcome(_program(spec, lambda z, s, t: [z[0] == 0, s == t]))
    _same_outcome(one, two, "exchange of conditions")


def law_draws_commute(spec: dict[str, Any]) -> None:
    """S1: the order of independent draws does not matter (z then w, or w then z)."""
    def build(z_first: bool) -> Gaussian | str:
        def run() -> Gaussian:
            with Model() as m:
                if z_first:
                    z, w = normal(shape=(spec["n"],)), normal(shape=(spec["r"],))
                else:
                    w, z = normal(shape=(spec["r"],)), normal(shape=(spec["n"],))
                dsl_condition(spec["S"] @ z + w == spec["T"] @ z + spec["b"])
                return m.posterior(z, w)
        return _outcome(run)
    _same_outcome(build(True), build(False), "exchange of draws")


def law_condition_forms(spec: dict[str, Any]) -> None:
    """S2: s == t, t == s, s - t == 0 and A s == A t (A invertible) are the same condition."""
    inv = spec["inv"]
    forms = [lambda z, s, t: [s == t], lambda z, s, t: [t == s],
             lambda z, s, t: [s - t == 0], lambda z, s, t: [inv @ s == inv @ t]]
    first = _outcome(_program(spec, forms[0]))
    for form in forms[1:]:
        _same_outcome(first, _outcome(_program(spec, form)), "equivalent conditions")


def law_substitution(spec: dict[str, Any]) -> None:
    """S3: after s == t, s - t is exactly zero (so t can replace s)."""
    def build() -> Gaussian:
        with Model() as m:
            z = normal(shape=(spec["n"],))
            s, t = spec["S"] @ z + spec["a"], spec["T"] @ z + spec["b"]
            dsl_condition(s == t)
            return m.posterior(s - t)
    out = _outcome(build)
    if isinstance(out, Gaussian):
        zero = Gaussian(torch.zeros(spec["r"], dtype=torch.float64),
                        torch.zeros(spec["r"], spec["r"], dtype=torch.float64), out.cod)
        assert_same_gaussian(out, zero, what="substitution")


def law_fresh_variable(spec: dict[str, Any]) -> None:
    """S4: a fresh standard normal x conditioned on x == b (b closed) is exactly b, and the
    other variables are unchanged. (For a t that mentions other variables, x == t is a real
    observation of t and updates them: x, y ~ N(0, 1), x == y gives y variance 1/2.)"""
    def conditioned() -> Gaussian:
        with Model() as m:
            z = normal(shape=(spec["n"],))
            x = normal(shape=(spec["r"],))
            dsl_condition(x == spec["b"])
            return m.posterior(x, spec["T"] @ z)

    def substituted() -> Gaussian:
        with Model() as m:
            z = normal(shape=(spec["n"],))
            return m.posterior(spec["b"] + 0 * z[: spec["r"]], spec["T"] @ z)
    assert_same_gaussian(conditioned(), substituted(), what="fresh variable")


def law_drop_unused_draw(spec: dict[str, Any]) -> None:
    """S5: an unused normal() can be dropped without changing the posterior."""
    cond = lambda z, s, t: [s == t]  # noqa: E731
    _same_outcome(_outcome(_program(spec, cond, extra=1)), _outcome(_program(spec, cond)),
                  "dropping an unused draw")


def law_repeat_condition(spec: dict[str, Any]) -> None:
    """S6: repeating a condition, or adding the redundant 2 s == 2 t, changes nothing."""
    once = _outcome(_program(spec, lambda z, s, t: [s == t]))
    twice = _outcome(_program(spec, lambda z, s, t: [s == t, s == t, 2 * s == 2 * t]))
    _same_outcome(once, twice, "repeated condition")


def law_failure_absorbs(spec: dict[str, Any]) -> None:
    """S7: an inconsistent condition fails, whatever comes before or after it."""
    for conds in (lambda z, s, t: [s - s == 1], lambda z, s, t: [s == t, s - s == 1],
                  lambda z, s, t: [s - s == 1, s == t]):
        if _outcome(_program(spec, conds)) != "failure":
            raise AssertionError("an inconsistent condition did not fail")
