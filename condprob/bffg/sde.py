"""Diffusions dX = b(t, X) dt + sigma(t, X) dW as kernels, their linear auxiliaries, the backward
ODEs of BFFG and guided Euler-Maruyama with the Girsanov log-weight.

Backward filter of the linear auxiliary dX~ = (B X~ + beta) dt + sigma~ dW, a~ = sigma~ sigma~',
for h(t, x) = exp(c - x'Hx/2 + F'x), from the end time T down to the start:
  dH/dt = -B'H - HB + H a~ H,   dF/dt = -B'F + H a~ F + H beta,
  dc/dt = -beta'F - F'a~F/2 + tr(H a~)/2                              (information form);
  h = exp(c~) N(x; nu, P):  dnu/dt = B nu + beta,  dP/dt = B P + P B' - a~,  dc~/dt = tr B
                                                                       (covariance form);
and for constant coefficients the exact pullback through the transition over each grid step
(matrix exponentials, Van Loan), which is the closed form of both.

Guided process: dX° = [b + a r] dt + sigma dW with r = F - H x; the log-weight
log Psi = integral of (b - b~)'r - tr((a - a~)(H - r r'))/2 ds (left Riemann sum on the grid), and
p(observations | x0) = h~(0, x0) E°[Psi].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from pyro.distributions import constraints

from condprob.bffg.kernels import _batched
from condprob.bffg.messages import GaussianMessage, PointMessage
from condprob.bffg.rules import pullback_linear
from condprob.errors import ValidationError
from condprob.gaussian import LinearGaussian
from condprob.protocol import Law, Morphism, SampleShape, as_sample_shape, num_draws
from condprob.spaces import Euclidean

Coef = torch.Tensor | Callable[[float], torch.Tensor]
DriftFn = Callable[[float, torch.Tensor], torch.Tensor]
DiffusionFn = Callable[[float, torch.Tensor], torch.Tensor]


def _grid(grid: object) -> torch.Tensor:
    g = torch.as_tensor(grid, dtype=torch.float64)
    if g.ndim != 1 or g.shape[0] < 2:
        raise ValidationError(f"time grid must be a 1-d tensor of at least 2 times, got {g.shape}")
    if not bool((g[1:] > g[:-1]).all()):
        raise ValidationError("time grid must be strictly increasing")
    return g


def time_grid(t0: float, t1: float, steps: int) -> torch.Tensor:
    """steps + 1 equally spaced times from t0 to t1."""
    if steps < 1 or not t1 > t0:
        raise ValidationError(f"need t1 > t0 and steps >= 1, got ({t0}, {t1}, {steps})")
    return torch.linspace(t0, t1, steps + 1, dtype=torch.float64)


class SDEKernel(Morphism):
    """The transition x_{t0} -> x_{T} of dX = drift(t, X) dt + sigma(t, X) dW over a time grid.

    `drift(t, x)` maps (batch, d) to (batch, d); `diffusion` is a fixed (d, m) matrix or a function
    (t, x) -> (batch, d, m). Sampling is Euler-Maruyama on the grid. The transition density is
    intractable: `log_prob` raises TypeError; use guided proposals (`condprob.bffg`) instead.
    """

    def __init__(self, drift: DriftFn, diffusion: torch.Tensor | DiffusionFn, grid: object,
                 dim: int):
        self.dom = self.cod = Euclidean(dim)
        self.grid = _grid(grid)
        if not callable(drift):
            raise ValidationError("drift must be a function (t, x) -> (batch, d)")
        self.drift_fn = drift
        if callable(diffusion):
            self.diffusion_fn: DiffusionFn | None = diffusion
            self._sigma = None
            self.noise_dim = int(torch.as_tensor(diffusion(float(self.grid[0]),
                                 torch.zeros(1, dim, dtype=torch.float64))).shape[-1])
        else:
            s = torch.as_tensor(diffusion, dtype=torch.float64)
            if s.ndim != 2 or s.shape[0] != dim:
                raise ValidationError(f"diffusion must have shape ({dim}, m), got {tuple(s.shape)}")
            self.diffusion_fn, self._sigma, self.noise_dim = None, s, s.shape[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(R^{self.dom.dim}, t in [{self.t0:g}, {self.t1:g}])"

    @property
    def dim(self) -> int:
        return self.dom.dim

    @property
    def t0(self) -> float:
        return float(self.grid[0])

    @property
    def t1(self) -> float:
        return float(self.grid[-1])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def drift(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """b(t, x), (batch, d)."""
        return self.drift_fn(t, x)

    def sigma(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """sigma(t, x): (d, m) when fixed, else (batch, d, m)."""
        return self._sigma if self._sigma is not None else self.diffusion_fn(t, x)  # type: ignore

    def __call__(self, x0: object) -> Law:
        """The law of X_T from x0 (B, d) (or one x0 (d,)) as a Pyro distribution: it samples by
        Euler-Maruyama; its log_prob raises, the transition density being intractable."""
        _batched(x0, self.dim, "x0")
        x = torch.as_tensor(x0, dtype=torch.float64)
        return Law(self, x, tuple(x.shape[:-1]), (self.dim,), constraints.real_vector)

    def sample(self, x0: object, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
               path: bool = False) -> torch.Tensor:
        """Euler-Maruyama from x0 (B, d) (or one x0 (d,)): the end points, shape sample_shape +
        (B, d), or the whole paths, sample_shape + (B, N+1, d). `noise` (draws, N, m) gives the
        standard normal increments (draws = number of samples times B)."""
        shape = as_sample_shape(sample_shape)
        _batched(x0, self.dim, "x0")
        x = torch.as_tensor(x0, dtype=torch.float64)
        lead = tuple(x.shape[:-1])
        x = x.reshape(-1, self.dim).repeat(num_draws(shape), 1)
        n, steps = x.shape[0], self.grid.shape[0] - 1
        if noise is None:
            noise = torch.randn(n, steps, self.noise_dim, dtype=torch.float64, generator=generator)
        out = [x]
        for i in range(steps):
            t, dt = float(self.grid[i]), float(self.grid[i + 1] - self.grid[i])
            sig = self.sigma(t, x)
            dw = noise[:, i] * dt**0.5
            x = x + self.drift(t, x) * dt + (dw @ sig.T if sig.ndim == 2 else
                                             (sig @ dw[..., None])[..., 0])
            out.append(x)
        draws = torch.stack(out, 1) if path else x
        return draws.reshape(*shape, *lead, *draws.shape[1:])

    def log_prob(self, x0: object, y: object) -> torch.Tensor:
        raise TypeError("the transition density of a diffusion is intractable; use guided "
                        "proposals (condprob.bffg.forward_guide) for likelihoods")

    def linearise(self, t: float, x: object) -> LinearSDE:
        """The auxiliary with B = db/dx(t, x), beta = b(t, x) - B x and sigma~ = sigma(t, x)."""
        xv = torch.as_tensor(x, dtype=torch.float64).reshape(self.dim)
        jac = torch.autograd.functional.jacobian(lambda v: self.drift(t, v[None])[0], xv)
        sig = self.sigma(t, xv[None])
        sig = sig if sig.ndim == 2 else sig[0]
        return LinearSDE(jac, self.drift(t, xv[None])[0] - jac @ xv, sig, self.grid)

    def linearise_along(self, path: object) -> LinearSDE:
        """The auxiliary linearised along a path (N+1, d) on the grid, constant on each step:
        B_i = db/dx(t_i, x_i), beta_i = b(t_i, x_i) - B_i x_i, sigma_i = sigma(t_i, x_i); the last
        step uses the end point x_N, so that a~(T) = a(T, x_N) as exact end conditioning needs."""
        xs = torch.as_tensor(path, dtype=torch.float64)
        n = self.grid.shape[0] - 1
        if xs.shape != (n + 1, self.dim):
            raise ValidationError(f"path must have shape ({n + 1}, {self.dim}), got "
                                  f"{tuple(xs.shape)}")
        ts = self.grid.tolist()
        at = [(ts[i], xs[i]) for i in range(n - 1)] + [(ts[n], xs[n])]
        Bs, betas, sigs = [], [], []
        for t, x in at:
            jac = torch.autograd.functional.jacobian(lambda v, t=t: self.drift(t, v[None])[0], x)
            sig = self.sigma(t, x[None])
            Bs.append(jac)
            betas.append(self.drift(t, x[None])[0] - jac @ x)
            sigs.append(sig if sig.ndim == 2 else sig[0])
        return LinearSDE(torch.stack(Bs), torch.stack(betas), torch.stack(sigs), self.grid)


class LinearSDE(SDEKernel):
    """dX = (B X + beta) dt + sigma dW.

    B, beta, sigma are constant tensors ((d, d), (d,), (d, m)), functions of t, or stacks with one
    value per grid step ((N, d, d), (N, d), (N, d, m)), constant on each step [t_i, t_{i+1}).
    Constant and per-step coefficients have exact transitions (the closed-form backward filter).
    """

    def __init__(self, B: Coef, beta: Coef, sigma: Coef, grid: object):
        g = _grid(grid)
        self._coefs = (B, beta, sigma)
        fixed = None if any(callable(c) for c in self._coefs) else \
            tuple(torch.as_tensor(c, dtype=torch.float64) for c in self._coefs)
        self.piecewise = fixed is not None and fixed[0].ndim == 3
        self.constant = fixed is not None and not self.piecewise
        self._fixed = fixed
        Bt, bt, st = self.step_coefficients(0, g)
        d = Bt.shape[0]
        if Bt.shape != (d, d) or bt.shape != (d,) or st.ndim != 2 or st.shape[0] != d:
            raise ValidationError(f"B, beta, sigma must have shapes (d, d), (d,), (d, m); got "
                                  f"{tuple(Bt.shape)}, {tuple(bt.shape)}, {tuple(st.shape)}")
        if self.piecewise:
            n = g.shape[0] - 1
            want = ((n, d, d), (n, d), (n, d, st.shape[1]))
            got = tuple(tuple(c.shape) for c in fixed)  # type: ignore[union-attr]
            if got != want:
                raise ValidationError(f"per-step coefficients must have shapes {want}, got {got}")
        diffusion = st if self.constant else (
            lambda t, x: self.coefficients(t)[2].expand(x.shape[0], -1, -1))
        super().__init__(self._linear_drift, diffusion, g, d)

    def step_coefficients(self, i: int, grid: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, beta, sigma) on grid step i (for functions of t: their values at t_i)."""
        if self.constant:
            return self._fixed  # type: ignore[return-value]
        if self.piecewise:
            return tuple(c[i] for c in self._fixed)  # type: ignore[union-attr,return-value]
        return self.coefficients(float((self.grid if grid is None else grid)[i]))

    def coefficients(self, t: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B(t), beta(t), sigma(t)) as float64 tensors."""
        if self.constant:
            return self._fixed  # type: ignore[return-value]
        if self.piecewise:
            i = int(torch.searchsorted(self.grid, torch.tensor(t, dtype=torch.float64),
                                       right=True)) - 1
            return self.step_coefficients(min(max(i, 0), self.grid.shape[0] - 2))
        return tuple(torch.as_tensor(c(t) if callable(c) else c, dtype=torch.float64)
                     for c in self._coefs)  # type: ignore[return-value]

    def _linear_drift(self, t: float, x: torch.Tensor) -> torch.Tensor:
        B, beta, _ = self.coefficients(t)
        return x @ B.T + beta

    def transition(self, t0: float, t1: float) -> LinearGaussian:
        """The exact transition x_{t0} -> x_{t1} (constant coefficients): N(e^{B dt} x + m, Q)."""
        if not self.constant:
            raise ValidationError("exact transitions need constant coefficients")
        A, b, Q = self._transitions(torch.tensor([t1 - t0], dtype=torch.float64))
        return LinearGaussian(A[0], b[0], Q[0], self.dom, self.cod)

    def _transitions(self, dts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact transitions over steps of lengths dts (constant or per-step coefficients)."""
        B, beta, sig = self._fixed  # type: ignore[misc]
        n, d = dts.shape[0], self.dim
        B, beta = B.expand(n, d, d), beta.expand(n, d)
        a = sig @ sig.transpose(-1, -2)
        a = a.expand(n, d, d)
        aug = torch.zeros(n, d + 1, d + 1, dtype=torch.float64)
        aug[:, :d, :d], aug[:, :d, d] = B, beta
        e1 = torch.linalg.matrix_exp(aug * dts[:, None, None])
        vl = torch.zeros(n, 2 * d, 2 * d, dtype=torch.float64)
        vl[:, :d, :d], vl[:, :d, d:], vl[:, d:, d:] = -B, a, B.transpose(-1, -2)
        e2 = torch.linalg.matrix_exp(vl * dts[:, None, None])
        Q = e2[:, d:, d:].transpose(-1, -2) @ e2[:, :d, d:]
        return e1[:, :d, :d], e1[:, :d, d], (Q + Q.transpose(-1, -2)) / 2


@dataclass
class Guide:
    """The backward filter of an SDE edge on its grid: h(t_i, x) = exp(c_i - x'H_i x/2 + F_i'x).

    Entries 0..N-1 are used for guiding; `end` is the message at the last time (possibly a point).
    """

    grid: torch.Tensor
    H: torch.Tensor
    F: torch.Tensor
    c: torch.Tensor
    end: GaussianMessage | PointMessage

    def message(self, i: int = 0) -> GaussianMessage:
        """The canonical message at grid index i (i = 0: the start, passed to the parent)."""
        return GaussianMessage(self.c[i], self.F[i], self.H[i])


def _stack(msgs: list[GaussianMessage], grid: torch.Tensor,
           end: GaussianMessage | PointMessage) -> Guide:
    return Guide(grid, torch.stack([m.H for m in msgs]), torch.stack([m.F for m in msgs]),
                 torch.stack([m.c for m in msgs]), end)


def _rk4(f: Callable[[float, tuple], tuple], y: tuple, s0: float, s1: float, n: int) -> tuple:
    h = (s1 - s0) / n
    for k in range(n):
        s = s0 + k * h
        k1 = f(s, y)
        k2 = f(s + h / 2, tuple(u + h / 2 * v for u, v in zip(y, k1, strict=True)))
        k3 = f(s + h / 2, tuple(u + h / 2 * v for u, v in zip(y, k2, strict=True)))
        k4 = f(s + h, tuple(u + h * v for u, v in zip(y, k3, strict=True)))
        y = tuple(u + h / 6 * (p + 2 * q + 2 * r + w)
                  for u, p, q, r, w in zip(y, k1, k2, k3, k4, strict=True))
    return y


def _information_rhs(aux: LinearSDE, t: float, y: tuple) -> tuple:
    """Time derivatives of (H, F, c) at time t (forward time)."""
    H, F, _ = y
    B, beta, sig = aux.coefficients(t)
    a = sig @ sig.T
    Ha = H @ a
    return (-B.T @ H - H @ B + Ha @ H, -B.T @ F + Ha @ F + H @ beta,
            -beta @ F - 0.5 * F @ a @ F + 0.5 * torch.trace(Ha))


def _covariance_rhs(aux: LinearSDE, t: float, y: tuple) -> tuple:
    """Time derivatives of (nu, P, c~) at time t."""
    nu, P, _ = y
    B, beta, sig = aux.coefficients(t)
    return B @ nu + beta, B @ P + P @ B.T - sig @ sig.T, torch.trace(B)


def backward_ode(aux: LinearSDE, end: GaussianMessage | PointMessage, method: str = "auto",
                 substeps: int = 1) -> Guide:
    """Solve the backward filter of `aux` on its grid from the message `end` at its last time.

    method: "closed" (exact per-step transitions; constant coefficients), "information" (RK4 on
    (H, F, c); needs a canonical end message), "covariance" (RK4 on (nu, P, c~); needs a full-rank
    or point end message), or "auto" (closed when possible, else information, else covariance).
    `substeps` RK4 steps are taken per grid step.
    """
    if end.dim != aux.dim:
        raise ValidationError(f"message of dimension {end.dim} at the end of an SDE on R^{aux.dim}")
    if method == "auto":
        method = "closed" if aux.constant or aux.piecewise else (
            "information" if isinstance(end, GaussianMessage) else "covariance")
    g = aux.grid
    steps = g.shape[0] - 1
    if method == "closed":
        if not (aux.constant or aux.piecewise):
            raise ValidationError("the closed form needs constant or per-step coefficients")
        if aux.constant:      # every grid time at once: the transition from t_i to the end
            A, b, Q = aux._transitions(g[-1] - g[:-1])
            h = pullback_linear(end, A, b, Q)
            return Guide(g[:-1], h.H, h.F, h.c, end)
        A, b, Q = aux._transitions(g[1:] - g[:-1])
        msgs: list[GaussianMessage] = []
        h: GaussianMessage | PointMessage = end
        for i in reversed(range(steps)):
            h = pullback_linear(h, A[i], b[i], Q[i])
            msgs.append(h)
        return _stack(msgs[::-1], g[:-1], end)
    if method == "information":
        if not isinstance(end, GaussianMessage):
            raise ValidationError("the information form needs a Gaussian end message; an exact "
                                  "observation needs method='covariance' or 'closed'")
        y: tuple = (end.H, end.F, end.c)
        rhs = _information_rhs
    elif method == "covariance":
        y = (end.value, torch.zeros(aux.dim, aux.dim, dtype=torch.float64), end.c) \
            if isinstance(end, PointMessage) else end.to_covariance()
        rhs = _covariance_rhs
    else:
        raise ValidationError(f"unknown method {method!r}: closed, information or covariance")
    msgs = []
    for i in reversed(range(steps)):
        # integrate in reversed time s = -t so that the solver steps forward
        y = _rk4(lambda s, u: tuple(-v for v in rhs(aux, -s, u)), y, -float(g[i + 1]),
                 -float(g[i]), substeps)
        if method == "information":
            H = (y[0] + y[0].T) / 2
            msgs.append(GaussianMessage(y[2], y[1], H))
        else:
            msgs.append(GaussianMessage.from_covariance(y[0], (y[1] + y[1].T) / 2, y[2]))
    return _stack(msgs[::-1], g[:-1], end)


def guided_path(kernel: SDEKernel, aux: LinearSDE | None, guide: Guide, x0: torch.Tensor,
                noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided Euler-Maruyama from x0 (batch, d) with standard normal noise (batch, N, m).

    Returns the path (batch, N+1, d) and log Psi (batch,); log Psi is exactly 0 when `aux` is None
    (the kernel is its own auxiliary). An exactly observed end is set to its value.
    """
    x = x0
    n = x.shape[0]
    logpsi = torch.zeros(n, dtype=torch.float64)
    out = [x]
    grid = kernel.grid
    ts, dts = grid.tolist(), (grid[1:] - grid[:-1]).tolist()
    dw = noise * (grid[1:] - grid[:-1]).sqrt()[None, :, None]
    fixed = kernel._sigma
    if fixed is not None:       # r a = F a - x H a, and sigma dW for all steps at once
        a_fixed = fixed @ fixed.T
        Ha, Fa = guide.H @ a_fixed, guide.F @ a_fixed
        steps_all = dw @ fixed.T
    tabled = aux is not None and fixed is not None and (aux.constant or aux.piecewise)
    if tabled:                  # constant or per-step auxiliary: a - a~ and tr((a - a~) H) at once
        Bs, betas, sts = aux._fixed  # type: ignore[union-attr,misc]
        das = a_fixed - sts @ sts.transpose(-1, -2)
        trs = (das * guide.H).sum((-1, -2))
    for i, (t, dt) in enumerate(zip(ts[:-1], dts, strict=True)):
        b = kernel.drift(t, x)
        if fixed is not None:
            ar = Fa[i] - x @ Ha[i]
            step = steps_all[:, i]
        else:
            sig = kernel.sigma(t, x)
            a = sig @ sig.transpose(-1, -2)
            r = guide.F[i] - x @ guide.H[i]
            ar = (a @ r[..., None])[..., 0]
            step = (sig @ dw[:, i, :, None])[..., 0]
        if aux is not None:
            H = guide.H[i]
            r = guide.F[i] - x @ H
            if tabled:
                tr = trs[i]
                Bt, beta, da = (Bs[i], betas[i], das[i]) if aux.piecewise else (Bs, betas, das)
            else:
                Bt, beta, st = aux.step_coefficients(i)
                da = (a_fixed if fixed is not None else a) - st @ st.T
                tr = (da * H).sum((-1, -2))
            dar = r @ da if da.ndim == 2 else (da @ r[..., None])[..., 0]
            logpsi = logpsi + (((b - x @ Bt.T - beta + 0.5 * dar) * r).sum(-1) - 0.5 * tr) * dt
        x = x + (b + ar) * dt + step
        out.append(x)
    if isinstance(guide.end, PointMessage):
        out[-1] = guide.end.value.expand(n, -1)
    return torch.stack(out, 1), logpsi
