"""Neural marked point processes on a recurrent history encoder.

- `IntensityFree` (Shchur et al. 2020): f(tau | h) a log-normal mixture, p(m | h) independent of
  tau; exact likelihood.
- `TimeGivenMark` (Waghmare et al. 2022): f(tau, k | h) = p(k | h) f_k(tau | h), one log-normal
  mixture per mark; exact likelihood.
- `ConditionalGenerator` (Dong et al. 2023, conditional-VAE variant): a generator g(z, h) with
  z ~ N(0, I) emits (tau, mark) in one forward pass; marks are categorical or vectors in R^d.
  It is trained on the evidence lower bound; its likelihood is an importance-weighted estimate.

All standardise log tau with the training set's mean and std (`fit_scaling`), and give the
log-likelihood of each sequence on [0, T], the survival term of the unfinished last interval
included.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from condprob.errors import ValidationError, check_positive_int
from tpp.data import EventBatch
from tpp.kernel import NextEvent, mark_space
from tpp.process import PointProcess

__all__ = ["ConditionalGenerator", "HistoryEncoder", "IntensityFree", "LogNormalMixture",
           "TimeGivenMark"]

F64 = torch.float64


class LogNormalMixture:
    """f(tau) = sum_c w_c LogNormal(tau; loc_c, scale_c), batched over leading dims (..., C).

    E[tau] = sum_c w_c exp(loc_c + scale_c^2 / 2); S(tau) = sum_c w_c (1 - Phi((ln tau - loc_c)
    / scale_c)).
    """

    def __init__(self, log_weights: Tensor, loc: Tensor, scale: Tensor):
        self.log_w = log_weights.log_softmax(-1)
        self.loc, self.scale = loc, scale

    def log_prob(self, tau: Tensor) -> Tensor:
        """log f(tau) (tau broadcasts against the batch dims)."""
        x = tau.log()[..., None]
        z = (x - self.loc) / self.scale
        comp = -0.5 * z**2 - self.scale.log() - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(self.log_w + comp, -1) - x[..., 0]

    def log_survival(self, tau: Tensor) -> Tensor:
        """log S(tau) = log P(tau' > tau)."""
        z = (tau.log()[..., None] - self.loc) / self.scale
        return torch.logsumexp(self.log_w + torch.special.log_ndtr(-z), -1)

    def mean(self) -> Tensor:
        """E[tau]."""
        return (self.log_w + self.loc + self.scale**2 / 2).logsumexp(-1).exp()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws, shape (n, *batch)."""
        flat = self.log_w.exp().reshape(-1, self.log_w.shape[-1])
        c = torch.multinomial(flat, n, replacement=True, generator=generator).T   # (n, batch)
        shape = (n, *self.log_w.shape[:-1])
        c = c.reshape(shape)[..., None]
        loc = self.loc.expand(shape + self.loc.shape[-1:]).gather(-1, c)[..., 0]
        scale = self.scale.expand(shape + self.scale.shape[-1:]).gather(-1, c)[..., 0]
        eps = torch.randn(shape, dtype=loc.dtype, generator=generator)
        return torch.exp(loc + scale * eps)


class HistoryEncoder(nn.Module):
    """GRU over events; `forward` gives the context h_i before every event i and after the last.

    Input per event: the standardised log inter-event time and the mark (an embedding for
    categorical marks, the raw vector for continuous ones).
    """

    def __init__(self, num_marks: int | None, mark_dim: int | None, hidden: int = 32,
                 embed: int = 16):
        super().__init__()
        self.embed = nn.Embedding(num_marks, embed, dtype=F64) if num_marks else None
        width = 1 + (embed if num_marks else mark_dim)
        self.gru = nn.GRU(width, hidden, batch_first=True, dtype=F64)
        self.h0 = nn.Parameter(torch.zeros(hidden, dtype=F64))

    def forward(self, batch: EventBatch, log_tau: Tensor) -> Tensor:
        """(B, L + 1, hidden): entry i summarises events 0..i-1."""
        start = self.h0.expand(len(batch), 1, -1)
        if batch.max_len == 0:
            return start
        mark = self.embed(batch.marks) if self.embed is not None else batch.marks
        x = torch.cat([log_tau[..., None], mark], -1) * batch.mask[..., None]
        out, _ = self.gru(x, self.h0.expand(1, len(batch), -1).contiguous())
        return torch.cat([start, out], 1)


class _Neural(PointProcess, nn.Module):
    """Shared plumbing: scaling of log tau, the encoder, contexts at events and after the end."""

    def __init__(self, num_marks: int | None, mark_dim: int | None, hidden: int):
        nn.Module.__init__(self)
        if (num_marks is None) == (mark_dim is None):
            raise ValidationError("give exactly one of num_marks (categorical) and mark_dim")
        for name, v in (("num_marks", num_marks), ("mark_dim", mark_dim), ("hidden", hidden)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValidationError(f"{name} must be a positive integer, got {v!r}")
        self.num_marks, self.mark_dim = num_marks, mark_dim
        self.encoder = HistoryEncoder(num_marks, mark_dim, hidden)
        self.register_buffer("log_tau_mean", torch.zeros((), dtype=F64))
        self.register_buffer("log_tau_std", torch.ones((), dtype=F64))

    def fit_scaling(self, batch: EventBatch) -> None:
        """Standardise log tau with the mean and std of a training batch."""
        lt = self._log_tau(batch)[batch.mask]
        if not lt.numel():
            raise ValidationError("fit_scaling needs a batch with at least one event, got "
                                  f"{len(batch.lengths)} sequences without any")
        self.log_tau_mean.fill_(float(lt.mean()))
        self.log_tau_std.fill_(float(lt.std()) if lt.numel() > 1 else 1.0)

    def _log_tau(self, batch: EventBatch) -> Tensor:
        self.check_marks(batch)
        tau = batch.inter_times
        if ((tau <= 0) & batch.mask).any():
            raise ValidationError("neural models need positive inter-event times; the batch has "
                                  "tied or zero times")
        return torch.where(batch.mask, tau, 1.0).log()

    def _contexts(self, batch: EventBatch) -> tuple[Tensor, Tensor, Tensor]:
        """(h before each event (B, L, H), h after the last event (B, H), tau left to T (B,))."""
        lt = self._log_tau(batch)
        H = self.encoder(batch, (lt - self.log_tau_mean) / self.log_tau_std)
        h_end = H[torch.arange(len(batch)), batch.lengths]
        return H[:, :-1], h_end, batch.T - batch.last_times


class _MixtureTPP(_Neural):
    """p(k | h) f_k(tau | h) with log-normal mixtures; f_k = f for all k unless per_mark."""

    def __init__(self, num_marks: int, hidden: int = 32, components: int = 8,
                 per_mark: bool = False):
        super().__init__(num_marks, None, hidden)
        check_positive_int(components, "components")
        self.per_mark, self.C = per_mark, components
        self.mark_head = nn.Linear(hidden, num_marks, dtype=F64)
        self.time_head = nn.Linear(hidden, (num_marks if per_mark else 1) * 3 * components,
                                   dtype=F64)

    def _laws(self, h: Tensor) -> tuple[Tensor, LogNormalMixture]:
        """log p(k | h) (..., K) and the time mixtures (..., K or 1, C)."""
        p = self.time_head(h).unflatten(-1, (-1, 3, self.C))
        s = self.log_tau_std
        loc = self.log_tau_mean + s * p[..., 1, :]
        scale = s * p[..., 2, :].clamp(-5.0, 3.0).exp()
        return self.mark_head(h).log_softmax(-1), LogNormalMixture(p[..., 0, :], loc, scale)

    def _joint(self, h: Tensor, tau: Tensor) -> Tensor:
        """log p(k | h) + log f_k(tau | h) for every k, (..., K)."""
        log_p, mix = self._laws(h)
        return log_p + mix.log_prob(tau[..., None])

    def _log_survival(self, h: Tensor, tau: Tensor) -> Tensor:
        log_p, mix = self._laws(h)
        return (log_p + mix.log_survival(tau[..., None])).logsumexp(-1)

    def log_likelihood(self, batch: EventBatch) -> Tensor:
        t, m = self.log_likelihood_parts(batch)
        return t + m

    def log_likelihood_parts(self, batch: EventBatch) -> tuple[Tensor, Tensor]:
        h, h_end, rest = self._contexts(batch)
        tau = torch.where(batch.mask, batch.inter_times, 1.0)
        joint = self._joint(h, tau)
        time_ll = joint.logsumexp(-1)
        mark_ll = joint.gather(-1, batch.marks[..., None])[..., 0] - time_ll
        surv = torch.where(rest > 0, self._log_survival(h_end, rest.clamp(min=1e-300)), 0.0)
        return ((time_ll * batch.mask).sum(1) + surv, (mark_ll * batch.mask).sum(1))

    def interval_compensators(self, batch: EventBatch) -> Tensor:
        h, _, _ = self._contexts(batch)
        tau = torch.where(batch.mask, batch.inter_times, 1.0)
        return -self._log_survival(h, tau) * batch.mask

    def mark_given_time(self, batch: EventBatch) -> Tensor:
        with torch.no_grad():
            h, _, _ = self._contexts(batch)
            tau = torch.where(batch.mask, batch.inter_times, 1.0)
            return self._joint(h, tau).argmax(-1) * batch.mask

    def predict(self, batch: EventBatch) -> tuple[Tensor, Tensor]:
        """E[tau_i | h_i] = sum_k p(k | h) E_k[tau] and argmax_k p(k | h_i) for every event."""
        with torch.no_grad():
            h, _, _ = self._contexts(batch)
            log_p, mix = self._laws(h)
            mean = (log_p.exp() * mix.mean().expand_as(log_p)).sum(-1)
        return mean * batch.mask, log_p.argmax(-1) * batch.mask

    def next_event(self, history: EventBatch) -> NextEvent:
        _, h, _ = self._contexts(history)
        log_p, mix = self._laws(h)
        K = log_p.shape[-1]

        def log_prob(tau: Tensor, mark: Tensor) -> Tensor:
            return self._joint(h, tau).gather(-1, mark[..., None])[..., 0]

        def sample(n: int, g: torch.Generator | None) -> tuple[Tensor, Tensor]:
            with torch.no_grad():
                k = torch.multinomial(log_p.exp(), n, replacement=True, generator=g).T  # (n, B)
                taus = mix.sample(n, g)                                      # (n, B, K or 1)
                idx = k[..., None] if self.per_mark else torch.zeros_like(k)[..., None]
                return taus.gather(-1, idx)[..., 0], k

        return NextEvent(mark_space(K), len(history), log_prob, sample)


class IntensityFree(_MixtureTPP):
    """Shchur et al.'s LogNormMix: f(tau | h) log-normal mixture, marks p(m | h) given h only."""

    def __init__(self, num_marks: int, hidden: int = 32, components: int = 8):
        super().__init__(num_marks, hidden, components, per_mark=False)


class TimeGivenMark(_MixtureTPP):
    """Waghmare et al.: f(tau, k | h) = p(k | h) f_k(tau | h), a mixture per mark."""

    def __init__(self, num_marks: int, hidden: int = 32, components: int = 8):
        super().__init__(num_marks, hidden, components, per_mark=True)


def _mlp(inp: int, out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden, dtype=F64), nn.Tanh(),
                         nn.Linear(hidden, out, dtype=F64))


class ConditionalGenerator(_Neural):
    """Dong et al.'s conditional event generator, trained as a conditional VAE.

    g(z, h) with z ~ N(0, I) gives a Gaussian on y = standardised log tau, and a categorical law or
    a diagonal Gaussian for the mark. Training maximises the importance-weighted bound
    E log (1/K sum_k p(x, z_k | h) / q(z_k | x, h)) with K = `train_particles` draws from
    q(z | x, h) (K = 1: the ELBO E_q log p(x | z, h) - KL(q || N(0, I))); `log_likelihood` is the
    same estimate with `num_particles` draws, and the survival term uses S(tau | h) =
    E_z[S(tau | z, h)].
    """

    def __init__(self, num_marks: int | None = None, mark_dim: int | None = None,
                 hidden: int = 32, latent: int = 4, num_particles: int = 16,
                 train_particles: int = 8):
        super().__init__(num_marks, mark_dim, hidden)
        for name, v in (("latent", latent), ("num_particles", num_particles),
                        ("train_particles", train_particles)):
            check_positive_int(v, name)
        self.latent, self.K, self.train_particles = latent, num_particles, train_particles
        width = num_marks or mark_dim or 0
        self.recognition = _mlp(hidden + 1 + width, 2 * latent, hidden)
        self.generator = _mlp(hidden + latent, 2 + (width if num_marks else 2 * width), hidden)

    def _decode(self, h: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(mean of y, std of y, mark parameters) from g(z, h)."""
        out = self.generator(torch.cat([h.expand(*z.shape[:-1], -1), z], -1))
        return out[..., 0], out[..., 1].clamp(-5.0, 3.0).exp(), out[..., 2:]

    def _mark_log_prob(self, params: Tensor, mark: Tensor) -> Tensor:
        if self.num_marks:
            return params.log_softmax(-1).gather(-1, mark[..., None].expand(
                *params.shape[:-1], 1))[..., 0]
        d = self.mark_dim
        loc, scale = params[..., :d], params[..., d:].clamp(-5.0, 3.0).exp()
        return torch.distributions.Normal(loc, scale).log_prob(mark).sum(-1)

    def _log_px(self, h: Tensor, z: Tensor, tau: Tensor, mark: Tensor) -> Tensor:
        """log p(tau, mark | z, h), the Jacobian of tau -> y included."""
        m, s, params = self._decode(h, z)
        y = (tau.log() - self.log_tau_mean) / self.log_tau_std
        log_y = torch.distributions.Normal(m, s).log_prob(y)
        return log_y - tau.log() - self.log_tau_std.log() + self._mark_log_prob(params, mark)

    def _event_terms(self, h: Tensor, tau: Tensor, mark: Tensor, particles: int
                     ) -> tuple[Tensor, Tensor]:
        """(ELBO, importance-weighted log-likelihood estimate) per event."""
        y = (tau.log() - self.log_tau_mean) / self.log_tau_std
        x_mark = (torch.nn.functional.one_hot(mark, self.num_marks).to(F64) if self.num_marks
                  else mark)
        q = self.recognition(torch.cat([h, y[..., None], x_mark], -1))
        q_loc, q_scale = q[..., :self.latent], q[..., self.latent:].clamp(-5.0, 3.0).exp()
        eps = torch.randn((particles, *q_loc.shape), dtype=F64)
        z = q_loc + q_scale * eps
        log_px = self._log_px(h, z, tau, mark)
        normal = torch.distributions.Normal(0.0, 1.0)
        log_w = log_px + normal.log_prob(z).sum(-1) - torch.distributions.Normal(
            q_loc, q_scale).log_prob(z).sum(-1)
        kl = torch.distributions.kl_divergence(torch.distributions.Normal(q_loc, q_scale),
                                               normal).sum(-1)
        elbo = log_px.mean(0) - kl
        return elbo, log_w.logsumexp(0) - math.log(particles)

    def _log_survival(self, h: Tensor, tau: Tensor, particles: int) -> Tensor:
        z = torch.randn((particles, *h.shape[:-1], self.latent), dtype=F64)
        m, s, _ = self._decode(h, z)
        y = (tau.log() - self.log_tau_mean) / self.log_tau_std
        return (torch.special.log_ndtr(-(y - m) / s)).logsumexp(0) - math.log(particles)

    def _terms(self, batch: EventBatch, particles: int) -> tuple[Tensor, Tensor]:
        h, h_end, rest = self._contexts(batch)
        tau = torch.where(batch.mask, batch.inter_times, 1.0)
        elbo, iw = self._event_terms(h, tau, batch.marks, particles)
        surv = torch.where(rest > 0, self._log_survival(h_end, rest.clamp(min=1e-300), particles),
                           0.0)
        return (elbo * batch.mask).sum(1) + surv, (iw * batch.mask).sum(1) + surv

    def elbo(self, batch: EventBatch, particles: int = 1) -> Tensor:
        """Lower bound of the log-likelihood per sequence (in expectation): the ELBO with its KL
        in closed form for one particle, the importance-weighted bound for several."""
        elbo, iw = self._terms(batch, particles)
        return elbo if particles == 1 else iw

    def log_likelihood(self, batch: EventBatch) -> Tensor:
        """Importance-weighted estimate (num_particles draws; biased low, consistent)."""
        return self._terms(batch, self.K)[1]

    def log_likelihood_parts(self, batch: EventBatch) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("the conditional generator has no closed-form split of its "
                                  "likelihood into time and mark parts")

    def interval_compensators(self, batch: EventBatch) -> Tensor:
        h, _, _ = self._contexts(batch)
        tau = torch.where(batch.mask, batch.inter_times, 1.0)
        return -self._log_survival(h, tau, self.K) * batch.mask

    def mark_given_time(self, batch: EventBatch) -> Tensor:
        """argmax over k of the importance-weighted estimate of log p(tau_i, k | h_i)."""
        if not self.num_marks:
            raise ValidationError("mark_given_time needs categorical marks")
        with torch.no_grad():
            h, _, _ = self._contexts(batch)
            tau = torch.where(batch.mask, batch.inter_times, 1.0)
            scores = torch.stack([self._event_terms(h, tau, torch.full_like(batch.marks, k),
                                                    self.K)[1] for k in range(self.num_marks)], -1)
        return scores.argmax(-1) * batch.mask

    def next_event(self, history: EventBatch) -> NextEvent:
        _, h, _ = self._contexts(history)
        marks = mark_space(self.num_marks, self.mark_dim)

        def log_prob(tau: Tensor, mark: Tensor) -> Tensor:
            return self._event_terms(h.expand(*tau.shape, -1), tau, mark, self.K)[1]

        def sample(n: int, g: torch.Generator | None) -> tuple[Tensor, Tensor]:
            with torch.no_grad():
                z = torch.randn((n, len(history), self.latent), dtype=F64, generator=g)
                m, s, params = self._decode(h, z)
                y = m + s * torch.randn(m.shape, dtype=F64, generator=g)
                tau = torch.exp(self.log_tau_mean + self.log_tau_std * y)
                if self.num_marks:
                    k = torch.multinomial(params.softmax(-1).reshape(-1, self.num_marks), 1,
                                          generator=g)
                    return tau, k.view(n, len(history))
                d = self.mark_dim
                loc, scale = params[..., :d], params[..., d:].clamp(-5.0, 3.0).exp()
                return tau, loc + scale * torch.randn(loc.shape, dtype=F64, generator=g)

        return NextEvent(marks, len(history), log_prob, sample)

    def predict(self, batch: EventBatch, num_samples: int = 64) -> tuple[Tensor, Tensor]:
        """Monte Carlo mean of tau (and the most frequent sampled mark, or the mean mark vector)
        for every event, from `num_samples` generator passes."""
        with torch.no_grad():
            h, _, _ = self._contexts(batch)
            z = torch.randn((num_samples, *h.shape[:-1], self.latent), dtype=F64)
            m, s, params = self._decode(h, z)
            mean = torch.exp(self.log_tau_mean + self.log_tau_std * m
                             + (self.log_tau_std * s) ** 2 / 2).mean(0)
            if self.num_marks:
                mark = params.softmax(-1).mean(0).argmax(-1) * batch.mask
            else:
                mark = params[..., :self.mark_dim].mean(0) * batch.mask[..., None]
        return mean * batch.mask, mark
