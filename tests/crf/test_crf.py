"""LinearChainCRF and RegCCRF against brute-force enumeration over label sequences."""

from __future__ import annotations

import itertools
import math

import pyro
import pytest
import torch

import crf
from condprob import laws
from condprob.automata import DFA
from condprob.errors import ValidationError

NEG = float("-inf")
TOL = dict(rtol=1e-10, atol=1e-10)
LABELS, BIO = crf.bio(["P", "Q"])  # O B-P I-P B-Q I-Q
MASK = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1], [1, 0, 1, 0]], dtype=torch.bool)


def model(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    m = crf.LinearChainCRF(LABELS, init_scale=1.0) if kind == "crf" else crf.RegCCRF(
        LABELS, BIO, init_scale=1.0)
    return m.double()


def emissions(seed: int = 1, shape=(3, 4, 5)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def table(m, em, mask, allowed=None):
    """flattened batch -> (kept positions, {labels: score}) over the model's support."""
    out = []
    for b in range(em.shape[0]):
        kept = mask[b].nonzero().flatten().tolist()
        scores = {}
        for y in itertools.product(range(len(LABELS)), repeat=len(kept)):
            if isinstance(m, crf.RegCCRF) and not m.dfa.accepts([LABELS[i] for i in y]):
                continue
            if allowed is not None and not all(allowed[b, t, j] for t, j in zip(kept, y,
                                                                                 strict=True)):
                continue
            s = m.start[y[0]] + m.end[y[-1]] + sum(em[b, t, j] for t, j in zip(kept, y,
                                                                              strict=True))
            s = s + sum(m.transitions[i, j] for i, j in zip(y[:-1], y[1:], strict=True))
            scores[y] = s.item()
        out.append((kept, scores))
    return out


def lse(vals):
    vals = list(vals)
    mx = max(vals)
    return mx + math.log(sum(math.exp(v - mx) for v in vals))


@pytest.mark.parametrize("kind", ["crf", "reg"])
def test_every_quantity_matches_brute_force(kind):
    m, em = model(kind), emissions()
    with torch.no_grad():
        logz = m.log_partition(em, MASK)
        marg = m.marginals(em, MASK)
        best, path = m.decode(em, MASK)
        kscores, kpaths = m.top_k(em, 3, MASK)
        ent = m.entropy(em, MASK)
        samples = m.sample(em, (300,), mask=MASK, generator=torch.Generator().manual_seed(0))
    for b, (kept, scores) in enumerate(table(m, em, MASK)):
        z = lse(scores.values())
        assert logz[b].item() == pytest.approx(z, rel=1e-10)
        want = torch.zeros(4, len(LABELS), dtype=torch.float64)
        for y, s in scores.items():
            for t, j in zip(kept, y, strict=True):
                want[t, j] += math.exp(s - z)
        torch.testing.assert_close(marg[b], want, **TOL)
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        assert tuple(path[b, kept].tolist()) == ranked[0][0]
        assert best[b].item() == pytest.approx(ranked[0][1], rel=1e-12)
        for r in range(3):
            assert tuple(kpaths[r, b, kept].tolist()) == ranked[r][0]
            assert kscores[r, b].item() == pytest.approx(ranked[r][1], rel=1e-12)
        h = -sum(math.exp(s - z) * (s - z) for s in scores.values())
        assert ent[b].item() == pytest.approx(h, rel=1e-10)
        for s in samples[:, b]:
            assert tuple(s[kept].tolist()) in scores
            assert (s[[t for t in range(4) if t not in kept]] == -1).all()
        gold = torch.zeros(3, 4, dtype=torch.long)
        gold[b, kept] = torch.tensor(ranked[-1][0])
        lp = m.log_prob(em, gold, MASK)[b].item()
        assert lp == pytest.approx(ranked[-1][1] - z, rel=1e-10)


def test_regccrf_gives_zero_probability_outside_the_language():
    m, em = model("reg"), emissions()
    bad = torch.tensor([[0, 2, 2, 0], [0, 0, 4, 4], [1, 2, 3, 4]])  # I-P after O; I-Q after O
    lp = m.log_prob(em, bad)
    assert lp[0].item() == NEG and lp[1].item() == NEG and math.isfinite(lp[2].item())
    assert m.accepts(bad).tolist() == [False, False, True]
    with pytest.raises(ValidationError, match="outside the model's language"):
        m.nll(em, bad)
    # the plain CRF gives the same sequences positive probability
    assert torch.isfinite(model("crf").log_prob(em, bad)).all()
    # everything the constrained model outputs is in the language
    with torch.no_grad():
        assert m.accepts(m.decode(em)[1]).all()
        assert m.accepts(m.top_k(em, 10)[1].reshape(-1, 4)).all()
        assert m.accepts(m.sample(em, (500,)).reshape(-1, 4)).all()


@pytest.mark.parametrize("kind", ["crf", "reg"])
def test_partial_labels_and_gradients(kind):
    m, em = model(kind), emissions(seed=4)
    allowed = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(2)) < 0.6
    allowed[..., 0] = True  # keep O everywhere so the constrained language is not emptied
    pl = m.partial_log_likelihood(em, allowed, MASK)
    for b, ((_, sub), (_, full)) in enumerate(zip(table(m, em, MASK, allowed),
                                                  table(m, em, MASK), strict=True)):
        assert pl[b].item() == pytest.approx(lse(sub.values()) - lse(full.values()), rel=1e-10)
    e = em.clone().requires_grad_(True)
    m.log_partition(e, MASK).sum().backward()
    torch.testing.assert_close(e.grad, m.marginals(em, MASK).detach(), **TOL)


def test_nll_reductions_and_masks():
    m, em = model("reg"), emissions()
    with torch.no_grad():
        gold = m.decode(em, MASK)[1].clamp_min(0)
    none = m.nll(em, gold, MASK, reduction="none")
    torch.testing.assert_close(none, -m.log_prob(em, gold, MASK))
    torch.testing.assert_close(m.nll(em, gold, MASK, "sum"), none.sum())
    torch.testing.assert_close(m(em, gold, MASK), none.mean())
    torch.testing.assert_close(m.nll(em, gold, MASK, "token_mean"), none.sum() / MASK.sum())
    torch.testing.assert_close(m.nll(em, gold, None, "token_mean"), m.nll(em, gold, None,
                                                                          "sum") / 12)
    # left padding equals the same sequences right padded
    left = MASK[1]
    right = torch.tensor([1, 1, 1, 0], dtype=torch.bool)
    em_r = torch.cat([em[1, 1:], em[1, :1]]).unsqueeze(0)
    g_r = torch.cat([gold[1, 1:], gold[1, :1]]).unsqueeze(0)
    torch.testing.assert_close(m.log_prob(em[1:2], gold[1:2], left[None]),
                               m.log_prob(em_r, g_r, right[None]), **TOL)


def test_dfa_constraint_and_constrained_decoding():
    dfa = DFA.from_regex(BIO, LABELS)
    m = crf.RegCCRF(LABELS, dfa).double()
    assert m.num_states == 5 and m.dfa.num_states == 3
    free = model("crf")
    em = emissions()
    best, path = crf.constrained_decode(free, BIO, em)
    ref = crf.RegCCRF(LABELS, BIO).double()
    ref.load_state_dict(free.state_dict())
    torch.testing.assert_close(best, ref.decode(em)[0], **TOL)
    assert dfa.accepts_batch(path).all()


def test_scheme_helpers():
    for scheme, good, bad in [
        (crf.bio, ["B-X", "I-X", "O", "B-Y"], ["O", "I-X"]),
        (crf.bioes, ["S-X", "B-Y", "I-Y", "E-Y", "O"], ["B-X", "O"]),
        (crf.iob1, ["I-X", "B-X", "O", "I-Y"], ["O", "B-X"]),
    ]:
        labels, pattern = scheme(["X", "Y"])
        dfa = DFA.from_regex(pattern, labels)
        assert dfa.accepts(good) and not dfa.accepts(bad)
    labels, pattern = crf.bio(["a b", "c|d"])
    assert DFA.from_regex(pattern, labels).accepts(["B-a b", "I-a b", "B-c|d"])
    with pytest.raises(ValueError, match="at least one"):
        crf.bio([])
    with pytest.raises(ValueError, match="distinct"):
        crf.bioes(["X", "X"])
    with pytest.raises(ValueError, match="non-empty strings"):
        crf.iob1(['a"b'])


def test_distribution_in_pyro():
    m, em = model("reg"), emissions(shape=(2, 3, 5))
    d = m.distribution(em)
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    support = d.enumerate_support()
    assert support.shape == (125, 2, 3)
    lp = d.log_prob(support)
    torch.testing.assert_close(torch.logsumexp(lp, 0), torch.zeros(2, dtype=torch.float64),
                               **TOL)
    assert d.enumerate_support(expand=False).shape == (125, 1, 3)
    torch.testing.assert_close(d.entropy(), -(lp.exp() * lp.nan_to_num(neginf=0)).sum(0), **TOL)
    assert m.accepts(d.mode).all() and d.sample((4, 5)).shape == (4, 5, 2, 3)
    assert d.expand((3, 2)).batch_shape == (3, 2)

    def pyro_model():
        return pyro.sample("tags", m.distribution(em))

    tr = pyro.poutine.trace(pyro_model).get_trace()
    y = tr.nodes["tags"]["value"]
    torch.testing.assert_close(tr.log_prob_sum(), m.log_prob(em, y).sum())
    with pytest.raises(ValidationError, match="unmasked"):
        m.distribution(em, torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
                       ).enumerate_support()
    with pytest.raises(ValidationError, match="limit"):
        m.distribution(emissions(shape=(1, 9, 5))).enumerate_support()


def test_errors():
    with pytest.raises(ValidationError, match="positive"):
        crf.LinearChainCRF(0)
    with pytest.raises(ValidationError, match="distinct"):
        crf.LinearChainCRF(["a", "a"])
    with pytest.raises(ValidationError, match="label names"):
        crf.RegCCRF(3, "a")
    with pytest.raises(ValidationError, match="unknown symbol 'B-Z'"):
        crf.RegCCRF(LABELS, "(O | B-Z)*")
    with pytest.raises(ValidationError, match="unbalanced"):
        crf.RegCCRF(LABELS, "(O | B-P")
    empty = DFA.from_regex("O", LABELS).intersection(DFA.from_regex("B-P", LABELS))
    with pytest.raises(ValidationError, match="accepts no sequence"):
        crf.RegCCRF(LABELS, empty)
    with pytest.raises(ValidationError, match="symbols must be the CRF's labels"):
        crf.RegCCRF(LABELS, DFA.from_regex("a", ["a"]))
    m, em = model("crf"), emissions()
    with pytest.raises(ValidationError, match="emissions have 4 labels"):
        m.log_partition(em[..., :4])
    with pytest.raises(ValidationError, match="emissions must be a tensor"):
        m.log_partition(em[0, 0])
    with pytest.raises(ValidationError, match="mask must be a bool"):
        m.log_partition(em, MASK.long())
    with pytest.raises(ValidationError, match="tags must have shape"):
        m.log_prob(em, torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ValidationError, match="tags must lie"):
        m.log_prob(em, torch.full((3, 4), 5))
    with pytest.raises(ValidationError, match="reduction"):
        m.nll(em, torch.zeros(3, 4, dtype=torch.long), reduction="avg")
    with pytest.raises(ValidationError, match="allowed must be a bool"):
        m.partial_log_likelihood(em, torch.ones(3, 4, 5))
    # a length the language cannot produce: decoding says so instead of returning garbage
    even = crf.RegCCRF(["a", "x"], "(a x)*").double()
    assert even.log_partition(emissions(shape=(1, 3, 2))).item() == NEG
    with pytest.raises(ValueError, match="weight zero"):
        even.decode(emissions(shape=(1, 3, 2)))


@pytest.mark.slow
def test_large_automaton_counting_constraint():
    # semantic-role style: 5 core roles at most once each among 20 role types (41 BIO tags)
    core = [f"A{i}" for i in range(5)]
    roles, span = crf.bio(core + [f"M{i}" for i in range(15)])
    dfa = DFA.from_regex(span, roles)
    for r in core:
        dfa = dfa.intersection(DFA.from_regex(f'[^"B-{r}"]* ("B-{r}" [^"B-{r}"]*)?', roles))
    # states: (set of used core roles) x (outside, or inside a type whose B- was read)
    assert dfa.num_states == 2**5 * 16 + 5 * 2**4
    m = crf.RegCCRF(roles, dfa)
    g = torch.Generator().manual_seed(0)
    em = torch.randn(2, 12, len(roles), generator=g) + 3 * (
        torch.arange(len(roles)) == roles.index("B-A0")).float()  # push towards repeated B-A0
    with torch.no_grad():
        samples = m.sample(em, (40,), generator=g).reshape(-1, 12)
        best = m.decode(em)[1]
    assert m.accepts(samples).all() and m.accepts(best).all()
    counts = torch.stack([(samples == roles.index(f"B-{r}")).sum(-1) for r in core])
    assert counts.max() <= 1 and (counts == 1).any()
    free = crf.LinearChainCRF(roles)
    free.load_state_dict(m.state_dict())
    assert (free.decode(em)[1] == roles.index("B-A0")).sum(-1).max() > 1  # the free CRF repeats
    loss = m.nll(em.requires_grad_(True), best)
    loss.backward()
    assert torch.isfinite(em.grad).all()


@pytest.mark.slow
def test_regccrf_sampler_g_test_with_power_check():
    # exact law by enumeration; the wrong target adds the transition scores twice (ccrf 0.0.3's
    # sampler defect) and must be rejected by the same test
    m, em = model("reg", seed=3), emissions(seed=5, shape=(1, 3, 5))
    n = 20_000
    with torch.no_grad():
        draws = m.sample(em, (n,), generator=torch.Generator().manual_seed(1))[:, 0]
    counts: dict = {}
    for y in map(tuple, draws.tolist()):
        counts[y] = counts.get(y, 0) + 1

    def law(scale: float) -> dict:
        ((_, scores),) = table(m, em, torch.ones(1, 3, dtype=torch.bool))
        extra = {y: (scale - 1) * sum(m.transitions[i, j].item()
                                      for i, j in zip(y[:-1], y[1:], strict=True))
                 for y in scores}
        z = lse(s + extra[y] for y, s in scores.items())
        return {y: math.exp(s + extra[y] - z) for y, s in scores.items()}

    exact, wrong = law(1.0), law(2.0)
    assert set(counts) <= set(exact)
    support = sorted(exact)
    observed = [counts.get(y, 0) for y in support]
    assert laws.g_test(observed, [exact[y] for y in support]) > 1e-3
    assert laws.g_test(observed, [wrong[y] for y in support]) < 1e-3
