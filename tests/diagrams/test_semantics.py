"""Semantics: evaluation against direct kernel computation, exact and float, and error paths."""

from fractions import Fraction as F

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import condprob as cp
from condprob import laws
from diagrams import Box, Copy, Discard, Id, Interpretation, Predicate, State, Swap, evaluate
from diagrams.laws import interpretations, law_equal
from diagrams.semantics import same_kernel, spaces_of


@pytest.fixture
def model(spaces):
    X, Y, Z = spaces
    sigma = cp.State([F(1, 3), F(2, 3)], X)
    c = cp.Kernel([[F(1, 2), F(1, 4), F(1, 4)], [F(0), F(1, 3), F(2, 3)]], X, Y)
    d = cp.Kernel([[F(1), F(0)], [F(1, 5), F(4, 5)], [F(1, 2), F(1, 2)]], Y, Z)
    p = cp.Predicate([F(1), F(0), F(1, 2)], Y, name="p")
    return sigma, c, d, p


def _interp(model):
    sigma, c, d, p = model
    return Interpretation({"s": sigma, "c": c, "d": d, "p": p})


def test_evaluation_matches_core_exactly(spaces, model):
    X, Y, Z = spaces
    sigma, c, d, p = model
    I = _interp(model)
    s, f, g = State("s", X), Box("c", X, Y), Box("d", Y, Z)
    cases = [
        (s >> f >> g, sigma >> c >> d),
        (s >> Copy(X) >> (Id(X) @ f), sigma >> cp.graph(c)),
        ((f @ g), c @ d),
        (Copy(X) >> (f @ f), cp.copy(X) >> (c @ c)),
        (Swap(X, Y) >> (g @ f), cp.swap(X, Y) >> (d @ c)),
        ((f @ Id(X)) >> (g @ Discard(X)), (c >> d) @ cp.discard(X)),
        (Copy(X) >> (Id(X) @ f) >> (Copy(X) @ g), cp.graph(c) >> (cp.copy(X) @ d)),
        (Id(X), cp.identity(X)),
        (Discard(X), cp.discard(X)),
    ]
    for diagram, kernel in cases:
        got = I(diagram)
        assert got.exact and got.dom == kernel.dom and got.cod == kernel.cod
        assert same_kernel(got, kernel), diagram


def test_state_results_are_states_and_float_backend(spaces, model):
    X, Y, _ = spaces
    sigma, c, _, _ = model
    I = Interpretation({"s": sigma.to_float(), "c": c.to_float()})
    out = I(State("s", X) >> Box("c", X, Y))
    assert isinstance(out, cp.State) and not out.exact
    assert out.array.dtype == torch.float64
    assert same_kernel(out, (sigma >> c).to_float(), atol=1e-12)
    assert evaluate(State("s", X) >> Box("c", X, Y), {"s": sigma, "c": c}).exact


def test_mixed_backends_are_made_exact(spaces, model):
    X, Y, _ = spaces
    _, c, _, _ = model
    half = cp.State([0.25, 0.75], X)
    out = Interpretation({"s": half, "c": c})(State("s", X) >> Box("c", X, Y))
    assert out.exact and same_kernel(out, cp.State([F(1, 4), F(3, 4)], X) >> c)
    forced = Interpretation({"s": half, "c": c}, exact=False)(State("s", X) >> Box("c", X, Y))
    assert not forced.exact and same_kernel(forced, (half >> c.to_float()))


def test_predicates_give_the_pearl_update(spaces, model):
    X, Y, _ = spaces
    sigma, c, _, p = model
    I = _interp(model)
    d = State("s", X) >> Copy(X) >> (Id(X) @ (Box("c", X, Y) >> Predicate("p", Y)))
    assert same_kernel(I(d), cp.update(sigma, c << p))
    assert I.validity(d)[0] == (sigma >> c).validity(p)


def test_repeated_wire_into_one_box(spaces, model):
    X, _, _ = spaces
    sigma = model[0]
    k = cp.Kernel([[1, 0], [0.5, 0.5], [0.25, 0.75], [0, 1]], X @ X, X)
    I = Interpretation({"s": sigma.to_float(), "k": k})
    out = I(State("s", X) >> Copy(X) >> Box("k", X @ X, X))
    assert same_kernel(out, sigma.to_float() >> cp.copy(X) >> k)


def test_zero_probability_predicate_raises(spaces, model):
    X, Y, _ = spaces
    sigma, c, _, _ = model
    never = cp.Predicate([0, 0, 0], Y, name="never")
    I = Interpretation({"s": sigma, "c": c, "p": never})
    with pytest.raises(cp.ConditioningError, match="p"):
        I(State("s", X) >> Box("c", X, Y) >> Predicate("p", Y))
    with pytest.raises(cp.ConditioningError, match="for inputs"):
        I(Box("c", X, Y) >> Predicate("p", Y))


def test_interpretation_errors(spaces, model):
    X, Y, Z = spaces
    sigma, c, d, p = model
    with pytest.raises(TypeError, match="mapping"):
        Interpretation([("c", c)])
    with pytest.raises(cp.ValidationError, match="box names"):
        Interpretation({3: c})
    with pytest.raises(cp.ValidationError, match="expected a condprob"):
        Interpretation({"c": "kernel"})
    I = Interpretation({"c": c, "p": p, "q": c, "d": d})
    with pytest.raises(cp.ValidationError, match="no meaning for box 'e'"):
        I(Box("e", X, Y))
    with pytest.raises(cp.SpaceMismatchError, match="domain of box 'd'"):
        I(Box("d", X, Z))
    with pytest.raises(cp.SpaceMismatchError, match="codomain of box 'c'"):
        I(Box("c", X, Z))
    with pytest.raises(cp.ValidationError, match="predicate box 'q'"):
        I(Predicate("q", X))
    with pytest.raises(cp.SpaceMismatchError, match="predicate box 'p'"):
        I(Predicate("p", X))
    with pytest.raises(cp.ValidationError, match="channel box 'p'"):
        I(Box("p", Y, Y))
    with pytest.raises(cp.ValidationError, match="declared deterministic"):
        I(Box("c", X, Y, deterministic=True))
    with pytest.raises(TypeError, match="evaluates diagrams"):
        I(c)
    batched = cp.Kernel(torch.full((2, 2, 3), 1 / 3), X, Y)
    with pytest.raises(cp.ValidationError, match="batch shape"):
        Interpretation({"c": batched})(Box("c", X, Y))


def test_contraction_needs_finite_wires():
    R = cp.Euclidean(1, name="R")
    with pytest.raises(TypeError, match="non-finite"):
        Interpretation({}).array(Id(R))
    with pytest.raises(TypeError, match="evaluates diagrams"):
        Interpretation({}).array("d")


def test_reused_box_name_is_refused(spaces):
    X, Y, _ = spaces
    with pytest.raises(cp.ValidationError, match="used for two different boxes"):
        spaces_of(Box("f", X, Y) @ Box("f", Y, X))


def test_equal_and_mismatch(spaces, model):
    X, Y, _ = spaces
    I = _interp(model)
    f = Box("c", X, Y)
    assert I.equal(f >> Discard(Y), Discard(X))
    assert not I.equal(f >> Copy(Y), Copy(X) >> (f @ f))
    with pytest.raises(cp.SpaceMismatchError):
        I.equal(f, Id(X))


# Structural identities hold semantically on random interpretations; non-theorems fail ------------
def _laws(X, Y):
    f, g = Box("f", X, Y), Box("g", Y, X)
    h = Box("h", X, Y, deterministic=True)
    return [
        (f >> Discard(Y), Discard(X)),
        (Copy(X) >> (Copy(X) @ Id(X)), Copy(X) >> (Id(X) @ Copy(X))),
        (Copy(X) >> Swap(X, X), Copy(X)),
        ((f @ g) >> Swap(Y, X), Swap(X, Y) >> (g @ f)),
        (h >> Copy(Y), Copy(X) >> (h @ h)),
        ((f >> g) @ f, (f @ f) >> (g @ Id(Y))),
    ]


@given(st.data())
def test_structural_laws_hold_semantically(data):
    X = data.draw(laws.finite_spaces(name="X", max_size=3))
    Y = data.draw(laws.finite_spaces(name="Y", max_size=3))
    exact = data.draw(st.booleans())
    for lhs, rhs in _laws(X, Y):
        assert lhs == rhs
        interp = data.draw(interpretations(lhs, rhs, exact=exact))
        law_equal(lhs, rhs, interp)


@given(st.data())
def test_structural_equality_implies_semantic_equality_with_predicates(data):
    X = data.draw(laws.finite_spaces(name="X", max_size=3))
    s, f, p = State("s", X), Box("f", X, X), Predicate("p", X)
    lhs = s >> Copy(X) >> (f @ f) >> (p @ p)
    rhs = s >> Copy(X) >> (f @ f) >> Swap(X, X) >> (p @ p)
    assert lhs == rhs
    law_equal(lhs, rhs, data.draw(interpretations(lhs, rhs, exact=True)))


def test_power_copy_naturality_fails_for_a_random_channel(spaces):
    """The same law check rejects f ; copy = copy ; (f @ f) for a non-deterministic f."""
    X, Y, _ = spaces
    f = Box("f", X, Y)
    lhs, rhs = f >> Copy(Y), Copy(X) >> (f @ f)
    assert lhs != rhs
    failures = 0

    @given(interpretations(lhs, rhs, exact=True, zeros=False))
    def check(interp):
        nonlocal failures
        try:
            law_equal(lhs, rhs, interp)
        except AssertionError:
            failures += 1

    check()
    assert failures > 0


def test_interpretations_reject_clashing_names(spaces):
    X, Y, _ = spaces
    with pytest.raises(ValueError, match="two different types"):
        interpretations(Box("f", X, Y), Box("f", Y, Y))


def test_symbolic_interpretation(spaces):
    import sympy

    from diagrams import bayesian_inversion

    X = spaces[0]
    p = sympy.Symbol("p", positive=True)
    s = cp.State([p, 1 - p], X)
    c = cp.Kernel([[sympy.Rational(1, 2), sympy.Rational(1, 2)], [0, 1]], X, X)
    q = cp.Predicate([1, sympy.Rational(1, 3)], X)
    interp = Interpretation({"s": s, "c": c, "q": q})
    pushed = interp(State("s", X) >> Box("c", X, X)).array
    assert sympy.simplify(pushed[0, 0] - p / 2) == 0
    post = interp(State("s", X) >> Copy(X) >> (Id(X) @ (Box("c", X, X) >> Predicate("q", X))))
    assert sympy.simplify(post.array[0, 0] - 2 * p / (p + 1)) == 0
    assert bayesian_inversion(s, c).holds()
