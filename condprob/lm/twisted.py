"""Twisted sequential Monte Carlo for p(x | verifier accepts x), and the twists that drive it.

Target: pi(x) proportional to p(x) V(x) over the `max_len` tokens after a prefix, V(x) in [0, 1]
the verifier's probability of accepting x. A twist psi(x_<t, v) estimates p(accept | x_<t, v); the
proposal is the guided law q(v | x_<t) proportional to p(v | x_<t) psi(x_<t, v), with incremental
weight sum_v p(v | x_<t) psi(x_<t, v) / psi(x_<t) (psi of the empty generation is 1) and the final
factor V(x) / psi(x). Resampling (multinomial) happens when the effective sample size falls below
`ess_threshold` N; the product over resampling epochs of the mean weights is an unbiased estimate
of p(accept) (zero, with the particles generated so far, when every weight vanishes). With the
exact twist psi = p(accept | .) every weight equals p(accept): ESS = N at
every step and the estimate has zero variance.

Twists are attribute kernels (`condprob.lm.attributes`) read at a target attribute:
(a) exact: `RegularAttribute` (bffg backward filter of a finite-state model and a regular
    verifier); `ClassConditional` gives GeDi's estimate;
(b) learned: `ValueTwist` from `train_value_twist`, a GRU Q-model of p(accept | prefix, v) fitted
    on the base model's samples labelled by the verifier (the dead-end value of rectification);
(c) verifier gradient: `GradientTwist` (semantic control): p(accept | prefix, v) is the verifier's
    first-order expansion sigma(f(e) + grad f(e) . (E_v - m)) around the expected bag-of-tokens
    embedding e of the finished text under the local law (the prefix, then the current next-token
    law m for the remaining positions); `fit_linear_verifier` fits a differentiable logistic
    surrogate of a real verifier on labelled samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from condprob.errors import ValidationError, check_nonnegative_int, check_positive_int
from condprob.lm.attributes import AttributeKernel
from condprob.lm.charlm import CharGRU
from condprob.lm.kernel import TokenKernel, as_prefix
from condprob.protocol import rng
from condprob.train import Loss, TensorData, fit


@dataclass
class TwistedSMCResult:
    """Particles (N, T + max_len), their normalised log-weights (N,), the log of the unbiased
    estimate of p(accept), the ESS before each resampling decision, the steps that resampled,
    and the number of base-model prefix evaluations."""

    particles: torch.Tensor
    log_weights: torch.Tensor
    log_evidence: torch.Tensor
    ess: list[float] = field(default_factory=list)
    resampled: list[int] = field(default_factory=list)
    model_evaluations: int = 0
    accepted: torch.Tensor | None = None

    @property
    def weights(self) -> torch.Tensor:
        return self.log_weights.exp()

    def report(self) -> str:
        """A diagnostic summary: evidence, ESS along the way, resampling steps, acceptance."""
        n = self.particles.shape[0]
        lines = [f"twisted SMC: {n} particles, {len(self.ess)} steps, "
                 f"{self.model_evaluations} model evaluations",
                 f"  p(accept) estimate   {math.exp(float(self.log_evidence)):.6g} "
                 f"(log {float(self.log_evidence):.4f})",
                 f"  ESS / N              min {min(self.ess) / n:.3f}, "
                 f"mean {sum(self.ess) / len(self.ess) / n:.3f}, final {self.ess[-1] / n:.3f}",
                 f"  resampled at steps   {self.resampled or 'none'}"]
        if self.accepted is not None:
            lines.append(f"  verifier on output   {float((self.weights * self.accepted).sum()):.4f} "
                         "(weighted acceptance)")
        return "\n".join(lines)


def _ess(logw: torch.Tensor) -> float:
    return float(torch.exp(2 * torch.logsumexp(logw, 0) - torch.logsumexp(2 * logw, 0)))


def twisted_smc(lm: TokenKernel, verifier: AttributeKernel, target: str | int,
                prefix: Sequence[int], max_len: int, twist: AttributeKernel | None = None,
                twist_target: str | int | None = None, num_particles: int = 64,
                ess_threshold: float = 0.5, generator: torch.Generator | None = None
                ) -> TwistedSMCResult:
    """Twisted SMC for p(x | verifier(x) = target) (see the module docstring). `twist` None is
    the base model as proposal (importance sampling with resampling); `twist_target` defaults to
    `target`."""
    if verifier.vocab != lm.vocab or (twist is not None and twist.vocab != lm.vocab):
        raise ValidationError("the verifier and the twist must read the model's vocabulary")
    check_positive_int(max_len, "max_len")
    check_positive_int(num_particles, "num_particles")
    if not 0 <= ess_threshold <= 1:
        raise ValidationError(f"ess_threshold must lie in [0, 1], got {ess_threshold}")
    vt = verifier.index(target)
    tt = None if twist is None else twist.index(target if twist_target is None else twist_target)
    parts = as_prefix([list(prefix)] * num_particles, lm.vocab_size)
    n = num_particles
    log_n = math.log(n)
    logw = torch.zeros(n, dtype=torch.float64)
    prev = torch.zeros(n, dtype=torch.float64)
    log_z = torch.zeros((), dtype=torch.float64)
    out = TwistedSMCResult(parts, logw, log_z)
    for step in range(max_len):
        probs = lm.logits(parts).double().exp()
        out.model_evaluations += n
        psi = probs.new_ones(probs.shape) if tt is None else twist.next_probs(parts)[..., tt]
        prop = probs * psi.double()
        mass = prop.sum(-1)
        alive = mass > 0
        pick = torch.multinomial(torch.where(alive.unsqueeze(-1), prop, probs), 1,
                                 generator=generator).squeeze(-1)
        logw = logw + torch.where(alive, mass.log() - prev, -torch.inf)
        prev = psi.double().gather(-1, pick.unsqueeze(-1)).squeeze(-1).log()
        parts = torch.cat([parts, pick.unsqueeze(-1)], -1)
        if step == max_len - 1:
            accept = verifier.probs(parts)[:, vt].double()
            logw = logw + accept.log() - torch.where(alive, prev, 0.0)
            out.accepted = accept
        if torch.isneginf(logw).all():
            out.ess.append(0.0)
            out.particles, out.log_evidence = parts, torch.tensor(-math.inf, dtype=torch.float64)
            out.log_weights = torch.full((n,), -log_n, dtype=torch.float64)
            return out
        out.ess.append(_ess(logw))
        if step < max_len - 1 and out.ess[-1] < ess_threshold * n:
            log_z = log_z + torch.logsumexp(logw, 0) - log_n
            anc = torch.multinomial(torch.softmax(logw, 0), n, replacement=True,
                                    generator=generator)
            parts, prev = parts[anc], prev[anc]
            logw = torch.zeros(n, dtype=torch.float64)
            out.resampled.append(step)
    out.log_evidence = log_z + torch.logsumexp(logw, 0) - log_n
    out.particles = parts
    out.log_weights = logw - torch.logsumexp(logw, 0)
    return out


class ValueTwist(AttributeKernel):
    """Attributes ("reject", "accept"): p(accept | prefix, v) = sigmoid of a GRU's output for
    token v after the prefix (a Q-model; one call gives every next token's value)."""

    def __init__(self, model: CharGRU, vocab, prefix_len: int):
        super().__init__(["reject", "accept"], vocab)
        self.model, self.prefix_len = model, check_nonnegative_int(prefix_len, "prefix_len")

    def _values(self, seq: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.sigmoid(self.model.all_logits(seq[:, self.prefix_len:]).double())

    def next_probs(self, prefix: torch.Tensor | Sequence) -> torch.Tensor:
        acc = self._values(as_prefix(prefix, self.vocab.size))[:, -1]
        return torch.stack([1 - acc, acc], -1)

    def probs(self, sequences: torch.Tensor | Sequence) -> torch.Tensor:
        seq = as_prefix(sequences, self.vocab.size)
        if seq.shape[1] <= self.prefix_len:
            raise ValidationError("the value of a sequence needs a generated token")
        vals = self._values(seq[:, :-1])[:, -1]
        acc = vals.gather(-1, seq[:, -1:]).squeeze(-1)
        return torch.stack([1 - acc, acc], -1)


def _rollouts(lm: TokenKernel, verifier: AttributeKernel, target: int, prefix: Sequence[int],
              max_len: int, num_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    start = as_prefix([list(prefix)] * num_samples, lm.vocab_size)
    seqs = lm.steps(max_len).sample(start, generator=rng(seed))
    return seqs, verifier.probs(seqs)[:, target].double()


def train_value_twist(lm: TokenKernel, verifier: AttributeKernel, target: str | int,
                      prefix: Sequence[int], max_len: int, num_samples: int = 512,
                      steps: int = 200, batch: int = 64, lr: float = 1e-2, seed: int = 0,
                      hidden: int = 64) -> tuple[ValueTwist, list[float]]:
    """Fit a `ValueTwist` on `num_samples` texts of the base model labelled by the verifier:
    binary cross-entropy of sigmoid(Q(x_<t, x_t)) against V(x) at every generated position
    (Monte Carlo values, as rectification's dead-end value with a terminal outcome)."""
    t = verifier.index(target)
    seqs, labels = _rollouts(lm, verifier, t, prefix, max_len, num_samples, seed)
    gen = seqs[:, len(prefix):]
    torch.manual_seed(seed)
    model = CharGRU(lm.vocab_size, hidden=hidden)

    def objective(m: CharGRU, b: tuple[torch.Tensor, torch.Tensor]) -> Loss:
        x, y = b
        q = m.all_logits(x[:, :-1]).gather(-1, x.unsqueeze(-1)).squeeze(-1)
        total = torch.nn.functional.binary_cross_entropy_with_logits(
            q, y.float().unsqueeze(-1).expand_as(q), reduction="sum")
        return Loss(total, q.numel())

    losses: list[float] = []
    fit(model, objective, TensorData(gen, labels), epochs=math.ceil(steps * batch / num_samples),
        batch_size=batch, lr=lr, seed=seed, max_steps=steps, progress=False,
        on_step_end=lambda s, loss: losses.append(loss))
    return ValueTwist(model, lm.vocab, len(prefix)), losses


class LinearVerifier(torch.nn.Module):
    """A logistic verifier on bag-of-tokens counts: logit = counts @ weight + bias."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(vocab_size, dtype=torch.float64))
        self.bias = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        return counts @ self.weight + self.bias


def fit_linear_verifier(lm: TokenKernel, verifier: AttributeKernel, target: str | int,
                        prefix: Sequence[int], max_len: int, num_samples: int = 512,
                        l2: float = 1e-2, seed: int = 0) -> LinearVerifier:
    """A differentiable surrogate of `verifier`: L2-regularised logistic regression (L-BFGS) of
    V(x) on the token counts of base-model texts."""
    seqs, labels = _rollouts(lm, verifier, verifier.index(target), prefix, max_len, num_samples,
                             seed)
    counts = torch.nn.functional.one_hot(seqs[:, len(prefix):], lm.vocab_size).sum(1).double()
    model = LinearVerifier(lm.vocab_size)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(counts), labels)
        loss = loss + l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


class GradientTwist(AttributeKernel):
    """Semantic-control twist (see the module docstring): `verifier_logit` maps embeddings (B, D)
    to logits of acceptance (differentiable), `embedding` (V, D) embeds tokens (bag of tokens:
    the identity); texts have `max_len` tokens after `prefix_len`. Each call costs one model
    evaluation of the prefixes and one verifier gradient."""

    def __init__(self, lm: TokenKernel, verifier_logit: Callable[[torch.Tensor], torch.Tensor],
                 max_len: int, prefix_len: int, embedding: torch.Tensor | None = None):
        super().__init__(["reject", "accept"], lm.vocab)
        self.lm, self.f = lm, verifier_logit
        self.max_len = check_positive_int(max_len, "max_len")
        self.prefix_len = check_nonnegative_int(prefix_len, "prefix_len")
        self.embedding = (torch.eye(lm.vocab_size, dtype=torch.float64) if embedding is None
                          else torch.as_tensor(embedding, dtype=torch.float64))
        if self.embedding.ndim != 2 or self.embedding.shape[0] != lm.vocab_size:
            raise ValidationError(f"the embedding must be ({lm.vocab_size}, D)")

    def _logits(self, seq: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        emb = self.embedding
        gen = seq[:, self.prefix_len:]
        remaining = self.max_len - gen.shape[1]
        if remaining < 1:
            raise ValidationError(f"the twist covers generated lengths [0, {self.max_len}), got "
                                  f"{gen.shape[1]}")
        m = probs @ emb
        e = (emb[gen].sum(1) + remaining * m).detach().requires_grad_(True)
        f = self.f(e)
        (grad,) = torch.autograd.grad(f.sum(), e)
        shift = ((emb.unsqueeze(0) - m.unsqueeze(1)) @ grad.unsqueeze(-1)).squeeze(-1)
        return f.detach().unsqueeze(-1) + shift

    def next_probs(self, prefix: torch.Tensor | Sequence) -> torch.Tensor:
        seq = as_prefix(prefix, self.vocab.size)
        acc = torch.sigmoid(self._logits(seq, self.lm.logits(seq).double().exp()))
        return torch.stack([1 - acc, acc], -1)

    def probs(self, sequences: torch.Tensor | Sequence) -> torch.Tensor:
        seq = as_prefix(sequences, self.vocab.size)
        counts = self.embedding[seq[:, self.prefix_len:]].sum(1)
        with torch.no_grad():
            acc = torch.sigmoid(self.f(counts).double())
        return torch.stack([1 - acc, acc], -1)
