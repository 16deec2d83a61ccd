"""Attribute kernels and Bayes-inverted guidance: exact against the backward filter and against
brute-force Bayes; guided sequences follow the exact conditional law (G-test with power check);
real offline verifiers."""

from __future__ import annotations

import itertools

import pyro.distributions as pdist
import pytest
import torch

from condprob.errors import ConditioningError, ValidationError
from condprob.laws.protocol import law_call_matches_log_prob, law_sampling_matches_log_prob
from condprob.lm.attributes import (
    ClassConditional,
    RegularAttribute,
    TextClassifier,
    guide,
    profanity,
    vader_sentiment,
)
from condprob.lm.kernel import TokenKernel
from condprob.lm.models import HMMLM
from condprob.lm.regex import ConditionedLM, TokenIndex
from condprob.spaces import FiniteSpace

TOKENS = ["t0", "t1", "t2", "t3"]
PATTERN = "t0 (t1|t2)* t0"
MAX_LEN = 5


def small_hmm(eos: int) -> TokenKernel:
    g = torch.Generator().manual_seed(7)
    init = torch.rand(3, generator=g, dtype=torch.float64) + 0.1
    trans = torch.rand(3, 3, generator=g, dtype=torch.float64) + 0.1
    emit = torch.rand(3, 4, generator=g, dtype=torch.float64) + 0.1
    return TokenKernel(HMMLM(init / init.sum(), trans / trans.sum(-1, keepdim=True),
                             emit / emit.sum(-1, keepdim=True)), TOKENS, eos=eos)


def regular(lm: TokenKernel) -> tuple[ConditionedLM, RegularAttribute]:
    index = TokenIndex.from_token_regex(PATTERN, TOKENS, eos=lm.eos)
    conditioned = ConditionedLM(lm, index, MAX_LEN)
    return conditioned, RegularAttribute(conditioned, 1)


@pytest.mark.parametrize("kind", ["bigram", "hmm"])
def test_guide_with_the_exact_attribute_is_the_exact_conditional(kind, make_bigram):
    lm = make_bigram(4, eos=3, seed=1) if kind == "bigram" else small_hmm(3)
    conditioned, attribute = regular(lm)
    guided, exact = guide(lm, attribute, "accept"), conditioned.kernel(1)
    for n in range(1, MAX_LEN):
        prefixes = [[1, *rest] for rest in itertools.product([0, 1, 2], repeat=n - 1)
                    if conditioned.index.run(torch.tensor([list(rest)]))[0] >= 0]
        torch.testing.assert_close(guided.logits(prefixes).exp(),
                                   exact.logits(prefixes).exp(), atol=1e-12, rtol=0)
    torch.testing.assert_close(attribute.probs([[1]])[:, 1],
                               conditioned.log_prob_event([[1]]).exp(), atol=1e-12, rtol=0)


def test_guided_sequences_follow_the_exact_conditional_law(gtest, make_bigram):
    lm = make_bigram(4, eos=3, seed=1)
    _, attribute = regular(lm)
    seqs = torch.tensor([[1, *x] for x in itertools.product(range(4), repeat=MAX_LEN)])
    logp = lm.steps(MAX_LEN).log_prob(torch.tensor([[1]]).expand(len(seqs), 1), seqs)
    ok = attribute.probs(seqs)[:, 1]
    exact = torch.softmax(torch.where(ok > 0, logp, -torch.inf), 0)
    draws = guide(lm, attribute, "accept").steps(MAX_LEN).sample(
        torch.tensor([[1]]), (3000,), generator=torch.Generator().manual_seed(0))[:, 0]
    code = (draws[:, 1:] * 4 ** torch.arange(MAX_LEN - 1, -1, -1)).sum(-1)
    assert bool(ok[code].eq(1).all())
    assert gtest(code, exact) > 1e-3
    assert gtest(code, torch.softmax(torch.where(ok > 0, 0.8 * logp, -torch.inf), 0)) < 1e-3


def test_class_conditional_is_bayes_over_the_class_models(make_bigram):
    lms = {"a": make_bigram(4, seed=2), "b": make_bigram(4, seed=3)}
    prior = [0.3, 0.7]
    cc = ClassConditional(lms, prior, prefix_len=1)
    prefix = torch.tensor([[2, 0, 1]])
    seqs = torch.tensor([[2, 0, 1, v] for v in range(4)])
    joint = torch.stack([torch.tensor(p, dtype=torch.float64).log() + lm.steps(3).log_prob(torch.tensor([[2]] * 4), seqs)
                         for p, lm in zip(prior, lms.values(), strict=True)], -1)
    torch.testing.assert_close(cc.next_probs(prefix)[0], torch.softmax(joint, -1), atol=1e-12,
                               rtol=0)
    post = cc.probs(prefix)
    assert post.shape == (1, 2) and abs(float(post.sum()) - 1) < 1e-12
    assert isinstance(cc(prefix), pdist.Categorical)
    assert cc.sample(prefix, (5,), generator=torch.Generator().manual_seed(0)).shape == (5, 1)
    torch.testing.assert_close(cc.log_prob(prefix, torch.tensor([1])), post[:, 1].log())


def test_guidance_strength_tempers_the_likelihood(make_bigram):
    base = make_bigram(4, seed=4)
    cc = ClassConditional({"a": make_bigram(4, seed=2), "b": make_bigram(4, seed=3)})
    prefix = [[0, 1]]
    p = base.logits(prefix).exp()[0]
    like = cc.next_probs(prefix)[0, :, 0]
    for w in (0.0, 1.0, 2.5):
        want = p * like**w / (p * like**w).sum()
        torch.testing.assert_close(guide(base, cc, "a", w).logits(prefix).exp()[0], want,
                                   atol=1e-12, rtol=0)


def test_unreachable_target_and_bad_arguments_raise(make_bigram):
    lm = make_bigram(4, eos=3, seed=1)
    _, attribute = regular(lm)
    with pytest.raises(ConditioningError, match="probability zero"):
        guide(lm, attribute, "accept").logits([[1, 3]])
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValidationError, match="strength"):
            guide(lm, attribute, "accept", bad)
    with pytest.raises(ValidationError, match="integer token ids"):
        guide(lm, attribute, "accept").logits([[0.0, 1.7]])          # was truncated to [0, 1]
    with pytest.raises(ValidationError, match="unknown label"):
        guide(lm, attribute, "maybe")
    with pytest.raises(ValidationError, match="vocabulary"):
        guide(make_bigram(5), attribute, 1)
    with pytest.raises(ValidationError, match="share one vocabulary"):
        ClassConditional({"a": make_bigram(4), "b": make_bigram(5)})
    bad = TextClassifier(lambda texts: torch.full((len(texts), 2), 2.0), ["x", "y"], lm.vocab)
    with pytest.raises(ValidationError, match="negative probability|sum to 1"):
        bad.probs([[0, 1]])
    unnormalised = TextClassifier(lambda texts: torch.full((len(texts), 2), 0.3), ["x", "y"],
                                  lm.vocab)
    with pytest.raises(ValidationError, match="classifier outputs must sum to 1"):
        unnormalised.log_prob([[0, 1]], [0])
    with pytest.raises(ValidationError, match="attribute prior must sum to 1"):
        ClassConditional({"a": make_bigram(4), "b": make_bigram(4)}, prior=[0.5, 0.6])
    cc = ClassConditional({"a": make_bigram(4), "b": make_bigram(4, seed=1)})
    with pytest.raises(ValidationError, match=r"attribute ids must lie in \[0, 2\)"):
        cc.log_prob([[0, 1]], [2])
    with pytest.raises(ValidationError, match="attributes are integer ids"):
        cc.log_prob([[0, 1]], [0.5])
    with pytest.raises(ValidationError, match="prefix_len must be a non-negative integer"):
        TextClassifier(lambda texts: torch.full((len(texts), 2), 0.5), ["x", "y"], lm.vocab,
                       prefix_len=-2)                       # decoded the last two tokens
    with pytest.raises(ValidationError, match="prefix_len must be a non-negative integer"):
        ClassConditional({"a": make_bigram(4), "b": make_bigram(4)}, prefix_len=1.5)


def test_real_verifiers_read_decoded_text():
    vocab = FiniteSpace(list("abcdefghijklmnopqrstuvwxyz "), name="token")

    def ids(text):
        return [vocab.index(c) for c in text]

    sentiment = vader_sentiment(vocab, prefix_len=2)
    p = sentiment.probs([ids("xxwhat a lovely day"), ids("xxthis is awful    ")])
    torch.testing.assert_close(p, torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64))
    assert sentiment.decode([ids("xxgood")]) == ["good"]
    offensive = profanity(vocab).probs([ids("you stupid idiot"), ids("have a nice day ")])
    assert offensive[0, 1] > 0.9 > 0.5 > offensive[1, 1]
    assert sentiment.next_probs([ids("xxso goo")]).shape == (1, 27, 2)


def test_protocol_laws(make_bigram):
    cc = ClassConditional({"a": make_bigram(4, seed=2), "b": make_bigram(4, seed=3)}, [0.3, 0.7])
    x = torch.tensor([[0, 1, 2]])
    law_call_matches_log_prob(cc, x, torch.tensor([[0], [1]]))
    outputs = [torch.tensor([0]), torch.tensor([1])]
    law_sampling_matches_log_prob(cc, x, outputs, generator=torch.Generator().manual_seed(0))
    wrong = ClassConditional({"a": make_bigram(4, seed=2), "b": make_bigram(4, seed=3)},
                             [0.6, 0.4])
    assert law_sampling_matches_log_prob(cc, x, outputs, target=wrong,
                                         generator=torch.Generator().manual_seed(1)) < 1e-3
