"""Pullback and guiding rules for the exact kernel kinds: finite and linear-Gaussian.

Finite kernel K (a core `Kernel`) and message h: (K h)(x) = sum_y K(x, y) h(y) (the core's predicate
pullback); guided kernel K^h(x, y) = K(x, y) h(y) / (K h)(x).

Linear-Gaussian kernel x -> N(A x + b, Q) and h = (c, F, H), written with M = (I + H Q)^-1 so that
singular H and singular Q need no inverse of either (^T: transpose; primes: the pulled message):
  H' = A^T M H A,  F' = A^T (M F - M H b),
  c' = c - log det(I + H Q)/2 + F^T Q M F/2 + (M F)^T b - b^T M H b/2.
Guided kernel: N(mu + Q M (F - H mu), Q M) with mu = A x + b (= (Q^-1 + H)^-1 (Q^-1 mu + F)).
"""

from __future__ import annotations

import torch

from condprob import backend as B
from condprob.bffg.messages import (
    LOG_2PI,
    FiniteMessage,
    GaussianMessage,
    PointMessage,
    psd_cholesky,
)
from condprob.finite import Kernel
from condprob.gaussian import LinearGaussian


def pullback_finite(kernel: Kernel, h: FiniteMessage) -> FiniteMessage:
    """(K h)(x) = sum_y K(x, y) h(y), renormalised with the scale carried in log_scale."""
    return FiniteMessage(kernel.pullback(h.predicate), h.log_scale)._normalised()


def guided_finite(kernel: Kernel, h: FiniteMessage) -> Kernel:
    """K^h(x, y) = K(x, y) h(y) / (K h)(x); rows with (K h)(x) = 0 keep K(x, .) (never reached)."""
    a, v = kernel._coerce_values(h.predicate.values)
    joint = a * v[..., None, :]
    kh = B.total(joint, -1)
    return Kernel._make(B.safe_divide(joint, kh[..., :, None], a), kernel.dom, kernel.cod)


def _tilt(h: GaussianMessage, Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """M = (I + H Q)^-1 and log det(I + H Q) (Q may carry batch dimensions)."""
    eye = torch.eye(h.dim, dtype=torch.float64)
    IHQ = eye + h.H @ Q
    return torch.linalg.inv(IHQ), torch.linalg.slogdet(IHQ).logabsdet


def log_integral(h: GaussianMessage, mean: torch.Tensor, Q: torch.Tensor,
                 tilt: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """log of the integral of N(y; mean, Q) h(y) dy, for mean (..., d) and Q (d, d) or (..., d, d).

    `tilt` passes (M, log det(I + H Q)) when the caller has them.
    """
    M, logdet = _tilt(h, Q) if tilt is None else tilt
    MF = (M @ h.F[:, None])[..., 0]
    MH = M @ h.H
    QMF = (Q @ MF[..., None])[..., 0]
    quad = ((mean[..., None, :] @ MH)[..., 0, :] * mean).sum(-1)
    return (h.c - 0.5 * logdet + 0.5 * (h.F * QMF).sum(-1) + (MF * mean).sum(-1) - 0.5 * quad)


def pullback_linear(h: GaussianMessage | PointMessage, A: torch.Tensor, b: torch.Tensor,
                    Q: torch.Tensor) -> GaussianMessage:
    """The message x -> integral of N(y; A x + b, Q) h(y) dy in canonical form.

    A, b, Q may carry leading batch dimensions (then so does the result). For a point message (y
    observed exactly as v) this is exp(c) N(v; A x + b, Q), which needs Q positive definite.
    """
    At = A.transpose(-1, -2)
    if isinstance(h, PointMessage):
        chol = psd_cholesky(Q, "kernel covariance Q (an exactly observed child needs a density)")
        r = h.value - b
        Qi_r = torch.cholesky_solve(r[..., None], chol)[..., 0]
        H = At @ torch.cholesky_solve(A, chol)
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        c = h.c - 0.5 * (r * Qi_r).sum(-1) - 0.5 * (h.dim * LOG_2PI + logdet)
        return GaussianMessage(c, (At @ Qi_r[..., None])[..., 0], (H + H.transpose(-1, -2)) / 2,
                               validate=False)
    tilt = _tilt(h, Q)
    M = tilt[0]
    MH = M @ h.H
    H = At @ MH @ A
    F = (At @ ((M @ h.F[:, None]) - MH @ b[..., None]))[..., 0]
    return GaussianMessage(log_integral(h, b, Q, tilt), F, (H + H.transpose(-1, -2)) / 2,
                           validate=False)


def guided_gaussian(h: GaussianMessage, mean: torch.Tensor,
                    Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of N(mean, Q) tilted by h: (mean + Q M (F - H mean), Q M)."""
    M, _ = _tilt(h, Q)
    QM = Q @ M
    shift = h.F - mean @ h.H.T
    mu = mean + (QM @ shift[..., None])[..., 0]
    return mu, (QM + QM.transpose(-1, -2)) / 2



def guided_linear(kernel: LinearGaussian, h: GaussianMessage) -> LinearGaussian:
    """The guided kernel x -> N(A°x + b°, Q M): A° = (I - Q M H) A, b° = (I - Q M H) b + Q M F."""
    M, _ = _tilt(h, kernel.cov)
    QM = kernel.cov @ M
    P = torch.eye(h.dim, dtype=torch.float64) - QM @ h.H
    return LinearGaussian(P @ kernel.matrix, P @ kernel.offset + QM @ h.F, (QM + QM.T) / 2,
                          kernel.dom, kernel.cod, validate=False)
