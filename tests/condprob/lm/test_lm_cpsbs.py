"""Conditional Poisson sampling and beam search against brute-force enumeration."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from condprob.errors import ValidationError
from condprob.lm.cpsbs import (
    conditional_poisson_sample,
    cp_beam_search,
    horvitz_thompson,
    inclusion_probabilities,
    log_normaliser,
)
from condprob.lm.kernel import TokenKernel
from condprob.lm.models import BigramLM

W = torch.tensor([0.5, 2.0, 1.0, 0.25, 3.0, 0.0, 1.5], dtype=torch.float64)


def brute_sets(w, k):
    sets = list(itertools.combinations(range(len(w)), k))
    weights = torch.tensor([math.prod(float(w[i]) for i in s) for s in sets], dtype=torch.float64)
    return sets, weights


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_normaliser_and_inclusion_probabilities_equal_brute_force(k):
    sets, weights = brute_sets(W, k)
    torch.testing.assert_close(log_normaliser(W.log(), k).exp(), weights.sum(),
                               atol=1e-12, rtol=1e-12)
    brute = torch.zeros(len(W), dtype=torch.float64)
    for s, wt in zip(sets, weights, strict=True):
        brute[list(s)] += wt / weights.sum()
    pi = inclusion_probabilities(W.log(), k)
    torch.testing.assert_close(pi, brute, atol=1e-12, rtol=0)
    assert abs(float(pi.sum()) - k) < 1e-12


def test_sampled_sets_follow_the_design(gtest):
    k = 3
    sets, weights = brute_sets(W, k)
    code = {s: i for i, s in enumerate(sets)}
    draws = conditional_poisson_sample(W.log(), k, 20000, torch.Generator().manual_seed(0))
    assert (draws[:, :-1] > draws[:, 1:]).all()
    idx = torch.tensor([code[tuple(sorted(d))] for d in draws.tolist()])
    assert gtest(idx, weights / weights.sum()) > 1e-3
    flat = torch.tensor([math.prod(float(W[i]) ** 0.8 for i in s) for s in sets])
    assert gtest(idx, flat / flat.sum()) < 1e-6


def tiny_kernel():
    g = torch.Generator().manual_seed(11)
    t = torch.softmax(1.5 * torch.randn(3, 3, generator=g, dtype=torch.float64), -1)
    i = torch.softmax(torch.randn(3, generator=g, dtype=torch.float64), -1)
    return TokenKernel(BigramLM.from_matrix(t, i), 3)


def exact_ht_expectation(kernel, k, steps, f):
    """E[HT estimate] by enumerating every beam the search can produce, with its probability."""
    def rec(seqs, logp, log_incl, prob, t):
        if t == steps:
            return prob * float(horvitz_thompson(f(seqs), logp, log_incl))
        lp = kernel.logits(seqs)
        child = (logp.unsqueeze(-1) + lp).reshape(-1)
        total = 0.0
        if child.numel() <= k:
            options = [(tuple(range(child.numel())), 1.0)]
        else:
            sets, weights = brute_sets(child.exp(), k)
            options = list(zip(sets, (weights / weights.sum()).tolist(), strict=True))
        pi = inclusion_probabilities(child, k) if child.numel() > k else torch.ones(len(child))
        for s, ps in options:
            s = torch.tensor(s)
            parent, tok = s // 3, s % 3
            total += rec(torch.cat([seqs[parent], tok.unsqueeze(-1)], -1), child[s],
                         log_incl[parent] + pi[s].log().double(), prob * ps, t + 1)
        return total
    root = torch.zeros(1, 1, dtype=torch.long)
    return rec(root, torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
               1.0, 0)


def test_horvitz_thompson_is_exactly_unbiased():
    k = tiny_kernel()
    f = lambda s: (s[:, 1:] == 1).sum(-1).double() + s[:, -1].double() ** 2  # noqa: E731
    seqs = torch.tensor([[0, *s] for s in itertools.product(range(3), repeat=2)])
    truth = float((k.steps(2).log_prob(seqs[:, :1], seqs).exp() * f(seqs)).sum())
    assert abs(exact_ht_expectation(k, 2, 2, f) - truth) < 1e-12


def test_beam_search_runs_and_estimates():
    k = tiny_kernel()
    g = torch.Generator().manual_seed(1)
    beam = cp_beam_search(k, [0], 2, 3, g)
    assert beam.sequences.shape == (2, 4) and len(set(map(tuple, beam.sequences.tolist()))) == 2
    torch.testing.assert_close(beam.log_probs, k.steps(3).log_prob(beam.sequences[:, :1],
                                                                  beam.sequences))
    assert (beam.log_inclusion <= 0).all()
    full = cp_beam_search(k, [0], 27, 3, g)
    assert (full.log_inclusion == 0).all()
    torch.testing.assert_close(horvitz_thompson(torch.ones(27), full.log_probs.float(),
                                                full.log_inclusion.float()), torch.tensor(1.0))


def test_errors():
    with pytest.raises(ValidationError, match=r"integer in \[1, 6\]"):
        inclusion_probabilities(W.log(), 7)
    with pytest.raises(ValidationError, match="1-D floating"):
        log_normaliser(torch.ones(2, 2), 1)
    with pytest.raises(ValidationError, match="NaN"):
        conditional_poisson_sample(torch.tensor([0.0, float("nan")]), 1)
    with pytest.raises(ValidationError, match="single prefix"):
        cp_beam_search(tiny_kernel(), [[0], [1]], 2, 2)
    with pytest.raises(ValidationError, match="positive integer"):
        cp_beam_search(tiny_kernel(), [0], 0, 2)
