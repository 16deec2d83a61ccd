"""The laws of the kernel protocol, for every kind of kernel (yours included), and strategies for
the inputs of the kinds that take sequences.

Each `law_*` function raises `AssertionError` with a message when the law fails. They call the
kernels only through the protocol (`k(x)`, `k.sample(x, ...)`, `k.log_prob(x, y)`, `>>`,
`condprob.tabulate`, `condprob.invert`; a state leaves the input out), so they run unchanged on
finite kernels, Gaussians, bffg kernels, token and sequence kernels, CRF kernels and next-event
kernels:

- `law_call_matches_log_prob`: k(x).log_prob(y) == k.log_prob(x, y);
- `law_sampling_matches_log_prob` (discrete outputs, a G-test) and
  `law_sampling_matches_density` (real outputs, a Kolmogorov-Smirnov test against the CDF
  integrated from the density): sampling agrees with `log_prob`; both return the p-value, so a
  test can also check that a deliberately wrong kernel fails (the power check);
- `law_composition_associative`: (f >> g) >> h == f >> (g >> h) where `>>` is defined;
- `law_tabulated_inversion`: inverting the tabulated kernel with the core's `invert` gives Bayes'
  rule computed entry by entry from `log_prob`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.stats
import torch
from hypothesis import strategies as st

from condprob.conditioning import invert
from condprob.errors import ValidationError
from condprob.finite import Kernel, State
from condprob.gaussian import LinearGaussian
from condprob.laws.finite import assert_same
from condprob.laws.gaussian import assert_same_gaussian
from condprob.protocol import Morphism, law_at, log_prob_at, sample_at
from condprob.spaces import Space
from condprob.tabulation import tabulate
from condprob.tolerance import within

__all__ = ["bigram_tables", "emissions", "g_test", "law_call_matches_log_prob",
           "law_composition_associative", "law_sampling_matches_density",
           "law_sampling_matches_log_prob", "law_tabulated_inversion", "prefixes"]

ATOL = 1e-10
ALPHA = 1e-3


def _tensor(v: Any) -> torch.Tensor:
    return torch.as_tensor(v).detach().to(torch.float64)


def _prob(k: Morphism, x: Any, y: Any) -> float:
    return math.exp(float(_tensor(log_prob_at(k, x, y))))


def law_call_matches_log_prob(k: Morphism, x: Any, y: Any, atol: float = ATOL) -> None:
    """k(x).log_prob(y) == k.log_prob(x, y) (for a state: s.to_pyro().log_prob(y) == s.log_prob(y)),
    equal -inf entries included."""
    via_law = _tensor(law_at(k, x).log_prob(y))
    direct = _tensor(log_prob_at(k, x, y))
    if via_law.shape != direct.shape:
        raise AssertionError(f"{type(k).__name__}: k(x).log_prob(y) has shape "
                             f"{tuple(via_law.shape)}, k.log_prob(x, y) {tuple(direct.shape)}")
    same_inf = torch.isinf(via_law) & (via_law == direct)
    err = torch.where(same_inf, 0.0, (via_law - direct).abs())
    if not bool((err <= atol).all()):
        raise AssertionError(f"{type(k).__name__}: k(x).log_prob(y) and k.log_prob(x, y) differ "
                             f"by {float(err.max()):.3g} > {atol:g}")


def g_test(counts: torch.Tensor | np.ndarray | Sequence[float],
           probs: torch.Tensor | np.ndarray | Sequence[float]) -> float:
    """p-value of the G-test of observed `counts` (n,) against the law `probs` (n,):
    G = 2 sum_i c_i log(c_i / (N p_i)) over the support, chi-squared with (support - 1) degrees
    of freedom. A count outside the support gives 0; a support of one outcome gives 1."""
    c = np.asarray(torch.as_tensor(counts).detach().cpu(), dtype=np.float64).reshape(-1)
    p = np.asarray(torch.as_tensor(probs).detach().cpu(), dtype=np.float64).reshape(-1)
    if c.shape != p.shape:
        raise ValidationError(f"g_test: {c.size} counts for a law on {p.size} outcomes")
    keep = p > 0
    if bool((c[~keep] > 0).any()):
        return 0.0
    df = int(keep.sum()) - 1
    if df <= 0:
        return 1.0
    obs, expected = c[keep], c.sum() * p[keep]
    stat = 2 * float((obs * np.log(np.where(obs > 0, obs / expected, 1))).sum())
    return float(scipy.stats.chi2.sf(stat, df))


def _precision(k: Morphism, x: Any, y: Any) -> torch.dtype:
    """The dtype k's law at x is held in: its logits' where it has them (a float32 table keeps
    float32 rounding when log_prob reads it out in float64), else log_prob's."""
    logits = getattr(law_at(k, x), "logits", None)
    return logits.dtype if isinstance(logits, torch.Tensor) else torch.as_tensor(
        log_prob_at(k, x, y)).dtype


def _key(value: Any) -> tuple:
    return tuple(torch.as_tensor(value).reshape(-1).tolist())


def law_sampling_matches_log_prob(k: Morphism, x: Any, outputs: Sequence[Any], n: int = 4000,
                                  *, generator: torch.Generator | None = None,
                                  target: Morphism | None = None, alpha: float = ALPHA) -> float:
    """Draws of k.sample(x, (n,)) (one input, discrete outputs) follow exp(target.log_prob(x, y))
    over `outputs` (all outcomes of positive probability, as tensors shaped like one draw, which
    `log_prob` reads; target defaults to k): a G-test, asserting p-value >= alpha. Returns the
    p-value; with a deliberately wrong target it must be tiny (the power check)."""
    target = k if target is None else target
    probs = np.array([_prob(target, x, y) for y in outputs])
    if not within(probs.sum() - 1, _precision(target, x, outputs[0])):
        raise AssertionError(f"the outputs carry probability {probs.sum():.10g}, not 1")
    index = {_key(y): i for i, y in enumerate(outputs)}
    counts = np.zeros(len(outputs))
    for d in sample_at(k, x, (n,), generator=generator):
        key = _key(d)
        if key not in index:
            raise AssertionError(f"{type(k).__name__}: drew {key!r}, not among the outputs")
        counts[index[key]] += 1
    pvalue = g_test(counts, probs)
    if target is k and pvalue < alpha:
        raise AssertionError(f"{type(k).__name__}: draws do not follow log_prob (G-test "
                             f"p = {pvalue:.3g} < {alpha:g})")
    return pvalue


def law_sampling_matches_density(k: Morphism, x: Any, low: float, high: float, n: int = 4000, *,
                                 to_output: Callable[[torch.Tensor], Any] = lambda t: t[:, None],
                                 from_draws: Callable[[Any], torch.Tensor] = lambda d: d.reshape(-1),
                                 generator: torch.Generator | None = None,
                                 target: Morphism | None = None, grid: int = 20001,
                                 alpha: float = ALPHA) -> float:
    """Draws of k.sample(x, (n,)) (one input, real outputs) follow the density
    exp(target.log_prob(x, y)): a Kolmogorov-Smirnov test against the CDF integrated on a grid of
    [low, high] (which must hold all but 1e-4 of the mass). `to_output` maps grid points (G,) to
    outputs `log_prob` reads; `from_draws` maps the draws to reals (n,). Asserts p >= alpha
    when target is k; returns the p-value (tiny for a wrong target: the power check)."""
    target = k if target is None else target
    t = torch.linspace(low, high, grid, dtype=torch.float64)
    dens = _tensor(log_prob_at(target, x, to_output(t))).reshape(grid).exp()
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64),
                     torch.cumulative_trapezoid(dens, t)])
    if abs(float(cdf[-1]) - 1) > 1e-4:
        raise AssertionError(f"the density integrates to {float(cdf[-1]):.8g} on [{low}, {high}], "
                             "not 1: widen the interval or refine the grid")
    cdf = cdf / cdf[-1]
    values = from_draws(sample_at(k, x, (n,), generator=generator)).double().numpy()
    t_np, cdf_np = t.numpy(), cdf.numpy()
    pvalue = float(scipy.stats.kstest(values, lambda v: np.interp(v, t_np, cdf_np)).pvalue)
    if target is k and pvalue < alpha:
        raise AssertionError(f"{type(k).__name__}: draws do not follow the density (KS "
                             f"p = {pvalue:.3g} < {alpha:g})")
    return pvalue


def _same(a: Morphism, b: Morphism, inputs: Space | None, outputs: Space | None,
          what: str) -> None:
    if isinstance(a, Kernel) and isinstance(b, Kernel):
        assert_same(a, b, what=what)
        return
    if isinstance(a, LinearGaussian) and isinstance(b, LinearGaussian):
        assert_same_gaussian(a, b, what=what)
        return
    if a.dom != b.dom or a.cod != b.cod:
        raise AssertionError(f"{what}: spaces differ: {a.dom} -> {a.cod} vs {b.dom} -> {b.cod}")
    assert_same(tabulate(a, inputs, outputs), tabulate(b, inputs, outputs), what=what)


def law_composition_associative(f: Morphism, g: Morphism, h: Morphism,
                                inputs: Space | None = None,
                                outputs: Space | None = None) -> None:
    """(f >> g) >> h == f >> (g >> h), compared as finite kernels (tabulated on `inputs` and
    `outputs` where the result is neither finite nor Gaussian) or as Gaussian kernels."""
    _same((f >> g) >> h, f >> (g >> h), inputs, outputs, "associativity of >>")


def law_tabulated_inversion(k: Morphism, prior: State, outputs: Space | None = None,
                            atol: float = ATOL) -> None:
    """invert(tabulate(k, prior.cod, outputs), prior) is Bayes' rule from `log_prob`:
    dagger(y)(x) = prior(x) p(y | x) / sum_x' prior(x') p(y | x'), on the y of positive mass."""
    table = tabulate(k, prior.cod, outputs)
    dagger = invert(table, prior)
    weights = np.asarray(prior.probs, dtype=float).reshape(-1)
    like = np.array([[_prob(k, x, y) for y in table.cod.labels]
                     for x in table.dom.labels])
    joint = weights[:, None] * like
    mass = joint.sum(0)
    seen = mass > 0
    want = joint[:, seen] / mass[seen]
    got = np.asarray(dagger.matrix, dtype=float)[seen].T
    err = float(np.abs(got - want).max()) if want.size else 0.0
    if err > atol:
        raise AssertionError(f"{type(k).__name__}: the inverted table differs from Bayes' rule by "
                             f"{err:.3g} > {atol:g}")


# Strategies ----------------------------------------------------------------------------------
@st.composite
def bigram_tables(draw: st.DrawFn, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(transition (V, V), initial (V,)) of a bigram model: integer weights 1..9, normalised."""
    def row() -> list[int]:
        return draw(st.lists(st.integers(1, 9), min_size=vocab_size, max_size=vocab_size))

    trans = torch.tensor([row() for _ in range(vocab_size)], dtype=torch.float64)
    init = torch.tensor(row(), dtype=torch.float64)
    return trans / trans.sum(-1, keepdim=True), init / init.sum()


@st.composite
def prefixes(draw: st.DrawFn, vocab_size: int, batch: int = 1, min_len: int = 0,
             max_len: int = 3) -> torch.Tensor:
    """A batch of token prefixes (batch, T), ids in [0, vocab_size)."""
    t = draw(st.integers(min_len, max_len))
    ids = draw(st.lists(st.integers(0, vocab_size - 1), min_size=batch * t, max_size=batch * t))
    return torch.tensor(ids, dtype=torch.long).reshape(batch, t)


@st.composite
def emissions(draw: st.DrawFn, num_labels: int, batch: int = 1, min_len: int = 1,
              max_len: int = 4) -> torch.Tensor:
    """CRF emission scores (batch, T, L) in [-3, 3] (quarters, so draws repeat exactly)."""
    t = draw(st.integers(min_len, max_len))
    size = batch * t * num_labels
    vals = draw(st.lists(st.integers(-12, 12), min_size=size, max_size=size))
    return torch.tensor(vals, dtype=torch.float64).reshape(batch, t, num_labels) / 4
