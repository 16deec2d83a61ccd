"""Multivariate Hawkes processes with exponential and sum-of-exponential kernels.

Parametrisation (the one tick uses for `HawkesKernelExp(intensity, decay)`):

    lambda_k(t) = mu_k + sum_{t_i < t} phi_{k m_i}(t - t_i),
    phi_{kj}(t) = sum_r alpha_{kjr} beta_{kjr} exp(-beta_{kjr} t),

so alpha_{kjr} is the L1 norm of its component: the expected number of type-k children of a
type-j event, and the branching matrix is A = sum_r alpha_{..r}. Papers that write
phi(t) = a exp(-beta t) have a = alpha * beta: use `Hawkes.from_amplitudes` and `amplitudes`.
The state S_{kjr}(i) = e^{-beta (t_i - t_{i-1})} (S_{kjr}(i-1) + [m_{i-1} = j]) gives the exact
log-likelihood in O(N D R) (O(N D^2 R) when beta depends on the target mark k).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np
import torch
from torch import Tensor

from condprob.errors import ValidationError
from tpp.data import EventBatch
from tpp.kernel import NextEvent, mark_space
from tpp.process import PointProcess
from tpp.scan import linear_scan

__all__ = ["Hawkes"]

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)


class Hawkes(PointProcess):
    """Exponential (R = 1) or sum-of-exponential Hawkes process with D marks.

    Args:
        mu: (D,) baseline intensities, > 0.
        alpha: (D, D) or (D, D, R) branching ratios alpha[k, j, r] >= 0 (effect of j on k).
        beta: decays > 0: a number or (R,) shared by all pairs, (1, D, R) per source mark, or
            (D, D) / (D, D, R) per pair.
    """

    def __init__(self, mu: Tensor | float | list, alpha: Tensor | float | list,
                 beta: Tensor | float | list, validate: bool = True):
        mu = torch.as_tensor(mu, dtype=torch.float64)
        mu = mu.reshape(1) if mu.ndim == 0 else mu
        alpha = torch.as_tensor(alpha, dtype=torch.float64)
        beta = torch.as_tensor(beta, dtype=torch.float64)
        self._given = (tuple(alpha.shape), tuple(beta.shape))  # for `parameters`
        D = mu.shape[0]
        if mu.ndim != 1:
            raise ValidationError(f"mu must be a vector of D baselines, got shape {tuple(mu.shape)}")
        alpha = alpha.reshape(1, 1) if alpha.ndim == 0 else alpha
        alpha = alpha[..., None] if alpha.ndim == 2 else alpha
        if alpha.ndim != 3 or alpha.shape[:2] != (D, D):
            raise ValidationError(f"alpha must have shape ({D}, {D}) or ({D}, {D}, R), "
                                  f"got {tuple(alpha.shape)}")
        R = alpha.shape[2]
        # one decay for everything: the likelihood has a hand-written gradient (_ExpLogLik)
        self._scalar_beta = beta.reshape(()) if beta.numel() == 1 and R == 1 else None
        self.decays = "pair" if beta.ndim >= 2 and beta.shape[0] == D and D > 1 else "source"
        if beta.ndim <= 1 and beta.numel() in (1, R):  # shared by all pairs: no target axis
            beta = beta.reshape(1, 1, -1).expand(1, D, R)
            self.decays = "shared"
        elif beta.shape == (D, D):
            beta = beta[..., None].expand(D, D, R)
        elif beta.shape not in ((1, D, R), (D, D, R)):
            raise ValidationError(f"beta must be a number, ({R},), ({D}, {D}), (1, {D}, {R}) or "
                                  f"({D}, {D}, {R}), got {tuple(beta.shape)}")
        if validate:
            for name, x, positive in (("mu", mu, True), ("alpha", alpha, False),
                                      ("beta", beta, True)):
                if not torch.isfinite(x).all() or (x <= 0 if positive else x < 0).any():
                    raise ValidationError(f"{name} must be finite and {'> 0' if positive else '>= 0'}"
                                          f", got {x.detach().flatten().tolist()}")
        self.mu, self.alpha, self.beta = mu, alpha, beta
        self.num_marks = D
        self.decay_fixed = False  # set by `fit` when the decays were given, not estimated

    def _free_beta(self) -> Tensor:
        """The decays as free parameters: (R,) when shared, (D, D) when given per pair for all
        components, else the (1, D, R) or (D, D, R) tensor."""
        if self.decays == "shared":
            return self.beta[0, 0]
        if len(self._given[1]) == 2:
            return self.beta[..., 0]
        return self.beta

    def parameters(self) -> dict[str, Tensor]:
        """mu, alpha and beta in the shapes the constructor was given (alpha (D, D) stays
        (D, D), a scalar decay stays a scalar), so `Hawkes(**h.parameters())` rebuilds h."""
        alpha_shape, beta_shape = self._given
        return {"mu": self.mu, "alpha": self.alpha.reshape(alpha_shape),
                "beta": self._free_beta().reshape(beta_shape)}

    def __repr__(self) -> str:
        D, _, R = self.alpha.shape
        if D * D * R <= 16:
            body = ", ".join(f"{k}={torch.round(v.detach(), decimals=4).tolist()}"
                             for k, v in self.parameters().items())
        else:
            body = f"{D} marks, {R} component(s)"
        fixed = ", fixed" if self.decay_fixed else ""
        return (f"Hawkes({body}; {self.decays} decays{fixed}, spectral radius "
                f"{self.spectral_radius:.4g})")

    # Conversions ------------------------------------------------------------------------------
    @classmethod
    def from_amplitudes(cls, mu: Tensor | list, a: Tensor | list, beta: Tensor | float | list,
                        ) -> Hawkes:
        """From kernels written phi(t) = sum_r a_r exp(-beta_r t): alpha = a / beta."""
        a = torch.as_tensor(a, dtype=torch.float64)
        a = a[..., None] if a.ndim == 2 else a
        b = torch.as_tensor(beta, dtype=torch.float64)
        b = b[..., None] if b.ndim == 2 else b
        return cls(mu, a / b, b)

    @property
    def amplitudes(self) -> Tensor:
        """a = alpha * beta, the kernel written phi(t) = sum_r a_r exp(-beta_r t), shape (D, D, R)."""
        return self.alpha * self.beta

    @property
    def full_beta(self) -> Tensor:
        """Decays broadcast to (D, D, R)."""
        return self.beta.expand_as(self.alpha)

    def to_tick(self) -> dict[str, np.ndarray]:
        """Arguments of tick's SimuHawkesExpKernels(adjacency, decays, baseline) (R = 1 only)."""
        if self.alpha.shape[2] != 1:
            raise ValidationError("tick's exponential kernels have one component (R = 1)")
        return {"adjacency": self.alpha[..., 0].detach().numpy(),
                "decays": self.full_beta[..., 0].detach().numpy(),
                "baseline": self.mu.detach().numpy()}

    # Stability ---------------------------------------------------------------------------------
    @property
    def branching_matrix(self) -> Tensor:
        """A[k, j] = expected number of type-k children of one type-j event."""
        return self.alpha.sum(-1)

    @property
    def spectral_radius(self) -> float:
        """Largest absolute eigenvalue of the branching matrix."""
        return float(torch.linalg.eigvals(self.branching_matrix.detach()).abs().max())

    @property
    def is_stationary(self) -> bool:
        """A stationary version exists iff the spectral radius of A is < 1."""
        return self.spectral_radius < 1

    @property
    def stationary_rate(self) -> Tensor:
        """Mean intensities (I - A)^{-1} mu of the stationary process."""
        if not self.is_stationary:
            raise ValidationError(f"no stationary rate: spectral radius {self.spectral_radius:.4g}"
                                  " >= 1")
        eye = torch.eye(self.num_marks, dtype=torch.float64)
        return torch.linalg.solve(eye - self.branching_matrix, self.mu)

    def expected_count(self, T: float) -> Tensor:
        """E[N_k(T)], the expected number of type-k events on [0, T] from an empty history, (D,).

        With s = E[S] (the states' means) and m = mu + amp s the mean intensity, s' = -beta s + m
        (per source mark) and N' = m: a linear ODE solved exactly by one matrix exponential.
        """
        Kp, D, R = self.beta.shape
        P = Kp * D * R
        beta, amp = self.beta.detach().reshape(P), self.amplitudes.detach()
        # m = mu + A s with A[k, (k', j, r)] = amp[k, j, r] where k' is k (or the one shared row)
        A = torch.zeros(D, Kp, D, R, dtype=torch.float64)
        rows = torch.arange(D)
        A[rows, rows if Kp == D else 0] = amp
        A = A.reshape(D, P)
        src = torch.nn.functional.one_hot(torch.arange(D), D).to(torch.float64)  # state j <- m_j
        src = src[None, :, None, :].expand(Kp, D, R, D).reshape(P, D)
        G = torch.zeros(P + D + 1, P + D + 1, dtype=torch.float64)
        G[:P, :P] = -torch.diag(beta) + src @ A
        G[:P, -1] = src @ self.mu.detach()
        G[P:P + D, :P] = A
        G[P:P + D, -1] = self.mu.detach()
        return torch.linalg.matrix_exp(G * float(T))[P:P + D, -1]

    # Likelihood ----------------------------------------------------------------------------------
    def _states(self, batch: EventBatch) -> Tensor:
        """S[b, i, k', j, r] just before each event (k' is 1 when beta ignores the target)."""
        B, L = batch.times.shape
        Kp, D, R = self.beta.shape
        prev = torch.zeros(B, L, D, dtype=torch.float64)  # the previous event's mark, one-hot
        prev[:, 1:].scatter_(2, batch.marks[:, :-1, None],
                             batch.mask[:, :-1, None].to(torch.float64))
        # one exp per distinct decay: a shared decay's are the same for every source mark, and
        # one decay is one factor for every state
        beta = self.beta[:, :1] if self.decays == "shared" else self.beta
        a = torch.exp(-beta * batch.inter_times[:, :, None, None, None])
        P = Kp * D * R
        b = (a * prev[:, :, None, :, None]).reshape(B, L, P)
        one = a.shape[2:].numel() == 1
        a = a.reshape(B, L, 1) if one else a.expand(B, L, Kp, D, R).reshape(B, L, P)
        return linear_scan(a, b).view(B, L, Kp, D, R)

    def _intensity_from_state(self, S: Tensor) -> Tensor:
        """lambda_k from states S (..., k', j, r): mu_k + sum_{jr} alpha beta S."""
        amp = self.amplitudes
        if self.beta.shape[0] == 1:
            return self.mu + torch.einsum("...jr,kjr->...k", S.squeeze(-3), amp)
        return self.mu + torch.einsum("...kjr,kjr->...k", S, amp)

    def _tied_before(self, batch: EventBatch) -> Tensor | None:
        """C[b, i, j]: earlier-listed events l < i with t_l == t_i and mark j, (B, L, D); None
        without ties. The scan counts them, the intensity at t_i sums over t_l < t_i only."""
        times, mask = batch.times, batch.mask
        same = (times[:, 1:] == times[:, :-1]) & mask[:, 1:]
        if not bool(same.any()):
            return None
        onehot = torch.nn.functional.one_hot(batch.marks, self.num_marks).to(torch.float64)
        onehot = onehot * mask[..., None]
        before = onehot.cumsum(1) - onehot                               # events l < i
        idx = torch.arange(times.shape[1]).expand_as(times)
        first = torch.nn.functional.pad(~same, (1, 0), value=True)      # first of its tie group
        start = torch.where(first, idx, 0).cummax(1).values
        return before - before.gather(1, start[..., None].expand_as(before))

    def intensities_at_events(self, batch: EventBatch) -> Tensor:
        """lambda_k(t_i-) for every event i and mark k, shape (B, L, D): events listed earlier
        at the same time (ties) do not count, as the sum runs over t_l < t_i."""
        self.check_marks(batch)
        return self._intensity_from_state(self._strict_states(batch))

    def _strict_states(self, batch: EventBatch) -> Tensor:
        """The states S (B, L, k', j, r) of the intensity at each event: over t_l < t_i."""
        S = self._states(batch)
        tied = self._tied_before(batch)
        return S if tied is None else S - tied[:, :, None, :, None]

    def intensity(self, batch: EventBatch, t: Tensor) -> Tensor:
        """lambda_k(t) given each sequence's events before t, at sorted query times t (Q,):
        shape (B, Q, D)."""
        self.check_marks(batch)
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim != 1 or not bool(torch.isfinite(t).all()):
            raise ValidationError(f"query times t must be a vector of finite times, got shape "
                                  f"{tuple(t.shape)}" + ("" if t.ndim != 1 else " with NaN/inf"))
        B = len(batch)
        if batch.max_len == 0:
            return self.mu.expand(B, len(t), -1).clone()
        onehot = torch.nn.functional.one_hot(batch.marks, self.num_marks).to(torch.float64)
        after = self._states(batch) + onehot[:, :, None, :, None]       # just after each event
        idx = torch.searchsorted(batch.times.contiguous(), t.expand(B, -1).contiguous()) - 1
        idx = torch.minimum(idx, batch.lengths[:, None] - 1)            # ignore the padding
        gap = t - batch.times.gather(1, idx.clamp(min=0))
        S = after[torch.arange(B)[:, None], idx.clamp(min=0)] * (idx >= 0)[..., None, None, None]
        return self._intensity_from_state(S * torch.exp(-self.beta * gap[..., None, None, None]))

    def compensator(self, batch: EventBatch) -> Tensor:
        """int_0^T sum_k lambda_k(s) ds per sequence, in closed form."""
        if self.beta.shape[0] == 1:  # decays ignore the target: sum alpha over targets first
            alpha_src = self.alpha.sum(0)[batch.marks]                    # (B, L, r)
            beta_src = self.beta[0][batch.marks]
        else:
            alpha_src = self.alpha.permute(1, 0, 2)[batch.marks]          # (B, L, k, r)
            beta_src = self.beta.permute(1, 0, 2)[batch.marks]
        rest = (batch.T[:, None] - batch.times).view(*batch.times.shape,
                                                       *[1] * (alpha_src.ndim - 2))
        part = (alpha_src * -torch.expm1(-beta_src * rest)).flatten(2).sum(-1)
        return self.mu.sum() * batch.T + (part * batch.mask).sum(1)

    def log_likelihood(self, batch: EventBatch) -> Tensor:
        if self._scalar_beta is not None and _compiled_pass_ready():
            self.check_marks(batch)
            return _ExpLogLik.apply(self.mu, self.alpha[..., 0], self._scalar_beta, batch)
        lam = self.intensities_at_events(batch)
        log_lam = lam.gather(2, batch.marks[..., None])[..., 0].log()
        return (log_lam * batch.mask).sum(1) - self.compensator(batch)

    # Next event ------------------------------------------------------------------------------------
    def _state_after(self, history: EventBatch) -> Tensor:
        """State just after each history's last event, (B, k', j, r)."""
        self.check_marks(history)
        B = len(history)
        if history.max_len == 0:
            return torch.zeros(B, *self.beta.shape, dtype=torch.float64)
        S = self._states(history)
        idx = (history.lengths - 1).clamp(min=0)
        S_last = S[torch.arange(B), idx]
        onehot = torch.nn.functional.one_hot(history.marks[torch.arange(B), idx],
                                             self.num_marks).to(torch.float64)
        S_after = S_last + onehot[:, None, :, None]
        return S_after * (history.lengths > 0)[:, None, None, None]

    def _law_parts(self, S: Tensor):
        """Functions tau -> (lambda_k(tau) (..., B, D), Lambda(tau) (..., B)) after state S."""
        amp, beta = self.amplitudes, self.beta

        def lam(tau: Tensor) -> Tensor:
            return self._intensity_from_state(S * torch.exp(-beta * tau[..., None, None, None]))

        def Lam(tau: Tensor) -> Tensor:
            decayed = -torch.expm1(-beta * tau[..., None, None, None])
            # amp has a target axis k, so this sums over all targets also when S has none
            return self.mu.sum() * tau + (amp / beta * S * decayed).sum((-1, -2, -3))

        return lam, Lam

    def next_event(self, history: EventBatch) -> NextEvent:
        S = self._state_after(history)
        lam, Lam = self._law_parts(S)
        B = len(history)

        def log_prob(tau: Tensor, mark: Tensor) -> Tensor:
            return lam(tau).gather(-1, mark[..., None])[..., 0].log() - Lam(tau)

        def sample(n: int, gen: torch.Generator | None) -> tuple[Tensor, Tensor]:
            # Ogata thinning: the intensity decreases between events, so its value at the current
            # candidate bounds it until the next acceptance.
            tau = torch.zeros(n, B, dtype=torch.float64)
            mark = torch.zeros(n, B, dtype=torch.long)
            todo = torch.ones(n, B, dtype=torch.bool)
            while todo.any():
                bound = lam(tau).sum(-1)
                e = torch.empty_like(tau).exponential_(generator=gen)
                cand = tau + e / bound
                lk = lam(cand)
                u = torch.rand(tau.shape, dtype=torch.float64, generator=gen)
                acc = todo & (u * bound <= lk.sum(-1))
                k = torch.multinomial(lk.reshape(-1, self.num_marks), 1, generator=gen)
                mark = torch.where(acc, k.view(n, B), mark)
                tau = torch.where(todo, cand, tau)
                todo = todo & ~acc
            return tau, mark

        return NextEvent(mark_space(self.num_marks), B, log_prob, sample)

    def _after_previous(self, batch: EventBatch) -> Tensor:
        """State just after event i - 1 for every event i (zero before the first), (B, L, k', j, r)."""
        self.check_marks(batch)
        onehot = torch.nn.functional.one_hot(batch.marks, self.num_marks).to(torch.float64)
        after = self._states(batch) + onehot[:, :, None, :, None]
        return torch.nn.functional.pad(after[:, :-1], (0, 0, 0, 0, 0, 0, 1, 0))

    def interval_compensators(self, batch: EventBatch) -> Tensor:
        _, Lam = self._law_parts(self._after_previous(batch))
        return Lam(batch.inter_times) * batch.mask

    def log_likelihood_parts(self, batch: EventBatch) -> tuple[Tensor, Tensor]:
        lam = self.intensities_at_events(batch)
        log_p = (lam.gather(2, batch.marks[..., None])[..., 0] / lam.sum(-1)).log()
        mark = (log_p * batch.mask).sum(1)
        return self.log_likelihood(batch) - mark, mark

    def mark_given_time(self, batch: EventBatch) -> Tensor:
        return self.intensities_at_events(batch).argmax(-1) * batch.mask

    def predict(self, batch: EventBatch) -> tuple[Tensor, Tensor]:
        """For every event i: E[tau_i | history before i] and argmax_k P(m_i = k | history).

        Both integrals over tau (of the survival S(tau) and of lambda_k(tau) S(tau)) are computed
        by 64-point Gauss-Legendre quadrature after tau = -log(1 - u) / sum(mu), which maps
        [0, inf) to [0, 1) with a bounded integrand.
        """
        lam, Lam = self._law_parts(self._after_previous(batch))
        m = float(self.mu.sum())
        u = torch.as_tensor((_NODES + 1) / 2, dtype=torch.float64)
        w = torch.as_tensor(_WEIGHTS / 2, dtype=torch.float64)
        tau = -torch.log1p(-u) / m                                  # (Q,)
        grid = tau[:, None, None].expand(-1, *batch.times.shape)
        surv = torch.exp(-Lam(grid))                                # (Q, B, L)
        jac = 1 / (m * (1 - u))
        mean = torch.einsum("q,qbl->bl", w * jac, surv)
        probs = torch.einsum("q,qblk->blk", w * jac, lam(grid) * surv[..., None])
        return mean * batch.mask, probs.argmax(-1) * batch.mask

    # Simulation ------------------------------------------------------------------------------------
    def simulate(self, T: float, num_sequences: int = 1, seed: int | None = None,
                 method: str = "branching", max_events: int = 10_000_000) -> EventBatch:
        """Sequences on [0, T]: exact cluster (branching) simulation, or Ogata thinning."""
        if not (isinstance(T, int | float) and math.isfinite(T) and T > 0):
            raise ValidationError(f"T must be a finite positive number, got {T!r}")
        rng = np.random.default_rng(seed)
        sim = {"branching": self._simulate_branching, "thinning": self._simulate_thinning}
        if method not in sim:
            raise ValidationError(f"method must be 'branching' or 'thinning', got {method!r}")
        self._guard_size(float(T), max_events)
        seqs = [sim[method](float(T), rng, max_events) for _ in range(num_sequences)]
        return EventBatch.from_sequences([s[0] for s in seqs], [s[1] for s in seqs], float(T),
                                         self.num_marks)

    def _guard_size(self, T: float, max_events: int) -> None:
        """Refuse up front when a sequence is expected to exceed max_events (a supercritical
        process grows exponentially: thinning would run for minutes before hitting the cap)."""
        if self.is_stationary:
            expected = float(self.stationary_rate.sum()) * T  # bounds E[N(T)] from empty
            if expected <= max_events:
                return
        expected = float(self.expected_count(T).sum())
        if not expected <= max_events:
            raise ValidationError(
                f"a sequence on [0, {T:g}] is expected to hold {expected:.3g} events, more than "
                f"max_events={max_events} (spectral radius {self.spectral_radius:.3g}); shorten "
                "T or raise max_events")

    def _simulate_branching(self, T: float, rng: np.random.Generator,
                            max_events: int) -> tuple[np.ndarray, np.ndarray]:
        mu = self.mu.detach().numpy()
        alpha = self.alpha.detach().numpy()
        beta = self.full_beta.detach().numpy()
        D, _, R = alpha.shape
        counts = rng.poisson(mu * T)
        times = [rng.uniform(0, T, counts.sum())]
        marks = [np.repeat(np.arange(D), counts)]
        t, m, total = times[0], marks[0], counts.sum()
        while t.size:
            # children of every parent: Poisson(alpha[k, m, r]) per target k and component r
            kids = rng.poisson(alpha[:, m, :].transpose(1, 0, 2))        # (n, D, R)
            n_kids = kids.reshape(len(t), -1).sum(1)
            parent = np.repeat(np.arange(len(t)), n_kids)
            flat = np.repeat(np.tile(np.arange(D * R), len(t)), kids.reshape(-1))
            k, r = flat // R, flat % R
            delay = rng.exponential(1.0, parent.size) / beta[k, m[parent], r]
            ct = t[parent] + delay
            keep = ct <= T
            t, m = ct[keep], k[keep]
            total += t.size
            if total > max_events:
                raise ValidationError(f"simulation exceeded max_events={max_events} (spectral "
                                      f"radius {self.spectral_radius:.3g})")
            times.append(t)
            marks.append(m)
        t_all, m_all = np.concatenate(times), np.concatenate(marks)
        order = np.argsort(t_all, kind="stable")
        return t_all[order], m_all[order]

    def _simulate_thinning(self, T: float, rng: np.random.Generator,
                           max_events: int) -> tuple[np.ndarray, np.ndarray]:
        mu = self.mu.detach().numpy()
        amp = self.amplitudes.detach().numpy()
        beta = self.full_beta.detach().numpy()
        D = len(mu)
        S = np.zeros_like(amp)               # S[k, j, r], the full state
        t, times, marks = 0.0, [], []
        while True:
            bound = (mu + (amp * S).sum((1, 2))).sum()
            w = rng.exponential(1.0 / bound)
            if t + w > T:
                break
            t += w
            S *= np.exp(-beta * w)
            lam = mu + (amp * S).sum((1, 2))
            if rng.uniform() * bound <= lam.sum():
                k = rng.choice(D, p=lam / lam.sum())
                S[:, k, :] += 1.0
                times.append(t)
                marks.append(k)
                if len(times) > max_events:
                    raise ValidationError(f"simulation exceeded max_events={max_events}")
        return np.asarray(times), np.asarray(marks, dtype=np.int64)

    # Fitting ---------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, batch: EventBatch, num_marks: int | None = None, num_components: int = 1,
            decays: str = "shared", beta: Tensor | float | None = None,
            max_iter: int = 500, tol: float = 1e-10,
            reduce: Callable[[Tensor], Tensor] | None = None) -> Hawkes:
        """Maximum likelihood by L-BFGS on log-parameters (so mu, alpha, beta stay positive).

        `decays` is "shared" (one beta per component r), "source" (per source mark j and r) or
        "pair" (per (k, j, r)). With `beta` given the decays stay fixed and the problem is
        concave in (mu, alpha). `reduce` sums a tensor over the shards of the data (the
        log-likelihood, its gradient and the counts are sums over sequences); see
        `tpp.sharded.fit_hawkes`.
        """
        reduce = reduce or (lambda x: x)
        D = num_marks or batch.num_marks or 1
        shapes = {"shared": (num_components,), "source": (1, D, num_components),
                  "pair": (D, D, num_components)}
        if decays not in shapes:
            raise ValidationError(f"decays must be one of {sorted(shapes)}, got {decays!r}")
        if isinstance(num_components, bool) or not isinstance(num_components, int) or \
                num_components < 1:
            raise ValidationError(f"num_components must be a positive integer, got "
                                  f"{num_components!r}")
        n, total_T = reduce(torch.stack([batch.lengths.sum().double(), batch.T.sum()])).tolist()
        if n == 0:
            raise ValidationError("cannot fit a Hawkes process to sequences without events")
        rate = n / total_T / D
        b0 = torch.logspace(0, num_components - 1, num_components, dtype=torch.float64)
        params = [torch.full((D,), math.log(rate / 2), dtype=torch.float64),
                  torch.full((D, D, num_components), math.log(0.5 / (D * num_components)),
                             dtype=torch.float64)]
        if beta is None:
            params.append(b0.log().expand(shapes[decays]).clone())
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, tolerance_grad=tol,
                                tolerance_change=tol * 1e-2, history_size=20,
                                line_search_fn="strong_wolfe")

        def model() -> Hawkes:
            b = params[2].exp() if beta is None else torch.as_tensor(beta, dtype=torch.float64)
            return cls(params[0].exp(), params[1].exp(), b, validate=False)

        # with the decays fixed, the likelihood's decay-dependent sums are computed once
        sums = None if beta is None else _FixedDecaySums(cls(
            torch.ones(D, dtype=torch.float64), torch.ones(D, D, num_components,
                                                        dtype=torch.float64),
            torch.as_tensor(beta, dtype=torch.float64)), batch)

        def closure() -> Tensor:
            opt.zero_grad()
            if sums is None:
                loss = -model().log_likelihood(batch).sum() / n
            else:
                loss = -sums.log_likelihood(params[0].exp(), params[1].exp()) / n
            loss.backward()
            for p in params:
                p.grad = reduce(p.grad)
            return reduce(loss.detach())

        opt.step(closure)
        fitted = model()
        a, b = fitted.alpha.detach(), fitted.beta.detach() if beta is None else beta
        if beta is None and decays == "shared":
            b = params[2].detach().exp()
        if num_components == 1:  # the shapes a user writes: alpha (D, D), one decay a number
            a = a[..., 0]
            if beta is None:
                b = b.reshape(()) if decays == "shared" else b[..., 0] if decays == "pair" else b
        out = cls(fitted.mu.detach(), a, b)
        out.decay_fixed = beta is not None
        return out

    def standard_errors(self, batch: EventBatch) -> dict[str, Tensor]:
        """Asymptotic standard errors sqrt(diag(H^-1)) of the free parameters, H the observed
        Fisher information (Hessian of the negative log-likelihood) at these parameters.

        The free decays are those of `decays`: one per component when shared, else one per
        source or per pair. Errors come in the shapes of `parameters()` (those the constructor
        was given). With `decay_fixed` (a fit with `beta` given) the decays are not parameters:
        the result has no "beta" and H covers (mu, alpha) only.
        """
        parts = [self.mu, self.alpha] + ([] if self.decay_fixed else [self._free_beta()])
        shapes = [p.shape for p in parts]
        sizes = [int(np.prod(s)) for s in shapes]
        theta = torch.cat([p.flatten() for p in parts]).detach()

        def nll(th: Tensor) -> Tensor:
            mu, al, *be = (x.view(shape) for x, shape in zip(th.split(sizes), shapes, strict=True))
            h = Hawkes(mu, al, be[0] if be else self.beta, validate=False)
            h._scalar_beta = None  # the scan path is twice differentiable, the compiled one not
            return -h.log_likelihood(batch).sum()

        H = torch.autograd.functional.hessian(nll, theta)
        cov, info = torch.linalg.inv_ex(H)
        if int(info) != 0 or not bool(torch.isfinite(cov).all()):
            raise ValidationError("the observed information matrix is singular: the data do not "
                                  "identify every parameter (too few events of some mark?)")
        se = cov.diagonal().clamp(min=0).sqrt()
        given = self.parameters()
        return {n: x.view(given[n].shape)
                for n, x in zip(["mu", "alpha", "beta"], se.split(sizes), strict=False)}



# The argument types of `_exp_pass`: it is compiled for these only (on a second use, see
# `_compiled_pass_ready`; never at import).
_PASS_SIGNATURE = ("void(f8[:, ::1], f8[:, ::1], i8[:, ::1], i8[::1], f8[::1], f8[::1], "
                   "f8[:, ::1], f8, f8[::1], f8[:, ::1], f8[:, :, ::1], f8[::1], f8[:, ::1], "
                   "f8[:, :, ::1])")


@numba.njit(cache=True)
def _exp_pass(times, decay, marks, lengths, T, mu, alpha, beta,
              ll, g_mu, g_alpha, g_beta, work, states):  # pragma: no cover (compiled)
    """One pass over each sequence: log-likelihood and its gradient per sequence, for
    phi_kj(t) = alpha_kj beta e^{-beta t}, given decay[b, i] = e^{-beta (t_i - t_{i-1})} (the
    caller takes these exps vectorised), written into ll (B,), g_mu (B, D) and g_alpha
    (B, D, D) (both zero on entry) and g_beta (B,); work is (5, D) scratch. If `states` is
    (B, L, D) (not empty), S at every event is written into it.

    S_j = sum_{l: t_l < t_i, m_l = j} e^{-beta (t_i - t_l)} and W_j = sum (t_i - t_l) e^{...}
    give d lambda / d beta = sum_j alpha (S - beta W). One exp per event: the compensator's
    e^{-beta (T - t_i)} is taken only where it is not below half an ulp of 1 (beta (T - t_i) <
    40 > 56 log 2: beyond, expm1 returns -1 exactly), and the logs of the intensities are summed
    as the log of their product, rescaled before it leaves [1e-200, 1e200]."""
    B = times.shape[0]
    D = mu.shape[0]
    S, W, tied, tail, col = work[0], work[1], work[2], work[3], work[4]
    keep = states.shape[0] > 0
    mu_sum = 0.0
    for k in range(D):
        mu_sum += mu[k]
        c = 0.0
        for j in range(D):
            c += alpha[j, k]
        col[k] = c  # sum_k alpha_kj: the children of a type-j event
    for b in range(B):
        for j in range(D):
            S[j] = 0.0
            W[j] = 0.0
            tied[j] = 0.0
            tail[j] = 0.0
        n, Tb = lengths[b], T[b]
        log_sum, prod, gb, g_comp = 0.0, 1.0, 0.0, 0.0
        n_tied, prev_t = 0, 0.0
        for i in range(n):
            t, m = times[b, i], marks[b, i]
            dt = t - prev_t
            a = decay[b, i]
            aS, aW = 0.0, 0.0
            for j in range(D):
                s = S[j]
                w = a * (W[j] + dt * s)
                s = a * s
                W[j] = w
                S[j] = s
                aS += alpha[m, j] * s
                aW += alpha[m, j] * w
            lam = mu[m] + beta * aS
            if 1e-100 < lam < 1e100:
                prod *= lam
                if not 1e-200 < prod < 1e200:
                    log_sum += math.log(prod)
                    prod = 1.0
            else:
                log_sum += math.log(lam)
            inv = 1.0 / lam
            g_mu[b, m] += inv
            for j in range(D):
                g_alpha[b, m, j] += inv * S[j]
            if keep:
                for j in range(D):
                    states[b, i, j] = S[j]
            gb += inv * (aS - beta * aW)
            r = Tb - t
            if beta * r < 40.0:
                em1 = math.expm1(-beta * r)  # e^{-beta r} - 1, and e^{-beta r} from it
                tail[m] += em1  # d/d alpha_km of the compensator, the same for every k
                g_comp += col[m] * r * (em1 + 1.0)
            else:
                tail[m] -= 1.0
            if i + 1 < n and times[b, i + 1] == t:
                tied[m] += 1.0  # events at one time count from the next later time on
                n_tied += 1
            else:
                S[m] += 1.0
                if n_tied:
                    for j in range(D):
                        S[j] += tied[j]
                        tied[j] = 0.0
                    n_tied = 0
            prev_t = t
        comp = 0.0
        for j in range(D):
            comp += col[j] * tail[j]
        ll[b] = log_sum + math.log(prod) + comp - Tb * mu_sum
        g_beta[b] = gb - g_comp
        for k in range(D):
            g_mu[b, k] -= Tb
            for j in range(D):
                g_alpha[b, k, j] = beta * g_alpha[b, k, j] + tail[j]


def _run_pass(mu: Tensor, alpha: Tensor, beta: Tensor, batch: EventBatch,
              states: np.ndarray | None = None):
    """(ll (B,), g_mu (B, D), g_alpha (B, D, D), g_beta (B,)) by `_exp_pass`, and the states
    at the events into `states` (B, L, D) if given."""
    B, D = len(batch), mu.shape[0]
    ll, g_mu, g_alpha, g_beta = np.empty(B), np.zeros((B, D)), np.zeros((B, D, D)), np.empty(B)

    def array(x: Tensor, dtype: type) -> np.ndarray:
        return np.ascontiguousarray(x.detach().numpy(), dtype=dtype)

    times = array(batch.times, np.float64)
    decay = np.diff(times, axis=1, prepend=0.0)  # e^{-beta dt}, by numpy's vectorised exp
    np.exp(np.multiply(decay, -float(beta.detach()), out=decay), out=decay)
    _exp_pass(times, decay, array(batch.marks, np.int64),
              array(batch.lengths, np.int64), array(batch.T, np.float64),
              array(mu, np.float64), array(alpha, np.float64), float(beta.detach()),
              ll, g_mu, g_alpha, g_beta, np.empty((5, D)),
              np.empty((0, 0, 0)) if states is None else states)
    return ll, g_mu, g_alpha, g_beta


_SCAN_FIRST = [True]  # no compiled pass yet in this process: the next call takes the scan path


def _compiled_pass_ready() -> bool:
    """Whether to run `_exp_pass`: yes when it is compiled in this process, or in numba's on-disk
    cache for this source (numba's own index check: the source's content hash), loaded here
    (numba's first load in a process imports its implementation modules). Without either (a
    first use after installing), the first call in the process takes the scan path (the same
    likelihood and gradient by torch), so that a single use never waits for the compiler, and
    the second compiles the pass (once: it is cached) and runs it. Not in a background thread:
    compiling holds the GIL, which the scan path's many small torch calls would wait for, so
    both would crawl."""
    if _exp_pass.signatures:
        return True
    try:
        cached = bool(_exp_pass._cache._cache_file._load_index())
    except (AttributeError, OSError):  # another numba's cache layout: compile on the next use
        cached = False
    if not cached and _SCAN_FIRST[0]:
        _SCAN_FIRST[0] = False
        return False
    _compile_pass()
    return True


def _compile_pass() -> None:
    """Load `_exp_pass` from numba's cache, or compile (and cache) it, for the argument types
    `_run_pass` passes. Always by this signature: numba's cache files an explicit signature
    under another key than the types of a call's arguments, so a call would not find it."""
    _exp_pass.compile(_PASS_SIGNATURE)


class _FixedDecaySums:
    """The decay-dependent sums of a Hawkes log-likelihood, computed once for fixed decays (as
    tick's `fit` does), which leave it a function of (mu, alpha) by linear algebra: what
    `Hawkes.fit` with `beta` given evaluates at every step.

    With E[i, j, r] = beta S (the states at event i for its own mark's row),
    lambda_{m_i}(t_i) = mu_{m_i} + sum_{jr} alpha[m_i, j, r] E[i, j, r], and the compensator is
    T mu.sum() + sum_{kjr} alpha[k, j, r] C[k, j, r] with C[k, j, r] = sum_{i: m_i = j}
    (1 - e^{-beta_{kjr} (T - t_i)}). The events' rows of E are grouped by mark, so each mark's
    intensities are one matrix-vector product. The states come from the compiled pass when
    there is one decay (and it is compiled), else from the scan. Built from a model carrying
    the fixed decays (its mu and alpha are not used) and the batch; it holds no parameters, so
    nothing in it goes stale.
    """

    def __init__(self, model: Hawkes, batch: EventBatch):
        model.check_marks(batch)
        (B, L), (Kp, D, R) = batch.times.shape, model.beta.shape
        with torch.no_grad():
            if model._scalar_beta is not None and _compiled_pass_ready():
                S = np.empty((B, L, D))
                _run_pass(model.mu, model.alpha[..., 0], model._scalar_beta, batch, S)
                E = torch.from_numpy(S).mul_(model._scalar_beta).reshape(B * L, 1, D)
            else:
                E = (model._strict_states(batch) * model.beta).reshape(B * L, Kp, D * R)
            marks = batch.marks.reshape(-1).masked_fill(~batch.mask.reshape(-1), D)  # pads: D
            counts = torch.bincount(marks, minlength=D + 1).tolist()
            groups = torch.argsort(marks, stable=True).split(counts)[:D]  # events of mark k
            rest = (batch.T[:, None] - batch.times).reshape(-1)             # T - t_i
            self.counts, self.rows = counts[:D], []
            self.C = torch.empty(D, D, R, dtype=torch.float64)
            for k, idx in enumerate(groups):  # k: the target of lambda_k(t_i), the source of C
                self.rows.append(E[:, k if Kp == D else 0].index_select(0, idx))
                self.C[:, k] = -torch.expm1(-model.beta[:, k] * rest[idx, None, None]).sum(0)
            self.total_T = batch.T.sum()

    def log_likelihood(self, mu: Tensor, alpha: Tensor) -> Tensor:
        """The log-likelihood summed over the batch's sequences, differentiable in mu (D,) and
        alpha (D, D, R)."""
        D = mu.shape[0]
        log_lam = sum((torch.log(mu[k] + self.rows[k] @ alpha[k].reshape(-1)).sum()
                       for k in range(D) if self.counts[k]), mu.new_zeros(()))
        return log_lam - self.total_T * mu.sum() - (alpha * self.C).sum()


class _ExpLogLik(torch.autograd.Function):
    """Exponential Hawkes log-likelihood with one decay: compiled O(N D) pass, exact gradient."""

    @staticmethod
    def forward(ctx, mu: Tensor, alpha: Tensor, beta: Tensor,  # type: ignore[override]
                batch: EventBatch) -> Tensor:
        ll, g_mu, g_alpha, g_beta = _run_pass(mu, alpha, beta, batch)
        ctx.grads = (torch.from_numpy(g_mu), torch.from_numpy(g_alpha), torch.from_numpy(g_beta))
        return torch.from_numpy(ll)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        g_mu, g_alpha, g_beta = ctx.grads
        return g @ g_mu, torch.einsum("b,bkj->kj", g, g_alpha), g @ g_beta, None
