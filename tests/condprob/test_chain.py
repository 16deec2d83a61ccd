"""The chain engine against brute-force enumeration, exactly (float64, 1e-10)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from condprob import chain as ch
from condprob import laws
from condprob.errors import ConditioningError, ValidationError
from condprob.semiring import KMaxSemiring, LogSemiring

TOL = dict(rtol=1e-10, atol=1e-10)
NEG = float("-inf")


def brute(c: ch.Chain) -> list[dict[tuple[int, ...], float]]:
    """Per batch element (flattened): every kept-position state sequence -> its score."""
    steps, states = c.num_steps, c.num_states
    unary = c.unary.reshape(-1, steps, states)
    n = unary.shape[0]
    mask = torch.ones(n, steps, dtype=torch.bool) if c.mask is None else c.mask.reshape(n, steps)
    pw = c.pairwise
    start = torch.zeros(states, dtype=unary.dtype) if c.start is None else c.start
    end = torch.zeros(states, dtype=unary.dtype) if c.end is None else c.end
    start = start.expand(*c.batch_shape, states).reshape(n, states)
    end = end.expand(*c.batch_shape, states).reshape(n, states)
    out = []
    for b in range(n):
        kept = mask[b].nonzero().flatten().tolist()
        table = {}
        for y in itertools.product(range(states), repeat=len(kept)):
            s = start[b, y[0]].item() + end[b, y[-1]].item()
            for i, (t, j) in enumerate(zip(kept, y, strict=True)):
                s += unary[b, t, j].item()
                if i:
                    if pw.dim() == 2:
                        p = pw
                    elif pw.dim() == 2 + len(c.batch_shape):
                        p = pw.reshape(n, states, states)[b]
                    else:
                        p = pw.reshape(n, steps, states, states)[b, t]
                    s += p[y[i - 1], j].item()
            table[y] = s
        out.append((kept, table))
    return out


def logsumexp(values) -> float:
    values = [v for v in values if v > NEG]
    if not values:
        return NEG
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def make_chain(seed=0, batch=(3,), steps=4, states=3, kind="shared", mask=None, forbid=0.0,
               dtype=torch.float64) -> ch.Chain:
    g = torch.Generator().manual_seed(seed)
    unary = torch.randn(*batch, steps, states, generator=g, dtype=dtype)
    shape = {"shared": (states, states), "batched": (*batch, states, states),
             "timed": (*batch, steps, states, states)}[kind]
    pair = torch.randn(*shape, generator=g, dtype=dtype)
    if forbid:
        pair = pair.masked_fill(torch.rand(*shape, generator=g) < forbid, NEG)
    start = torch.randn(states, generator=g, dtype=dtype)
    end = torch.randn(*batch, states, generator=g, dtype=dtype)
    return ch.Chain(unary, pair, start, end, mask)


MASKS = {
    "none": None,
    "right": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool),
    "left": torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]], dtype=torch.bool),
    "holes": torch.tensor([[1, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 1]], dtype=torch.bool),
}
CASES = [(kind, m) for kind in ("shared", "batched", "timed") for m in MASKS]


@pytest.mark.parametrize("kind,mask", CASES)
def test_quantities_match_brute_force(kind, mask):
    c = make_chain(kind=kind, mask=MASKS[mask], forbid=0.3, seed=CASES.index((kind, mask)))
    logz = ch.log_partition(c)
    marg = ch.marginals(c)
    vscore, vpath = ch.viterbi(c)
    kscores, kpaths = ch.kbest(c, 4)
    ent = ch.entropy(c)
    for b, (kept, table) in enumerate(brute(c)):
        z = logsumexp(table.values())
        assert logz[b].item() == pytest.approx(z, rel=1e-10)
        assert ch.semiring_forward(c, LogSemiring())[0, b].item() == pytest.approx(z, rel=1e-10)
        probs = {y: math.exp(s - z) for y, s in table.items() if s > NEG}
        expect = torch.zeros(c.num_steps, c.num_states, dtype=torch.float64)
        for y, p in probs.items():
            for t, j in zip(kept, y, strict=True):
                expect[t, j] += p
        torch.testing.assert_close(marg[b], expect, **TOL)
        ranked = sorted(table.items(), key=lambda kv: -kv[1])
        assert vscore[b].item() == pytest.approx(ranked[0][1], rel=1e-12)
        assert tuple(vpath[b, kept].tolist()) == ranked[0][0]
        assert (vpath[b, [t for t in range(c.num_steps) if t not in kept]] == ch.PAD).all()
        best = [s for _, s in ranked[:4]] + [NEG] * max(0, 4 - len(ranked))
        for r in range(4):
            if best[r] == NEG:
                assert kscores[r, b].item() == NEG and (kpaths[r, b] == ch.PAD).all()
                continue
            assert kscores[r, b].item() == pytest.approx(best[r], rel=1e-12)
            y = tuple(kpaths[r, b, kept].tolist())
            assert table[y] == pytest.approx(best[r], rel=1e-12)
        found = {tuple(kpaths[r, b, kept].tolist()) for r in range(4) if best[r] > NEG}
        assert len(found) == sum(s > NEG for s in best)
        h = -sum(p * math.log(p) for p in probs.values() if p > 0)
        assert ent[b].item() == pytest.approx(h, rel=1e-10, abs=1e-12)
        ystates = torch.zeros(c.num_steps, dtype=torch.long)
        ystates[kept] = torch.tensor(ranked[-1][0])
        full = torch.zeros(c.batch_shape[0], c.num_steps, dtype=torch.long)
        full[b] = ystates
        assert ch.score(c, full)[b].item() == pytest.approx(ranked[-1][1], rel=1e-12)


def test_batch_dims_are_flattened_and_restored():
    c = make_chain(batch=(2, 3), kind="timed", steps=3)
    flat = ch.Chain(c.unary.reshape(6, 3, 3), c.pairwise.reshape(6, 3, 3, 3), c.start,
                    c.end.reshape(6, 3))
    torch.testing.assert_close(ch.log_partition(c).reshape(6), ch.log_partition(flat), **TOL)
    assert ch.marginals(c).shape == (2, 3, 3, 3)
    assert ch.sample(c, 5).shape == (5, 2, 3, 3)
    assert ch.kbest(c, 2)[1].shape == (2, 2, 3, 3)


@pytest.mark.parametrize("kind", ["shared", "batched", "timed"])
def test_gradient_of_log_partition_is_the_marginals(kind):
    c = make_chain(kind=kind, mask=MASKS["holes"], forbid=0.2, seed=7)
    leaves = [t.clone().requires_grad_(True) for t in (c.unary, c.pairwise, c.start, c.end)]
    c2 = ch.Chain(*leaves, mask=c.mask)
    ch.log_partition(c2).sum().backward()
    torch.testing.assert_close(leaves[0].grad, ch.marginals(c), **TOL)
    # pairwise, start and end gradients against the generic log recursion's autograd
    ref = [t.clone().requires_grad_(True) for t in (c.unary, c.pairwise, c.start, c.end)]
    ch.semiring_forward(ch.Chain(*ref, mask=c.mask), LogSemiring()).sum().backward()
    for got, want in zip(leaves, ref, strict=True):
        torch.testing.assert_close(got.grad, want.grad, **TOL)


def _log_prob_grads_against_log_space(c: ch.Chain, y: torch.Tensor) -> None:
    """log_prob's values and gradients (score and log Z from one pass, one backward) against
    score - log Z by autograd through the generic log-space recursion, per chain weights 1..B."""
    weights = torch.arange(1, c.unary.shape[0] + 1, dtype=c.unary.dtype)
    got = [t.clone().requires_grad_(True) for t in (c.unary, c.pairwise, c.start, c.end)]
    fused = ch.log_prob(ch.Chain(*got, mask=c.mask), y)
    (fused * weights).sum().backward()
    ref = [t.clone().requires_grad_(True) for t in (c.unary, c.pairwise, c.start, c.end)]
    chain = ch.Chain(*ref, mask=c.mask)
    want = ch.score(chain, y) - ch.semiring_forward(chain, LogSemiring())[0]
    (want * weights).sum().backward()
    torch.testing.assert_close(fused, want, **TOL)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a.grad, b.grad, **TOL)


@pytest.mark.parametrize("kind,mask", CASES)
def test_gradient_of_log_prob_is_indicators_minus_marginals(kind, mask):
    c = make_chain(kind=kind, mask=MASKS[mask], seed=11 + CASES.index((kind, mask)))
    y = torch.randint(0, c.num_states, (3, c.num_steps), generator=torch.Generator().manual_seed(1))
    _log_prob_grads_against_log_space(c, y)


def test_gradient_of_log_prob_where_the_scaled_pass_underflows():
    # chain 0 needs the log-space fallback (e^-1000 underflows), chain 1 does not
    unary = torch.tensor([[[0.0, -1000.0], [0.0, 0.0], [0.0, 0.0]],
                          [[0.5, 0.0], [0.0, 1.0], [0.3, 0.0]]], dtype=torch.float64)
    pair = torch.tensor([[NEG, NEG], [0.0, 0.0]], dtype=torch.float64)
    c = ch.Chain(unary, pair, torch.zeros(2, dtype=torch.float64),
                 torch.tensor([0.2, -0.1], dtype=torch.float64))
    _log_prob_grads_against_log_space(c, torch.tensor([[1, 1, 0], [1, 1, 1]]))


def test_minus_inf_potentials_at_masked_positions_leave_gradients_finite():
    # padding given -inf potentials (every state forbidden where the mask drops the position)
    c = make_chain(kind="shared", mask=MASKS["right"], seed=5)
    unary = c.unary.masked_fill(~MASKS["right"].unsqueeze(-1), NEG)
    c = ch.Chain(unary, c.pairwise, c.start, c.end, c.mask)
    y = torch.randint(0, c.num_states, (3, c.num_steps), generator=torch.Generator().manual_seed(2))
    _log_prob_grads_against_log_space(c, y)


def test_gradient_check_float64():
    c = make_chain(kind="batched", mask=MASKS["left"], seed=3)
    u = c.unary.clone().requires_grad_(True)
    p = c.pairwise.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda u, p: ch.log_partition(ch.Chain(u, p, c.start, c.end, c.mask)), (u, p))


def test_forbidden_sequences_have_log_prob_minus_inf_exactly():
    c = make_chain(forbid=0.0, seed=1)
    pair = c.pairwise.clone()
    pair[0, 1] = NEG
    c = ch.Chain(c.unary, pair, c.start, c.end)
    y = torch.tensor([[0, 1, 0, 0], [2, 2, 2, 2], [1, 0, 1, 0]])
    lp = ch.log_prob(c, y)
    assert lp[0].item() == NEG and math.isfinite(lp[1].item())
    for s in ch.sample(c, 200, generator=torch.Generator().manual_seed(0)).reshape(-1, 4):
        assert not any(a == 0 and b == 1 for a, b in zip(s[:-1], s[1:], strict=True))


def test_impossible_chain():
    unary = torch.zeros(1, 3, 2, dtype=torch.float64)
    pair = torch.full((2, 2), NEG, dtype=torch.float64)
    c = ch.Chain(unary, pair)
    assert ch.log_partition(c).item() == NEG
    for fn in (ch.viterbi, ch.entropy, ch.marginals, ch.sample, lambda c: ch.kbest(c, 2)):
        with pytest.raises(ConditioningError, match="batch element"):
            fn(c)
    u = unary.clone().requires_grad_(True)
    ch.log_partition(ch.Chain(u, pair)).sum().backward()
    assert torch.equal(u.grad, torch.zeros_like(u))


def test_underflow_in_the_scaled_pass_falls_back_to_log_space():
    # state 1 is 1,000 nats less likely at the start but is the only way on: e^-1000 underflows
    # even in float64, the true log Z is finite
    unary = torch.tensor([[[0.0, -1000.0], [0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    pair = torch.tensor([[NEG, NEG], [0.0, 0.0]], dtype=torch.float64)
    u = unary.clone().requires_grad_(True)
    c = ch.Chain(u, pair)
    logz = ch.log_partition(c)
    assert logz.item() == pytest.approx(-1000.0 + math.log(2), rel=1e-12)
    logz.sum().backward()
    torch.testing.assert_close(u.grad[0, 0], torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(ch.marginals(ch.Chain(unary, pair))[0, 2],
                               torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_float32_is_stable_over_10000_steps():
    g = torch.Generator().manual_seed(0)
    steps, states = 10_000, 8
    unary = (3 * torch.randn(2, steps, states, generator=g)).float()
    pair = (2 * torch.randn(states, states, generator=g)).float()
    pair[0, 1] = NEG
    c32 = ch.Chain(unary, pair)
    c64 = ch.Chain(unary.double(), pair.double())
    ref = ch.semiring_forward(c64, LogSemiring())[0]
    logz = ch.log_partition(c32)
    assert logz.dtype == torch.float32
    torch.testing.assert_close(logz.double(), ref, rtol=1e-6, atol=0)
    marg = ch.marginals(c32)
    assert torch.isfinite(marg).all()
    torch.testing.assert_close(marg.sum(-1), torch.ones(2, steps), rtol=1e-5, atol=1e-5)
    s32, p32 = ch.viterbi(c32)
    s64, p64 = ch.viterbi(c64)
    # float32 rounding may break near-ties differently; the path it finds is optimal to 1e-6
    torch.testing.assert_close(ch.score(c64, p32), s64, rtol=1e-6, atol=0)
    torch.testing.assert_close(s32.double(), s64, rtol=5e-5, atol=0)  # float32 running sum
    assert (p32 == p64).float().mean() > 0.95


@pytest.mark.slow
def test_sampler_g_test_with_power_check():
    c = make_chain(batch=(1,), steps=3, states=3, forbid=0.2, seed=11,
                   mask=torch.tensor([[1, 0, 1, 1]], dtype=torch.bool).reshape(1, 4)[:, :3])
    ((kept, table),) = brute(c)
    z = logsumexp(table.values())
    probs = {y: math.exp(s - z) for y, s in table.items() if s > NEG}
    n = 20_000
    draws = ch.sample(c, n, generator=torch.Generator().manual_seed(5))[:, 0, kept]
    counts: dict = {}
    for y in map(tuple, draws.tolist()):
        counts[y] = counts.get(y, 0) + 1
    assert set(counts) <= set(probs)
    support = sorted(probs)
    observed = [counts.get(y, 0) for y in support]
    assert laws.g_test(observed, [probs[y] for y in support]) > 1e-3
    # power: a slightly wrong target (transition scores doubled) is rejected by the same test
    wrong = ch.Chain(c.unary, 2 * c.pairwise, c.start, c.end, c.mask)
    ((_, wtable),) = brute(wrong)
    wz = logsumexp(wtable.values())
    wprobs = {y: math.exp(s - wz) for y, s in wtable.items() if s > NEG}
    assert laws.g_test(observed, [wprobs.get(y, 0.0) for y in support]) < 1e-3


@given(st.integers(1, 5), st.integers(1, 3), st.integers(0, 2**16), st.booleans())
def test_log_partition_property(steps, states, seed, left):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (2,), generator=g)
    mask = ch.lengths_to_mask(lengths, steps)
    if left:
        mask = mask.flip(-1)
    c = ch.Chain(torch.randn(2, steps, states, generator=g, dtype=torch.float64),
                 torch.randn(states, states, generator=g, dtype=torch.float64), mask=mask)
    for b, (_, table) in enumerate(brute(c)):
        assert ch.log_partition(c)[b].item() == pytest.approx(logsumexp(table.values()), rel=1e-10)


def test_validation_errors():
    u = torch.zeros(2, 3, 4)
    p = torch.zeros(4, 4)
    with pytest.raises(ValidationError, match="unary must be a floating-point"):
        ch.Chain(torch.zeros(2, 3, 4, dtype=torch.long), p)
    with pytest.raises(ValidationError, match="unary must have shape"):
        ch.Chain(torch.zeros(4), p)
    with pytest.raises(ValidationError, match="T >= 1"):
        ch.Chain(torch.zeros(2, 0, 4), p)
    with pytest.raises(ValidationError, match="pairwise must have shape"):
        ch.Chain(u, torch.zeros(3, 3))
    with pytest.raises(ValidationError, match="pairwise must have shape"):
        ch.Chain(u, torch.zeros(5, 4, 4))
    with pytest.raises(ValidationError, match="pairwise must have shape"):
        ch.Chain(u, torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValidationError, match="NaN or \\+inf"):
        ch.Chain(u, torch.full((4, 4), float("nan")))
    with pytest.raises(ValidationError, match="unary contains NaN or \\+inf"):
        ch.Chain(torch.full((2, 3, 4), float("inf")), p)
    ch.Chain(torch.full((2, 3, 4), 3e38), p)  # the sum overflows, the values are fine
    with pytest.raises(ValidationError, match="start must have shape"):
        ch.Chain(u, p, start=torch.zeros(3))
    with pytest.raises(ValidationError, match="end must be a floating-point"):
        ch.Chain(u, p, end=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValidationError, match="mask must be a bool"):
        ch.Chain(u, p, mask=torch.ones(2, 3))
    with pytest.raises(ValidationError, match="keeps no position in batch element"):
        ch.Chain(u, p, mask=torch.tensor([[1, 0, 0], [0, 0, 0]], dtype=torch.bool))
    c = ch.Chain(u, p)
    with pytest.raises(ValidationError, match="states must have shape"):
        ch.score(c, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValidationError, match="states must lie in"):
        ch.score(c, torch.full((2, 3), 4))
    with pytest.raises(ValueError, match="num_samples"):
        ch.sample(c, 0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        ch.kbest(c, 0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        KMaxSemiring(1.5)


def test_overflow_of_scaled_backward_messages_falls_back_to_log_space():
    # state 1 starts 720 nats behind (forward weight ~1e-313) but is the only state that can be
    # at position 2; the scaled backward message of state 1 overflows, the answer is not affected
    unary = torch.tensor([[[0.0, -720.0], [-800.0, 0.0]]], dtype=torch.float64)
    pair = torch.tensor([[0.0, NEG], [NEG, 0.0]], dtype=torch.float64)
    u = unary.clone().requires_grad_(True)
    p = pair.clone().requires_grad_(True)
    logz = ch.log_partition(ch.Chain(u, p))
    assert logz.item() == pytest.approx(math.log(math.exp(-800) + math.exp(-720)), rel=1e-12)
    logz.backward()
    want = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]], dtype=torch.float64)
    torch.testing.assert_close(u.grad, want, **TOL)
    torch.testing.assert_close(p.grad, torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=torch.float64),
                               **TOL)
    torch.testing.assert_close(ch.marginals(ch.Chain(unary, pair)), want, **TOL)


def test_log_space_recursion_has_finite_gradients_with_unreachable_states():
    # state 2 can never be entered: torch.logsumexp would give NaN gradients, ours gives zeros
    c = make_chain(kind="shared", seed=9)
    pair = c.pairwise.clone()
    pair[:, 2] = NEG
    leaves = [t.clone().requires_grad_(True) for t in (c.unary, pair, c.start, c.end)]
    ch.semiring_forward(ch.Chain(*leaves), LogSemiring()).sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in leaves)
    torch.testing.assert_close(leaves[0].grad, ch.marginals(ch.Chain(c.unary, pair, c.start,
                                                                      c.end)), **TOL)


def _brute_log_z(u: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    steps, states = u.shape[-2:]
    ys = torch.tensor(list(itertools.product(range(states), repeat=steps)))
    scores = u[:, torch.arange(steps), ys].sum(-1) + p[ys[:, :-1], ys[:, 1:]].sum(-1)
    return torch.logsumexp(scores, -1)


@pytest.mark.parametrize("scale", [200.0, 600.0])
def test_log_partition_of_extreme_potentials_equals_enumeration(scale):
    # potentials this far apart underflow in the scaled pass (products or single entries): those
    # chains are recomputed in log space (the scaled pass alone was off by up to 160 nats here)
    g = torch.Generator().manual_seed(1)
    u = torch.randn(256, 6, 4, dtype=torch.float64, generator=g) * scale
    p = torch.randn(4, 4, dtype=torch.float64, generator=g) * scale
    torch.testing.assert_close(ch.log_partition(ch.Chain(u, p)), _brute_log_z(u, p),
                               rtol=1e-13, atol=0)


def test_float32_log_partition_of_large_potentials_matches_float64_log_space():
    g = torch.Generator().manual_seed(2)
    u = torch.randn(256, 30, 6, dtype=torch.float64, generator=g) * 30
    p = torch.randn(6, 6, dtype=torch.float64, generator=g) * 30
    ref = ch.semiring_forward(ch.Chain(u, p), LogSemiring())[0]
    got = ch.log_partition(ch.Chain(u.float(), p.float())).double()
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=0)


def _fall_behind_and_recover(one_step: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Two states that never switch after the first step, in float32. State 1 falls 120 nats
    behind, either 40 nats a step (`one_step` False) or in one step of a -60 transition times a
    -60 unary score; then state 0 falls behind by as much, so both paths end with equal scores.
    No potential is more than 60 nats below the largest of its kind (float32's least normal
    number is e^-87.3), and no step's mass below e^-40; the scaled pass flushes state 1's
    forward entry to zero on the way."""
    u = torch.zeros(1, 7, 2)
    pair = torch.tensor([[0.0, NEG], [NEG, 0.0]])
    if one_step:  # one step matrix per position: the switch 0 -> 1 is allowed at step 1 only
        pair = pair.expand(1, 7, 2, 2).clone()
        pair[0, 1, 0, 1] = -60.0
        u[0, 1, 1] = -60.0
        u[0, 0, 1] = NEG
        u[0, 4:, 0] = -40.0
    else:
        u[0, :3, 1] = -40.0
        u[0, 3:6, 0] = -40.0
    return u, pair


@pytest.mark.parametrize("one_step", [False, True])
def test_float32_path_that_falls_behind_and_recovers_keeps_its_mass(one_step):
    # the scaled pass alone returned log Z short by log 2 (the lost path's half) with no error
    u, pair = _fall_behind_and_recover(one_step)
    ref64 = ch.Chain(u.double(), pair.double())
    ref = ch.semiring_forward(ref64, LogSemiring())[0]
    assert ref.item() == pytest.approx(-120.0 + math.log(2), abs=1e-12)
    uu = u.clone().requires_grad_(True)
    logz = ch.log_partition(ch.Chain(uu, pair))
    torch.testing.assert_close(logz.double(), ref, rtol=1e-6, atol=0)
    logz.sum().backward()
    torch.testing.assert_close(uu.grad.double(), ch.marginals(ref64), rtol=0, atol=1e-6)
    torch.testing.assert_close(ch.marginals(ch.Chain(u, pair)).double(), ch.marginals(ref64),
                               rtol=0, atol=1e-6)
    assert ch.marginals(ref64)[0, -1, 1].item() == pytest.approx(0.5, abs=1e-12)
    # the training objective: log p(y) of the lane left behind, and its gradient
    y = torch.ones(1, u.shape[1], dtype=torch.long)
    if one_step:
        y[0, 0] = 0
    uu.grad = None
    lp = ch.log_prob(ch.Chain(uu, pair), y)
    assert lp.item() == pytest.approx(-math.log(2), abs=1e-5)
    lp.sum().backward()
    onehot = torch.nn.functional.one_hot(y, 2).double()
    torch.testing.assert_close(uu.grad.double(), onehot - ch.marginals(ref64), rtol=0, atol=1e-6)


def test_float32_digits_lost_before_the_rescaling_are_caught():
    # a step's product x_{t-1} @ E_t is subnormal when the previous step's mass is small, and the
    # division by that mass lifts it back to a normal number: the digits were lost all the same
    # (the scaled pass alone gave -103.279 for -103.5, with no sign)
    steps = 6
    u = torch.zeros(1, steps, 2)
    u[0, 0] = torch.tensor([0.0, -60.0])
    u[0, 1] = torch.tensor([-43.0, 0.0])
    u[0, 3:, 1] = -40.0
    pair = torch.tensor([[0.0, NEG], [NEG, 0.0]]).expand(1, steps, 2, 2).clone()
    pair[0, 2, 0, 0] = -60.5
    ref64 = ch.Chain(u.double(), pair.double())
    torch.testing.assert_close(ch.log_partition(ch.Chain(u, pair)).double(),
                               ch.semiring_forward(ref64, LogSemiring())[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(ch.marginals(ch.Chain(u, pair)).double(), ch.marginals(ref64),
                               rtol=0, atol=1e-6)


def test_bfloat16_chain_with_forbidden_states():
    g = torch.Generator().manual_seed(5)
    u = torch.randn(2, 5, 3, generator=g)
    u[0, 2, 1] = NEG
    p = torch.zeros(3, 3)
    p[0, 1] = NEG
    got = ch.log_partition(ch.Chain(u.bfloat16(), p.bfloat16()))
    assert got.dtype == torch.bfloat16
    ref = ch.semiring_forward(ch.Chain(u.bfloat16().double(), p.double()), LogSemiring())[0]
    torch.testing.assert_close(got.double(), ref, rtol=1e-2, atol=0)


@pytest.mark.parametrize("dtype, unary, end", [
    (torch.float32, [0.0, -80.0, -50.0, NEG], [NEG, -20.0, -50.0, 0.0]),
    (torch.float64, [0.0, -400.0, NEG], [NEG, -340.0, 0.0])])
def test_end_products_below_tiny_are_caught(dtype, unary, end):
    # the mass sits on states whose end score is low, the largest end score on a state no path
    # reaches: each gap is within range, their products are subnormal (the pass alone gave
    # -99.290 for -99.307 in float32, and NaN marginals)
    u = torch.tensor([[unary]], dtype=dtype)
    e = torch.tensor([end], dtype=dtype)
    p = torch.zeros(len(unary), len(unary), dtype=dtype)
    c64 = ch.Chain(u.double(), p.double(), None, e.double())
    ref = ch.semiring_forward(c64, LogSemiring())[0]
    torch.testing.assert_close(ch.log_partition(ch.Chain(u, p, None, e)).double(), ref,
                               rtol=1e-6, atol=0)
    torch.testing.assert_close(ch.marginals(ch.Chain(u, p, None, e)).double(), ch.marginals(c64),
                               rtol=0, atol=1e-6)
    uu = u.clone().requires_grad_(True)
    ch.log_prob(ch.Chain(uu, p, None, e), torch.tensor([[1]])).sum().backward()
    want = torch.nn.functional.one_hot(torch.tensor([[1]]), len(unary)) - ch.marginals(c64)
    torch.testing.assert_close(uu.grad.double(), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_chains_fall_back_in_float32(dtype):
    # rows the scaled pass cannot settle go to log space in float32, not in the input's
    # precision: a soft mask of -1e4 (also at a masked position), and float16 lanes of +-2e4
    u = torch.tensor([[[4.0, 4.5], [4.3, 3.0], [-4.1, -3.6], [-4.3, -4.0], [0.0, -1e4]]])
    p = torch.zeros(2, 2)
    for mask in (None, torch.tensor([[True] * 4 + [False]])):
        got = ch.log_partition(ch.Chain(u.to(dtype), p.to(dtype), mask=mask))
        ref = ch.semiring_forward(ch.Chain(u.to(dtype).double(), p.double(), mask=mask),
                                  LogSemiring())[0]
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), ref, rtol=0, atol=1e-2)
    if dtype is torch.float16:
        lanes = torch.zeros(1, 8, 2, dtype=dtype)
        lanes[0, :4, 0], lanes[0, 4:, 0] = 2e4, -2e4
        pl = torch.tensor([[0.0, NEG], [NEG, 0.0]], dtype=dtype)
        assert ch.log_normaliser(ch.Chain(lanes, pl)).item() == pytest.approx(math.log(2), abs=1e-3)
        torch.testing.assert_close(ch.marginals(ch.Chain(lanes, pl))[0, -1].float(),
                                   torch.tensor([0.5, 0.5]), rtol=0, atol=1e-3)


def test_minus_infinity_at_masked_positions_changes_nothing():
    # padding written as -inf is read as 0: same log Z, marginals and gradient as any other
    # padding, and no chain is sent to the log-space path for it (it used to be, every one)
    g = torch.Generator().manual_seed(6)
    u = torch.randn(4, 7, 3, generator=g)
    p = torch.randn(3, 3, generator=g)
    mask = ch.lengths_to_mask(torch.tensor([7, 5, 2, 6]), 7)
    mask[3, 2] = False  # a hole, not only right padding
    outs = []
    for fill in (0.0, NEG):
        x = u.masked_fill(~mask[..., None], fill).requires_grad_(True)
        c = ch.Chain(x, p, mask=mask)
        logz = ch.log_partition(c)
        logz.sum().backward()
        outs.append((logz.detach(), ch.marginals(c), x.grad.masked_fill(~mask[..., None], 0.0)))
        compact = ch._compact(ch.Chain(x.detach(), p, mask=mask))
        assert not ch._scaled_backward(compact, ch._scaled_forward(compact))[2].any()
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_float32_log_partition_never_drops_a_path_silently():
    # lanes that never switch, whose scores wander tens of nats apart and end level (each lane's
    # scores sum to zero), so a lane left behind mid-way carries its share of the mass at the
    # end: the scaled float32 pass alone dropped such lanes without a sign. Every result must
    # match float64 log space (log Z = log S exactly) to float32 rounding of the scores.
    g = torch.Generator().manual_seed(4)
    worst = 0.0
    for trial in range(200):
        states, steps = 2 + trial % 3, 4 + trial % 9
        w = torch.randn(16, steps, states, dtype=torch.float64, generator=g) * (20 + trial % 40)
        u = (w - w.mean(1, keepdim=True)).float()
        p = torch.full((states, states), NEG).fill_diagonal_(0.0)
        ref = ch.semiring_forward(ch.Chain(u.double(), p.double()), LogSemiring())[0]
        got = ch.log_partition(ch.Chain(u, p)).double()
        size = u.double().abs().sum((1, 2))
        worst = max(worst, float(((got - ref).abs() / size).max()))
    assert worst < 1e-6


def test_gradient_of_extreme_potentials_is_the_log_space_gradient():
    g = torch.Generator().manual_seed(3)
    u = (torch.randn(64, 6, 4, dtype=torch.float64, generator=g) * 200).requires_grad_(True)
    p = (torch.randn(4, 4, dtype=torch.float64, generator=g) * 200).requires_grad_(True)
    w = torch.rand(64, dtype=torch.float64, generator=g)
    du, dp = torch.autograd.grad((ch.log_partition(ch.Chain(u, p)) * w).sum(), (u, p))
    ru, rp = torch.autograd.grad(
        (ch.semiring_forward(ch.Chain(u, p), LogSemiring())[0] * w).sum(), (u, p))
    torch.testing.assert_close(du, ru, rtol=0, atol=1e-10)
    torch.testing.assert_close(dp, rp, rtol=0, atol=1e-9)
