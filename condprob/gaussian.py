"""Gaussian states and linear-Gaussian kernels, with exact conditioning on linear equations.

A `LinearGaussian` kernel is x -> N(A x + b, Q) between Euclidean spaces (products of named
Euclidean factors); Q may be singular or zero (a deterministic affine map). A `Gaussian` state is a
linear-Gaussian kernel out of the unit space: N(mean, cov), cov possibly singular.

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from condprob.conditioning import Disintegration
from condprob.errors import ConditioningError, SpaceMismatchError, ValidationError
from condprob.protocol import Morphism, check_composable, rng
from condprob.spaces import Euclidean, FactorKey, Space, Unit, product

Tensorish = torch.Tensor | Sequence[Any] | float | int

__all__ = [
    "Gaussian",
    "LinearEquation",
    "LinearGaussian",
    "copy",
    "discard",
    "identity",
    "projection",
    "swap",
]


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
    elif dtype is not None:
        t = t.to(dtype)
    if t.numel() and not (bool(torch.isfinite(t.amax())) and bool(torch.isfinite(t.amin()))):
        raise ValidationError(f"{what} has non-finite entries")  # max/min propagate NaN
    return t


# Tolerances ---------------------------------------------------------------------------------
# One rule, the core's policy: tol = min(1024 eps, sqrt eps) * scale * condition, with eps that of
# the dtype the numbers are held in, scale the magnitude of what is compared and condition the
# condition number of the computation that produced it.
_SLACK = 1024
_Z = 4.0  # a value may sit this many of its own standard deviations off a dropped direction


def _tol(dtype: torch.dtype, scale: float, condition: float = 1.0) -> float:
    e = torch.finfo(dtype).eps
    return min(_SLACK * e, math.sqrt(e)) * scale * condition


def _zero_variance(lam: torch.Tensor) -> torch.Tensor:
    """Eigenvalues that count as zero: at most tol(dtype, largest eigenvalue)."""
    return lam <= _tol(lam.dtype, float(lam.max().clamp(min=0)) if lam.numel() else 0.0)


def _off_range(lam: torch.Tensor, u: torch.Tensor, c: torch.Tensor, scale: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The components of c (shape (..., r)) along the zero-variance directions of
    S = u diag(lam) u', and what each may hold: (|u_i' c|, allowance_i), shapes (..., k), (k,).

    Along a direction i of zero variance (`_zero_variance`) the component may be up to
    _Z sqrt(max(lam_i, 0)) (what a direction of that computed variance can hold) plus the rounding
    tolerance tol(dtype, scale, cond), where `scale` bounds the magnitude of c's terms and cond =
    lam_max / lam_min over the kept eigenvalues (the accuracy of the computed range). c lies in
    the range of S iff every component is within its allowance.
    """
    zero = _zero_variance(lam)
    kept = lam[~zero]
    cond = float(kept.max() / kept.min()) if kept.numel() else 1.0
    comp = (c @ u[:, zero]).abs()
    return comp, _Z * lam[zero].clamp(min=0).sqrt() + _tol(lam.dtype, scale, cond)


def _psd_within(q: torch.Tensor, tol: float) -> bool:
    """q >= -tol I, checked by a Cholesky factorisation of q + 2 tol I (no eigendecomposition)."""
    shifted = q.clone()
    shifted.diagonal().add_(2 * tol)
    return int(torch.linalg.cholesky_ex(shifted)[1]) == 0


def _sample_shape(shape: tuple[int, ...] | int) -> tuple[int, ...]:
    shp = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(k, int) and k >= 0 for k in shp):
        raise ValidationError(f"sample_shape must be non-negative integers, got {shape!r}")
    return shp


def _factor_slices(space: Space) -> list[slice]:
    out, start = [], 0
    for f in space.factors:
        out.append(slice(start, start + f.dim))
        start += f.dim
    return out


def _coords(space: Space, keys: Sequence[FactorKey]) -> list[int]:
    slices = _factor_slices(space)
    return [j for i in space.factor_indices(keys) for j in range(slices[i].start, slices[i].stop)]


class LinearEquation:
    """The event `matrix @ x == rhs` (r equations on R^n), named for error messages.

    `LinearEquation.observe(index, values)` is the special case x[index] == values, which
    conditioning handles by indexing instead of matrix products.
    """

    def __init__(self, matrix: Tensorish, rhs: Tensorish, name: str | None = None,
                 dtype: torch.dtype | None = None):
        a = _tensor(matrix, dtype, "the equation's matrix")
        a = a[None, :] if a.ndim == 1 else a
        b = _tensor(rhs, a.dtype, "the equation's right-hand side").reshape(-1)
        if a.ndim != 2 or b.shape[0] != a.shape[0]:
            raise ValidationError(
                f"an equation A x = b needs A of shape (r, n) and b of shape (r,), got "
                f"{tuple(a.shape)} and {tuple(b.shape)}")
        self.matrix, self.rhs = a, b
        self.index: torch.Tensor | None = None
        self.name = name or f"A x == b ({a.shape[0]} equation{'s' * (a.shape[0] != 1)})"

    @classmethod
    def observe(cls, index: Sequence[int] | torch.Tensor, values: Tensorish, dim: int,
                name: str | None = None) -> LinearEquation:
        """The equations x[index] == values on R^dim."""
        idx = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        v = _tensor(values, None, "the observed values").reshape(-1)
        if idx.shape != v.shape:
            raise ValidationError(f"{idx.numel()} indices but {v.numel()} observed values")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= dim):
            raise ValidationError(f"observed indices must lie in [0, {dim}), got "
                                  f"{int(idx.min())}..{int(idx.max())}")
        eq = object.__new__(cls)
        eq.matrix, eq.rhs, eq.index = v.new_zeros(len(idx), dim), v, idx
        eq.name = name or f"x[index] == values ({len(idx)} observations)"
        return eq

    def __repr__(self) -> str:
        return self.name


class LinearGaussian(Morphism):
    """The kernel x -> N(matrix @ x + offset, cov) from R^d (`dom`) to R^n (`cod`).

    Shapes and finiteness are always checked; `validate=False` skips only the symmetry and
    positive semi-definiteness check of the covariance (one O(n^3) Cholesky factorisation).
    """

    def __init__(self, matrix: Tensorish, offset: Tensorish | None = None,
                 cov: Tensorish | None = None, dom: Space | int | None = None,
                 cod: Space | int | None = None, *, dtype: torch.dtype | None = None,
                 validate: bool = True):
        a = _tensor(matrix, dtype, "the kernel's matrix")
        if a.ndim != 2:
            raise ValidationError(f"the kernel's matrix must be 2-d, got shape {tuple(a.shape)}")
        n, d = a.shape
        b = torch.zeros(n, dtype=a.dtype) if offset is None else \
            _tensor(offset, a.dtype, "the kernel's offset").reshape(-1)
        q = torch.zeros(n, n, dtype=a.dtype) if cov is None else \
            _tensor(cov, a.dtype, "the kernel's covariance")
        self._init(a, b, q, _as_space(d if dom is None else dom), _as_space(n if cod is None else cod),
                   validate)

    def _init(self, a: torch.Tensor, b: torch.Tensor, q: torch.Tensor | None, dom: Space,
              cod: Space, validate: bool, down: torch.Tensor | None = None,
              base: torch.Tensor | None = None, internal: bool = False) -> None:
        self.matrix, self.offset = a, b
        self.dom, self.cod = dom, cod
        self._cov, self._base, self._down = q, base, down
        self._factor: torch.Tensor | None = None
        if not internal:
            self._check_shapes()
        if validate:
            self._validate()

    def _check_shapes(self) -> None:
        n, d = self.matrix.shape
        if d != self.dom.dim or n != self.cod.dim:
            raise SpaceMismatchError(f"matrix of shape {(n, d)} for a kernel", (self.cod.dim,
                                     self.dom.dim), (n, d))
        if self.offset.shape != (n,):
            raise ValidationError(f"offset must have shape ({n},), got {tuple(self.offset.shape)}")
        if self.cov.shape != (n, n):
            raise ValidationError(f"covariance must have shape ({n}, {n}), got "
                                  f"{tuple(self.cov.shape)}")

    def _validate(self) -> None:
        """Symmetry and positive semi-definiteness of the covariance (relative tolerance)."""
        q = self.cov
        scale = float(q.abs().max()) if q.numel() else 0.0
        if scale == 0:
            return
        tol = _tol(q.dtype, scale)
        asym = float((q - q.T).abs_().amax())
        if asym > tol:
            raise ValidationError(f"covariance is not symmetric (|Q - Q'| = {asym:.3g} exceeds "
                                  f"the tolerance {tol:.3g})")
        if not _psd_within(q, tol):
            raise ValidationError(f"covariance is not positive semi-definite (an eigenvalue is "
                                  f"below -{tol:.3g}, the tolerance)")

    @classmethod
    def _make(cls, a: torch.Tensor, b: torch.Tensor, q: torch.Tensor | None, dom: Space,
              cod: Space, **lazy: torch.Tensor) -> LinearGaussian:
        out = object.__new__(Gaussian if dom == Unit else LinearGaussian)
        out._init(a, b, q, dom, cod, validate=False, internal=True, **lazy)
        return out

    # Basic properties ----------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.matrix.dtype

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.cod.dim,) if self.cod != Unit else (0,)

    @property
    def cov(self) -> torch.Tensor:
        """The noise covariance Q (for a state: its covariance)."""
        if self._cov is None:
            self._cov = self._base - self._down @ self._down.T
        return self._cov

    @property
    def variance(self) -> torch.Tensor:
        """diag(Q), computed without forming Q after a low-rank conditioning update."""
        if self._cov is None:
            return self._base.diagonal() - (self._down**2).sum(-1)
        return self.cov.diagonal().clone()

    def _floor(self) -> float:
        q = self.cov
        return _tol(q.dtype, float(q.diagonal().abs().max())) if len(q) else 0.0

    def _pd_factor(self) -> torch.Tensor | None:
        """The Cholesky factor of Q when Q is numerically positive definite (cached), else None."""
        if self._factor is None:
            chol, info = torch.linalg.cholesky_ex(self.cov)
            if int(info) == 0 and bool((chol.diagonal() ** 2 > self._floor()).all()):
                self._factor = chol
        return self._factor

    @property
    def factor(self) -> torch.Tensor:
        """A matrix L with L L' = Q (Cholesky where Q is positive definite, else from eigh)."""
        if self._pd_factor() is None:
            w, v = torch.linalg.eigh(self.cov)
            self._factor = v * torch.where(w > self._floor(), w, 0).sqrt()
        return self._factor  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"LinearGaussian({self.dom} -> {self.cod})"

    def at(self, x: Tensorish) -> Gaussian:
        """The state c(x) = N(A x + b, Q)."""
        xt = _tensor(x, self.dtype, "the input point").reshape(-1)
        if xt.shape[0] != self.dom.dim:
            raise SpaceMismatchError("input point", self.dom, tuple(xt.shape))
        return Gaussian._make(self.matrix.new_zeros(self.cod.dim, 0),  # type: ignore[return-value]
                              self.matrix @ xt + self.offset, self.cov, Unit, self.cod)

    # Composition ---------------------------------------------------------------------------
    def _coerce(self, other: Morphism) -> LinearGaussian:
        if not isinstance(other, LinearGaussian):
            raise TypeError(f"cannot combine a Gaussian kernel with {type(other).__name__}")
        return other

    def then(self, other: Morphism) -> LinearGaussian:
        """First self, then other: x -> N(A2 A1 x + A2 b1 + b2, A2 Q1 A2' + Q2)."""
        g = self._coerce(other)
        a2 = g.matrix.to(self.dtype)
        q = a2 @ self.cov @ a2.T + g.cov.to(self.dtype)
        return self._make(a2 @ self.matrix, a2 @ self.offset + g.offset.to(self.dtype),
                          (q + q.T) / 2, self.dom, g.cod)

    def tensor(self, other: Morphism) -> LinearGaussian:
        """Parallel product: block-diagonal matrix and covariance."""
        g = self._coerce(other)
        dt = self.dtype
        return self._make(torch.block_diag(self.matrix, g.matrix.to(dt)),
                          torch.cat([self.offset, g.offset.to(dt)]),
                          torch.block_diag(self.cov, g.cov.to(dt)),
                          product(self.dom, g.dom), product(self.cod, g.cod))

    def marginal(self, *keys: FactorKey) -> LinearGaussian:
        """The kernel followed by the projection onto the given codomain factors, in that order."""
        return self.then(projection(self.cod, *keys))

    # Sampling and densities ----------------------------------------------------------------
    def sample(self, x: Tensorish, sample_shape: tuple[int, ...] | int = (),  # type: ignore[override]
               seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws from c(x), shape sample_shape + (n,) (seeded when `seed` is given)."""
        return self.at(x).sample(sample_shape, seed=seed, generator=generator)

    def log_prob(self, x: Tensorish, y: Tensorish) -> torch.Tensor:  # type: ignore[override]
        """log density of c(x) at y (see `Gaussian.log_prob`)."""
        return self.at(x).log_prob(y)

    # Exact operations ----------------------------------------------------------------------
    def _invert(self, prior: Morphism) -> LinearGaussian:
        """Bayesian inverse: disintegrate the joint <c, id> prior along the codomain."""
        if not isinstance(prior, Gaussian):
            return super()._invert(prior)
        joint = prior.then(copy(self.dom)).then(self.tensor(identity(self.dom)))
        return joint._disintegrate(tuple(range(self.cod.ndim))).kernel

    def inverse(self, prior: Gaussian) -> LinearGaussian:
        """Bayesian inversion with respect to `prior` (see `condprob.invert`)."""
        check_composable(prior, self)
        return self._invert(prior)

    def allclose(self, other: LinearGaussian, atol: float = 1e-10) -> bool:
        """Same spaces and matrix, offset and covariance within `atol`."""
        return (self.dom == other.dom and self.cod == other.cod
                and all(torch.allclose(u, v.to(u.dtype), atol=atol, rtol=0) for u, v in (
                    (self.matrix, other.matrix), (self.offset, other.offset),
                    (self.cov, other.cov))))


class Gaussian(LinearGaussian):
    """A Gaussian state N(mean, cov) on a Euclidean space; cov may be singular.

    `g >> kernel` pushes forward, `g @ h` is the independent product, `g.marginal("y")`
    marginalises, `condprob.condition(g, event)` conditions exactly on linear equations.
    """

    def __init__(self, mean: Tensorish, cov: Tensorish | None = None,
                 space: Space | int | None = None, *, factor: Tensorish | None = None,
                 dtype: torch.dtype | None = None, validate: bool = True):
        m = _tensor(mean, dtype, "the mean").reshape(-1)
        if (cov is None) == (factor is None):
            raise ValidationError("give exactly one of cov and factor")
        if factor is not None:
            lf = _tensor(factor, m.dtype, "the factor")
            if lf.ndim != 2 or lf.shape[0] != m.shape[0]:
                raise ValidationError(f"factor must have shape ({m.shape[0]}, k), "
                                      f"got {tuple(lf.shape)}")
            cov = lf @ lf.T
        q = _tensor(cov, m.dtype, "the covariance")
        n = m.shape[0]
        self._init(m.new_zeros(n, 0), m, q, Unit, _as_space(n if space is None else space),
                   validate)
        if factor is not None:
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
        return self.offset

    def __repr__(self) -> str:
        return f"Gaussian(on {self.cod})"

    def marginal(self, *keys: FactorKey) -> Gaussian:  # type: ignore[override]
        """The marginal on the given factors (by name or index), in that order."""
        return super().marginal(*keys)  # type: ignore[return-value]

    def sample(self, sample_shape: tuple[int, ...] | int = (),  # type: ignore[override]
               seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws mean + L z with z standard normal, shape sample_shape + (n,)."""
        sample_shape = _sample_shape(sample_shape)
        generator = rng(seed, generator)
        lf = self.factor
        z = torch.randn(*sample_shape, lf.shape[1], dtype=self.dtype, generator=generator)
        return self.mean + z @ lf.T

    def log_prob(self, value: Tensorish) -> torch.Tensor:  # type: ignore[override]
        """log density at `value` (batched over leading dims).

        For singular cov this is the density on the support mean + range(cov) with respect to
        Lebesgue measure there (pseudo-determinant); off the support it is -inf.
        """
        y = _tensor(value, self.dtype, "the value")
        if y.shape[-1:] != (self.cod.dim,):
            raise SpaceMismatchError("value for log_prob", (self.cod.dim,), tuple(y.shape))
        chol = self._pd_factor()
        if chol is not None:
            z = torch.linalg.solve_triangular(chol, (y - self.mean)[..., None], upper=False)
            return -0.5 * ((z[..., 0] ** 2).sum(-1) + self.cod.dim * math.log(2 * math.pi)) \
                - chol.diagonal().log().sum()
        w, v = torch.linalg.eigh(self.cov)
        keep = ~_zero_variance(w)
        d = y - self.mean
        coef = d @ v[:, keep]
        wk = w[keep]
        out = -0.5 * ((coef**2 / wk).sum(-1) + wk.log().sum() + len(wk) * math.log(2 * math.pi))
        scale = float(self.mean.abs().max()) + float(y.abs().max()) if y.numel() else 0.0
        comp, allowed = _off_range(w, v, d, scale)
        return torch.where((comp > allowed).any(-1), torch.full_like(out, -math.inf), out)

    def to_pyro(self) -> Any:
        """The state as a `pyro.distributions.MultivariateNormal` (needs a full-rank cov)."""
        import pyro.distributions as pdist

        if self._pd_factor() is None:
            raise ValidationError("a MultivariateNormal needs a positive-definite covariance; "
                                  "this Gaussian is singular")
        return pdist.MultivariateNormal(self.mean, scale_tril=self.factor)

    @classmethod
    def from_pyro(cls, d: torch.distributions.Distribution,
                  space: Space | None = None) -> Gaussian:
        """A state from an unbatched torch/Pyro Normal (one coordinate per entry) or
        MultivariateNormal."""
        base = d.base_dist if isinstance(d, torch.distributions.Independent) else d
        if isinstance(base, torch.distributions.MultivariateNormal) and not base.batch_shape:
            return cls(base.loc, base.covariance_matrix, space)
        if isinstance(base, torch.distributions.Normal):
            loc = base.loc.reshape(-1)
            return cls(loc, torch.diag(base.scale.expand(base.loc.shape).reshape(-1) ** 2), space)
        raise TypeError(f"cannot convert {type(d).__name__} to a Gaussian; supported: Normal, "
                        "unbatched MultivariateNormal")

    def prob_below(self, weights: Tensorish, threshold: float) -> torch.Tensor:
        """P(weights . x <= threshold) = Phi((threshold - w.mean) / sqrt(w cov w)).

        When w.x is deterministic (its variance is at rounding level of the prior's scale) this
        is 1 if w.mean <= threshold up to rounding, else 0.
        """
        w = _tensor(weights, self.dtype, "the weights").reshape(-1)
        if w.shape[0] != self.cod.dim:
            raise SpaceMismatchError("weights of prob_below", (self.cod.dim,), tuple(w.shape))
        t = _tensor(threshold, self.dtype, "the threshold")
        if t.numel() != 1:
            raise ValidationError(f"the threshold must be one number, got shape {tuple(t.shape)}")
        mu, var = w @ self.mean, w @ self.cov @ w
        gap = t.reshape(()) - mu
        ref = self.cov if self._base is None else self._base
        var_tol = _tol(self.dtype, float((w**2).sum() * ref.diagonal().abs().max()))
        if float(var) <= var_tol:
            slack = _Z * math.sqrt(max(float(var), 0.0)) + _tol(self.dtype, float(mu.abs()))
            return (gap >= -slack).to(self.dtype)
        return torch.special.ndtr(gap / var.sqrt())

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
                v = _tensor(val, self.dtype, f"the value of factor {key!r}").reshape(-1)
                if v.shape[0] != len(idx):
                    raise ValidationError(f"factor {key!r} has dimension {len(idx)}, "
                                          f"got a value of size {v.shape[0]}")
                rows += idx
                vals.append(v)
                names.append(f"{key} == {v.tolist() if v.numel() <= 4 else '<value>'}")
            eq = LinearEquation.observe(rows, torch.cat(vals), self.cod.dim, " and ".join(names))
        elif isinstance(event, tuple) and len(event) == 2:
            eq = LinearEquation(*event, dtype=self.dtype)
        else:
            raise TypeError(f"cannot condition a Gaussian on {event!r}: give a LinearEquation, "
                            "an (A, b) pair or a {factor: value} mapping")
        if eq.matrix.shape[1] != self.cod.dim:
            raise SpaceMismatchError(f"equation {eq.name}", self.cod.dim, eq.matrix.shape[1])
        return eq

    def condition_linear(self, matrix: Tensorish | LinearEquation, rhs: Tensorish | None = None,
                         name: str | None = None, tol: float | None = None) -> Gaussian:
        """Condition exactly on matrix @ x == rhs (probability-zero events included).

        S = A cov A', c = rhs - A mean; posterior N(mean + cov A' S^+ c, cov - cov A' S^+ A cov).
        Raises `ConditioningError` naming the equation when c is not in range(S); `tol` overrides
        the residual tolerance described in the module docstring.
        """
        return self.condition_evidence(matrix, rhs, name, tol)[0]

    def condition_evidence(self, matrix: Tensorish | LinearEquation, rhs: Tensorish | None = None,
                           name: str | None = None,
                           tol: float | None = None) -> tuple[Gaussian, float, int]:
        """`condition_linear` plus the evidence: (posterior, log density, deficit).

        The log density is that of A x at rhs, with respect to Lebesgue measure on range(S) (the
        full R^r when S has full rank); `deficit` = r - rank(S) counts the equations that held
        with probability one. Hybrid programs weigh their branches by these two numbers.
        """
        eq = matrix if isinstance(matrix, LinearEquation) else \
            LinearEquation(matrix, rhs, name=name, dtype=self.dtype)
        a, b = eq.matrix, eq.rhs.to(self.dtype)
        if a.shape[1] != self.cod.dim:
            raise SpaceMismatchError(f"equation {eq.name}", self.cod.dim, a.shape[1])
        r = a.shape[0]
        if eq.index is not None:
            am = self.mean[eq.index]
            ca = self.cov[:, eq.index]                        # (n, r)
            s = ca[eq.index]
        else:
            a = a.to(self.dtype)
            am = a @ self.mean
            ca = self.cov @ a.T
            s = a @ ca
        c = b - am
        s = (s + s.T) / 2
        chol, info = torch.linalg.cholesky_ex(s)
        floor = _tol(self.dtype, float(s.diagonal().abs().max())) if r else 0.0
        if int(info) == 0 and bool((chol.diagonal() ** 2 > floor).all()):
            g = torch.linalg.solve_triangular(chol, ca.T, upper=False).T        # (n, r)
            w = torch.linalg.solve_triangular(chol, c[:, None], upper=False)[:, 0]
            logdet, rank = 2 * float(chol.diagonal().log().sum()), r
        else:
            lam, u = torch.linalg.eigh(s)
            keep = ~_zero_variance(lam)
            uk = u[:, keep]
            comp, allowed = _off_range(lam, u, c, float(b.abs().max() + am.abs().max()))
            if tol is not None:
                allowed = torch.full_like(allowed, tol)
            if bool((comp > allowed).any()):
                i = int((comp - allowed).argmax())
                raise ConditioningError(eq.name, f"the condition is inconsistent (residual "
                                        f"{float(comp[i]):.3g} along a direction of zero "
                                        f"variance exceeds the tolerance {float(allowed[i]):.3g})")
            isq = lam[keep].rsqrt()
            g = (ca @ uk) * isq
            w = (uk.T @ c) * isq
            logdet, rank = float(lam[keep].log().sum()), int(keep.sum())
        mean = self.mean + g @ w
        # the posterior lives on {A x = b}: project the mean onto it (least-norm shift), which
        # removes the rounding left in directions of tiny or (numerically) zero variance
        if eq.index is not None:
            mean[eq.index] = b
        elif rank < r:
            fix = b - a @ mean
            mean = mean + torch.linalg.lstsq(a, fix[:, None], driver="gelsd").solution[:, 0]
        logp = -0.5 * (float(w @ w) + logdet + rank * math.log(2 * math.pi))
        post = Gaussian._make(self.matrix, mean, None, Unit, self.cod, base=self.cov, down=g)
        return post, logp, r - rank  # type: ignore[return-value]

    def _disintegrate(self, along: Any) -> Disintegration:
        """joint on X @ Y -> (marginal on X, kernel x -> N(my + Syx Sxx^+ (x - mx), Schur)).

        `null` holds columns spanning the directions where the marginal has zero variance; the
        kernel there is fixed by the pseudo-inverse (any choice agrees almost everywhere).
        """
        xs, ys = self.cod.split(along)
        ix, iy = _coords(self.cod, xs), _coords(self.cod, ys)
        cov, m = self.cov, self.mean
        sxx, sxy, syy = cov[ix][:, ix], cov[ix][:, iy], cov[iy][:, iy]
        lam, u = torch.linalg.eigh(sxx)
        keep = ~_zero_variance(lam)
        uk = u[:, keep]
        gain = (sxy.T @ uk) / lam[keep] @ uk.T                 # Syx Sxx^+
        q = syy - gain @ sxy
        xspace, yspace = self.cod.select(xs), self.cod.select(ys)
        marginal = Gaussian._make(self.matrix.new_zeros(len(ix), 0), m[ix], sxx, Unit, xspace)
        kernel = LinearGaussian._make(gain, m[iy] - gain @ m[ix], (q + q.T) / 2, xspace, yspace)
        return Disintegration(marginal, kernel, u[:, ~keep])

    def _update(self, evidence: Any) -> Gaussian:
        """Pearl update with a Gaussian likelihood: evidence = (kernel c, observation y).

        The posterior is the joint <id, c> of this state conditioned exactly on its second
        factor == y (the Bayesian inverse of c evaluated at y), marginalised to this space; an
        observation off the support of this state >> c raises `ConditioningError`.
        """
        if not (isinstance(evidence, tuple) and len(evidence) == 2
                and isinstance(evidence[0], LinearGaussian)):
            raise TypeError("a Gaussian update takes (kernel, observation); for equations use "
                            "condprob.condition")
        kernel, y = evidence
        check_composable(self, kernel)
        yv = _tensor(y, self.dtype, "the observation").reshape(-1)
        n, m = self.cod.dim, kernel.cod.dim
        if yv.shape[0] != m:
            raise SpaceMismatchError("observation of a Pearl update", kernel.cod, tuple(yv.shape))
        joint = self.then(copy(self.cod, self.dtype)).then(
            identity(self.cod, self.dtype).tensor(kernel))
        shown = yv.tolist() if m <= 4 else "<value>"
        post = joint.condition_linear(LinearEquation.observe(
            range(n, n + m), yv, n + m, name=f"the observation y == {shown}"))
        return post.then(_deterministic(torch.eye(n + m, dtype=self.dtype)[:n], joint.cod,
                                        self.cod))  # type: ignore[return-value]


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
