"""Exact LM conditioning is BFFG: the structured product kernel of `condprob.bffg.structured`
equals its definition as a dense kernel, and `ConditionedLM` equals the generic backward filter
and posterior marginals of `condprob.bffg` on that dense kernel."""

from __future__ import annotations

import itertools

import pytest
import torch

from condprob.automata import NO_STATE
from condprob.bffg import FiniteMessage, Model, backward_filter, posterior_marginals
from condprob.bffg.structured import TokenAutomatonKernel, automaton_chain
from condprob.errors import SpaceMismatchError, ValidationError
from condprob.finite import Kernel, Predicate
from condprob.lm.kernel import TokenKernel
from condprob.lm.models import HMMLM, BigramLM
from condprob.lm.regex import ConditionedLM, TokenIndex
from condprob.spaces import FiniteSpace

TOKENS = ["a", "b", "ab", "ba", "1", "a1", "x", "", "</s>"]
EOS = 8
PATTERN = r"(ab|b)+1?"
V = len(TOKENS)


def bigram(eos=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.softmax(torch.randn(V, V, generator=g, dtype=torch.float64), -1)
    if eos is not None:
        t[eos] = 0.0
        t[eos, eos] = 1.0
    i = torch.softmax(torch.randn(V, generator=g, dtype=torch.float64), -1)
    return TokenKernel(BigramLM.from_matrix(t, i), TOKENS, eos=eos)


def hmm(eos=None, hidden=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    init = torch.softmax(torch.randn(hidden, generator=g, dtype=torch.float64), -1)
    trans = torch.softmax(torch.randn(hidden, hidden, generator=g, dtype=torch.float64), -1)
    emit = torch.softmax(torch.randn(hidden, V, generator=g, dtype=torch.float64), -1)
    return TokenKernel(HMMLM(init, trans, emit), TOKENS, eos=eos)


def index(eos):
    return TokenIndex.from_regex(PATTERN, TOKENS[:EOS] + ([""] if eos is not None else ["#"]),
                                 eos=eos)


def joint_step(model):
    """P(h', w | h) as an (H, H, V) tensor, from the model's tables."""
    if isinstance(model, BigramLM):
        t = model.transition_matrix()
        return torch.diag_embed(t).transpose(1, 2)  # [v, w, w'] = t[v, w] [w = w']
    return model.transition.unsqueeze(-1) * model.emission.unsqueeze(0)


def dense_definition(model, idx):
    """K((h, q), (h', q')) = sum_w P(h', w | h) [next(q, w) = q'], done and dead absorbing."""
    joint = joint_step(model)
    h, s = joint.shape[0], idx.num_states
    c = s + 2
    k = torch.zeros(h, c, h, c, dtype=torch.float64)
    for q in range(s):
        for w in range(V):
            r = int(idx.next_state[q, w])
            k[:, q, :, s + 1 if r == NO_STATE else r] += joint[:, :, w]
    for q in (s, s + 1):
        k[:, q, :, q] = torch.eye(h, dtype=torch.float64)
    return k.reshape(h * c, h * c)


CASES = [(bigram, None), (bigram, EOS), (hmm, None), (hmm, EOS)]


@pytest.mark.parametrize(("make", "eos"), CASES)
def test_conditioned_lm_equals_the_generic_backward_filter_on_the_dense_kernel(make, eos):
    k, idx, n = make(eos), index(eos), 3
    cond = ConditionedLM(k, idx, n)
    step = cond.step
    dense = Kernel(step.array, step.dom, step.cod)  # validated: a stochastic matrix
    torch.testing.assert_close(dense.matrix, dense_definition(k.model, idx), atol=1e-15, rtol=0)
    generic = Model(0, step.initial_state(idx.start))
    for t in range(1, n):
        generic.add_edge(t - 1, t, dense)
    generic.observe(n - 1, cond.chain.observation(n - 1))
    filt = backward_filter(generic)
    for t in range(n):
        torch.testing.assert_close(cond.filtered.messages[t].values(), filt.messages[t].values(),
                                   atol=1e-14, rtol=0)
    empty = torch.zeros(1, 0, dtype=torch.long)
    torch.testing.assert_close(cond.log_prob_event(empty)[0], filt.log_evidence, atol=1e-12,
                               rtol=0)
    torch.testing.assert_close(cond.filtered.log_evidence, filt.log_evidence, atol=1e-12, rtol=0)


@pytest.mark.parametrize("eos", [None, EOS])
def test_bigram_posterior_marginals_are_the_conditioned_token_laws(eos):
    k, idx, n = bigram(eos), index(eos), 3
    cond = ConditionedLM(k, idx, n)
    seqs = torch.tensor(list(itertools.product(range(V), repeat=n)))
    ck = cond.kernel(0)
    p = torch.ones(len(seqs), dtype=torch.float64)
    for t in range(n):  # the conditioned law of texts from the empty prompt, prefix by prefix
        live = p > 0
        law = ck.logits(seqs[live, :t]).exp()
        p[live] = p[live] * law.gather(1, seqs[live, t:t + 1])[:, 0]
    assert abs(float(p.sum()) - 1) < 1e-12
    # the generic posterior marginals on the (materialised) structured kernel
    marg = posterior_marginals(cond.filtered)
    h, c = cond.step.shape
    for t in range(n):
        want = torch.zeros(V, dtype=torch.float64).index_add_(0, seqs[:, t], p)
        got = marg[t].probs.reshape(h, c).sum(-1)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    # power: conditioning moves the first token's law away from the model's initial law
    assert not torch.allclose(marg[0].probs.reshape(h, c).sum(-1), k.model.initial, atol=1e-3)


def test_the_structured_pullback_equals_the_dense_one_on_random_predicates():
    k, idx = hmm(EOS), index(EOS)
    step = TokenAutomatonKernel(k.model, idx.next_state, EOS)
    g = torch.rand(step.dom.size, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    pred = Predicate(g, step.cod)
    dense = Kernel(step.array, step.dom, step.cod)
    torch.testing.assert_close(step.pullback(pred).values, dense.pullback(pred).values,
                               atol=1e-15, rtol=0)
    assert "3 model states" in repr(step) and step.batch_shape == () and not step.exact


def test_structured_kernel_errors():
    k, idx = bigram(), index(None)
    with pytest.raises(ValidationError, match="space of model states has 2"):
        TokenAutomatonKernel(k.model, idx.next_state, states=FiniteSpace(2))
    with pytest.raises(ValidationError, match="eos must be a token id"):
        TokenAutomatonKernel(k.model, idx.next_state, eos=V)
    step = TokenAutomatonKernel(k.model, idx.next_state, states=k.vocab)
    with pytest.raises(SpaceMismatchError):
        step.pullback(Predicate.truth(FiniteSpace(3)))
    with pytest.raises(SpaceMismatchError):
        step.guided_token_weights(torch.zeros(1, 0, dtype=torch.long), torch.tensor([idx.start]),
                                  FiniteMessage.uninformative(FiniteSpace(3)))
    with pytest.raises(TypeError, match="float64 predicates without batch"):
        step.pullback(Predicate.truth(step.cod, exact=True))
    with pytest.raises(TypeError, match="float64 predicates without batch"):
        step.pullback(Predicate(torch.ones(2, step.cod.size, dtype=torch.float64), step.cod))
    final = torch.ones(step.shape, dtype=torch.float64)
    with pytest.raises(ValidationError, match="at least one node"):
        automaton_chain(step, idx.start, 0, final)
    with pytest.raises(ValidationError, match="final likelihood has shape"):
        automaton_chain(step, idx.start, 2, final[:, 1:])
    wide = TokenKernel(BigramLM.from_matrix(torch.eye(600, dtype=torch.float64),
                                            torch.ones(600, dtype=torch.float64) / 600), 600)
    big = TokenAutomatonKernel(wide.model, torch.zeros(10, 600, dtype=torch.long))
    with pytest.raises(ValidationError, match="too large"):
        big.array  # noqa: B018


def test_bigram_csr_tables_are_checked():
    one = torch.ones(3, dtype=torch.float64) / 3
    with pytest.raises(ValidationError, match="must form a CSR matrix"):
        BigramLM(one, one, one * 0, torch.tensor([0, 1, 2, 3]), torch.tensor([0, 5, 1]),
                 torch.ones(3, dtype=torch.float64))
