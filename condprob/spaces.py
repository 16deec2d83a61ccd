"""Spaces: what a kernel's inputs and outputs are.

A space is a product of atomic factors. Atomic factors are finite sets of labelled outcomes
(`FiniteSpace`), Euclidean spaces R^n (`Euclidean`) or the countable spaces of finite sequences over
a base space (`SequenceSpace`: language-model prefixes, point-process histories). The product of no factors is the unit space
`Unit` (one point); a state is a kernel out of `Unit`. Products flatten: (X @ Y) @ Z == X @ (Y @ Z).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Iterator, Sequence
from functools import cached_property, lru_cache
from numbers import Integral

from condprob.errors import ValidationError

FactorKey = int | str


class Space:
    """A product of atomic factors. Use `FiniteSpace`, `Euclidean`, `Unit` and `@` to build one."""

    factors: tuple[Space, ...]

    def __matmul__(self, other: Space) -> Space:
        """The product space X @ Y (factors concatenated)."""
        if not isinstance(other, Space):
            return NotImplemented
        return product(self, other)

    @property
    def ndim(self) -> int:
        """Number of atomic factors."""
        return len(self.factors)

    @property
    def is_finite(self) -> bool:
        return all(isinstance(f, FiniteSpace) for f in self.factors)

    @property
    def is_euclidean(self) -> bool:
        return all(isinstance(f, Euclidean) for f in self.factors)

    @property
    def names(self) -> tuple[str | None, ...]:
        return tuple(f.name for f in self.factors)

    def factor_index(self, key: FactorKey) -> int:
        """Position of a factor given by its name or index (negative indices allowed)."""
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise ValidationError(f"a factor is named by an int or a str, got {key!r}")
        if isinstance(key, int):
            if not -self.ndim <= key < self.ndim:
                raise ValidationError(f"factor index {key} out of range for {self}")
            return key % self.ndim
        hits = [i for i, f in enumerate(self.factors) if f.name == key]
        if not hits:
            raise ValidationError(f"no factor named {key!r} in {self}")
        if len(hits) > 1:
            raise ValidationError(f"factor name {key!r} is ambiguous in {self}; use an index")
        return hits[0]

    def factor_indices(self, keys: FactorKey | Iterable[FactorKey]) -> tuple[int, ...]:
        """Positions of several factors, checked for repeats."""
        if isinstance(keys, int | str):
            keys = (keys,)
        idx = tuple(self.factor_index(k) for k in keys)
        if len(set(idx)) != len(idx):
            raise ValidationError(f"factors {tuple(keys)} repeat a factor of {self}")
        return idx

    def split(self, keys: FactorKey | Iterable[FactorKey]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Positions of the given factors and of the others, both non-empty (as disintegration
        along `keys` needs)."""
        return _split(self, self._keys(keys))

    def select(self, keys: FactorKey | Iterable[FactorKey]) -> Space:
        """The sub-product of the given factors, in the given order."""
        return _select(self, self._keys(keys))

    def _split_plan(self, keys: FactorKey | Iterable[FactorKey]
                    ) -> tuple[tuple[int, ...] | None, Space, Space]:
        """What disintegration along `keys` needs, in one remembered look-up: the order of the
        factors that puts those of `keys` first (None when it is the present order), and the
        sub-products of both sides of `split(keys)`."""
        return _split_plan(self, (keys,) if type(keys) in (int, str) else self._keys(keys))

    def _keys(self, keys: FactorKey | Iterable[FactorKey]) -> tuple[FactorKey, ...]:
        keys = (keys,) if isinstance(keys, int | str) else tuple(keys)
        for k in keys:
            if isinstance(k, bool) or not isinstance(k, int | str):
                self.factor_index(k)  # raises the error that names the bad key
        return keys

    def _split(self, keys: tuple[FactorKey, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        xs = self.factor_indices(keys)
        ys = tuple(i for i in range(self.ndim) if i not in xs)
        if not xs or not ys:
            raise ValidationError(f"splitting along {keys} must leave factors on both sides of {self}")
        return xs, ys

    def _select(self, keys: tuple[FactorKey, ...]) -> Space:
        return ProductSpace(tuple(self.factors[i] for i in self.factor_indices(keys)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return self.factors == other.factors

    def __hash__(self) -> int:
        return hash(self.factors)

    def __repr__(self) -> str:
        if not self.factors:
            return "Unit"
        return " @ ".join(repr(f) for f in self.factors)

    # Finite products -----------------------------------------------------------------------
    def _require_finite(self) -> tuple[FiniteSpace, ...]:
        if not self.is_finite:
            raise TypeError(f"{self} is not a finite space")
        return self.factors  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, ...]:
        """Sizes of the finite factors."""
        return tuple(f.size for f in self._require_finite())

    @property
    def size(self) -> int:
        """Number of outcomes of a finite space (1 for the unit space)."""
        return math.prod(self.shape)

    @property
    def labels(self) -> tuple[Hashable, ...]:
        """Outcomes in order: the raw labels for one factor, tuples of labels for products."""
        fs = self._require_finite()
        if len(fs) == 1:
            return fs[0].labels
        return tuple(itertools.product(*(f.labels for f in fs)))

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.labels)

    def __len__(self) -> int:
        return self.size

    def __contains__(self, label: object) -> bool:
        try:
            self.index(label)  # type: ignore[arg-type]
        except ValidationError:
            return False
        return True

    def index(self, label: Hashable) -> int:
        """Flat index of an outcome (a tuple of labels for a product)."""
        fs = self._require_finite()
        if len(fs) == 1:
            return fs[0].index(label)
        if not isinstance(label, tuple) or len(label) != len(fs):
            raise ValidationError(f"{label!r} is not an outcome of {self}: expected a {len(fs)}-tuple")
        flat = 0
        for f, lab in zip(fs, label, strict=True):
            flat = flat * f.size + f.index(lab)
        return flat

    def label(self, index: int) -> Hashable:
        """The outcome at a flat index, 0 <= index < size."""
        labels = self.labels
        if isinstance(index, bool) or not isinstance(index, Integral) or \
                not 0 <= index < len(labels):
            raise ValidationError(f"index {index!r} is not an outcome index of {self}: expected an "
                                  f"integer in [0, {len(labels)})")
        return labels[index]

    @property
    def dim(self) -> int:
        """Dimension of a Euclidean space (sum over factors)."""
        if not self.is_euclidean:
            raise TypeError(f"{self} is not a Euclidean space")
        return sum(f.dim for f in self.factors)  # type: ignore[attr-defined]


class FiniteSpace(Space):
    """A finite set of labelled outcomes; labels are any distinct hashables."""

    def __init__(self, labels: Iterable[Hashable] | int, name: str | None = None):
        given = labels
        if isinstance(labels, int):
            labels = range(labels)
        try:
            labs = tuple(labels)
        except TypeError:
            raise ValidationError(f"labels must be an iterable of labels or a number of outcomes, "
                                  f"got {given!r}") from None
        if not labs:
            raise ValidationError(f"a finite space needs at least one label, got {given!r}")
        try:
            self._index = {lab: i for i, lab in enumerate(labs)}
        except TypeError as exc:
            raise ValidationError(f"labels must be hashable: {exc}") from None
        if len(self._index) != len(labs):
            dup = sorted({repr(x) for x in labs if labs.count(x) > 1})
            raise ValidationError(f"labels of a space must be distinct; repeated: {', '.join(dup)}")
        self._labels = labs
        self.name = name
        self.factors = (self,)
        self._hash = hash((labs, name))

    @property
    def labels(self) -> tuple[Hashable, ...]:
        return self._labels

    @property
    def size(self) -> int:
        return len(self._labels)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self._labels),)

    def index(self, label: Hashable) -> int:
        try:
            return self._index[label]
        except (KeyError, TypeError):
            raise ValidationError(f"unknown label {label!r} for {self}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        if not isinstance(other, FiniteSpace):
            return isinstance(other, ProductSpace) and other.factors == (self,)
        return self is other or (self._labels == other._labels and self.name == other.name)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        labs = ", ".join(map(str, self._labels[:6])) + (", ..." if self.size > 6 else "")
        return f"{self.name or 'Space'}{{{labs}}}"


class Euclidean(Space):
    """The Euclidean space R^dim, optionally named."""

    def __init__(self, dim: int, name: str | None = None):
        if not isinstance(dim, int) or dim < 1:
            raise ValidationError(f"a Euclidean space needs a positive integer dimension, got {dim!r}")
        self._dim = dim
        self.name = name
        self.factors = (self,)

    @property
    def dim(self) -> int:
        return self._dim

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        if not isinstance(other, Euclidean):
            return isinstance(other, ProductSpace) and other.factors == (self,)
        return self is other or (self._dim == other._dim and self.name == other.name)

    def __hash__(self) -> int:
        return hash(("R", self._dim, self.name))

    def __repr__(self) -> str:
        return f"{self.name + ':' if self.name else ''}R^{self._dim}"


class SequenceSpace(Space):
    """Finite sequences over a base space (of any length, the empty one included): the token
    prefixes of a language model (`SequenceSpace(vocab, "prefix")`) or the event histories of a
    point process (`SequenceSpace(marks, "history")`). Equal when base and name are."""

    def __init__(self, base: Space, name: str | None = None):
        if not isinstance(base, Space):
            raise ValidationError(f"the base of a sequence space must be a Space, got {base!r}")
        self.base = base
        self.name = name
        self.factors = (self,)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        if not isinstance(other, SequenceSpace):
            return isinstance(other, ProductSpace) and other.factors == (self,)
        return self is other or (self.base == other.base and self.name == other.name)

    def __hash__(self) -> int:
        return hash(("seq", self.base, self.name))

    def __repr__(self) -> str:
        return f"{self.name or 'Sequences'}[{self.base!r}]"


class ProductSpace(Space):
    """A product of atomic factors (flattened); `ProductSpace(())` is the unit space."""

    def __init__(self, factors: Sequence[Space]):
        flat: tuple[Space, ...] = ()
        for f in factors:
            if not isinstance(f, Space):
                raise ValidationError(f"{f!r} is not a Space")
            flat += f.factors
        self.factors = flat
        self.name = None
        self._hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:  # computed once, when first asked (the factors never change)
            self._hash = hash(self.factors)
        return self._hash

    # The factors never change, so the sizes are computed once (hot operations ask for them).
    @cached_property
    def shape(self) -> tuple[int, ...]:
        """Sizes of the finite factors."""
        return Space.shape.fget(self)

    @cached_property
    def size(self) -> int:
        """Number of outcomes of a finite space (1 for the unit space)."""
        return math.prod(self.shape)


def product(*spaces: Space) -> Space:
    """The product of spaces; a product of one atomic factor is that factor."""
    p = ProductSpace(spaces)
    return p.factors[0] if len(p.factors) == 1 else p


@lru_cache(maxsize=64)
def _split(space: Space, keys: tuple[FactorKey, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """`Space.split`, remembered: spaces never change, and hot operations split the same ones."""
    return space._split(keys)


@lru_cache(maxsize=64)
def _split_plan(space: Space, keys: tuple[FactorKey, ...]
                ) -> tuple[tuple[int, ...] | None, Space, Space]:
    """`Space._split_plan`, remembered."""
    xs, ys = _split(space, keys)
    order = xs + ys
    return (None if order == tuple(range(space.ndim)) else order,
            _select(space, xs), _select(space, ys))


@lru_cache(maxsize=64)
def _select(space: Space, keys: tuple[FactorKey, ...]) -> Space:
    """`Space.select`, remembered."""
    return space._select(keys)


Unit: Space = ProductSpace(())
"""The one-point space: states are kernels Unit -> X, effects are X -> Unit."""
