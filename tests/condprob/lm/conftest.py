"""Shared fixtures of the lm tests: a seeded G-test and small exact models."""

from __future__ import annotations

import pytest
import torch

from condprob import laws
from condprob.lm.kernel import TokenKernel
from condprob.lm.models import BigramLM


def g_test(samples: torch.Tensor, probs: torch.Tensor) -> float:
    """p-value of the G-test of samples (ints in [0, n)) against the law `probs` (n,)."""
    probs = torch.as_tensor(probs, dtype=torch.float64)
    return laws.g_test(torch.bincount(samples.reshape(-1), minlength=probs.numel()), probs)


@pytest.fixture
def gtest():
    return g_test


def small_bigram(v: int = 4, eos: int | None = None, seed: int = 0) -> TokenKernel:
    """A dense random bigram kernel over v tokens (eos, when given, is absorbing)."""
    g = torch.Generator().manual_seed(seed)
    trans = torch.rand(v, v, generator=g, dtype=torch.float64) + 0.1
    if eos is not None:
        trans[eos] = 0.0
        trans[eos, eos] = 1.0
    trans = trans / trans.sum(-1, keepdim=True)
    init = torch.rand(v, generator=g, dtype=torch.float64) + 0.1
    return TokenKernel(BigramLM.from_matrix(trans, init / init.sum()),
                       [f"t{i}" for i in range(v)], eos=eos)


@pytest.fixture
def bigram():
    return small_bigram()


@pytest.fixture
def make_bigram():
    return small_bigram
