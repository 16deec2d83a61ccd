"""The one tolerance policy of condprob, used by every validity and consistency check.

A float check compares an error with

    tol = min(SLACK * eps, sqrt(eps)) * scale * condition

- `eps`: the machine epsilon of the dtype the numbers are held in (float64 2.2e-16, float32
  1.2e-7); the exact backend has eps = 0, so its checks are exact.
- `SLACK` = 1024 units of roundoff, a constant: the tolerance never grows with the number of
  outcomes, rows or equations, so a float32 state of 200,000 outcomes with mass 2.0 is rejected.
  1024 ulps cover the rounding of torch's own float32 softmax up to about 10^6 outcomes. In half
  precision 1024 ulps exceed 1, so `sqrt(eps)` caps it (float16: 0.031, bfloat16: 0.088).
- `scale`: the magnitude of the quantities compared (1 for probabilities; the largest entry of a
  covariance for its symmetry; the largest eigenvalue for a rank decision; |A| |x| + |b| for the
  residual of an equation A x = b).
- `condition`: the condition number of the problem (1 for sums and entries; cond(A) for a linear
  system, whose solution's rounding error is amplified by it).

| check | scale | condition |
|---|---|---|
| rows of a kernel sum to 1 | 1 | 1 |
| a covariance is symmetric / PSD | max abs entry | 1 |
| an eigenvalue counts as zero (rank) | largest eigenvalue | 1 |
| an equation A x = b is consistent | abs(A) abs(x) + abs(b) | cond(A) |

Errors name the argument, the error found and the tolerance (`check_normalised`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from condprob.errors import ValidationError

SLACK = 1024


def eps(dtype: Any) -> float:
    """Machine epsilon of a torch dtype, numpy dtype, tensor or array; 0.0 for exact (object) arrays.

    eps is the gap between 1 and the next representable number (float64: 2**-52).
    """
    if isinstance(dtype, torch.Tensor | np.ndarray):
        dtype = dtype.dtype
    if isinstance(dtype, torch.dtype):
        return torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    dt = np.dtype(dtype)
    return float(np.finfo(dt).eps) if dt.kind in "fc" else 0.0


def relative(dtype: Any) -> float:
    """The tolerance per unit of scale and condition: min(SLACK * eps, sqrt(eps)) (0.0 when
    exact). Checks on tensors of per-batch scales multiply it by them (as `condprob.gaussian`)."""
    e = eps(dtype)
    return min(SLACK * e, math.sqrt(e))


def tolerance(dtype: Any, scale: float = 1.0, condition: float = 1.0) -> float:
    """The tolerance of a check: min(SLACK * eps, sqrt(eps)) * scale * condition (0.0 when exact).

    `dtype` is the dtype (or a tensor/array) the compared numbers are held in, `scale` their
    magnitude and `condition` the condition number of the computation that produced them.
    """
    if not (math.isfinite(scale) and scale >= 0 and math.isfinite(condition) and condition >= 1):
        raise ValidationError(f"tolerance needs a finite scale >= 0 and condition >= 1, got scale "
                              f"{scale!r}, condition {condition!r}")
    return relative(dtype) * scale * condition


def within(error: float, dtype: Any, scale: float = 1.0, condition: float = 1.0) -> bool:
    """True when |error| <= tolerance(dtype, scale, condition); a NaN error is never within."""
    return bool(abs(error) <= tolerance(dtype, scale, condition))


def check_normalised(totals: torch.Tensor, what: str, dtype: Any = None) -> None:
    """Raise `ValidationError` naming `what` unless every total is within tolerance of 1.

    `totals` are row sums (any shape); `dtype` is the dtype the rows were given in (default:
    that of `totals`). The check is |total - 1| <= tolerance(dtype), independent of the row
    length; the message gives the worst total and the tolerance.
    """
    if totals.numel() == 0:
        return
    with torch.no_grad():
        err = (totals.double() - 1).abs()
        worst = float(err.max())
        tol = tolerance(totals.dtype if dtype is None else dtype)
        if not worst <= tol:
            total = float(totals.reshape(-1)[int(err.reshape(-1).argmax())])
            raise ValidationError(f"{what} must sum to 1: a row sums to {total:.10g} (off by "
                                  f"{worst:.3g}, tolerance {tol:.3g}); normalise it, e.g. p / "
                                  "p.sum(-1, keepdim=True)")


def check_probabilities(p: torch.Tensor, what: str) -> float:
    """Raise `ValidationError` naming `what` unless p is finite, non-negative and its last axis
    sums to 1 within `tolerance(p.dtype)` (sums taken in float64). Returns the least entry (0.0
    when p is empty), which the sign check computes anyway."""
    with torch.no_grad():
        if not bool(torch.isfinite(p).all()):
            raise ValidationError(f"{what} has a non-finite entry (NaN or inf)")
        least = float(p.min()) if p.numel() else 0.0
        if least < 0:
            raise ValidationError(f"{what} has a negative probability {least:.3g}")
        check_normalised(p.double().sum(-1), what, p.dtype)
        return least
