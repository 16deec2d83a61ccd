"""Normal form and structural equality of diagrams in the free Markov category.

A diagram is a term graph (see `diagrams.syntax`), so the symmetric monoidal laws and the comonoid
laws of copy and discard already hold on the nose. Two rewrites give the Markov category:

- the Markov law (naturality of discard): a channel none of whose outputs is used is removed,
  f >> Discard(Y) == Discard(X); predicates are effects, not channels, and are never removed;
- copy-naturality of deterministic boxes: f >> Copy(Y) == Copy(X) >> (f @ f), so two occurrences of
  one deterministic box on the same input wires are merged.

What is left is numbered canonically: a depth-first walk from the ordered outputs, then from the
predicates in order of a content hash. Two diagrams are equal iff their canonical forms agree, or
(when predicates tie in the hash) iff their port graphs are isomorphic (networkx VF2).
"""

from __future__ import annotations

import hashlib
from typing import Any

import networkx as nx

from diagrams.syntax import BoxEntry, Diagram

Ref = tuple[Any, ...]


def _reduced(d: Diagram) -> Diagram:
    """Merge deterministic duplicates, then drop dead channels (Markov law); wires renumbered."""
    alias: dict[int, int] = {}
    seen: dict[tuple[Any, ...], tuple[int, ...]] = {}
    merged: list[BoxEntry] = []
    for b, ins, outs in d.boxes:
        ins = tuple(alias.get(w, w) for w in ins)
        if b.deterministic:
            k = (b.key, ins)
            if k in seen:
                alias.update(zip(outs, seen[k], strict=True))
                continue
            seen[k] = outs
        merged.append((b, ins, outs))
    outputs = tuple(alias.get(w, w) for w in d.outputs)
    live = set(outputs)
    kept: list[BoxEntry] = []
    for b, ins, outs in reversed(merged):
        if b.kind == "predicate" or any(w in live for w in outs):
            kept.append((b, ins, outs))
            live.update(ins)
    kept.reverse()
    used = sorted(set(d.inputs) | {w for _, i, o in kept for w in i + o} | set(outputs))
    new = {w: k for k, w in enumerate(used)}
    return Diagram([d.types[w] for w in used], [new[w] for w in d.inputs],
                   [(b, tuple(new[w] for w in i), tuple(new[w] for w in o)) for b, i, o in kept],
                   [new[w] for w in outputs])


def _digest(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


def _wire_hashes(d: Diagram) -> dict[int, str]:
    """A content hash of each wire: its source and, recursively, the source's inputs."""
    h = {w: _digest("in", j, d.types[w]) for j, w in enumerate(d.inputs)}
    for b, ins, outs in d.boxes:
        parent = _digest(b.key, tuple(h[w] for w in ins))
        for port, w in enumerate(outs):
            h[w] = _digest(parent, port)
    return h


def _predicate_hash(h: dict[int, str], entry: BoxEntry) -> str:
    b, ins, _ = entry
    return _digest(b.key, tuple(h[w] for w in ins))


def _canonical(d: Diagram) -> tuple[Diagram, tuple[Any, ...], bool]:
    """Reduce, renumber boxes canonically; return (normal diagram, canonical key, tie flag)."""
    r = _reduced(d)
    source: dict[int, tuple[int, int]] = {}
    for k, (_, _, outs) in enumerate(r.boxes):
        for port, w in enumerate(outs):
            source[w] = (k, port)
    h = _wire_hashes(r)
    preds = [k for k, (b, _, _) in enumerate(r.boxes) if b.kind == "predicate"]
    pkeys = {k: _predicate_hash(h, r.boxes[k]) for k in preds}
    preds.sort(key=lambda k: pkeys[k])
    tie = len(set(pkeys.values())) < len(preds)
    order: list[int] = []
    number: dict[int, int] = {}

    def visit(root: int) -> None:
        stack: list[tuple[int, int]] = [(root, 0)]
        while stack:
            k, i = stack.pop()
            ins = r.boxes[k][1]
            while i < len(ins) and (ins[i] not in source or source[ins[i]][0] in number):
                i += 1
            if i < len(ins):
                stack.append((k, i + 1))
                stack.append((source[ins[i]][0], 0))
            elif k not in number:
                number[k] = len(order)
                order.append(k)

    roots = [source[w][0] for w in r.outputs if w in source] + preds
    for k in roots:
        if k not in number:
            visit(k)
    inpos = {w: j for j, w in enumerate(r.inputs)}

    def ref(w: int) -> Ref:
        if w in inpos:
            return ("i", inpos[w])
        k, port = source[w]
        return ("b", number[k], port)

    key = (r.dom, r.cod,
           tuple((r.boxes[k][0].key, tuple(ref(w) for w in r.boxes[k][1])) for k in order),
           tuple(ref(w) for w in r.outputs))
    normal = Diagram(r.types, r.inputs, [r.boxes[k] for k in order], r.outputs)
    return normal, key, tie


def _cached(d: Diagram) -> tuple[Diagram, tuple[Any, ...], bool]:
    if not isinstance(d, Diagram):
        raise TypeError(f"normal forms are of diagrams, got {type(d).__name__}")
    if "canonical" not in d._cache:
        d._cache["canonical"] = _canonical(d)
    return d._cache["canonical"]


def normal_form(d: Diagram) -> Diagram:
    """The normal form of a diagram: reduced by the Markov laws, boxes in canonical order."""
    return _cached(d)[0]


def canonical_key(d: Diagram) -> tuple[Any, ...]:
    """A hashable serialisation of the normal form (equal keys imply equal diagrams)."""
    return _cached(d)[1]


def invariant(d: Diagram) -> tuple[Any, ...]:
    """An isomorphism invariant of the normal form (equal diagrams have equal invariants)."""
    if "invariant" not in d._cache:
        n = normal_form(d)
        h = _wire_hashes(n)
        boxes = sorted(_predicate_hash(h, e) for e in n.boxes)
        d._cache["invariant"] = (n.dom, n.cod, tuple(boxes), tuple(h[w] for w in n.outputs))
    return d._cache["invariant"]


def port_graph(d: Diagram) -> nx.MultiDiGraph:
    """The diagram as a networkx MultiDiGraph.

    Nodes: ("in", j) for inputs, ("box", k) for boxes (attributes `box`, `label`), ("out", j) for
    outputs. One edge per use of a wire, from its source to its user, with attributes
    `src_port`, `dst_port` and `type` (the wire's space). Unused wires become edges to a
    ("discard", w) node.
    """
    g = nx.MultiDiGraph()
    src: dict[int, tuple[Any, int]] = {}
    for j, w in enumerate(d.inputs):
        g.add_node(("in", j), label=("in", j))
        src[w] = (("in", j), 0)
    uses: dict[int, int] = {}
    for k, (b, ins, outs) in enumerate(d.boxes):
        node = ("box", k)
        g.add_node(node, box=b, label=b.key)
        for port, w in enumerate(ins):
            g.add_edge(*src[w][:1], node, src_port=src[w][1], dst_port=port, type=d.types[w])
            uses[w] = uses.get(w, 0) + 1
        for port, w in enumerate(outs):
            src[w] = (node, port)
    for j, w in enumerate(d.outputs):
        g.add_node(("out", j), label=("out", j))
        g.add_edge(src[w][0], ("out", j), src_port=src[w][1], dst_port=0, type=d.types[w])
        uses[w] = uses.get(w, 0) + 1
    for w, (node, port) in src.items():
        if not uses.get(w):
            g.add_node(("discard", w), label=("discard",))
            g.add_edge(node, ("discard", w), src_port=port, dst_port=0, type=d.types[w])
    return g


def _edge_match(e1: dict[Any, dict[str, Any]], e2: dict[Any, dict[str, Any]]) -> bool:
    def ports(e: dict[Any, dict[str, Any]]) -> list[tuple[int, int]]:
        return sorted((a["src_port"], a["dst_port"]) for a in e.values())
    return ports(e1) == ports(e2)


def _same_term_graph(a: Diagram, b: Diagram) -> bool:
    """Cheap sufficient test: the two diagrams are literally the same term graph."""
    return (a.inputs == b.inputs and a.outputs == b.outputs and len(a.boxes) == len(b.boxes)
            and a.types == b.types
            and all(x[1] == y[1] and x[2] == y[2] and (x[0] is y[0] or x[0].key == y[0].key)
                    for x, y in zip(a.boxes, b.boxes, strict=True)))


def equal(a: Diagram, b: Diagram) -> bool:
    """Equality in the free Markov category (structural, up to the axioms)."""
    if a is b or _same_term_graph(a, b):
        return True
    if a.dom != b.dom or a.cod != b.cod:
        return False
    na, ka, tie_a = _cached(a)
    nb, kb, tie_b = _cached(b)
    if ka == kb:
        return True
    if not (tie_a and tie_b) or invariant(a) != invariant(b):
        return False
    return nx.is_isomorphic(port_graph(na), port_graph(nb),
                            node_match=lambda x, y: x["label"] == y["label"],
                            edge_match=_edge_match)
