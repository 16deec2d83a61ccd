"""Adversarial inputs to condprob.lm: extreme temperatures and thresholds, float32 rounding,
malformed logits and probabilities."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from condprob.lm import BigramLM, recursive_rejection
from condprob.lm.filters import (
    Epsilon,
    Eta,
    MinP,
    Temperature,
    TopK,
    TopP,
    Typical,
    mass_prefix_mask,
)
from condprob.lm.sampling import sample_filtered, sample_sorted

NEG = float("-inf")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_top_p_one_keeps_every_token_of_positive_probability(dtype):
    x = torch.tensor([[30.0, 0.0, 0.0, -5.0], [1.0, NEG, 0.5, 0.5]], dtype=dtype)
    # power: the exclusive cumulative mass after the first token rounds to 1 in float32
    p = torch.softmax(x[:1].float(), -1)
    assert not mass_prefix_mask(p, -p, 1.0).all()
    assert TopP(1.0).keep(x).tolist() == [[True] * 4, [True, False, True, True]]
    assert torch.equal(TopP(1.0)(x), x)
    assert Typical(1.0).keep(x).tolist() == [[True] * 4, [True, False, True, True]]
    # the sampler's top_p=1.0 is the unfiltered law, the same as TopP(1.0)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    big = torch.randn(64, 300, generator=g1, dtype=dtype) * 4
    g1.manual_seed(3)
    assert torch.equal(sample_filtered(big, top_p=1.0, generator=g1),
                       sample_filtered(big, generator=g2))


def test_float32_top_p_sets_equal_float64_sets():
    g = torch.Generator().manual_seed(0)
    rows = 0
    for p in (0.99, 0.995, 0.999):
        x = torch.randn(300, 5000, generator=g) * 3
        a, b = TopP(p).keep(x), TopP(p).keep(x.double())
        assert torch.equal(a, b)
        # power: float32 cumulative sums choose different sets in some rows
        pr = torch.softmax(x, -1)
        sp, order = torch.sort(pr, -1, descending=True)
        excl32 = torch.cumsum(sp, -1) - sp
        rows += int(((excl32 < p).sum(-1) != (b.sum(-1))).sum())
    assert rows > 0


@pytest.mark.parametrize("t", [1e-40, 1e-50, 5e-324])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_temperature_is_greedy_never_nan(t, dtype):
    x = torch.tensor([[1.0, 3.0, 3.0, -2.0, NEG], [-7.0, -1.0, -3.0, 0.0, -1.0]], dtype=dtype)
    law = torch.softmax(Temperature(t)(x), -1)
    want = torch.tensor([[0, 0.5, 0.5, 0, 0], [0, 0, 0, 1.0, 0]], dtype=dtype)
    assert torch.equal(law, want)
    g = torch.Generator().manual_seed(0)
    for kw in ({}, {"top_k": 2}, {"top_p": 0.9}, {"min_p": 0.5}):
        draws = torch.stack([sample_filtered(x, temperature=t, generator=g, **kw)
                             for _ in range(20)])
        assert set(draws[:, 0].tolist()) <= {1, 2} and set(draws[:, 1].tolist()) == {3}
        assert sample_sorted(x, temperature=t, generator=g, **kw)[1].item() == 3


def test_tiny_temperature_on_negative_rows_is_greedy():
    # logits / 1e-40 overflows to -inf on the whole row: the law is the greedy one, not 0/0
    x = torch.tensor([[-2.5, -3.0, -2.5], [-7.0, -1.0, -3.0]])
    want = torch.tensor([[0.5, 0, 0.5], [0, 1.0, 0]])
    assert torch.equal(torch.softmax(Temperature(1e-40)(x), -1), want)
    g = torch.Generator().manual_seed(0)
    for kw in ({}, {"top_k": 1}, {"top_p": 0.5}):
        draws = sample_filtered(x[:, None].expand(2, 20, 3), 1e-40, generator=g, **kw)
        assert set(draws[0].tolist()) == {0, 2} and set(draws[1].tolist()) == {1}


BAD_PARAMS = [
    (lambda: Temperature(0), "temperature"), (lambda: Temperature(-1.0), "temperature"),
    (lambda: Temperature(float("nan")), "temperature"),
    (lambda: Temperature(float("inf")), "temperature"),
    (lambda: TopK(0), "top-k"), (lambda: TopK(2.5), "top-k"), (lambda: TopK(True), "top-k"),
    (lambda: TopP(0.0), "top-p"), (lambda: TopP(1.5), "top-p"),
    (lambda: TopP(float("nan")), "top-p"), (lambda: MinP(-0.1), "min-p"),
    (lambda: Typical(0), "typical"), (lambda: Eta(1.0), "eta"), (lambda: Epsilon(0), "epsilon"),
    (lambda: sample_filtered(torch.zeros(2, 3), temperature=0.0), "temperature"),
    (lambda: sample_filtered(torch.zeros(2, 3), top_p=2.0), "top-p"),
    (lambda: sample_filtered(torch.zeros(2, 3), top_k=0), "top-k"),
]


@pytest.mark.parametrize("make,word", BAD_PARAMS)
def test_bad_filter_parameters(make, word, clear_error):
    clear_error(make, word)


BAD_LOGITS = [
    (torch.tensor([[0.0, float("nan")]]), "nan"), (torch.tensor([[0.0, float("inf")]]), "+inf"),
    (torch.tensor([[NEG, NEG]]), "every token is -inf"), (torch.zeros(2, 0), "vocabulary"),
    (torch.zeros(3, dtype=torch.long), "floating"), ([0.0, 1.0], "torch.tensor"),
]


@pytest.mark.parametrize("logits,word", BAD_LOGITS)
@pytest.mark.parametrize("f", [Temperature(0.5), TopK(1), TopP(0.9), MinP(0.1), Typical(0.9),
                               Eta(0.1), Epsilon(0.1), sample_filtered])
def test_bad_logits(f, logits, word, clear_error):
    clear_error(lambda: f(logits), "logits", word)


@pytest.mark.parametrize("kw", [{"top_k": 5}, {"top_k": 5, "top_p": 0.9, "temperature": 0.5},
                                {"top_p": 0.9}, {"min_p": 0.1}])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bad_values_deep_in_a_large_row_are_caught(kw, dtype, clear_error):
    # the compiled CPU kernels check the rows in their first pass: one bad value among 3000,
    # at the start, inside the lanes and in the tail, in one row of four
    for value, word in ((float("nan"), "nan"), (float("inf"), "+inf")):
        for pos in (0, 1234, 2999):
            x = torch.randn(4, 3000, generator=torch.Generator().manual_seed(pos), dtype=dtype)
            x[2, pos] = value
            clear_error(lambda x=x: sample_filtered(x, **kw), "logits", word)
    x = torch.randn(4, 3000, dtype=dtype)
    x[1] = NEG
    clear_error(lambda: sample_filtered(x, **kw), "logits", "every token is -inf")


@given(st.floats(0.5, 1.0), st.integers(1, 6), st.floats(1e-3, 1.0))
def test_filters_on_float32_rows_never_empty_never_nan(p, k, t):
    g = torch.Generator().manual_seed(int(p * 1000) + k)
    x = torch.randn(8, 40, generator=g) * 10
    x[0, 5:] = NEG
    for f in (TopP(p), TopK(k), MinP(p), Typical(p)):
        out = f(Temperature(t)(x))
        assert not torch.isnan(out).any() and (out > NEG).any(-1).all()


def test_bad_probabilities_for_speculative_and_bigram(clear_error):
    q = torch.tensor([[0.5, 0.5]])
    idx = torch.zeros(1, 1, dtype=torch.long)
    clear_error(lambda: recursive_rejection(q * 2, q, idx), "must sum to 1", "tolerance")
    clear_error(lambda: recursive_rejection(torch.tensor([[float("nan"), 1.0]]), q, idx),
                "non-finite")
    clear_error(lambda: BigramLM.from_matrix(torch.eye(2) * 2, torch.ones(2) / 2),
                "transition", "sum to 1")
    clear_error(lambda: BigramLM.from_matrix(torch.eye(2), torch.tensor([1.5, -0.5])),
                "initial", "negative")
    clear_error(lambda: BigramLM.from_matrix(torch.eye(3), torch.ones(2) / 2), "transition")
