"""Drawing: SVG and PNG output, deterministic layout, notebook display, error paths."""

import pytest
from matplotlib.figure import Figure

from condprob import FiniteSpace
from diagrams import Box, Copy, Discard, Id, Predicate, State, Swap, draw, figure, to_png, to_svg
from diagrams.drawing import _glyphs, layout, save
from diagrams.syntax import Junction


@pytest.fixture
def diagram(spaces):
    X, Y, _ = spaces
    return (State("ω", X) >> Copy(X) >> (Box("c", X, Y) @ Id(X))
            >> (Copy(Y) @ Discard(X))
            >> (Predicate("p", Y) @ (Box("h", Y, Y @ Y, deterministic=True) >> (Id(Y) @ Discard(Y)))))


def test_svg_is_reproducible(diagram):
    a, b = to_svg(diagram), to_svg(diagram)
    assert a.startswith("<?xml") and "<svg" in a
    assert a == b
    assert diagram._repr_svg_() == a


def test_png_bytes(diagram):
    png = to_png(diagram)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert diagram._repr_png_() == png


def test_layout_is_deterministic_and_ordered(diagram):
    l1, l2 = layout(diagram), layout(diagram)
    assert [(n.kind, n.layer, n.x) for n in l1.nodes] == [(n.kind, n.layer, n.x) for n in l2.nodes]
    assert len(l1.copies) == 1 and len(l1.discards) == 1
    xs = [n.x for n in l1.outputs]
    assert xs == sorted(xs)
    for layer in {n.layer for n in l1.nodes}:
        row = sorted((n for n in l1.nodes if n.layer == layer), key=lambda n: n.x)
        for a, b in zip(row, row[1:], strict=False):
            assert b.x - a.x >= (a.width + b.width) / 2 - 1e-9  # no overlaps


def test_long_wires_get_routed_through_each_layer(spaces):
    X, _, _ = spaces
    f = Box("f", X, X)
    d = Copy(X) >> ((f >> f >> f) @ Id(X))
    lay = layout(d)
    assert sum(n.kind == "wire" for n in lay.nodes) == 3


def test_draw_to_files(tmp_path, diagram):
    for suffix in ("svg", "png", "pdf"):
        fig = draw(diagram, tmp_path / f"d.{suffix}", highlight=["c"], wire_labels=True,
                   title="t")
        assert isinstance(fig, Figure) and (tmp_path / f"d.{suffix}").stat().st_size > 500
    with pytest.raises(ValueError, match="format"):
        draw(diagram, tmp_path / "d.gif")


def test_equations_and_highlight_change_the_picture(diagram, spaces):
    X = spaces[0]
    fig = figure(diagram, "=", Id(X) @ Id(X))
    assert isinstance(fig, Figure)
    assert to_svg(diagram, highlight=["c"]) != to_svg(diagram)
    assert to_svg(fig) == to_svg(figure(diagram, "=", Id(X) @ Id(X)))


def test_figure_errors(diagram):
    with pytest.raises(ValueError, match="at least one"):
        figure()
    with pytest.raises(TypeError, match="draws diagrams and strings"):
        figure(diagram, 3)
    with pytest.raises(ValueError, match="format"):
        save(figure(diagram), "x.txt")


def test_empty_and_unlabelled_wires():
    anon = FiniteSpace(2)
    assert "<svg" in to_svg(Id(anon))
    assert "<svg" in to_svg(Id())


def _junctions(d):
    return sorted(b.kind for b, _, _ in d.built.boxes if isinstance(b, Junction))


def test_a_diagram_is_drawn_as_built_unless_the_normal_form_is_asked(spaces):
    X, Y, _ = spaces
    counit = Copy(X) >> (Discard(X) @ Id(X))
    assert counit == Id(X) and counit.boxes == ()  # the term graph is the bare wire
    assert _junctions(counit) == ["copy", "discard"]
    lay = layout(counit.built)
    assert sum(isinstance(n.box, Junction) for n in lay.nodes) == 2
    assert to_svg(counit) != to_svg(Id(X))
    assert to_svg(counit, normal_form=True) == to_svg(Id(X))
    causal = Box("f", X, Y) >> Discard(Y)
    assert _junctions(causal) == ["discard"]
    assert to_svg(causal) != to_svg(Discard(X))
    assert to_svg(causal, normal_form=True) == to_svg(Discard(X), normal_form=True)
    plain = Box("f", X, Y) >> Box("g", Y, X)
    one = Copy(X, 1)
    assert plain.built is plain and one.built is one


def test_the_built_form_keeps_the_interface_and_every_box(spaces, diagram):
    X, Y, _ = spaces
    for d in (diagram, Copy(X @ Y, 3), (Copy(X) @ Id(Y)) >> (Discard(X) @ Swap(X, Y))):
        built = d.built
        assert (built.dom, built.cod) == (d.dom, d.cod)
        assert [b.name for b, _, _ in built.boxes if isinstance(b, Box)] == list(d.box_names)
    assert _junctions(Copy(X @ Y, 3)) == ["copy", "copy"]


def test_titles_fit_in_the_figure(spaces):
    X, _, _ = spaces
    title = "σ >> graph(f): a title much wider than the diagram it names"
    fig = figure(Id(X), title=title, scale=0.7)
    left, right = fig.axes[0].get_xlim()
    assert right - left >= _glyphs(title)[1].width * 11 / 72 / 0.7
    assert fig.get_size_inches()[0] >= (right - left) * 0.7 - 1e-9


def test_glyph_extents_equal_matplotlibs_exactly():
    import numpy as np
    from matplotlib.path import Path as MplPath
    from matplotlib.text import TextPath

    from diagrams.drawing import _ink_extents

    paths = [TextPath((0.0, 0.0), text, size=1.0)
             for text in ("ω", "p17", "Bayes >> <id, c>", "gQ@&%", "Ωμ∑", "0123456789")]
    # cubic and quadratic curves whose extrema lie inside the segments, lines, and a close
    paths.append(MplPath([(0, 0), (1, 3), (2, -3), (3, 0), (4, 2), (5, 0), (5, -1), (0, 0)],
                         [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4,
                          MplPath.CURVE3, MplPath.CURVE3, MplPath.LINETO, MplPath.CLOSEPOLY]))
    for p in paths:
        assert np.array_equal(_ink_extents(p).extents, p.get_extents().extents)
