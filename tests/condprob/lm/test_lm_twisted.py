"""Twisted SMC: with the exact twist (bffg backward filter) ESS = N and the evidence has zero
variance; with other twists the evidence is unbiased (mean over runs, with a power check); learned
and gradient twists; diagnostics and errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from condprob.errors import ValidationError
from condprob.lm.attributes import RegularAttribute
from condprob.lm.regex import ConditionedLM, TokenIndex
from condprob.lm.twisted import (
    GradientTwist,
    fit_linear_verifier,
    train_value_twist,
    twisted_smc,
)

TOKENS = ["t0", "t1", "t2", "t3"]
MAX_LEN = 5


@pytest.fixture
def problem(make_bigram):
    lm = make_bigram(4, eos=3, seed=1)
    index = TokenIndex.from_token_regex("t0 (t1|t2)* t0", TOKENS, eos=3)
    conditioned = ConditionedLM(lm, index, MAX_LEN)
    return lm, conditioned, RegularAttribute(conditioned, 1)


def test_exact_twist_gives_full_ess_and_zero_variance_evidence(problem, gtest):
    lm, conditioned, attribute = problem
    exact = float(conditioned.log_prob_event([[1]])[0])
    particles = []
    for seed in range(5):
        res = twisted_smc(lm, attribute, "accept", [1], MAX_LEN, twist=attribute,
                          num_particles=200, generator=torch.Generator().manual_seed(seed))
        assert res.ess == pytest.approx([200.0] * MAX_LEN, abs=1e-9)
        assert res.resampled == []
        assert float(res.log_evidence) == pytest.approx(exact, abs=1e-12)
        assert bool(res.accepted.eq(1).all())
        particles.append(res.particles)
    seqs = torch.cat(particles)[:, 1:]
    allseq = torch.tensor([[1, *x] for x in itertools.product(range(4), repeat=MAX_LEN)])
    logp = lm.steps(MAX_LEN).log_prob(torch.tensor([[1]] * len(allseq)), allseq)
    ok = attribute.probs(allseq)[:, 1] > 0
    code = (seqs * 4 ** torch.arange(MAX_LEN - 1, -1, -1)).sum(-1)
    assert gtest(code, torch.softmax(torch.where(ok, logp, -torch.inf), 0)) > 1e-3
    assert gtest(code, torch.softmax(torch.where(ok, 0.7 * logp, -torch.inf), 0)) < 1e-3


def test_evidence_is_unbiased_without_a_twist(problem):
    lm, conditioned, attribute = problem
    exact = math.exp(float(conditioned.log_prob_event([[1]])[0]))
    g = torch.Generator().manual_seed(0)
    runs = torch.tensor([math.exp(float(twisted_smc(
        lm, attribute, "accept", [1], MAX_LEN, num_particles=40, generator=g).log_evidence))
        for _ in range(300)])
    se = float(runs.std()) / math.sqrt(len(runs))
    assert abs(float(runs.mean()) - exact) < 4 * se
    assert abs(float(runs.mean()) - 1.3 * exact) > 4 * se  # power: a 30% error is detected


def test_ess_triggered_resampling_keeps_the_evidence_unbiased(problem, make_bigram):
    lm, conditioned, attribute = problem
    exact = math.exp(float(conditioned.log_prob_event([[1]])[0]))
    other = make_bigram(4, eos=3, seed=2)  # the exact twist of another model: inexact here
    twist = RegularAttribute(ConditionedLM(other, conditioned.index, MAX_LEN), 1)
    g = torch.Generator().manual_seed(5)
    runs, resampled = [], 0
    for _ in range(300):
        res = twisted_smc(lm, attribute, "accept", [1], MAX_LEN, twist=twist, num_particles=20,
                          ess_threshold=0.99, generator=g)
        runs.append(math.exp(float(res.log_evidence)))
        resampled += len(res.resampled)
    runs = torch.tensor(runs)
    se = float(runs.std()) / math.sqrt(len(runs))
    assert resampled > 300
    assert abs(float(runs.mean()) - exact) < 4 * se
    assert abs(float(runs.mean()) - 1.3 * exact) > 4 * se


def test_learned_and_gradient_twists_are_unbiased(problem):
    lm, conditioned, attribute = problem
    exact = math.exp(float(conditioned.log_prob_event([[1]])[0]))
    value, losses = train_value_twist(lm, attribute, "accept", [1], MAX_LEN, num_samples=256,
                                      steps=60, seed=0)
    assert losses[-1] < losses[0]
    surrogate = fit_linear_verifier(lm, attribute, "accept", [1], MAX_LEN, num_samples=256)
    gradient = GradientTwist(lm, surrogate, MAX_LEN, 1)
    psi = gradient.next_probs([[1, 0]])
    assert psi.shape == (1, 4, 2) and bool(((psi > 0) & (psi < 1)).all())
    g = torch.Generator().manual_seed(1)
    for twist in (value, gradient):
        runs = torch.tensor([math.exp(float(twisted_smc(
            lm, attribute, "accept", [1], MAX_LEN, twist=twist, num_particles=32,
            generator=g).log_evidence)) for _ in range(300)])
        se = float(runs.std()) / math.sqrt(len(runs))
        assert abs(float(runs.mean()) - exact) < 4 * se + 1e-12
        assert abs(float(runs.mean()) - 1.3 * exact) > 4 * se  # power: a 30% error is detected


def test_report_and_errors(problem):
    lm, _, attribute = problem
    res = twisted_smc(lm, attribute, "accept", [1], MAX_LEN, num_particles=16,
                      generator=torch.Generator().manual_seed(0))
    text = res.report()
    assert "p(accept) estimate" in text and "ESS / N" in text and "resampled" in text
    assert res.model_evaluations == 16 * MAX_LEN
    assert math.isfinite(float(res.log_evidence))
    assert float(res.weights.sum()) == pytest.approx(1, abs=1e-12)
    # two untwisted particles all rejected at the last step: evidence exactly 0, ESS 0 at
    # extinction, the weights uniform
    dead = twisted_smc(lm, attribute, "accept", [1], MAX_LEN, num_particles=2,
                       generator=torch.Generator().manual_seed(0))
    assert float(dead.log_evidence) == -math.inf and dead.ess[-1] == 0.0
    assert dead.weights.tolist() == [0.5, 0.5]
    with pytest.raises(ValidationError, match="max_len"):
        twisted_smc(lm, attribute, "accept", [1], 0)
    with pytest.raises(ValidationError, match="num_particles"):
        twisted_smc(lm, attribute, "accept", [1], 3, num_particles=0)
    with pytest.raises(ValidationError, match="ess_threshold"):
        twisted_smc(lm, attribute, "accept", [1], 3, ess_threshold=2.0)
    with pytest.raises(ValidationError, match="unknown label"):
        twisted_smc(lm, attribute, "maybe", [1], 3)
