"""Speculative sampling: the output law is exactly the target's (enumeration and G-tests)."""

from __future__ import annotations

import itertools

import pytest
import torch

from condprob.errors import ValidationError
from condprob.lm.kernel import TokenKernel
from condprob.lm.models import BigramLM
from condprob.lm.speculative import recursive_rejection, speculative_generate, speculative_step

P = torch.tensor([0.5, 0.2, 0.2, 0.1, 0.0], dtype=torch.float64)
Q = torch.tensor([0.1, 0.4, 0.2, 0.1, 0.2], dtype=torch.float64)


def exact_output_law(p, q, k, without_replacement):
    """Law of the recursive rejection sampler, enumerating every draft tuple."""
    law = torch.zeros_like(p)
    v = len(p)
    for drafts in itertools.product(range(v), repeat=k):
        if without_replacement and len(set(drafts)) < k:
            continue
        prob, qi = 1.0, q.clone()
        for x in drafts:
            prob *= float(qi[x])
            if without_replacement:
                qi = qi.clone()
                qi[x] = 0
                qi = qi / qi.sum()
        pi, qi, reach = p.clone(), q.clone(), prob
        for x in drafts:
            acc = min(1.0, float(pi[x] / qi[x])) if qi[x] > 0 else 0.0
            law[x] += reach * acc
            reach *= 1 - acc
            r = torch.clamp(pi - qi, min=0)
            pi = r / r.sum() if r.sum() > 0 else pi
            if without_replacement:
                qi = qi.clone()
                qi[x] = 0
                qi = qi / qi.sum()
        law += reach * pi
    return law


@pytest.mark.parametrize("k, wor", [(1, False), (2, False), (3, False), (2, True), (3, True)])
def test_recursive_rejection_output_law_is_exactly_the_target(k, wor):
    torch.testing.assert_close(exact_output_law(P, Q, k, wor), P, atol=1e-12, rtol=0)


def draws_for(k, wor, n, g):
    if wor:
        drafts = torch.stack([torch.multinomial(Q, k, replacement=False, generator=g)
                              for _ in range(n)])
    else:
        drafts = torch.multinomial(Q, n * k, replacement=True, generator=g).reshape(n, k)
    return drafts


@pytest.mark.parametrize("k, wor", [(1, False), (3, False), (3, True)])
def test_recursive_rejection_sampler_law(k, wor, gtest):
    g = torch.Generator().manual_seed(k + 10 * wor)
    n = 20000
    tok, which = recursive_rejection(P.expand(n, -1), Q.expand(n, -1), draws_for(k, wor, n, g),
                                     wor, g)
    assert gtest(tok, P) > 1e-3
    assert gtest(tok, torch.tensor([0.45, 0.25, 0.2, 0.1, 0.0])) < 1e-6
    assert ((which >= 0) & (which <= k)).all()


def test_power_of_the_law_test_against_a_naive_sampler(gtest):
    """Accepting every draft (no correction) gives the draft law, which the test rejects."""
    g = torch.Generator().manual_seed(0)
    drafts = draws_for(1, False, 20000, g)[:, 0]
    assert gtest(drafts, P) < 1e-6


def tiny(seed, v=3):
    g = torch.Generator().manual_seed(seed)
    t = torch.softmax(torch.randn(v, v, generator=g, dtype=torch.float64), -1)
    i = torch.softmax(torch.randn(v, generator=g, dtype=torch.float64), -1)
    return TokenKernel(BigramLM.from_matrix(t, i), v)


@pytest.mark.slow
@pytest.mark.parametrize("num_drafts", [1, 3])
def test_speculative_generation_has_the_target_sequence_law(gtest, num_drafts):
    target, draft = tiny(0), tiny(1)
    seqs = torch.tensor([[0, *s] for s in itertools.product(range(3), repeat=3)])
    law = target.steps(3).log_prob(seqs[:, :1], seqs).exp()
    wrong = draft.steps(3).log_prob(seqs[:, :1], seqs).exp()
    g = torch.Generator().manual_seed(2)
    codes, rounds = [], 0
    for _ in range(1500):
        s, r = speculative_generate(target, draft, [0], 3, n_draft=2, generator=g,
                                    num_drafts=num_drafts)
        codes.append(int(s[0, 1]) * 9 + int(s[0, 2]) * 3 + int(s[0, 3]))
        rounds += r
    codes = torch.tensor(codes)
    assert gtest(codes, law) > 1e-3
    assert gtest(codes, wrong) < 1e-6
    assert rounds < 1500 * 3


class Teacher(torch.nn.Module):
    """A bigram model that also gives every position's logits in one call (and counts calls)."""

    def __init__(self, kernel):
        super().__init__()
        self.bigram, self.calls = kernel.model, 0

    def forward(self, prefix):
        return self.bigram(prefix)

    def all_logits(self, tokens):
        self.calls += 1
        return torch.stack([self.bigram(tokens[:, :t]) for t in range(tokens.shape[1] + 1)], 1)


def test_more_drafts_accept_more_tokens_per_target_call():
    target = TokenKernel(Teacher(tiny(0)), 3)
    draft = tiny(1)
    rounds = {}
    for k in (1, 4):
        g = torch.Generator().manual_seed(0)
        target.model.calls = 0
        total = sum(speculative_generate(target, draft, [0], 12, n_draft=3, generator=g,
                                         num_drafts=k)[1] for _ in range(40))
        assert target.model.calls == total
        rounds[k] = total
    assert rounds[4] < rounds[1]


def test_speculative_step_accepts_equal_laws_and_adds_a_bonus():
    p = torch.softmax(torch.randn(4, 3, 5, dtype=torch.float64), -1)
    drafts = torch.multinomial(p[:, 0], 1).repeat(1, 2)
    q = p[:, :2].clone()
    q[:, 1] = p[:, 1]
    tokens, count = speculative_step(p, q, drafts)
    assert (count == 3).all() and torch.equal(tokens[:, :2], drafts)


def test_errors():
    with pytest.raises(ValidationError, match="sum to 1"):
        recursive_rejection(P * 2, Q, torch.zeros(1, 1, dtype=torch.long))
    with pytest.raises(ValidationError, match="negative probability"):
        recursive_rejection(-P, Q, torch.zeros(1, 1, dtype=torch.long))
    with pytest.raises(ValidationError, match=r"\(B, V\) and drafts"):
        recursive_rejection(P.expand(2, -1), Q.expand(2, -1), torch.zeros(3, 1))
    with pytest.raises(ValidationError, match="probability zero under the draft"):
        recursive_rejection(P.expand(1, -1), P.expand(1, -1), torch.tensor([[4]]))
    with pytest.raises(ValidationError, match="expected target"):
        speculative_step(P.expand(1, 1, -1), Q.expand(1, 1, -1), torch.zeros(1, 2))
    with pytest.raises(ValidationError, match="share the vocabulary"):
        speculative_generate(tiny(0), tiny(1, v=4), [0], 2)
    with pytest.raises(ValidationError, match="single prefix"):
        speculative_generate(tiny(0), tiny(1), [[0], [1]], 2)
    with pytest.raises(ValidationError, match="num_drafts"):
        speculative_generate(tiny(0), tiny(1), [0], 2, num_drafts=0)
