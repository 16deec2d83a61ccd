"""TokenKernel and SequenceKernel on exact bigram tables and the symspell word model."""

from __future__ import annotations

import itertools

import pyro.distributions as pdist
import pytest
import torch

from condprob.errors import SpaceMismatchError, ValidationError
from condprob.lm.filters import Epsilon, Eta, MinP, Temperature, TopK, TopP, Typical
from condprob.lm.kernel import TokenKernel
from condprob.lm.models import BigramLM, symspell_bigram
from condprob.spaces import SequenceSpace


def test_next_token_law_is_the_table(bigram):
    model = bigram.model
    trans = model.transition_matrix()
    torch.testing.assert_close(bigram.logits([[0, 2], [1, 3]]).exp(), trans[[2, 3]],
                               atol=1e-15, rtol=0)
    torch.testing.assert_close(bigram.logits(torch.zeros(2, 0, dtype=torch.long)).exp(),
                               model.initial.expand(2, -1), atol=1e-15, rtol=0)
    lp = bigram.log_prob([[0, 2], [1, 3]], [1, 0])
    torch.testing.assert_close(lp, trans[[2, 3], [1, 0]].log(), atol=1e-15, rtol=0)
    both = bigram.log_prob([[0, 2], [1, 3]], [[1, 0], [3, 3]])
    torch.testing.assert_close(both[1], trans[[2, 3], [3, 3]].log(), atol=1e-15, rtol=0)
    h = -(trans[2] * trans[2].log()).sum()
    torch.testing.assert_close(bigram.entropy([[2]])[0], h, atol=1e-12, rtol=0)
    law = bigram([[1], [2]])
    assert isinstance(law, pdist.Categorical) and law.batch_shape == (2,)
    torch.testing.assert_close(law.log_prob(torch.tensor([3, 0])),
                               bigram.log_prob([[1], [2]], [3, 0]), atol=0, rtol=0)


def test_sequence_law_sums_to_one_and_is_the_chain_product(bigram):
    seqk = bigram.steps(2) >> bigram.steps(1)
    assert seqk.n == 3 and seqk.dom == seqk.cod == SequenceSpace(bigram.vocab, "prefix")
    assert seqk([[1]]).event_shape == (4,) and bigram.event_shape == () and bigram.batch_shape == ()
    seqs = torch.tensor([[1, *rest] for rest in itertools.product(range(4), repeat=3)])
    lp = seqk.log_prob(seqs[:, :1], seqs)
    torch.testing.assert_close(seqk(seqs[:, :1]).log_prob(seqs), lp, atol=0, rtol=0)
    assert seqk.log_prob([[2]], seqs[:1]).item() == float("-inf")  # does not extend the prefix
    assert abs(float(lp.exp().sum()) - 1) < 1e-12
    t = bigram.model.transition_matrix()
    s = seqs[13]
    want = t[s[0], s[1]] * t[s[1], s[2]] * t[s[2], s[3]]
    torch.testing.assert_close(lp[13].exp(), want, atol=1e-15, rtol=0)


def test_sequences_stop_at_eos(make_bigram):
    k = make_bigram(3, eos=2)
    seqk = k.steps(3)
    seqs = torch.tensor([[0, *rest] for rest in itertools.product(range(3), repeat=3)])
    lp = seqk.log_prob(seqs[:, :1], seqs)
    assert abs(float(lp.exp().sum()) - 1) < 1e-12
    assert lp[seqs.tolist().index([0, 2, 0, 1])] == float("-inf")
    draws = seqk.sample([[0]], (200,), generator=torch.Generator().manual_seed(0))
    assert draws.shape == (200, 1, 4)
    after = torch.cumsum(draws == 2, -1) > 0
    assert (draws[after] == 2).all()


def test_sampling_is_seeded_and_follows_the_law(bigram, gtest):
    g = torch.Generator().manual_seed(5)
    draws = bigram.sample(torch.full((20000, 1), 2), generator=g)
    t = bigram.model.transition_matrix()
    assert gtest(draws, t[2]) > 1e-3
    assert gtest(draws, t[1]) < 1e-6
    shaped = bigram.sample([[2], [1]], (5000, 2), generator=g)
    assert shaped.shape == (5000, 2, 2)
    assert gtest(shaped[..., 1].reshape(-1), t[1]) > 1e-3
    a = bigram.steps(4).sample([[0]], generator=torch.Generator().manual_seed(1))
    b = bigram.steps(4).sample([[0]], generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (1, 5)


def test_transform_is_a_kernel_transformation(bigram):
    top = bigram.transform(TopK(1))
    p = top.logits([[0]]).exp()[0]
    t = bigram.model.transition_matrix()[0]
    assert p[t.argmax()] == 1.0 and p.sum() == 1.0
    assert top.transforms == (TopK(1),) and bigram.transforms == ()


def test_score_gives_surprisal_and_entropy(bigram):
    lp, h = bigram.score([[0, 1, 2, 3]], prefix_len=1)
    t = bigram.model.transition_matrix()
    torch.testing.assert_close(lp[0], t[[0, 1, 2], [1, 2, 3]].log(), atol=1e-15, rtol=0)
    torch.testing.assert_close(h[0], -(t[[0, 1, 2]] * t[[0, 1, 2]].log()).sum(-1))


def test_errors(bigram, make_bigram):
    with pytest.raises(ValidationError, match=r"token ids must lie in \[0, 4\)"):
        bigram.logits([[0, 4]])
    with pytest.raises(ValidationError, match="integer token ids"):
        bigram.logits(torch.zeros(1, 2))
    with pytest.raises(ValidationError, match=r"shape \(B, T\)"):
        bigram.logits(torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValidationError, match=r"tokens of shape \(2,\) for 1 prefixes"):
        bigram.log_prob([[0]], [0, 1])
    with pytest.raises(ValidationError, match=r"token ids must lie in \[0, 4\)"):
        bigram.log_prob([[0]], [4])
    with pytest.raises(ValidationError, match="integer ids"):
        bigram.log_prob([[0]], [0.5])
    with pytest.raises(ValidationError, match="prefix_len"):
        bigram.score([[0, 1]], prefix_len=2)
    with pytest.raises(ValidationError, match="positive integer"):
        bigram.steps(0)
    with pytest.raises(ValidationError, match=r"expected \(\.\.\., 1, 3\)"):
        bigram.steps(2).log_prob([[0]], [[0, 1]])
    with pytest.raises(ValidationError, match="sample_shape"):
        bigram.sample([[0]], (-1,))
    with pytest.raises(TypeError, match="callable"):
        TokenKernel(3, 4)
    with pytest.raises(ValidationError, match="eos id 7"):
        TokenKernel(bigram.model, 4, eos=7)
    with pytest.raises(TypeError, match="not a condprob.lm filter"):
        bigram.transform(lambda x: x)
    with pytest.raises(TypeError, match="compose sequence kernels"):
        bigram.then(bigram)
    with pytest.raises(SpaceMismatchError):
        _ = bigram.steps(1) >> make_bigram(5).steps(1)
    bad = TokenKernel(lambda p: torch.zeros(p.shape[0], 3), 4)
    with pytest.raises(ValidationError, match=r"expected logits of shape \(1, 4\)"):
        bad.logits([[0]])
    nan = TokenKernel(lambda p: torch.full((p.shape[0], 4), float("nan")), 4)
    with pytest.raises(ValidationError, match="model logits contain NaN"):
        nan.logits([[0]])


def test_dense_bigram_validation():
    with pytest.raises(ValidationError, match=r"transition \(V, V\)"):
        BigramLM.from_matrix(torch.eye(3), torch.ones(2) / 2)
    with pytest.raises(ValidationError, match="transition must sum to 1"):
        BigramLM.from_matrix(torch.ones(2, 2), torch.ones(2) / 2)
    with pytest.raises(ValidationError, match="initial must sum to 1"):
        BigramLM.from_matrix(torch.eye(2), torch.ones(2))


def test_symspell_word_bigram_model():
    k = symspell_bigram()
    assert k.vocab_size == 82834
    the = k.vocab.index("the")
    p = k.logits([[the], [k.vocab.index("of")]]).exp()
    torch.testing.assert_close(p.sum(-1), torch.ones(2, dtype=torch.float64), atol=1e-12, rtol=0)
    assert k.vocab.label(int(p[1].argmax())) == "the"
    h = float(k.entropy([[the]])[0])
    assert 7.0 < h < 8.5
    with pytest.raises(ValidationError, match="too large"):
        k.model.transition_matrix()
    small = symspell_bigram(max_words=500)
    assert small.vocab_size == 500 and "the" in small.vocab
    t = small.model.transition_matrix()
    torch.testing.assert_close(t.sum(-1), torch.ones(500, dtype=torch.float64), atol=1e-12, rtol=0)


class _Output:
    def __init__(self, logits):
        self.logits = logits


class _TinyCausalLM(torch.nn.Module):
    """A Hugging Face-shaped causal LM: forward(ids) -> object with .logits (B, T, V_padded)."""

    def __init__(self, v, padded):
        super().__init__()
        self.emb = torch.nn.Embedding(v, padded)

    def forward(self, ids):
        return _Output(self.emb(ids).double())


class _Tokenizer:
    eos_token_id = 2

    def __len__(self):
        return 3

    def convert_ids_to_tokens(self, i):
        return ["a", "b", "</s>"][i]


def test_from_hf_wraps_a_causal_lm_interface():
    torch.manual_seed(0)
    model = _TinyCausalLM(3, 5)
    k = TokenKernel.from_hf(model, _Tokenizer())
    assert k.vocab_size == 3 and k.eos == 2 and k.vocab.label(1) == "b"
    want = torch.log_softmax(model.emb.weight[[1]].double()[:, :3], -1)
    torch.testing.assert_close(k.logits([[0, 1]]), want.detach())


def test_bigram_and_symspell_loader_errors(monkeypatch):
    import importlib.util

    from condprob.lm import models

    with pytest.raises(ValidationError, match="sizes V, V, V, V\\+1"):
        BigramLM(torch.ones(3), torch.ones(2), torch.ones(3), torch.zeros(4, dtype=torch.long),
                 torch.zeros(0, dtype=torch.long), torch.zeros(0))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="needs the symspellpy package"):
        models._symspell_dir()


ROW = torch.tensor([0.5, 0.2, 0.12, 0.1, 0.05, 0.03], dtype=torch.float64)


@pytest.mark.parametrize("f", [Typical(0.6), Eta(0.08), Epsilon(0.08), TopK(2), MinP(0.2),
                               TopP(0.6), Temperature(0.5)])
def test_transformed_kernels_sample_their_filtered_law(f, gtest):
    k = TokenKernel(lambda p: ROW.log().expand(p.shape[0], -1), 6).transform(f)
    draws = k.sample([[0]], (12000,), generator=torch.Generator().manual_seed(11))[:, 0]
    want = torch.softmax(f(ROW.log().unsqueeze(0)), -1)[0]
    assert (want - ROW).abs().max() >= 0.04
    assert gtest(draws, want) > 1e-3
    assert gtest(draws, ROW) < 1e-6
