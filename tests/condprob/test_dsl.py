"""The modelling DSL: exact Gaussian conditioning, enumeration, hybrid mixtures, laws, errors."""

import math
from fractions import Fraction as F

import pytest
import torch
from hypothesis import given

import condprob as cp
from condprob.dsl import (
    Mixture,
    Model,
    NonAffineError,
    bernoulli,
    categorical,
    condition,
    infer,
    mvnormal,
    normal,
    stack,
)
from condprob.laws import gaussian as glaws

T = torch.float64


def test_x_equals_y():
    with Model() as m:
        x, y = normal(name="x"), normal(name="y")
        condition(x == y)
        post = m.posterior(x=x, y=y)
    torch.testing.assert_close(post.cov, torch.full((2, 2), 0.5, dtype=T), atol=1e-15, rtol=0)
    assert post.space == cp.Euclidean(1, "x") @ cp.Euclidean(1, "y")


def test_affine_arithmetic_and_vectors():
    with Model() as m:
        x = normal(shape=(3,))
        a = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0]], dtype=T)
        y = a @ x + torch.ones(2, dtype=T)
        z = stack([x[0] - 1, 2 * x[2], torch.tensor(1.0, dtype=T) + x[1] / 2])
        w = mvnormal(torch.zeros(2, dtype=T), [[1.0, 1.0], [1.0, 1.0]])
        post = m.posterior(y, z, w)
    torch.testing.assert_close(post.mean, torch.tensor([1, 1, -1, 0, 1, 0, 0], dtype=T))
    torch.testing.assert_close(post.cov[:2, :2], a @ a.T)
    torch.testing.assert_close(post.cov[2:5, 2:5], torch.diag(torch.tensor([1, 4, 0.25],
                                                                          dtype=T)))
    assert post.cov[5:, 5:].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_regression_posterior_matches_closed_form():
    xs = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=T)
    ys = torch.tensor([0.9, 3.1, 4.8, 7.2], dtype=T)
    with Model() as m:
        w = normal(0.0, 2.0, shape=(2,))
        condition(w[0] + w[1] * xs + normal(0.0, 0.5, shape=(4,)) == ys)
        post = m.posterior(w)
    phi = torch.stack([torch.ones(4, dtype=T), xs], 1)
    prec = phi.T @ phi / 0.25 + torch.eye(2, dtype=T) / 4
    cov = torch.linalg.inv(prec)
    torch.testing.assert_close(post.cov, cov, atol=1e-12, rtol=0)
    torch.testing.assert_close(post.mean, cov @ phi.T @ ys / 0.25, atol=1e-12, rtol=0)


def test_discrete_enumeration_is_exact():
    def burglary():
        b = bernoulli(F(1, 100))
        e = bernoulli(F(1, 50))
        alarm = bernoulli(F(95, 100) if b and e else F(94, 100) if b else F(29, 100) if e
                          else F(1, 1000))
        condition(alarm == 1)
        return "burglary" if b else "none"
    post = infer(burglary)
    pb = F(1, 100) * (F(1, 50) * F(95, 100) + F(49, 50) * F(94, 100))
    pn = F(99, 100) * (F(1, 50) * F(29, 100) + F(49, 50) * F(1, 1000))
    assert post.as_dict()["burglary"] == pb / (pb + pn)


def test_categorical_labels_and_functions():
    def prog():
        c = categorical({"a": F(1, 2), "b": F(1, 3), "c": F(1, 6)})
        d = categorical([F(1, 2), F(1, 2)], labels=[1, 2])
        condition(c != "a")
        return (c, d * 2)
    post = infer(prog)
    assert post.as_dict()[("b", 4)] == F(1, 3)
    assert post.as_dict()[("c", 2)] == F(1, 6)


def test_hybrid_mixture_weights_exact():
    def prog():
        b = bernoulli(0.3)
        x = normal(3.0 if b else 0.0, 1.0)
        condition(x + normal(0.0, 0.5) == 2.5)
        return {"b": b, "x": x}
    post = infer(prog)
    assert isinstance(post, Mixture)

    def lik(mu):
        return math.exp(-0.5 * (2.5 - mu) ** 2 / 1.25)
    p1 = 0.3 * lik(3.0) / (0.3 * lik(3.0) + 0.7 * lik(0.0))
    assert math.isclose(float(post.prob(1)), p1, abs_tol=1e-14)
    comp = post.given(1)
    assert math.isclose(float(comp.mean), 3.0 + 1 / 1.25 * (2.5 - 3.0), abs_tol=1e-14)
    assert math.isclose(float(comp.cov), 1 - 1 / 1.25, abs_tol=1e-14)
    m = p1 * (3.0 - 0.4) + (1 - p1) * (0 + 2.0)
    assert math.isclose(float(post.mean), m, abs_tol=1e-13)
    labels, draws = post.sample(4000, generator=cp.rng(0))
    assert abs(sum(labels) / 4000 - p1) < 4 * math.sqrt(p1 * (1 - p1) / 4000)
    assert draws.shape == (4000, 1)
    assert torch.isfinite(post.log_prob(torch.tensor([[2.0]], dtype=T))).all()
    assert post.discrete().as_dict()[1] == pytest.approx(p1, abs=1e-14)
    assert isinstance(post.marginal("x"), Mixture)


def test_hybrid_degenerate_branch_dominates():
    def prog():
        b = bernoulli(F(1, 2))
        x = 0.0 * normal() if b else normal()
        condition(x == 0.0)
        return b
    assert infer(prog).as_dict() == {1: 1}


def test_inconsistent_branch_drops_and_total_failure_raises():
    def prog(target):
        b = bernoulli(F(1, 2))
        x = normal() * 0 + (1.0 if b else 0.0)
        condition(x == target)
        return b
    assert infer(prog, 1.0).as_dict() == {1: 1}
    with pytest.raises(cp.ConditioningError, match="== 2.0"):
        infer(prog, 2.0)

    def impossible():
        condition(bernoulli(F(1, 2)) == 2)
        return 0
    with pytest.raises(cp.ConditioningError, match="every branch"):
        infer(impossible)


def test_gaussian_only_program_returns_gaussian():
    def prog():
        x = normal(1.0, 2.0)
        return x
    g = infer(prog)
    assert isinstance(g, cp.Gaussian) and g.cov.tolist() == [[4.0]]


def test_errors():
    with Model():
        x, y = normal(name="x"), normal(name="y")
        with pytest.raises(NonAffineError, match="x \\* y"):
            x * y
        with pytest.raises(NonAffineError, match="exp\\(x\\)"):
            torch.exp(x)
        with pytest.raises(NonAffineError, match="power"):
            x**2
        with pytest.raises(NonAffineError, match="division by x"):
            1 / x
        with pytest.raises(NonAffineError, match="x < 1"):
            x < 1  # noqa: B015
        with pytest.raises(TypeError, match="condition\\(x == y\\) for equations"):
            bool(x)
        with pytest.raises(TypeError, match="pass it to condition"):
            if x == y:
                pass
        with pytest.raises(TypeError, match="infer"):
            bernoulli(0.5)
        with pytest.raises(TypeError, match="needs an equation"):
            condition(x)
        with pytest.raises(TypeError, match="takes x == y"):
            condition("yes")
        with pytest.raises(cp.ConditioningError, match="false discrete"):
            condition(False)
        with pytest.raises(cp.ValidationError, match="non-negative"):
            normal(0.0, -1.0)
        with pytest.raises(NonAffineError, match="random scale"):
            normal(0.0, x)
        with pytest.raises(cp.ConditioningError, match="inconsistent"):
            condition(x - x == 1)
    with pytest.raises(RuntimeError, match="no model is active"):
        normal()

    def bad_probs():
        return bernoulli(F(3, 2))
    with pytest.raises(cp.ValidationError, match="sum to"):
        infer(bad_probs)


@given(glaws.affine_problems())
def test_laws_exchange_forms_substitution(spec):
    glaws.law_conditions_commute(spec)
    glaws.law_draws_commute(spec)
    glaws.law_condition_forms(spec)
    glaws.law_substitution(spec)


@given(glaws.affine_problems())
def test_laws_fresh_drop_repeat_failure(spec):
    glaws.law_fresh_variable(spec)
    glaws.law_drop_unused_draw(spec)
    glaws.law_repeat_condition(spec)
    glaws.law_failure_absorbs(spec)


def test_mixture_and_enumeration_errors():
    g = cp.Gaussian([0.0], [[1.0]])
    with pytest.raises(cp.ValidationError, match="at least one component"):
        Mixture([])
    with pytest.raises(cp.ValidationError, match="negative weight"):
        Mixture([("a", -0.5, g)])
    with pytest.raises(cp.ValidationError, match="is not a Gaussian on"):
        Mixture([("a", 0.5, g), ("b", 0.5, cp.Gaussian([0.0, 0.0], torch.eye(2)))])
    mix = Mixture([("a", F(1, 4), g), ("b", F(3, 4), cp.Gaussian([2.0], [[1.0]]))])
    with pytest.raises(cp.ConditioningError, match="label event 'c'"):
        mix.given("c")
    assert mix.prob(lambda lab: lab in "ab") == 1

    def many():
        return sum(bernoulli(F(1, 2)) for _ in range(4))
    with pytest.raises(cp.ValidationError, match="max_branches=8"):
        infer(many, max_branches=8)

    def mismatch():
        return categorical([F(1, 2), F(1, 2)], labels=["a"])
    with pytest.raises(cp.ValidationError, match="2 probabilities but 1 labels"):
        infer(mismatch)

    def no_gauss_in_branch():
        return normal() if bernoulli(F(1, 2)) else 1.0
    with pytest.raises(cp.ValidationError, match="every branch"):
        infer(no_gauss_in_branch)


def test_posterior_of_constants_and_unused_model():
    with Model() as m:
        post = m.posterior(torch.tensor([1.0, 2.0], dtype=T))
    assert post.mean.tolist() == [1.0, 2.0] and post.cov.abs().max() == 0
    with Model() as m:
        with pytest.raises(cp.ValidationError, match="at least one variable"):
            m.posterior()
        condition(normal() * 0 == 0)


def test_mixture_half_space_probability():
    mix = Mixture([("a", F(1, 4), cp.Gaussian([0.0], [[1.0]])),
                   ("b", F(3, 4), cp.Gaussian([2.0], [[4.0]]))])
    expect = 0.25 * 0.5 + 0.75 * 0.5 * (1 + math.erf(-2 / 2 / math.sqrt(2)))
    assert math.isclose(float(mix.prob_below([1.0], 0.0)), expect, abs_tol=1e-14)


def test_symbolic_probabilities():
    import sympy

    p = sympy.Symbol("p", positive=True)

    def prog():
        a = bernoulli(p)
        b = bernoulli(sympy.Rational(1, 2))
        condition(a or b)
        return a
    post = infer(prog)
    assert sympy.simplify(post.as_dict()[1] - 2 * p / (1 + p)) == 0

    def bad():
        return bernoulli(sympy.Rational(3, 2))
    with pytest.raises(cp.ValidationError, match="non-negative and sum to 1"):
        infer(bad)


def test_variables_of_another_model_are_refused():
    with Model():
        x = normal(name="x")
    with Model() as m:
        y = normal(name="y")
        with pytest.raises(cp.ValidationError, match="x belongs to another model"):
            m.posterior(x)
        with pytest.raises(cp.ValidationError, match=r"\(x - 1.0\) belongs to another model"):
            condition(x == 1.0)
        with pytest.raises(cp.ValidationError, match="different models"):
            x + y


def test_torch_functions_on_variables():
    t = torch.tensor([1.0, 2.0], dtype=T)
    with Model() as m:
        x = normal(shape=(2,), name="x")
        outs = [t + x, t - x, t * x, torch.add(x, t), torch.sub(t, x),
                torch.matmul(torch.eye(2, dtype=T), x), torch.cat([x, t]), torch.stack([x, t])]
        post = m.posterior(*outs)
        with pytest.raises(NonAffineError, match="division by x"):
            t / x
    expect = torch.cat([t, t, 0 * t, t, t, 0 * t, 0 * t, t, 0 * t, t])
    torch.testing.assert_close(post.mean, expect)
    assert post.variance[4:6].tolist() == [1.0, 4.0]  # t * x
