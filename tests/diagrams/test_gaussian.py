"""Gaussian interpretations: diagrams of linear-Gaussian kernels evaluate through the core's
composition, and the Cho-Jacobs constructions hold for them."""

import pytest
import torch

import condprob as cp
from condprob import Euclidean
from condprob.gaussian import Gaussian, LinearGaussian, copy, identity
from diagrams import (
    Box,
    Copy,
    Discard,
    Id,
    Interpretation,
    Predicate,
    State,
    Swap,
    bayesian_inversion,
    disintegration,
    jeffrey_update,
)

R = Euclidean(1, name="x")
S = Euclidean(2, name="y")


@pytest.fixture
def model():
    g = Gaussian([1.0], [[2.0]], R)
    k = LinearGaussian([[1.0], [2.0]], [0.0, 1.0], [[1.0, 0.0], [0.0, 0.5]], R, S)
    tau = Gaussian([0.5, 0.0], [[1.0, 0.2], [0.2, 1.0]], S)
    return g, k, tau


def test_evaluation_matches_core(model):
    g, k, _ = model
    interp = Interpretation({"g": g, "k": k})
    s, f = State("g", R), Box("k", R, S)
    joint = interp(s >> Copy(R) >> (Id(R) @ f))
    assert isinstance(joint, Gaussian)
    assert joint.allclose(g >> (copy(R) >> (identity(R) @ k)))
    assert torch.allclose(joint.cov, torch.tensor([[2.0, 2.0, 4.0], [2.0, 3.0, 4.0],
                                                   [4.0, 4.0, 8.5]], dtype=torch.float64))
    swapped = interp(s >> Copy(R) >> (f @ Id(R)) >> Swap(S, R))
    assert swapped.allclose(joint)
    assert interp.equal(f >> Discard(S), Discard(R))
    assert interp.equal(Copy(R) >> (Discard(R) @ Id(R)), Id(R))
    assert not interp.equal(f >> Copy(S), Copy(R) >> (f @ f))
    assert interp(Id(R)).allclose(identity(R))


def test_constructions_hold_for_gaussians(model):
    g, k, tau = model
    joint = g >> (copy(R) >> (identity(R) @ k))
    for eq in (disintegration(joint, "x"), disintegration(joint, "y"),
               bayesian_inversion(g, k), jeffrey_update(g, k, tau)):
        assert eq.holds(atol=1e-9), eq.name


def test_gaussian_errors(model):
    g, k, _ = model
    X = cp.FiniteSpace(2, name="X")
    interp = Interpretation({"g": g, "k": k, "c": cp.Kernel([[1, 0], [0, 1]], X, X)})
    with pytest.raises(TypeError, match="mixing kinds"):
        interp(Box("k", R, S) @ Box("c", X, X))
    with pytest.raises(TypeError, match="predicates"):
        Interpretation({"p": cp.Predicate([1, 1], X), "g": g})(
            Predicate("p", X) @ State("g", R), method="compose")
    with pytest.raises(ValueError, match="method"):
        interp(Box("k", R, S), method="fast")
    with pytest.raises(TypeError, match="cannot compare"):
        from diagrams.semantics import same_kernel
        same_kernel(g, cp.State([0.5, 0.5], X))
