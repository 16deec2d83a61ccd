"""Regressions of issue 13 for Hawkes: ties, standard errors of shared or fixed decays, the
up-front guard of supercritical simulation, expected counts."""

import math

import pytest
import torch

from condprob.errors import ValidationError
from tpp.data import EventBatch
from tpp.hawkes import Hawkes

MU, ALPHA, BETA = [0.5, 0.3], [[0.2, 0.1], [0.3, 0.4]], 1.5


def loglik_by_formula(times, marks, T):
    """Sum of log lambda_{m_i}(t_i) over t_l < t_i (strict), minus the closed-form compensator."""
    ll = -sum(MU) * T
    for t, m in zip(times, marks, strict=True):
        ll += math.log(MU[m] + sum(ALPHA[m][j] * BETA * math.exp(-BETA * (t - s))
                                   for s, j in zip(times, marks, strict=True) if s < t))
        ll -= (ALPHA[0][m] + ALPHA[1][m]) * -math.expm1(-BETA * (T - t))
    return ll


@pytest.mark.parametrize("times,marks", [([1.0, 1.0, 2.0], [0, 1, 0]),
                                         ([0.0, 0.0, 0.5, 0.5, 0.5, 2.0], [1, 0, 0, 1, 1, 0])])
def test_simultaneous_events_do_not_excite_each_other(times, marks):
    b = EventBatch.from_sequences([times, [0.5]], [marks, [1]], T=3.0, num_marks=2)
    want = loglik_by_formula(times, marks, 3.0)
    compiled = Hawkes(MU, ALPHA, BETA)                    # one decay: the numba pass
    scan = Hawkes(MU, ALPHA, torch.full((2, 2), BETA))    # per-pair decays: the scan
    assert compiled._scalar_beta is not None and scan._scalar_beta is None
    for h in (compiled, scan):
        assert h.log_likelihood(b)[0].item() == pytest.approx(want, rel=1e-13)
    # the old code counted the earlier-listed tied event: a different number
    assert abs(want - loglik_by_formula(times, marks, 3.0)) == 0
    lam = scan.intensities_at_events(b)[0]
    assert lam[1].tolist() == pytest.approx(lam[0].tolist(), rel=1e-15)  # same time, same lambda


def test_tie_fix_keeps_gradients_of_both_paths_equal():
    b = EventBatch.from_sequences([[1.0, 1.0, 2.0, 2.0]], [[0, 1, 0, 0]], T=3.0, num_marks=2)
    args = [torch.tensor(MU, dtype=torch.float64, requires_grad=True),
            torch.tensor(ALPHA, dtype=torch.float64, requires_grad=True),
            torch.tensor(BETA, dtype=torch.float64, requires_grad=True)]
    fast = Hawkes(*args).log_likelihood(b).sum()
    slow = Hawkes(args[0], args[1], args[2].expand(2, 2)).log_likelihood(b).sum()
    assert fast.item() == pytest.approx(slow.item(), rel=1e-13)
    for g, h in zip(torch.autograd.grad(fast, args), torch.autograd.grad(slow, args), strict=True):
        assert torch.allclose(g, h, rtol=1e-12, atol=1e-14)


def test_standard_errors_of_shared_fixed_and_source_decays():
    truth = Hawkes([0.5, 0.3], [[0.3, 0.1], [0.2, 0.3]], 1.2)
    data = truth.simulate(300.0, 2, seed=5)
    shared = Hawkes.fit(data)
    assert shared.decays == "shared" and not shared.decay_fixed
    se = shared.standard_errors(data)
    # errors come in the shapes a user writes: alpha (D, D), one decay a number
    assert se["mu"].shape == (2,) and se["alpha"].shape == (2, 2) and se["beta"].shape == ()
    assert {k: v.shape for k, v in shared.parameters().items()} == {k: v.shape for k, v in se.items()}
    # the same information matrix built by hand on (mu, alpha, one decay)
    def nll(th):
        h = Hawkes(th[:2], th[2:6].view(2, 2), th[6:].expand(2, 2), validate=False)
        return -h.log_likelihood(data).sum()
    theta = torch.cat([shared.mu, shared.alpha.flatten(), shared.beta[0, 0]])
    want = torch.linalg.inv(torch.autograd.functional.hessian(nll, theta)).diagonal().sqrt()
    got = torch.cat([se["mu"], se["alpha"].flatten(), se["beta"].reshape(1)])
    assert torch.allclose(got, want, rtol=1e-8)
    # per-source decays are more parameters: wider errors (the old shared-fit answer)
    src = Hawkes(shared.mu, shared.alpha, shared.beta.clone()).standard_errors(data)
    assert src["beta"].shape == (1, 2, 1) and (src["alpha"][..., 0] > se["alpha"]).all()
    fixed = Hawkes.fit(data, beta=1.2)
    assert fixed.decay_fixed
    se_fixed = fixed.standard_errors(data)
    assert set(se_fixed) == {"mu", "alpha"}
    def nll2(th):
        h = Hawkes(th[:2], th[2:].view(2, 2), torch.full((2, 2), 1.2), validate=False)
        return -h.log_likelihood(data).sum()
    theta = torch.cat([fixed.mu, fixed.alpha.flatten()])
    want = torch.linalg.inv(torch.autograd.functional.hessian(nll2, theta)).diagonal().sqrt()
    assert torch.allclose(torch.cat([se_fixed["mu"], se_fixed["alpha"].flatten()]), want,
                          rtol=1e-8)


def test_expected_count_closed_form():
    mu, a, b, T = 0.7, 0.6, 2.0, 5.0
    c = b * (1 - a)
    want = mu * T / (1 - a) - mu * a / (c * (1 - a)) * -math.expm1(-c * T)
    assert Hawkes([mu], [[a]], b).expected_count(T).item() == pytest.approx(want, rel=1e-12)
    poisson = Hawkes([0.2, 0.3], [[0.0, 0.0], [0.0, 0.0]], 1.0)
    assert torch.allclose(poisson.expected_count(4.0), torch.tensor([0.8, 1.2], dtype=torch.float64))


@pytest.mark.parametrize("method", ["branching", "thinning"])
def test_supercritical_simulation_refused_up_front(method):
    sup = Hawkes([1.0], [[1.5]], 1.0)
    with pytest.raises(ValidationError, match=r"expected to hold .* events, more than max_events"):
        sup.simulate(100.0, method=method)
    # a short window of the same process is fine
    assert sup.simulate(2.0, 2, seed=0, method=method).num_events > 0
    with pytest.raises(ValidationError, match="max_events=10"):
        Hawkes([1.0], [[0.5]], 1.0).simulate(100.0, method=method, max_events=10)


def test_parameters_in_the_constructors_shapes_and_reprs():
    h = Hawkes([0.5, 0.3], [[0.2, 0.1], [0.3, 0.4]], 1.5)
    p = h.parameters()
    assert p["alpha"].shape == (2, 2) and p["beta"].shape == ()
    assert repr(Hawkes(**p)) == repr(h) == ("Hawkes(mu=[0.5, 0.3], alpha=[[0.2, 0.1], [0.3, 0.4]], "
                                           "beta=1.5; shared decays, spectral radius 0.5)")
    pair = Hawkes([0.5, 0.3], [[0.2, 0.1], [0.3, 0.4]], [[1.0, 2.0], [3.0, 4.0]])
    assert pair.decays == "pair" and pair.parameters()["beta"].shape == (2, 2)
    src = Hawkes([0.5, 0.3], torch.full((2, 2, 2), 0.1), torch.ones(1, 2, 2))
    assert src.decays == "source" and src.parameters()["beta"].shape == (1, 2, 2)
    data = h.simulate(100.0, 2, seed=1)
    for kw, shapes in (({}, ((2, 2), ())), ({"decays": "source"}, ((2, 2), (1, 2, 1))),
                       ({"num_components": 2}, ((2, 2, 2), (2,)))):
        fit = Hawkes.fit(data, **kw)
        got = fit.parameters()
        assert (got["alpha"].shape, got["beta"].shape) == shapes, kw
        assert repr(fit).startswith("Hawkes(mu=[")
    big = Hawkes(torch.full((5,), 0.1), torch.full((5, 5), 0.05), 1.0)
    assert repr(big) == "Hawkes(5 marks, 1 component(s); shared decays, spectral radius 0.25)"
