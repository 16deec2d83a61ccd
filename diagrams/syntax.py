"""Syntax of string diagrams for Markov categories.

A diagram f : X -> Y is an open term graph: typed wires (each an atomic `condprob` space), boxes
whose ports are wires, an ordered list of input wires and an ordered list of output wires. Every
wire has exactly one source (a diagram input or one box output) and any number of uses: a wire used
twice is a copy, a wire never used is a discard. Identities, swaps, copies and discards therefore
hold no boxes at all, so the symmetric monoidal and comonoid laws hold by construction; the
normal form (`diagrams.normal`) adds the Markov law (discarding the outputs of a channel discards
its inputs) and copy-naturality of deterministic boxes. For drawing, a diagram also remembers how it
was built (`Diagram.built`): the same term graph with each `Copy` and `Discard` it was made from
kept as a `Junction`, so "copy, then discard one copy" is drawn as such, not as the bare wire it
equals.

`f >> g` composes (first f, then g) and `f @ g` tensors, like condprob's kernels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from condprob.errors import SpaceMismatchError, ValidationError
from condprob.spaces import Space, Unit, product

if TYPE_CHECKING:
    import networkx as nx

BoxKind = Literal["channel", "predicate"]
BoxEntry = tuple["Box", tuple[int, ...], tuple[int, ...]]


def _atoms(space: Any, role: str) -> tuple[Space, ...]:
    if not isinstance(space, Space):
        raise ValidationError(f"{role} must be a condprob Space, got {space!r}")
    return space.factors


def _describe(d: Diagram) -> str:
    names = [b.name for b, _, _ in d.boxes]
    if not names:
        return f"a wiring {d.dom} -> {d.cod}"
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return f"diagram [{shown}]"


class Diagram:
    """A string diagram dom -> cod: wires, boxes on them, input and output wires.

    Build diagrams from `Box`, `State`, `Predicate`, `Id`, `Swap`, `Copy`, `Discard` with `>>`
    and `@`. `==` is equality in the free Markov category (see `diagrams.normal`); `graph` is the
    networkx port graph; `draw`, `to_svg`, `to_png` draw it.
    """

    __slots__ = ("types", "inputs", "boxes", "outputs", "_cache", "_built")

    def __init__(self, types: Sequence[Space], inputs: Sequence[int],
                 boxes: Sequence[BoxEntry], outputs: Sequence[int]):
        self.types: tuple[Space, ...] = tuple(types)
        self.inputs: tuple[int, ...] = tuple(inputs)
        self.boxes: tuple[BoxEntry, ...] = tuple(boxes)
        self.outputs: tuple[int, ...] = tuple(outputs)
        self._cache: dict[str, Any] = {}
        self._built: Diagram | None = None

    @property
    def built(self) -> Diagram:
        """The diagram as it was built, for drawing: its boxes plus a `Junction` for every copy
        and discard it was made from (itself when it was made from none)."""
        return self if self._built is None else self._built

    def _with_built(self, built: Diagram | None) -> Diagram:
        self._built = built
        return self

    # Types -----------------------------------------------------------------------------------
    @property
    def dom(self) -> Space:
        """The input type (product of the input wires' types)."""
        return product(*(self.types[w] for w in self.inputs)) if self.inputs else Unit

    @property
    def cod(self) -> Space:
        """The output type (product of the output wires' types)."""
        return product(*(self.types[w] for w in self.outputs)) if self.outputs else Unit

    @property
    def n_boxes(self) -> int:
        return len(self.boxes)

    @property
    def box_names(self) -> tuple[str, ...]:
        return tuple(b.name for b, _, _ in self.boxes)

    @property
    def generators(self) -> tuple[Box, ...]:
        """The distinct generators used, in order of first occurrence."""
        seen: dict[tuple[Any, ...], Box] = {}
        for b, _, _ in self.boxes:
            seen.setdefault(b.key, b)
        return tuple(seen.values())

    @property
    def is_causal(self) -> bool:
        """True when every box is a channel (so the diagram denotes a Markov kernel)."""
        return all(b.kind == "channel" for b, _, _ in self.boxes)

    # Composition -----------------------------------------------------------------------------
    def then(self, other: Diagram) -> Diagram:
        """Sequential composition: first self, then other (wires of other's inputs are glued)."""
        if not isinstance(other, Diagram):
            raise TypeError(f"cannot compose a diagram with {type(other).__name__}")
        if self.cod != other.dom:
            raise SpaceMismatchError(
                f"cannot compose {_describe(self)} >> {_describe(other)}: codomain does not match "
                "domain", expected=other.dom, got=self.cod)
        offset = len(self.types)
        glue = dict(zip(other.inputs, self.outputs, strict=True))

        def ren(w: int) -> int:
            return glue[w] if w in glue else w + offset

        boxes = self.boxes + tuple(
            (b, tuple(ren(w) for w in ins), tuple(ren(w) for w in outs))
            for b, ins, outs in other.boxes)
        built = None
        if self._built is not None or other._built is not None:
            built = self.built.then(other.built)
        return Diagram(self.types + other.types, self.inputs, boxes,
                       tuple(ren(w) for w in other.outputs))._with_built(built)

    def tensor(self, other: Diagram) -> Diagram:
        """Parallel composition: self and other side by side (self's wires first)."""
        if not isinstance(other, Diagram):
            raise TypeError(f"cannot tensor a diagram with {type(other).__name__}")
        k = len(self.types)
        boxes = self.boxes + tuple(
            (b, tuple(w + k for w in ins), tuple(w + k for w in outs))
            for b, ins, outs in other.boxes)
        built = None
        if self._built is not None or other._built is not None:
            built = self.built.tensor(other.built)
        return Diagram(self.types + other.types,
                       self.inputs + tuple(w + k for w in other.inputs), boxes,
                       self.outputs + tuple(w + k for w in other.outputs))._with_built(built)

    def __rshift__(self, other: Diagram) -> Diagram:
        if not isinstance(other, Diagram):
            return NotImplemented
        return self.then(other)

    def __matmul__(self, other: Diagram) -> Diagram:
        if not isinstance(other, Diagram):
            return NotImplemented
        return self.tensor(other)

    # Equality (delegated to the normal form) ---------------------------------------------------
    def normal_form(self) -> Diagram:
        """The normal form: dead channels removed, deterministic duplicates merged, boxes sorted."""
        from diagrams.normal import normal_form
        return normal_form(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Diagram):
            return NotImplemented
        from diagrams.normal import equal
        return equal(self, other)

    def __hash__(self) -> int:
        from diagrams.normal import invariant
        return hash(invariant(self))

    @property
    def graph(self) -> nx.MultiDiGraph:
        """The diagram as a networkx port graph (see `diagrams.normal.port_graph`)."""
        from diagrams.normal import port_graph
        return port_graph(self)

    # Drawing -----------------------------------------------------------------------------------
    def draw(self, path: Any = None, **kwargs: Any) -> Any:
        """Draw with matplotlib (see `diagrams.drawing.draw`); returns the figure."""
        from diagrams.drawing import draw
        return draw(self, path, **kwargs)

    def to_svg(self, **kwargs: Any) -> str:
        from diagrams.drawing import to_svg
        return to_svg(self, **kwargs)

    def to_png(self, **kwargs: Any) -> bytes:
        from diagrams.drawing import to_png
        return to_png(self, **kwargs)

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def _repr_png_(self) -> bytes:
        return self.to_png()

    def __repr__(self) -> str:
        return f"Diagram({self.dom} -> {self.cod}, boxes={list(self.box_names)})"


class Box(Diagram):
    """A generator f : dom -> cod drawn as a box; as a diagram, the box alone on fresh wires.

    `kind` is "channel" (a Markov kernel: discarding its outputs discards its inputs) or
    "predicate" (an effect dom -> Unit, a likelihood; never removed by the Markov law).
    `deterministic=True` marks a function, which commutes with copying.
    """

    __slots__ = ("name", "box_dom", "box_cod", "kind", "deterministic", "_key")

    def __init__(self, name: str, dom: Space, cod: Space, *, kind: BoxKind = "channel",
                 deterministic: bool = False):
        if not isinstance(name, str) or not name:
            raise ValidationError(f"a box needs a non-empty str name, got {name!r}")
        ins = _atoms(dom, f"domain of box {name!r}")
        outs = _atoms(cod, f"codomain of box {name!r}")
        if kind not in ("channel", "predicate"):
            raise ValidationError(f"box {name!r}: kind must be 'channel' or 'predicate', got {kind!r}")
        if kind == "predicate" and outs:
            raise ValidationError(f"predicate {name!r} must have the unit codomain, got {cod}")
        if kind == "predicate" and deterministic:
            raise ValidationError(f"predicate {name!r} cannot be deterministic")
        self.name = name
        self.box_dom = dom
        self.box_cod = cod
        self.kind: BoxKind = kind
        self.deterministic = bool(deterministic)
        self._key = (name, dom, cod, kind, self.deterministic)
        n, m = len(ins), len(outs)
        super().__init__(ins + outs, range(n), [(self, tuple(range(n)), tuple(range(n, n + m)))],
                         range(n, n + m))

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies the generator: name, domain, codomain, kind, determinism."""
        return self._key

    def same_generator(self, other: Box) -> bool:
        return self._key == other._key

    def __repr__(self) -> str:
        extra = "" if self.kind == "channel" else f", {self.kind}"
        extra += ", deterministic" if self.deterministic else ""
        return f"Box({self.name!r}: {self.box_dom} -> {self.box_cod}{extra})"


class Junction:
    """A copy of one wire into `n` (n >= 2) or its discard (n = 0), kept as a node only in the
    built form of a diagram (`Diagram.built`), which is drawn; never a box of the term graph that
    equality and semantics read."""

    __slots__ = ("space", "n", "name", "kind")

    def __init__(self, space: Space, n: int):
        self.space = space
        self.n = n
        self.name = self.kind = "discard" if n == 0 else "copy"

    def __repr__(self) -> str:
        return f"Junction({self.kind} {self.space}, n={self.n})"


def State(name: str, cod: Space) -> Box:
    """A state (no inputs), drawn as a triangle: a box Unit -> cod."""
    return Box(name, Unit, cod)


def Predicate(name: str, dom: Space) -> Box:
    """A predicate (effect, likelihood) dom -> Unit, drawn as an upturned triangle."""
    return Box(name, dom, Unit, kind="predicate")


def Id(space: Space = Unit) -> Diagram:
    """The identity wiring on a space."""
    ts = _atoms(space, "Id's space")
    return Diagram(ts, range(len(ts)), (), range(len(ts)))


def Swap(x: Space, y: Space) -> Diagram:
    """The symmetry X @ Y -> Y @ X."""
    a, b = _atoms(x, "Swap's first space"), _atoms(y, "Swap's second space")
    n, m = len(a), len(b)
    return Diagram(a + b, range(n + m), (), tuple(range(n, n + m)) + tuple(range(n)))


def Copy(space: Space, n: int = 2) -> Diagram:
    """Copy X -> X @ ... @ X (n copies; n = 0 is discard, n = 1 the identity)."""
    ts = _atoms(space, "Copy's space")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValidationError(f"Copy needs a number of copies n >= 0, got {n!r}")
    d = Diagram(ts, range(len(ts)), (), tuple(range(len(ts))) * n)
    if n == 1:
        return d
    k = len(ts)  # the built form: atom i's junction sends wire i to wires k + j * k + i
    junctions = [(Junction(t, n), (i,), tuple(k + j * k + i for j in range(n)))
                 for i, t in enumerate(ts)]
    return d._with_built(Diagram(ts * (n + 1), range(k), junctions, range(k, k + n * k)))


def Discard(space: Space) -> Diagram:
    """Discard X -> Unit (drawn as the ground symbol)."""
    return Copy(space, 0)


def Permute(space: Space, order: Iterable[int]) -> Diagram:
    """The wiring that outputs the factors of `space` in the given order (each used once)."""
    ts = _atoms(space, "Permute's space")
    perm = tuple(order)
    if sorted(perm) != list(range(len(ts))):
        raise ValidationError(f"{perm} is not a permutation of the {len(ts)} factors of {space}")
    return Diagram(ts, range(len(ts)), (), perm)
