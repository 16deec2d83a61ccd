"""Property tests: BFFG rules against the core's composition, pushforward and conditioning."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from condprob.bffg import FiniteMessage, GaussianMessage, Model, backward_filter
from condprob.bffg.inference import posterior_marginals
from condprob.bffg.rules import guided_gaussian, log_integral, pullback_finite, pullback_linear
from condprob.conditioning import update
from condprob.gaussian import LinearGaussian
from condprob.laws.gaussian import gaussian_kernels, gaussian_states
from condprob.laws.strategies import finite_spaces, kernels, predicates, states

T64 = torch.float64


@st.composite
def observations(draw, dim):
    """y ~ N(L x, R) with R positive definite, L of 1..dim rows (H may be singular)."""
    rows = draw(st.integers(1, dim))
    L = torch.tensor(draw(st.lists(st.integers(-3, 3), min_size=rows * dim,
                                   max_size=rows * dim)), dtype=T64).reshape(rows, dim) / 2
    r = torch.tensor(draw(st.lists(st.integers(1, 4), min_size=rows, max_size=rows)),
                     dtype=T64)
    y = torch.tensor(draw(st.lists(st.integers(-4, 4), min_size=rows, max_size=rows)),
                     dtype=T64) / 2
    return LinearGaussian(L, None, torch.diag(r / 2)), y


def _close(a, b, tol=1e-9):
    scale = 1 + max(a.abs().max().item(), b.abs().max().item())
    assert (a - b).abs().max().item() <= tol * scale, (a, b)


@given(st.data(), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3))
def test_pullback_respects_composition(data, d0, d1, d2):
    """K1 (K2 h) = (K1 >> K2) h, with singular noise and singular messages."""
    k1 = data.draw(gaussian_kernels(d0, d1))
    k2 = data.draw(gaussian_kernels(d1, d2))
    obs, y = data.draw(observations(d2))
    h = GaussianMessage.observation(obs.matrix, obs.cov, y)
    two = pullback_linear(pullback_linear(h, k2.matrix, k2.offset, k2.cov), k1.matrix, k1.offset,
                          k1.cov)
    k = k1 >> k2
    one = pullback_linear(h, k.matrix, k.offset, k.cov)
    for a, b in ((two.c, one.c), (two.F, one.F), (two.H, one.H)):
        _close(a, b)


@given(st.data(), st.integers(1, 3))
def test_evidence_and_guided_state_equal_core_conditioning(data, d):
    """<prior, h> = density of (prior >> obs) at y; prior tilted by h = Pearl update of prior."""
    prior = data.draw(gaussian_states(d))
    obs, y = data.draw(observations(d))
    h = GaussianMessage.observation(obs.matrix, obs.cov, y)
    _close(log_integral(h, prior.mean, prior.cov), (prior >> obs).log_prob(y))
    mu, cov = guided_gaussian(h, prior.mean, prior.cov)
    post = update(prior, (obs, y))
    _close(mu, post.mean)
    _close(cov, post.cov)


@given(st.data())
def test_finite_pullback_and_posterior_exact(data):
    """Exact: K1 (K2 h) = (K1 >> K2) h, and the root marginal is prior | (K h)."""
    x, y, z = (data.draw(finite_spaces(name=n)) for n in "XYZ")
    k1 = data.draw(kernels(x, y, exact=True))
    k2 = data.draw(kernels(y, z, exact=True))
    p = data.draw(predicates(z, exact=True))
    h = FiniteMessage(p)
    two = pullback_finite(k1, pullback_finite(k2, h))
    one = pullback_finite(k1 >> k2, h)
    assert list(two.predicate.values) == list(one.predicate.values)
    prior = data.draw(states(x, exact=True))
    m = Model("x", prior).add_edge("x", "y", k1).add_edge("y", "z", k2)
    m.observe("z", h)
    filt = backward_filter(m)
    mass = prior.validity(one.predicate)
    assert filt.evidence == mass
    if mass != 0:
        assert list(posterior_marginals(filt)["x"].probs) == list((prior | one.predicate).probs)
