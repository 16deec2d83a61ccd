"""Semantics: a functor from diagrams to condprob kernels.

An `Interpretation` assigns each box a kernel: a channel f : X -> Y gets a `condprob.Kernel`
(or `State`) X -> Y, a predicate p on X gets a `condprob.Predicate` on X. A diagram then denotes
the kernel obtained by contracting the boxes' tensors along the wires, which is the composite of
the boxes with copy, discard and swap (a wire used twice is copied, an unused wire is summed out):

    [[d]](x)(y) = sum over inner wires of  prod_boxes [[box]](its input values)(its output values).

Diagrams with predicates denote unnormalised kernels; `Interpretation.__call__` normalises each
row (the Pearl update of the diagram by its predicates) and raises `ConditioningError` naming the
predicates when a row has mass zero. The contraction order is chosen by opt_einsum, in float64
(torch) or exactly (Fractions or sympy, numpy object arrays).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import opt_einsum
import torch

from condprob import backend as B
from condprob import finite, gaussian
from condprob.errors import ConditioningError, SpaceMismatchError, ValidationError
from condprob.finite import Kernel, Predicate, State
from condprob.protocol import Morphism
from condprob.spaces import Space, Unit, product
from diagrams.syntax import Box, Diagram

Meaning = Morphism | Predicate


def _ones(n: int, exact: bool, dtype: torch.dtype) -> B.Array:
    if exact:
        out = np.empty(n, dtype=object)
        out[:] = B.ONE
        return out
    return torch.ones(n, dtype=dtype)


def _eye(n: int, exact: bool, dtype: torch.dtype) -> B.Array:
    return B.one_hot(np.arange(n), n, exact, dtype)


def _array(m: Meaning) -> Any:
    return m.values if isinstance(m, Predicate) else getattr(m, "array", None)


class Interpretation:
    """A functor from diagrams to finite kernels, given by the meaning of each box.

    `assignment` maps box names (or `Box` objects) to `condprob.Kernel`/`State` for channels and
    `condprob.Predicate` for predicates. Calling the interpretation on a diagram evaluates it.
    Results are exact when `exact` is True, or when it is None and some assigned kernel is exact;
    otherwise float (float64 or wider of the kernels' dtypes).
    """

    def __init__(self, assignment: Mapping[str | Box, Meaning], exact: bool | None = None):
        if not isinstance(assignment, Mapping):
            raise TypeError(f"an interpretation needs a mapping of boxes, got {type(assignment).__name__}")
        self.assignment: dict[str, Meaning] = {}
        for key, value in assignment.items():
            name = key.name if isinstance(key, Box) else key
            if not isinstance(name, str):
                raise ValidationError(f"interpretation keys are box names or boxes, got {key!r}")
            if not isinstance(value, Morphism | Predicate):
                raise ValidationError(
                    f"box {name!r} is interpreted by {type(value).__name__}; expected a condprob "
                    "Kernel, State or Predicate")
            self.assignment[name] = value
        if exact is None:
            exact = any(B.is_exact(_array(m)) for m in self.assignment.values())
        self.exact = bool(exact)

    def __repr__(self) -> str:
        return f"Interpretation({sorted(self.assignment)})"

    def extend(self, more: Mapping[str | Box, Meaning]) -> Interpretation:
        """This interpretation with more (or replaced) boxes."""
        return Interpretation({**self.assignment, **more}, exact=self.exact)

    # Checking ----------------------------------------------------------------------------------
    def meaning(self, box: Box) -> Meaning:
        """The kernel or predicate of a box, checked against the box's type."""
        if box.name not in self.assignment:
            raise ValidationError(f"the interpretation has no meaning for box {box.name!r}")
        m = self.assignment[box.name]
        if box.kind == "predicate":
            if not isinstance(m, Predicate):
                raise ValidationError(
                    f"predicate box {box.name!r} needs a condprob.Predicate, got {type(m).__name__}")
            if m.space != box.box_dom:
                raise SpaceMismatchError(f"predicate box {box.name!r}", box.box_dom, m.space)
            return m
        if not isinstance(m, Morphism):
            raise ValidationError(
                f"channel box {box.name!r} needs a kernel, got {type(m).__name__}")
        if m.dom != box.box_dom:
            raise SpaceMismatchError(f"domain of box {box.name!r}", box.box_dom, m.dom)
        if m.cod != box.box_cod:
            raise SpaceMismatchError(f"codomain of box {box.name!r}", box.box_cod, m.cod)
        if m.batch_shape:
            raise ValidationError(
                f"box {box.name!r} has batch shape {m.batch_shape}; diagrams evaluate unbatched "
                "kernels")
        if box.deterministic and isinstance(m, Kernel) and not bool(np.all(np.asarray(
                B.zero_mask(m.array) | B.zero_mask(m.array - 1)))):
            raise ValidationError(
                f"box {box.name!r} is declared deterministic but its kernel is not 0/1")
        return m

    def _tensors(self, d: Diagram) -> tuple[list[B.Array], bool, torch.dtype]:
        arrays = [_array(self.meaning(b)) for b, _, _ in d.boxes]
        exact = self.exact
        dtype = torch.float64
        if not exact:
            for a in arrays:
                if not B.is_exact(a):
                    dtype = torch.promote_types(dtype, a.dtype)
        out = []
        for (b, _, _), a in zip(d.boxes, arrays, strict=True):
            if exact:
                a = a if B.is_exact(a) else B.to_exact(a)
            else:
                a = B.to_float(a, dtype)
            out.append(a.reshape(*b.box_dom.shape, *b.box_cod.shape))
        return out, exact, dtype

    # Evaluation --------------------------------------------------------------------------------
    def array(self, d: Diagram) -> B.Array:
        """The (unnormalised) matrix of shape (|dom|, |cod|) the diagram denotes."""
        if not isinstance(d, Diagram):
            raise TypeError(f"an interpretation evaluates diagrams, got {type(d).__name__}")
        if not d.dom.is_finite or not d.cod.is_finite:
            raise TypeError(f"diagram {d} has non-finite wires; evaluation needs finite spaces")
        tensors, exact, dtype = self._tensors(d)
        args: list[Any] = []
        for t, (_, ins, outs) in zip(tensors, d.boxes, strict=True):
            args += [t, list(ins + outs)]
        used = {w for _, ins, outs in d.boxes for w in ins + outs}
        fresh = len(d.types)
        result: list[int] = []
        for w in d.inputs + d.outputs:
            size = d.types[w].size
            if w in result:
                args += [_eye(size, exact, dtype), [w, fresh]]
                result.append(fresh)
                fresh += 1
                continue
            if w not in used:
                args += [_ones(size, exact, dtype), [w]]
                used.add(w)
            result.append(w)
        args.append(result)
        if len(args) == 1:  # the empty diagram: the number 1
            value = _ones(1, exact, dtype)
        else:
            value = opt_einsum.contract(*args, optimize="auto")
        if exact:
            value = np.asarray(value, dtype=object)
        return value.reshape(d.dom.size, d.cod.size)

    def __call__(self, d: Diagram, method: str = "auto") -> Morphism:
        """The kernel a diagram denotes; with predicates, the rows are normalised (conditioned).

        Finite diagrams are contracted as tensor networks (`method="contract"`); diagrams of other
        kernels (Gaussian) are composed layer by layer with the core's `>>`, `@` and structural
        kernels (`method="compose"`, also available for finite kernels).
        """
        if not isinstance(d, Diagram):
            raise TypeError(f"an interpretation evaluates diagrams, got {type(d).__name__}")
        if method not in ("auto", "contract", "compose"):
            raise ValidationError(f"method must be 'auto', 'contract' or 'compose', got {method!r}")
        finite = d.dom.is_finite and d.cod.is_finite and all(
            isinstance(self.meaning(b), Kernel | Predicate) for b, _, _ in d.boxes)
        if method == "compose" or not finite:
            return self._compose(d)
        a = self.array(d)
        if not d.is_causal:
            mass = B.total(a, -1)
            zero = np.asarray(B.zero_mask(mass))
            if zero.any():
                names = ", ".join(sorted({b.name for b, _, _ in d.boxes if b.kind == "predicate"}))
                rows = [d.dom.label(i) for i in np.flatnonzero(zero)[:5]] if d.dom != Unit else []
                where = f" (for inputs {rows})" if rows else ""
                raise ConditioningError(names, f"it has probability zero{where}")
            a = a / mass[:, None]
            if B.is_exact(a):
                a = B.simplify(a)
        if d.dom == Unit:
            return State(a[0], d.cod, validate=False)
        return Kernel(a, d.dom, d.cod, validate=False)

    def _kit(self, d: Diagram) -> tuple[Any, dict[str, Any]]:
        """The structural kernels (identity, copy, projection) of the kind of d's boxes."""
        meanings = {b.name: self.meaning(b) for b, _, _ in d.boxes}
        preds = [n for n, m in meanings.items() if isinstance(m, Predicate)]
        if preds:
            raise TypeError(f"predicates {preds} are evaluated by contraction (finite kernels)")
        if all(isinstance(m, Kernel) for m in meanings.values()) and (
                meanings or all(t.is_finite for t in d.types)):
            return finite, {"exact": self.exact}
        if all(isinstance(m, gaussian.LinearGaussian) for m in meanings.values()) and (
                meanings or all(t.is_euclidean for t in d.types)):
            return gaussian, {"dtype": torch.float64}
        kinds = sorted({f"{n}: {type(m).__name__}" for n, m in meanings.items()})
        raise TypeError(f"cannot evaluate a diagram mixing kinds of kernels ({', '.join(kinds)}); "
                        "use finite or Gaussian kernels throughout")

    def _compose(self, d: Diagram) -> Morphism:
        """Evaluate layer by layer: route the wires, then (identity @ box), with the core's `>>`."""
        kit, opts = self._kit(d)
        last_use: dict[int, int] = {}
        for k, (_, ins, _) in enumerate(d.boxes):
            for w in ins:
                last_use[w] = k
        for w in d.outputs:
            last_use[w] = len(d.boxes)
        result: Morphism | None = None
        cur = list(d.inputs)

        def route(target: list[int]) -> None:
            nonlocal result, cur
            if target == cur:
                return
            step = _routing(kit, opts, [d.types[w] for w in cur], cur, target)
            result = step if result is None else result >> step
            cur = list(target)

        for k, (b, ins, outs) in enumerate(d.boxes):
            keep = [w for w in dict.fromkeys(cur) if last_use.get(w, -1) > k]
            route(keep + list(ins))
            m = self.meaning(b)
            if keep:
                m = kit.identity(product(*(d.types[w] for w in keep)), **opts) @ m
            result = m if result is None else result >> m
            cur = keep + list(outs)
        route(list(d.outputs))
        if result is None:  # an identity wiring
            return kit.identity(d.dom, **opts)
        return result

    def validity(self, d: Diagram) -> B.Array:
        """The mass of each row before normalising: the probability of the predicates per input."""
        return B.total(self.array(d), -1)

    def equal(self, lhs: Diagram, rhs: Diagram, atol: float = 1e-10) -> bool:
        """Semantic equality: the two diagrams denote the same kernel (exactly, or within atol)."""
        if lhs.dom != rhs.dom or lhs.cod != rhs.cod:
            raise SpaceMismatchError("comparing diagrams", lhs.dom.__matmul__(lhs.cod),
                                     rhs.dom.__matmul__(rhs.cod))
        return same_kernel(self(lhs), self(rhs), atol)


def same_kernel(a: Morphism, b: Morphism, atol: float = 1e-10) -> bool:
    """Whether two kernels agree: exactly when both are exact, else within atol (same kind)."""
    if isinstance(a, Kernel) != isinstance(b, Kernel) or not hasattr(a, "allclose"):
        raise TypeError(f"cannot compare {type(a).__name__} with {type(b).__name__}")
    return bool(a.allclose(b, atol=atol))


def _routing(kit: Any, opts: dict[str, Any], types: list[Space], cur: list[int],
             target: list[int]) -> Morphism:
    """The structural kernel from wires `cur` to wires `target` (copies, discards, permutes)."""
    needed = {w: target.count(w) for w in cur}
    parts, expanded = [], []
    for t, w in zip(types, cur, strict=True):
        n = max(needed[w], 1)
        part = kit.identity(t, **opts)
        for _ in range(1, n):
            part = kit.copy(t, **opts) >> (kit.identity(t, **opts) @ part)
        parts.append(part)
        expanded += [w] * n
    step = parts[0]
    for part in parts[1:]:
        step = step @ part
    taken: dict[int, int] = {}
    keys = []
    for w in target:
        pos = [i for i, v in enumerate(expanded) if v == w][taken.get(w, 0)]
        taken[w] = taken.get(w, 0) + 1
        keys.append(pos)
    return step >> kit.projection(step.cod, *keys, **opts)


def evaluate(d: Diagram, assignment: Mapping[str | Box, Meaning] | Interpretation) -> Kernel:
    """Evaluate a diagram under an interpretation (or a mapping of box names to kernels)."""
    interp = assignment if isinstance(assignment, Interpretation) else Interpretation(assignment)
    return interp(d)


def spaces_of(d: Diagram) -> dict[str, tuple[Space, Space, str]]:
    """The type of every generator by name: (dom, cod, kind); raises if a name is reused."""
    out: dict[str, tuple[Space, Space, str]] = {}
    for b in d.generators:
        sig = (b.box_dom, b.box_cod, b.kind)
        if out.setdefault(b.name, sig) != sig:
            raise ValidationError(f"box name {b.name!r} is used for two different boxes")
    return out
