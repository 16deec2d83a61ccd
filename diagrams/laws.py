"""Random interpretations of diagrams (Hypothesis strategies) and the semantic-equality law.

`interpretations(*diagrams)` draws an `Interpretation` for every box of the given diagrams, with
random states, kernels and predicates from `condprob.laws` (deterministic boxes get random
functions), in float64 or exactly. `law_equal(lhs, rhs, interp)` asserts that two diagrams denote
the same kernel under it, so a structural identity can be checked semantically:

    @given(interpretations(lhs, rhs, exact=True))
    def test_identity(interp):
        law_equal(lhs, rhs, interp)
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from condprob import laws
from condprob.errors import ValidationError
from condprob.finite import Kernel, deterministic
from diagrams.semantics import Interpretation, same_kernel, spaces_of
from diagrams.syntax import Diagram


def interpretations(*diagrams: Diagram, exact: bool = False,
                    zeros: bool = True) -> st.SearchStrategy[Interpretation]:
    """A strategy of random interpretations of every box of the given diagrams.

    Channels get random kernels (`condprob.laws.kernels`, rows with zeros unless zeros=False),
    deterministic boxes random functions, predicates random predicates with values in [0, 1].
    """
    types: dict[str, tuple[Any, Any, str]] = {}
    for d in diagrams:
        for name, sig in spaces_of(d).items():
            if types.setdefault(name, sig) != sig:
                raise ValidationError(f"box name {name!r} has two different types in these diagrams")
    det = frozenset(b.name for d in diagrams for b in d.generators if b.deterministic)
    return _interpretations(tuple(sorted(types.items())), det, exact, zeros)


@st.composite
def _interpretations(draw: st.DrawFn, types: tuple[tuple[str, tuple[Any, Any, str]], ...],
                     det: frozenset[str], exact: bool, zeros: bool) -> Interpretation:
    meaning: dict[str, Any] = {}
    for name, (dom, cod, kind) in types:
        if kind == "predicate":
            meaning[name] = draw(laws.predicates(dom, exact=exact))
        elif name in det:
            image = draw(st.lists(st.sampled_from(cod.labels), min_size=dom.size,
                                  max_size=dom.size))
            table = dict(zip(dom.labels, image, strict=True))
            meaning[name] = deterministic(table.__getitem__, dom, cod, exact=exact)
        else:
            meaning[name] = draw(laws.kernels(dom, cod, exact=exact, zeros=zeros))
    return Interpretation(meaning, exact=exact)


def law_equal(lhs: Diagram, rhs: Diagram, interp: Interpretation, atol: float = 1e-10) -> None:
    """Assert that lhs and rhs denote the same (unnormalised) kernel under `interp`."""
    a, b = interp.array(lhs), interp.array(rhs)
    ka = Kernel(a, lhs.dom, lhs.cod, validate=False)
    kb = Kernel(b, rhs.dom, rhs.cod, validate=False)
    if not same_kernel(ka, kb, atol):
        raise AssertionError(f"{lhs} and {rhs} differ under {interp}:\n{a}\nvs\n{b}")
