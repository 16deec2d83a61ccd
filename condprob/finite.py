"""Finite Markov kernels: states, channels and predicates on finite spaces.

A `Kernel` c : X -> D(Y) is a row-stochastic matrix of shape (*batch, |X|, |Y|); a `State` is a
kernel out of the unit space, shape (*batch, 1, |Y|). Entries are torch tensors (float64 by default,
float32 allowed, autograd flows through every operation) or, in the exact backend, numpy object
arrays of exact rationals (Fractions in, held as `gmpy2.mpq`) or sympy numbers and symbols.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import pyro.distributions as pdist
import sympy
import torch

from condprob import backend as B
from condprob.conditioning import Disintegration
from condprob.errors import ConditioningError, CondprobError, SpaceMismatchError, ValidationError
from condprob.protocol import Morphism, SampleShape, categorical_draws, check_composable
from condprob.spaces import FactorKey, FiniteSpace, Space, Unit, product
from condprob.tolerance import check_probabilities

Array = B.Array


def _as_space(space: Space | Iterable[Hashable] | int, name: str | None = None) -> Space:
    if isinstance(space, Space):
        if not space.is_finite:
            raise ValidationError(f"{space} is not a finite space")
        return space
    return FiniteSpace(space, name=name)


def _as_array(data: Any, exact: bool | None, dtype: torch.dtype | None) -> Array:
    """Convert input data to the backend: exact if asked or if it holds Fractions/sympy numbers."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValidationError(f"dtype must be a floating torch dtype, got {dtype!r}")
    if isinstance(data, torch.Tensor | np.ndarray) and data.dtype in (
            torch.complex64, torch.complex128, np.complex64, np.complex128):
        raise ValidationError(f"probabilities must be real numbers, got dtype {data.dtype}")
    try:
        return _convert(data, exact, dtype)
    except (ValueError, TypeError) as err:
        if isinstance(err, CondprobError):
            raise
        raise ValidationError(f"cannot read {type(data).__name__} as an array of probabilities "
                              f"(a rectangular nest of numbers): {err}") from None


def _convert(data: Any, exact: bool | None, dtype: torch.dtype | None) -> Array:
    if isinstance(data, np.ndarray) and data.dtype == object:
        return data if exact is not False else B.to_float(data, dtype or torch.float64)
    if exact is None and not isinstance(data, torch.Tensor):
        flat = np.array(data, dtype=object).ravel()
        exact = any(isinstance(x, B.EXACT_TYPES) for x in flat)
    if exact:
        return B.to_exact(data)
    if isinstance(data, torch.Tensor):
        if not data.is_floating_point():
            data = data.to(dtype or torch.float64)
        return data.to(dtype) if dtype is not None else data
    # a copy: a state must not share memory with a numpy array the caller may write to (torch's
    # version counter, which `_least_entry` trusts, does not see numpy's writes)
    return torch.tensor(np.asarray(data, dtype=np.float64), dtype=dtype or torch.float64)


class Kernel(Morphism):
    """A finite Markov kernel c : X -> D(Y), stored as a row-stochastic matrix (*batch, |X|, |Y|).

    `f >> g` composes (first f, then g: matrix product), `f @ g` is the tensor product (Kronecker
    product of matrices), `kernel.at(x)` is the state c(x), `kernel(x)` the same as a
    `pyro.distributions.Categorical` so kernels drop into Pyro models.
    """

    _floor: tuple[torch.Tensor, int, float] | None = None
    """(matrix, its version, its least entry) as validation found them; see `_least_entry`."""

    def __init__(self, matrix: Any, dom: Space | Iterable[Hashable] | int,
                 cod: Space | Iterable[Hashable] | int, *, exact: bool | None = None,
                 dtype: torch.dtype | None = None, validate: bool = True):
        self.dom = _as_space(dom)
        self.cod = _as_space(cod)
        self.array = _as_array(matrix, exact, dtype)
        self._sharp = False
        if validate:
            self._validate()

    @classmethod
    def _make(cls, array: Array, dom: Space, cod: Space, sharp: bool = False) -> Kernel:
        """Build without validation (for results of operations that preserve stochasticity)."""
        obj = object.__new__(Kernel if dom.factors else State)  # a State when dom is Unit
        obj.dom = dom
        obj.cod = cod
        obj.array = array
        obj._sharp = sharp
        return obj

    def _validate(self) -> None:
        a = self.array
        want = (self.dom.size, self.cod.size)
        if a.ndim < 2 or tuple(a.shape[-2:]) != want:
            raise ValidationError(
                f"matrix of shape {tuple(a.shape)} does not fit {self.dom} -> {self.cod}: "
                f"expected (*batch, {want[0]}, {want[1]})")
        if B.is_exact(a):
            rows = B.total(a, -1)
            if B.is_symbolic(a):
                bad = [r for r in rows.ravel() if sympy.simplify(r - 1) != 0]
            else:
                if any(x < 0 for x in a.ravel()):
                    raise ValidationError(f"negative probability in kernel {self.dom} -> {self.cod}")
                bad = [r for r in rows.ravel() if r != 1]
            if bad:
                raise ValidationError(
                    f"rows of a kernel {self.dom} -> {self.cod} must sum to 1; a row sums to {bad[0]} "
                    "(floats are read as their shortest decimal: give exact entries as Fractions, "
                    "or build a float kernel and call .to_exact(), which normalises its rows)")
            return
        least = check_probabilities(a, f"the probabilities of a state on {self.cod}"
                                    if self.dom == Unit
                                    else f"the rows of a kernel {self.dom} -> {self.cod}")
        if least > 0 and not a.is_inference():  # inference tensors keep no version counter
            self._floor = (a, a._version, least)

    def _least_entry(self) -> float:
        """The least entry of the matrix, when validation found it positive and the matrix has
        not been replaced or changed in place since (its version counter); else 0.0. A positive
        one spares operations their checks for zero masses (a sum of positive numbers is
        positive). Writes that bypass the version counter (through `.data` or a numpy view) go
        unseen here as they do by autograd."""
        floor = self._floor
        if floor is None or floor[0] is not self.array or floor[1] != floor[0]._version:
            return 0.0
        return floor[2]

    # Basic properties ----------------------------------------------------------------------
    @property
    def exact(self) -> bool:
        """True in the exact backend (Fractions / sympy)."""
        return B.is_exact(self.array)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[:-2])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def matrix(self) -> Array:
        """The (*batch, |X|, |Y|) matrix."""
        return self.array

    def __repr__(self) -> str:
        kind = "exact" if self.exact else str(self.array.dtype).replace("torch.", "")
        batch = f", batch {self.batch_shape}" if self.batch_shape else ""
        return f"Kernel({self.dom} -> {self.cod}, {kind}{batch})"

    def to_float(self, dtype: torch.dtype = torch.float64) -> Kernel:
        """The same kernel in the float backend."""
        return self._make(B.to_float(self.array, dtype), self.dom, self.cod, self._sharp)

    def to_exact(self) -> Kernel:
        """The same kernel in the exact backend, with rows that sum to exactly 1.

        Each float is read as its shortest decimal (0.1 -> 1/10) and each row is then divided by
        its exact sum: [1/3, 2/3] in float64 reads as 3333333333333333/10^16 and
        6666666666666666/10^16 and becomes exactly [1/3, 2/3], not a row of mass
        9999999999999999/10^16. The rows of a
        float kernel are within `condprob.tolerance` of 1, so no entry moves by more than that.
        """
        a = B.to_exact(self.array)
        if not self.exact:
            a = B.simplify(a / B.total(a, -1, keepdim=True))
        return self._make(a, self.dom, self.cod, self._sharp)

    def _coerce(self, other: Kernel) -> tuple[Array, Array]:
        """Bring two kernels to one backend: structural (0/1) kernels adopt the other's."""
        a, b = self.array, other.array
        if type(a) is type(b) is torch.Tensor and a.dtype == b.dtype:  # the common case
            return a, b
        exact = B.is_exact(a)
        if exact != B.is_exact(b):
            if other._sharp:
                b = B.to_exact(b) if exact else B.to_float(b, a.dtype)
            elif self._sharp:
                a = B.to_float(a, b.dtype) if exact else B.to_exact(a)
            else:
                raise TypeError(
                    "cannot mix exact and float kernels; convert one with .to_exact() or "
                    ".to_float()")
        elif not exact and a.dtype != b.dtype:
            dt = torch.promote_types(a.dtype, b.dtype)
            a, b = a.to(dt), b.to(dt)
        return a, b

    # Category structure --------------------------------------------------------------------
    def then(self, other: Morphism) -> Kernel:
        """Sequential composition: (f >> g)(x)(z) = sum_y f(x)(y) g(y)(z)."""
        if not isinstance(other, Kernel):
            return super().then(other)
        if isinstance(other, _Graph):
            # f >> <id, c> : w -> (x, y) with weight f(w)(x) c(x)(y), without the |X|^2 |Y| matrix
            a, b = self._coerce(other.inner)
            # (*batch, W, X, 1) * (*batch, 1, X, Y): an unbatched c broadcasts as it is
            out = B.unsqueeze(a, -1) * (b if b.ndim == 2 else B.unsqueeze(b, -3))
            return self._make(B.merge_last(out), self.dom, other.cod)
        a, b = self._coerce(other)
        return self._make(a @ b, self.dom, other.cod, self._sharp and other._sharp)

    def tensor(self, other: Morphism) -> Kernel:
        """Parallel product: (f @ g)((x1, x2))((y1, y2)) = f(x1)(y1) g(x2)(y2)."""
        if not isinstance(other, Kernel):
            return super().tensor(other)
        a, b = self._coerce(other)
        x1, y1 = a.shape[-2:]
        x2, y2 = b.shape[-2:]
        prod = a[..., :, None, :, None] * b[..., None, :, None, :]
        batch = prod.shape[:-4]
        out = prod.reshape(*batch, x1 * x2, y1 * y2)
        return self._make(out, product(self.dom, other.dom), product(self.cod, other.cod),
                          self._sharp and other._sharp)

    # Evaluation ----------------------------------------------------------------------------
    def _row(self, x: Hashable) -> Array:
        return self.array[..., self.dom.index(x), :]

    def at(self, x: Hashable) -> State:
        """The state c(x) on the codomain."""
        return self._make(self._row(x)[..., None, :], Unit, self.cod)  # type: ignore[return-value]

    def __call__(self, x: Hashable) -> pdist.Categorical:
        """c(x) as a `pyro.distributions.Categorical` over the codomain's indices."""
        return self.at(x).to_pyro()

    def prob(self, x: Hashable, y: Hashable) -> Any:
        """c(x)(y)."""
        return B.unwrap(self.array[..., self.dom.index(x), self.cod.index(y)])

    def log_prob(self, x: Hashable, y: Any) -> Any:
        """log c(x)(y) for an outcome label y, or for index tensors as in `State.log_prob`
        (-inf where it is zero)."""
        return self.at(x).log_prob(y)

    def sample(self, x: Hashable, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices of outcomes drawn from c(x), shape sample_shape + batch_shape."""
        return self.at(x).sample(sample_shape, generator=generator)

    # Marginals and predicates --------------------------------------------------------------
    def marginal(self, *keys: FactorKey) -> Kernel:
        """Marginal of the codomain on the given factors (by name or index), in that order."""
        keep = self.cod.factor_indices(keys)
        shape = self.cod.shape
        nb = len(self.batch_shape) + 1
        a = self.array.reshape(*self.array.shape[:-1], *shape)
        drop = tuple(nb + i for i in range(len(shape)) if i not in keep)
        a = B.total(a, drop) if drop else a
        kept_sorted = sorted(keep)
        order = tuple(range(nb)) + tuple(nb + kept_sorted.index(k) for k in keep)
        a = B.permute(a, order)
        new_cod = self.cod.select(keep)
        return self._make(a.reshape(*self.array.shape[:-1], new_cod.size), self.dom, new_cod,
                          self._sharp)

    def pullback(self, predicate: Predicate) -> Predicate:
        """Predicate transformation c << p: (c << p)(x) = sum_y c(x)(y) p(y)."""
        if predicate.space != self.cod:
            raise SpaceMismatchError("pullback of a predicate", self.cod, predicate.space)
        a, v = self._coerce_values(predicate.values)
        return Predicate(B.total(a * B.unsqueeze(v, -2), -1), self.dom,
                         name=f"({predicate.name} pulled back)", validate=False)

    def __lshift__(self, predicate: Predicate) -> Predicate:
        return self.pullback(predicate)

    def _coerce_values(self, v: Array) -> tuple[Array, Array]:
        a = self.array
        if B.is_exact(a) != B.is_exact(v):
            v = B.to_exact(v) if B.is_exact(a) else B.to_float(v, a.dtype)
        elif not B.is_exact(a) and v.dtype != a.dtype:
            v = v.to(a.dtype)
        return a, v

    # Exact operations ----------------------------------------------------------------------
    def _invert(self, prior: Morphism) -> Kernel:
        """Bayesian inverse c† : Y -> X; on outcomes y of probability zero, c†(y) = prior."""
        if not isinstance(prior, State):
            return super()._invert(prior)
        p, c = prior._coerce(self)
        joint = B.swap_last(p) * c                      # (*b, X, Y)
        py = p @ c                                      # (*b, 1, Y): one matrix-vector product
        # where no product of a prior entry and a channel entry underflows, every py(y) > 0
        least = prior._least_entry() * self._least_entry()
        if least and least >= torch.finfo(p.dtype).tiny:
            joint = B.divide(joint, py, in_place=True)
        else:
            joint = B.safe_divide(joint, py, lambda: B.swap_last(p), in_place=True)
        return self._make(B.swap_last(joint), self.cod, self.dom)

    def inverse(self, prior: State) -> Kernel:
        """Bayesian inversion with respect to `prior` (see `condprob.invert`)."""
        check_composable(prior, self)
        return self._invert(prior)

    # Comparisons ---------------------------------------------------------------------------
    def allclose(self, other: Kernel, atol: float = 1e-10, rtol: float = 0.0) -> bool:
        """Same spaces and equal matrices: exactly in the exact backend, within atol otherwise."""
        if self.dom != other.dom or self.cod != other.cod:
            return False
        if self.exact and other.exact:
            return B.equal(self.array, other.array)
        a, b = B.to_float(self.array), B.to_float(other.array)
        return bool(torch.allclose(*torch.broadcast_tensors(a, b), atol=atol, rtol=rtol))


class State(Kernel):
    """A distribution on a finite space: a kernel Unit -> D(X), stored as (*batch, 1, |X|).

    `state >> kernel` pushes forward, `state @ other` is the product state, `state | p` is the
    Pearl update on a predicate or event, `state.marginal("name")` marginalises.
    """

    def __init__(self, probs: Any, space: Space | Iterable[Hashable] | int | None = None, *,
                 exact: bool | None = None, dtype: torch.dtype | None = None,
                 validate: bool = True, name: str | None = None):
        arr = _as_array(probs, exact, dtype)
        if arr.ndim < 1:
            raise ValidationError("a state needs at least one outcome")
        if space is None:
            space = arr.shape[-1]
        super().__init__(arr[..., None, :], Unit, _as_space(space, name), validate=validate)

    @classmethod
    def from_dict(cls, probs: Mapping[Hashable, Any], space: Space | None = None,
                  name: str | None = None, **kwargs: Any) -> State:
        """A state from {label: probability}; labels missing from the dict get zero."""
        space = space if space is not None else FiniteSpace(probs.keys(), name=name)
        zero = B.ZERO if any(isinstance(v, B.EXACT_TYPES) for v in probs.values()) else 0.0
        for lab in probs:
            space.index(lab)
        return cls([probs.get(lab, zero) for lab in space.labels], space, **kwargs)

    @classmethod
    def uniform(cls, space: Space | Iterable[Hashable] | int, exact: bool = False,
                dtype: torch.dtype = torch.float64) -> State:
        """The uniform distribution on a finite space."""
        space = _as_space(space)
        n = space.size
        probs = [Fraction(1, n)] * n if exact else torch.full((n,), 1.0 / n, dtype=dtype)
        return cls(probs, space, exact=exact, validate=False)

    @classmethod
    def point(cls, label: Hashable, space: Space | Iterable[Hashable] | int,
              exact: bool = False, dtype: torch.dtype = torch.float64) -> State:
        """The Dirac (point) state at `label`."""
        space = _as_space(space)
        arr = B.one_hot(np.array([space.index(label)]), space.size, exact, dtype)
        return cls._make(arr, Unit, space, sharp=True)  # type: ignore[return-value]

    @classmethod
    def from_pyro(cls, dist: torch.distributions.Distribution,
                  space: Space | Iterable[Hashable] | None = None) -> State:
        """A state from a Pyro/torch Categorical, OneHotCategorical or Bernoulli distribution."""
        if isinstance(dist, torch.distributions.Bernoulli):
            p = dist.probs
            return cls(torch.stack([1 - p, p], -1), space if space is not None else [0, 1])
        if isinstance(dist, torch.distributions.Categorical | torch.distributions.OneHotCategorical):
            probs = dist.probs
            return cls(probs, space if space is not None else probs.shape[-1])
        raise TypeError(f"cannot convert {type(dist).__name__} to a finite State; "
                        "supported: Categorical, OneHotCategorical, Bernoulli")

    @property
    def space(self) -> Space:
        return self.cod

    @property
    def probs(self) -> Array:
        """Probabilities, shape (*batch, |X|)."""
        return B.squeeze(self.array, -2)

    def __repr__(self) -> str:
        if self.batch_shape or self.cod.size > 12:
            return f"State(on {self.cod}, batch {self.batch_shape})"
        vals = self.probs.tolist()
        body = ", ".join(f"{lab!r}: {v}" for lab, v in zip(self.cod.labels, vals, strict=True))
        return f"State({{{body}}})"

    def as_dict(self) -> dict[Hashable, Any]:
        """{label: probability} (unbatched states only)."""
        if self.batch_shape:
            raise ValidationError("as_dict needs an unbatched state")
        return dict(zip(self.cod.labels, self.probs.tolist(), strict=True))

    def prob(self, event: Any) -> Any:
        """Probability of an outcome label, or of an event (see `Predicate.coerce`)."""
        if not isinstance(event, Predicate | set | frozenset | Mapping) and not callable(event) \
                and event in self.cod:
            return B.unwrap(self.probs[..., self.cod.index(event)])
        return self.validity(Predicate.coerce(event, self.cod))

    def __call__(self, x: Hashable = ()) -> pdist.Categorical:
        """The state as a `pyro.distributions.Categorical` (its one input is the unit point)."""
        return self.at(x).to_pyro()

    def log_prob(self, value: Any) -> Any:
        """log probability of outcomes: index tensors (as in torch.distributions) or a label."""
        if isinstance(value, torch.Tensor):
            probs = B.to_float(self.probs)
            n = probs.shape[-1]
            if value.is_complex() or (value.is_floating_point()
                                      and bool((value != value.round()).any())):
                raise ValidationError(f"outcome indices must be whole numbers, got {value.dtype} "
                                      "values that are not (NaN or a fraction)")
            idx = value.long()
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
                raise ValidationError(f"outcome indices must lie in [0, {n}), got indices in "
                                      f"[{int(idx.min())}, {int(idx.max())}]")
            batch = torch.broadcast_shapes(idx.shape, probs.shape[:-1])
            p = probs.expand(*batch, probs.shape[-1]).gather(-1, idx.expand(batch)[..., None])
            return torch.log(p[..., 0])
        p = B.unwrap(self.probs[..., self.cod.index(value)])
        return B.exact_log(p) if self.exact else torch.log(p)

    def sample(self, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices drawn from the state, shape sample_shape + batch_shape."""
        return categorical_draws(B.to_float(self.probs).detach(), sample_shape,
                                 generator=generator)

    def sample_labels(self, n: int, *, generator: torch.Generator | None = None) -> list[Hashable]:
        """n labels drawn from an unbatched state."""
        if self.batch_shape:
            raise ValidationError("sample_labels needs an unbatched state; use sample()")
        labels = self.cod.labels
        return [labels[i] for i in self.sample((n,), generator=generator).tolist()]

    def to_pyro(self) -> pdist.Categorical:
        """The state as a `pyro.distributions.Categorical` over indices (float64 if exact). It holds
        the probabilities as given and their logarithms (torch would clamp zeros to a finite log),
        so impossible outcomes have log_prob exactly -inf."""
        probs = B.to_float(self.probs) if self.exact else self.probs
        law = pdist.Categorical(logits=torch.log(probs))
        law.probs = probs
        return law

    # Predicates ----------------------------------------------------------------------------
    def validity(self, predicate: Any) -> Any:
        """Validity sigma |= p = sum_x sigma(x) p(x) (the probability of an event)."""
        p = Predicate.coerce(predicate, self.cod)
        s, v = self._coerce_values(p.values)
        return B.unwrap(B.total(s[..., 0, :] * v, -1))

    def expectation(self, f: Callable[[Hashable], Any] | Predicate) -> Any:
        """E[f] = sum_x sigma(x) f(x) for a function of labels (or a predicate)."""
        if isinstance(f, Predicate):
            return self.validity(f)
        vals = [f(lab) for lab in self.cod.labels]
        p = Predicate(vals, self.cod, name=getattr(f, "__name__", "f"), validate=False,
                      exact=self.exact)
        return self.validity(p)

    def __or__(self, evidence: Any) -> State:
        """Pearl update `state | evidence`."""
        return self._update(evidence)

    def _update(self, evidence: Any) -> State:
        """Pearl: (sigma | p)(x) = sigma(x) p(x) / (sigma |= p); ConditioningError if that is 0."""
        p = Predicate.coerce(evidence, self.cod)
        s, v = self._coerce_values(p.values)
        w = B.squeeze(s, -2) * v
        mass = B.total(w, -1, keepdim=True)
        if not B.all_nonzero(mass):  # one reduction guards the division
            zero = B.zero_mask(B.squeeze(mass, -1))
            where = "" if not self.batch_shape else \
                f" (batch entries {np.argwhere(np.asarray(zero)).tolist()[:5]})"
            raise ConditioningError(p.name, f"it has probability zero{where}")
        return self._make(B.unsqueeze(B.divide(w, mass), -2), Unit,  # type: ignore[return-value]
                          self.cod)

    def _condition(self, event: Any) -> State:
        """Exact conditioning on a sharp event (an outcome set, a {factor: label} mapping, ...)."""
        p = Predicate.coerce(event, self.cod)
        if not p.is_sharp():
            raise ValidationError(
                f"condition() needs an event (a 0/1 predicate); {p.name} is fuzzy: use update()")
        return self._update(p)

    def _disintegrate(self, along: Any) -> Disintegration:
        """joint on X @ Y -> (marginal on X, kernel X -> Y); null rows get the Y-marginal."""
        order, xspace, yspace = self.cod._split_plan(along)
        a = self.array
        batch = a.shape[:-2]
        if order is not None:
            nb = len(batch)
            a = B.permute(a.reshape(*batch, *self.cod.shape),
                          tuple(range(nb)) + tuple(nb + i for i in order))
        joint = a.reshape(*batch, xspace.size, yspace.size)
        mx = B.total(joint, -1, keepdim=True)           # (*b, X, 1)
        # every row of a positive joint has positive mass; else one reduction of the mask decides
        positive = self._least_entry() > 0
        null = B.false_mask(mx.shape[:-1], mx) if positive else B.zero_mask(B.squeeze(mx, -1))
        if positive or not null.any():
            cond = B.divide(joint, mx)
        else:
            cond = B.safe_divide(joint, mx, lambda: B.expand(B.total(joint, -2, keepdim=True),
                                                             joint.shape))
        marginal = self._make(B.swap_last(mx), Unit, xspace)
        kernel = self._make(cond, xspace, yspace)
        return Disintegration(marginal, kernel, null)

    # Information measures ------------------------------------------------------------------
    def entropy(self) -> Any:
        """Shannon entropy H = -sum_x p(x) log p(x) in nats."""
        p = self.probs
        return B.unwrap(-B.total(B.xlogy(p, p), -1))

    def kl(self, other: State) -> Any:
        """KL(self || other) = sum_x p(x) log(p(x) / q(x)) (inf where q = 0 < p)."""
        if other.cod != self.cod:
            raise SpaceMismatchError("KL divergence", self.cod, other.cod)
        p, q = self._coerce(other)
        p, q = p[..., 0, :], q[..., 0, :]
        return B.unwrap(B.total(B.xlogy(p, p) - B.xlogy(p, q), -1))

    def tvd(self, other: State) -> Any:
        """Total variation distance 1/2 sum_x |p(x) - q(x)|."""
        if other.cod != self.cod:
            raise SpaceMismatchError("total variation distance", self.cod, other.cod)
        p, q = self._coerce(other)
        return B.unwrap(B.total(B.absolute(p[..., 0, :] - q[..., 0, :]), -1) / 2)


class Predicate:
    """A predicate (or likelihood) on a finite space: a nonnegative function p : X -> R.

    Events are sharp predicates (values 0/1). `p & q` multiplies pointwise, `~p` is 1 - p.
    `name` is how errors refer to it (e.g. a zero-probability event).
    """

    def __init__(self, values: Any, space: Space | Iterable[Hashable] | int, name: str = "predicate",
                 *, exact: bool | None = None, dtype: torch.dtype | None = None,
                 validate: bool = True):
        self.space = _as_space(space)
        self.values = _as_array(values, exact, dtype)
        self.name = name
        if validate:
            v = self.values
            if tuple(v.shape[-1:]) != (self.space.size,):
                raise ValidationError(
                    f"predicate {name} has shape {tuple(v.shape)}; expected (*batch, {self.space.size})")
            if B.is_exact(v):
                if not B.is_symbolic(v) and any(x < 0 for x in v.ravel()):
                    raise ValidationError(f"predicate {name} has a negative value")
            elif not torch.isfinite(v).all() or (v < 0).any():
                raise ValidationError(f"predicate {name} must be finite and nonnegative")

    @classmethod
    def event(cls, outcomes: Iterable[Hashable] | Callable[[Hashable], bool],
              space: Space | Iterable[Hashable] | int, name: str | None = None,
              exact: bool = False) -> Predicate:
        """The sharp predicate (indicator) of a set of outcomes or of a boolean function."""
        space = _as_space(space)
        if callable(outcomes):
            mask = [bool(outcomes(lab)) for lab in space.labels]
            name = name or getattr(outcomes, "__name__", "event")
        else:
            chosen = set()
            for lab in outcomes:
                chosen.add(space.index(lab))
            mask = [i in chosen for i in range(space.size)]
            name = name or "{" + ", ".join(repr(space.label(i)) for i in sorted(chosen)) + "}"
        vals = [Fraction(int(m)) for m in mask] if exact else [float(m) for m in mask]
        return cls(vals, space, name=name, exact=exact, validate=False)

    @classmethod
    def truth(cls, space: Space, exact: bool = False) -> Predicate:
        """The predicate that is 1 everywhere."""
        return cls.event(lambda _: True, space, name="truth", exact=exact)

    @classmethod
    def coerce(cls, evidence: Any, space: Space) -> Predicate:
        """Read evidence as a predicate on `space`.

        Accepted: a Predicate; a set of outcomes; a mapping {factor: label or set of labels} (an
        event on factors of a product); a boolean function of outcomes; a label (point evidence).
        """
        if isinstance(evidence, Predicate):
            if evidence.space != space:
                raise SpaceMismatchError(f"evidence {evidence.name}", space, evidence.space)
            return evidence
        if isinstance(evidence, set | frozenset | list | tuple) and not (
                isinstance(evidence, tuple) and evidence in space):
            return cls.event(evidence, space)
        if isinstance(evidence, Mapping):
            return cls._factor_event(evidence, space)
        if callable(evidence):
            return cls.event(evidence, space)
        if evidence in space:
            return cls.event([evidence], space)
        raise ValidationError(f"cannot read {evidence!r} as evidence on {space}")

    @classmethod
    def _factor_event(cls, spec: Mapping[FactorKey, Any], space: Space) -> Predicate:
        allowed: list[set[int]] = [set(range(n)) for n in space.shape]
        parts = []
        for key, val in spec.items():
            i = space.factor_index(key)
            f = space.factors[i]
            vals = val if isinstance(val, set | frozenset | list) else [val]
            allowed[i] = {f.index(v) for v in vals}  # type: ignore[attr-defined]
            parts.append(f"{key}={val!r}")
        mask = [all(j in a for j, a in zip(idx, allowed, strict=True))
                for idx in itertools.product(*(range(n) for n in space.shape))]
        return cls([float(m) for m in mask], space, name="{" + ", ".join(parts) + "}",
                   validate=False)

    def is_sharp(self) -> bool:
        """True if every value is 0 or 1."""
        v = self.values
        if B.is_exact(v):
            return all(x == 0 or x == 1 for x in v.ravel())
        return bool(((v == 0) | (v == 1)).all())

    def _binary(self, other: Predicate) -> tuple[Array, Array]:
        if other.space != self.space:
            raise SpaceMismatchError("combining predicates", self.space, other.space)
        a, b = self.values, other.values
        if B.is_exact(a) != B.is_exact(b):
            a, b = (a, B.to_exact(b)) if B.is_exact(a) else (B.to_exact(a), b)
        return a, b

    def __and__(self, other: Predicate) -> Predicate:
        """Conjunction (pointwise product) p & q."""
        a, b = self._binary(other)
        return Predicate(a * b, self.space, name=f"({self.name} & {other.name})", validate=False)

    def __invert__(self) -> Predicate:
        """Orthosupplement ~p = 1 - p (for predicates with values in [0, 1])."""
        return Predicate(1 - self.values, self.space, name=f"~{self.name}")

    def __repr__(self) -> str:
        return f"Predicate({self.name} on {self.space})"


# Structural kernels ---------------------------------------------------------------------------
def deterministic(fn: Callable[[Hashable], Hashable], dom: Space | Iterable[Hashable],
                  cod: Space | Iterable[Hashable], exact: bool = False,
                  dtype: torch.dtype = torch.float64) -> Kernel:
    """The deterministic kernel x -> delta_{fn(x)} of a Python function between finite spaces."""
    dom, cod = _as_space(dom), _as_space(cod)
    idx = np.array([cod.index(fn(x)) for x in dom.labels])
    return Kernel._make(B.one_hot(idx, cod.size, exact, dtype), dom, cod, sharp=True)


def identity(space: Space, exact: bool = False, dtype: torch.dtype = torch.float64) -> Kernel:
    """The identity kernel id_X."""
    space = _as_space(space)
    return Kernel._make(B.one_hot(np.arange(space.size), space.size, exact, dtype), space, space,
                        sharp=True)


def copy(space: Space, exact: bool = False) -> Kernel:
    """Copy X -> X @ X, x -> (x, x)."""
    space = _as_space(space)
    both = product(space, space)
    if space.ndim == 1:
        return deterministic(lambda x: (x, x), space, both, exact=exact)
    return deterministic(lambda x: tuple(x) + tuple(x), space, both, exact=exact)


def discard(space: Space, exact: bool = False) -> Kernel:
    """Discard X -> Unit (the unique kernel to the one-point space)."""
    space = _as_space(space)
    return deterministic(lambda _: (), space, Unit, exact=exact)


def swap(x: Space, y: Space, exact: bool = False) -> Kernel:
    """Swap X @ Y -> Y @ X."""
    nx = x.ndim
    return deterministic(lambda v: tuple(v[nx:]) + tuple(v[:nx]), product(x, y), product(y, x),
                         exact=exact)


def projection(space: Space, *keys: FactorKey, exact: bool = False) -> Kernel:
    """Projection of a product onto the given factors (by name or index), in that order."""
    idx = space.factor_indices(keys)
    target = space.select(idx)

    def proj(v: Hashable) -> Hashable:
        t = v if space.ndim > 1 else (v,)
        out = tuple(t[i] for i in idx)  # type: ignore[index]
        return out[0] if len(out) == 1 else out

    return deterministic(proj, space, target, exact=exact)


def pair(f: Kernel, g: Kernel) -> Kernel:
    """Pairing `<f, g> : X -> Y @ Z`, `x -> f(x) (x) g(x)`, which equals `copy >> (f @ g)`."""
    if f.dom != g.dom:
        raise SpaceMismatchError("pairing <f, g> needs one domain", f.dom, g.dom)
    a, b = f._coerce(g)
    out = a[..., :, :, None] * b[..., :, None, :]
    out = out.reshape(*out.shape[:-2], f.cod.size * g.cod.size)
    return Kernel._make(out, f.dom, product(f.cod, g.cod), f._sharp and g._sharp)


class _Graph(Kernel):
    """The graph `<id, c>` of a kernel, with its matrix built only when asked for: composing into it
    needs only c (see `Kernel.then`)."""

    def __init__(self, inner: Kernel):
        self.inner = inner
        self.dom, self.cod = inner.dom, product(inner.dom, inner.cod)
        self._sharp = inner._sharp

    def __getattr__(self, name: str) -> Any:
        """`array` (and only it) is built on first access and then held as an attribute."""
        if name != "array":
            raise AttributeError(name)
        self.array = pair(identity(self.inner.dom), self.inner).array
        return self.array


def graph(c: Kernel) -> Kernel:
    """The graph `<id, c> : X -> X @ Y` of a kernel, `x -> delta_x (x) c(x)`."""
    if not c.dom.factors:  # a state (c.dom is Unit)
        return pair(identity(c.dom), c)
    return _Graph(c)
