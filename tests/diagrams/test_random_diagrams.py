"""Random diagrams: the normal form is sound (same meaning), both evaluators agree, and structural
equality is invariant under rewiring by the axioms."""

from hypothesis import given
from hypothesis import strategies as st

import condprob as cp
from condprob import FiniteSpace, Unit
from diagrams import Box, Copy, Discard, Id, Predicate, State, Swap
from diagrams.laws import interpretations, law_equal
from diagrams.semantics import same_kernel

X = FiniteSpace(2, name="X")
Y = FiniteSpace(3, name="Y")
GENERATORS = [Box("f", X, Y), Box("g", Y, X @ X), Box("h", X @ Y, Y), State("s", X),
              Box("k", Y, X, deterministic=True), Predicate("p", X)]


def _at(d, i, n, middle):
    """Apply `middle` to factors i..i+n of d's codomain."""
    fs = d.cod.factors
    before = Id(cp.product(*fs[:i])) if i else Id(Unit)
    after = Id(cp.product(*fs[i + n:])) if i + n < len(fs) else Id(Unit)
    return d >> (before @ middle @ after)


@st.composite
def diagrams(draw, predicates=True, max_steps=8):
    d = Id(X @ Y)
    for _ in range(draw(st.integers(1, max_steps))):
        fs = d.cod.factors
        op = draw(st.sampled_from(["box", "box", "copy", "discard", "swap", "state"]))
        if op == "state" or not fs:
            d = d @ State("s", X)
        elif op == "copy" and len(fs) < 4:
            i = draw(st.integers(0, len(fs) - 1))
            d = _at(d, i, 1, Copy(fs[i]))
        elif op == "discard":
            i = draw(st.integers(0, len(fs) - 1))
            d = _at(d, i, 1, Discard(fs[i]))
        elif op == "swap" and len(fs) > 1:
            i = draw(st.integers(0, len(fs) - 2))
            d = _at(d, i, 2, Swap(fs[i], fs[i + 1]))
        else:
            fits = [(g, i) for g in GENERATORS if g.box_dom.factors for i in range(len(fs))
                    if fs[i:i + len(g.box_dom.factors)] == g.box_dom.factors
                    and (predicates or g.kind == "channel")
                    and len(fs) - len(g.box_dom.factors) + len(g.box_cod.factors) <= 4]
            if fits:
                g, i = draw(st.sampled_from(fits))
                d = _at(d, i, len(g.box_dom.factors), g)
    return d


@given(st.data())
def test_normal_form_has_the_same_meaning(data):
    d = data.draw(diagrams())
    nf = d.normal_form()
    assert nf == d and nf.normal_form() == nf
    assert len(nf.boxes) <= len(d.boxes)
    law_equal(d, nf, data.draw(interpretations(d, nf, exact=True)))


@given(st.data())
def test_contraction_agrees_with_composition(data):
    d = data.draw(diagrams(predicates=False))
    interp = data.draw(interpretations(d, exact=False))
    assert same_kernel(interp(d, method="contract"), interp(d, method="compose"), atol=1e-12)


@given(st.data())
def test_equality_is_invariant_under_axioms(data):
    d = data.draw(diagrams())
    dom, cod = d.dom, d.cod
    rewired = (Copy(dom) >> (Id(dom) @ Discard(dom))) >> d >> Swap(cod, Unit)
    dead = Box("f", X, Y) >> Discard(Y)
    assert rewired == d
    assert (d @ dead) == (d @ Discard(X))
    assert hash(rewired) == hash(d)


@given(diagrams())
def test_layout_of_random_diagrams(d):
    """Every wire use is drawn, nodes never overlap, outputs keep their order."""
    from diagrams.drawing import layout

    lay = layout(d)
    uses = sum(len(ins) for _, ins, _ in d.boxes) + len(d.outputs)
    assert sum(len(n.preds) for n in lay.nodes if n.kind != "wire") == uses
    for layer in {n.layer for n in lay.nodes}:
        row = sorted((n for n in lay.nodes if n.layer == layer), key=lambda n: n.x)
        for a, b in zip(row, row[1:], strict=False):
            assert b.x - a.x >= (a.width + b.width) / 2 - 1e-9
    xs = [n.x for n in lay.outputs]
    assert xs == sorted(xs)
    assert all(y1 > y0 for _, y0, _, y1, _ in lay.segments)
