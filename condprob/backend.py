"""Array operations shared by the float backend (torch tensors) and the exact backend.

The exact backend stores numbers as numpy object arrays of rationals or sympy numbers (including
symbols), so that sums, products, matrix products, reshapes and broadcasting are the same code as
for torch tensors. Rationals given as `fractions.Fraction` (or ints, or floats read as their
shortest decimal) are held as `gmpy2.mpq`, the GMP rationals that sympy itself uses: they compare
equal to Fractions and are 5 to 10 times faster. This module holds the few operations where the
two backends differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from numbers import Number
from typing import Any

import gmpy2
import numpy as np
import sympy
import torch

from condprob.errors import ValidationError

Array = torch.Tensor | np.ndarray
Rational = gmpy2.mpq
EXACT_TYPES = (Fraction, type(gmpy2.mpq()), sympy.Basic)
ZERO, ONE = gmpy2.mpq(0), gmpy2.mpq(1)


def is_exact(a: Any) -> bool:
    """True for exact arrays (numpy object arrays)."""
    return isinstance(a, np.ndarray)


def _exact_scalar(x: Any) -> Any:
    if isinstance(x, sympy.Basic):
        return x
    if isinstance(x, bool | int | np.integer | Fraction | type(ZERO)):
        return gmpy2.mpq(int(x)) if isinstance(x, bool | np.integer) else gmpy2.mpq(x)
    if isinstance(x, float | np.floating):
        if not math.isfinite(x):
            raise ValidationError(f"{x} is not a finite number")
        return gmpy2.mpq(Fraction(repr(float(x))))
    if isinstance(x, Number):
        return sympy.nsimplify(x)
    return sympy.sympify(x)


def to_exact(data: Any) -> np.ndarray:
    """An exact object array from nested lists, arrays or tensors.

    Ints, Fractions and floats (read as their shortest decimal: 0.1 -> 1/10) become exact
    rationals; if any entry is a sympy object, every entry becomes one.
    """
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().tolist()
    arr = np.array(data, dtype=object)
    flat = [_exact_scalar(x) for x in arr.ravel()]
    if any(isinstance(x, sympy.Basic) for x in flat):
        flat = [sympy.sympify(x) for x in flat]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape)


def unwrap(a: Any) -> Any:
    """A 0-d exact array as its scalar (rationals as `fractions.Fraction`); others unchanged."""
    if isinstance(a, np.ndarray) and a.ndim == 0:
        a = a[()]
    if isinstance(a, type(ZERO)):
        return Fraction(int(a.numerator), int(a.denominator))
    return a


def to_float(a: Array, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A torch tensor of the given dtype (exact arrays are evaluated numerically)."""
    if isinstance(a, torch.Tensor):
        return a.to(dtype)
    if is_symbolic(a):
        free = sorted({str(v) for x in a.ravel() if isinstance(x, sympy.Basic) for v in x.free_symbols})
        raise ValidationError(f"symbolic entries (in {', '.join(free)}) have no numeric value; "
                         "substitute the symbols first")
    vals = [float(x) for x in a.ravel()]
    return torch.tensor(vals, dtype=dtype).reshape(a.shape)


def is_symbolic(a: np.ndarray) -> bool:
    return any(isinstance(x, sympy.Basic) and x.free_symbols for x in a.ravel())


def _simplify(x: Any) -> Any:
    return sympy.cancel(x) if isinstance(x, sympy.Basic) else x


simplify = np.frompyfunc(_simplify, 1, 1)


def _is_zero(x: Any) -> bool:
    if isinstance(x, sympy.Basic):
        return bool(sympy.simplify(x) == 0)
    return x == 0


def zero_mask(a: Array) -> Array:
    """Boolean mask of entries that are zero (exactly zero for the exact backend)."""
    if isinstance(a, torch.Tensor):
        return a.logical_not()  # a == 0 without wrapping 0 in a tensor
    return np.asarray(np.frompyfunc(_is_zero, 1, 1)(a), dtype=bool)


def where(mask: Array, a: Array, b: Array) -> Array:
    """Elementwise choice with broadcasting."""
    if isinstance(a, torch.Tensor):
        return torch.where(mask, a, b)
    return np.where(mask, a, b)


def all_nonzero(a: Array) -> bool:
    """True when no entry is zero (exactly zero in the exact backend): one reduction."""
    if isinstance(a, torch.Tensor):
        # count_nonzero takes about half the time of all() (which first makes a bool copy)
        return a.count_nonzero().item() == a.numel()
    return not zero_mask(a).any()


def divide(num: Array, den: Array, in_place: bool = False) -> Array:
    """num / den, broadcast (exact quotients simplified). `in_place`: num is a tensor that the
    caller has just made and will not use again, of the broadcast shape of num and den; the
    quotient is written into it (the same numbers, no new allocation)."""
    if isinstance(num, torch.Tensor):
        return num.div_(den) if in_place else num / den
    return simplify(num / den)


def safe_divide(num: Array, den: Array, fallback: Array | Callable[[], Array],
                in_place: bool = False) -> Array:
    """num / den where den != 0, else fallback (an array, or a function giving one, broadcast).

    Never divides by zero; the fallback is only built when some denominator is zero (one
    reduction decides). `in_place` as in `divide`.
    """
    if all_nonzero(den):  # the common case
        return divide(num, den, in_place)
    zero = zero_mask(den)
    fb = fallback() if callable(fallback) else fallback
    if isinstance(num, torch.Tensor):
        return torch.where(zero, fb, num / torch.where(zero, torch.ones_like(den), den))
    q = simplify(num / np.where(zero, ONE, den))
    return np.where(zero, fb, q)


def total(a: Array, axis: int | tuple[int, ...], keepdim: bool = False) -> Array:
    """Sum over axes."""
    if isinstance(a, torch.Tensor):
        return a.sum(dim=axis, keepdim=keepdim)
    return np.asarray(a.sum(axis=axis, keepdims=keepdim), dtype=object)


def swap_last(a: Array) -> Array:
    """Transpose the last two axes (a view)."""
    return a.mT if isinstance(a, torch.Tensor) else np.swapaxes(a, -1, -2)


def merge_last(a: Array) -> Array:
    """Merge the last two axes into one, (..., m, n) -> (..., m * n) (a view where possible)."""
    if isinstance(a, torch.Tensor):
        return a.flatten(-2)
    return a.reshape(*a.shape[:-2], a.shape[-2] * a.shape[-1])


def permute(a: Array, order: tuple[int, ...]) -> Array:
    return a.permute(order) if isinstance(a, torch.Tensor) else np.transpose(a, order)


def unsqueeze(a: Array, dim: int) -> Array:
    """A new axis of size 1 at `dim` (a view; cheaper than indexing with None)."""
    return a.unsqueeze(dim) if isinstance(a, torch.Tensor) else np.expand_dims(a, dim)


def squeeze(a: Array, dim: int) -> Array:
    """Drop the axis `dim` of size 1 (a view; cheaper than indexing with 0)."""
    return a.squeeze(dim) if isinstance(a, torch.Tensor) else np.squeeze(a, dim)


def expand(a: Array, shape: tuple[int, ...]) -> Array:
    if isinstance(a, torch.Tensor):
        return a.expand(shape)
    return np.broadcast_to(a, shape)


def exact_log(x: Any) -> Any:
    """sympy's log of an exact number, with log 0 = -oo (sympy alone gives complex infinity)."""
    return -sympy.oo if _is_zero(x) else sympy.log(sympy.sympify(x))


def log(a: Array) -> Array:
    """Natural log; log 0 = -inf (float) or sympy's -oo (exact)."""
    if isinstance(a, torch.Tensor):
        return torch.log(a)
    return np.frompyfunc(exact_log, 1, 1)(a)


def xlogy(x: Array, y: Array) -> Array:
    """x * log(y) with 0 * log(anything) = 0."""
    if isinstance(x, torch.Tensor):
        return torch.special.xlogy(x, y)

    def f(u: Any, v: Any) -> Any:
        return 0 if _is_zero(u) else sympy.sympify(u) * sympy.log(sympy.sympify(v))

    return np.frompyfunc(f, 2, 1)(x, y)


def absolute(a: Array) -> Array:
    return a.abs() if isinstance(a, torch.Tensor) else np.frompyfunc(abs, 1, 1)(a)


def false_mask(shape: tuple[int, ...], like: Array) -> Array:
    """An all-False boolean mask of the given shape, in like's backend (and device)."""
    if isinstance(like, torch.Tensor):
        return torch.zeros(shape, dtype=torch.bool, device=like.device)
    return np.zeros(shape, dtype=bool)


def zeros(shape: tuple[int, ...], like: Array) -> Array:
    if isinstance(like, torch.Tensor):
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    out = np.empty(shape, dtype=object)
    out[...] = ZERO
    return out


def one_hot(index: np.ndarray, n: int, exact: bool, dtype: torch.dtype) -> Array:
    """A (len(index), n) 0/1 matrix with a one at each row's index."""
    if exact:
        out = zeros((len(index), n), like=np.empty(0, dtype=object))
        out[np.arange(len(index)), index] = ONE
        return out
    out = torch.zeros((len(index), n), dtype=dtype)
    out[torch.arange(len(index)), torch.as_tensor(index, dtype=torch.long)] = 1
    return out


def equal(a: Array, b: Array) -> bool:
    """Exact equality of exact arrays (symbolic entries compared after simplification)."""
    a, b = np.broadcast_arrays(a, b)
    return all(_is_zero(x - y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
