"""Point processes with closed-form likelihoods: Poisson, renewal and self-correcting processes,
and the ground-truth generators of Omi et al. (2019).

Each gives the exact log-likelihood sum_i log lambda*(t_i) - int_0^T lambda*(s) ds on [0, T].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution, Exponential, Gamma, LogNormal

from condprob.errors import ValidationError
from tpp.data import EventBatch
from tpp.kernel import NextEvent, mark_space
from tpp.process import PointProcess

__all__ = ["HomogeneousPoisson", "InhomogeneousPoisson", "Renewal", "SelfCorrecting",
           "omi_processes", "sinusoidal_rate"]


def _positive(name: str, x: Tensor) -> Tensor:
    if not torch.isfinite(x).all() or (x <= 0).any():
        raise ValidationError(f"{name} must be finite and > 0, got {x.flatten().tolist()}")
    return x


def _check_T(T: float) -> float:
    if not (isinstance(T, int | float) and math.isfinite(T) and T > 0):
        raise ValidationError(f"T must be a finite positive number, got {T!r}")
    return float(T)


def _unmarked_next(B: int, log_prob: Callable[[Tensor], Tensor],
                   sample: Callable[[int, torch.Generator | None], Tensor]) -> NextEvent:
    return NextEvent(mark_space(1), B, lambda tau, mark: log_prob(tau),
                     lambda n, g: (t := sample(n, g), torch.zeros_like(t, dtype=torch.long)))


class HomogeneousPoisson(PointProcess):
    """Marked homogeneous Poisson process: lambda_k(t) = rates[k]."""

    def __init__(self, rates: Tensor | float | list):
        rates = torch.as_tensor(rates, dtype=torch.float64)
        self.rates = _positive("rates", rates.reshape(-1))
        self.num_marks = self.rates.numel()

    def __repr__(self) -> str:
        rates = torch.round(self.rates, decimals=4).tolist() if self.num_marks <= 8 else \
            f"<{self.num_marks} marks, total {float(self.rates.sum()):.4g}>"
        return f"HomogeneousPoisson(rates={rates})"

    @classmethod
    def fit(cls, batch: EventBatch, num_marks: int | None = None) -> HomogeneousPoisson:
        """Closed-form MLE: rates[k] = (number of type-k events) / (total observed time)."""
        D = num_marks or batch.num_marks or 1
        counts = torch.bincount(batch.marks[batch.mask], minlength=D).double()
        if (counts == 0).any():
            raise ValidationError(f"no events of mark(s) {(counts == 0).nonzero().flatten().tolist()}"
                                  ": the MLE rate is 0, not a valid Poisson rate")
        return cls(counts / batch.T.sum())

    def log_likelihood(self, batch: EventBatch) -> Tensor:
        self.check_marks(batch)
        log_lam = self.rates.log()[batch.marks] * batch.mask
        return log_lam.sum(1) - self.rates.sum() * batch.T

    def interval_compensators(self, batch: EventBatch) -> Tensor:
        return self.rates.sum() * batch.inter_times

    def log_likelihood_parts(self, batch: EventBatch) -> tuple[Tensor, Tensor]:
        mark = ((self.rates / self.rates.sum()).log()[batch.marks] * batch.mask).sum(1)
        return self.log_likelihood(batch) - mark, mark

    def next_event(self, history: EventBatch) -> NextEvent:
        self.check_marks(history)
        total, B = self.rates.sum(), len(history)

        def log_prob(tau: Tensor, mark: Tensor) -> Tensor:
            return self.rates.log()[mark] - total * tau

        def sample(n: int, g: torch.Generator | None) -> tuple[Tensor, Tensor]:
            tau = torch.empty(n, B, dtype=torch.float64).exponential_(generator=g) / total
            mark = torch.multinomial(self.rates, n * B, replacement=True, generator=g)
            return tau, mark.view(n, B)

        return NextEvent(mark_space(self.num_marks), B, log_prob, sample)

    def simulate(self, T: float, num_sequences: int = 1, seed: int | None = None) -> EventBatch:
        """Poisson counts per mark, placed uniformly on [0, T]."""
        T = _check_T(T)
        rng = np.random.default_rng(seed)
        times, marks = [], []
        for _ in range(num_sequences):
            counts = rng.poisson(self.rates.numpy() * T)
            t = rng.uniform(0, T, counts.sum())
            m = np.repeat(np.arange(self.num_marks), counts)
            order = np.argsort(t)
            times.append(t[order])
            marks.append(m[order])
        return EventBatch.from_sequences(times, marks, T, self.num_marks)


class InhomogeneousPoisson(PointProcess):
    """Unmarked Poisson process with intensity lambda(t) and compensator Lambda(t) = int_0^t lambda.

    `bound` must dominate lambda on the simulated window (used by thinning).
    """

    def __init__(self, intensity: Callable[[Tensor], Tensor],
                 compensator: Callable[[Tensor], Tensor], bound: float):
        self.intensity, self.compensator = intensity, compensator
        self.bound = float(_positive("bound", torch.tensor(float(bound), dtype=torch.float64)))
        self.num_marks = 1

    def __repr__(self) -> str:
        name = getattr(self.intensity, "__name__", type(self.intensity).__name__)
        return f"InhomogeneousPoisson(intensity={name}, bound={self.bound:.4g})"

    def log_likelihood(self, batch: EventBatch) -> Tensor:
        self.check_marks(batch)
        log_lam = torch.where(batch.mask, self.intensity(batch.times).log(), 0.0)
        return log_lam.sum(1) - self.compensator(batch.T)

    def interval_compensators(self, batch: EventBatch) -> Tensor:
        L = self.compensator(batch.times)
        return (L - torch.nn.functional.pad(L[:, :-1], (1, 0))) * batch.mask

    def next_event(self, history: EventBatch) -> NextEvent:
        self.check_marks(history)
        t0 = history.last_times
        L0 = self.compensator(t0)

        def log_prob(tau: Tensor) -> Tensor:
            return self.intensity(t0 + tau).log() - (self.compensator(t0 + tau) - L0)

        def sample(n: int, g: torch.Generator | None) -> Tensor:
            e = torch.empty(n, len(history), dtype=torch.float64).exponential_(generator=g)
            return _invert(self.compensator, self.intensity, L0 + e, t0) - t0

        return _unmarked_next(len(history), log_prob, sample)

    def simulate(self, T: float, num_sequences: int = 1, seed: int | None = None) -> EventBatch:
        """Lewis-Shedler thinning of a rate-`bound` Poisson process."""
        T = _check_T(T)
        rng = np.random.default_rng(seed)
        seqs = []
        for _ in range(num_sequences):
            cand = np.sort(rng.uniform(0, T, rng.poisson(self.bound * T)))
            lam = self.intensity(torch.as_tensor(cand)).numpy()
            if (lam > self.bound * (1 + 1e-12)).any():
                raise ValidationError(f"intensity exceeds bound={self.bound} on [0, {T}]")
            seqs.append(cand[rng.uniform(0, self.bound, cand.size) <= lam])
        return EventBatch.from_sequences(seqs, None, T, 1)


def _invert(Lam: Callable[[Tensor], Tensor], lam: Callable[[Tensor], Tensor], target: Tensor,
            lo: Tensor) -> Tensor:
    """Solve Lam(t) = target for t >= lo (Lam increasing) by safeguarded Newton iterations."""
    lo = lo.expand_as(target).clone()
    hi = lo + 1.0
    while (Lam(hi) < target).any():
        hi = torch.where(Lam(hi) < target, lo + 2 * (hi - lo), hi)
    t = (lo + hi) / 2
    for _ in range(200):
        f = Lam(t) - target
        lo = torch.where(f < 0, t, lo)
        hi = torch.where(f >= 0, t, hi)
        newton = t - f / lam(t)
        t_new = torch.where((newton > lo) & (newton < hi), newton, (lo + hi) / 2)
        if ((t_new - t).abs() <= 1e-13 * t.abs().clamp(min=1.0)).all():
            return t_new
        t = t_new
    return t


def _log_survival(dist: Distribution, x: Tensor) -> Tensor:
    """log P(X > x) for the interval laws used here, computed without 1 - cdf cancellation."""
    if isinstance(dist, LogNormal):
        z = (x.log() - dist.loc) / dist.scale
        return torch.special.log_ndtr(-z)
    if isinstance(dist, Gamma):
        return torch.special.gammaincc(dist.concentration, dist.rate * x).log()
    if isinstance(dist, Exponential):
        return -dist.rate * x
    raise ValidationError(f"no survival function for {type(dist).__name__}; use LogNormal, Gamma "
                          "or Exponential intervals")


class Renewal(PointProcess):
    """Renewal process, optionally time-changed: the increments Lambda(t_i) - Lambda(t_{i-1}) of
    a compensator are i.i.d. with law `interval` (Lambda(t) = t by default).

    log L = sum_i [log g(Delta Lambda_i) + log lambda(t_i)] + log S_g(Lambda(T) - Lambda(t_N)).
    """

    def __init__(self, interval: Distribution,
                 time_change: InhomogeneousPoisson | None = None):
        _log_survival(interval, torch.tensor(1.0, dtype=torch.float64))
        self.interval = interval
        self.time_change = time_change
        self.num_marks = 1

    def __repr__(self) -> str:
        change = "" if self.time_change is None else f", time_change={self.time_change!r}"
        return f"Renewal(interval={self.interval!r}{change})"

    def _Lam(self, t: Tensor) -> Tensor:
        return t if self.time_change is None else self.time_change.compensator(t)

    def _log_lam(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t) if self.time_change is None else \
            self.time_change.intensity(t).log()

    def log_likelihood(self, batch: EventBatch) -> Tensor:
        self.check_marks(batch)
        L = self._Lam(batch.times)
        dL = L - torch.nn.functional.pad(L[:, :-1], (1, 0))
        dL = torch.where(batch.mask, dL, 1.0)
        ll = torch.where(batch.mask, self.interval.log_prob(dL) + self._log_lam(batch.times), 0.0)
        rest = self._Lam(batch.T) - self._Lam(batch.last_times)
        return ll.sum(1) + _log_survival(self.interval, rest)

    def interval_compensators(self, batch: EventBatch) -> Tensor:
        L = self._Lam(batch.times)
        dL = torch.where(batch.mask, L - torch.nn.functional.pad(L[:, :-1], (1, 0)), 1.0)
        return torch.where(batch.mask, -_log_survival(self.interval, dL), 0.0)

    def next_event(self, history: EventBatch) -> NextEvent:
        self.check_marks(history)
        t0 = history.last_times
        L0 = self._Lam(t0)

        def log_prob(tau: Tensor) -> Tensor:
            return self.interval.log_prob(self._Lam(t0 + tau) - L0) + self._log_lam(t0 + tau)

        def sample(n: int, g: torch.Generator | None) -> Tensor:  # torch.distributions: global RNG
            d = self.interval.sample((n, len(history)))
            if self.time_change is None:
                return d
            return _invert(self._Lam, self.time_change.intensity, L0 + d, t0) - t0

        return _unmarked_next(len(history), log_prob, sample)

    def simulate(self, T: float, num_sequences: int = 1, seed: int | None = None) -> EventBatch:
        """Cumulative sums of i.i.d. increments, mapped back through the time change."""
        T = _check_T(T)
        if seed is not None:
            torch.manual_seed(seed)
        L_T = float(self._Lam(torch.tensor(T, dtype=torch.float64)))
        mean = float(self.interval.mean)
        seqs = []
        for _ in range(num_sequences):
            n = int(L_T / mean * 1.2) + 100
            cum = self.interval.sample((n,)).cumsum(0)
            while cum[-1] <= L_T:
                cum = torch.cat([cum, cum[-1] + self.interval.sample((n,)).cumsum(0)])
            cum = cum[cum <= L_T]
            if self.time_change is not None:
                cum = _invert(self._Lam, self.time_change.intensity, cum,
                              torch.zeros((), dtype=torch.float64)).clamp(max=T)
            seqs.append(cum.numpy())
        return EventBatch.from_sequences(seqs, None, T, 1)


class SelfCorrecting(PointProcess):
    """lambda(t) = exp(mu t - alpha N(t-)): each event lowers the intensity by a factor e^alpha."""

    def __init__(self, mu: float = 1.0, alpha: float = 1.0):
        self.mu = float(_positive("mu", torch.tensor(float(mu), dtype=torch.float64)))
        self.alpha = float(_positive("alpha", torch.tensor(float(alpha), dtype=torch.float64)))
        self.num_marks = 1

    def __repr__(self) -> str:
        return f"SelfCorrecting(mu={self.mu:.4g}, alpha={self.alpha:.4g})"

    def log_likelihood(self, batch: EventBatch) -> Tensor:
        self.check_marks(batch)
        mu, al = self.mu, self.alpha
        i = torch.arange(batch.max_len, dtype=torch.float64)
        log_lam = torch.where(batch.mask, mu * batch.times - al * i, 0.0)
        # the intervals before each event, then [t_N, T) with N events
        n = batch.lengths.double()
        last = torch.exp(mu * batch.last_times - al * n) * torch.expm1(
            mu * (batch.T - batch.last_times)) / mu
        return log_lam.sum(1) - self.interval_compensators(batch).sum(1) - last

    def interval_compensators(self, batch: EventBatch) -> Tensor:
        # int over [t_{i-1}, t_i) of exp(mu s - alpha (i - 1)), with i counted from 1
        i = torch.arange(batch.max_len, dtype=torch.float64)
        prev = torch.nn.functional.pad(batch.times[:, :-1], (1, 0))
        c = torch.exp(self.mu * prev - self.alpha * i)
        return torch.where(batch.mask, c * torch.expm1(self.mu * (batch.times - prev)) / self.mu,
                           0.0)

    def next_event(self, history: EventBatch) -> NextEvent:
        self.check_marks(history)
        c = self.mu * history.last_times - self.alpha * history.lengths.double()

        def log_prob(tau: Tensor) -> Tensor:
            return c + self.mu * tau - torch.exp(c) * torch.expm1(self.mu * tau) / self.mu

        def sample(n: int, g: torch.Generator | None) -> Tensor:
            e = torch.empty(n, len(history), dtype=torch.float64).exponential_(generator=g)
            return torch.log1p(self.mu * e * torch.exp(-c)) / self.mu

        return _unmarked_next(len(history), log_prob, sample)

    def simulate(self, T: float, num_sequences: int = 1, seed: int | None = None) -> EventBatch:
        """Exact inversion: tau = log(1 + mu E e^{alpha i - mu t}) / mu with E ~ Exp(1)."""
        T = _check_T(T)
        rng = np.random.default_rng(seed)
        seqs = []
        for _ in range(num_sequences):
            t, i, out = 0.0, 0, []
            while True:
                t += math.log1p(self.mu * rng.exponential() * math.exp(self.alpha * i - self.mu * t)
                                ) / self.mu
                if t > T:
                    break
                out.append(t)
                i += 1
            seqs.append(out)
        return EventBatch.from_sequences(seqs, None, T, 1)


def sinusoidal_rate(amplitude: float = 0.99, period: float = 20000.0) -> InhomogeneousPoisson:
    """lambda(t) = 1 + amplitude sin(2 pi t / period), Omi et al.'s non-stationary rate."""
    w = 2 * math.pi / period
    return InhomogeneousPoisson(lambda t: 1 + amplitude * torch.sin(w * t),
                                lambda t: t + amplitude / w * (1 - torch.cos(w * t)),
                                1 + amplitude)


def omi_processes() -> dict[str, PointProcess]:
    """The ground-truth processes of Omi et al. (2019), by name."""
    from tpp.hawkes import Hawkes

    s = math.sqrt(math.log(37.0))
    f64 = torch.float64
    return {
        "stationary_poisson": HomogeneousPoisson(1.0),
        "nonstationary_poisson": sinusoidal_rate(),
        "stationary_renewal": Renewal(LogNormal(torch.tensor(-s * s / 2, dtype=f64),
                                                torch.tensor(s, dtype=f64))),
        "nonstationary_renewal": Renewal(Gamma(torch.tensor(4.0, dtype=f64),
                                               torch.tensor(4.0, dtype=f64)), sinusoidal_rate()),
        "self_correcting": SelfCorrecting(1.0, 1.0),
        "hawkes1": Hawkes([0.2], [[0.8]], 1.0),
        "hawkes2": Hawkes([0.2], [[[0.4, 0.4]]], [1.0, 20.0]),
    }
