"""The chain engine: one semiring-generic dynamic program over linear chains.

A `Chain` holds the log-potentials of a distribution over state sequences y_1..y_n (n = the number
of unmasked positions of each batch element):

    p(y) = exp(score(y) - log Z),   score(y) = start[y_1] + sum_t unary[t, y_t]
                                               + sum_{t>1} pairwise[t, y_{t-1}, y_t] + end[y_n].

Masked positions are skipped (the chain links each kept position to the previous kept one), so
right padding, left padding and arbitrary masks are all exact. A potential of -inf forbids a state
or a step; a sequence that uses one has log-probability exactly -inf.

One recursion, `semiring_forward`, serves every semiring of `condprob.semiring`: log partition,
k-best, entropy. `log_partition` and `marginals` use a scaled forward-backward in linear space
(one GEMM per step over the whole batch, in the potentials' precision, one rescaling per step, so
it is stable for chains of any length; the loops run in numpy on CPU, written in place, with no
per-step allocation) whose gradient is the marginals; rows whose scaled recursion underflows are
recomputed by the log-space recursion, so -inf means an impossible chain and nothing else.
`viterbi` keeps max values only (in place) and recomputes the argmax along the chosen path. `sample` is exact forward filtering, backward sampling. On a GPU backend
(`condprob.accel`), log partition, marginals and Viterbi of chains with one shared transition
matrix run as Triton kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from condprob import accel
from condprob.errors import ConditioningError, ValidationError
from condprob.semiring import EntropySemiring, KMaxSemiring, LogSemiring, Semiring

PAD = -1
"""The state index written at masked positions of decoded and sampled paths."""


def _check_potential(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValidationError(f"{name} must be a floating-point tensor, got {type(x).__name__}"
                              + (f" of dtype {x.dtype}" if isinstance(x, Tensor) else ""))
    with torch.no_grad():
        total = float(x.sum())  # NaN or +inf iff x holds NaN or +inf (or overflows: look closer)
        if not (math.isnan(total) or total == math.inf):
            return
        bad = bool((torch.isnan(x) | torch.isposinf(x)).any())
    if bad:
        raise ValidationError(f"{name} contains NaN or +inf; log-potentials must be < +inf "
                              "(-inf forbids a state or step)")


@dataclass(frozen=True)
class Chain:
    """Log-potentials of a batch of linear chains over `S` states.

    - unary: (*batch, T, S), the score of state j at position t;
    - pairwise: (S, S) or (*batch, S, S) for every step, or (*batch, T, S, S) where
      pairwise[..., t, i, j] scores the step from state i at the previous kept position to state j
      at position t (entry t = 0 is unused);
    - start, end: (S,) or (*batch, S), scores of the first and last state (default 0);
    - mask: (*batch, T) bool, the kept positions (default all); every chain keeps at least one.
    """

    unary: Tensor
    pairwise: Tensor
    start: Tensor | None = None
    end: Tensor | None = None
    mask: Tensor | None = None

    def __post_init__(self) -> None:
        _check_potential("unary", self.unary)
        _check_potential("pairwise", self.pairwise)
        if self.unary.dim() < 2:
            raise ValidationError(f"unary must have shape (*batch, T, S), got {tuple(self.unary.shape)}")
        *batch, steps, states = self.unary.shape
        if steps < 1 or states < 1:
            raise ValidationError(f"unary needs T >= 1 and S >= 1, got {tuple(self.unary.shape)}")
        p = self.pairwise
        ok = p.shape[-2:] == (states, states) and p.dim() in (2, 2 + len(batch), 3 + len(batch))
        if ok and p.dim() == 2 + len(batch) and p.dim() > 2:
            ok = tuple(p.shape[:-2]) == tuple(batch)
        if ok and p.dim() == 3 + len(batch):
            ok = tuple(p.shape[:-2]) == (*batch, steps)
        if not ok:
            raise ValidationError(
                f"pairwise must have shape (S, S), (*batch, S, S) or (*batch, T, S, S) with "
                f"batch={tuple(batch)}, T={steps}, S={states}; got {tuple(p.shape)}")
        for name in ("start", "end"):
            v = getattr(self, name)
            if v is None:
                continue
            _check_potential(name, v)
            if v.shape not in ((states,), (*batch, states)):
                raise ValidationError(f"{name} must have shape (S,) or (*batch, S) = "
                                      f"{(*batch, states)}, got {tuple(v.shape)}")
        if self.mask is not None:
            if self.mask.dtype != torch.bool or tuple(self.mask.shape) != (*batch, steps):
                raise ValidationError(f"mask must be a bool tensor of shape {(*batch, steps)}, got "
                                      f"{self.mask.dtype} {tuple(self.mask.shape)}")
            empty = ~self.mask.reshape(-1, steps).any(-1)
            if bool(empty.any()):
                raise ValidationError(f"mask keeps no position in batch element(s) "
                                      f"{empty.nonzero().flatten().tolist()} (flattened index)")

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.unary.shape[:-2])

    @property
    def num_steps(self) -> int:
        return self.unary.shape[-2]

    @property
    def num_states(self) -> int:
        return self.unary.shape[-1]


def lengths_to_mask(lengths: Tensor, steps: int) -> Tensor:
    """The right-padding mask (*batch, steps) of sequences with the given lengths."""
    return torch.arange(steps, device=lengths.device) < lengths.unsqueeze(-1)


@dataclass(frozen=True)
class _Compact:
    """A chain flattened to one batch dimension, its kept positions moved to the front.

    The pairwise potentials take one shape, whichever of the three the caller gave:
    (Bp, Tp, S, S) with Bp = 1 (shared by the batch) or B, and Tp = 1 (shared by the steps) or T.
    `sel` turns batch rows and steps into indices of that tensor, so that no other function
    looks at which of the three shapes it is.
    """

    unary: Tensor  # (B, T, S)
    pairwise: Tensor  # (Bp, Tp, S, S)
    start: Tensor  # (B, S)
    end: Tensor  # (B, S)
    lengths: Tensor  # (B,)
    order: Tensor | None  # (B, T): original position of each compact position; None if a prefix
    batch_shape: tuple[int, ...]

    @cached_property
    def full(self) -> bool:
        """Whether every chain keeps all T positions."""
        return bool((self.lengths == self.unary.shape[1]).all())

    def sel(self, rows, steps):
        """Indices of pairwise's first two dimensions for batch rows and steps (tensors, arrays
        or ints): the indices themselves where pairwise has the dimension, 0 where it is shared."""
        bp, tp = self.pairwise.shape[:2]
        return (rows if bp > 1 else 0), (steps if tp > 1 else 0)

    def pair(self, t: int) -> Tensor:
        """(Bp, S, S): the potentials of the step into position t."""
        return self.pairwise[:, self.sel(None, t)[1]]

    def pair_rows(self, idx: Tensor) -> Tensor:
        """The rows of pairwise that batch rows idx use."""
        return idx if self.pairwise.shape[0] > 1 else idx.new_zeros(1)

    @property
    def matrix(self) -> Tensor | None:
        """The (S, S) matrix of every step of every chain, or None when they differ."""
        return self.pairwise[0, 0] if self.pairwise.shape[:2] == (1, 1) else None

    def valid(self) -> Tensor:
        """(B, T) bool: compact positions inside the sequence."""
        return lengths_to_mask(self.lengths, self.unary.shape[1])

    def rows(self, idx: Tensor, dtype: torch.dtype | None = None) -> _Compact:
        """Batch rows idx (potentials converted to dtype, differentiably, when given)."""
        pots = (self.unary[idx], self.pairwise[self.pair_rows(idx)], self.start[idx],
                self.end[idx])
        if dtype is not None:
            pots = tuple(x.to(dtype) for x in pots)
        return _Compact(*pots, self.lengths[idx], None, (int(idx.numel()),))

    def kept(self) -> Tensor:
        """The unary potentials with those of masked positions set to 0 (which no path reads)."""
        return self.unary if self.full else self.unary.masked_fill(~self.valid()[..., None], 0.0)

    def wide(self, idx: Tensor) -> tuple[Tensor, _Compact] | None:
        """(rows, those rows in float64, differentiably): the rows of idx whose unary scores at
        each position span less than float64's range (others, such as soft masks of -1e4,
        would fail again); None when there are none or the potentials already are float64."""
        if _work_dtype(self.unary) == torch.float64:
            return None
        u = self.kept()[idx].detach()
        spread = u.amax(-1) - u.masked_fill(u == -math.inf, math.inf).amin(-1)   # (K, T)
        idx = idx[spread.amax(-1) < -math.log(torch.finfo(torch.float64).tiny)]
        if not idx.numel():
            return None
        return idx, self.rows(idx, torch.float64)

    def expand(self, values: Tensor, fill: float | int) -> Tensor:
        """Put per-position values (B, T, ...) back at their original positions, shaped
        (*batch, T, ...), with `fill` at masked positions."""
        if not self.full:
            valid = self.valid().reshape(*self.valid().shape, *([1] * (values.dim() - 2)))
            values = torch.where(valid, values, torch.full_like(values, fill))
        if self.order is not None:
            out = torch.full_like(values, fill)
            idx = self.order.reshape(*self.order.shape, *([1] * (values.dim() - 2)))
            values = out.scatter(1, idx.expand_as(values), values)
        return values.reshape(*self.batch_shape, *values.shape[1:])


def _compact(chain: Chain) -> _Compact:
    batch = chain.batch_shape
    steps, states = chain.num_steps, chain.num_states
    unary = chain.unary.reshape(-1, steps, states)
    n = unary.shape[0]
    p = chain.pairwise.to(unary.dtype)
    timed = p.dim() == 3 + len(batch)
    pw = p.reshape(n if p.dim() > 2 else 1, steps if timed else 1, states, states)
    zeros = unary.new_zeros(states)

    def edge(v: Tensor | None) -> Tensor:
        v = zeros if v is None else v.to(unary.dtype)
        return v.expand(*batch, states).reshape(n, states)

    start, end = edge(chain.start), edge(chain.end)
    if chain.mask is None:
        lengths = torch.full((n,), steps, dtype=torch.long, device=unary.device)
        return _Compact(unary, pw, start, end, lengths, None, batch)
    mask = chain.mask.reshape(n, steps)
    lengths = mask.sum(-1)
    if bool((mask == lengths_to_mask(lengths, steps)).all()):
        return _Compact(unary, pw, start, end, lengths, None, batch)
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
    unary = unary.gather(1, order.unsqueeze(-1).expand_as(unary))
    if timed:
        pw = pw.gather(1, order[:, :, None, None].expand_as(pw))
    return _Compact(unary, pw, start, end, lengths, order, batch)


def _array_module(x: Tensor):
    """numpy for CPU tensors (its per-call overhead is a fraction of torch's, and these loops
    make hundreds of small calls), torch elsewhere; `_arrays` gives the matching views."""
    return np if x.device.type == "cpu" else torch


def _arrays(xp, *tensors: Tensor):
    return [x.numpy() if xp is np else x for x in tensors]


def _elementwise(xp):
    """(multiply, divide) of module xp called as f(a, b, out): numpy's ufuncs take `out`
    positionally, which costs less per call than the keyword; torch's take it by keyword only."""
    if xp is np:
        return np.multiply, np.divide
    return (lambda a, b, out: torch.mul(a, b, out=out)), (lambda a, b, out: torch.div(a, b, out=out))


def _per_step(m, steps: int) -> list:
    """The slice m[:, t] (Bp, ...) of pairwise-shaped m (Bp, Tp, ...) for each step t < steps
    (the one slice throughout when Tp = 1), chosen once instead of in every step of a loop."""
    return [m[:, t] for t in range(steps)] if m.shape[1] > 1 else [m[:, 0]] * steps


def _step_products(xp, m, steps: int):
    """For matrices m (Bp, Tp, K, N) (an array of module xp): the matrix of each step t < steps
    and the product `gemm(x, m_t, out)`, out = x @ m_t for rows x (B, K). A matrix shared by the
    batch takes one GEMM per step; per-chain matrices a batched product."""
    per = _per_step(m, steps)
    if m.shape[0] == 1:
        mats = [m[0, 0]] * steps if m.shape[1] == 1 else [x[0] for x in per]
        if xp is np:  # np.dot: the least overhead per call for 2-D products; `out` positionally
            return mats, np.dot

        def gemm(x, mt, out):
            torch.matmul(x, mt, out=out)

        return mats, gemm

    def gemm_batched(x, mt, out):
        xp.matmul(x[:, None], mt, out=out[:, None])

    return per, gemm_batched


# The generic recursion --------------------------------------------------------------------------

@dataclass
class _Forward:
    value: Tensor  # (size, B): the semiring sum over all paths
    final_bp: Tensor | None  # (size, B): flat (rank * S + state) of the last state
    backpointers: list[Tensor]  # per t >= 1: (size, B, S) flat (rank * S + previous state)
    history: list[Tensor]  # per t: (size, B, S) forward values (frozen after each length)


def _recursion(c: _Compact, sr: Semiring, keep_history: bool = False) -> _Forward:
    steps = c.unary.shape[1]
    alpha = sr.lift(c.start + c.unary[:, 0])
    bps: list[Tensor] = []
    history = [alpha] if keep_history else []
    for t in range(1, steps):
        inner, bp = sr.sum(sr.weight(alpha.unsqueeze(-1), c.pair(t)), -2)
        new = sr.weight(inner, c.unary[:, t])
        alpha = new if c.full else torch.where((t < c.lengths)[:, None], new, alpha)
        if bp is not None:
            bps.append(bp)
        if keep_history:
            history.append(alpha)
    value, final_bp = sr.sum(sr.weight(alpha, c.end), -1)
    return _Forward(value, final_bp, bps, history)


def semiring_forward(chain: Chain, semiring: Semiring) -> Tensor:
    """The semiring sum over all paths of the chain: shape (semiring.size, *batch)."""
    c = _compact(chain)
    value = _recursion(c, semiring).value
    return value.reshape(value.shape[0], *c.batch_shape)


def _backtrack(c: _Compact, fwd: _Forward) -> Tensor:
    """Paths (size, B, T) (compact positions) from the backpointers of a k-max recursion."""
    states = c.unary.shape[-1]
    steps = c.unary.shape[1]
    rank, state = fwd.final_bp // states, fwd.final_bp % states
    rows = torch.arange(c.unary.shape[0], device=c.unary.device)
    out = []
    for t in range(steps - 1, -1, -1):
        if t < steps - 1:
            inside = (t < c.lengths - 1).unsqueeze(0)
            flat = fwd.backpointers[t][rank, rows, state]
            rank = torch.where(inside, flat // states, rank)
            state = torch.where(inside, flat % states, state)
        out.append(state)
    return torch.stack(out[::-1], -1)


def _impossible(value: Tensor) -> Tensor:
    return torch.isneginf(value.reshape(-1))


def _raise_impossible(bad: Tensor) -> None:
    if bool(bad.any()):
        raise ConditioningError(
            "the chain's paths", f"every path has weight zero in batch element(s) "
            f"{bad.nonzero().flatten().tolist()} (flattened index): a kept position forbids "
            "every state (all its potentials -inf), or the constraints leave no path")


def _max_history(c: _Compact) -> Tensor:
    """The max-forward values (T, B, S): the best score of a path that ends in state j at
    position t. Written in place (no per-step allocation); positions past a chain's length hold
    values nothing reads. The arrival states are padded with -inf to a multiple of 32, which
    lets torch's max over the previous state run vectorised (several times faster for, e.g.,
    20 or 48 states)."""
    u = c.unary.transpose(0, 1)
    steps, batch, states = u.shape
    padded = -(-states // 32) * 32
    pair = c.pairwise.new_full((*c.pairwise.shape[:3], padded), float("-inf"))
    pair[..., :states] = c.pairwise
    h = torch.empty(steps, batch, padded, dtype=u.dtype, device=u.device)
    buf = u.new_empty(batch, states, padded)
    hs, kept, us = h.unbind(0), h[..., :states].unbind(0), u.unbind(0)
    pairs = _per_step(pair, steps)
    torch.add(c.start, us[0], out=kept[0])
    for t in range(1, steps):
        torch.add(kept[t - 1].unsqueeze(-1), pairs[t], out=buf)
        torch.amax(buf, -2, out=hs[t])
        kept[t].add_(us[t])
    return h[..., :states]


def viterbi(chain: Chain) -> tuple[Tensor, Tensor]:
    """The best path: (score (*batch,), states (*batch, T) with `PAD` at masked positions).

    The forward pass keeps only max values; the backtrace recomputes each argmax for the chosen
    state alone. Raises ConditioningError when a chain has no path of positive weight. The score
    is differentiable (its gradient selects the best path) when the potentials require grad.
    """
    c = _compact(chain)
    if c.matrix is not None and accel.chain_kernels_apply(c.unary, c.matrix):
        from condprob.accel import chain_kernels

        best, paths = chain_kernels.viterbi(c.unary, c.matrix, c.start, c.end, c.lengths)
        _raise_impossible(torch.isneginf(best))
        return best.to(c.unary.dtype).reshape(c.batch_shape), c.expand(paths, PAD)
    with torch.no_grad():
        h = _max_history(c)
        rows = torch.arange(h.shape[1], device=h.device)
        last = h[c.lengths - 1, rows] + c.end
        best = last.amax(-1)
        _raise_impossible(_impossible(best))
        paths = _backtrace(c, h, last)
    if torch.is_grad_enabled() and any(x.requires_grad for x in (chain.unary, chain.pairwise,
                                                                 chain.start, chain.end)
                                       if x is not None):
        best = _compact_score(c, paths)
    return best.reshape(c.batch_shape), c.expand(paths, PAD)


def _backtrace(c: _Compact, history: Tensor, last: Tensor) -> Tensor:
    """Viterbi paths (B, T) from the max-forward values history (T, B, S) and the final scores
    `last` (B, S), recomputing each argmax for the chosen state only. On CPU the loop runs in
    numpy, whose per-operation overhead is a fraction of torch's for these small (B, S) steps;
    the arithmetic is the same. Paths are written into one array, from the end."""
    xp = _array_module(history)
    h, into, lengths, last = _arrays(xp, history.detach(),
                                     c.pairwise.transpose(-1, -2).contiguous(), c.lengths, last)
    steps, batch = h.shape[:2]
    rows = xp.arange(batch) if xp is np else torch.arange(batch, device=history.device)
    mats = _per_step(into, steps)
    if into.shape[0] == 1:
        mats = [m[0] for m in mats]
        pick = None
    else:
        pick = rows
    paths = (np.empty((batch, steps), dtype=np.int64) if xp is np
             else torch.empty(batch, steps, dtype=torch.long, device=history.device))
    state = last.argmax(-1)
    paths[:, -1] = state
    for t in range(steps - 2, -1, -1):
        step = mats[t + 1][state] if pick is None else mats[t + 1][pick, state]
        best = (h[t] + step).argmax(-1)
        state = best if c.full else xp.where(t < lengths - 1, best, state)
        paths[:, t] = state
    return torch.from_numpy(paths) if xp is np else paths


def kbest(chain: Chain, k: int) -> tuple[Tensor, Tensor]:
    """The k best distinct paths: (scores (k, *batch), states (k, *batch, T)), best first.

    Where a chain has fewer than k paths of positive weight, the missing ones have score -inf and
    states `PAD` throughout.
    """
    c = _compact(chain)
    fwd = _recursion(c, KMaxSemiring(k))
    _raise_impossible(_impossible(fwd.value[0]))
    paths = _backtrack(c, fwd)
    missing = torch.isneginf(fwd.value).unsqueeze(-1)
    paths = torch.where(missing, torch.full_like(paths, PAD), paths)
    out = torch.stack([c.expand(p, PAD) for p in paths])
    return fwd.value.reshape(k, *c.batch_shape), out


def entropy(chain: Chain) -> Tensor:
    """The entropy H(p) = -sum_y p(y) log p(y) of each chain's path distribution, in nats."""
    c = _compact(chain)
    value = _recursion(c, EntropySemiring()).value
    _raise_impossible(_impossible(value[0]))
    return value[1].reshape(c.batch_shape)


def _at_last(c: _Compact, x: Tensor) -> Tensor:
    """x[b, length_b - 1] of per-position values x (B, T, ...): each chain's last position."""
    if c.full:
        return x[:, -1]
    return x[torch.arange(x.shape[0], device=x.device), c.lengths - 1]


def _compact_score(c: _Compact, y: Tensor) -> Tensor:
    """score of compact state sequences y (B, T), states in [0, S) (anything past a length)."""
    steps = c.unary.shape[1]
    valid = None if c.full else c.valid()

    def kept(x: Tensor, v: Tensor | None) -> Tensor:
        return x if v is None else torch.where(v, x, x.new_zeros(()))

    total = kept(c.unary.gather(2, y.unsqueeze(-1)).squeeze(-1), valid).sum(-1)
    rows = torch.arange(y.shape[0], device=y.device)
    total = total + c.start[rows, y[:, 0]] + c.end[rows, _at_last(c, y)]
    if steps > 1:
        r, s = c.sel(rows[:, None], torch.arange(1, steps, device=y.device))
        step = c.pairwise[r, s, y[:, :-1], y[:, 1:]]
        total = total + kept(step, None if valid is None else valid[:, 1:]).sum(-1)
    return total


def _compact_states(c: _Compact, states: Tensor) -> Tensor:
    """Given state sequences (*batch, T), checked, in the compact layout (B, T) (0 past each
    length)."""
    steps, num = c.unary.shape[1], c.unary.shape[-1]
    if not isinstance(states, Tensor) or states.is_floating_point() or states.is_complex():
        raise ValidationError("states must be an integer tensor of state indices, got "
                              + (f"dtype {states.dtype}" if isinstance(states, Tensor)
                                 else type(states).__name__))
    if tuple(states.shape) != (*c.batch_shape, steps):
        raise ValidationError(f"states must have shape {(*c.batch_shape, steps)}, "
                              f"got {tuple(states.shape)}")
    y = states.reshape(-1, steps).long()
    if c.order is not None:
        y = y.gather(1, c.order)
    if not c.full:
        y = torch.where(c.valid(), y, torch.zeros_like(y))
    low, high = y.aminmax()
    if int(low) < 0 or int(high) >= num:
        raise ValidationError(f"states must lie in [0, {num}) at kept positions")
    return y


def score(chain: Chain, states: Tensor) -> Tensor:
    """score(y) of given state sequences (*batch, T) (entries at masked positions are ignored);
    -inf where the sequence uses a forbidden state or step."""
    c = _compact(chain)
    return _compact_score(c, _compact_states(c, states)).reshape(c.batch_shape)


def sample(chain: Chain, num_samples: int = 1,
           generator: torch.Generator | None = None) -> Tensor:
    """Exact samples (num_samples, *batch, T) by forward filtering, backward sampling;
    masked positions hold `PAD`."""
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValidationError(f"num_samples must be a positive integer, got {num_samples!r}")
    c = _compact(chain)
    with torch.no_grad():
        fwd = _recursion(c, LogSemiring(), keep_history=True)
    _raise_impossible(_impossible(fwd.value[0]))

    def draw(logits: Tensor) -> Tensor:
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype,
                       device=logits.device)
        return (logits - torch.log(-torch.log(u))).argmax(-1)

    steps = c.unary.shape[1]
    into = c.pairwise.transpose(-1, -2)
    rows = torch.arange(c.unary.shape[0], device=into.device)
    state = draw((fwd.history[-1][0] + c.end).expand(num_samples, -1, -1))
    out = [state]
    for t in range(steps - 2, -1, -1):
        new = draw(fwd.history[t][0] + into[c.sel(rows, t + 1) + (state,)])
        state = torch.where(t < c.lengths - 1, new, state)
        out.append(state)
    paths = torch.stack(out[::-1], -1)
    return torch.stack([c.expand(p, PAD) for p in paths])


# The scaled forward-backward (log semiring, linear space) --------------------------------------

def _work_dtype(x: Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def _exp_shifted(x: Tensor, dims: tuple[int, ...], out: Tensor) -> Tensor:
    """out = exp(x - m) with m the max over dims (0 where that max is -inf); returns m."""
    m = x.amax(dims, keepdim=True)
    m.masked_fill_(torch.isneginf(m), 0.0)
    torch.sub(x, m, out=out).exp_()
    return m


def _spread(x: Tensor) -> float:
    """max(x) - min(x) (0 for an empty x; inf when x holds -inf): one pass over x."""
    if x.numel() == 0:
        return 0.0
    lo, hi = torch.aminmax(x)
    gap = float(hi - lo)
    return gap if gap == gap else math.inf


def _lost_paths(c: _Compact, z: Tensor, inv: Tensor) -> Tensor:
    """Chains (B,) whose scaled forward rows z (T, B, S) lost a path that may carry mass, given
    inv (T, B) = 1 / s_t: a nonzero entry whose product before the division by s_{t-1},
    z_t s_{t-1} (at least x_{t-1} @ E_t, which it bounds from below), is below tiny (digits
    lost), or an entry that is zero although a path of finite potentials arrives there (from a
    live entry of the previous position through a finite step, or at the first position through
    a finite start score: a product flushed to zero). Those paths can regain most of the mass
    when later potentials favour them. One pass when no entry is small; else (structural zeros,
    as constraints make) one matrix product of the live pattern with the finite steps into the
    zeros, in numpy on CPU."""
    tiny = torch.finfo(z.dtype).tiny
    before = torch.cat([inv.new_ones(1, inv.shape[1]), inv[:-1].reciprocal()])  # s_{t-1}
    least = float(before.amin())
    if float(z.amin()) * least >= tiny:  # the usual case (NaN: look closer)
        return torch.zeros(z.shape[1], dtype=torch.bool, device=z.device)
    xp = _array_module(z)
    za, sa, ua, pa, st, va = _arrays(xp, z, before, *(x.detach().to(z.dtype) for x in (
        c.unary, c.pairwise, c.start)), c.valid())
    zero = za == 0
    small = za < (tiny / least if least > 0 else math.inf)  # all that may be weak, and zeros
    weak = small & ~zero
    if bool(weak.any()):
        with np.errstate(all="ignore"):  # rows that overflowed (NaN) are caught by their log Z
            weak &= za * sa[..., None] < tiny
    empty = zero & xp.swapaxes(ua > -math.inf, 0, 1)
    arrive = xp.zeros_like(empty)
    arrive[0] = st > -math.inf
    into = empty[1:].any(axis=2) if bool(empty[1:].any()) else None   # steps into a zero
    t, b = (into.nonzero() if xp is np else into.nonzero(as_tuple=True)) if into is not None \
        else ((), ())
    finite = pa > -math.inf                                          # (Bp, Tp, S, S)
    states = za.shape[-1]
    chunk = max(1, (1 << 22) // (states * states))
    for lo in range(0, len(t), chunk):  # chunks bound the gathered (K, S, S) step patterns
        tk, bk = t[lo:lo + chunk], b[lo:lo + chunk]
        live = (za[tk, bk] > 0) * 1.0                                # (K, S): live before
        step = finite[bk if finite.shape[0] > 1 else 0, tk + 1 if finite.shape[1] > 1 else 0]
        counts = (live[:, None, :] @ (step * 1.0))[:, 0] if step.ndim == 3 else live @ (step * 1.0)
        arrive[tk + 1, bk] = counts > 0
    lost = (weak | (empty & arrive)).any(axis=2)                     # (T, B)
    if not c.full:
        lost &= xp.swapaxes(va, 0, 1)
    lost = lost.any(axis=0)
    return torch.from_numpy(lost) if xp is np else lost


def _lossy_factors(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Chains where a finite potential of x is more than -log(tiny) below the largest over dims
    (its exp is stored subnormal or zero: digits or paths lost before any product), reduced to
    x's leading dimension."""
    low = math.log(torch.finfo(x.dtype).tiny)
    if _spread(x) < -low:
        return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    gap = x - x.amax(dims, keepdim=True)
    bad = (gap < low) & (gap > -math.inf)
    return bad.flatten(1).any(-1)


@dataclass
class _Scaled:
    logz: Tensor  # (B,)
    scaled_u: Tensor  # U_t / s_t (T, B, S)
    pair: Tensor  # E bordered by a last column of ones and a last row of zeros: (Bp, Tp, S+1, S+1)
    end: Tensor  # (B, S)
    alphas: Tensor  # (T, B, S), each normalised to sum 1: a view of `rows`
    rows: Tensor  # (T, B, S + 1), contiguous; its last column is read by nothing but the pairwise
    # gradient's GEMM (which drops it)


def _scaled_forward(c: _Compact) -> _Scaled:
    """The forward pass in linear space, one GEMM and two in-place updates per step.

    With x_0 = S0 * U_0 and x_t = (x_{t-1} @ E_t) * U_t / s_{t-1}, where s_t = sum_j x_t[j], the
    normalised forward vectors are alpha_t = x_t / s_t and log Z = sum_t log s_t
    + log(alpha_n . exp(end)) (plus the shifts). Every step works on whole contiguous rows of
    S + 1 entries: E_t bordered by a column of ones (and a row of zeros) makes the GEMM of step t
    return s_{t-1} beside x_{t-1} @ E_t, and U_t bordered by a column of ones leaves 1 in the last
    column of x_t = (x_{t-1} @ E_t) * (U_t / s_{t-1}).

    A chain gets log Z = NaN, and the callers recompute it (in float64, then in log space),
    where the pass may have lost a path that carries mass: a forward entry that lost its digits
    or was flushed to zero on a path of finite potentials (`_lost_paths`), an end score whose
    exp is subnormal, or a step whose mass s_t is below sqrt(tiny).
    """
    dt = _work_dtype(c.unary)
    steps, batch, states = c.unary.shape[1], c.unary.shape[0], c.unary.shape[2]
    dev = c.unary.device
    # masked positions read as 0: whatever they hold (-inf padding included) reaches no result,
    # and 0 keeps their rows finite for the backward's products
    unary = c.kept()
    u = torch.empty(steps, batch, states + 1, dtype=dt, device=dev)
    uk = u[..., :states]
    # torch's max over a last dimension is vectorised for multiples of 32 entries only: rows of
    # other lengths are padded with -inf for it (about 2x faster for, e.g., 20 states)
    padded = -(-states // 32) * 32
    if padded == states:
        uk.copy_(unary.transpose(0, 1))
        ushift = uk.amax(-1, keepdim=True)
    else:
        w = torch.full((steps, batch, padded), float("-inf"), dtype=dt, device=dev)
        w[..., :states] = unary.transpose(0, 1)
        ushift = w.amax(-1, keepdim=True)
        uk.copy_(w[..., :states])
    ushift.masked_fill_(torch.isneginf(ushift), 0.0)
    u[..., states:] = ushift
    xp = _array_module(u)
    ua, sa = _arrays(xp, u, ushift)
    ua -= sa
    tiny = torch.finfo(dt).tiny
    pw = c.pairwise.to(dt)
    e = torch.zeros(*pw.shape[:-2], states + 1, states + 1, dtype=dt, device=dev)
    e[..., :states, states] = 1.0
    pshift = _exp_shifted(pw, (-2, -1), e[..., :states, :states])
    xp.exp(ua, out=ua)  # U_t = exp(u_t - max), bordered by exp(0) = 1 (whole rows)
    edges = torch.stack([c.start, c.end]).to(dt)
    # chains that may lose paths: factors stored subnormal (here), products (`_lost_paths`)
    lossy = (_lossy_factors(unary.to(dt), (-1,)) | _lossy_factors(edges[0], (-1,))
             | _lossy_factors(edges[1], (-1,)))
    lossy |= _lossy_factors(pw.flatten(0, 1), (-2, -1)).reshape(pw.shape[:2]).any(-1)
    edge_shift = _exp_shifted(edges, (-1,), edges)
    s0, en = edges
    z = torch.empty(steps, batch, states + 1, dtype=dt, device=dev)
    r = torch.empty(batch, states + 1, dtype=dt, device=dev)  # U_t / s_{t-1}, one step at a time
    za, ea, rt, s0a = _arrays(xp, z, e, r, s0)
    mats, gemm = _step_products(xp, ea, steps)
    mul, div = _elementwise(xp)
    mul(s0a, ua[0, :, :states], za[0, :, :states])
    za[0, :, states] = 1.0
    zs, us, sums = list(za), list(ua), list(za[:, :, states:])  # views made once
    with np.errstate(all="ignore"):  # a row that under- or overflows is recomputed in log space
        for t in range(1, steps):
            row = zs[t]
            gemm(zs[t - 1], mats[t], row)
            div(us[t], sums[t], rt)
            mul(row, rt, row)
    inv = z[..., :states].sum(-1).reciprocal_()  # 1 / s_t
    # a step whose mass s_t falls below sqrt(tiny) was computed near underflow: entries may be lost
    if not float(inv.amax()) <= 1 / math.sqrt(tiny):
        collapse = ~(inv <= 1 / math.sqrt(tiny))
        lossy |= (collapse if c.full else collapse & c.valid().t()).any(0)
    lossy |= _lost_paths(c, z[..., :states], inv)
    alphas = z[..., :states]
    alphas.mul_(inv.unsqueeze(-1))
    scaled_u = torch.mul(uk, inv.unsqueeze(-1))
    logs = ushift.squeeze(-1) - torch.log(inv).double()  # summed in float64
    bp, tp = pw.shape[:2]
    logs[1:] += pshift.reshape(bp, tp).t().expand(steps, batch)[1:]
    if not c.full:
        logs.masked_fill_(~c.valid().t(), 0.0)
    rows = torch.arange(batch, device=dev)
    last = (alphas[c.lengths - 1, rows] * en).sum(-1)
    lossy |= ~(last >= tiny)  # the end products: subnormal or zero (flushed, or no path at all)
    logz = logs.sum(0) + torch.log(last) + edge_shift.sum(0, dtype=torch.float64)[:, 0]
    if bool(lossy.any()):
        logz.masked_fill_(lossy, float("nan"))
    return _Scaled(logz, scaled_u, e, en, alphas, z)


def _scaled_backward(c: _Compact, f: _Scaled,
                     g: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Marginals M (B, T, S); given g (B,), the step weights W (T - 1, B, S) of the steps into
    t = 1..T-1, W[t-1, j] = U_t[j] beta_t[j] / Z_t, so that the joint of (y_{t-1} = i, y_t = j)
    is alphas[t-1, i] E[i, j] W[t-1, j] (the input of `_pairwise_grad`; None without g), both
    weighted per chain by g (the gradient of sum_b g_b log Z_b) and zero at masked positions;
    and the unsettled rows (B,) bool: those whose scaled pass under- or overflowed (their M and W
    are zero), found from the normalisers Z_t alone (M and W are finite where every Z_t is
    finite and positive).

    The backward messages are scaled by the forward scales (b_t = E (U_{t+1} b_{t+1}) / s_{t+1}),
    and the end scores enter at each chain's last position (only the last step when every chain
    is full), written in place into one buffer.
    """
    steps, batch, states = f.scaled_u.shape
    betas = torch.empty_like(f.scaled_u)
    xp = _array_module(betas)
    et = f.pair[..., :states, :states].transpose(-1, -2).contiguous()  # E^T: contiguous for GEMMs
    prods = torch.empty_like(betas)  # U_t beta_t / s_t, the loop's products (t >= 1)
    bs, us, eta, vs = _arrays(xp, betas, f.scaled_u, et, prods)
    mats, gemm = _step_products(xp, eta, steps)
    bs[-1] = _arrays(xp, f.end)[0]
    inj = None
    if not c.full:
        rows = torch.arange(batch, device=f.end.device)
        inject = torch.zeros_like(betas)
        inject[c.lengths - 1, rows] = f.end
        inj = _arrays(xp, inject)[0]
        bs[-1] = inj[-1]
    mul = _elementwise(xp)[0]
    bs, us, vs = list(bs), list(us), list(vs)  # views made once
    with np.errstate(all="ignore"):
        for t in range(steps - 2, -1, -1):
            v = vs[t + 1]
            mul(us[t + 1], bs[t + 1], v)
            gemm(v, mats[t + 1], bs[t])
            if inj is not None:
                bs[t] += inj[t]
    M = torch.empty(batch, steps, states, dtype=betas.dtype, device=betas.device)
    torch.mul(f.alphas.transpose(0, 1), betas.transpose(0, 1), out=M)  # in the caller's layout
    norm = M.sum(-1)
    invalid = None if c.full else ~c.valid()
    if invalid is not None:
        norm.masked_fill_(invalid, 1.0)
    bad = ~torch.isfinite(f.logz + torch.log(norm).sum(1))
    weight = norm.reciprocal_() if g is None else torch.div(g[:, None], norm)
    M.mul_(weight.unsqueeze(-1))
    W = None if g is None else prods[1:].mul_(weight.t()[1:].unsqueeze(-1))
    if invalid is not None:
        M.masked_fill_(invalid.unsqueeze(-1), 0.0)
    if bool(bad.any()):
        M.masked_fill_(bad[:, None, None], 0.0)
    if W is not None and invalid is not None:
        W.masked_fill_(invalid.t()[1:].unsqueeze(-1), 0.0)
    if W is not None and bool(bad.any()):
        W.masked_fill_(bad[None, :, None], 0.0)
    return M, W, bad


def _pairwise_grad(c: _Compact, f: _Scaled, W: Tensor, bad: Tensor) -> Tensor:
    """d log Z / d pairwise (Bp, Tp, S, S) for the step weights W and unsettled rows `bad` of
    `_scaled_backward` (weighted as they are): E[i, j] times the sum of alphas[t-1, i] W[t-1, j]
    over the chains and steps that share the entry."""
    bp, tp, states = *c.pairwise.shape[:2], c.pairwise.shape[-1]
    prev, nxt = f.rows[:-1], W  # contiguous rows: one GEMM, no copy
    if not c.full or bool(bad.any()):
        # forward rows past a chain's length or of an unsettled chain may be NaN (e.g. -inf
        # potentials at masked positions); their W is zero, but 0 * NaN is not
        skip = bad if c.full else ~c.valid()[:, :-1].t() | bad
        prev = prev.masked_fill(skip.unsqueeze(-1), 0.0)
    if bp == tp == 1:
        grad = prev.reshape(-1, states + 1).t() @ nxt.reshape(-1, states)
    else:
        out = ("b" if bp > 1 else "") + ("t" if tp > 1 else "") + "ij"
        grad = torch.einsum(f"tbi,tbj->{out}", prev, nxt)
    grad = grad[..., :states, :].reshape(bp, -1, states, states)
    if tp > 1:
        grad = torch.cat([torch.zeros_like(grad[:, :1]), grad], 1)
    return grad.mul_(f.pair[..., :states, :states])


def _add_score_grads(c: _Compact, y: Tensor, g: Tensor, gu: Tensor, gp: Tensor) -> None:
    """Add the gradient of sum_b g_b score_b(y_b) to the unary and pairwise gradients gu
    (B, T, S) and gp (Bp, Tp, S, S), in place: g_b at each chain's states and steps (those of
    start and end are gu's at the first and last position)."""
    steps = y.shape[1]
    w = g.to(gu.dtype)[:, None].expand(-1, steps)
    if not c.full:
        w = w.masked_fill(~c.valid(), 0.0)
    gu.scatter_add_(2, y.unsqueeze(-1), w.unsqueeze(-1))
    if steps == 1:
        return
    steps_w = w[:, 1:].to(gp.dtype)
    if c.matrix is not None:
        gp[0, 0].index_put_((y[:, :-1], y[:, 1:]), steps_w, accumulate=True)
        return
    rows = torch.arange(y.shape[0], device=y.device)
    r, s = c.sel(rows[:, None], torch.arange(1, steps, device=y.device))
    idx = tuple(torch.as_tensor(i, device=y.device) for i in (r, s))
    gp.index_put_((*idx, y[:, :-1], y[:, 1:]), steps_w, accumulate=True)


def _generic_grads(c: _Compact, idx: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of sum_b g_b log Z_b over rows idx by autograd through the log-space recursion:
    (unary rows, pairwise rows (see `_Compact.pair_rows`)); those of start and end are the
    unary's at the first and last position."""
    sub = c.rows(idx, _work_dtype(c.unary))  # half precisions summed in float32
    leaves = [sub.unary.detach().requires_grad_(True), sub.pairwise.detach().requires_grad_(True)]
    sub = _Compact(*leaves, sub.start, sub.end, sub.lengths, None, sub.batch_shape)
    with torch.enable_grad():
        ref = _recursion(sub, LogSemiring()).value[0]
        _raise_impossible(torch.zeros(c.unary.shape[0], dtype=torch.bool, device=idx.device)
                          .index_put((idx,), torch.isneginf(ref)))
        grads = torch.autograd.grad((ref * g[idx].to(ref.dtype)).sum(), leaves,
                                    allow_unused=True)  # one position: no step is used
        return tuple(torch.zeros_like(x) if d is None else d  # type: ignore[return-value]
                     for x, d in zip(leaves, grads, strict=True))


class _LogPartition(torch.autograd.Function):
    """log Z by the scaled forward pass; its backward is the forward-backward marginals. Given
    compact states y, it returns (log Z, score(y)), and its backward adds the score's gradient
    to the same buffers (log p(y) = score - log Z costs one backward pass, not two)."""

    @staticmethod
    def forward(ctx, unary, pairwise, start, end, c, y):  # noqa: D102
        f = _scaled_forward(c)
        ctx.c, ctx.f, ctx.y = c, f, y
        logz = f.logz.to(unary.dtype)
        return logz if y is None else (logz, _compact_score(c, y))

    @staticmethod
    def backward(ctx, g, *score_grad):  # noqa: D102
        c, f = ctx.c, ctx.f
        M, W, bad = _scaled_backward(c, f, g.to(f.alphas.dtype))
        gu = M.to(c.unary.dtype)
        gp = _pairwise_grad(c, f, W, bad).to(c.pairwise.dtype)
        # rows whose log Z is not finite were recomputed in log space by `_log_partition_compact`
        # (differentiably); here only rows whose backward alone under- or overflowed
        redo = bad & torch.isfinite(f.logz)
        if bool(redo.any()):
            idx = redo.nonzero().flatten()
            du, dp = _generic_grads(c, idx, g)
            gu = gu.index_put((idx,), du.to(gu.dtype))
            gp = gp.index_put((c.pair_rows(idx),), dp.to(gp.dtype), accumulate=True)
        if ctx.y is not None:
            _add_score_grads(c, ctx.y, score_grad[0], gu, gp)
        return gu, gp, gu[:, 0], _at_last(c, gu), None, None


def _log_partition_compact(c: _Compact, y: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """(log Z (B,), score (B,) of compact states y, or None without y)."""
    if c.matrix is not None and accel.chain_kernels_apply(c.unary, c.matrix):
        from condprob.accel import chain_kernels

        logz = chain_kernels.LogPartition.apply(c.unary, c.matrix, c.start, c.end, c.lengths)
        return logz, None if y is None else _compact_score(c, y)
    out = _LogPartition.apply(c.unary, c.pairwise, c.start, c.end, c, y)
    logz, sc = (out, None) if y is None else out
    bad = ~torch.isfinite(logz)
    # rows that the scaled pass could not settle: in float64 first (when it was float32), then
    # those still unsettled, and impossible rows (-inf), in log space
    widened = c.wide(bad.nonzero().flatten()) if bool(bad.any()) else None
    if widened is not None:
        rows, w = widened
        again = _LogPartition.apply(w.unary, w.pairwise, w.start, w.end, w, None)
        logz = logz.index_put((rows,), again.to(logz.dtype))
        bad = ~torch.isfinite(logz)
    if bool(bad.any()):
        idx = bad.nonzero().flatten()
        with torch.no_grad():
            ref = _recursion(c.rows(idx, _work_dtype(c.unary)), LogSemiring()).value[0]
        fine = torch.isfinite(ref)
        full = torch.full_like(logz, float("-inf"))
        if bool(fine.any()):
            exact = _recursion(c.rows(idx[fine], _work_dtype(c.unary)), LogSemiring()).value[0]
            full = full.index_put((idx[fine],), exact.to(logz.dtype))
        logz = torch.where(bad, full, logz)
    return logz, sc


def log_partition(chain: Chain) -> Tensor:
    """log Z = log sum_y exp(score(y)), shape (*batch,); differentiable, its gradient with respect
    to the unary potentials is the marginals. -inf exactly when every path is forbidden."""
    c = _compact(chain)
    return _log_partition_compact(c)[0].reshape(c.batch_shape)


def log_normaliser(chain: Chain) -> Tensor:
    """log Z as the normaliser of p(y) = exp(score(y)) / Z, shape (*batch,): `log_partition`, but
    raising ConditioningError where every path is forbidden (Z = 0 leaves p(y) undefined)."""
    logz = log_partition(chain)
    _raise_impossible(_impossible(logz))
    return logz


def log_prob(chain: Chain, states: Tensor) -> Tensor:
    """log p(y) = score(y) - log Z for state sequences (*batch, T); -inf for forbidden ones.
    Raises ConditioningError when a chain has no path of positive weight."""
    c = _compact(chain)
    logz, sc = _log_partition_compact(c, _compact_states(c, states))
    _raise_impossible(_impossible(logz))
    return (sc - logz).reshape(c.batch_shape)


def marginals(chain: Chain) -> Tensor:
    """p(y_t = j) for every kept position, shape (*batch, T, S) (zero at masked positions).

    Raises ConditioningError when a chain has no path of positive weight.
    """
    c = _compact(chain)
    if c.matrix is not None and accel.chain_kernels_apply(c.unary, c.matrix):
        from condprob.accel import chain_kernels

        with torch.no_grad():
            logz, alpha = chain_kernels.forward(c.unary, c.matrix, c.start, c.end, c.lengths)
            _raise_impossible(torch.isneginf(logz))
            M = chain_kernels.backward(c.unary, c.matrix, c.end, c.lengths, alpha, logz)[0]
        return c.expand(M.to(c.unary.dtype), 0.0)
    with torch.no_grad():
        f = _scaled_forward(c)
        M, bad = _scaled_backward(c, f)[::2]
        M = M.to(c.unary.dtype)
        # unsettled rows in float64 first (when the pass was float32), then in log space
        widened = c.wide(bad.nonzero().flatten()) if bool(bad.any()) else None
        if widened is not None:
            rows, w = widened
            M2, bad2 = _scaled_backward(w, _scaled_forward(w))[::2]
            M = M.index_put((rows,), M2.to(M.dtype))
            bad = bad.index_put((rows,), bad2)
    if bool(bad.any()):
        idx = bad.nonzero().flatten()
        du = _generic_grads(c, idx, torch.ones_like(f.logz))[0]
        M = M.index_put((idx,), du.to(M.dtype))
    return c.expand(M, 0.0)
