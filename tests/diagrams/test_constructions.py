"""The Cho-Jacobs constructions: both sides of each defining equation agree, exactly and in
float64, on fixed examples and on random kernels; wrong meanings fail the same check."""

from fractions import Fraction as F

import pytest
from hypothesis import given
from hypothesis import strategies as st

import condprob as cp
from condprob import laws
from diagrams import (
    Equation,
    bayesian_inversion,
    disintegration,
    exact_conditioning,
    jeffrey_update,
    pearl_update,
)


@pytest.fixture
def model(spaces):
    X, Y, _ = spaces
    sigma = cp.State([F(1, 3), F(2, 3)], X)
    c = cp.Kernel([[F(1, 2), F(1, 4), F(1, 4)], [F(0), F(1, 3), F(2, 3)]], X, Y)
    tau = cp.State([F(1, 2), F(0), F(1, 2)], Y)
    return sigma, c, tau


def _all(model):
    sigma, c, tau = model
    joint = sigma >> cp.graph(c)
    return [disintegration(joint, 0), disintegration(joint, "Y"), bayesian_inversion(sigma, c),
            pearl_update(sigma, cp.Predicate([F(1), F(1, 2)], sigma.cod)),
            jeffrey_update(sigma, c, tau), exact_conditioning(joint, "Y", 2)]


def test_equations_hold_exactly(model):
    for eq in _all(model):
        assert isinstance(eq, Equation)
        eq.check()
        lhs, rhs = eq.sides()
        assert lhs.exact and rhs.exact
        assert eq.lhs != eq.rhs  # not a structural identity: it needs the computed meaning


def test_equations_hold_in_float(model):
    sigma, c, tau = (m.to_float() for m in model)
    joint = sigma >> cp.graph(c)
    for eq in (disintegration(joint, 1), bayesian_inversion(sigma, c),
               jeffrey_update(sigma, c, tau), exact_conditioning(joint, 1, 1)):
        assert eq.holds(atol=1e-12)


def test_exact_conditioning_agrees_with_the_core(model):
    sigma, c, _ = model
    joint = sigma >> cp.graph(c)
    lhs, _ = exact_conditioning(joint, "Y", 1).sides()
    core = cp.condition(joint, {"Y": 1}).marginal("X")
    assert cp.laws.assert_same(lhs, core) is None


def test_power_wrong_meanings_fail(model):
    sigma, c, tau = model
    eq = bayesian_inversion(sigma, c)
    wrong = Equation(eq.name, eq.lhs, eq.rhs, eq.interpretation.extend({"d": c.inverse(
        cp.State([F(1, 2), F(1, 2)], sigma.cod))}))
    assert not wrong.holds()
    with pytest.raises(AssertionError, match="Bayesian inversion fails"):
        wrong.check()
    j = jeffrey_update(sigma, c, tau)
    swapped = Equation(j.name, j.lhs, j.rhs, j.interpretation.extend({"σ'": sigma}))
    assert not swapped.holds()


def test_draw_equation(tmp_path, model):
    eq = _all(model)[2]
    fig = eq.draw(tmp_path / "inv.png", highlight=["d"])
    assert (tmp_path / "inv.png").stat().st_size > 1000 and fig is not None
    assert eq.draw() is not None


def test_errors(model, spaces):
    sigma, c, tau = model
    X, Y, _ = spaces
    joint = sigma >> cp.graph(c)
    with pytest.raises(TypeError, match="condprob.State"):
        disintegration(c)
    with pytest.raises(cp.ValidationError, match="leaves no factor"):
        disintegration(joint, (0, 1))
    with pytest.raises(cp.SpaceMismatchError, match="prior"):
        bayesian_inversion(tau, c)
    with pytest.raises(TypeError, match="Predicate"):
        pearl_update(sigma, "a")
    with pytest.raises(cp.SpaceMismatchError, match="evidence"):
        jeffrey_update(sigma, c, sigma)
    with pytest.raises(cp.ValidationError, match="only factor"):
        exact_conditioning(sigma, 0, "a")
    with pytest.raises(cp.ConditioningError):
        exact_conditioning(cp.State([F(0), F(1)], X) >> cp.graph(c), "Y", 0).check()
    with pytest.raises(cp.ConditioningError):
        pearl_update(sigma, cp.Predicate([0, 0], X))


@given(st.data())
def test_random_kernels(data):
    X = data.draw(laws.finite_spaces(name="X", max_size=3))
    Y = data.draw(laws.finite_spaces(name="Y", max_size=3))
    exact = data.draw(st.booleans())
    sigma = data.draw(laws.states(X, exact=exact))
    c = data.draw(laws.kernels(X, Y, exact=exact))
    tau = data.draw(laws.states(Y, exact=exact))
    joint = sigma >> cp.graph(c)
    for eq in (disintegration(joint, 0), disintegration(joint, 1), bayesian_inversion(sigma, c),
               jeffrey_update(sigma, c, tau)):
        eq.check()
    y = data.draw(st.sampled_from(Y.labels))
    if (sigma >> c).prob(y) != 0:
        exact_conditioning(joint, 1, y).check()
