"""Syntax: typing of composition and tensor, generators, and every error path."""

import pytest

from condprob import Euclidean, SpaceMismatchError, Unit, ValidationError
from diagrams import Box, Copy, Diagram, Discard, Id, Permute, Predicate, State, Swap


def test_types_of_composites(spaces):
    X, Y, Z = spaces
    f, g = Box("f", X, Y), Box("g", Y, Z)
    assert (f >> g).dom == X and (f >> g).cod == Z
    assert (f @ g).dom == X @ Y and (f @ g).cod == Y @ Z
    assert Copy(X).cod == X @ X and Copy(X, 3).cod == X @ X @ X
    assert Discard(X).cod == Unit and Id().dom == Unit
    assert Swap(X, Y).cod == Y @ X
    assert Permute(X @ Y @ Z, [2, 0, 1]).cod == Z @ X @ Y
    assert State("s", X).dom == Unit and Predicate("p", X).cod == Unit
    assert (f >> g).box_names == ("f", "g")
    assert not (State("s", X) >> Predicate("p", X)).is_causal


def test_copy_of_product_copies_each_factor(spaces):
    X, Y, _ = spaces
    assert Copy(X @ Y).cod == X @ Y @ X @ Y


def test_euclidean_wires(spaces):
    R = Euclidean(2, name="R")
    f = Box("f", R, R)
    assert (f >> f).cod == R


def test_composition_mismatch_names_the_boxes(spaces):
    X, Y, Z = spaces
    f, g = Box("f", X, Y), Box("g", Z, X)
    with pytest.raises(SpaceMismatchError, match=r"diagram \[f\] >> diagram \[g\]"):
        f >> g
    with pytest.raises(SpaceMismatchError, match="a wiring"):
        Id(X) >> g


def test_operators_reject_other_objects(spaces):
    X, Y, _ = spaces
    f = Box("f", X, Y)
    with pytest.raises(TypeError):
        f >> 3
    with pytest.raises(TypeError):
        f @ "g"
    with pytest.raises(TypeError, match="compose"):
        f.then(3)
    with pytest.raises(TypeError, match="tensor"):
        f.tensor(3)


@pytest.mark.parametrize("make, message", [
    (lambda X: Box("", X, X), "non-empty str name"),
    (lambda X: Box(3, X, X), "non-empty str name"),
    (lambda X: Box("f", "X", X), "domain of box 'f'"),
    (lambda X: Box("f", X, 2), "codomain of box 'f'"),
    (lambda X: Box("f", X, X, kind="effect"), "kind must be"),
    (lambda X: Box("p", X, X, kind="predicate"), "unit codomain"),
    (lambda X: Box("p", X, Unit, kind="predicate", deterministic=True), "cannot be deterministic"),
    (lambda X: Copy(X, -1), "n >= 0"),
    (lambda X: Copy(X, True), "n >= 0"),
    (lambda X: Permute(X @ X, [0, 0]), "not a permutation"),
    (lambda X: Id("X"), "Id's space"),
])
def test_bad_generators(spaces, make, message):
    with pytest.raises(ValidationError, match=message):
        make(spaces[0])


def test_repr(spaces):
    X, Y, _ = spaces
    assert "f" in repr(Box("f", X, Y) >> Discard(Y))
    assert "predicate" in repr(Predicate("p", X))
    assert "deterministic" in repr(Box("h", X, Y, deterministic=True))
    assert isinstance(Box("f", X, Y), Diagram)
