"""Optimal multi-draft speculative sampling (Khisti et al., "Multi-Draft Speculative Sampling:
Canonical Architectures and Theoretical Limits", ICLR 2025).

K drafts x = (x_1, ..., x_K) are drawn independently, x_i ~ q_i; a token-level selection scheme
outputs a token y whose law is exactly the target p, and accepts when y is one of the drafts.

- `lp_selection`: the acceptance-maximising scheme as a linear program over the acceptance
  probability w(x, y) >= 0 of each draft tuple x and each distinct y in x: maximise
  sum_x Q(x) sum_y w(x, y) subject to sum_y w(x, y) <= 1 and sum_x Q(x) w(x, y) <= p(y),
  Q(x) = prod_i q_i(x_i) (solved in the masses Q(x) w(x, y), whose coefficients are all one). The
  rejected mass draws from the residual p(y) - sum_x Q(x) w(x, y), so the output law is p.
- `two_step_selection`: the canonical decomposition of the optimum: importance-sampling first
  (pick one of the drafts, y with probability beta(x, y), giving the intermediate law
  r(y) = sum_x Q(x) beta(x, y)), then single-draft speculative sampling of r against p (accept with
  probability min(1, p(y) / r(y)), else draw from norm(max(0, p - r))). Its acceptance is
  sum_y min(p(y), r(y)); beta is chosen by its own linear program and reaches the LP optimum.
- `optimal_acceptance`: the optimum in closed form by max-flow/min-cut duality,
  min over token sets A of p(A) + 1 - prod_i q_i(A) (2^V sets).
- `identical_drafts_acceptance`: K identical drafts q: the minimising sets are the k tokens of
  smallest p/q, so the optimum is 1 + min_k (p(S_k) - q(S_k)^K) (the paper's explicit expression
  for K = 2); it equals one exactly when p(S_k) >= q(S_k)^K for every k.
- `recursive_rejection_acceptance`: the acceptance of recursive rejection (SpecInfer) with drafts
  q_1..q_K, 1 - prod_i (1 - sum_y min(q_i(y), p_i(y))), p_{i+1} = norm(max(0, p_i - q_i)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.optimize
import scipy.sparse
import torch

from condprob.errors import CondprobError, ValidationError, check_positive_int
from condprob.lm.speculative import _check_probs, _residual

MAX_TUPLES = 250_000
MAX_SET_SIZE = 20


def _laws(target: torch.Tensor, drafts: torch.Tensor | Sequence[torch.Tensor]
          ) -> tuple[torch.Tensor, torch.Tensor]:
    p = _check_probs(torch.as_tensor(target), "target").double()
    if not isinstance(drafts, torch.Tensor) and not len(drafts):
        raise ValidationError("drafts must be K >= 1 laws over the target's tokens, got none")
    q = drafts if isinstance(drafts, torch.Tensor) else torch.stack(list(drafts))
    q = _check_probs(torch.as_tensor(q), "drafts").double()
    if p.ndim != 1:
        raise ValidationError(f"target must be one law (V,), got shape {tuple(p.shape)}")
    if q.ndim != 2 or q.shape[1] != p.shape[0] or q.shape[0] < 1:
        raise ValidationError(f"drafts must be K >= 1 laws over the target's {p.shape[0]} tokens "
                              f"(K, {p.shape[0]}), got shape {tuple(q.shape)}")
    return p, q


class DraftTuples:
    """The draft tuples x with Q(x) > 0: `tokens` (N, K), `prob` (N,), and the pairs (tuple n,
    distinct token y of tuple n) as `pair_tuple`, `pair_token` and the column `pair_col` of y's first
    occurrence in the tuple (the LP's variables)."""

    def __init__(self, drafts: torch.Tensor):
        k, v = drafts.shape
        if v**k > MAX_TUPLES:
            raise ValidationError(f"{v} tokens and {k} drafts make {v**k} draft tuples; the LP "
                                  f"is limited to {MAX_TUPLES} (restrict the laws' support)")
        q = drafts.numpy()
        grid = np.stack(np.unravel_index(np.arange(v**k), (v,) * k), -1)
        prob = np.prod(q[np.arange(k), grid], -1)
        keep = prob > 0
        self.tokens, self.prob, self.vocab_size = grid[keep], prob[keep], v
        first = np.ones(self.tokens.shape, dtype=bool)
        for i in range(1, k):
            first[:, i] = (self.tokens[:, :i] != self.tokens[:, i : i + 1]).all(-1)
        self.pair_tuple, self.pair_col = np.nonzero(first)
        self.pair_token = self.tokens[self.pair_tuple, self.pair_col]

    def index(self, tuples: np.ndarray) -> np.ndarray:
        """Row of each draft tuple (B, K) in `tokens` (-1 for tuples of probability zero)."""
        flat = np.ravel_multi_index(tuple(self.tokens.T), (self.vocab_size,) * self.tokens.shape[1])
        want = np.ravel_multi_index(tuple(tuples.T), (self.vocab_size,) * tuples.shape[1])
        pos = np.searchsorted(flat, want).clip(max=len(flat) - 1)
        return np.where(flat[pos] == want, pos, -1)


def _linprog(c: np.ndarray, a_ub: scipy.sparse.csr_array, b_ub: np.ndarray,
             bounds: list[tuple[float, float | None]] | tuple[float, None] = (0, None),
             a_eq: scipy.sparse.csr_array | None = None, b_eq: np.ndarray | None = None
             ) -> np.ndarray:
    res = scipy.optimize.linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds,
                                 method="highs",
                                 options={"primal_feasibility_tolerance": 1e-10,
                                          "dual_feasibility_tolerance": 1e-10})
    if res.status != 0:
        raise CondprobError(f"the selection LP failed: {res.message}")
    return res.x


class Selection:
    """A token-level draft selection scheme: for each draft tuple x, the probability `accept_prob`
    of outputting each of its distinct tokens (pairs of `tuples`), else a draw from `residual`.

    `acceptance` is P(the output is one of the drafts); `law()` the exact output law (equal to the
    target); `sample` runs the scheme on drawn drafts.
    """

    def __init__(self, target: torch.Tensor, drafts: torch.Tensor, tuples: DraftTuples,
                 accept_prob: np.ndarray):
        self.target, self.drafts, self.tuples = target, drafts, tuples
        self.accept_prob = np.clip(accept_prob, 0.0, 1.0)
        mass = np.zeros(tuples.vocab_size)
        np.add.at(mass, tuples.pair_token, tuples.prob[tuples.pair_tuple] * self.accept_prob)
        self.accepted_mass = torch.from_numpy(mass)
        self.acceptance = float(mass.sum())
        rest = torch.clamp(target - self.accepted_mass, min=0)
        total = rest.sum()
        self.residual = rest / total if total > 0 else target

    def law(self) -> torch.Tensor:
        """The exact output law sum_x Q(x) w(x, .) + (1 - acceptance) residual."""
        return self.accepted_mass + (1 - self.acceptance) * self.residual

    def sample(self, drafts: torch.Tensor, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Output tokens (B,) and whether each was a draft (B,), for drafted tuples (B, K)."""
        x = torch.as_tensor(drafts)
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ValidationError(f"drafts are integer token ids, got dtype {x.dtype}")
        x = x.long()
        if x.ndim != 2 or x.shape[1] != self.drafts.shape[0]:
            raise ValidationError(f"drafts must be (B, {self.drafts.shape[0]}), got "
                                  f"{tuple(x.shape)}")
        v = self.tuples.vocab_size
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= v):
            raise ValidationError(f"draft token ids must lie in [0, {v}), got ids in "
                                  f"[{int(x.min())}, {int(x.max())}]")
        rows = self.tuples.index(x.numpy())
        if (rows < 0).any():
            raise ValidationError("a draft tuple has probability zero under the draft laws")
        b, k = x.shape
        table = np.zeros((len(self.tuples.prob), k))
        table[self.tuples.pair_tuple, self.tuples.pair_col] = self.accept_prob
        probs = torch.zeros(b, k + 1, dtype=torch.float64)
        probs[:, :k] = torch.from_numpy(table[rows])
        probs[:, k] = torch.clamp(1 - probs[:, :k].sum(-1), min=0)
        pick = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        accepted = pick < k
        out = x.gather(1, pick.clamp(max=k - 1).unsqueeze(-1)).squeeze(-1)
        if (~accepted).any():
            fresh = torch.multinomial(self.residual.expand(b, -1), 1, generator=generator)
            out = torch.where(accepted, out, fresh.squeeze(-1))
        return out, accepted


def lp_selection(target: torch.Tensor, drafts: torch.Tensor | Sequence[torch.Tensor]
                 ) -> Selection:
    """The acceptance-maximising selection scheme for drafts x_i ~ drafts[i] (K, V), by the LP
    of the module docstring (scipy's HiGHS)."""
    p, q = _laws(target, drafts)
    t = DraftTuples(q)
    n, m = len(t.prob), len(t.pair_tuple)
    # variables: the accepted masses Q(x) w(x, y) (unit coefficients: a well-scaled LP)
    cols = np.arange(m)
    a_ub = scipy.sparse.vstack([
        scipy.sparse.csr_array((np.ones(m), (t.pair_tuple, cols)), shape=(n, m)),
        scipy.sparse.csr_array((np.ones(m), (t.pair_token, cols)), shape=(t.vocab_size, m)),
    ]).tocsr()
    mass = _linprog(-np.ones(m), a_ub, np.concatenate([t.prob, p.numpy()]))
    return Selection(p, q, t, mass / t.prob[t.pair_tuple])


class TwoStepSelection(Selection):
    """Importance sampling then single-draft speculation (see the module docstring): `beta` the
    first step's selection probabilities of each pair, `intermediate` the law r it induces."""

    def __init__(self, target: torch.Tensor, drafts: torch.Tensor, tuples: DraftTuples,
                 beta: np.ndarray):
        beta = np.clip(beta, 0.0, None)
        total = np.zeros(len(tuples.prob))
        np.add.at(total, tuples.pair_tuple, beta)
        empty = total[tuples.pair_tuple] <= 0  # a tuple the solver left at zero: pick its first
        beta = np.where(empty, tuples.pair_col == 0, beta)
        np.add.at(total, tuples.pair_tuple, np.where(empty, beta, 0.0))
        self.beta = beta / total[tuples.pair_tuple]
        r = np.zeros(tuples.vocab_size)
        np.add.at(r, tuples.pair_token, tuples.prob[tuples.pair_tuple] * self.beta)
        self.intermediate = torch.from_numpy(r)
        p = target.numpy()
        ratio = np.divide(p, r, out=np.ones_like(r), where=r > 0)
        super().__init__(target, drafts, tuples,
                         self.beta * np.minimum(1.0, ratio[tuples.pair_token]))


def two_step_selection(target: torch.Tensor, drafts: torch.Tensor | Sequence[torch.Tensor]
                       ) -> TwoStepSelection:
    """The optimal scheme in two steps: the importance-sampling law beta maximises
    sum_y min(p(y), r(y)) (an LP in beta and t_y <= min(p(y), r(y)))."""
    p, q = _laws(target, drafts)
    t = DraftTuples(q)
    n, m, v = len(t.prob), len(t.pair_tuple), t.vocab_size
    cols = np.arange(m)
    # variables: the selected masses Q(x) beta(x, y) (m), then t_y in [0, p(y)] (v);
    # t_y <= r(y) = sum_x Q(x) beta(x, y), and each tuple's masses sum to Q(x)
    a_ub = scipy.sparse.hstack([
        scipy.sparse.csr_array((-np.ones(m), (t.pair_token, cols)), shape=(v, m)),
        scipy.sparse.eye_array(v)]).tocsr()
    a_eq = scipy.sparse.hstack([
        scipy.sparse.csr_array((np.ones(m), (t.pair_tuple, cols)), shape=(n, m)),
        scipy.sparse.csr_array((n, v))]).tocsr()
    bounds = [(0.0, None)] * m + [(0.0, float(py)) for py in p]
    x = _linprog(np.concatenate([np.zeros(m), -np.ones(v)]), a_ub, np.zeros(v), bounds, a_eq,
                 t.prob)
    return TwoStepSelection(p, q, t, x[:m] / t.prob[t.pair_tuple])


def optimal_acceptance(target: torch.Tensor, drafts: torch.Tensor | Sequence[torch.Tensor]
                       ) -> float:
    """The LP optimum by min-cut duality: min over token sets A of p(A) + 1 - prod_i q_i(A)."""
    p, q = _laws(target, drafts)
    v = p.shape[0]
    if v > MAX_SET_SIZE:
        raise ValidationError(f"the min-cut form enumerates 2^V token sets; V = {v} exceeds "
                              f"{MAX_SET_SIZE}")
    sets = (torch.arange(2**v).unsqueeze(-1) >> torch.arange(v)) & 1
    sets = sets.double()
    return float((sets @ p + 1 - (sets @ q.T).prod(-1)).min())


def identical_drafts_acceptance(target: torch.Tensor, draft: torch.Tensor, k: int = 2) -> float:
    """Optimal acceptance for k identical drafts q: 1 + min_j (p(S_j) - q(S_j)^k), S_j the j
    tokens of smallest p/q (j = 0..V)."""
    check_positive_int(k, "the number of drafts k")
    p, q = _laws(target, torch.as_tensor(draft).unsqueeze(0))
    q = q[0]
    ratio = torch.where(q > 0, p / torch.where(q > 0, q, 1.0), torch.inf)
    order = torch.argsort(ratio, stable=True)
    gaps = torch.cumsum(p[order], 0) - torch.cumsum(q[order], 0) ** k
    return float(1 + torch.clamp(gaps.min(), max=0.0))


def recursive_rejection_acceptance(target: torch.Tensor,
                                   drafts: torch.Tensor | Sequence[torch.Tensor]) -> float:
    """P(some draft is accepted) under recursive rejection with drafts x_i ~ q_i (independent):
    1 - prod_i (1 - sum_y min(q_i(y), p_i(y))), p_{i+1} = norm(max(0, p_i - q_i))."""
    p, q = _laws(target, drafts)
    reject = 1.0
    for qi in q:
        reject *= 1 - float(torch.minimum(p, qi).sum())
        p = _residual(p, qi)
    return 1 - reject
