"""Optimal multi-draft selection: LP, two-step decomposition, min-cut closed form, identical
drafts; output laws exactly the target; samplers checked by G-tests with a power check."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from condprob.errors import ValidationError
from condprob.lm.multidraft import (
    identical_drafts_acceptance,
    lp_selection,
    optimal_acceptance,
    recursive_rejection_acceptance,
    two_step_selection,
)
from condprob.lm.speculative import recursive_rejection


def laws(seed: int, v: int, k: int, concentration: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    alpha = torch.full((v,), concentration, dtype=torch.float64)
    gamma = torch._standard_gamma(alpha.expand(k + 1, v).contiguous(), generator=g)
    gamma = gamma + 1e-3
    probs = gamma / gamma.sum(-1, keepdim=True)
    return probs[0], probs[1:]


problems = st.tuples(st.integers(0, 10**6), st.integers(2, 6), st.integers(1, 3),
                     st.sampled_from([0.3, 1.0, 3.0]))


@given(problems)
def test_lp_two_step_and_min_cut_agree(problem):
    seed, v, k, conc = problem
    p, qs = laws(seed, v, k, conc)
    lp = lp_selection(p, qs)
    two = two_step_selection(p, qs)
    assert abs(lp.acceptance - two.acceptance) < 1e-9
    assert abs(lp.acceptance - optimal_acceptance(p, qs)) < 1e-9
    assert lp.acceptance >= recursive_rejection_acceptance(p, qs) - 1e-9
    torch.testing.assert_close(lp.law(), p, atol=1e-9, rtol=0)
    torch.testing.assert_close(two.law(), p, atol=1e-9, rtol=0)
    r = two.intermediate
    assert abs(float(torch.minimum(p, r).sum()) - two.acceptance) < 1e-9
    assert abs(float(r.sum()) - 1) < 1e-9


@given(st.integers(0, 10**6), st.integers(2, 7))
def test_one_draft_is_one_minus_total_variation(seed, v):
    p, qs = laws(seed, v, 1)
    overlap = float(torch.minimum(p, qs[0]).sum())
    assert abs(lp_selection(p, qs).acceptance - overlap) < 1e-9
    assert abs(recursive_rejection_acceptance(p, qs) - overlap) < 1e-12


@given(st.integers(0, 10**6), st.integers(2, 6), st.sampled_from([2, 3]),
       st.sampled_from([0.3, 1.0, 3.0]))
def test_identical_drafts_closed_form_equals_lp(seed, v, k, conc):
    p, qs = laws(seed, v, 1, conc)
    q = qs[0]
    assert abs(identical_drafts_acceptance(p, q, k) - lp_selection(p, q.expand(k, -1))
               .acceptance) < 1e-9


def test_identical_drafts_reach_one_exactly_when_the_condition_holds():
    p = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert identical_drafts_acceptance(p, p, 2) == 1.0
    # q puts 0.9 on token 0: p({1}) = 0.5 >= q({1})^2 = 0.01 but p({0}) = 0.5 < 0.81
    q = torch.tensor([0.9, 0.1], dtype=torch.float64)
    assert identical_drafts_acceptance(p, q, 2) == pytest.approx(1 + 0.5 - 0.81, abs=1e-12)


@pytest.mark.parametrize("scheme", [lp_selection, two_step_selection])
def test_sampled_outputs_follow_the_target(scheme, gtest):
    p, qs = laws(3, 5, 2)
    sel = scheme(p, qs)
    g = torch.Generator().manual_seed(0)
    n = 20000
    drafts = torch.stack([torch.multinomial(q, n, replacement=True, generator=g) for q in qs], 1)
    tokens, accepted = sel.sample(drafts, generator=g)
    assert gtest(tokens, p) > 1e-3
    wrong = 0.9 * p + 0.1 * qs[0]
    assert gtest(tokens, wrong) < 1e-3
    se = (sel.acceptance * (1 - sel.acceptance) / n) ** 0.5
    assert abs(accepted.double().mean().item() - sel.acceptance) < 4 * se + 1e-9
    drafted = (tokens.unsqueeze(-1) == drafts).any(-1)
    assert bool(drafted[accepted].all())


def test_recursive_rejection_acceptance_matches_the_sampler():
    p, qs = laws(5, 6, 1)
    q = qs[0]
    g = torch.Generator().manual_seed(1)
    n, k = 40000, 3
    drafts = torch.multinomial(q, n * k, replacement=True, generator=g).reshape(n, k)
    _, which = recursive_rejection(p.expand(n, -1), q.expand(n, -1), drafts, generator=g)
    rate = (which < k).double().mean().item()
    exact = recursive_rejection_acceptance(p, q.expand(k, -1))
    assert abs(rate - exact) < 4 * (exact * (1 - exact) / n) ** 0.5


def test_bad_input_raises_house_errors():
    p, qs = laws(0, 4, 2)
    with pytest.raises(ValidationError, match="drafts must be"):
        lp_selection(p, qs[:, :3] / qs[:, :3].sum(-1, keepdim=True))
    with pytest.raises(ValidationError, match="must sum to"):
        lp_selection(p * 2, qs)
    with pytest.raises(ValidationError, match="draft tuples"):
        lp_selection(torch.full((40,), 1 / 40, dtype=torch.float64),
                     torch.full((4, 40), 1 / 40, dtype=torch.float64))
    with pytest.raises(ValidationError, match="positive integer"):
        identical_drafts_acceptance(p, qs[0], 0)
    q = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    sel = lp_selection(p, torch.stack([q, q]))
    with pytest.raises(ValidationError, match="probability zero"):
        sel.sample(torch.tensor([[0, 3]]))
    with pytest.raises(ValidationError, match="drafts must be"):
        sel.sample(torch.tensor([0, 1]))
    with pytest.raises(ValidationError, match=r"draft token ids must lie in \[0, 4\)"):
        sel.sample(torch.tensor([[0, 4]]))
    with pytest.raises(ValidationError, match="integer token ids"):
        sel.sample(torch.tensor([[0.0, 1.7]]))                      # was truncated to [0, 1]


@pytest.mark.parametrize("seed", range(4))
def test_four_drafts_agree_to_1e9(seed):
    p, qs = laws(seed, 6, 4, 0.5)
    lp = lp_selection(p, qs).acceptance
    assert abs(lp - two_step_selection(p, qs).acceptance) < 1e-9
    assert abs(lp - optimal_acceptance(p, qs)) < 1e-9
