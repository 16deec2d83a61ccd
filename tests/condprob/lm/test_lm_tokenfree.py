"""Token-free character laws: exact recovery of a Markov chain's transitions from the exact token
law (maximum-prefix encoding and BPE), the naive method's bias, model-run counts, teacher-forced
scoring in one call, and a trained model (corrected beats naive)."""

from __future__ import annotations

import itertools

import pyro.distributions
import pytest
import torch

from condprob import State, laws
from condprob.errors import ValidationError
from condprob.laws.protocol import law_call_matches_log_prob, law_sampling_matches_log_prob
from condprob.lm.charlm import train_token_lm
from condprob.lm.kernel import TokenKernel
from condprob.lm.scores import curvature, prefix_log_probs
from condprob.lm.tokenfree import (
    END,
    BPETokenizer,
    CharacterKernel,
    MaxPrefixTokenizer,
    PushforwardLM,
    chain_texts,
    sample_chain,
    transition_estimates,
)

T = torch.tensor([[0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)
INIT = torch.tensor([0.5, 0.5], dtype=torch.float64)
LENGTH = 9


@pytest.fixture(scope="module")
def tokenizers():
    train = sample_chain(T, INIT, "AB", 12, 500, torch.Generator().manual_seed(0))
    return {"mpe": MaxPrefixTokenizer(["A", "B", "AA", "AB", "BBA"], eos="<eos>"),
            "bpe": BPETokenizer.train(train, 8)}


def exact_kernel(tok) -> CharacterKernel:
    texts = chain_texts(T, INIT, "AB", LENGTH)
    lm = TokenKernel(PushforwardLM(texts, tok, tok.eos), len(tok.tokens), eos=tok.eos)
    return CharacterKernel(lm, tok)


@pytest.mark.parametrize("name", ["mpe", "bpe"])
def test_exact_token_law_gives_the_chain_exactly(tokenizers, name):
    tok = tokenizers[name]
    ck = exact_kernel(tok)
    assert ck.outcomes == ["A", "B", END]
    biggest = 0.0
    for n in range(1, LENGTH):
        for chars in itertools.product("AB", repeat=min(n, 5)):
            s = "".join(chars) + "A" * (n - len(chars))
            want = torch.cat([T["AB".index(s[-1])], torch.zeros(1, dtype=torch.float64)])
            torch.testing.assert_close(ck.probs(s), want, atol=1e-12, rtol=0)
            biggest = max(biggest, float((ck.naive_probs(s)[:2] - want[:2]).abs().max()))
    full = "AB" * (LENGTH // 2) + "A" * (LENGTH % 2)
    assert ck.probs(full)[2] == pytest.approx(1.0, abs=1e-12)
    assert biggest > 0.2  # the naive law is biased on the same exact model


def test_empty_prefix_is_the_initial_law(tokenizers):
    ck = exact_kernel(tokenizers["mpe"])
    torch.testing.assert_close(ck.probs("")[:2], INIT, atol=1e-12, rtol=0)


def test_model_runs_are_bounded_by_the_longest_token(tokenizers):
    ck = exact_kernel(tokenizers["mpe"])
    for n in (1, 4, 8):
        before = ck.runs
        ck.probs("A" * n)
        assert ck.runs - before == min(n + 1, ck.longest)
    before = ck.runs
    ck.naive_probs("ABAB")
    assert ck.runs - before == 1


def test_trained_model_corrected_beats_naive(tokenizers):
    g = torch.Generator().manual_seed(1)
    tok = tokenizers["bpe"]
    train = sample_chain(T, INIT, "AB", 12, 2000, g)
    lm, losses = train_token_lm([tok.encode(s) for s in train], tok.tokens, tok.eos, steps=150,
                                seed=0)
    assert losses[-1] < losses[0]
    corrected, naive = transition_estimates(CharacterKernel(lm, tok),
                                            sample_chain(T, INIT, "AB", 12, 8, g))
    assert (corrected - T).abs().max() < 0.08
    assert (naive - T).abs().max() > 0.2


def test_sampled_characters_follow_the_law(tokenizers, gtest):
    ck = exact_kernel(tokenizers["bpe"])
    g = torch.Generator().manual_seed(3)
    draws = ck.sample("ABB", (500,), generator=g)
    laws.law_call_matches_log_prob(ck, "ABB", draws[:10])
    laws.law_tabulated_inversion(ck, State([0.25, 0.75], ["A", "AB"]))
    assert draws.shape == (500,)
    assert gtest(draws, ck.probs("ABB")) > 1e-3
    assert gtest(draws, torch.tensor([0.5, 0.5, 0.0])) < 1e-3
    assert isinstance(ck("ABB"), pyro.distributions.Categorical)
    torch.testing.assert_close(ck.log_prob("ABB", torch.tensor([[0, 1]])),
                               ck.probs("ABB")[[0, 1]].log().unsqueeze(0))
    text = ck.generate("A", 20, generator=g)
    assert len(text) == LENGTH and set(text) <= {"A", "B"}
    assert ck.log_prob("A", "B") == pytest.approx(float(T[0, 1].log()), abs=1e-12)


def test_teacher_forcing_scores_all_positions_in_one_call():
    tok = MaxPrefixTokenizer(["A", "B", "AB"], eos="<eos>")
    lm, _ = train_token_lm([[0, 1, 2], [2, 2]], tok.tokens, tok.eos, steps=3)
    calls = []
    inner = lm.model.all_logits
    lm.model.all_logits = lambda x: calls.append(x.shape) or inner(x)
    seqs = [[0, 1, 2, 0], [2], []]
    seq_lp, next_lp = prefix_log_probs(lm, seqs)
    assert len(calls) == 1
    for i, s in enumerate(seqs):
        want = sum(float(lm.logits([s[:t]])[0, s[t]]) for t in range(len(s)))
        assert float(seq_lp[i]) == pytest.approx(want, abs=1e-5)
        torch.testing.assert_close(next_lp[i], lm.logits([s])[0], atol=1e-5, rtol=0)
    every = lm.all_log_probs([[0, 1, 2]])
    assert every.shape == (1, 4, 4)
    torch.testing.assert_close(every[0, 2], lm.logits([[0, 1]])[0], atol=1e-5, rtol=0)
    assert lm.all_log_probs([[0, 1, 2]], 2).shape == (1, 2, 4)
    text = torch.tensor([[0, 1, 2, 0, 1, 2]])
    calls.clear()
    seq_lp = lm.steps(4).log_prob(text[:, :2], text)
    c = curvature(lm, text, 2)
    assert len(calls) == 2
    want = sum(float(lm.logits(text[:, :t])[0, text[0, t]]) for t in range(2, 6))
    assert float(seq_lp[0]) == pytest.approx(want, abs=1e-5)
    lps = torch.stack([lm.logits(text[:, :t])[0] for t in range(2, 6)])
    x = lps.gather(-1, text[0, 2:, None])[:, 0]
    mean = (lps.exp() * lps).sum(-1)
    var = (lps.exp() * lps**2).sum(-1) - mean**2
    assert float(c[0]) == pytest.approx(float((x.sum() - mean.sum()) / var.sum().sqrt()),
                                        abs=1e-5)


def test_bad_input_raises_house_errors(tokenizers):
    with pytest.raises(ValidationError, match="its own token"):
        MaxPrefixTokenizer(["A", "AB"])
    with pytest.raises(ValidationError, match="distinct non-empty"):
        MaxPrefixTokenizer(["A", "A"])
    ck = exact_kernel(tokenizers["mpe"])
    with pytest.raises(ValidationError, match="no token spells"):
        ck.probs("AC")
    with pytest.raises(ValidationError, match="is a str"):
        ck.probs(["A"])
    with pytest.raises(ValidationError, match="not an outcome"):
        ck.log_prob("A", "C")
    with pytest.raises(ValidationError, match="outcome indices"):
        ck.log_prob("A", torch.tensor([5]))
    with pytest.raises(ValidationError, match="tokenizer"):
        CharacterKernel(TokenKernel(lambda p: torch.zeros(p.shape[0], 3), 3), tokenizers["mpe"])
    with pytest.raises(ValidationError, match="transition"):
        chain_texts(T[:1], INIT, "AB", 3)
    with pytest.raises(ValidationError, match=r"transition \(each row\) must sum to 1"):
        chain_texts(T * 0.9, INIT, "AB", 3)
    with pytest.raises(ValidationError, match="initial has a negative probability"):
        sample_chain(T, torch.tensor([1.5, -0.5]), "AB", 3, 4)
    with pytest.raises(ValidationError, match="length must be a positive integer"):
        chain_texts(T, INIT, "AB", 0)
    with pytest.raises(ValidationError, match="probability zero"):
        ck.probs("B" * (LENGTH + 2))


def test_protocol_laws(tokenizers):
    ck = exact_kernel(tokenizers["bpe"])
    law_call_matches_log_prob(ck, "ABB", torch.tensor([0, 1, 2]))
    outputs = [torch.tensor(0), torch.tensor(1)]
    law_sampling_matches_log_prob(ck, "ABB", outputs, generator=torch.Generator().manual_seed(0))
    tok = tokenizers["bpe"]
    other = chain_texts(T.flip(0), INIT, "AB", LENGTH)  # another chain: a wrong target
    wrong = CharacterKernel(TokenKernel(PushforwardLM(other, tok, tok.eos), len(tok.tokens),
                                        eos=tok.eos), tok)
    assert law_sampling_matches_log_prob(ck, "ABB", outputs, target=wrong,
                                         generator=torch.Generator().manual_seed(1)) < 1e-3


@pytest.mark.parametrize("texts, match", [
    ({}, "non-empty"),
    ({"AB": 0.5, "BA": 0.4}, "text probabilities"),
    ({"AB": 1.2, "BA": -0.2}, "negative"),
    ({"AB": float("nan"), "BA": 0.5}, "non-finite"),
    ({"AB": "half", "BA": 0.5}, "numbers"),
    ({("A",): 1.0}, "strings"),
])
def test_pushforward_rejects_texts_that_are_not_a_law(tokenizers, texts, match):
    tok = tokenizers["mpe"]
    with pytest.raises(ValidationError, match=match):
        PushforwardLM(texts, tok, tok.eos)


@pytest.mark.parametrize("eos", [-1, 6, 2.0, True, None])
def test_pushforward_rejects_an_eos_outside_the_vocabulary(tokenizers, eos):
    tok = tokenizers["mpe"]
    with pytest.raises(ValidationError, match="eos"):
        PushforwardLM({"AB": 1.0}, tok, eos)


def test_pushforward_rejects_a_text_holding_eos(tokenizers):
    tok = tokenizers["mpe"]
    with pytest.raises(ValidationError, match="holding eos"):
        PushforwardLM({"BA": 1.0}, tok, 0)
