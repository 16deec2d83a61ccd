"""Adversarial inputs to crf: NaN/inf emissions, impossible positions, bad tags, masks, shapes."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from condprob.errors import ConditioningError, ValidationError
from crf import LinearChainCRF, RegCCRF

LABELS = ["O", "B", "I"]


def models():
    torch.manual_seed(0)
    return [LinearChainCRF(3), RegCCRF(LABELS, "O* (B I* O*)*")]


@pytest.mark.parametrize("model", models(), ids=["crf", "regccrf"])
def test_all_labels_impossible_at_a_position_is_a_clear_error_not_nan(model):
    e = torch.randn(2, 4, 3, dtype=torch.float64)
    e[0, 2] = float("-inf")
    tags = torch.zeros(2, 4, dtype=torch.long)
    for f in (lambda: model.log_prob(e, tags), lambda: model.nll(e, tags),
              lambda: model.partial_log_likelihood(e, torch.ones(2, 4, 3, dtype=torch.bool)),
              lambda: model.distribution(e).log_prob(tags), lambda: model.marginals(e),
              lambda: model.decode(e), lambda: model.sample(e, 2), lambda: model.entropy(e)):
        with pytest.raises(ConditioningError, match=r"batch element\(s\) \[0\].*forbids every"):
            f()
    assert torch.isneginf(model.log_partition(e)[0])
    # the other element alone is fine, and an impossible sequence is exactly -inf
    lp = model.log_prob(e[1:], tags[1:])
    assert torch.isfinite(lp).all()
    e2 = e[1:].clone()
    e2[0, 1, 0] = float("-inf")
    assert torch.isneginf(model.log_prob(e2, tags[1:])).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("model", models(), ids=["crf", "regccrf"])
def test_nan_and_plus_inf_emissions_rejected(model, bad):
    e = torch.zeros(1, 3, 3)
    e[0, 1, 2] = bad
    with pytest.raises(ValidationError, match=r"NaN or \+inf"):
        model.log_prob(e, torch.zeros(1, 3, dtype=torch.long))


@given(n=st.integers(-3, 0))
def test_non_positive_label_count(n):
    with pytest.raises(ValidationError, match="number of labels must be positive"):
        LinearChainCRF(n)


@given(tag=st.sampled_from([-1, 3, 99]), pos=st.integers(0, 2))
def test_out_of_range_tags(tag, pos):
    m = LinearChainCRF(3)
    tags = torch.zeros(1, 3, dtype=torch.long)
    tags[0, pos] = tag
    with pytest.raises(ValidationError, match=r"tags must lie in \[0, 3\)"):
        m.nll(torch.zeros(1, 3, 3), tags)
