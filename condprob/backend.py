"""Array operations shared by the float backend (torch tensors) and the exact backend.

The exact backend stores numbers as numpy object arrays of `fractions.Fraction` or sympy numbers
(including symbols), so that sums, products, matrix products, reshapes and broadcasting are the same
code as for torch tensors. This module holds the few operations where the two differ.
"""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Number
from typing import Any

import numpy as np
import sympy
import torch

Array = torch.Tensor | np.ndarray


def is_exact(a: Any) -> bool:
    """True for exact arrays (numpy object arrays)."""
    return isinstance(a, np.ndarray)


def _exact_scalar(x: Any) -> Any:
    if isinstance(x, bool):
        return Fraction(int(x))
    if isinstance(x, Fraction | sympy.Basic):
        return x
    if isinstance(x, int | np.integer):
        return Fraction(int(x))
    if isinstance(x, float | np.floating):
        if not math.isfinite(x):
            raise ValueError(f"{x} is not a finite number")
        return Fraction(repr(float(x)))
    if isinstance(x, Number):
        return sympy.nsimplify(x)
    return sympy.sympify(x)


def to_exact(data: Any) -> np.ndarray:
    """An exact object array from nested lists, arrays or tensors.

    Python ints and Fractions stay Fractions; floats are read as their shortest decimal (0.1 -> 1/10);
    if any entry is a sympy object, every entry becomes one.
    """
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().tolist()
    arr = np.array(data, dtype=object)
    flat = [_exact_scalar(x) for x in arr.ravel()]
    if any(isinstance(x, sympy.Basic) for x in flat):
        flat = [sympy.nsimplify(x) if isinstance(x, Fraction) else sympy.sympify(x) for x in flat]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape)


def unwrap(a: Any) -> Any:
    """A 0-d exact array as its scalar; anything else unchanged."""
    return a[()] if isinstance(a, np.ndarray) and a.ndim == 0 else a


def to_float(a: Array, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A torch tensor of the given dtype (exact arrays are evaluated numerically)."""
    if isinstance(a, torch.Tensor):
        return a.to(dtype)
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
        return a == 0
    return np.asarray(np.frompyfunc(_is_zero, 1, 1)(a), dtype=bool)


def where(mask: Array, a: Array, b: Array) -> Array:
    """Elementwise choice with broadcasting."""
    if isinstance(a, torch.Tensor):
        return torch.where(mask, a, b)
    return np.where(mask, a, b)


def safe_divide(num: Array, den: Array, fallback: Array) -> Array:
    """num / den where den != 0, else fallback (broadcast); never divides by zero."""
    zero = zero_mask(den)
    if isinstance(num, torch.Tensor):
        return torch.where(zero, fallback, num / torch.where(zero, torch.ones_like(den), den))
    one = np.ones_like(den)
    one[...] = Fraction(1)
    q = simplify(num / np.where(zero, one, den))
    return np.where(zero, fallback, q)


def total(a: Array, axis: int | tuple[int, ...], keepdim: bool = False) -> Array:
    """Sum over axes."""
    if isinstance(a, torch.Tensor):
        return a.sum(dim=axis, keepdim=keepdim)
    return np.asarray(a.sum(axis=axis, keepdims=keepdim), dtype=object)


def swap_last(a: Array) -> Array:
    """Transpose the last two axes."""
    return a.transpose(-1, -2) if isinstance(a, torch.Tensor) else np.swapaxes(a, -1, -2)


def permute(a: Array, order: tuple[int, ...]) -> Array:
    return a.permute(order) if isinstance(a, torch.Tensor) else np.transpose(a, order)


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


def zeros(shape: tuple[int, ...], like: Array) -> Array:
    if isinstance(like, torch.Tensor):
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    out = np.empty(shape, dtype=object)
    out[...] = Fraction(0)
    return out


def one_hot(index: np.ndarray, n: int, exact: bool, dtype: torch.dtype) -> Array:
    """A (len(index), n) 0/1 matrix with a one at each row's index."""
    if exact:
        out = zeros((len(index), n), like=np.empty(0, dtype=object))
        out[np.arange(len(index)), index] = Fraction(1)
        return out
    out = torch.zeros((len(index), n), dtype=dtype)
    out[torch.arange(len(index)), torch.as_tensor(index, dtype=torch.long)] = 1
    return out


def equal(a: Array, b: Array) -> bool:
    """Exact equality of exact arrays (symbolic entries compared after simplification)."""
    a, b = np.broadcast_arrays(a, b)
    return all(_is_zero(x - y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
