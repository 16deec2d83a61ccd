"""MCMC on top of guided proposals: pCN over the driving noise and Metropolis-Hastings updates of
model parameters (van der Meulen & Schauer).

With Z the standard normal noise that drives `forward_guide`, the posterior of the paths is the image
of the law pi(Z) proportional to N(Z; 0, I) w(Z), w the guided weight. Preconditioned Crank-Nicolson
proposes Z' = rho Z + sqrt(1 - rho^2) W, which keeps N(0, I) invariant, so it is accepted with
probability min(1, w(Z') / w(Z)). A parameter theta with prior p(theta) is updated with Z fixed:
the joint target is p(theta) p~_theta(y) w_theta(Z) N(Z), p~ the auxiliary evidence, and a random
walk theta' = theta + step * W is accepted with the ratio of that target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from condprob.bffg.inference import Filtered, WeightedSamples, backward_filter, forward_guide
from condprob.bffg.model import Model
from condprob.errors import ValidationError


def _check_rho(rho: float) -> None:
    if not 0.0 <= rho < 1.0:
        raise ValidationError(f"pCN needs 0 <= rho < 1, got {rho}")


def _euclidean_only(filtered: Filtered) -> None:
    model = filtered.model
    for v in model.graph:
        if model.space(v).is_finite:
            raise TypeError(f"pCN moves Gaussian noise; node {v!r} is finite")


def _select(acc: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return torch.where(acc.reshape(-1, *([1] * (new.ndim - 1))), new, old)


def _merge(acc: torch.Tensor, new: WeightedSamples, old: WeightedSamples) -> WeightedSamples:
    return WeightedSamples(
        {k: _select(acc, new.values[k], v) for k, v in old.values.items()},
        {k: _select(acc, new.paths[k], v) for k, v in old.paths.items()},
        _select(acc, new.log_weights, old.log_weights), new.log_evidence_aux,
        {k: _select(acc, new.noise[k], v) for k, v in old.noise.items()})


def _pcn_proposal(noise: dict, rho: float, generator: torch.Generator) -> dict:
    s = math.sqrt(1 - rho**2)
    return {k: rho * z + s * torch.randn(z.shape, dtype=z.dtype, generator=generator)
            for k, z in noise.items()}


@dataclass
class PCNResult:
    """Final states of the chains, recorded values per iteration and the acceptance rate."""

    samples: WeightedSamples
    trace: list[dict[Hashable, torch.Tensor]]
    acceptance: float


def pcn(filtered: Filtered, iterations: int, rho: float = 0.5, chains: int = 1,
        seed: int = 0, record: tuple[Hashable, ...] = ()) -> PCNResult:
    """Run `chains` independent pCN chains over the noise of a model with Euclidean nodes.

    Each chain targets the exact conditional law of the nodes (and SDE paths) given the
    observations; `record` names the nodes whose values are kept after every iteration.
    """
    _check_rho(rho)
    _euclidean_only(filtered)
    if iterations < 1 or chains < 1:
        raise ValidationError(f"iterations and chains must be positive, got {iterations}, {chains}")
    g = torch.Generator().manual_seed(seed)
    cur = forward_guide(filtered, chains, generator=g)
    accepted = 0.0
    trace = []
    for _ in range(iterations):
        prop = forward_guide(filtered, chains, generator=g,
                             noise=_pcn_proposal(cur.noise, rho, g))
        u = torch.rand(chains, dtype=torch.float64, generator=g)
        acc = torch.log(u) < prop.log_weights - cur.log_weights
        accepted += acc.double().mean().item()
        cur = _merge(acc, prop, cur)
        trace.append({v: cur.values[v].clone() for v in record})
    return PCNResult(cur, trace, accepted / iterations)


@dataclass
class MHResult:
    """Parameter draws (iterations, p), recorded node values, and acceptance rates."""

    thetas: torch.Tensor
    trace: list[dict[Hashable, torch.Tensor]]
    acceptance_theta: float
    acceptance_noise: float


def mh_parameters(build: Callable[[torch.Tensor], Model], theta0: torch.Tensor,
                  log_prior: Callable[[torch.Tensor], float], iterations: int,
                  step: float | torch.Tensor, rho: float = 0.5, seed: int = 0,
                  record: tuple[Hashable, ...] = (), **filter_args: object) -> MHResult:
    """Alternate a pCN step on the noise and a random-walk MH step on theta (one chain).

    `build(theta)` returns the model for a parameter value; `log_prior(theta)` may return -inf
    outside the support. `filter_args` go to `backward_filter`.
    """
    _check_rho(rho)
    g = torch.Generator().manual_seed(seed)
    theta = torch.as_tensor(theta0, dtype=torch.float64).reshape(-1)
    lp = float(log_prior(theta))
    if not math.isfinite(lp):
        raise ValidationError(f"the prior gives log density {lp} at theta0 = {theta.tolist()}")
    filt = backward_filter(build(theta), **filter_args)  # type: ignore[arg-type]
    _euclidean_only(filt)
    cur = forward_guide(filt, 1, generator=g)
    thetas, trace = [], []
    acc_t = acc_z = 0
    for _ in range(iterations):
        prop = forward_guide(filt, 1, generator=g, noise=_pcn_proposal(cur.noise, rho, g))
        if math.log(torch.rand((), generator=g).item()) < (prop.log_weights
                                                             - cur.log_weights).item():
            cur, acc_z = prop, acc_z + 1
        theta_p = theta + step * torch.randn(theta.shape, dtype=torch.float64, generator=g)
        lp_p = float(log_prior(theta_p))
        if math.isfinite(lp_p):
            filt_p = backward_filter(build(theta_p), **filter_args)  # type: ignore[arg-type]
            prop = forward_guide(filt_p, 1, generator=g, noise=cur.noise)
            log_ratio = (lp_p + filt_p.log_evidence + prop.log_weights[0]
                         - lp - filt.log_evidence - cur.log_weights[0]).item()
            if math.log(torch.rand((), generator=g).item()) < log_ratio:
                theta, lp, filt, cur, acc_t = theta_p, lp_p, filt_p, prop, acc_t + 1
        thetas.append(theta)
        trace.append({v: cur.values[v][0].clone() for v in record})
    return MHResult(torch.stack(thetas), trace, acc_t / iterations, acc_z / iterations)
