"""The character-level GRU trained on standard-library docstrings, and SMC conditioning of it."""

from __future__ import annotations

import collections
import math
import re

import pytest
import torch

from condprob.errors import ValidationError
from condprob.lm.charlm import stdlib_text, train_char_lm
from condprob.lm.regex import TokenIndex, smc


@pytest.fixture(scope="module")
def trained():
    text = stdlib_text()
    kernel, losses = train_char_lm(text[:-3000], steps=120, seed=0)
    return text, kernel, losses


@pytest.mark.slow
def test_training_beats_the_unigram_law_on_held_out_text(trained):
    text, kernel, losses = trained
    counts = collections.Counter(text[:-3000])
    n = sum(counts.values())
    unigram = -sum(c / n * math.log(c / n) for c in counts.values())
    held = [kernel.vocab.index(c) for c in text[-300:] if c in kernel.vocab]
    lp, _ = kernel.score([held], 1)
    assert losses[-1] < losses[0]
    assert float(-lp.mean()) < unigram - 0.8


@pytest.mark.slow
def test_smc_conditions_the_neural_model_on_a_pattern(trained):
    _, kernel, _ = trained
    index = TokenIndex.from_regex(r"[a-z]* (the|a) [a-z]*", list(kernel.vocab.labels))
    res = smc(kernel, index, [kernel.vocab.index("s")], 8, 64, torch.Generator().manual_seed(0))
    texts = ["".join(kernel.vocab.label(int(i)) for i in p[1:]) for p in res.particles]
    assert all(re.fullmatch(r"[a-z]* (the|a) [a-z]*", t) for t in texts)
    assert -30 < float(res.log_evidence) < 0


def test_short_text_is_rejected():
    with pytest.raises(ValidationError, match="more than seq_len"):
        train_char_lm("abc", seq_len=8)
