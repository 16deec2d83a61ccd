"""Special cases of BFFG on chains: the HMM forward-backward and the Kalman filter/RTS smoother.

`hmm_model` and `kalman_model` build the chain x_1 -> ... -> x_T with one observation per step;
`backward_filter` on it is the backward algorithm (information filter), `posterior_marginals` the
smoothing marginals. `hmm_smoother` is the same computation by the core's chain engine
(`condprob.chain`, batched, float); `kalman_smoother` runs the BFFG chain with the core's Gaussian
kernels. Both return (marginals, log evidence).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from condprob import backend as B
from condprob import chain
from condprob.bffg.inference import backward_filter, posterior_marginals
from condprob.bffg.messages import FiniteMessage, GaussianMessage
from condprob.bffg.model import Model
from condprob.errors import SpaceMismatchError, ValidationError
from condprob.finite import Kernel, Predicate, State
from condprob.gaussian import Gaussian, LinearGaussian


def hmm_model(prior: State, transition: Kernel, emission: Kernel,
              observations: Sequence[Hashable]) -> Model:
    """The HMM chain 0 -> 1 -> ... with the likelihood emission(x)(y_t) observed at node t."""
    if not observations:
        raise ValidationError("an HMM needs at least one observation")
    m = Model(0, prior)
    for t, y in enumerate(observations):
        if t:
            m.add_edge(t - 1, t, transition)
        lik = emission.pullback(Predicate.event([y], emission.cod, exact=emission.exact))
        m.observe(t, FiniteMessage(lik)._normalised())
    return m


def hmm_smoother(prior: State, transition: Kernel, emission: Kernel,
                 observations: Sequence[Hashable]) -> tuple[torch.Tensor, torch.Tensor]:
    """Smoothing marginals p(x_t | y) (T, S) and log p(y) by the core's chain engine."""
    if transition.dom != prior.cod or transition.cod != prior.cod:
        raise SpaceMismatchError("HMM transition", (prior.cod, prior.cod),
                                 (transition.dom, transition.cod))
    if emission.dom != prior.cod:
        raise SpaceMismatchError("HMM emission", prior.cod, emission.dom)
    if not observations:
        raise ValidationError("an HMM needs at least one observation")
    idx = torch.tensor([emission.cod.index(y) for y in observations])
    log_e = torch.log(B.to_float(emission.matrix))
    c = chain.Chain(unary=log_e[:, idx].T.contiguous(),
                    pairwise=torch.log(B.to_float(transition.matrix)),
                    start=torch.log(B.to_float(prior.probs)))
    return chain.marginals(c), chain.log_partition(c)


def kalman_model(prior: Gaussian, transition: LinearGaussian, observation: LinearGaussian,
                 ys: torch.Tensor) -> Model:
    """The chain x_0 -> x_1 -> ... with y_t ~ observation(x_t) observed at node t."""
    ys = torch.as_tensor(ys, dtype=torch.float64)
    if ys.ndim != 2 or ys.shape[1] != observation.cod.dim:
        raise ValidationError(f"observations must have shape (T, {observation.cod.dim}), got "
                              f"{tuple(ys.shape)}")
    m = Model(0, prior)
    for t, y in enumerate(ys):
        if t:
            m.add_edge(t - 1, t, transition)
        m.observe(t, GaussianMessage.observation(observation.matrix, observation.cov,
                                                 y - observation.offset))
    return m


def kalman_smoother(prior: Gaussian, transition: LinearGaussian, observation: LinearGaussian,
                    ys: torch.Tensor) -> tuple[list[Gaussian], torch.Tensor]:
    """RTS smoothing marginals p(x_t | y_1..T) and log p(y), as BFFG on the chain."""
    filt = backward_filter(kalman_model(prior, transition, observation, ys))
    marg = posterior_marginals(filt)
    return [marg[t] for t in range(len(marg))], filt.log_evidence  # type: ignore[misc]
