"""Exact BFFG on DAG models: messages on sets of nodes (variable elimination).

Nodes are eliminated in reverse topological order. At node v with kernel K(x_P, dx_v) from its
parents P, the message h_v(x_v, x_O) fuses v's observation with every message that still involves
v; O holds only nodes earlier in the order. Pulling it back gives a message on U = P | O,
  m_v(x_U) = integral of K(x_P, dx_v) h_v(x_v, x_O),
which replaces the fused ones; when every node is eliminated the remaining constants multiply to
the evidence p(y) (the roots' priors are the kernels out of the unit space). Shared ancestors
(diamonds) stay exact because a message keeps every node it depends on.

Forward guiding samples in topological order from K(x_P, dx_v) h_v(x_v, x_O) / m_v(x_U), given the
already sampled x_U: this is the exact conditional of x_v given everything before it, so every
log-weight is 0. Finite messages are tables with one axis per node (exact in the exact backend);
linear-Gaussian ones are canonical forms (c, F, H) over the stacked nodes, pulled back with the
tree rules applied to the kernel x_U -> (A x_P + b, x_O) whose covariance is diag(Q, 0). A node
observed exactly as y (`PointMessage`) sends exp(c) N(y; A x_P + b, Q) times the fused messages
evaluated at x_v = y.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch

from condprob import backend as B
from condprob.bffg.inference import WeightedSamples, _noise, _sample_rows
from condprob.bffg.messages import GaussianMessage, PointMessage, psd_sqrt
from condprob.bffg.model import Model
from condprob.bffg.rules import guided_gaussian, guided_linear, log_integral, pullback_linear
from condprob.errors import ConditioningError
from condprob.finite import State
from condprob.gaussian import Gaussian, LinearGaussian
from condprob.protocol import Morphism
from condprob.spaces import Euclidean

Array = torch.Tensor | np.ndarray


@dataclass
class TableMessage:
    """h(x_S) = exp(log_scale) * values[x_S] on an ordered set S of finite nodes, one axis each
    (float64 tensor, or an exact numpy object array with log_scale 0)."""

    nodes: tuple[Hashable, ...]
    values: Array
    log_scale: float = 0.0

    def aligned(self, nodes: Sequence[Hashable], exact: bool) -> Array:
        """The values broadcastable over `nodes` (a superset of self.nodes, in that order)."""
        inner = [n for n in nodes if n in self.nodes]
        a = B.permute(self.values, tuple(self.nodes.index(n) for n in inner))
        shape = [a.shape[inner.index(n)] if n in self.nodes else 1 for n in nodes]
        a = a.reshape(tuple(shape))
        return a if exact else B.to_float(a)


@dataclass
class SetGaussianMessage:
    """h(x_S) in canonical form over the stacked nodes S (an empty S carries only log mass c; an
    exactly observed node v has the point message itself on S = (v,))."""

    nodes: tuple[Hashable, ...]
    message: GaussianMessage | PointMessage | None
    c: torch.Tensor


@dataclass
class DagFiltered:
    """Result of the backward filter on a DAG model: per node v the fused message h_v (on v and
    the earlier nodes it depends on) and the pulled message m_v (on U_v = parents | those nodes),
    and the evidence log p(y) (exact value in the exact backend)."""

    model: Model
    order: list[Hashable]
    messages: dict[Hashable, TableMessage | SetGaussianMessage]
    pulled: dict[Hashable, TableMessage | SetGaussianMessage]
    log_evidence: torch.Tensor
    evidence: object = None

    @property
    def exact(self) -> bool:
        """Always True: DAG models hold exact kernels only, so log-weights are 0."""
        return True

    def scope(self, v: Hashable) -> tuple[Hashable, ...]:
        """U_v: the nodes the guided kernel of v is conditioned on, in topological order."""
        return self.pulled[v].nodes


def _ordered(nodes: set[Hashable], rank: dict[Hashable, int]) -> tuple[Hashable, ...]:
    return tuple(sorted(nodes, key=rank.__getitem__))


# Finite -------------------------------------------------------------------------------------
def _kernel_table(model: Model, v: Hashable) -> TableMessage:
    """K(x_P, x_v) as a table on (*P, v)."""
    kernel, parents = model.node_kernel(v)
    shape = tuple(model.space(p).size for p in parents) + (model.space(v).size,)
    return TableMessage((*parents, v), kernel.matrix.reshape(shape))


def _table_product(tables: list[TableMessage], nodes: tuple[Hashable, ...],
                   exact: bool) -> TableMessage:
    out = tables[0].aligned(nodes, exact)
    for t in tables[1:]:
        out = out * t.aligned(nodes, exact)
    return TableMessage(nodes, out, sum(t.log_scale for t in tables))


def _normalised(t: TableMessage) -> TableMessage:
    if B.is_exact(t.values):
        return t
    top = t.values.max() if t.values.numel() else torch.tensor(0.0)
    if top <= 0 or not torch.isfinite(top):
        return t
    return TableMessage(t.nodes, t.values / top, t.log_scale + math.log(top.item()))


def _finite_obs(model: Model, v: Hashable) -> TableMessage | None:
    obs = model.observation(v)
    return None if obs is None else TableMessage((v,), obs.predicate.values, obs.log_scale)


def _filter_finite(model: Model, order: list[Hashable], rank: dict[Hashable, int]) -> DagFiltered:
    exact = all(model.node_kernel(v)[0].exact for v in order)
    exact = exact and all(B.is_exact(o.predicate.values) for v in order
                          if (o := model.observation(v)) is not None)
    active: list[TableMessage] = []
    messages: dict[Hashable, TableMessage] = {}
    pulled: dict[Hashable, TableMessage] = {}
    for v in reversed(order):
        mine = [t for t in active if v in t.nodes]
        active = [t for t in active if v not in t.nodes]
        obs = _finite_obs(model, v)
        parts = mine if obs is None else [obs, *mine]
        others = set().union(*(t.nodes for t in parts)) - {v}
        scope = (v, *_ordered(others, rank))
        if parts:
            h = _normalised(_table_product(parts, scope, exact))
        else:
            size = model.space(v).size
            h = TableMessage(scope, B.to_exact([1] * size) if exact else
                             torch.ones(size, dtype=torch.float64))
        messages[v] = h
        k = _kernel_table(model, v)
        union = _ordered(set(k.nodes) | set(scope), rank)
        joint = _table_product([k, h], union, exact)
        axis = union.index(v)
        m = TableMessage(union[:axis] + union[axis + 1:], B.total(joint.values, axis),
                         joint.log_scale)
        pulled[v] = m = _normalised(m)
        active.append(m)
    value, log_scale = 1, 0.0
    for t in active:
        value, log_scale = value * t.values, log_scale + t.log_scale
    if exact:
        evidence = B.unwrap(value)
        log_ev = torch.log(torch.tensor(float(evidence), dtype=torch.float64))
    else:
        evidence = value * math.exp(log_scale)
        log_ev = torch.log(torch.as_tensor(value, dtype=torch.float64)) + log_scale
    return DagFiltered(model, order, messages, pulled, log_ev, evidence)  # type: ignore[arg-type]


def _guided_table(filtered: DagFiltered, v: Hashable) -> Array:
    """G(x_U, x_v) = K(x_P, x_v) h_v(x_v, x_O) / m_v(x_U) on (*U, v); rows with m_v = 0 (never
    reached) are 0."""
    h, m = filtered.messages[v], filtered.pulled[v]
    exact = B.is_exact(h.values)
    joint = _table_product([_kernel_table(filtered.model, v), h], (*m.nodes, v), exact).values
    return B.safe_divide(joint, B.total(joint, -1, keepdim=True),
                         lambda: B.zeros(tuple(joint.shape), like=joint))


# Gaussian -----------------------------------------------------------------------------------
def _blocks(model: Model, nodes: Sequence[Hashable]) -> dict[Hashable, slice]:
    out, start = {}, 0
    for n in nodes:
        d = model.space(n).dim
        out[n] = slice(start, start + d)
        start += d
    return out


def _embed(msg: SetGaussianMessage, nodes: tuple[Hashable, ...], model: Model,
           ) -> GaussianMessage:
    """The message as a canonical form over `nodes` (a nonempty superset of its own)."""
    dst = _blocks(model, nodes)
    d = sum(model.space(n).dim for n in nodes)
    F = torch.zeros(d, dtype=torch.float64)
    H = torch.zeros(d, d, dtype=torch.float64)
    if msg.nodes:
        idx = torch.cat([torch.arange(dst[n].start, dst[n].stop) for n in msg.nodes])
        F[idx] = msg.message.F
        H[idx[:, None], idx[None, :]] = msg.message.H
    return GaussianMessage(msg.c, F, H, validate=False)


def _fuse(parts: list[SetGaussianMessage], nodes: tuple[Hashable, ...],
          model: Model) -> SetGaussianMessage:
    """The product of messages on subsets of `nodes`, as one message on `nodes`."""
    if not nodes:
        return SetGaussianMessage((), None, sum((t.c for t in parts),
                                                torch.zeros((), dtype=torch.float64)))
    h = GaussianMessage.uninformative(sum(model.space(n).dim for n in nodes))
    for t in parts:
        h = h & _embed(t, nodes, model)
    return SetGaussianMessage(nodes, h, h.c)


def _point_pullback(model: Model, v: Hashable, obs: PointMessage, mine: list[SetGaussianMessage],
                    rank: dict[Hashable, int]) -> SetGaussianMessage:
    """x_v observed exactly as y: m(x_U) = exp(c) N(y; A x_P + b, Q) prod_t t(y, x_O), every
    fused message t evaluated at x_v = y (a message on its other nodes)."""
    kernel, parents = model.node_kernel(v)
    y, dv = obs.value, obs.dim
    if parents:
        pm = pullback_linear(obs, kernel.matrix, kernel.offset, kernel.cov)
        parts = [SetGaussianMessage(parents, pm, pm.c)]
    else:
        parts = [SetGaussianMessage((), None, kernel.log_prob(y) + obs.c)]
    for t in mine:
        rest = tuple(n for n in t.nodes if n != v)
        full = _embed(t, (v, *rest), model)
        c = full.c + y @ full.F[:dv] - 0.5 * y @ full.H[:dv, :dv] @ y
        at = GaussianMessage(c, full.F[dv:] - full.H[dv:, :dv] @ y, full.H[dv:, dv:],
                             validate=False) if rest else None
        parts.append(SetGaussianMessage(rest, at, c))
    nodes = _ordered(set().union(*(t.nodes for t in parts)), rank)
    return _fuse(parts, nodes, model)


def _extended(model: Model, v: Hashable, h_nodes: tuple[Hashable, ...],
              u_nodes: tuple[Hashable, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, b, Q) of x_U -> N((A_v x_P + b_v, x_O), diag(Q_v, 0)) onto the stacked h_nodes."""
    kernel, parents = model.node_kernel(v)
    src, dst = _blocks(model, u_nodes), _blocks(model, h_nodes)
    n = dst[h_nodes[-1]].stop
    d = src[u_nodes[-1]].stop if u_nodes else 0
    A = torch.zeros(n, d, dtype=torch.float64)
    b = torch.zeros(n, dtype=torch.float64)
    Q = torch.zeros(n, n, dtype=torch.float64)
    col = 0
    for p in parents:
        w = model.space(p).dim
        A[dst[v], src[p]] = kernel.matrix[:, col:col + w]
        col += w
    for o in h_nodes[1:]:
        A[dst[o], src[o]] = torch.eye(model.space(o).dim, dtype=torch.float64)
    b[dst[v]] = kernel.offset
    Q[dst[v], dst[v]] = kernel.cov
    return A, b, Q


def _filter_gaussian(model: Model, order: list[Hashable], rank: dict[Hashable, int],
                     ) -> DagFiltered:
    active: list[SetGaussianMessage] = []
    messages: dict[Hashable, SetGaussianMessage] = {}
    pulled: dict[Hashable, SetGaussianMessage] = {}
    log_ev = torch.zeros((), dtype=torch.float64)
    for v in reversed(order):
        mine = [t for t in active if v in t.nodes]
        active = [t for t in active if v not in t.nodes]
        obs = model.observation(v)
        if isinstance(obs, PointMessage):
            messages[v] = SetGaussianMessage((v,), obs, obs.c)  # type: ignore[arg-type]
            m = _point_pullback(model, v, obs, mine, rank)
        else:
            parts = mine if obs is None else [SetGaussianMessage((v,), obs, obs.c), *mine]
            others = set().union(*(t.nodes for t in parts)) - {v}
            scope = (v, *_ordered(others, rank))
            messages[v] = fused = _fuse(parts, scope, model)
            parents = model.node_kernel(v)[1]
            u_nodes = _ordered(set(parents) | set(scope[1:]), rank)
            A, b, Q = _extended(model, v, scope, u_nodes)
            if u_nodes:
                pm = pullback_linear(fused.message, A, b, Q)
                m = SetGaussianMessage(u_nodes, pm, pm.c)
            else:
                m = SetGaussianMessage((), None, log_integral(fused.message, b, Q))
        pulled[v] = m
        if m.nodes:
            active.append(m)
        else:
            log_ev = log_ev + m.c
    return DagFiltered(model, order, messages, pulled, log_ev)  # type: ignore[arg-type]


def _guided_affine(filtered: DagFiltered, v: Hashable,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(G, g, S): the guided law of x_v given x_U is N(G x_U + g, S)."""
    model = filtered.model
    h, u_nodes = filtered.messages[v], filtered.scope(v)
    dv = model.space(v).dim
    if isinstance(h.message, PointMessage):
        du = sum(model.space(u).dim for u in u_nodes)
        zeros = torch.zeros(dv, dv, dtype=torch.float64)
        return torch.zeros(dv, du, dtype=torch.float64), h.message.value, zeros
    A, b, Q = _extended(model, v, h.nodes, u_nodes)
    if not u_nodes:
        mu, cov = guided_gaussian(h.message, b, Q)
        return torch.zeros(dv, 0, dtype=torch.float64), mu[:dv], cov[:dv, :dv]
    ext = LinearGaussian(A, b, Q, Euclidean(A.shape[1]), Euclidean(A.shape[0]), validate=False)
    g = guided_linear(ext, h.message)
    return g.matrix[:dv], g.offset[:dv], g.cov[:dv, :dv]


def _check_possible(filtered: DagFiltered) -> None:
    if filtered.log_evidence.item() == -math.inf:
        raise ConditioningError("the observations", "they have probability zero under the model")


# Public -------------------------------------------------------------------------------------
def backward_filter_dag(model: Model) -> DagFiltered:
    """Exact backward filter of a DAG model (see the module docstring)."""
    model.validate()
    order = list(nx.topological_sort(model.graph))
    rank = {v: i for i, v in enumerate(order)}
    if isinstance(model.node_kernel(order[0])[0], State):
        return _filter_finite(model, order, rank)
    return _filter_gaussian(model, order, rank)


def forward_guide_dag(filtered: DagFiltered, n: int, generator: torch.Generator,
                      noise: dict[object, torch.Tensor] | None = None) -> WeightedSamples:
    """n exact guided samples of every node in topological order; every log-weight is 0.

    Gaussian randomness comes from standard normal `noise` keyed by node (drawn where missing).
    """
    _check_possible(filtered)
    noise = {} if noise is None else dict(noise)
    values: dict[Hashable, torch.Tensor] = {}
    finite = isinstance(filtered.messages[filtered.order[0]], TableMessage)
    for v in filtered.order:
        u_nodes = filtered.scope(v)
        if finite:
            table = B.to_float(_guided_table(filtered, v))
            probs = table[tuple(values[u] for u in u_nodes)] if u_nodes else \
                table.expand(n, -1)
            values[v] = _sample_rows(probs, generator)
        else:
            G, g, S = _guided_affine(filtered, v)
            x = torch.cat([values[u] for u in u_nodes], -1) if u_nodes else \
                torch.zeros(n, 0, dtype=torch.float64)
            z = _noise(noise, v, (n, g.shape[0]), generator)
            values[v] = x @ G.T + g + z @ psd_sqrt(S).T
    return WeightedSamples(values, {}, torch.zeros(n, dtype=torch.float64),
                           filtered.log_evidence, noise)


def _needed_after(filtered: DagFiltered) -> dict[Hashable, int]:
    """For each node, the position of the last guided kernel conditioned on it."""
    last = {v: i for i, v in enumerate(filtered.order)}
    for i, v in enumerate(filtered.order):
        for u in filtered.scope(v):
            last[u] = max(last[u], i)
    return last


def posterior_marginals_dag(filtered: DagFiltered) -> dict[Hashable, Morphism]:
    """Exact posterior marginals: the guided kernels chained forward on the joint law of the
    nodes that later kernels are conditioned on (exact values in the exact backend)."""
    _check_possible(filtered)
    model, last = filtered.model, _needed_after(filtered)
    out: dict[Hashable, Morphism] = {}
    if isinstance(filtered.messages[filtered.order[0]], TableMessage):
        exact = B.is_exact(filtered.messages[filtered.order[0]].values)
        one = B.to_exact([1]).reshape(()) if exact else torch.ones((), dtype=torch.float64)
        joint = TableMessage((), one)
        for i, v in enumerate(filtered.order):
            nodes = (*joint.nodes, v)
            g = TableMessage((*filtered.scope(v), v), _guided_table(filtered, v))
            joint = _table_product([joint, g], nodes, exact)
            probs = B.total(joint.values, tuple(range(len(nodes) - 1))) if len(nodes) > 1 \
                else joint.values
            out[v] = State(probs, model.space(v))
            drop = tuple(j for j, u in enumerate(nodes) if last[u] <= i)
            keep = tuple(u for u in nodes if last[u] > i)
            joint = TableMessage(keep, B.total(joint.values, drop) if drop else joint.values)
        return out
    nodes: list[Hashable] = []
    mean = torch.zeros(0, dtype=torch.float64)
    cov = torch.zeros(0, 0, dtype=torch.float64)
    for i, v in enumerate(filtered.order):
        G, g, S = _guided_affine(filtered, v)
        blocks = _blocks(model, nodes)
        idx = torch.cat([torch.arange(blocks[u].start, blocks[u].stop)
                         for u in filtered.scope(v)] + [torch.zeros(0, dtype=torch.long)])
        W = torch.zeros(g.shape[0], mean.shape[0], dtype=torch.float64)
        W[:, idx] = G
        cross = W @ cov
        mean = torch.cat([mean, W @ mean + g])
        cov = torch.cat([torch.cat([cov, cross.T], 1),
                         torch.cat([cross, cross @ W.T + S], 1)], 0)
        nodes.append(v)
        dv = g.shape[0]
        vc = cov[-dv:, -dv:]
        out[v] = Gaussian(mean[-dv:], (vc + vc.T) / 2, model.space(v), validate=False)
        blocks = _blocks(model, nodes)
        keep = [u for u in nodes if last[u] > i]
        kidx = torch.cat([torch.arange(blocks[u].start, blocks[u].stop) for u in keep]
                         + [torch.zeros(0, dtype=torch.long)])
        nodes, mean, cov = keep, mean[kidx], cov[kidx[:, None], kidx[None, :]]
    return out
