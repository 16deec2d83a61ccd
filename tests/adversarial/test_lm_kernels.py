"""Adversarial inputs to language-model kernels, beams, counterfactuals and regular-language
conditioning: bad prefixes and tokens, counts, impossible events (-inf evidence)."""

import math

import pytest
import torch

from condprob.lm import BigramLM, TokenKernel
from condprob.lm.cpsbs import cp_beam_search
from condprob.lm.gumbel import counterfactual, gumbel_topk, stochastic_beam_search
from condprob.lm.regex import ConditionedBigram, TokenIndex, constrain, smc

V = 5
TOKENS = [str(i) for i in range(V)]
T = torch.softmax(torch.randn(V, V, generator=torch.Generator().manual_seed(0),
                              dtype=torch.float64), -1)
LM = TokenKernel(BigramLM.from_matrix(T, torch.full((V,), 1.0 / V, dtype=torch.float64)), TOKENS)
NEVER = TokenIndex.from_token_regex("0 0 0 0 0 0", TOKENS)  # longer than the 2 steps allowed

BAD = [
    (lambda: LM.logits([[7]]), "7"), (lambda: LM.logits([[-1]]), "-1"),
    (lambda: LM.logits(torch.tensor([[0.5]])), "integer"), (lambda: LM.logits([["a"]]), "prefix"),
    (lambda: LM.logits([[0], [0, 1]]), "prefix"),
    (lambda: LM.log_prob([[0]], torch.tensor([9])), "[0, 5)"),
    (lambda: LM.sample([[0]], (-1,)), "sample_shape"), (lambda: LM.steps(0), "steps"),
    (lambda: LM.token_id("zzz"), "zzz"), (lambda: LM.transform(5), "filter"),
    (lambda: LM.score([[0, 9]], 1), "9"),
    (lambda: gumbel_topk(torch.zeros(5), 0), "k"),
    (lambda: stochastic_beam_search(LM, [0], 0, 2), "k"),
    (lambda: stochastic_beam_search(LM, [0], 2, -1), "steps"),
    (lambda: cp_beam_search(LM, [0], 2, -1), "steps"),
    (lambda: counterfactual(LM, [[0, 1, 2]], 1, do={7: 1}), "7"),
    (lambda: TokenIndex.from_regex("(a", ["a"]), "("),
    (lambda: constrain(LM, TokenIndex.from_token_regex("0", ["0", "1"]), 1), "2 tokens"),
    (lambda: smc(LM, NEVER, [0], 3, 0), "num_particles"),
    (lambda: smc(LM, NEVER, [0], 0, 8), "max_len"),
    (lambda: TokenKernel(5, 3), "callable"),
    (lambda: TokenKernel(lambda p: torch.zeros(p.shape[0], 4), 3).logits([[0]]), "logits"),
    (lambda: TokenKernel(lambda p: torch.full((p.shape[0], 3), math.nan), 3).sample([[0]]),
     "nan"),
]


@pytest.mark.parametrize("make,word", BAD)
def test_bad_lm_inputs(make, word, clear_error):
    clear_error(make, word)


def test_impossible_language_event_is_minus_inf_evidence(clear_error):
    exact = ConditionedBigram(LM, NEVER, 2)
    assert exact.log_prob_event([[0]]).item() == -math.inf
    assert smc(LM, NEVER, [0], 2, 8, torch.Generator().manual_seed(0)).log_evidence.item() \
        == -math.inf
    clear_error(lambda: exact.sample([[0]]), "probability zero")
