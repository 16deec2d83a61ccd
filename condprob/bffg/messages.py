"""Backward messages (h-transforms) of BFFG and the rules that combine them.

A message h is a nonnegative function on a node's space: the likelihood of everything observed below
the node given its value. Three kinds:

- `FiniteMessage`: a core `Predicate` p with a log scale s, h(x) = exp(s) p(x).
- `GaussianMessage`: the canonical form h(x) = exp(c - x'Hx/2 + F'x), c the log mass; H may be
  singular (a partial observation) or zero (no information).
- `PointMessage`: an exactly observed Euclidean value v with log mass c, h = exp(c) delta_v.

Fusion multiplies messages (`&`); the pullbacks through kernels live in `condprob.bffg.rules`.
"""

from __future__ import annotations

import math

import torch

from condprob import backend as B
from condprob.errors import SpaceMismatchError, ValidationError
from condprob.finite import Predicate, State
from condprob.spaces import Euclidean, Space

LOG_2PI = math.log(2 * math.pi)


def _tensor(x: object, name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float64)
    if shape is not None and tuple(t.shape) != shape:
        raise ValidationError(f"{name} has shape {tuple(t.shape)}; expected {shape}")
    if not torch.isfinite(t).all():
        raise ValidationError(f"{name} has a non-finite entry")
    return t


def psd_cholesky(m: torch.Tensor, name: str) -> torch.Tensor:
    """Cholesky factor of a positive definite matrix; ValidationError naming `m` otherwise."""
    chol, info = torch.linalg.cholesky_ex(m)
    if bool((info != 0).any()):
        raise ValidationError(f"{name} must be symmetric positive definite")
    return chol


def psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    """A square root S with S S' = m of a (possibly singular) positive semidefinite matrix."""
    vals, vecs = torch.linalg.eigh((m + m.transpose(-1, -2)) / 2)
    return vecs * vals.clamp(min=0).sqrt()[..., None, :]


class FiniteMessage:
    """h(x) = exp(log_scale) * predicate(x) on a finite space (exact values in the exact backend).

    In the float backend the predicate is kept with maximum 1 and the log of the dropped factor is
    accumulated in `log_scale`; in the exact backend values stay exact and `log_scale` is 0.
    """

    def __init__(self, predicate: Predicate, log_scale: float = 0.0):
        self.predicate = predicate
        self.log_scale = float(log_scale)

    @property
    def space(self) -> Space:
        return self.predicate.space

    @property
    def exact(self) -> bool:
        return B.is_exact(self.predicate.values)

    @classmethod
    def likelihood(cls, values: object, space: Space, name: str = "likelihood") -> FiniteMessage:
        """A leaf message from a likelihood vector l(x) (nonnegative; exact or float)."""
        return cls(Predicate(values, space, name=name))._normalised()

    @classmethod
    def observe(cls, label: object, space: Space, exact: bool = False) -> FiniteMessage:
        """The exact observation x = label (an indicator)."""
        return cls(Predicate.event([label], space, exact=exact))

    @classmethod
    def uninformative(cls, space: Space, exact: bool = False) -> FiniteMessage:
        """h = 1: nothing observed below."""
        return cls(Predicate.truth(space, exact=exact))

    def _normalised(self) -> FiniteMessage:
        v = self.predicate.values
        if B.is_exact(v):
            return self
        top = v.max()
        if top <= 0 or not torch.isfinite(top):
            return self
        p = Predicate(v / top, self.space, name=self.predicate.name, validate=False)
        return FiniteMessage(p, self.log_scale + math.log(top.item()))

    def __and__(self, other: FiniteMessage) -> FiniteMessage:
        """Fusion: the pointwise product of two messages on the same space."""
        if not isinstance(other, FiniteMessage):
            raise TypeError(f"cannot fuse a finite message with {type(other).__name__}")
        return FiniteMessage(self.predicate & other.predicate,
                             self.log_scale + other.log_scale)._normalised()

    def values(self) -> torch.Tensor:
        """h(x) for every x, as float64."""
        return B.to_float(self.predicate.values) * math.exp(self.log_scale)

    def log_h(self, index: torch.Tensor) -> torch.Tensor:
        """log h at outcome indices (-inf where h is zero)."""
        return torch.log(B.to_float(self.predicate.values)[index]) + self.log_scale

    def evidence(self, prior: State) -> object:
        """sum_x prior(x) h(x): exact in the exact backend (then log_scale is 0)."""
        v = prior.validity(self.predicate)
        return v * math.exp(self.log_scale) if isinstance(v, torch.Tensor) else v

    def log_evidence(self, prior: State) -> torch.Tensor:
        """log sum_x prior(x) h(x), -inf when the observations are impossible under the prior."""
        v = prior.validity(self.predicate)
        v = v if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=torch.float64)
        return torch.log(v) + self.log_scale


class GaussianMessage:
    """h(x) = exp(c - x'Hx/2 + F'x) on R^d: c the log mass, F (d,), H (d, d) symmetric PSD."""

    def __init__(self, c: object, F: object, H: object, validate: bool = True):
        if not validate:
            self.c, self.F, self.H = c, F, H
            self.space = Euclidean(self.F.shape[0])
            return
        self.F = _tensor(F, "F")
        if self.F.ndim != 1:
            raise ValidationError(f"F must be a vector, got shape {tuple(self.F.shape)}")
        d = self.F.shape[0]
        self.H = _tensor(H, "H", (d, d))
        self.c = _tensor(c, "c", ())
        self.space = Euclidean(d)

    @property
    def dim(self) -> int:
        return self.F.shape[0]

    @classmethod
    def uninformative(cls, dim: int) -> GaussianMessage:
        """h = 1."""
        return cls(0.0, torch.zeros(dim, dtype=torch.float64),
                   torch.zeros(dim, dim, dtype=torch.float64))

    @classmethod
    def observation(cls, L: object, R: object, y: object) -> GaussianMessage:
        """Leaf message of y ~ N(L x, R): H = L'R^-1 L, F = L'R^-1 y, c = log N(y; 0, R)."""
        y = _tensor(y, "observation y")
        if y.ndim != 1:
            raise ValidationError(f"observation y must be a vector, got shape {tuple(y.shape)}")
        L = _tensor(L, "observation matrix L")
        if L.ndim != 2 or L.shape[0] != y.shape[0]:
            raise ValidationError(
                f"observation matrix L has shape {tuple(L.shape)}; expected ({y.shape[0]}, d)")
        R = _tensor(R, "observation covariance R", (y.shape[0], y.shape[0]))
        chol = psd_cholesky(R, "observation covariance R")
        Ri_L = torch.cholesky_solve(L, chol)
        Ri_y = torch.cholesky_solve(y[:, None], chol)[:, 0]
        logdet = 2 * torch.log(torch.diagonal(chol)).sum()
        c = -0.5 * y @ Ri_y - 0.5 * (y.shape[0] * LOG_2PI + logdet)
        return cls(c, L.T @ Ri_y, L.T @ Ri_L)

    @classmethod
    def from_covariance(cls, nu: object, P: object, log_scale: object = 0.0) -> GaussianMessage:
        """h(x) = exp(log_scale) N(x; nu, P), P positive definite."""
        nu = _tensor(nu, "nu")
        P = _tensor(P, "P", (nu.shape[0], nu.shape[0]))
        chol = psd_cholesky(P, "covariance P")
        H = torch.cholesky_inverse(chol)
        F = H @ nu
        logdet = 2 * torch.log(torch.diagonal(chol)).sum()
        c = _tensor(log_scale, "log_scale") - 0.5 * nu @ F - 0.5 * (nu.shape[0] * LOG_2PI + logdet)
        return cls(c, F, (H + H.T) / 2)

    def to_covariance(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(nu, P, log_scale) with h = exp(log_scale) N(x; nu, P); needs H positive definite."""
        chol = psd_cholesky(self.H, "H (a covariance form needs full information)")
        P = torch.cholesky_inverse(chol)
        nu = P @ self.F
        logdet_P = -2 * torch.log(torch.diagonal(chol)).sum()
        log_scale = self.c + 0.5 * nu @ self.F + 0.5 * (self.dim * LOG_2PI + logdet_P)
        return nu, (P + P.T) / 2, log_scale

    def _check(self, other: GaussianMessage) -> None:
        if not isinstance(other, GaussianMessage):
            raise TypeError(f"cannot fuse a Gaussian message with {type(other).__name__}")
        if other.dim != self.dim:
            raise SpaceMismatchError("fusing Gaussian messages", self.space, other.space)

    def __and__(self, other: GaussianMessage) -> GaussianMessage:
        """Fusion: h1 h2 has (c1 + c2, F1 + F2, H1 + H2)."""
        if isinstance(other, PointMessage):
            return other & self
        self._check(other)
        return GaussianMessage(self.c + other.c, self.F + other.F, self.H + other.H)

    def log_h(self, x: torch.Tensor) -> torch.Tensor:
        """log h(x) for x of shape (..., d)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        return self.c - 0.5 * ((x @ self.H) * x).sum(-1) + x @ self.F

    def allclose(self, other: GaussianMessage, atol: float = 1e-10) -> bool:
        """Equal (c, F, H) within atol."""
        return all(torch.allclose(a, b, atol=atol, rtol=0)
                   for a, b in ((self.c, other.c), (self.F, other.F), (self.H, other.H)))

    def __repr__(self) -> str:
        return f"GaussianMessage(dim={self.dim}, c={self.c.item():.6g})"


class PointMessage:
    """h = exp(c) delta_v: the node's value is observed exactly as v."""

    def __init__(self, value: object, c: object = 0.0):
        self.value = _tensor(value, "observed value")
        if self.value.ndim != 1:
            raise ValidationError(f"observed value must be a vector, got {tuple(self.value.shape)}")
        self.c = _tensor(c, "c", ())
        self.space = Euclidean(self.value.shape[0])

    @property
    def dim(self) -> int:
        return self.value.shape[0]

    def __and__(self, other: GaussianMessage | PointMessage) -> PointMessage:
        """delta_v times a message h is delta_v with mass h(v)."""
        if isinstance(other, PointMessage):
            if not torch.equal(other.value, self.value):
                raise ValidationError(
                    f"two exact observations of one node disagree: {self.value} and {other.value}")
            return PointMessage(self.value, self.c + other.c)
        if not isinstance(other, GaussianMessage):
            raise TypeError(f"cannot fuse a point message with {type(other).__name__}")
        if other.dim != self.dim:
            raise SpaceMismatchError("fusing messages", self.space, other.space)
        return PointMessage(self.value, self.c + other.log_h(self.value))

    def __repr__(self) -> str:
        return f"PointMessage({self.value.tolist()}, c={self.c.item():.6g})"
