"""Drawing string diagrams in the Cho-Jacobs style with matplotlib (Agg): SVG and PNG.

Diagrams read bottom to top. Channels are boxes, states are triangles with their outputs on the
flat top side, predicates are upturned triangles with their inputs on the flat bottom side, copying
is a black dot where a wire branches and discarding is the ground symbol. A diagram is drawn as it
was built (`Diagram.built`: every `Copy` and `Discard` it was made from is shown, even where the
laws of copying erase it), or as its normal form when asked (`normal_form=True`). The layout is a layered
(Sugiyama-style) placement computed from the term graph alone, with no randomness, so one diagram
always gives the same picture; SVG output is byte-for-byte reproducible.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle, PathPatch, Polygon, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.text import TextPath
from matplotlib.transforms import Affine2D, Bbox

from condprob.errors import ValidationError
from condprob.spaces import Space
from diagrams.syntax import Box, Diagram, Junction

PORT_GAP = 0.55
NODE_GAP = 0.45
BOX_H = 0.5
LAYER_H = 1.0
HIGHLIGHT = "#ffd966"


@dataclass
class _Node:
    """A node of the layout: a box, a wire passing through a layer, or an interface point."""

    kind: str
    layer: int
    width: float
    box: Box | Junction | None = None
    order: int = 0
    x: float = 0.0
    desired: float | None = None
    n_in: int = 0
    n_out: int = 0
    preds: list[tuple[_Node, int, int, int]] = field(default_factory=list)
    succs: list[tuple[_Node, int, int]] = field(default_factory=list)

    def port_x(self, port: int, n: int) -> float:
        return self.x + (port - (n - 1) / 2) * PORT_GAP

    def in_x(self, port: int) -> float:
        return self.port_x(port, self.n_in)

    def out_x(self, port: int) -> float:
        return self.port_x(port, self.n_out)


def _type_name(space: Space) -> str:
    name = getattr(space, "name", None)
    return name if name else repr(space)


def _box_width(b: Box | Junction) -> float:
    if isinstance(b, Junction):
        return max(b.n, 1) * PORT_GAP
    n = max(len(b.box_dom.factors), len(b.box_cod.factors), 1)
    return max(n * PORT_GAP, 0.14 * len(b.name) + 0.35, 0.6)


@dataclass
class Layout:
    """Positions of every node and the wire segments between them (data units, y upwards)."""

    nodes: list[_Node]
    segments: list[tuple[float, float, float, float, Space]]
    copies: list[tuple[float, float]]
    discards: list[tuple[float, float]]
    top: float
    bottom: float
    inputs: list[_Node]
    outputs: list[_Node]


def layout(d: Diagram) -> Layout:
    """Deterministic layered layout of a diagram."""
    source: dict[int, tuple[_Node, int]] = {}
    layers: dict[int, list[_Node]] = {0: []}
    counter = 0

    def add(node: _Node) -> _Node:
        nonlocal counter
        node.order = counter
        counter += 1
        layers.setdefault(node.layer, []).append(node)
        return node

    for j, w in enumerate(d.inputs):
        n = add(_Node("in", 0, 0.0, n_out=1, desired=j * PORT_GAP * 1.6))
        source[w] = (n, 0)
    uses: dict[int, list[tuple[int, int]]] = {}
    for k, (_, ins, _) in enumerate(d.boxes):
        for port, w in enumerate(ins):
            uses.setdefault(w, []).append((k, port))
    box_layer: list[int] = []
    wire_layer = {w: 0 for w in d.inputs}
    for _, ins, outs in d.boxes:
        lay = 1 + max((wire_layer[w] for w in ins), default=0)
        box_layer.append(lay)
        for w in outs:
            wire_layer[w] = lay
    top = max(box_layer, default=0) + 1
    for k, (_, ins, outs) in enumerate(d.boxes):
        if not ins:  # a state sits just below its first user
            users = [box_layer[c] for w in outs for c, _ in uses.get(w, [])]
            users += [top for w in outs if w in d.outputs]
            box_layer[k] = max(1, min(users, default=2) - 1)
    box_nodes: list[_Node] = []
    for k, (b, ins, outs) in enumerate(d.boxes):
        node = add(_Node("box", box_layer[k], _box_width(b), box=b, n_in=len(ins), n_out=len(outs)))
        box_nodes.append(node)
        for port, w in enumerate(outs):
            source[w] = (node, port)

    # Each use of a wire becomes a chain of edges through dummy nodes, one per layer crossed.
    targets: list[tuple[_Node, int, int]] = [(box_nodes[k], port, w)
                                             for k, (_, ins, _) in enumerate(d.boxes)
                                             for port, w in enumerate(ins)]
    out_nodes = []
    for w in d.outputs:
        n = add(_Node("out", top, 0.0, n_in=1))
        out_nodes.append(n)
        targets.append((n, 0, w))
    n_uses = {w: 0 for w in source}
    for _, _, w in targets:
        n_uses[w] += 1
    for dst, port, w in targets:
        src, sport = source[w]
        prev, pport = src, sport
        for lay in range(src.layer + 1, dst.layer):
            dummy = add(_Node("wire", lay, 0.0, n_in=1, n_out=1))
            dummy.preds.append((prev, pport, 0, w))
            prev.succs.append((dummy, pport, 0))
            prev, pport = dummy, 0
        dst.preds.append((prev, pport, port, w))
        prev.succs.append((dst, pport, port))

    _order(layers, top)
    for lay in range(top + 1):
        _place(layers.get(lay, []), up=True)
    for lay in range(top - 1, 0, -1):
        _place(layers.get(lay, []), up=False)
    for lay in range(1, top + 1):
        _place(layers.get(lay, []), up=True)

    def y_out(n: _Node) -> float:
        return n.layer * LAYER_H + (BOX_H / 2 if n.kind == "box" else 0.0)

    def y_in(n: _Node) -> float:
        return n.layer * LAYER_H - (BOX_H / 2 if n.kind == "box" else 0.0)

    segs: list[tuple[float, float, float, float, Space]] = []
    copies: dict[int, tuple[float, float]] = {}
    discards: list[tuple[float, float]] = []
    for w, (src, sport) in source.items():
        x0, y0 = src.out_x(sport), y_out(src)
        if n_uses[w] == 0:
            discards.append((x0, y0))
        elif n_uses[w] > 1:
            cy = y0 + 0.22 * LAYER_H
            segs.append((x0, y0, x0, cy, d.types[w]))
            copies[w] = (x0, cy)
    nodes = [n for lay in sorted(layers) for n in layers[lay]]
    for node in nodes:
        for prev, pport, port, w in node.preds:
            if prev.kind != "wire" and w in copies:
                x0, y0 = copies[w]
            else:
                x0, y0 = prev.out_x(pport), y_out(prev)
            segs.append((x0, y0, node.in_x(port), y_in(node), d.types[w]))
    bottom = 0.0 if d.inputs else min((n.layer for n in nodes), default=0) * LAYER_H - BOX_H / 2
    return Layout(nodes, segs, list(copies.values()), discards, top * LAYER_H, bottom,
                  [n for n in nodes if n.kind == "in"], out_nodes)


def _order(layers: dict[int, list[_Node]], top: int) -> None:
    """Order each layer by barycentres (sweeps up, down, up); interface layers keep their order."""
    def pos(n: _Node, port: int, count: int) -> float:
        return n.order + (port + 0.5) / max(count, 1)

    for lay in layers.values():
        for i, n in enumerate(lay):
            n.order = i
    for up in (True, False, True):
        for lay in (range(1, top) if up else range(top - 1, 0, -1)):
            nodes = layers.get(lay, [])
            key = {}
            for n in nodes:
                if up:
                    near = [pos(p, pp, p.n_out) for p, pp, _, _ in n.preds]
                else:
                    near = [pos(s, sp, s.n_in) for s, _, sp in n.succs]
                key[id(n)] = sum(near) / len(near) if near else n.order + 0.5
            nodes.sort(key=lambda n: (key[id(n)], n.order))
            for i, n in enumerate(nodes):
                n.order = i


def _place(nodes: list[_Node], up: bool) -> None:
    """Place a layer, in its order, at the barycentre of its inputs (up) or of the users of the
    nodes without inputs (down), packed left to right without overlap."""
    for n in nodes:
        if up and n.preds:
            n.desired = sum(p.out_x(pp) - (port - (n.n_in - 1) / 2) * PORT_GAP
                            for p, pp, port, _ in n.preds) / len(n.preds)
        elif not up and not n.preds and n.succs:
            n.desired = sum(s.in_x(sp) - (pp - (n.n_out - 1) / 2) * PORT_GAP
                            for s, pp, sp in n.succs) / len(n.succs)
        elif n.desired is None:
            n.desired = n.order * (PORT_GAP + NODE_GAP)
    right = -float("inf")
    for n in nodes:
        n.x = max(n.desired, right + NODE_GAP + n.width / 2)  # type: ignore[arg-type]
        right = n.x + n.width / 2
    shift = sum(n.desired - n.x for n in nodes) / len(nodes) if nodes else 0.0  # type: ignore
    for n in nodes:
        n.x += shift


def _bezier(x0: float, y0: float, x1: float, y1: float) -> MplPath:
    ym = (y0 + y1) / 2
    return MplPath([(x0, y0), (x0, ym), (x1, ym), (x1, y1)],
                   [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4])


def _extent(lay: Layout) -> tuple[float, float]:
    xs = [n.x - n.width / 2 for n in lay.nodes] + [n.x + n.width / 2 for n in lay.nodes]
    xs += [x for seg in lay.segments for x in (seg[0], seg[2])]
    return (min(xs), max(xs)) if xs else (0.0, 0.0)


@functools.lru_cache(maxsize=4096)
def _glyphs(text: str) -> tuple[MplPath, Bbox]:
    path = TextPath((0.0, 0.0), text, size=1.0)
    return path, _ink_extents(path)


def _ink_extents(path: MplPath) -> Bbox:
    """The exact bounding box of a path of lines and quadratic and cubic Bezier curves: its
    on-curve points and each curve's interior extrema (where the derivative of a coordinate
    vanishes), all curves at once in numpy. This is `Path.get_extents`, which walks the curves
    one by one in Python (10 to 25 ms for a label, the bulk of a first drawing)."""
    verts, codes = path.vertices, path.codes
    if codes is None or len(verts) == 0:
        return Bbox.from_extents(*verts.min(0), *verts.max(0)) if len(verts) else Bbox.null()
    quads = _segment_starts(codes, MplPath.CURVE3, 2)
    cubics = _segment_starts(codes, MplPath.CURVE4, 3)
    ends = np.flatnonzero((codes == MplPath.MOVETO) | (codes == MplPath.LINETO))
    pts = [verts[np.concatenate([ends, quads + 2, cubics + 3])]]
    if len(quads):
        p0, p1, p2 = (verts[np.add(quads, k)][:, None] for k in range(3))
        # B'(t) = 0 at t = (p0 - p1) / (p0 - 2 p1 + p2)
        pts.append(_at_roots(lambda t: ((1 - t) ** 2)[..., None] * p0
                             + (2 * (1 - t) * t)[..., None] * p1 + (t**2)[..., None] * p2,
                             np.zeros_like(p0[:, 0]), (p0 - 2 * p1 + p2)[:, 0], (p1 - p0)[:, 0]))
    if len(cubics):
        p0, p1, p2, p3 = (verts[np.add(cubics, k)][:, None] for k in range(4))
        # B'(t) / 3 = a t^2 + b t + c
        pts.append(_at_roots(lambda t: ((1 - t) ** 3)[..., None] * p0
                             + (3 * (1 - t) ** 2 * t)[..., None] * p1
                             + (3 * (1 - t) * t**2)[..., None] * p2 + (t**3)[..., None] * p3,
                             (-p0 + 3 * p1 - 3 * p2 + p3)[:, 0], 2 * (p0 - 2 * p1 + p2)[:, 0],
                             (p1 - p0)[:, 0]))
    allpts = np.concatenate([p.reshape(-1, 2) for p in pts])
    return Bbox.from_extents(*allpts.min(0), *allpts.max(0))


def _segment_starts(codes: np.ndarray, code: int, length: int) -> np.ndarray:
    """The index of the start point (the current point, one before) of every curve segment
    of `length` vertices with `code` (runs of such codes hold several segments)."""
    idx = np.flatnonzero(codes == code)
    if not len(idx):
        return idx
    run_start = np.r_[True, np.diff(idx) != 1]
    first = np.maximum.accumulate(np.where(run_start, np.arange(len(idx)), 0))
    return idx[(np.arange(len(idx)) - first) % length == 0] - 1


def _at_roots(curve: Any, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The points curve(t) (m, r, 2) at the roots t in (0, 1) of a t^2 + b t + c, per curve and
    per coordinate (the other roots give t = 0, an end point, which changes no extent)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))
        linear = np.where(b != 0, -c / b, 0.0)
        roots = [np.where(a != 0, (-b + disc) / (2 * a), linear),
                 np.where(a != 0, (-b - disc) / (2 * a), linear)]
    t = np.concatenate(roots, axis=1)  # (m, 4): two roots for x, two for y
    t = np.where((t > 0) & (t < 1) & np.isfinite(t), t, 0.0)
    return curve(t)


class _Canvas:
    """Collects the pieces of a picture and adds each kind as one matplotlib collection."""

    def __init__(self, scale: float):
        self.pt = 1.0 / 72.0 / scale        # one typographic point in data units
        self.wires: list[MplPath] = []
        self.lines: list[list[tuple[float, float]]] = []
        self.dots: list[tuple[float, float]] = []
        self.shapes: list[Any] = []
        self.faces: list[str] = []
        self.text: dict[str, list[MplPath]] = {}

    def label(self, text: str, x: float, y: float, size: float, ha: str = "center",
              va: str = "center", color: str = "black") -> None:
        glyphs, box = _glyphs(text)
        k = size * self.pt
        tx = {"center": box.x0 + box.width / 2, "left": box.x0, "right": box.x1}[ha]
        ty = {"center": box.y0 + box.height / 2, "bottom": box.y0, "top": box.y1}[va]
        move = Affine2D().scale(k).translate(x - tx * k, y - ty * k)
        self.text.setdefault(color, []).append(move.transform_path(glyphs))

    def shape(self, patch: Any, face: str) -> None:
        self.shapes.append(patch)
        self.faces.append(face)

    def finish(self, ax: Any) -> None:
        ax.add_collection(PatchCollection([PathPatch(p) for p in self.wires], facecolors="none",
                                          edgecolors="black", linewidths=1.3, zorder=1,
                                          capstyle="round"), autolim=False)
        ax.add_collection(LineCollection(self.lines, colors="black", linewidths=1.3, zorder=3),
                          autolim=False)
        ax.add_collection(PatchCollection([Circle(c, 0.065) for c in self.dots],
                                          facecolors="black", edgecolors="none", zorder=3),
                          autolim=False)
        ax.add_collection(PatchCollection(self.shapes, facecolors=self.faces, edgecolors="black",
                                          linewidths=1.3, zorder=2), autolim=False)
        for color, paths in sorted(self.text.items()):
            ax.add_collection(PatchCollection([PathPatch(p) for p in paths], facecolors=color,
                                              edgecolors="none", zorder=4), autolim=False)


def _render(canvas: _Canvas, d: Diagram, lay: Layout, dx: float, highlight: frozenset[str],
            wire_labels: bool) -> None:
    """Draw d (laid out as lay) onto the canvas, shifted right by dx."""
    for x0, y0, x1, y1, space in lay.segments:
        canvas.wires.append(_bezier(x0 + dx, y0, x1 + dx, y1))
        if wire_labels and y1 - y0 > 0.45:
            canvas.label(_type_name(space), x1 + dx + 0.06, y1 - 0.25, 7, ha="left",
                         color="#444444")
    canvas.dots += [(x + dx, y) for x, y in lay.copies]
    for x, y in lay.discards:
        _ground(canvas, x + dx, y)
    for n in lay.nodes:
        if n.kind != "box" or n.box is None:
            continue
        b = n.box
        x, y = n.x + dx, n.layer * LAYER_H
        if isinstance(b, Junction):
            _junction(canvas, n, dx)
            continue
        face = HIGHLIGHT if b.name in highlight else "white"
        half, h = n.width / 2, BOX_H / 2
        if b.kind == "predicate":
            canvas.shape(Polygon([(x - half, y - h), (x + half, y - h), (x, y + h)]), face)
            ty = y - h / 3
        elif not b.box_dom.factors:
            canvas.shape(Polygon([(x - half, y + h), (x + half, y + h), (x, y - h)]), face)
            ty = y + h / 3
        else:
            canvas.shape(Rectangle((x - half, y - h), 2 * half, 2 * h), face)
            if b.deterministic:
                canvas.shape(Rectangle((x - half + 0.05, y - h + 0.05), 2 * half - 0.1,
                                       2 * h - 0.1), "none")
            ty = y
        canvas.label(b.name, x, ty, 10)
    for n, w in zip(lay.inputs, d.inputs, strict=True):
        canvas.label(_type_name(d.types[w]), n.x + dx, -0.1, 8, va="top")
    for n, w in zip(lay.outputs, d.outputs, strict=True):
        canvas.label(_type_name(d.types[w]), n.x + dx, lay.top + 0.1, 8, va="bottom")


def _ground(canvas: _Canvas, x: float, y: float) -> None:
    """The discard symbol on a wire ending at (x, y)."""
    canvas.lines.append([(x, y), (x, y + 0.22)])
    for i, half in enumerate((0.14, 0.09, 0.04)):
        yy = y + 0.22 + 0.05 * i
        canvas.lines.append([(x - half, yy), (x + half, yy)])


def _junction(canvas: _Canvas, n: _Node, dx: float) -> None:
    """A copy (the wire up to a dot, then one branch per output port) or a discard."""
    x, y, h = n.x + dx, n.layer * LAYER_H, BOX_H / 2
    if n.n_out == 0:
        _ground(canvas, x, y - h)
        return
    canvas.wires.append(_bezier(x, y - h, x, y))
    canvas.dots.append((x, y))
    canvas.wires += [_bezier(x, y, n.out_x(port) + dx, y + h) for port in range(n.n_out)]


def figure(*parts: Diagram | str, highlight: Iterable[str] = (), wire_labels: bool = False,
           scale: float = 0.7, title: str | None = None, normal_form: bool = False) -> Figure:
    """A matplotlib figure of diagrams side by side, with strings (like "=") between them.

    Each diagram is drawn as built (every copy and discard it was made from), or as its normal
    form (copies and discards only where the term graph has them, the Markov law applied) when
    `normal_form`. `highlight` names boxes to fill in colour; `wire_labels` writes every wire's
    type; `scale` is inches per layout unit; the figure widens to fit `title`.
    """
    if not parts:
        raise ValidationError("figure() needs at least one diagram")
    for p in parts:
        if not isinstance(p, Diagram | str):
            raise TypeError(f"figure() draws diagrams and strings, got {type(p).__name__}")
    fig = Figure()
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    hi = frozenset(highlight)
    canvas = _Canvas(scale)
    parts = tuple(p if isinstance(p, str) else p.normal_form() if normal_form else p.built
                  for p in parts)
    lays = [layout(p) if isinstance(p, Diagram) else None for p in parts]
    top = max((lay.top for lay in lays if lay is not None), default=1.0)
    bottom = min((lay.bottom for lay in lays if lay is not None), default=0.0)
    x = 0.0
    for p, lay in zip(parts, lays, strict=True):
        if isinstance(p, str) or lay is None:
            canvas.label(str(p), x + 0.4, (top + bottom) / 2, 16)
            x += 0.8
            continue
        x0, x1 = _extent(lay)
        _render(canvas, p, lay, x - x0, hi, wire_labels)
        x += (x1 - x0) + 0.3
    x -= 0.3
    pad = 0.45
    left, right = -pad, x + pad
    ymin, ymax = bottom - 0.45, top + 0.45
    if title:
        canvas.label(title, x / 2, ymax, 11, va="bottom")
        half = _glyphs(title)[1].width * 11 * canvas.pt / 2 + 0.15
        left, right = min(left, x / 2 - half), max(right, x / 2 + half)
        ymax += 0.4
    canvas.finish(ax)
    ax.set_xlim(left, right)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    fig.set_size_inches(max((right - left) * scale, 1.0), max((ymax - ymin) * scale, 1.0))
    return fig


def _save(fig: Figure, target: Any, fmt: str, dpi: int) -> None:
    meta = {"Date": None} if fmt == "svg" else {}
    with matplotlib.rc_context({"svg.hashsalt": "condprob-diagrams", "svg.fonttype": "path"}):
        fig.savefig(target, format=fmt, dpi=dpi, metadata=meta)


def draw(d: Diagram, path: str | Path | None = None, *, dpi: int = 100,
         **kwargs: Any) -> Figure:
    """Draw a diagram; save it when `path` is given (format from the suffix: .svg, .png, .pdf).

    Keyword arguments go to `figure` (highlight, wire_labels, scale, title).
    """
    fig = figure(d, **kwargs)
    if path is not None:
        save(fig, path, dpi)
    return fig


def save(fig: Figure, path: str | Path, dpi: int = 100) -> None:
    """Save a figure; the format comes from the suffix (.svg, .png or .pdf)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValidationError(f"cannot tell the format of {path}: use .svg, .png or .pdf")
    _save(fig, path, fmt, dpi)


def to_svg(d: Diagram | Figure, **kwargs: Any) -> str:
    """The drawing as an SVG string (reproducible: same diagram, same bytes)."""
    fig = d if isinstance(d, Figure) else figure(d, **kwargs)
    buf = io.StringIO()
    _save(fig, buf, "svg", 100)
    return buf.getvalue()


def to_png(d: Diagram | Figure, dpi: int = 100, **kwargs: Any) -> bytes:
    """The drawing as PNG bytes."""
    fig = d if isinstance(d, Figure) else figure(d, **kwargs)
    buf = io.BytesIO()
    _save(fig, buf, "png", dpi)
    return buf.getvalue()
