"""Gaussian states and linear-Gaussian kernels, with exact conditioning on linear equations.

A `LinearGaussian` kernel is x -> N(A x + b, Q) between Euclidean spaces (products of named
Euclidean factors); Q may be singular or zero (a deterministic affine map). A `Gaussian` state is a
linear-Gaussian kernel out of the unit space: N(mean, cov), cov possibly singular.

Both are batched like finite kernels: A, b and Q may carry leading batch dimensions
(A: (*batch, n, d), b: (*batch, n), Q: (*batch, n, n), broadcast against each other), and every
operation (composition, tensor, conditioning, Pearl updates, inversion, marginals, sampling and
densities) acts on each batch entry independently, so a batch of 1,000 Kalman filters or GPs is
one object. `batch_shape` is the broadcast batch shape.

Composition `f >> g` is x -> N(A_g A_f x + A_g b_f + b_g, A_g Q_f A_g' + Q_g); the tensor `f @ g`
is block-diagonal. Exact conditioning on A x = b (an event of probability zero) projects onto the
solution set: with S = A cov A' and c = b - A mean, the posterior is
N(mean + cov A' S^+ c, cov - cov A' S^+ A cov), and the condition is consistent iff c lies in the
range of S. Tolerances follow the core's one policy, tol(dtype, scale, condition) =
min(1024 eps, sqrt eps) * scale * condition: directions of S whose variance is below
tol(dtype, eigmax) count as deterministic, and along each of them c may hold at most
4 sqrt(max(its computed variance, 0)) + tol(dtype, |b| + |A mean|, cond), cond the condition
number of S on its range (how accurately that range is computed). An inconsistent condition raises
`ConditioningError` naming it, with the residual and the tolerance; a Pearl update on evidence off
the support raises the same way.

Validation (`validate=True`, the default) checks shapes and finiteness always, and that each
covariance is symmetric and positive semi-definite. The latter costs one O(n^3) factorisation; it
runs at construction for n <= 128, and for larger covariances when a computation first uses the
whole matrix (composition, sampling, densities, `cov`, ...), reusing the factorisation that
computation needs anyway. Conditioning checks only what it uses (the block A cov A', by the
factorisation it computes; for observed coordinates o it reads the rows Q[o, :] only: the block
Q[o, o] is checked symmetric and every entry read against |Q_ij|^2 <= Q_ii Q_jj; the posterior
variances when read) and hands the rest of the check (full symmetry included) on to the
posterior: the prior is PSD iff that block and the posterior are.
A GP conditioned on observations therefore pays O(n m^2), not O(n^3), for its guard.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyro.distributions as pdist
import torch
from torch.distributions import constraints

from condprob.conditioning import Disintegration
from condprob.errors import ConditioningError, SpaceMismatchError, ValidationError
from condprob.protocol import Morphism, SampleShape, as_sample_shape, check_composable
from condprob.spaces import Euclidean, FactorKey, Space, Unit, product
from condprob.tolerance import relative

Tensorish = torch.Tensor | Sequence[Any] | float | int

__all__ = [
    "Gaussian",
    "LinearEquation",
    "LinearGaussian",
    "SingularMultivariateNormal",
    "copy",
    "discard",
    "identity",
    "projection",
    "swap",
]

EAGER_CHECK_DIM = 128  # covariances up to this size are checked PSD at construction


def _as_space(space: Space | int) -> Space:
    if isinstance(space, int):
        return Unit if space == 0 else Euclidean(space)
    if not isinstance(space, Space) or not space.is_euclidean:
        raise ValidationError(f"a Gaussian kernel needs Euclidean spaces, got {space!r}")
    return space


def _tensor(x: Tensorish, dtype: torch.dtype | None, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(x, dtype=dtype or torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValidationError(f"{what} must be an array of real numbers, got {x!r}") from err
    if t.is_complex():
        raise ValidationError(f"{what} must be real, got a {t.dtype} tensor")
    if not t.is_floating_point():
        t = t.to(torch.float64 if dtype is None else dtype)
    elif dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    # a finite sum means finite entries (NaN and inf propagate); else look closer, since a sum
    # of finite entries may overflow
    if t.numel() and not math.isfinite(t.sum().item()) and not (
            math.isfinite(t.amax().item()) and math.isfinite(t.amin().item())):
        raise ValidationError(f"{what} has non-finite entries")
    return t


def _bshape(*shapes: Sequence[int]) -> tuple[int, ...]:
    """The broadcast of batch shapes (torch.broadcast_shapes costs a millisecond a call)."""
    first = shapes[0] if shapes else ()
    if all(s == first for s in shapes):
        return tuple(first)
    nd = max((len(s) for s in shapes), default=0)
    out = [1] * nd
    for s in shapes:
        for i, k in enumerate(s, nd - len(s)):
            if k != 1 and out[i] != k:
                if out[i] != 1:
                    raise ValidationError(f"batch shapes {[tuple(t) for t in shapes]} do not "
                                          "broadcast")
                out[i] = k
    return tuple(out)


_BLOCK = 1 << 19  # entries of one temporary in a pass over a large matrix (4 MiB of float64)


def _row_blocks(rows: int, cols: int) -> list[slice]:
    """Row slices of about _BLOCK entries each (at least one slice): an elementwise pass over a
    large (rows, cols) matrix block by block reuses one small temporary instead of allocating
    one as large as the matrix, which the allocator maps and the kernel zero-fills anew on every
    call (5000 x 1000: the PSD bound of a condition 27 -> 15 ms)."""
    step = max(1, _BLOCK // max(cols, 1))
    return [slice(i, i + step) for i in range(0, max(rows, 1), step)]


def _batched(t: torch.Tensor, batch: tuple[int, ...], event_dims: int) -> torch.Tensor:
    """t (*b, *event) as (*batch, *event) (a view; t itself when b is already batch)."""
    if t.shape[:t.ndim - event_dims] == batch:
        return t
    return t.expand(*batch, *t.shape[t.ndim - event_dims:])


def _mv(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Batched matrix-vector product a x (broadcasting the batch dimensions)."""
    if x.ndim == 1:
        return a @ x
    return (a @ x.unsqueeze(-1)).squeeze(-1)


def _diag(q: torch.Tensor) -> torch.Tensor:
    return q.diagonal(dim1=-2, dim2=-1)


def _amax(t: torch.Tensor, dims: int) -> torch.Tensor:
    """max |t| over the last `dims` dimensions (0 for empty ones)."""
    flat = t.abs().reshape(*t.shape[:t.ndim - dims], -1)
    return flat.amax(-1) if flat.shape[-1] else flat.new_zeros(flat.shape[:-1])


def _where(batch: tuple[int, ...], bad: torch.Tensor) -> str:
    if not batch or bad.ndim == 0:
        return ""
    first = [int(i) for i in bad.nonzero()[0]] if bool(bad.any()) else []
    return f" (batch entry {tuple(first)})"


# Tolerances ---------------------------------------------------------------------------------
_Z = 4.0  # a value may sit this many of its own standard deviations off a dropped direction


_RELATIVE: dict[torch.dtype, float] = {}


def _tol(dtype: torch.dtype, scale: Any, condition: Any = None) -> Any:
    """`condprob.tolerance.tolerance` (the core's one policy) for per-batch-entry tensors of
    scales and condition numbers: min(SLACK eps, sqrt eps) * scale * condition."""
    rel = _RELATIVE.get(dtype)
    if rel is None:
        rel = _RELATIVE[dtype] = relative(dtype)
    return rel * scale if condition is None else rel * scale * condition


def _check_not_negative(values: torch.Tensor, scale: Any, batch: tuple[int, ...],
                        what: str) -> None:
    """The PSD check of variances or eigenvalues `values` (..., n): none below -tol(dtype,
    scale); `ValidationError` says `what` the worst one is and where in the batch."""
    tol = _tol(values.dtype, scale)
    bad = values.amin(-1) < -tol
    if bool(bad.any()):
        raise ValidationError(f"covariance is not positive semi-definite: {what} "
                              f"{float(values.amin()):.3g}, below -{float(tol.max()):.3g}"
                              f"{_where(batch, bad)}")


def _zero_variance(lam: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (last axis) that count as zero: at most tol(dtype, largest eigenvalue)."""
    if not lam.shape[-1]:
        return torch.zeros_like(lam, dtype=torch.bool)
    return lam <= _tol(lam.dtype, lam.amax(-1, keepdim=True).clamp(min=0))


def _off_range(lam: torch.Tensor, u: torch.Tensor, c: torch.Tensor, scale: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The components of c (shape (..., *batch, r)) along the zero-variance directions of
    S = u diag(lam) u' (lam: (*batch, r)), and what each may hold: (|u_i' c|, allowance_i), zero
    for the kept directions.

    Along a direction i of zero variance (`_zero_variance`) the component may be up to
    _Z sqrt(max(lam_i, 0)) (what a direction of that computed variance can hold) plus the rounding
    tolerance tol(dtype, scale, cond), where `scale` (*batch) bounds the magnitude of c's terms and
    cond = lam_max / lam_min over the kept eigenvalues (the accuracy of the computed range). c lies
    in the range of S iff every component is within its allowance.
    """
    zero = _zero_variance(lam)
    kept = lam.masked_fill(zero, math.inf)
    lo = kept.amin(-1)
    cond = torch.where(torch.isfinite(lo), lam.amax(-1) / lo, torch.ones_like(lo))
    comp = _mv(u.mT, c).abs() * zero
    allowed = _Z * lam.clamp(min=0).sqrt() + _tol(lam.dtype, scale, cond)[..., None]
    return comp, torch.where(zero, allowed, torch.zeros_like(allowed))


def _psd_within(q: torch.Tensor, tol: torch.Tensor) -> torch.Tensor:
    """q >= -tol I per batch entry, by a Cholesky factorisation of q + 2 tol I."""
    shifted = q + torch.diag_embed(2 * tol[..., None].expand(q.shape[:-1]))
    return torch.linalg.cholesky_ex(shifted)[1] == 0


def _succeeded(info: torch.Tensor) -> bool:
    """Whether a factorisation's `info` (0 where it succeeded) is 0 in every batch entry."""
    return not (info.any() if info.ndim else info).item()


def _pivots_above_floor(q: torch.Tensor, chol: torch.Tensor) -> bool:
    """Whether q = L L' (factored) is numerically positive definite in every batch entry:
    each pivot L_ii^2 above tol(dtype, max_i q_ii). A 1 x 1 q that factored is: its one pivot
    squared is q_11 (to an ulp, far inside the tolerance)."""
    if q.shape[-1] <= 1:
        return True
    floor = _tol(q.dtype, _diag(q).amax(-1, keepdim=True))  # q_ii > 0 where q = L L'
    return bool((_diag(chol).square() > floor).all())


def _check_symmetric(q: torch.Tensor, tol: Any, batch: tuple[int, ...]) -> None:
    """max |q - q'| within tol per batch entry, else a `ValidationError` saying by how much
    and where."""
    asym = _amax(q - q.mT, 2)
    if bool((asym > tol).any()):
        raise ValidationError(f"covariance is not symmetric (|Q - Q'| = {float(asym.max()):.3g}"
                              f" exceeds the tolerance {float(tol.max()):.3g})"
                              f"{_where(batch, asym > tol)}")


def _factor_slices(space: Space) -> list[slice]:
    out, start = [], 0
    for f in space.factors:
        out.append(slice(start, start + f.dim))
        start += f.dim
    return out


def _coords(space: Space, keys: Sequence[FactorKey]) -> list[int]:
    slices = _factor_slices(space)
    return [j for i in space.factor_indices(keys) for j in range(slices[i].start, slices[i].stop)]


def _block_diag(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched block-diagonal [[a, 0], [0, b]]."""
    batch = _bshape(a.shape[:-2], b.shape[:-2])
    out = a.new_zeros(*batch, a.shape[-2] + b.shape[-2], a.shape[-1] + b.shape[-1])
    out[..., :a.shape[-2], :a.shape[-1]] = a
    out[..., a.shape[-2]:, a.shape[-1]:] = b
    return out


class LinearEquation:
    """The event `matrix @ x == rhs` (r equations on R^n), named for error messages.

    `matrix` is (r, n) or batched (*batch, r, n), `rhs` (r,) or (*batch, r).
    `LinearEquation.observe(index, values)` is the special case x[index] == values, which
    conditioning handles by indexing instead of matrix products (its `matrix`, the rows of the
    identity at `index`, is only formed when read).
    """

    def __init__(self, matrix: Tensorish, rhs: Tensorish, name: str | None = None,
                 dtype: torch.dtype | None = None):
        a = _tensor(matrix, dtype, "the equation's matrix")
        a = a[None, :] if a.ndim == 1 else a
        b = _tensor(rhs, a.dtype, "the equation's right-hand side")
        if a.ndim >= 2 and (b.ndim == 0 or (b.shape[-1] != a.shape[-2]
                                            and b.numel() == a.shape[-2])):
            b = b.reshape(-1)
        if a.ndim < 2 or b.ndim < 1 or b.shape[-1] != a.shape[-2]:
            raise ValidationError(
                f"an equation A x = b needs A of shape (r, n) and b of shape (r,) (with optional "
                f"leading batch dimensions), got {tuple(a.shape)} and {tuple(b.shape)}")
        _bshape(a.shape[:-2], b.shape[:-1])
        self._matrix, self.rhs, self._dim = a, b, a.shape[-1]
        self.index: torch.Tensor | None = None
        r = a.shape[-2]
        self.name = name or f"A x == b ({r} equation{'s' * (r != 1)})"

    @property
    def matrix(self) -> torch.Tensor:
        """The matrix A of A x == b, (*batch, r, n)."""
        if self._matrix is None:
            self._matrix = torch.eye(self._dim, dtype=self.rhs.dtype,
                                     device=self.rhs.device)[self.index.to(self.rhs.device)]
        return self._matrix

    @matrix.setter
    def matrix(self, value: torch.Tensor) -> None:
        self._matrix = value

    @classmethod
    def observe(cls, index: Sequence[int] | torch.Tensor, values: Tensorish, dim: int,
                name: str | None = None) -> LinearEquation:
        """The equations x[index] == values on R^dim (values (r,) or batched (*batch, r))."""
        try:
            raw = torch.as_tensor(index)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValidationError(f"observed indices must be integers, got {index!r}") from err
        if raw.is_floating_point() or raw.is_complex() or raw.dtype == torch.bool:
            raise ValidationError(f"observed indices must be integers, got {raw.dtype} {index!r}")
        idx = (raw if raw.dtype == torch.long else raw.to(torch.long)).reshape(-1)
        v = _tensor(values, None, "the observed values")
        if v.ndim == 0 or v.shape[-1] != idx.numel():
            v = v.reshape(-1)
        if v.shape[-1] != idx.numel():
            raise ValidationError(f"{idx.numel()} indices but {v.shape[-1]} observed values")
        if idx.numel():
            lo, hi = (int(k) for k in idx.aminmax())
            if lo < 0 or hi >= dim:
                raise ValidationError(f"observed indices must lie in [0, {dim}), got {lo}..{hi}")
        eq = object.__new__(cls)
        eq._matrix, eq.rhs, eq.index, eq._dim = None, v, idx, dim
        eq.name = name or f"x[index] == values ({len(idx)} observations)"
        return eq

    def __repr__(self) -> str:
        return self.name


class SingularMultivariateNormal(pdist.MultivariateNormal):
    """A MultivariateNormal whose covariance may be singular: `scale_tril` is any square factor
    L with L L' = cov (sampling is loc + L z); `log_prob` is the density on the support
    loc + range(cov) w.r.t. Lebesgue measure there (pseudo-determinant), -inf off it."""

    def __init__(self, state: Gaussian):
        self._state = state
        super().__init__(state.mean, scale_tril=state.factor, validate_args=False)

    def expand(self, batch_shape: Any, _instance: Any = None) -> SingularMultivariateNormal:
        return SingularMultivariateNormal(self._state.expand(tuple(batch_shape)))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self._state.log_prob(value)

    def entropy(self) -> torch.Tensor:
        lam = torch.linalg.eigvalsh(self._state.cov)
        keep = ~_zero_variance(lam)
        return 0.5 * (keep.sum(-1).to(lam.dtype) * (1 + math.log(2 * math.pi))
                      + torch.where(keep, lam, torch.ones_like(lam)).log().sum(-1))

    @constraints.dependent_property
    def support(self) -> Any:
        return constraints.independent(constraints.real, 1)


class LinearGaussian(Morphism):
    """The kernel x -> N(matrix @ x + offset, cov) from R^d (`dom`) to R^n (`cod`), batched.

    `matrix` is (*batch, n, d), `offset` (*batch, n), `cov` (*batch, n, n), broadcast against
    each other. Shapes and finiteness are always checked; `validate=False` skips the symmetry and
    positive semi-definiteness check of the covariance (see the module docstring for when it runs).
    """

    def __init__(self, matrix: Tensorish, offset: Tensorish | None = None,
                 cov: Tensorish | None = None, dom: Space | int | None = None,
                 cod: Space | int | None = None, *, dtype: torch.dtype | None = None,
                 validate: bool = True):
        a = _tensor(matrix, dtype, "the kernel's matrix")
        if a.ndim < 2:
            raise ValidationError(f"the kernel's matrix must have shape (*batch, n, d), got "
                                  f"{tuple(a.shape)}")
        n, d = a.shape[-2:]
        b = a.new_zeros(n) if offset is None else \
            _flat_if_needed(_tensor(offset, a.dtype, "the kernel's offset"), n)
        q = a.new_zeros(n, n) if cov is None else _tensor(cov, a.dtype, "the kernel's covariance")
        self._init(a, b, q, _as_space(d if dom is None else dom), _as_space(n if cod is None else cod),
                   validate)

    def _init(self, a: torch.Tensor, b: torch.Tensor, q: torch.Tensor | None, dom: Space,
              cod: Space, validate: bool, down: torch.Tensor | None = None,
              base: torch.Tensor | None = None, internal: bool = False,
              pending: bool = False) -> None:
        self.matrix, self.offset = a, b
        self.dom, self.cod = dom, cod
        self._cov, self._base, self._down = q, base, down
        self._factor: torch.Tensor | None = None
        self._chol: tuple[torch.Tensor, bool] | None = None
        self._pd: bool | None = None
        self._pending = pending
        if not internal:
            self._check_shapes()
        cov_batch = (q if q is not None else base).shape[:-2]  # type: ignore[union-attr]
        self._batch = _bshape(a.shape[:-2], b.shape[:-1], cov_batch,
                              down.shape[:-2] if down is not None else ())
        if validate:
            self._validate()

    def _check_shapes(self) -> None:
        n, d = self.matrix.shape[-2:]
        if d != self.dom.dim or n != self.cod.dim:
            raise SpaceMismatchError(f"matrix of shape {(n, d)} for a kernel", (self.cod.dim,
                                     self.dom.dim), (n, d))
        if self.offset.ndim < 1 or self.offset.shape[-1] != n:
            raise ValidationError(f"offset must have shape (*batch, {n}), got "
                                  f"{tuple(self.offset.shape)}")
        q = self._q()
        if q.ndim < 2 or q.shape[-2:] != (n, n):
            raise ValidationError(f"covariance must have shape (*batch, {n}, {n}), got "
                                  f"{tuple(q.shape)}")

    def _validate(self) -> None:
        """Symmetry and positive semi-definiteness of the covariance (relative tolerance): at
        once up to EAGER_CHECK_DIM, else the diagonal now and the rest on first use."""
        q = self._q()
        if q.shape[-1] == 0:
            return
        if q.shape[-1] <= EAGER_CHECK_DIM:
            self._pending = True
            self._resolve()
            return
        d = _diag(q)
        _check_not_negative(d, _amax(d, 1), self._batch, "a variance is")
        self._pending = True

    def _resolve(self) -> None:
        """The pending symmetry and PSD check of the whole covariance, by the Cholesky
        factorisation that densities and sampling use anyway (a shifted one if it fails).

        The tolerances scale with the largest entry of the matrix Q was computed from: Q itself,
        or for a posterior Q = base - down down' the prior's `base` (its rounding is relative to
        that, however small the posterior)."""
        if not self._pending:
            return
        q = self._q()
        ref = q if self._base is None else self._base
        if not torch.equal(q, q.mT):   # an exactly symmetric Q (the usual case) in one pass
            _check_symmetric(q, _tol(q.dtype, _amax(ref, 2)), self._batch)
        if not self._cholesky()[1]:
            scale = _amax(ref, 2)
            tol = _tol(q.dtype, scale)
            ok = _psd_within(q, tol) | (scale == 0)
            if not bool(ok.all()):
                raise ValidationError(f"covariance is not positive semi-definite (an eigenvalue "
                                      f"is below -{float(tol.max()):.3g}, the tolerance)"
                                      f"{_where(self._batch, ~ok)}")
        self._pending = False

    def _cholesky(self) -> tuple[torch.Tensor, bool]:
        """(L, factored): Cholesky of Q and whether it succeeded in every batch entry
        (cached)."""
        if self._chol is None:
            chol, info = torch.linalg.cholesky_ex(self._q())
            self._chol = (chol, _succeeded(info))
        return self._chol

    @classmethod
    def _make(cls, a: torch.Tensor, b: torch.Tensor, q: torch.Tensor | None, dom: Space,
              cod: Space, pending: bool = False, **lazy: torch.Tensor) -> LinearGaussian:
        out = object.__new__(Gaussian if dom == Unit else LinearGaussian)
        out._init(a, b, q, dom, cod, validate=False, internal=True, pending=pending, **lazy)
        return out

    # Basic properties ----------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.matrix.dtype

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self._batch

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.cod.dim,)

    def _q(self) -> torch.Tensor:
        """The covariance as held (no pending check)."""
        if self._cov is None:
            self._cov = self._base - self._down @ self._down.mT  # type: ignore[operator]
        return self._cov

    @property
    def cov(self) -> torch.Tensor:
        """The noise covariance Q (for a state: its covariance), shape (*batch, n, n)."""
        self._resolve()
        q = self._q()
        return _batched(q, self._batch, 2)

    @property
    def variance(self) -> torch.Tensor:
        """diag(Q), computed without forming Q after a low-rank conditioning update.

        While the PSD check is pending (see the module docstring) the variances are checked
        non-negative here, which is what they need, with the tolerance of the matrix they were
        computed from (for a posterior the prior's `base`, whether or not Q was formed).
        """
        base = None if self._base is None else _diag(self._base)
        if self._cov is None:
            down = self._down
            sq = [down[..., sl, :].square().sum(-1)  # type: ignore[index]
                  for sl in _row_blocks(*down.shape[-2:])]  # type: ignore[union-attr]
            var = base - (sq[0] if len(sq) == 1 else torch.cat(sq, -1))  # type: ignore[operator]
        else:
            var = _diag(self._cov).clone()
        if self._pending:
            _check_not_negative(var, _amax(var if base is None else base, 1), self._batch,
                                "a variance is")
        return _batched(var, self._batch, 1)

    def _pd_factor(self) -> torch.Tensor | None:
        """The Cholesky factor of Q when Q is numerically positive definite, else None."""
        self._resolve()
        chol, done = self._cholesky()
        if self._pd is None:
            self._pd = done and _pivots_above_floor(self._q(), chol)
        return chol if self._pd else None

    @property
    def factor(self) -> torch.Tensor:
        """A matrix L with L L' = Q (Cholesky where Q is positive definite, else from eigh)."""
        if self._factor is None:
            chol = self._pd_factor()
            if chol is None:
                q = self._q()
                w, v = torch.linalg.eigh(q)
                floor = _tol(q.dtype, _amax(_diag(q), 1))[..., None]
                chol = v * torch.where(w > floor, w, 0).sqrt()[..., None, :]
            self._factor = chol
        return self._factor

    def __repr__(self) -> str:
        batch = f", batch {self._batch}" if self._batch else ""
        return f"LinearGaussian({self.dom} -> {self.cod}{batch})"

    def expand(self, batch_shape: Sequence[int]) -> LinearGaussian:
        """The same kernel repeated over `batch_shape` (views, no copies)."""
        bs = tuple(batch_shape)
        try:
            ok = all(isinstance(k, int) and k >= 0 for k in bs) and _bshape(bs, self._batch) == bs
        except ValidationError:
            ok = False
        if not ok:
            raise ValidationError(f"cannot expand a batch of shape {self._batch} to {bs!r}")
        lazy = {} if self._cov is not None else {
            "base": self._base.expand(*bs, *self._base.shape[-2:]),  # type: ignore[union-attr]
            "down": self._down.expand(*bs, *self._down.shape[-2:])}  # type: ignore[union-attr]
        q = None if self._cov is None else self._cov.expand(*bs, *self._cov.shape[-2:])
        return self._make(self.matrix.expand(*bs, *self.matrix.shape[-2:]),
                          self.offset.expand(*bs, self.offset.shape[-1]), q, self.dom, self.cod,
                          pending=self._pending, **lazy)

    def at(self, x: Tensorish) -> Gaussian:
        """The state c(x) = N(A x + b, Q); x may carry batch dimensions (*batch, d)."""
        xt = _flat_if_needed(_tensor(x, self.dtype, "the input point"), self.dom.dim)
        if xt.shape[-1] != self.dom.dim:
            raise SpaceMismatchError("input point", self.dom, tuple(xt.shape))
        out = Gaussian._make(self.matrix.new_zeros(self.cod.dim, 0),
                             _mv(self.matrix, xt) + self.offset, self._q(), Unit, self.cod,
                             pending=self._pending)
        out._chol, out._pd, out._factor = self._chol, self._pd, self._factor  # the same Q
        return out  # type: ignore[return-value]

    def __call__(self, x: Tensorish) -> pdist.MultivariateNormal:
        """c(x) as a `pyro.distributions.MultivariateNormal` (see `Gaussian.to_pyro`)."""
        self._pd_factor()  # factored once on the kernel, shared by every c(x)
        return self.at(x).to_pyro()

    # Composition ---------------------------------------------------------------------------
    def _coerce(self, other: Morphism) -> LinearGaussian:
        if not isinstance(other, LinearGaussian):
            raise TypeError(f"cannot combine a Gaussian kernel with {type(other).__name__}")
        return other

    def then(self, other: Morphism) -> LinearGaussian:
        """First self, then other: x -> N(A2 A1 x + A2 b1 + b2, A2 Q1 A2' + Q2)."""
        g = self._coerce(other)
        a2 = g.matrix.to(self.dtype)
        q = a2 @ self.cov @ a2.mT + g.cov.to(self.dtype)
        return self._make(a2 @ self.matrix, _mv(a2, self.offset) + g.offset.to(self.dtype),
                          (q + q.mT) / 2, self.dom, g.cod)

    def tensor(self, other: Morphism) -> LinearGaussian:
        """Parallel product: block-diagonal matrix and covariance."""
        g = self._coerce(other)
        dt = self.dtype
        b1, b2 = self.offset, g.offset.to(dt)
        batch = _bshape(b1.shape[:-1], b2.shape[:-1])
        return self._make(_block_diag(self.matrix, g.matrix.to(dt)),
                          torch.cat([b1.expand(*batch, b1.shape[-1]),
                                     b2.expand(*batch, b2.shape[-1])], -1),
                          _block_diag(self.cov, g.cov.to(dt)),
                          product(self.dom, g.dom), product(self.cod, g.cod))

    def marginal(self, *keys: FactorKey) -> LinearGaussian:
        """The kernel followed by the projection onto the given codomain factors, in that order
        (their rows of the matrix, offset and covariance: `then(projection(...))` without the
        products by the 0/1 matrix)."""
        idx = torch.tensor(_coords(self.cod, keys), dtype=torch.long)
        q = self.cov.index_select(-2, idx).index_select(-1, idx)
        return self._make(self.matrix.index_select(-2, idx), self.offset.index_select(-1, idx),
                          (q + q.mT) / 2, self.dom, self.cod.select(keys) if keys else Unit)

    # Sampling and densities ----------------------------------------------------------------
    def sample(self, x: Tensorish, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws from c(x), shape sample_shape + batch_shape + (n,) (seed with
        `generator=condprob.rng(seed)`)."""
        _ = self.factor  # factored once on the kernel, shared by every c(x)
        return self.at(x).sample(sample_shape, generator=generator)

    def log_prob(self, x: Tensorish, y: Tensorish) -> torch.Tensor:
        """log density of c(x) at y (see `Gaussian.log_prob`)."""
        self._pd_factor()  # factored once on the kernel, shared by every c(x)
        return self.at(x).log_prob(y)

    # Exact operations ----------------------------------------------------------------------
    def _invert(self, prior: Morphism) -> LinearGaussian:
        """Bayesian inverse: disintegrate the joint <c, id> prior along the codomain."""
        if not isinstance(prior, Gaussian):
            return super()._invert(prior)
        joint = prior.then(copy(self.dom, self.dtype)).then(
            self.tensor(identity(self.dom, self.dtype)))
        return joint._disintegrate(tuple(range(self.cod.ndim))).kernel

    def inverse(self, prior: Gaussian) -> LinearGaussian:
        """Bayesian inversion with respect to `prior` (see `condprob.invert`)."""
        check_composable(prior, self)
        return self._invert(prior)

    def allclose(self, other: LinearGaussian, atol: float = 1e-10) -> bool:
        """Same spaces and matrix, offset and covariance within `atol` (broadcasting batches)."""
        return (self.dom == other.dom and self.cod == other.cod
                and all(bool(((u - v.to(u.dtype)).abs() <= atol).all()) for u, v in (
                    (self.matrix, other.matrix), (self.offset, other.offset),
                    (self.cov, other.cov))))


def _flat_if_needed(t: torch.Tensor, n: int) -> torch.Tensor:
    """A vector of length n given in another shape (a scalar, a column) as (n,); batched
    vectors (*batch, n) are left as they are."""
    if t.ndim == 0 or (t.shape[-1] != n and t.numel() == n):
        return t.reshape(-1)
    return t


class Gaussian(LinearGaussian):
    """A Gaussian state N(mean, cov) on a Euclidean space; cov may be singular.

    `mean` is (*batch, n) and `cov` (*batch, n, n) (or `factor` (*batch, n, k) with
    cov = factor factor'). `g >> kernel` pushes forward, `g @ h` is the independent product,
    `g.marginal("y")` marginalises, `condprob.condition(g, event)` conditions exactly on linear
    equations; all of them per batch entry.
    """

    def __init__(self, mean: Tensorish, cov: Tensorish | None = None,
                 space: Space | int | None = None, *, factor: Tensorish | None = None,
                 dtype: torch.dtype | None = None, validate: bool = True):
        m = _tensor(mean, dtype, "the mean")
        if (cov is None) == (factor is None):
            raise ValidationError("give exactly one of cov and factor")
        lf = None
        if factor is not None:
            lf = _tensor(factor, m.dtype, "the factor")
            m = _flat_if_needed(m, lf.shape[-2] if lf.ndim >= 2 else -1)
            if lf.ndim < 2 or lf.shape[-2] != m.shape[-1]:
                raise ValidationError(f"factor must have shape (*batch, {m.shape[-1]}, k), "
                                      f"got {tuple(lf.shape)}")
            q = lf @ lf.mT
        else:
            q = _tensor(cov, m.dtype, "the covariance")
            m = _flat_if_needed(m, q.shape[-1] if q.ndim else -1)
        n = m.shape[-1]
        self._init(m.new_zeros(n, 0), m, q, Unit, _as_space(n if space is None else space),
                   validate and lf is None)
        if lf is not None:
            self._factor = lf

    @classmethod
    def standard(cls, space: Space | int, dtype: torch.dtype = torch.float64) -> Gaussian:
        """N(0, I) on R^n."""
        sp = _as_space(space)
        return cls(torch.zeros(sp.dim, dtype=dtype), torch.eye(sp.dim, dtype=dtype), sp,
                   validate=False)

    @property
    def space(self) -> Space:
        return self.cod

    @property
    def mean(self) -> torch.Tensor:
        """The mean, shape (*batch, n)."""
        return _batched(self.offset, self._batch, 1)

    def __repr__(self) -> str:
        batch = f", batch {self._batch}" if self._batch else ""
        return f"Gaussian(on {self.cod}{batch})"

    def marginal(self, *keys: FactorKey) -> Gaussian:
        """The marginal on the given factors (by name or index), in that order."""
        return super().marginal(*keys)  # type: ignore[return-value]

    def expand(self, batch_shape: Sequence[int]) -> Gaussian:
        """The same state repeated over `batch_shape` (views, no copies)."""
        return super().expand(batch_shape)  # type: ignore[return-value]

    def __call__(self, x: Tensorish = ()) -> pdist.MultivariateNormal:
        """The state as a Pyro distribution (its one input is the unit point; see `to_pyro`)."""
        return self.to_pyro()

    def sample(self, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws mean + L z with z standard normal, shape sample_shape + batch_shape + (n,)."""
        sample_shape = as_sample_shape(sample_shape)
        lf = self.factor
        z = torch.randn(*sample_shape, *self._batch, lf.shape[-1], dtype=self.dtype,
                        generator=generator)
        return self.mean + (z[..., None, :] @ lf.mT)[..., 0, :]

    def log_prob(self, value: Tensorish) -> torch.Tensor:
        """log density at `value` (*, *batch, n) -> (*, *batch).

        For singular cov this is the density on the support mean + range(cov) with respect to
        Lebesgue measure there (pseudo-determinant); off the support it is -inf.
        """
        y = _tensor(value, self.dtype, "the value")
        if y.shape[-1:] != (self.cod.dim,):
            raise SpaceMismatchError("value for log_prob", (self.cod.dim,), tuple(y.shape))
        n = self.cod.dim
        d = y - self.mean
        chol = self._pd_factor()
        if chol is not None:
            z = torch.linalg.solve_triangular(chol, d[..., None], upper=False)
            return -0.5 * ((z[..., 0] ** 2).sum(-1) + n * math.log(2 * math.pi)) \
                - _diag(chol).log().sum(-1)
        w, v = torch.linalg.eigh(self._q())
        keep = ~_zero_variance(w)
        coef = _mv(v.mT, d)
        ws = torch.where(keep, w, torch.ones_like(w))
        out = -0.5 * (torch.where(keep, coef**2 / ws, 0).sum(-1) + ws.log().sum(-1)
                      + keep.sum(-1).to(w.dtype) * math.log(2 * math.pi))
        comp, allowed = _off_range(w, v, d, _amax(self.mean, 1) + _amax(y, 1))
        return torch.where((comp > allowed).any(-1), torch.full_like(out, -math.inf), out)

    def to_pyro(self) -> pdist.MultivariateNormal:
        """The state as a `pyro.distributions.MultivariateNormal` with this batch shape; a
        singular covariance gives a `SingularMultivariateNormal` (same sampling, densities on
        the support)."""
        chol = self._pd_factor()
        if chol is not None:
            # loc and scale_tril are this state's checked mean and its own Cholesky factor, so
            # torch's constructor checks of them are skipped (2-d: 85 -> 11 us); the checks of
            # values given to log_prob follow torch's default as before
            d = pdist.MultivariateNormal(self.mean, scale_tril=chol, validate_args=False)
            d._validate_args = torch.distributions.Distribution._validate_args
            return d
        return SingularMultivariateNormal(self)

    @classmethod
    def from_pyro(cls, d: torch.distributions.Distribution,
                  space: Space | None = None) -> Gaussian:
        """A state from a torch/Pyro MultivariateNormal (its batch shape kept), a Normal (one
        coordinate per entry) or an Independent Normal (batch shape kept, event flattened)."""
        base = d.base_dist if isinstance(d, torch.distributions.Independent) else d
        if isinstance(base, torch.distributions.MultivariateNormal) and base is d:
            return cls(base.loc, base.covariance_matrix, space)
        if isinstance(base, torch.distributions.Normal):
            batch = tuple(d.batch_shape) if base is not d else ()
            shape = (*d.batch_shape, *d.event_shape)
            loc = base.loc.expand(shape).reshape(*batch, -1)
            var = base.scale.expand(shape).reshape(*batch, -1) ** 2
            return cls(loc, torch.diag_embed(var), space)
        raise TypeError(f"cannot convert {type(d).__name__} to a Gaussian; supported: Normal, "
                        "Independent Normal, MultivariateNormal")

    def prob_below(self, weights: Tensorish, threshold: float) -> torch.Tensor:
        """P(weights . x <= threshold) = Phi((threshold - w.mean) / sqrt(w cov w)), per batch.

        When w.x is deterministic (its variance is at rounding level of the prior's scale) this
        is 1 if w.mean <= threshold up to rounding, else 0.
        """
        w = _tensor(weights, self.dtype, "the weights").reshape(-1)
        if w.shape[0] != self.cod.dim:
            raise SpaceMismatchError("weights of prob_below", (self.cod.dim,), tuple(w.shape))
        t = _tensor(threshold, self.dtype, "the threshold")
        if t.numel() != 1:
            raise ValidationError(f"the threshold must be one number, got shape {tuple(t.shape)}")
        q = self._q()
        mu, var = self.mean @ w, (_mv(q, w) * w).sum(-1)
        gap = t.reshape(()) - mu
        ref = q if self._base is None else self._base
        var_tol = _tol(self.dtype, (w**2).sum() * _amax(_diag(ref), 1))
        slack = _Z * var.clamp(min=0).sqrt() + _tol(self.dtype, mu.abs())
        det = var <= var_tol
        sd = torch.where(det, torch.ones_like(var), var).sqrt()
        return torch.where(det, (gap >= -slack).to(self.dtype), torch.special.ndtr(gap / sd))

    # Exact operations ----------------------------------------------------------------------
    def _condition(self, event: Any) -> Gaussian:
        """Exact conditioning on a `LinearEquation`, an (A, b) pair or {factor: value}."""
        eq = self._equation(event)
        return self.condition_linear(eq)

    def _equation(self, event: Any) -> LinearEquation:
        if isinstance(event, LinearEquation):
            eq = event
        elif isinstance(event, Mapping):
            rows, vals, names = [], [], []
            for key, val in event.items():
                idx = _coords(self.cod, [key])
                v = _flat_if_needed(_tensor(val, self.dtype, f"the value of factor {key!r}"),
                                    len(idx))
                if v.shape[-1] != len(idx):
                    raise ValidationError(f"factor {key!r} has dimension {len(idx)}, "
                                          f"got a value of shape {tuple(v.shape)}")
                rows += idx
                vals.append(v)
                names.append(f"{key} == {v.tolist() if v.numel() <= 4 else '<value>'}")
            batch = _bshape(*(v.shape[:-1] for v in vals))
            eq = LinearEquation.observe(rows, torch.cat([v.expand(*batch, v.shape[-1])
                                                         for v in vals], -1),
                                        self.cod.dim, " and ".join(names))
        elif isinstance(event, tuple) and len(event) == 2:
            eq = LinearEquation(*event, dtype=self.dtype)
        else:
            raise TypeError(f"cannot condition a Gaussian on {event!r}: give a LinearEquation, "
                            "an (A, b) pair or a {factor: value} mapping")
        return eq

    def condition_linear(self, matrix: Tensorish | LinearEquation, rhs: Tensorish | None = None,
                         name: str | None = None, tol: float | None = None) -> Gaussian:
        """Condition exactly on matrix @ x == rhs (probability-zero events included).

        S = A cov A', c = rhs - A mean; posterior N(mean + cov A' S^+ c, cov - cov A' S^+ A cov).
        Raises `ConditioningError` naming the equation when c is not in range(S); `tol` overrides
        the residual tolerance described in the module docstring. Batched states, matrices and
        right-hand sides broadcast.
        """
        return self._conditioned(self._linear_equation(matrix, rhs, name), tol, False)[0]

    def condition_evidence(self, matrix: Tensorish | LinearEquation, rhs: Tensorish | None = None,
                           name: str | None = None, tol: float | None = None
                           ) -> tuple[Gaussian, torch.Tensor, torch.Tensor]:
        """`condition_linear` plus the evidence: (posterior, log density, deficit), the last two
        of shape batch_shape.

        The log density is that of A x at rhs, with respect to Lebesgue measure on range(S) (the
        full R^r when S has full rank); `deficit` = r - rank(S) counts the equations that held
        with probability one. Hybrid programs weigh their branches by these two numbers.
        """
        return self._conditioned(self._linear_equation(matrix, rhs, name), tol,  # type: ignore[return-value]
                                 True)

    def _linear_equation(self, matrix: Tensorish | LinearEquation, rhs: Tensorish | None,
                         name: str | None) -> LinearEquation:
        eq = matrix if isinstance(matrix, LinearEquation) else \
            LinearEquation(matrix, rhs, name=name, dtype=self.dtype)
        if eq._dim != self.cod.dim:
            raise SpaceMismatchError(f"equation {eq.name}", self.cod.dim, eq._dim)
        return eq

    def _conditioned(self, eq: LinearEquation, tol: float | None, evidence: bool
                     ) -> tuple[Gaussian, torch.Tensor | None, torch.Tensor | None]:
        """The posterior given `eq`, and (log density, deficit) of `condition_evidence` when
        `evidence` is set (else None, None)."""
        b = eq.rhs.to(self.dtype)
        r = b.shape[-1]
        q = self._q()
        if eq.index is not None:
            am = self.mean.index_select(-1, eq.index)
            rows = q.index_select(-2, eq.index)                # Q[o, :], read row by row
            ca = rows.mT                                       # Q[:, o], (*batch, n, r)
            s = rows.index_select(-1, eq.index)
            exact = r == 1 or torch.equal(s, s.mT)             # Q[o, o] exactly symmetric
            if self._pending:
                self._check_read(rows, s, eq.index, exact)
        else:
            a = eq.matrix.to(self.dtype)
            if self._pending:
                self._check_read(q, q, None, torch.equal(q, q.mT))
            am = _mv(a, self.mean)
            ca = q @ a.mT
            s = a @ ca
            exact = False
        if not exact:
            s = (s + s.mT) / 2
        c = b - am
        batch = _bshape(self._batch, c.shape[:-1], s.shape[:-2])
        chol, info = torch.linalg.cholesky_ex(s)
        full = _succeeded(info) and _pivots_above_floor(s, chol)
        if full:
            g = torch.linalg.solve_triangular(chol.mT, ca, upper=True, left=False)  # (*b, n, r)
            w = torch.linalg.solve_triangular(chol, c.unsqueeze(-1), upper=False).squeeze(-1)
        else:
            lam, u = torch.linalg.eigh(s)
            if self._pending:
                self._check_block(lam)
            zero = _zero_variance(lam)
            comp, allowed = _off_range(lam, u, c, _amax(b, 1) + _amax(am, 1))
            if tol is not None:
                allowed = torch.where(zero, tol, 0.0)
            excess = comp - allowed
            if bool((excess > 0).any()):
                worst = excess.reshape(-1).argmax()
                where = _where(batch, (excess > 0).any(-1).expand(batch))
                raise ConditioningError(eq.name, f"the condition is inconsistent (residual "
                                        f"{float(comp.reshape(-1)[worst]):.3g} along a direction "
                                        f"of zero variance exceeds the tolerance "
                                        f"{float(allowed.expand_as(comp).reshape(-1)[worst]):.3g})"
                                        f"{where}")
            lam_kept = torch.where(zero, torch.ones_like(lam), lam)
            rank = (~zero).sum(-1)
            # eigh sorts ascending, so the zero directions come first: the columns from `first`
            # on are the directions some batch member keeps (the others would be zero columns)
            first = r - int(rank.amax()) if rank.numel() else r
            u = u.narrow(-1, first, r - first)
            isq = torch.where(zero, 0.0, lam_kept.rsqrt()).narrow(-1, first, r - first)
            g = ((u * isq[..., None, :]).mT @ ca.mT).mT      # Q[:, o] U diag(isq), (*b, n, k)
            w = _mv(u.mT, c) * isq
        mean = self.mean + _mv(g, w)
        # the posterior lives on {A x = b}: project the mean onto it (least-norm shift), which
        # removes the rounding left in directions of tiny or (numerically) zero variance
        if eq.index is not None:
            mean.index_copy_(-1, eq.index, b.expand(*mean.shape[:-1], r))
        elif not full and bool((rank < r).any()):
            fix = b - _mv(a, mean)
            shift = torch.linalg.lstsq(a.expand(*batch, *a.shape[-2:]), fix[..., None],
                                       driver="gelsd").solution[..., 0]
            mean = mean + shift
        post = Gaussian._make(self.matrix, mean, None, Unit, self.cod, pending=self._pending,
                              base=q, down=g)
        if not evidence:
            return post, None, None  # type: ignore[return-value]
        if full:
            logdet, rank = 2 * _diag(chol).log().sum(-1), torch.tensor(r)
        else:
            logdet = lam_kept.log().sum(-1)
        logp = -0.5 * ((w**2).sum(-1) + logdet + rank.to(w.dtype) * math.log(2 * math.pi))
        return post, logp.expand(batch), (r - rank).expand(batch)  # type: ignore[return-value]

    def _check_read(self, rows: torch.Tensor, block: torch.Tensor, index: torch.Tensor | None,
                    exact: bool) -> None:
        """Pending check of the rows R = Q[o, :] of the covariance a condition reads (o all
        coordinates when `index` is None): the block Q[o, o] symmetric (no pass when it is
        `exact`ly so), and the PSD bound R_ij^2 <= Q_oo Q_jj on every entry read.

        The bound is first tried row by row by two reductions without temporaries: max_j R_ij^2 <=
        min(Q_oo min_j Q_jj, Q_oo max_j Q_jj) implies it for every j (it holds when the variances
        are alike, as in a stationary GP); only rows where that fails get the entrywise test."""
        d = _diag(self._q())
        top = _amax(d, 1)
        tol = _tol(self.dtype, top)
        if not exact:
            _check_symmetric(block, tol, self._batch)
        if not rows.shape[-2]:                                 # no equations: nothing read
            return
        do = d if index is None else d.index_select(-1, index)
        # |R_ij| <= sqrt(Q_oo Q_jj) + tol, squared: R_ij^2 - Q_oo Q_jj <= 2 tol max(Q_ii) + tol^2
        slack = (2 * top + tol) * tol
        peak = torch.maximum(rows.amax(-1), rows.amin(-1).neg_())   # (aminmax(dim) is slower)
        floor = torch.minimum(do * d.amin(-1, keepdim=True), do * d.amax(-1, keepdim=True))
        if bool((peak.square_() - floor <= slack.unsqueeze(-1)).all()):
            return
        worst = [rows[..., sl, :].square().addcmul_(do[..., sl].unsqueeze(-1), d.unsqueeze(-2),
                                                    value=-1).flatten(-2).amax(-1)
                 for sl in _row_blocks(*rows.shape[-2:])]
        bad = (worst[0] if len(worst) == 1 else torch.stack(worst, -1).amax(-1)) > slack
        if bool(bad.any()):
            raise ValidationError(f"covariance is not positive semi-definite: a covariance exceeds "
                                  f"the product of the standard deviations (|Q_ij| > "
                                  f"sqrt(Q_ii Q_jj)){_where(self._batch, bad)}")

    def _check_block(self, lam: torch.Tensor) -> None:
        """Pending PSD check of the block A Q A' a condition factors (its eigenvalues)."""
        _check_not_negative(lam, _amax(lam, 1), self._batch,
                            "the conditioned block A Q A' has an eigenvalue")

    def _disintegrate(self, along: Any) -> Disintegration:
        """joint on X @ Y -> (marginal on X, kernel x -> N(my + Syx Sxx^+ (x - mx), Schur)).

        `null` holds columns spanning the directions where the marginal has zero variance (for a
        batched joint: the eigenvector matrix with the other columns zeroed); the kernel there is
        fixed by the pseudo-inverse (any choice agrees almost everywhere).
        """
        xs, ys = self.cod.split(along)
        ix, iy = _coords(self.cod, xs), _coords(self.cod, ys)
        cov, m = self.cov, self.mean
        rows = cov[..., ix, :]
        sxx, sxy, syy = rows[..., :, ix], rows[..., :, iy], cov[..., iy, :][..., :, iy]
        lam, u = torch.linalg.eigh(sxx)
        zero = _zero_variance(lam)
        inv = torch.where(zero, 0.0, 1 / torch.where(zero, torch.ones_like(lam), lam))
        gain = ((sxy.mT @ u) * inv[..., None, :]) @ u.mT       # Syx Sxx^+
        q = syy - gain @ sxy
        xspace, yspace = self.cod.select(xs), self.cod.select(ys)
        marginal = Gaussian._make(m.new_zeros(len(ix), 0), m[..., ix], sxx, Unit, xspace)
        kernel = LinearGaussian._make(gain, m[..., iy] - _mv(gain, m[..., ix]), (q + q.mT) / 2,
                                      xspace, yspace)
        null = u[:, zero] if u.ndim == 2 else u * zero[..., None, :]
        return Disintegration(marginal, kernel, null)

    def _update(self, evidence: Any) -> Gaussian:
        """Pearl update with a Gaussian likelihood: evidence = (kernel c, observation y).

        The posterior is the joint <id, c> of this state conditioned exactly on its second
        factor == y (the Bayesian inverse of c evaluated at y), restricted to this space; an
        observation off the support of this state >> c raises `ConditioningError`. y may be
        batched (*batch, m).
        """
        if not (isinstance(evidence, tuple) and len(evidence) == 2
                and isinstance(evidence[0], LinearGaussian)):
            raise TypeError("a Gaussian update takes (kernel, observation); for equations use "
                            "condprob.condition")
        kernel, y = evidence
        check_composable(self, kernel)
        n, m = self.cod.dim, kernel.cod.dim
        yv = _flat_if_needed(_tensor(y, self.dtype, "the observation"), m)
        if yv.shape[-1] != m:
            raise SpaceMismatchError("observation of a Pearl update", kernel.cod, tuple(yv.shape))
        # the joint <id, c>: mean (m, A m + b), covariance [[K, K A'], [A K, A K A' + Q]]
        k, a = self._q(), kernel.matrix.to(self.dtype)
        ka = k @ a.mT
        kb = _bshape(k.shape[:-2], ka.shape[:-2])
        s = a @ ka + kernel.cov.to(self.dtype)
        sb = _bshape(kb, s.shape[:-2])
        cov = torch.cat([torch.cat([k.expand(*sb, n, n), ka.expand(*sb, n, m)], -1),
                         torch.cat([ka.mT.expand(*sb, m, n), s.expand(*sb, m, m)], -1)], -2)
        mean2 = _mv(a, self.mean) + kernel.offset.to(self.dtype)
        mb = _bshape(self.mean.shape[:-1], mean2.shape[:-1])
        mean = torch.cat([self.mean.expand(*mb, n), mean2.expand(*mb, m)], -1)
        joint = Gaussian._make(mean.new_zeros(n + m, 0), mean, cov, Unit,
                               product(self.cod, kernel.cod), pending=self._pending)
        shown = yv.tolist() if yv.numel() <= 4 else "<value>"
        post = joint.condition_linear(LinearEquation.observe(
            range(n, n + m), yv, n + m, name=f"the observation y == {shown}"))
        return Gaussian._make(post.matrix[:n], post.mean[..., :n], None, Unit, self.cod,
                              pending=post._pending, base=post._base[..., :n, :n],  # type: ignore[index]
                              down=post._down[..., :n, :])  # type: ignore[index]


# Structural kernels -----------------------------------------------------------------------
def _deterministic(a: torch.Tensor, dom: Space, cod: Space) -> LinearGaussian:
    n = a.shape[0]
    return LinearGaussian._make(a, a.new_zeros(n), a.new_zeros(n, n), dom, cod)


def identity(space: Space | int, dtype: torch.dtype = torch.float64) -> LinearGaussian:
    """The identity kernel x -> delta_x on a Euclidean space."""
    sp = _as_space(space)
    return _deterministic(torch.eye(sp.dim, dtype=dtype), sp, sp)


def copy(space: Space | int, dtype: torch.dtype = torch.float64) -> LinearGaussian:
    """The copy kernel x -> delta_(x, x) into space @ space."""
    sp = _as_space(space)
    eye = torch.eye(sp.dim, dtype=dtype)
    return _deterministic(torch.cat([eye, eye]), sp, product(sp, sp))


def discard(space: Space | int, dtype: torch.dtype = torch.float64) -> LinearGaussian:
    """The discard kernel into the unit space."""
    sp = _as_space(space)
    return _deterministic(torch.zeros(0, sp.dim, dtype=dtype), sp, Unit)


def projection(space: Space | int, *keys: FactorKey,
               dtype: torch.dtype = torch.float64) -> LinearGaussian:
    """The deterministic projection onto the given factors, in that order."""
    sp = _as_space(space)
    rows = _coords(sp, keys)
    return _deterministic(torch.eye(sp.dim, dtype=dtype)[rows], sp,
                          sp.select(keys) if keys else Unit)


def swap(x: Space | int, y: Space | int, dtype: torch.dtype = torch.float64) -> LinearGaussian:
    """The swap kernel (x, y) -> (y, x)."""
    sx, sy = _as_space(x), _as_space(y)
    both = product(sx, sy)
    rows = list(range(sx.dim, sx.dim + sy.dim)) + list(range(sx.dim))
    return _deterministic(torch.eye(both.dim, dtype=dtype)[rows], both, product(sy, sx))
