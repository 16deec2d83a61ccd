"""Gaussian random variables as affine expressions of latent standard normals, and conditions.

A `Gauss` value is x = const + coef' z, where z is the vector of latent N(0, 1) draws of the model
it belongs to (`coef` has shape (K, *shape)). Affine arithmetic (+, -, scalar and matrix products,
division by constants, indexing, stacking) stays in this form; anything else (x * y, x ** 2,
exp(x), comparisons) raises `NonAffineError` naming the operation and the variable. `x == y` builds
a `Condition`, to be passed to `condition`; using it as a bool raises TypeError with a hint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from condprob.errors import ValidationError
from condprob.gaussian import _bshape, _tensor

if TYPE_CHECKING:
    from condprob.dsl.model import Model

__all__ = ["Condition", "Gauss", "NonAffineError", "cat", "stack"]


class NonAffineError(TypeError):
    """A Gaussian variable was used outside the affine fragment (x * y, exp(x), x < y, ...)."""

    def __init__(self, op: str, var: Gauss):
        super().__init__(f"{op} is not affine in the Gaussian variable {var.name}: exact "
                         "inference needs affine functions of Gaussian variables")


def _const(value: Any, dtype: torch.dtype) -> torch.Tensor:
    """A constant of an affine expression, as a finite tensor of `dtype`."""
    return _tensor(value, dtype, f"the constant {_name(value)}")


def _broadcast(*shapes: Sequence[int], what: str) -> torch.Size:
    try:
        return torch.Size(_bshape(*shapes))
    except ValidationError:
        raise ValidationError(f"{what}: shapes {[tuple(s) for s in shapes]} do not broadcast") \
            from None


class Gauss:
    """An affine function of a model's latent standard normals: const + coef' z."""

    def __init__(self, model: Model, const: torch.Tensor, coef: torch.Tensor, name: str):
        self.model, self.const, self.coef, self.name = model, const, coef, name

    # Shape ---------------------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return self.const.shape

    @property
    def ndim(self) -> int:
        return self.const.ndim

    def size(self, dim: int | None = None) -> Any:
        return self.const.shape if dim is None else self.const.shape[dim]

    def dim(self) -> int:
        return self.const.ndim

    def __len__(self) -> int:
        return len(self.const)

    @property
    def dtype(self) -> torch.dtype:
        return self.const.dtype

    @property
    def device(self) -> torch.device:
        return self.const.device

    def __repr__(self) -> str:
        return f"Gauss({self.name}, shape={tuple(self.shape)})"

    def _coef(self, k: int) -> torch.Tensor:
        pad = k - self.coef.shape[0]
        if pad == 0:
            return self.coef
        return torch.cat([self.coef, self.coef.new_zeros(pad, *self.shape)])

    def _lift(self, other: Any) -> Gauss:
        if isinstance(other, Gauss):
            if other.model is not self.model:
                raise ValidationError(f"{self.name} and {other.name} belong to different models")
            return other
        if isinstance(other, Condition):
            raise TypeError(f"a condition cannot be combined with {self.name}")
        c = _const(other, self.dtype)
        return Gauss(self.model, c, c.new_zeros(0, *c.shape), f"{c.tolist()}" if c.numel() <= 3
                     else "<const>")

    def _combine(self, other: Any, sign: float, name: str) -> Gauss:
        o = self._lift(other)
        k = max(self.coef.shape[0], o.coef.shape[0])
        shape = _broadcast(self.shape, o.shape, what=name)
        coef = _align(self._coef(k), shape) + sign * _align(o._coef(k), shape)
        return Gauss(self.model, self.const + sign * o.const, coef, name)

    # Affine arithmetic ---------------------------------------------------------------------
    def __add__(self, other: Any) -> Gauss:
        return self._combine(other, 1.0, f"({self.name} + {_name(other)})")

    def __radd__(self, other: Any) -> Gauss:
        return self._lift(other)._combine(self, 1.0, f"({_name(other)} + {self.name})")

    def __sub__(self, other: Any) -> Gauss:
        return self._combine(other, -1.0, f"({self.name} - {_name(other)})")

    def __rsub__(self, other: Any) -> Gauss:
        return self._lift(other)._combine(self, -1.0, f"({_name(other)} - {self.name})")

    def __neg__(self) -> Gauss:
        return Gauss(self.model, -self.const, -self.coef, f"-{self.name}")

    def __pos__(self) -> Gauss:
        return self

    def __mul__(self, other: Any) -> Gauss:
        if isinstance(other, Gauss):
            raise NonAffineError(f"the product {self.name} * {other.name}", self)
        c = _const(other, self.dtype)
        const = self.const * c
        return Gauss(self.model, const, _align(self.coef, const.shape) * c,
                     f"{self.name} * {_name(other)}")

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Gauss:
        if isinstance(other, Gauss):
            raise NonAffineError(f"the quotient {self.name} / {other.name}", self)
        return self * (1.0 / _const(other, self.dtype))

    def __rtruediv__(self, other: Any) -> Gauss:
        raise NonAffineError(f"division by {self.name}", self)

    def __pow__(self, other: Any) -> Gauss:
        raise NonAffineError(f"the power {self.name} ** {_name(other)}", self)

    __rpow__ = __pow__

    def __matmul__(self, other: Any) -> Gauss:
        if isinstance(other, Gauss):
            raise NonAffineError(f"the product {self.name} @ {other.name}", self)
        m = _const(other, self.dtype)
        try:
            return Gauss(self.model, self.const @ m, self.coef @ m, f"{self.name} @ <matrix>")
        except RuntimeError as err:
            raise ValidationError(f"{self.name} @ <matrix>: {err}") from None

    def __rmatmul__(self, other: Any) -> Gauss:
        m = _const(other, self.dtype)
        try:
            coef = self.coef @ m.T if self.ndim == 1 else torch.matmul(m, self.coef)
            return Gauss(self.model, m @ self.const, coef, f"<matrix> @ {self.name}")
        except RuntimeError as err:
            raise ValidationError(f"<matrix> @ {self.name}: {err}") from None

    def __getitem__(self, idx: Any) -> Gauss:
        full = (slice(None), *idx) if isinstance(idx, tuple) else (slice(None), idx)
        try:
            self.const[idx]
        except IndexError as err:
            raise ValidationError(f"{self.name}[{_index(idx)}]: {err}") from None
        return Gauss(self.model, self.const[idx], self.coef[full], f"{self.name}[{_index(idx)}]")

    def reshape(self, *shape: Any) -> Gauss:
        shp = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], Sequence) else shape
        return Gauss(self.model, self.const.reshape(shp),
                     self.coef.reshape(self.coef.shape[0], *shp), self.name)

    def expand(self, *shape: Any) -> Gauss:
        shp = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], Sequence) else shape
        const = self.const.expand(shp)
        return Gauss(self.model, const, _align(self.coef, const.shape), self.name)

    def sum(self, dim: int | None = None) -> Gauss:
        if dim is None:
            return Gauss(self.model, self.const.sum(), self.coef.reshape(self.coef.shape[0], -1)
                         .sum(-1), f"sum({self.name})")
        d = dim if dim < 0 else dim + 1
        return Gauss(self.model, self.const.sum(dim), self.coef.sum(d), f"sum({self.name})")

    # Conditions and non-affine uses --------------------------------------------------------
    def __eq__(self, other: Any) -> Condition:  # type: ignore[override]
        return Condition(self - other, f"{self.name} == {_name(other)}")

    def __ne__(self, other: Any) -> bool:  # type: ignore[override]
        raise NonAffineError(f"the event {self.name} != {_name(other)}", self)

    def __lt__(self, other: Any) -> bool:
        raise NonAffineError(f"the event {self.name} < {_name(other)}", self)

    __le__ = __gt__ = __ge__ = __lt__

    def __bool__(self) -> bool:
        raise TypeError(f"the Gaussian variable {self.name} has no truth value; branch on "
                        "discrete variables only, and use condition(x == y) for equations")

    __hash__ = None  # type: ignore[assignment]

    def __float__(self) -> float:
        raise TypeError(f"the Gaussian variable {self.name} has no fixed value; query the "
                        "posterior instead")

    def __abs__(self) -> Gauss:
        raise NonAffineError(f"abs({self.name})", self)

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.broadcast_tensors:
            shape = _broadcast(*(_shape(a) for a in args), what="broadcast_tensors")
            return tuple(a.expand(shape) for a in args)
        if func in (torch.stack, torch.cat):
            return (stack if func is torch.stack else cat)(*args, **kwargs)
        if func in _ARITH:
            return _ARITH[func](*args, **kwargs)
        var = next(a for a in _flat(args) if isinstance(a, Gauss))
        raise NonAffineError(f"{getattr(func, '__name__', func)}({var.name})", var)


def _align(coef: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """coef (K, *s) broadcast to (K, *shape)."""
    extra = len(shape) - (coef.ndim - 1)
    return coef.reshape(coef.shape[0], *([1] * extra), *coef.shape[1:]).expand(
        coef.shape[0], *shape)


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(a.shape) if isinstance(a, Gauss | torch.Tensor) else ()


def _flat(args: Any) -> list[Any]:
    out: list[Any] = []
    for a in args:
        out.extend(_flat(a) if isinstance(a, list | tuple) else [a])
    return out


def _as_gauss(x: Any, model: Model, dtype: torch.dtype) -> Gauss:
    if isinstance(x, Gauss):
        return x
    c = _const(x, dtype)
    return Gauss(model, c, c.new_zeros(0, *c.shape), "<const>")


def _name(x: Any) -> str:
    if isinstance(x, Gauss):
        return x.name
    if isinstance(x, torch.Tensor):
        return str(x.tolist()) if x.numel() <= 3 else "<tensor>"
    return repr(x)


def _index(idx: Any) -> str:
    return ", ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)


def _join(xs: Sequence[Any], dim: int, fn: Any) -> Gauss:
    g = next((x for x in xs if isinstance(x, Gauss)), None)
    if g is None:
        raise ValidationError("stack/cat of Gaussian variables needs at least one Gauss")
    parts = [_as_gauss(x, g.model, g.dtype) for x in xs]
    k = max(p.coef.shape[0] for p in parts)
    d = dim if dim < 0 else dim + 1
    return Gauss(g.model, fn([p.const for p in parts], dim), fn([p._coef(k) for p in parts], d),
                 f"{fn.__name__}({', '.join(p.name for p in parts)})")


def stack(xs: Sequence[Any], dim: int = 0) -> Gauss:
    """Stack Gaussian variables (and constants) along a new dimension."""
    return _join(xs, dim, torch.stack)


def cat(xs: Sequence[Any], dim: int = 0) -> Gauss:
    """Concatenate Gaussian variables (and constants) along an existing dimension."""
    return _join(xs, dim, torch.cat)


_ARITH = {
    torch.add: lambda a, b, alpha=1: _as_gauss(a, _model_of(a, b), torch.float64) + b * alpha,
    torch.sub: lambda a, b: _as_gauss(a, _model_of(a, b), torch.float64) - b,
    torch.neg: lambda a: -a,
    torch.matmul: lambda a, b: a @ b,
    torch.Tensor.__add__: lambda a, b: b + a,
    torch.Tensor.__sub__: lambda a, b: -(b - a),
    torch.Tensor.__mul__: lambda a, b: b * a,
    torch.Tensor.__matmul__: lambda a, b: b.__rmatmul__(a),
}


def _model_of(*xs: Any) -> Model:
    return next(x.model for x in xs if isinstance(x, Gauss))


class Condition:
    """The exact condition `expr == 0` on an affine Gaussian expression, named for errors."""

    def __init__(self, expr: Gauss, name: str):
        self.expr, self.name = expr, name

    def __bool__(self) -> bool:
        raise TypeError(f"the condition {self.name} has no truth value: pass it to "
                        "condition(...) to condition on it exactly")

    def __repr__(self) -> str:
        return self.name
