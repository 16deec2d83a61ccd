"""Backward filtering and forward guiding on a `Model`.

`backward_filter` sends messages from the leaves to the root: h_v = l_v * prod over children c of
(K~_c h_c), with K~ the auxiliary kernel where one is given (else the kernel itself), and returns the
(auxiliary) evidence `log <prior, h_root>`. `forward_guide` samples the root from prior * h_root and
each child from K^h(x, dy) = K(x, dy) h_c(y) / (K h_c)(x), with log-weight
sum over edges of log (K h_c)(x) - log (K~ h_c)(x) (for SDE edges: the Girsanov log Psi); the weight
is exactly 1 where no auxiliary is used, and `p(y) = <prior, h~_root> E[w]`.
`posterior_marginals` pushes the guided root through the guided kernels exactly (finite and
linear-Gaussian models): these are the smoothing marginals (forward-backward, Kalman/RTS).
DAG models (`Model.add_node`) go to the exact filter on sets of nodes in `condprob.bffg.dag`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field

import networkx as nx
import torch

from condprob import backend as B
from condprob.bffg.kernels import NonlinearGaussian
from condprob.bffg.messages import FiniteMessage, GaussianMessage, PointMessage, psd_sqrt
from condprob.bffg.model import Message, Model
from condprob.bffg.rules import (
    guided_finite,
    guided_gaussian,
    guided_linear,
    log_integral,
    pullback_finite,
    pullback_linear,
)
from condprob.bffg.sde import Guide, SDEKernel, backward_ode, guided_path
from condprob.errors import ValidationError
from condprob.finite import Kernel
from condprob.gaussian import Gaussian, LinearGaussian
from condprob.protocol import Morphism

Edge = tuple[Hashable, Hashable]


@dataclass
class Filtered:
    """Result of `backward_filter`: messages h_v, pulled messages (K~ h_v) per edge, SDE guides,
    and the auxiliary evidence `log <prior, h_root>` (the exact log evidence without auxiliaries)."""

    model: Model
    messages: dict[Hashable, Message]
    pulled: dict[Edge, Message]
    guides: dict[Edge, Guide]
    log_evidence: torch.Tensor
    evidence: object = None

    @property
    def exact(self) -> bool:
        """True when no edge uses an auxiliary: guided samples then have log-weight 0."""
        return all(self.model.auxiliary(u, v) is None for u, v in self.model.graph.edges)


def _uninformative(model: Model, node: Hashable) -> Message:
    space = model.space(node)
    if space.is_finite:
        parent = list(model.graph.predecessors(node))
        src = model.kernel(parent[0], node) if parent else model.prior()
        return FiniteMessage.uninformative(space, exact=src.exact)
    return GaussianMessage.uninformative(space.dim)


def _pull(model: Model, u: Hashable, v: Hashable, h: Message, sde_method: str,
          substeps: int) -> tuple[Message, Guide | None]:
    aux = model.auxiliary(u, v)
    k = model.kernel(u, v) if aux is None else aux
    if isinstance(k, Kernel):
        return pullback_finite(k, h), None  # type: ignore[arg-type]
    if isinstance(k, SDEKernel):
        guide = backward_ode(k, h, sde_method, substeps)  # type: ignore[arg-type]
        return guide.message(0), guide
    return pullback_linear(h, k.matrix, k.offset, k.cov), None  # type: ignore[arg-type,union-attr]


def backward_filter(model: Model, sde_method: str = "auto", substeps: int = 1) -> Filtered:
    """Messages from the leaves to the root and the evidence at the root (see module docstring).

    `sde_method` and `substeps` choose the backward ODE solver of SDE edges (`backward_ode`).
    A DAG model (built with `Model.add_node`) gets the exact filter on sets of nodes
    (`condprob.bffg.dag`), which returns a `DagFiltered`.
    """
    if model.is_dag:
        from condprob.bffg.dag import backward_filter_dag

        return backward_filter_dag(model)  # type: ignore[return-value]
    model.validate()
    g = model.graph
    messages: dict[Hashable, Message] = {}
    pulled: dict[Edge, Message] = {}
    guides: dict[Edge, Guide] = {}
    for v in reversed(list(nx.topological_sort(g))):
        h = model.observation(v)
        for c in g.successors(v):
            m = pulled[v, c]
            h = m if h is None else h & m
        messages[v] = _uninformative(model, v) if h is None else h
        parents = list(g.predecessors(v))
        if parents:
            pulled[parents[0], v], guide = _pull(model, parents[0], v, messages[v], sde_method,
                                                 substeps)
            if guide is not None:
                guides[parents[0], v] = guide
    root = model.root
    prior, h = model.prior(), messages[root]
    evidence = None
    if isinstance(h, FiniteMessage):
        evidence = h.evidence(prior)  # type: ignore[arg-type]
        log_ev = h.log_evidence(prior)  # type: ignore[arg-type]
    elif isinstance(h, PointMessage):
        log_ev = prior.log_prob(h.value) + h.c
    else:
        log_ev = log_integral(h, prior.mean, prior.cov)  # type: ignore[union-attr]
    return Filtered(model, messages, pulled, guides, log_ev, evidence)


@dataclass
class WeightedSamples:
    """Guided samples with log-weights: node values (finite: outcome indices (n,); Euclidean:
    (n, d)), SDE paths per edge (n, N+1, d), the driving noise, and the auxiliary log evidence."""

    values: dict[Hashable, torch.Tensor]
    paths: dict[Edge, torch.Tensor]
    log_weights: torch.Tensor
    log_evidence_aux: torch.Tensor
    noise: dict[object, torch.Tensor] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.log_weights.shape[0]

    def weights(self) -> torch.Tensor:
        """Self-normalised weights w_i / sum w (all equal when every log-weight is 0)."""
        return torch.softmax(self.log_weights, 0)

    def ess(self) -> float:
        """Effective sample size (sum w)^2 / sum w^2."""
        lw = self.log_weights
        return float(torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)))

    def log_evidence(self) -> torch.Tensor:
        """Estimate of log p(y): `log <prior, h~_root> + log mean(w)`."""
        return self.log_evidence_aux + torch.logsumexp(self.log_weights, 0) - math.log(self.n)

    def mean(self, node: Hashable) -> torch.Tensor:
        """Weighted mean of a Euclidean node's value."""
        return self.weights() @ self.values[node]


def _noise(noise: dict, key: object, shape: tuple[int, ...],
           generator: torch.Generator | None) -> torch.Tensor:
    if key not in noise:
        noise[key] = torch.randn(*shape, dtype=torch.float64, generator=generator)
    z = noise[key]
    if tuple(z.shape) != shape:
        raise ValidationError(f"noise for {key!r} has shape {tuple(z.shape)}; expected {shape}")
    return z


def _sample_rows(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.multinomial(probs, 1, replacement=True, generator=generator)[:, 0]


def _gaussian_step(k: Morphism, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(k, NonlinearGaussian):
        return k.mean(x), k.cov(x)
    return x @ k.matrix.T + k.offset, k.cov  # type: ignore[union-attr]


def forward_guide(filtered: Filtered, n: int, seed: int | None = None,
                  generator: torch.Generator | None = None,
                  noise: dict[object, torch.Tensor] | None = None) -> WeightedSamples:
    """n guided samples of every node with their log-weights (see the module docstring).

    Euclidean randomness comes from standard normal `noise` (keys "root" and the edges), drawn
    from the generator where missing, so that pCN can move it; finite draws use the generator.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(seed if seed is not None else 0)
    model = filtered.model
    if model.is_dag:
        from condprob.bffg.dag import forward_guide_dag

        return forward_guide_dag(filtered, n, generator, noise)  # type: ignore[arg-type]
    noise = {} if noise is None else dict(noise)
    root = model.root
    prior, h = model.prior(), filtered.messages[root]
    values: dict[Hashable, torch.Tensor] = {}
    paths: dict[Edge, torch.Tensor] = {}
    if isinstance(h, FiniteMessage):
        guided = prior | h.predicate  # type: ignore[operator]
        values[root] = _sample_rows(B.to_float(guided.probs).expand(n, -1), generator)
    elif isinstance(h, PointMessage):
        values[root] = h.value.expand(n, -1)
    else:
        mu, cov = guided_gaussian(h, prior.mean, prior.cov)  # type: ignore[union-attr]
        z = _noise(noise, "root", (n, mu.shape[0]), generator)
        values[root] = mu + z @ psd_sqrt(cov).T
    logw = torch.zeros(n, dtype=torch.float64)
    for u, v in model.edges_top_down():
        k, aux = model.kernel(u, v), model.auxiliary(u, v)
        x, hv = values[u], filtered.messages[v]
        if isinstance(k, Kernel):
            G = guided_finite(k, hv)  # type: ignore[arg-type]
            values[v] = _sample_rows(B.to_float(G.matrix)[x], generator)
            if aux is not None:
                kh = pullback_finite(k, hv)  # type: ignore[arg-type]
                logw = logw + kh.log_h(x) - filtered.pulled[u, v].log_h(x)  # type: ignore
        elif isinstance(k, SDEKernel):
            grid = k.grid
            z = _noise(noise, (u, v), (n, grid.shape[0] - 1, k.noise_dim), generator)
            path, logpsi = guided_path(k, aux, filtered.guides[u, v], x, z)  # type: ignore[arg-type]
            paths[u, v] = path
            values[v] = path[:, -1]
            logw = logw + logpsi
        else:
            mean, cov = _gaussian_step(k, x)
            if isinstance(hv, PointMessage):
                values[v] = hv.value.expand(n, -1)
                if aux is not None:
                    logw = logw + _point_log_density(k, x, hv) - filtered.pulled[u, v].log_h(x)
                continue
            mu, qm = guided_gaussian(hv, mean, cov)
            z = _noise(noise, (u, v), (n, mu.shape[-1]), generator)
            values[v] = mu + (psd_sqrt(qm) @ z[..., None])[..., 0]
            if aux is not None:
                logw = logw + log_integral(hv, mean, cov) - filtered.pulled[u, v].log_h(x)
    return WeightedSamples(values, paths, logw, filtered.log_evidence, noise)


def _point_log_density(k: Morphism, x: torch.Tensor, h: PointMessage) -> torch.Tensor:
    """log of K(x)(v) exp(c) for an exactly observed child v, at each row of x."""
    if isinstance(k, NonlinearGaussian):
        return k.log_prob(x, h.value.expand(x.shape[0], -1)) + h.c
    return pullback_linear(h, k.matrix, k.offset, k.cov).log_h(x)  # type: ignore[union-attr]


def posterior_marginals(filtered: Filtered) -> dict[Hashable, Morphism]:
    """Exact posterior marginals of every node (finite `State` or `Gaussian`).

    The guided root prior * h_root pushed through the guided kernels with the core's `>>`; needs a
    model of finite and linear-Gaussian kernels without auxiliaries.
    """
    model = filtered.model
    if model.is_dag:
        from condprob.bffg.dag import posterior_marginals_dag

        return posterior_marginals_dag(filtered)  # type: ignore[arg-type]
    root = model.root
    prior, h = model.prior(), filtered.messages[root]
    out: dict[Hashable, Morphism] = {}
    if isinstance(h, FiniteMessage):
        out[root] = prior | h.predicate  # type: ignore[operator]
    elif isinstance(h, PointMessage):
        out[root] = Gaussian(h.value, torch.zeros(h.dim, h.dim, dtype=torch.float64), prior.cod)
    else:
        mu, cov = guided_gaussian(h, prior.mean, prior.cov)  # type: ignore[union-attr]
        out[root] = Gaussian(mu, cov, prior.cod, validate=False)
    for u, v in model.edges_top_down():
        k, hv = model.kernel(u, v), filtered.messages[v]
        if model.auxiliary(u, v) is not None or not isinstance(k, Kernel | LinearGaussian):
            raise TypeError(f"exact marginals need finite or linear-Gaussian kernels without "
                            f"auxiliaries; edge {u!r} -> {v!r} has {type(k).__name__}")
        if isinstance(k, Kernel):
            out[v] = out[u] >> guided_finite(k, hv)  # type: ignore[arg-type]
        elif isinstance(hv, PointMessage):
            out[v] = Gaussian(hv.value, torch.zeros(hv.dim, hv.dim, dtype=torch.float64), k.cod)
        else:
            out[v] = out[u] >> guided_linear(k, hv)  # type: ignore[arg-type]
    return out
