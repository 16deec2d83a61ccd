"""Nonlinear Gaussian kernels: x -> N(mean(x), cov(x)), a kernel kind for guided inference.

The backward filter cannot pull a quadratic message back exactly through a nonlinear mean, so it
uses a linear auxiliary kernel (given, or `linearise(x0)`: mean(x0) + J (x - x0), J the Jacobian
at x0); forward guiding then samples from the exact tilt of this kernel by the auxiliary message and
corrects with the weight (K h)(x) / (K~ h)(x).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyro.distributions as pdist
import torch

from condprob.bffg.messages import psd_cholesky, psd_sqrt
from condprob.errors import SpaceMismatchError, ValidationError
from condprob.gaussian import Gaussian, LinearGaussian
from condprob.protocol import Morphism, SampleShape, as_sample_shape, num_draws
from condprob.spaces import Euclidean, Space
from condprob.tolerance import tolerance

MeanFn = Callable[[torch.Tensor], torch.Tensor]
CovFn = Callable[[torch.Tensor], torch.Tensor]


def _batched(x: object, dim: int, what: str) -> tuple[torch.Tensor, bool]:
    t = torch.as_tensor(x, dtype=torch.float64)
    if t.shape[-1:] != (dim,):
        raise SpaceMismatchError(what, (dim,), tuple(t.shape))
    if not bool(torch.isfinite(t).all()):
        raise ValidationError(f"{what} has non-finite entries (NaN or inf)")
    return (t, False) if t.ndim > 1 else (t[None], True)


class NonlinearGaussian(Morphism):
    """The kernel x -> N(mean(x), cov(x)) from R^d to R^n.

    `mean` maps (batch, d) to (batch, n); `cov` is a fixed (n, n) positive semidefinite matrix or a
    function (batch, d) -> (batch, n, n).
    """

    def __init__(self, mean: MeanFn, cov: torch.Tensor | CovFn, dom: Space | int,
                 cod: Space | int):
        self.dom = dom if isinstance(dom, Space) else Euclidean(dom)
        self.cod = cod if isinstance(cod, Space) else Euclidean(cod)
        if not callable(mean):
            raise ValidationError("mean must be a function of x (batch, d) -> (batch, n)")
        self.mean_fn = mean
        if callable(cov):
            self.cov_fn: CovFn | None = cov
            self._cov = None
        else:
            q = torch.as_tensor(cov, dtype=torch.float64)
            n = self.cod.dim
            if q.shape != (n, n):
                raise ValidationError(f"covariance must have shape ({n}, {n}), got {tuple(q.shape)}")
            tol = tolerance(q.dtype, scale=float(q.abs().max()) if q.numel() else 0.0)
            if not bool(torch.isfinite(q).all()) or float((q - q.T).abs().max()) > tol or \
                    float(torch.linalg.eigvalsh(q).min()) < -tol:
                raise ValidationError("covariance must be finite and symmetric positive semidefinite "
                                      f" (tolerance {tol:.3g})")
            self.cov_fn, self._cov = None, q

    def __repr__(self) -> str:
        return f"NonlinearGaussian({self.dom} -> {self.cod})"

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.cod.dim,)

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """mean(x) for x of shape (batch, d), checked to be (batch, n)."""
        m = torch.as_tensor(self.mean_fn(x), dtype=torch.float64)
        if m.shape != (x.shape[0], self.cod.dim):
            raise ValidationError(f"mean function returned shape {tuple(m.shape)}; expected "
                                  f"({x.shape[0]}, {self.cod.dim})")
        if not bool(torch.isfinite(m).all()):
            raise ValidationError("mean function returned non-finite values (NaN or inf)")
        return m

    def cov(self, x: torch.Tensor) -> torch.Tensor:
        """cov(x): (n, n) when fixed, else (batch, n, n)."""
        if self._cov is not None:
            return self._cov
        q = torch.as_tensor(self.cov_fn(x), dtype=torch.float64)  # type: ignore[misc]
        n = self.cod.dim
        if q.shape != (x.shape[0], n, n):
            raise ValidationError(f"cov function returned shape {tuple(q.shape)}; expected "
                                  f"({x.shape[0]}, {n}, {n})")
        return q

    def at(self, x: object) -> Gaussian:
        """The state N(mean(x), cov(x)) at one point x."""
        xt, _ = _batched(x, self.dom.dim, "input point")
        cov = self.cov(xt[:1])
        return Gaussian(self.mean(xt[:1])[0], cov if cov.ndim == 2 else cov[0], self.cod)

    def __call__(self, x: object) -> pdist.MultivariateNormal:
        """N(mean(x), cov(x)) as a Pyro distribution: batch (B,) for x (B, d), () for one x (d,)
        (cov must be positive definite)."""
        xt, single = _batched(x, self.dom.dim, "input point")
        mean = self.mean(xt)
        chol = psd_cholesky(self.cov(xt), "covariance (for a Pyro law)")
        if single:
            mean, chol = mean[0], chol if chol.ndim == 2 else chol[0]
        return pdist.MultivariateNormal(mean, scale_tril=chol)

    def sample(self, x: object, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws from N(mean(x), cov(x)) for each row of x (B, d) (or for one x (d,)): shape
        sample_shape + (B, n) (or sample_shape + (n,))."""
        shape = as_sample_shape(sample_shape)
        xt, single = _batched(x, self.dom.dim, "input point")
        n = num_draws(shape)
        z = torch.randn(n, xt.shape[0], self.cod.dim, dtype=torch.float64, generator=generator)
        y = self.mean(xt) + (psd_sqrt(self.cov(xt)) @ z[..., None])[..., 0]
        return y.reshape(*shape, *(() if single else xt.shape[:1]), self.cod.dim)

    def log_prob(self, x: object, y: object) -> torch.Tensor:
        """log N(y; mean(x), cov(x)) for x (B, d) and y (..., B, n) (or one x (d,) and y (..., n))
        (cov must be positive definite)."""
        xt, single = _batched(x, self.dom.dim, "input point")
        yt = torch.as_tensor(y, dtype=torch.float64)
        if yt.shape[-1:] != (self.cod.dim,) or (not single and yt.shape[-2:-1] != xt.shape[:1]):
            raise SpaceMismatchError("value", (*(() if single else xt.shape[:1]), self.cod.dim),
                                     tuple(yt.shape))
        if not bool(torch.isfinite(yt).all()):
            raise ValidationError("value has non-finite entries (NaN or inf)")
        chol = psd_cholesky(self.cov(xt), "covariance (for a density)")
        diff = yt - self.mean(xt)
        chol = chol.expand(*diff.shape[:-1], self.cod.dim, self.cod.dim)
        z = torch.linalg.solve_triangular(chol, diff[..., None], upper=False)[..., 0]
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        out = -0.5 * ((z**2).sum(-1) + logdet + self.cod.dim * math.log(2 * math.pi))
        return out.reshape(yt.shape[:-1])

    def linearise(self, x0: object) -> LinearGaussian:
        """The auxiliary x -> N(mean(x0) + J (x - x0), cov(x0)), J the Jacobian of mean at x0."""
        xt, _ = _batched(x0, self.dom.dim, "linearisation point")
        x0v = xt[0]
        jac = torch.autograd.functional.jacobian(lambda v: self.mean(v[None])[0], x0v)
        cov = self.cov(xt[:1])
        cov = cov if cov.ndim == 2 else cov[0]
        m0 = self.mean(xt[:1])[0]
        return LinearGaussian(jac, m0 - jac @ x0v, (cov + cov.T) / 2, self.dom, self.cod)
