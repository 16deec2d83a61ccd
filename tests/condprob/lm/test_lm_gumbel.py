"""Gumbel-max, posterior noise, counterfactual generation, Gumbel-top-k, stochastic beam search."""

from __future__ import annotations

import itertools

import pytest
import torch

from condprob.errors import ValidationError
from condprob.lm.gumbel import (
    counterfactual,
    gumbel_max,
    gumbel_noise,
    gumbel_topk,
    posterior_gumbel,
    sbs_estimate,
    shift_gumbel,
    stochastic_beam_search,
)
from condprob.lm.kernel import TokenKernel
from condprob.lm.models import BigramLM

LOGITS = torch.tensor([0.5, -1.0, 1.2, 0.0, float("-inf")], dtype=torch.float64)


def test_gumbel_max_law_and_exposed_noise(gtest):
    g = torch.Generator().manual_seed(0)
    tok, noise = gumbel_max(LOGITS.expand(20000, -1), g)
    assert torch.equal(tok, (LOGITS + noise).argmax(-1))
    assert gtest(tok, torch.softmax(LOGITS, -1)) > 1e-3
    assert gtest(tok, torch.softmax(LOGITS * 1.2, -1)) < 1e-6


def test_posterior_noise_explains_the_observation_and_has_the_right_law(gtest):
    g = torch.Generator().manual_seed(1)
    n = 20000
    obs = torch.full((n,), 3)
    noise = posterior_gumbel(LOGITS.expand(n, -1), obs, g)
    assert torch.equal((LOGITS + noise).argmax(-1), obs)
    # Counterfactual under other logits: compare with rejection sampling from the prior noise.
    other = torch.tensor([0.0, 0.7, -0.3, 0.4, 1.0], dtype=torch.float64)
    cf = (other + noise).argmax(-1)
    prior = gumbel_noise((6 * n, 5), g)
    keep = (LOGITS + prior).argmax(-1) == 3
    ref = (other + prior[keep]).argmax(-1)
    law = torch.bincount(ref, minlength=5).double() / keep.sum()
    assert gtest(cf, law) > 1e-3
    fresh = (other + gumbel_noise((n, 5), g)).argmax(-1)
    assert gtest(fresh, law) < 1e-6


def test_shift_gumbel_sets_the_maximum_and_keeps_order():
    g = torch.tensor([[0.3, -1.0, 2.0, float("-inf")]], dtype=torch.float64)
    out = shift_gumbel(g, torch.tensor([0.5], dtype=torch.float64))
    assert out[0, 2] == 0.5 and out[0, 3] == float("-inf")
    assert (out[0, :3].argsort() == g[0, :3].argsort()).all() and (out[0, :3] <= 0.5).all()
    want = -torch.log(torch.exp(-torch.tensor(0.5)) - torch.exp(-torch.tensor(2.0))
                      + torch.exp(-g[0, :2].float()))
    torch.testing.assert_close(out[0, :2].float(), want, atol=1e-6, rtol=0)


def chain_kernel(v=3, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    t = torch.softmax(spread * torch.randn(v, v, generator=g, dtype=torch.float64), -1)
    i = torch.softmax(torch.randn(v, generator=g, dtype=torch.float64), -1)
    return TokenKernel(BigramLM.from_matrix(t, i), v)


def test_counterfactual_without_intervention_reproduces_the_text():
    k = chain_kernel(6)
    g = torch.Generator().manual_seed(2)
    text = k.steps(8).sample(torch.zeros(5, 1, dtype=torch.long), generator=g)
    assert torch.equal(counterfactual(k, text, 1, generator=g), text)


def test_counterfactual_interventions():
    k = chain_kernel(4)
    g = torch.Generator().manual_seed(3)
    text = k.steps(5).sample(torch.zeros(50, 1, dtype=torch.long), generator=g)
    cf = counterfactual(k, text, 1, do={3: 2}, generator=g)
    assert torch.equal(cf[:, :3], text[:, :3]) and (cf[:, 3] == 2).all()
    other = chain_kernel(4, seed=9)
    cf2 = counterfactual(k, text, 1, intervened=other, generator=g)
    assert cf2.shape == text.shape and not torch.equal(cf2, text)
    with pytest.raises(ValidationError, match="outside the generated span"):
        counterfactual(k, text, 1, do={0: 1})
    with pytest.raises(ValidationError, match="share the factual vocabulary"):
        counterfactual(k, text, 1, intervened=chain_kernel(5))


def test_posterior_errors():
    with pytest.raises(ValidationError, match="probability zero"):
        posterior_gumbel(LOGITS, torch.tensor(4))
    with pytest.raises(ValidationError, match="observed tokens of shape"):
        posterior_gumbel(LOGITS, torch.tensor([1, 2]))


def plackett_luce_pairs(p):
    return {(a, b): float(p[a] * p[b] / (1 - p[a]))
            for a, b in itertools.permutations(range(len(p)), 2)}


def test_gumbel_topk_draws_without_replacement(gtest):
    p = torch.softmax(LOGITS, -1)
    g = torch.Generator().manual_seed(4)
    idx, vals = gumbel_topk(LOGITS.expand(20000, -1), 2, g)
    assert (vals[:, 0] >= vals[:, 1]).all() and (idx[:, 0] != idx[:, 1]).all()
    pairs = plackett_luce_pairs(p)
    law = torch.tensor([pairs.get((a, b), 0.0) for a in range(5) for b in range(5)])
    assert gtest(idx[:, 0] * 5 + idx[:, 1], law) > 1e-3
    wrong = torch.tensor([float(p[a] * p[b]) if a != b else 0.0 for a in range(5)
                          for b in range(5)])
    assert gtest(idx[:, 0] * 5 + idx[:, 1], wrong / wrong.sum()) < 1e-6
    with pytest.raises(ValidationError, match="at most the number of tokens"):
        gumbel_topk(LOGITS, 5)


@pytest.mark.slow
def test_stochastic_beam_search_is_sampling_without_replacement_of_sequences(gtest):
    k = chain_kernel(3, spread=2.0)
    seqs = [list(s) for s in itertools.product(range(3), repeat=2)]
    full = torch.tensor([[0, *s] for s in seqs])
    lp = k.steps(2).log_prob(full[:, :1], full).exp()
    pairs = plackett_luce_pairs(lp)
    law = torch.tensor([pairs.get((a, b), 0.0) for a in range(9) for b in range(9)])
    g = torch.Generator().manual_seed(5)
    codes = []
    for _ in range(2000):
        beam = stochastic_beam_search(k, [0], 2, 2, g)
        first, second = (int(s[1]) * 3 + int(s[2]) for s in beam.sequences)
        codes.append(first * 9 + second)
        assert (beam.keys[0] >= beam.keys[1]) and beam.threshold <= beam.keys[1]
    codes = torch.tensor(codes)
    assert gtest(codes, law) > 1e-3
    indep = torch.tensor([float(lp[a] * lp[b]) if a != b else 0.0 for a in range(9)
                          for b in range(9)])
    assert gtest(codes, indep / indep.sum()) < 1e-6


def test_sbs_estimator_is_close_to_the_expectation():
    k = chain_kernel(3, seed=1)
    f = lambda s: (s[:, 1:] == 2).sum(-1).double()  # noqa: E731
    seqs = torch.tensor([[0, *s] for s in itertools.product(range(3), repeat=3)])
    truth = float((k.steps(3).log_prob(seqs[:, :1], seqs).exp() * f(seqs)).sum())
    g = torch.Generator().manual_seed(6)
    est = [float(sbs_estimate(b, f(b.sequences)))
           for b in (stochastic_beam_search(k, [0], 4, 3, g) for _ in range(1500))]
    mean = sum(est) / len(est)
    sd = (sum((e - mean) ** 2 for e in est) / len(est)) ** 0.5 / len(est) ** 0.5
    assert abs(mean - truth) < 4 * sd + 1e-9
    full = stochastic_beam_search(k, [0], 27, 3, g)
    assert full.threshold == float("-inf")
    torch.testing.assert_close(sbs_estimate(full, f(full.sequences)),
                               torch.tensor(truth, dtype=torch.float64), atol=1e-12, rtol=0)


def test_beam_search_errors():
    k = chain_kernel(3)
    with pytest.raises(ValidationError, match="single prefix"):
        stochastic_beam_search(k, [[0], [1]], 2, 2)
    with pytest.raises(ValidationError, match="positive integer"):
        stochastic_beam_search(k, [0], 0, 2)
