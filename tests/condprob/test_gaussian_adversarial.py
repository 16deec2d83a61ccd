"""Bad input to every public Gaussian entry point gives a house error naming the problem; the
consistency tolerance of exact conditioning follows the core's policy (dtype, scale, conditioning).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import condprob as cp
from condprob.gaussian import Gaussian, LinearEquation, LinearGaussian, identity

T = torch.float64
NAN, INF = float("nan"), float("inf")


def std(n: int = 2, dtype: torch.dtype = T) -> Gaussian:
    return Gaussian.standard(n, dtype)


# Consistency of equations ---------------------------------------------------------------------
def test_nearly_repeated_equation_is_inconsistent_with_residual_and_tolerance():
    with pytest.raises(cp.ConditioningError, match=r"residual 3\.54e-07 .* tolerance") as err:
        cp.condition(std(), ([[1.0, 1.0], [1.0, 1.0]], [1.0, 1.0 + 5e-7]))
    assert "A x == b (2 equations)" in str(err.value)
    # far below any statistical allowance: only float64 rounding is forgiven
    with pytest.raises(cp.ConditioningError):
        cp.condition(std(), ([[1.0, 1.0], [1.0, 1.0]], [1.0, 1.0 + 1e-12]))


def test_repeated_equation_is_consistent_and_exact():
    post = cp.condition(std(), ([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]], [1.0, 1.0, 2.0]))
    torch.testing.assert_close(post.mean, torch.full((2,), 0.5, dtype=T), atol=1e-15, rtol=0)
    torch.testing.assert_close(post.cov, torch.tensor([[0.5, -0.5], [-0.5, 0.5]], dtype=T),
                               atol=1e-15, rtol=0)


@pytest.mark.parametrize("scale", [1e-150, 1e-12, 1.0, 1e12, 1e150])
def test_consistency_tolerance_is_relative_to_scale(scale):
    prior = Gaussian(torch.zeros(2, dtype=T), scale**2 * torch.eye(2, dtype=T))
    a = [[1.0, 1.0], [1.0, 1.0]]
    post = cp.condition(prior, (a, [scale, scale]))
    torch.testing.assert_close(post.mean / scale, torch.full((2,), 0.5, dtype=T), atol=1e-15,
                               rtol=0)
    with pytest.raises(cp.ConditioningError, match="inconsistent"):
        cp.condition(prior, (a, [scale, scale * (1 + 5e-7)]))


def test_consistency_tolerance_follows_the_dtype():
    prior = std(2, torch.float32)
    a = [[1.0, 1.0], [1.0, 1.0]]
    cp.condition(prior, (a, [1.0, 1.0 + 1e-6]))       # within float32 rounding
    with pytest.raises(cp.ConditioningError, match="inconsistent"):
        cp.condition(prior, (a, [1.0, 1.0 + 1e-2]))


def test_numerically_singular_gp_accepts_data_drawn_from_it():
    # a smooth GP block (cond ~ 1e18): the data, drawn from its own law in float64, hold
    # components of ~1e-8 along directions of (numerically) zero variance: not an inconsistency
    s = np.arange(60) * 0.1
    k = np.exp(-0.5 * ((s[:, None] - s[None, :]) / 0.5) ** 2)
    w, v = np.linalg.eigh(k)
    assert np.linalg.cond(k) > 1e16
    for seed in range(5):
        y = v @ (np.sqrt(np.clip(w, 0, None)) * np.random.default_rng(seed).standard_normal(60))
        post = Gaussian(torch.zeros(60, dtype=T), torch.from_numpy(k)).condition_linear(
            LinearEquation.observe(range(60), torch.from_numpy(y), 60))
        assert float((post.mean - torch.from_numpy(y)).abs().max()) == 0.0
    # the tolerance grows with the conditioning of the observed block (here to about the scale
    # of the data, since its computed range is only that accurate), and stops there
    with pytest.raises(cp.ConditioningError, match="inconsistent"):
        Gaussian(torch.zeros(60, dtype=T), torch.from_numpy(k)).condition_linear(
            LinearEquation.observe(range(60), torch.from_numpy(y + 10 * v[:, 0]), 60))


def test_log_prob_off_a_singular_support_uses_the_same_rule():
    g = Gaussian([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]])
    assert math.isfinite(float(g.log_prob([0.3, 0.3])))
    assert float(g.log_prob([0.3, 0.3 + 1e-9])) == -math.inf


# Pearl updates ----------------------------------------------------------------------------------
def test_pearl_update_on_impossible_evidence_raises_like_condition():
    point = Gaussian([0.0], [[0.0]])
    with pytest.raises(cp.ConditioningError, match=r"observation y == \[5.0\]"):
        cp.update(point, (identity(1), torch.tensor([5.0], dtype=T)))
    with pytest.raises(cp.ConditioningError):
        cp.condition(point, ([1.0], [5.0]))
    # the consistent observation is fine, and leaves the point where it is
    same = cp.update(point, (identity(1), torch.tensor([0.0], dtype=T)))
    assert float(same.mean.abs().max()) == 0.0 and float(same.cov.abs().max()) == 0.0


def test_pearl_update_equals_the_inverse_at_the_observation():
    prior = Gaussian([1.0, -1.0], [[2.0, 0.5], [0.5, 1.0]])
    c = LinearGaussian([[1.0, 2.0], [0.0, 1.0], [1.0, -1.0]], [0.5, 0.0, 1.0],
                       torch.diag(torch.tensor([0.3, 0.2, 0.1], dtype=T)))
    y = torch.tensor([1.0, 2.0, -0.5], dtype=T)
    post = cp.update(prior, (c, y))
    ref = c.inverse(prior).at(y)
    torch.testing.assert_close(post.mean, ref.mean, atol=1e-13, rtol=0)
    torch.testing.assert_close(post.cov, ref.cov, atol=1e-13, rtol=0)
    assert post.cod == prior.cod


# Every entry point, bad input ----------------------------------------------------------------
BAD = {
    "mean NaN": (lambda: Gaussian([NAN, 0.0], torch.eye(2)), "mean has non-finite"),
    "cov inf": (lambda: Gaussian([0.0, 0.0], [[INF, 0.0], [0.0, 1.0]]), "covariance has non-f"),
    "cov shape": (lambda: Gaussian([0.0, 0.0], torch.eye(3)), r"shape \(\*batch, 2, 2\)"),
    "cov not symmetric": (lambda: Gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]]),
                          "not symmetric"),
    "cov not PSD": (lambda: Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]]),
                    "not positive semi-definite"),
    "cov complex": (lambda: Gaussian([0.0], torch.ones(1, 1, dtype=torch.complex64)),
                    "must be real"),
    "mean of strings": (lambda: Gaussian(["a"], [[1.0]]), "array of real numbers"),
    "cov and factor": (lambda: Gaussian([0.0], [[1.0]], factor=[[1.0]]), "exactly one"),
    "factor shape": (lambda: Gaussian([0.0, 0.0], factor=[1.0, 2.0, 3.0]), "factor must have"),
    "kernel matrix 1-d": (lambda: LinearGaussian(torch.zeros(2)), "matrix"),
    "batch shapes": (lambda: Gaussian(torch.zeros(3, 2), torch.eye(2).expand(4, 2, 2)),
                     "do not broadcast"),
    "kernel offset shape": (lambda: LinearGaussian(torch.eye(2), [1.0, 2.0, 3.0]), "offset"),
    "kernel noise not PSD": (lambda: LinearGaussian(torch.eye(2), None, -torch.eye(2)),
                             "not positive semi-definite"),
    "kernel input shape": (lambda: identity(2).at([1.0, 2.0, 3.0]), "input point"),
    "kernel input NaN": (lambda: identity(2).at([NAN, 2.0]), "input point has non-finite"),
    "log_prob NaN": (lambda: std().log_prob([NAN, 0.0]), "value has non-finite"),
    "log_prob shape": (lambda: std().log_prob([0.0, 0.0, 1.0]), "value for log_prob"),
    "sample shape negative": (lambda: std().sample((-1,)), "sample_shape"),
    "condition rhs NaN": (lambda: cp.condition(std(), ([1.0, 1.0], [NAN])), "right-hand side"),
    "condition matrix inf": (lambda: cp.condition(std(), ([1.0, INF], [0.0])), "matrix"),
    "condition width": (lambda: cp.condition(std(), ([1.0, 1.0, 1.0], [0.0])), "equation"),
    "condition rows": (lambda: cp.condition(std(), ([1.0, 1.0], [0.0, 1.0])), r"shape \(r,\)"),
    "condition factor": (lambda: cp.condition(Gaussian.standard(cp.Euclidean(2, "x")),
                                              {"z": 1.0}), "no factor named 'z'"),
    "condition value size": (lambda: cp.condition(Gaussian.standard(cp.Euclidean(2, "x")),
                                                  {"x": [1.0]}), "dimension 2"),
    "observe index": (lambda: std().condition_linear(LinearEquation.observe([5], [1.0], 2)),
                      r"\[0, 2\)"),
    "observe counts": (lambda: LinearEquation.observe([0, 1], [1.0], 2), "2 indices but 1"),
    "observe float index": (lambda: LinearEquation.observe([0.5], [1.0], 2), "integers"),
    "expand": (lambda: std().expand((3, -1)), "cannot expand"),
    "expand smaller": (lambda: Gaussian(torch.zeros(3, 2), torch.eye(2)).expand((2,)),
                       "cannot expand"),
    "update observation NaN": (lambda: cp.update(std(1), (identity(1), torch.tensor([NAN]))),
                               "observation has non-finite"),
    "update observation shape": (lambda: cp.update(std(1), (identity(1), torch.ones(2))),
                                 "observation of a Pearl update"),
    "update kernel space": (lambda: cp.update(std(1), (identity(2), torch.ones(2))),
                            "codomain does not match"),
    "inconsistent equation": (lambda: cp.condition(std(), ([[1.0, 1.0], [2.0, 2.0]], [1.0, 1.0])),
                              "inconsistent"),
    "prob_below threshold NaN": (lambda: std().prob_below([1.0, 1.0], NAN), "threshold"),
    "prob_below weights": (lambda: std().prob_below([1.0, NAN], 0.0), "weights"),
    "prob_below weights shape": (lambda: std().prob_below([1.0], 0.0), "weights"),
    "invert spaces": (lambda: cp.invert(identity(2), std(1)), "codomain does not match"),
    "disintegrate factor": (lambda: cp.disintegrate(std(), 5), "out of range"),
    "marginal factor": (lambda: std().marginal("q"), "no factor named 'q'"),
    "compose spaces": (lambda: std() >> identity(3), "codomain does not match"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gives_a_house_error(case):
    build, message = BAD[case]
    with pytest.raises(cp.CondprobError, match=message):
        build()


@given(st.sampled_from(["mean", "cov", "matrix", "offset", "point", "value", "rhs", "obs"]),
       st.sampled_from([NAN, INF, -INF]), st.integers(0, 3))
def test_any_non_finite_entry_is_named(where, bad, pos):
    mean, cov = torch.zeros(2, dtype=T), torch.eye(2, dtype=T)
    a, b = torch.eye(2, dtype=T), torch.zeros(2, dtype=T)
    arrays = {"mean": mean, "cov": cov, "matrix": a, "offset": b, "point": b.clone(),
              "value": b.clone(), "rhs": b.clone(), "obs": b.clone()}
    t = arrays[where]
    t.view(-1)[pos % t.numel()] = bad
    calls = {
        "mean": lambda: Gaussian(mean, cov), "cov": lambda: Gaussian(mean, cov),
        "matrix": lambda: LinearGaussian(a, b), "offset": lambda: LinearGaussian(a, b),
        "point": lambda: identity(2).at(arrays["point"]),
        "value": lambda: std().log_prob(arrays["value"]),
        "rhs": lambda: cp.condition(std(), (torch.eye(2, dtype=T), arrays["rhs"])),
        "obs": lambda: cp.update(std(), (identity(2), arrays["obs"])),
    }
    with pytest.raises(cp.ValidationError, match="non-finite"):
        calls[where]()


# Validation of large covariances: what the computation uses, the rest on first use -------------
def _big(n: int = 300) -> torch.Tensor:
    s = torch.linspace(0, 3, n, dtype=T)
    return torch.exp(-0.5 * (s[:, None] - s[None, :]) ** 2 / 0.3**2) + 1e-6 * torch.eye(n, dtype=T)


def test_a_large_non_psd_prior_is_caught_at_first_full_use():
    k = _big()
    v = torch.randn(300, generator=torch.Generator().manual_seed(0), dtype=T)
    v /= v.norm()
    bad = k - 5.0 * torch.outer(v, v)           # one eigenvalue near -4, diagonal still positive
    g = Gaussian(torch.zeros(300, dtype=T), bad)  # cheap checks only at construction
    for use in (lambda: g.cov, lambda: g.sample(), lambda: g.log_prob(torch.zeros(300, dtype=T)),
                lambda: g >> identity(300), lambda: g.to_pyro()):
        with pytest.raises(cp.ValidationError, match="not positive semi-definite"):
            use()
    # a posterior inherits the pending check: the prior is PSD iff the observed block and the
    # posterior are
    w = torch.zeros(300, dtype=T)
    w[150:] = 1 / math.sqrt(150)
    hidden = k - 3.0 * torch.outer(w, w)        # indefinite only among unobserved coordinates
    post = Gaussian(torch.zeros(300, dtype=T), hidden).condition_linear(
        LinearEquation.observe([0, 50, 100], [0.1, 0.2, 0.3], 300))
    assert post.mean.shape == (300,)
    with pytest.raises(cp.ValidationError, match="not positive semi-definite"):
        post.sample()
    good = Gaussian(torch.zeros(300, dtype=T), k)
    assert good.sample().shape == (300,) and not good._pending


def test_a_large_prior_is_checked_where_conditioning_reads_it():
    k = _big()
    asym = k.clone()
    asym[5, 0] += 1e-3                          # the observed block Q[o, o] is not symmetric
    with pytest.raises(cp.ValidationError, match="not symmetric"):
        Gaussian(torch.zeros(300, dtype=T), asym).condition_linear(
            LinearEquation.observe([0, 5], [1.0, 1.0], 300))
    # outside the rows read, the asymmetry is found at the first use of the whole posterior
    post = Gaussian(torch.zeros(300, dtype=T), asym).condition_linear(
        LinearEquation.observe([0], [1.0], 300))
    with pytest.raises(cp.ValidationError, match="not symmetric"):
        post.sample()
    corr = k.clone()
    corr[0, 150] = corr[150, 0] = 1.5           # a correlation above 1 in the block read
    with pytest.raises(cp.ValidationError, match=r"sqrt\(Q_ii Q_jj\)"):
        Gaussian(torch.zeros(300, dtype=T), corr).condition_linear(
            LinearEquation.observe([0], [1.0], 300))
    block = k.clone()
    block[0, 1] = block[1, 0] = 0.99 * math.sqrt(block[0, 0] * block[1, 1])
    block[0, 2] = block[2, 0] = -0.99 * math.sqrt(block[0, 0] * block[2, 2])  # indefinite 3 x 3
    with pytest.raises(cp.ValidationError, match="conditioned block"):
        Gaussian(torch.zeros(300, dtype=T), block).condition_linear(
            LinearEquation.observe([0, 1, 2], [1.0, 1.0, 1.0], 300))
    var = k.clone()
    var[7, 7] -= 1e-4                           # below what observing x5 and x6 explains
    post = Gaussian(torch.zeros(300, dtype=T), var).condition_linear(
        LinearEquation.observe([5, 6], [1.0, 1.0], 300))
    with pytest.raises(cp.ValidationError, match="a variance is"):
        _ = post.variance
    with pytest.raises(cp.ValidationError, match="a variance is"):
        Gaussian(torch.zeros(300, dtype=T), k - 2 * torch.eye(300, dtype=T))


def test_a_tiny_posterior_of_a_large_prior_passes_its_pending_checks():
    # a smooth GP (l = 0.5) observed every 0.1: the posterior covariance is ~1e-8 while its
    # rounding (base - down down') is relative to the prior's scale 1, so the posterior's pending
    # checks use the prior's scale (they raised "not symmetric" at 3e-16 > 2e-21 from `cov`,
    # and "a variance is -1e-15" from `variance` once the covariance had been formed)
    s = torch.arange(1000, dtype=T) * 0.01
    k = torch.exp(-0.5 * ((s[:, None] - s[None, :]) / 0.5) ** 2)
    idx = torch.arange(0, 1000, 10)
    lam, u = torch.linalg.eigh(k[idx][:, idx])
    y = u @ (lam.clamp(min=0).sqrt() * torch.randn(100, generator=torch.Generator().manual_seed(0),
                                                   dtype=T))
    prior = Gaussian(torch.zeros(1000, dtype=T), k)
    post = prior.condition_linear(LinearEquation.observe(idx, y, 1000))
    cov = post.cov
    assert float(cov.abs().max()) < 1e-6
    torch.testing.assert_close(post.variance, cov.diagonal(), atol=1e-14, rtol=0)
    # a genuinely indefinite prior is still caught on the posterior at that scale
    w = torch.zeros(1000, dtype=T)
    w[995:] = 1 / math.sqrt(5)
    bad = Gaussian(torch.zeros(1000, dtype=T), k - 1e-3 * torch.outer(w, w)).condition_linear(
        LinearEquation.observe(idx, y, 1000))
    with pytest.raises(cp.ValidationError, match="not positive semi-definite"):
        _ = bad.cov


def test_no_observations_leave_a_large_prior_as_it_was():
    # conditioning on zero equations read no rows; the pending check raised a raw IndexError
    k = _big()
    prior = Gaussian(torch.linspace(-1, 1, 300, dtype=T), k)
    post = prior.condition_linear(LinearEquation.observe(torch.tensor([], dtype=torch.long), [],
                                                         300))
    torch.testing.assert_close(post.mean, prior.mean, atol=0, rtol=0)
    torch.testing.assert_close(post.variance, k.diagonal(), atol=0, rtol=0)


def test_a_large_prior_with_unequal_variances_passes_the_entrywise_bound():
    # variances from 0.01 to 100: the row-wise shortcut of the |Q_ij|^2 <= Q_ii Q_jj check
    # fails, the entrywise test runs, finds no violation, and the posterior is the unvalidated one
    scale = torch.logspace(-1, 1, 300, dtype=T)
    k = scale[:, None] * _big() * scale[None, :]
    eq = LinearEquation.observe([3, 150, 299], [0.2, -1.0, 5.0], 300)
    post = Gaussian(torch.zeros(300, dtype=T), k).condition_linear(eq)
    ref = Gaussian(torch.zeros(300, dtype=T), k, validate=False).condition_linear(eq)
    torch.testing.assert_close(post.mean, ref.mean, atol=0, rtol=0)
    torch.testing.assert_close(post.variance, ref.variance, atol=0, rtol=0)
    bad = k.clone()
    bad[150, 10] = bad[10, 150] = 1.01 * math.sqrt(k[150, 150] * k[10, 10])
    with pytest.raises(cp.ValidationError, match=r"sqrt\(Q_ii Q_jj\)"):
        Gaussian(torch.zeros(300, dtype=T), bad).condition_linear(eq)


# The modelling language -------------------------------------------------------------------------
def _in_model(build):
    def run():
        from condprob.dsl import Model
        with Model() as m:
            return build(m)
    return run


def _dsl_cases():
    from condprob.dsl import bernoulli, categorical, condition, infer, mvnormal, normal, stack
    return {
        "normal mean NaN": (_in_model(lambda m: normal(NAN)), "non-finite"),
        "normal std negative": (_in_model(lambda m: normal(0.0, -1.0)), "non-negative"),
        "normal shape negative": (_in_model(lambda m: normal(shape=(-1,))), "non-negative"),
        "mvnormal not PSD": (_in_model(lambda m: mvnormal([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])),
                             "positive semi-definite"),
        "mvnormal mean shape": (_in_model(lambda m: mvnormal([0.0, 0.0, 0.0], torch.eye(2))),
                                "do not broadcast"),
        "condition on inf": (_in_model(lambda m: condition(normal() == INF)), "non-finite"),
        "condition shapes": (_in_model(lambda m: condition(normal(shape=(2,)) == torch.zeros(3))),
                             "do not broadcast"),
        "product with NaN": (_in_model(lambda m: normal() * NAN), "non-finite"),
        "matrix shapes": (_in_model(lambda m: torch.ones(3, 3) @ normal(shape=(2,))), "@"),
        "index out of range": (_in_model(lambda m: normal(shape=(2,))[5]), "out of bounds"),
        "stack nothing": (_in_model(lambda m: stack([])), "at least one"),
        "contradiction": (_in_model(lambda m: (condition(normal(name="z") == 1),
                                               condition(m.posterior(0.0).mean.sum() == 1))),
                          "probability zero"),
        "bernoulli 1.5": (lambda: infer(lambda: bernoulli(1.5)), "non-negative and sum to 1"),
        "categorical NaN": (lambda: infer(lambda: categorical([NAN, 1.0])), "sum to 1"),
        "categorical empty": (lambda: infer(lambda: categorical([])), "at least one"),
    }


@pytest.mark.parametrize("case", list(_dsl_cases()))
def test_bad_dsl_input_gives_a_house_error(case):
    build, message = _dsl_cases()[case]
    with pytest.raises(cp.CondprobError, match=message):
        build()
