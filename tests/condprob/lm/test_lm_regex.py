"""Token indexes, masked decoding, exact conditioning of bigram models on a regular language,
and SMC, against brute-force enumeration and the core chain engine."""

from __future__ import annotations

import itertools
import re

import pytest
import torch

from condprob import chain
from condprob.automata import DFA, NO_STATE
from condprob.errors import ConditioningError, ValidationError
from condprob.lm.kernel import TokenKernel
from condprob.lm.models import HMMLM, BigramLM
from condprob.lm.regex import (
    ConditionedBigram,
    ConditionedLM,
    TokenIndex,
    VocabularyTrie,
    char_dfa,
    constrain,
    pack_bits,
    smc,
    unpack_bits,
)

TOKENS = ["a", "b", "ab", "ba", "1", "a1", "x", "", "</s>"]
EOS = 8
PATTERN = r"(ab|b)+1?"


def walk(dfa, q, s):
    for c in s:
        if c not in dfa.index or q == NO_STATE:
            return NO_STATE
        q = int(dfa.table[q, dfa.index[c]])
    return q


def test_index_equals_walking_every_token_from_every_state():
    dfa = char_dfa(PATTERN, "ab1x")
    idx = TokenIndex.from_dfa(dfa, TOKENS[:EOS])
    for q in range(dfa.num_states):
        for v, tok in enumerate(TOKENS[:EOS]):
            want = walk(dfa, q, tok) if tok else NO_STATE
            assert int(idx.next_state[q, v]) == want, (q, tok)


def test_index_on_random_vocabularies_matches_python_re():
    g = torch.Generator().manual_seed(0)
    alphabet = "ab1-@."
    vocab = sorted({"".join(alphabet[int(i)] for i in torch.randint(0, 6, (int(n),), generator=g))
                    for n in torch.randint(1, 5, (300,), generator=g)})
    pattern = r"[ab]+@[ab1]+\.(a|b1)"
    idx = TokenIndex.from_regex(pattern, vocab)
    rx = re.compile(pattern)
    pairs = list(itertools.product(range(len(vocab)), repeat=2))
    got = idx.accepts(torch.tensor(pairs)).tolist()
    want = [bool(rx.fullmatch(vocab[a] + vocab[b])) for a, b in pairs]
    assert got == want and any(want)


def test_a_prebuilt_trie_gives_the_same_index():
    vocab = TOKENS[:EOS] + ["abab", "b1", "1b", "é"]
    trie = VocabularyTrie(vocab)
    for pattern in (PATTERN, r"a*", r"[0-9]+"):
        a = TokenIndex.from_regex(pattern, trie)
        b = TokenIndex.from_regex(pattern, vocab)
        assert torch.equal(a.next_state, b.next_state) and a.start == b.start


def test_token_level_regex_index():
    idx = TokenIndex.from_token_regex("a (b | ab)* x", TOKENS, eos=EOS)
    assert idx.accepts([[0, 1, 2, 6, EOS]]).item()
    assert not idx.accepts([[0, 1, 2, 6]]).item()
    assert not idx.accepts([[1, 6, EOS]]).item()


def bigram_kernel(eos=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = len(TOKENS)
    t = torch.softmax(torch.randn(v, v, generator=g, dtype=torch.float64), -1)
    if eos is not None:
        t[eos] = 0.0
        t[eos, eos] = 1.0
    i = torch.softmax(torch.randn(v, generator=g, dtype=torch.float64), -1)
    return TokenKernel(BigramLM.from_matrix(t, i), TOKENS, eos=eos)


def brute_force(kernel, prompt, n, accept):
    seqs = torch.tensor([[*prompt, *s] for s in itertools.product(range(len(TOKENS)), repeat=n)])
    p = kernel.steps(n).log_prob(seqs[:, :len(prompt)], seqs).exp()
    ok = torch.tensor([bool(accept(s[len(prompt):])) for s in seqs.tolist()])
    return seqs, p, ok


def text_of(tokens):
    out = []
    for t in tokens:
        if t == EOS:
            return "".join(out), True
        out.append(TOKENS[t])
    return "".join(out), False


def test_exact_conditioning_without_eos_equals_brute_force_and_the_chain_engine():
    k = bigram_kernel()
    idx = TokenIndex.from_regex(PATTERN, TOKENS[:EOS] + ["#"])
    rx = re.compile(PATTERN)
    n = 3
    cond = ConditionedBigram(k, idx, n)
    seqs, p, ok = brute_force(k, [4], n, lambda s: idx.accepts([s])[0])
    assert all(bool(rx.fullmatch("".join(TOKENS[t] for t in s[1:]))) == bool(o)
               for s, o in zip(seqs.tolist(), ok.tolist(), strict=True) if "" not in
               [TOKENS[t] for t in s[1:]] and "</s>" not in [TOKENS[t] for t in s[1:]])
    truth = p[ok].sum()
    torch.testing.assert_close(cond.log_prob_event([[4]])[0].exp(), truth, atol=1e-14, rtol=0)
    # the same number from the core chain engine on the product of the automaton with the chain
    dfa = DFA.from_transitions(list(range(len(TOKENS))),
                               {(q, v): int(r) for q in range(idx.num_states)
                                for v, r in enumerate(idx.next_state[q].tolist()) if r >= 0},
                               idx.start, [q for q in range(idx.num_states)
                                           if idx.accepting[q]])
    prod = dfa.product()
    trans = k.model.transition_matrix().log()
    unary, pair, start, end = prod.lift(torch.zeros(n, len(TOKENS), dtype=torch.float64), trans,
                                        trans[4])
    logz = chain.log_partition(chain.Chain(unary, pair, start, end))
    torch.testing.assert_close(logz.exp(), truth, atol=1e-12, rtol=0)
    # from the empty prompt the first token comes from the initial law
    unary, pair, start, end = prod.lift(torch.zeros(n, len(TOKENS), dtype=torch.float64), trans,
                                        k.model.initial.log())
    logz0 = chain.log_partition(chain.Chain(unary, pair, start, end))
    torch.testing.assert_close(cond.log_prob_event(torch.zeros(1, 0, dtype=torch.long))[0],
                               logz0, atol=1e-12, rtol=0)
    # the conditioned kernel's sequence law is the brute-force conditional
    ck = cond.kernel(prefix_len=1)
    lp = ck.steps(n).log_prob(seqs[ok][:, :1], seqs[ok]).exp()
    torch.testing.assert_close(lp, p[ok] / truth, atol=1e-12, rtol=0)


def test_exact_conditioning_with_eos_equals_brute_force(gtest):
    k = bigram_kernel(eos=EOS)
    idx = TokenIndex.from_regex(PATTERN, TOKENS[:EOS] + [""], eos=EOS)
    rx = re.compile(PATTERN)
    n = 4

    def accept(s):
        text, ended = text_of(s)
        tail = s[s.index(EOS):] if EOS in s else []
        return (ended and rx.fullmatch(text) is not None and all(t != 7 for t in s)
                and all(t == EOS for t in tail))

    seqs, p, ok = brute_force(k, [0], n, accept)
    cond = ConditionedBigram(k, idx, n)
    truth = p[ok].sum()
    torch.testing.assert_close(cond.log_prob_event([[0]])[0].exp(), truth, atol=1e-14, rtol=0)
    lp = cond.kernel(1).steps(n).log_prob(seqs[ok][:, :1], seqs[ok]).exp()
    torch.testing.assert_close(lp, p[ok] / truth, atol=1e-12, rtol=0)
    draws = cond.sample(torch.zeros(4000, 1, dtype=torch.long),
                        generator=torch.Generator().manual_seed(0))
    code = {tuple(s): i for i, s in enumerate(seqs[ok].tolist())}
    idxs = torch.tensor([code[tuple(s)] for s in draws.tolist()])
    assert gtest(idxs, p[ok] / truth) > 1e-3
    # power: local masking samples from a different law
    masked = constrain(k, idx, prefix_len=1).steps(n)
    local = masked.log_prob(seqs[ok][:, :1], seqs[ok]).exp()
    local_draws = masked.sample(torch.zeros(4000, 1, dtype=torch.long),
                                generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(local, p[ok] / truth, atol=1e-3)
    keep = torch.tensor([tuple(s) in code for s in local_draws.tolist()])
    idl = torch.tensor([code[tuple(s)] for s in local_draws[keep].tolist()])
    assert gtest(idl, p[ok] / truth) < 1e-6


@pytest.mark.slow
def test_smc_estimates_the_probability_of_the_language():
    k = bigram_kernel(eos=EOS)
    idx = TokenIndex.from_regex(PATTERN, TOKENS[:EOS] + [""], eos=EOS)
    truth = float(ConditionedBigram(k, idx, 4).log_prob_event([[0]])[0].exp())
    g = torch.Generator().manual_seed(3)
    ests = torch.stack([smc(k, idx, [0], 4, 64, g).log_evidence.exp() for _ in range(200)])
    se = float(ests.std() / len(ests) ** 0.5)
    assert abs(float(ests.mean()) - truth) < 4 * se + 1e-12
    res = smc(k, idx, [0], 4, 64, g)
    assert idx.accepts(res.particles[:, 1:]).all()


def test_masked_decoding_only_produces_texts_of_the_language():
    k = bigram_kernel(eos=EOS)
    idx = TokenIndex.from_regex(PATTERN, TOKENS[:EOS] + [""], eos=EOS)
    m = constrain(k, idx, prefix_len=1)
    draws = m.steps(6).sample(torch.zeros(300, 1, dtype=torch.long),
                              generator=torch.Generator().manual_seed(4))
    for s in draws.tolist():
        text, ended = text_of(s[1:])
        assert re.fullmatch(r"((ab|b)+1?)?", text[: len(text)]) or not ended
        if ended:
            assert re.fullmatch(PATTERN, text)


def test_errors():
    k = bigram_kernel()
    idx = TokenIndex.from_regex(PATTERN, TOKENS)
    with pytest.raises(ValidationError, match="malformed pattern"):
        char_dfa("(ab", "ab")
    with pytest.raises(ConditioningError, match="empty"):
        TokenIndex.from_regex("zz", TOKENS)
    with pytest.raises(ValidationError, match="index over 3 tokens"):
        constrain(k, TokenIndex.from_regex("a", ["a", "b", "c"]))
    with pytest.raises(TypeError, match="finite-state model"):
        ConditionedBigram(TokenKernel(lambda p: torch.zeros(p.shape[0], 9), TOKENS), idx, 2)
    with pytest.raises(ValidationError, match="share the kernel's vocabulary and eos"):
        ConditionedBigram(k, TokenIndex.from_regex(PATTERN, TOKENS, eos=EOS), 2)
    with pytest.raises(ValidationError, match="max_len"):
        ConditionedBigram(k, idx, 0)
    cond = ConditionedBigram(k, idx, 2)
    with pytest.raises(ConditioningError, match="outside the language"):
        cond.kernel(1).logits([[0, 6]])
    with pytest.raises(ValidationError, match="generated lengths"):
        cond.kernel(1).logits([[0, 1, 1]])
    with pytest.raises(ConditioningError, match="outside the language"):
        constrain(k, idx, 1).logits([[0, 6]])
    impossible = ConditionedBigram(k, TokenIndex.from_regex("ab1ab1", TOKENS), 1)
    with pytest.raises(ConditioningError, match="probability zero"):
        impossible.sample([[0]])


def test_more_error_paths(monkeypatch):
    empty = DFA.from_transitions(TOKENS[:2], {}, 0, [])
    monkeypatch.setattr(DFA, "from_regex", classmethod(lambda cls, p, s: empty))
    with pytest.raises(ConditioningError, match="empty"):
        TokenIndex.from_token_regex("a", TOKENS[:2])
    k = bigram_kernel()
    with pytest.raises(ValidationError, match="index over 3 tokens"):
        smc(k, TokenIndex.from_regex("a", ["a", "b", "c"]), [0], 2)
    never = TokenIndex.from_regex("xx", TOKENS)
    assert smc(k, never, [0], 1, 8).log_evidence == float("-inf")


def test_bitmasks_pack_the_allowed_masks():
    idx = TokenIndex.from_regex(PATTERN, TOKENS[:EOS] + [""], eos=EOS)
    bits = idx.bitmask()
    assert bits.dtype == torch.int32 and bits.shape == (idx.num_states + 1, 1)
    assert torch.equal(unpack_bits(bits, len(TOKENS)), idx.allowed())
    g = torch.Generator().manual_seed(0)
    for v in (1, 31, 32, 33, 100):
        mask = torch.rand(3, v, generator=g) < 0.5
        mask[0, -1] = True
        assert torch.equal(unpack_bits(pack_bits(mask), v), mask)


def hmm_kernel(eos=None, hidden=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = len(TOKENS)
    init = torch.softmax(torch.randn(hidden, generator=g, dtype=torch.float64), -1)
    trans = torch.softmax(torch.randn(hidden, hidden, generator=g, dtype=torch.float64), -1)
    emit = torch.softmax(torch.randn(hidden, v, generator=g, dtype=torch.float64), -1)
    return TokenKernel(HMMLM(init, trans, emit), TOKENS, eos=eos)


def test_hmm_next_token_law_is_the_path_sum():
    k = hmm_kernel()
    m = k.model
    prefix = [2, 0, 5]
    joint = torch.zeros(len(TOKENS), dtype=torch.float64)
    for path in itertools.product(range(3), repeat=4):
        p = m.initial[path[0]]
        for t in range(1, 4):
            p = p * m.transition[path[t - 1], path[t]]
        for t, w in enumerate(prefix):
            p = p * m.emission[path[t], w]
        joint += p * m.emission[path[3]]
    torch.testing.assert_close(k.logits([prefix]).exp()[0], joint / joint.sum(), atol=1e-14,
                               rtol=0)


@pytest.mark.parametrize("eos", [None, EOS])
def test_exact_conditioning_of_an_hmm_equals_brute_force(eos):
    k = hmm_kernel(eos=eos)
    tokens = TOKENS[:EOS] + ([""] if eos is not None else ["#"])
    idx = TokenIndex.from_regex(PATTERN, tokens, eos=eos)
    n = 3
    cond = ConditionedLM(k, idx, n)
    seqs = torch.tensor([[1, *s] for s in itertools.product(range(len(TOKENS)), repeat=n)])
    p = k.steps(n).log_prob(seqs[:, :1], seqs).exp() if eos is None else torch.stack(
        [_hmm_seq_prob(k, s) for s in seqs])
    ok = idx.accepts(seqs[:, 1:]) if eos is None else torch.tensor(
        [_ends_in_language(s[1:], idx) for s in seqs.tolist()])
    truth = p[ok].sum()
    assert 0 < truth < 1
    torch.testing.assert_close(cond.log_prob_event([[1]])[0].exp(), truth, atol=1e-14, rtol=0)
    lp = cond.kernel(1).steps(n).log_prob(seqs[ok][:, :1], seqs[ok]).exp()
    torch.testing.assert_close(lp, p[ok] / truth, atol=1e-12, rtol=0)


def _hmm_seq_prob(k, s):
    """P(tokens up to and including the first eos | first token); eos ends the text."""
    out = torch.ones((), dtype=torch.float64)
    for t in range(1, len(s)):
        out = out * k.logits(s[None, :t]).exp()[0, s[t]]
        if s[t] == EOS:
            return out if (s[t:] == EOS).all() else torch.zeros((), dtype=torch.float64)
    return out


def _ends_in_language(s, idx):
    if EOS not in s:
        return False
    return bool(idx.accepts([s[: s.index(EOS) + 1]])[0]) and all(t == EOS for t in
                                                                  s[s.index(EOS):])


def test_hmm_validation():
    with pytest.raises(ValidationError, match="expected initial"):
        HMMLM(torch.ones(2) / 2, torch.eye(3), torch.ones(2, 4) / 4)
    with pytest.raises(ValidationError, match="emission must sum to 1"):
        HMMLM(torch.ones(2) / 2, torch.eye(2), torch.ones(2, 4))
    impossible = TokenKernel(HMMLM(torch.tensor([1.0, 0.0]), torch.eye(2),
                                   torch.tensor([[1.0, 0.0], [0.0, 1.0]])), 2)
    with pytest.raises(ValidationError, match="probability zero under the HMM"):
        impossible.logits([[1]])


def test_token_regex_with_a_stand_in_for_unnamed_tokens_has_the_same_language():
    pattern = 'a (b | "ab")* . [^x a]'
    idx = TokenIndex.from_token_regex(pattern, TOKENS, eos=EOS)
    full = DFA.from_regex(pattern, [t for i, t in enumerate(TOKENS) if i != EOS])
    for n in range(1, 5):
        for s in itertools.product(range(EOS), repeat=n):
            assert bool(idx.accepts([[*s, EOS]])[0]) == full.accepts([TOKENS[t] for t in s])


@pytest.mark.slow
def test_exact_conditioning_on_the_full_symspell_vocabulary():
    from condprob.lm.models import symspell_bigram

    lm = symspell_bigram()
    idx = TokenIndex.from_token_regex(". (cat | dog) of .", list(lm.vocab.labels))
    cond = ConditionedLM(lm, idx, 4)
    the = lm.vocab.index("the")
    p = float(cond.log_prob_event([[the]])[0].exp())
    assert 0 < p < 1e-3
    draws = cond.sample(torch.full((20, 1), the), generator=torch.Generator().manual_seed(0))
    assert idx.accepts(draws[:, 1:]).all()
    assert {lm.vocab.label(int(w)) for w in draws[:, 2]} <= {"cat", "dog"}
