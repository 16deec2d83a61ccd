"""Token filters: golden cases, brute-force definitions, ties, the sort-free sampler's law."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from condprob.errors import ValidationError
from condprob.lm.filters import (
    Epsilon,
    Eta,
    MinP,
    Temperature,
    TopK,
    TopP,
    Typical,
    entropy,
    filtered_probs,
    temper,
)
from condprob.lm.sampling import sample_filtered, sample_filtered_torch, sample_sorted


def kept(f, probs):
    return torch.softmax(f(torch.tensor(probs, dtype=torch.float64).log()), -1)


def test_typical_golden_case():
    out = kept(Typical(0.5), [[0.97, 0.01, 0.01, 0.01], [0.4, 0.2, 0.2, 0.2]])
    want = torch.tensor([[1.0, 0, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64)
    torch.testing.assert_close(out, want, atol=1e-12, rtol=0)


def test_eta_golden_case():
    out = kept(Eta(0.0625), [[0.0, 0.1, 0.8, 0.1], [0.01, 0.04, 0.9, 0.05]])
    want = torch.tensor([[0, 0.1, 0.8, 0.1], [0, 0, 1.0, 0]], dtype=torch.float64)
    torch.testing.assert_close(out, want, atol=1e-12, rtol=0)


def test_entropy_handles_zero_probabilities():
    h = entropy(torch.tensor([[0.0, float("-inf")], [0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(h, torch.tensor([0.0, 0.6931471805599453], dtype=torch.float64))


probs_rows = st.lists(st.integers(1, 30), min_size=2, max_size=7).map(
    lambda xs: torch.tensor(xs, dtype=torch.float64) / sum(xs))


def brute_mass_prefix(p, key, mass):
    masses = [sum(float(p[j]) for j in range(len(p)) if key[j] < key[i]) for i in range(len(p))]
    assume(all(abs(m - mass) > 1e-9 for m in masses))  # rounding decides exact boundaries
    return [m < mass for m in masses]


def away_from(values, threshold):
    """Definitions are compared away from exact boundaries, which rounding decides."""
    assume(bool(((values - threshold).abs() > 1e-9).all()))


@given(probs_rows, st.sampled_from([0.1, 0.3, 0.5, 0.9, 1.0]))
def test_top_p_and_typical_match_definitions(p, mass):
    logits = p.log()
    assert (TopP(mass)(logits) > float("-inf")).tolist() == brute_mass_prefix(p, -p, mass)
    dev = (-p.log() - entropy(logits)).abs()
    assert (Typical(mass)(logits) > float("-inf")).tolist() == brute_mass_prefix(p, dev, mass)


@given(probs_rows, st.integers(1, 8), st.sampled_from([0.05, 0.2, 0.5, 1.0]))
def test_top_k_min_p_eta_epsilon_match_definitions(p, k, q):
    logits = p.log()
    kth = sorted(p.tolist(), reverse=True)[min(k, len(p)) - 1]
    assert (TopK(k)(logits) > float("-inf")).tolist() == [x >= kth for x in p.tolist()]
    away_from(p, q * p.max())
    assert (MinP(q)(logits) > float("-inf")).tolist() == (p >= q * p.max()).tolist()
    if q < 1:
        away_from(p, q)
        keep = (p >= q) | (p == p.max())
        assert (Epsilon(q)(logits) > float("-inf")).tolist() == keep.tolist()
        eta = min(q, q**0.5 * float(torch.exp(-entropy(logits))))
        away_from(p, eta)
        assert (Eta(q)(logits) > float("-inf")).tolist() == ((p >= eta) | (p == p.max())).tolist()


def test_ties_are_kept_together_and_order_free():
    p = torch.tensor([0.3, 0.3, 0.2, 0.2], dtype=torch.float64)
    for f in (TopK(1), TopK(3), TopP(0.35), TopP(0.65)):
        mask = f(p.log()) > float("-inf")
        perm = torch.tensor([3, 1, 2, 0])
        assert (f(p[perm].log()) > float("-inf")).tolist() == mask[perm].tolist()
    assert (TopK(1)(p.log()) > float("-inf")).tolist() == [True, True, False, False]
    assert (TopP(0.65)(p.log()) > float("-inf")).tolist() == [True, True, True, True]


def test_temperature_scales_logits():
    x = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(Temperature(0.5)(x), 2 * x)


@pytest.mark.parametrize("bad", [
    lambda: Temperature(0), lambda: Temperature(float("inf")), lambda: TopK(0),
    lambda: TopK(2.5), lambda: TopP(0), lambda: TopP(1.5), lambda: MinP(-0.1),
    lambda: Typical(0), lambda: Eta(1.0), lambda: Epsilon(0), lambda: TopK(True),
    lambda: TopP("0.9"),
])
def test_bad_parameters_are_rejected(bad):
    with pytest.raises(ValidationError):
        bad()


@pytest.mark.parametrize("logits, match", [
    (torch.tensor([1.0, float("nan")]), "NaN"),
    (torch.tensor([1.0, float("inf")]), r"\+inf"),
    (torch.tensor([float("-inf")] * 3), "every token is -inf"),
    (torch.tensor([1, 2]), "floating"),
    (torch.zeros(0), "non-empty"),
])
def test_bad_logits_are_rejected(logits, match):
    with pytest.raises(ValidationError, match=match):
        TopP(0.9)(logits)
    with pytest.raises(ValidationError, match=match):
        sample_filtered(logits, top_p=0.9)


def test_non_tensor_logits_are_rejected():
    with pytest.raises(TypeError, match="torch.Tensor"):
        TopK(2)([1.0, 2.0])


SETTINGS = [dict(top_p=0.8), dict(top_k=3), dict(min_p=0.2),
            dict(temperature=0.7, top_k=4, top_p=0.9),
            dict(temperature=1.5, top_p=0.6, min_p=0.1), dict()]


@pytest.mark.slow
@pytest.mark.parametrize("kw", SETTINGS)
def test_sort_free_sampler_law(kw, gtest):
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(8, generator=g, dtype=torch.float64) * 1.5
    law = filtered_probs(logits, **kw)
    draws = sample_filtered(logits.expand(20000, -1), generator=g, **kw)
    assert gtest(draws, law) > 1e-3
    wrong = torch.softmax(logits, -1) if kw else torch.softmax(logits / 1.2, -1)
    assert gtest(draws, wrong) < 1e-6


def test_sort_free_and_sorted_samplers_share_the_law(gtest):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, generator=g, dtype=torch.float64)
    law = filtered_probs(logits, 0.8, top_k=4, top_p=0.7)
    draws = sample_sorted(logits.repeat(4000, 1), 0.8, 4, 0.7, generator=g).reshape(4000, 2)
    for row in range(2):
        assert gtest(draws[:, row], law[row]) > 1e-3


def test_sampler_handles_ties_and_the_top_k_tie_path(gtest):
    logits = torch.tensor([2.0, 2.0, 2.0, 1.0, 0.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    draws = sample_filtered(logits.expand(6000, -1), top_k=2, generator=g)
    assert gtest(draws, torch.tensor([1 / 3, 1 / 3, 1 / 3, 0, 0])) > 1e-3


def test_sampler_shapes_and_seeds():
    logits = torch.randn(3, 5, 50, dtype=torch.float64)
    a = sample_filtered(logits, top_p=0.9, generator=torch.Generator().manual_seed(0))
    b = sample_filtered(logits, top_p=0.9, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 5) and torch.equal(a, b)
    masks = TopP(0.9)(logits) > float("-inf")
    assert masks.gather(-1, a.unsqueeze(-1)).all()


def test_sampler_with_minus_inf_logits_never_draws_them():
    logits = torch.tensor([[0.0, float("-inf"), 1.0, float("-inf")]] * 500)
    draws = sample_filtered(logits, top_p=0.99, generator=torch.Generator().manual_seed(2))
    assert set(draws.tolist()) <= {0, 2}


def test_sampler_extreme_peaks_terminate():
    for scale, v in itertools.product((1.0, 30.0, 300.0), (7, 1000)):
        logits = torch.randn(16, v) * scale
        out = sample_filtered(logits, top_p=0.5, min_p=0.01)
        assert (TopP(0.5)(logits) > float("-inf")).gather(-1, out.unsqueeze(-1)).all()


@pytest.mark.parametrize("kw", [dict(top_k=0), dict(top_p=0.0), dict(min_p=2.0),
                                dict(temperature=-1.0)])
def test_sampler_rejects_bad_parameters(kw):
    with pytest.raises(ValidationError):
        sample_filtered(torch.zeros(2, 5), **kw)


def test_sampler_accepts_half_precision():
    logits = torch.randn(4, 100).to(torch.bfloat16)
    out = sample_filtered(logits, top_p=0.9, top_k=20)
    assert out.shape == (4,) and ((out >= 0) & (out < 100)).all()


@given(st.lists(st.floats(-6, 6, allow_nan=False), min_size=1, max_size=40),
       st.one_of(st.none(), st.integers(1, 10)), st.one_of(st.none(), st.floats(0.05, 1.0)),
       st.one_of(st.none(), st.floats(0.01, 1.0)), st.floats(0.3, 3.0))
def test_sort_free_draws_always_lie_in_the_kept_set(values, k, p, m, t):
    logits = torch.tensor(values, dtype=torch.float64).expand(8, -1)
    draws = sample_filtered(logits, t, k, p, m, generator=torch.Generator().manual_seed(0))
    law = filtered_probs(logits[0], t, k, p, m)
    assert (law[draws] > 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("kw", [dict(top_k=40), dict(top_k=40, top_p=0.6),
                                dict(top_k=40, min_p=0.05, temperature=0.8),
                                dict(top_p=0.5, min_p=0.02), dict(temperature=0.5)])
def test_compiled_cpu_path_law_on_a_large_vocabulary(kw, gtest):
    """V = 3000: the chunked top-k selection and the blocked inverse CDF of the CPU kernels are
    in play; logits rounded to 0.1 put ties at the k-th and inside the nucleus."""
    g = torch.Generator().manual_seed(11)
    logits = (torch.randn(3000, generator=g) * 2).round(decimals=1)
    law = filtered_probs(logits.double(), **kw)
    draws = sample_filtered(logits.expand(20000, -1), generator=g, **kw)
    assert gtest(draws, law) > 1e-3
    t = kw.get("temperature", 1.0)
    assert gtest(draws, filtered_probs(logits.double(), **{**kw, "temperature": 1.2 * t})) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("kw", [dict(top_k=3, top_p=0.9), dict(top_p=0.8, min_p=0.1)])
def test_torch_twin_shares_the_law(kw, gtest):
    """`sample_filtered_torch`, the device-generic twin of the compiled CPU path."""
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(8, generator=g, dtype=torch.float64) * 1.5
    draws = sample_filtered_torch(logits.expand(20000, -1), generator=g, check=True, **kw)
    assert gtest(draws, filtered_probs(logits, **kw)) > 1e-3
    assert gtest(draws, torch.softmax(logits, -1)) < 1e-6


def test_temper_keeps_empty_and_all_minus_inf_rows_free_of_nan():
    empty = torch.empty(2, 0)
    assert temper(empty, 1e-40).shape == (2, 0)
    rows = torch.tensor([[float("-inf")] * 3, [-5.0, -7.0, float("-inf")]])
    out = temper(rows, 1e-40)  # tiny t: the shifted path
    assert not bool(out.isnan().any())
    assert torch.equal(out[0], rows[0])
    assert out[1, 0] == 0 and out[1, 1] == float("-inf") and out[1, 2] == float("-inf")
