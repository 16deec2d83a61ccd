"""The one tolerance policy: relative to the dtype, never growing with size."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from condprob import tolerance
from condprob.errors import ValidationError
from condprob.finite import Kernel, State


def test_rule_and_constants():
    e64, e32 = torch.finfo(torch.float64).eps, torch.finfo(torch.float32).eps
    assert tolerance.tolerance(torch.float64) == tolerance.SLACK * e64
    assert tolerance.tolerance(torch.float32, scale=3.0, condition=10.0) == tolerance.SLACK * e32 * 30
    assert tolerance.tolerance(torch.float16) == math.sqrt(torch.finfo(torch.float16).eps)
    assert tolerance.tolerance(np.dtype(object)) == 0.0
    assert tolerance.relative(torch.float64) == tolerance.SLACK * e64
    assert tolerance.relative(torch.bfloat16) == math.sqrt(torch.finfo(torch.bfloat16).eps)
    assert tolerance.eps(np.zeros(2, dtype=np.float32)) == e32
    assert tolerance.eps(torch.zeros(2, dtype=torch.long)) == 0.0
    assert tolerance.within(1e-14, torch.float64) and not tolerance.within(1e-12, torch.float64)
    assert not tolerance.within(float("nan"), torch.float64)
    with pytest.raises(ValidationError, match="condition"):
        tolerance.tolerance(torch.float64, condition=0.5)


def test_float32_state_mass_two_rejected_at_any_size():
    # the old tolerance (1e-5 per outcome) accepted this
    p = torch.full((200_000,), 2.0 / 200_000, dtype=torch.float32)
    with pytest.raises(ValidationError, match=r"state on .* must sum to 1: a row sums to 1.99.*tolerance"):
        State(p)
    with pytest.raises(ValidationError, match="must sum to 1"):
        State(torch.full((200_000,), 1.001 / 200_000, dtype=torch.float32))


def test_softmax_outputs_accepted():
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        for n in (2, 1000, 200_000):
            State(torch.softmax(3 * torch.randn(n, generator=g, dtype=dtype), -1))


def test_float64_tolerance_is_tight():
    with pytest.raises(ValidationError, match="off by 1e-10"):
        State([0.5, 0.5 + 1e-10])
    State([0.1] * 10)  # 0.9999999999999999 in float64


def test_to_exact_normalises():
    s = State([1 / 3, 2 / 3]).to_exact()
    assert s.exact and s.as_dict() == {0: Fraction(1, 3), 1: Fraction(2, 3)}
    k = Kernel([[0.1, 0.2, 0.7], [1 / 7, 2 / 7, 4 / 7]], 2, 3).to_exact()
    assert all(sum(row) == 1 for row in k.matrix)
    assert k.matrix[1].tolist() == [Fraction(1, 7), Fraction(2, 7), Fraction(4, 7)]
    assert k.matrix[0].tolist() == [Fraction(1, 10), Fraction(2, 10), Fraction(7, 10)]


def test_exact_from_floats_refuses_with_advice():
    with pytest.raises(ValidationError, match=r"9999999999999999/10000000000000000.*\.to_exact\(\)"):
        State([1 / 3, 2 / 3], exact=True)


def test_check_probabilities_messages():
    with pytest.raises(ValidationError, match="weights has a non-finite entry"):
        tolerance.check_probabilities(torch.tensor([float("nan"), 1.0]), "weights")
    with pytest.raises(ValidationError, match="weights has a negative probability"):
        tolerance.check_probabilities(torch.tensor([-0.5, 1.5]), "weights")
    tolerance.check_probabilities(torch.empty(0, 3), "weights")


def test_check_probabilities_returns_the_least_entry():
    assert tolerance.check_probabilities(torch.tensor([[0.25, 0.75], [0.5, 0.5]]), "w") == 0.25
    assert tolerance.check_probabilities(torch.tensor([-0.0, 1.0]), "w") == 0.0
    assert tolerance.check_probabilities(torch.empty(0, 3), "w") == 0.0
