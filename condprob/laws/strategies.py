"""Hypothesis strategies for finite spaces, states, kernels and predicates.

Probabilities are drawn as small integer weights normalised to sum 1, so the same draw serves the
float backend (float64) and the exact backend (Fractions), and zeros appear often.
"""

from __future__ import annotations

from fractions import Fraction

import torch
from hypothesis import strategies as st

from condprob.errors import ValidationError
from condprob.finite import Kernel, Predicate, State
from condprob.spaces import FiniteSpace, Space, product


@st.composite
def finite_spaces(draw: st.DrawFn, min_size: int = 1, max_size: int = 4,
                  name: str | None = None) -> FiniteSpace:
    """An atomic finite space with string labels."""
    n = draw(st.integers(min_size, max_size))
    return FiniteSpace([f"{name or 'x'}{i}" for i in range(n)], name=name)


@st.composite
def product_spaces(draw: st.DrawFn, factors: int = 2, max_size: int = 3) -> Space:
    """A product of `factors` named finite spaces."""
    names = [chr(ord("A") + i) for i in range(factors)]
    return product(*(draw(finite_spaces(max_size=max_size, name=n)) for n in names))


def _finite(space: Space, what: str) -> Space:
    if not isinstance(space, Space) or not space.is_finite:
        raise TypeError(f"{what} must be a finite condprob Space, got {space!r}")
    return space


def _normalise(weights: list[int], exact: bool) -> list:
    total = sum(weights)
    if exact:
        return [Fraction(w, total) for w in weights]
    return [w / total for w in weights]


@st.composite
def distributions(draw: st.DrawFn, n: int, exact: bool = False, zeros: bool = True) -> list:
    """A probability vector of length n (integer weights in 0..9, not all zero)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValidationError(f"distributions need a length n >= 1, got {n!r}")
    low = 0 if zeros else 1
    weights = draw(st.lists(st.integers(low, 9), min_size=n, max_size=n).filter(any))
    return _normalise(weights, exact)


@st.composite
def states(draw: st.DrawFn, space: Space, exact: bool = False, zeros: bool = True) -> State:
    """A state on `space`, possibly with zeros."""
    probs = draw(distributions(_finite(space, "space").size, exact, zeros))
    return State(probs, space, exact=exact, dtype=None if exact else torch.float64)


@st.composite
def kernels(draw: st.DrawFn, dom: Space, cod: Space, exact: bool = False,
            zeros: bool = True) -> Kernel:
    """A kernel dom -> cod, rows possibly with zeros."""
    dom, cod = _finite(dom, "dom"), _finite(cod, "cod")
    rows = [draw(distributions(cod.size, exact, zeros)) for _ in range(dom.size)]
    return Kernel(rows, dom, cod, exact=exact)


@st.composite
def predicates(draw: st.DrawFn, space: Space, exact: bool = False, sharp: bool = False) -> Predicate:
    """A predicate with values in {0, 1/4, ..., 1} (or {0, 1} when sharp)."""
    top = 1 if sharp else 4
    n = _finite(space, "space").size
    vals = draw(st.lists(st.integers(0, top), min_size=n, max_size=n))
    vals = [Fraction(v, top) if exact else v / top for v in vals]
    return Predicate(vals, space, name="p", exact=exact)
