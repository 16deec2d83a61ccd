"""Adversarial inputs to crf beyond impossible positions: labels, tags, masks, shapes, dtypes,
k and sample counts, constraints and schemes."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from crf import LinearChainCRF, RegCCRF, bio, bioes, constrained_decode, iob1

M = LinearChainCRF(3)
R = RegCCRF(["O", "B", "I"], "O* (B I* O*)*")
E = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
TAGS = torch.zeros(2, 4, dtype=torch.long)

BAD = [
    (lambda: LinearChainCRF("abc"), "labels"), (lambda: LinearChainCRF(["a", "a"]), "distinct"),
    (lambda: LinearChainCRF(0), "positive"), (lambda: LinearChainCRF(2.5), "labels"),
    (lambda: M.log_prob([[0.0] * 3] * 4, TAGS), "emissions"),
    (lambda: M.log_prob(torch.zeros(3), TAGS), "emissions"),
    (lambda: M.log_prob(torch.zeros(2, 4, 5), TAGS), "labels"),
    (lambda: M.log_prob(torch.zeros(2, 4, 3, dtype=torch.long), TAGS), "floating"),
    (lambda: M.log_prob(E, TAGS.float()), "tags"), (lambda: M.log_prob(E, [[0] * 4] * 2), "tags"),
    (lambda: M.log_prob(E, TAGS[:, :2]), "tags"),
    (lambda: M.log_prob(E, TAGS, torch.ones(2, 4)), "mask"),
    (lambda: M.log_prob(E, TAGS, [[True] * 4] * 2), "mask"),
    (lambda: M.log_prob(E, TAGS, torch.zeros(2, 4, dtype=torch.bool)), "mask"),
    (lambda: M.nll(E, TAGS, reduction="x"), "reduction"),
    (lambda: M.top_k(E, 0), "k"), (lambda: M.top_k(E, 2.5), "k"),
    (lambda: M.sample(E, -1), "-1"),
    (lambda: M.partial_log_likelihood(E, torch.ones(2, 4, 2, dtype=torch.bool)), "allowed"),
    (lambda: M.distribution(E).log_prob(TAGS[:, :1]), "value"),
    (lambda: M.distribution(torch.zeros(1, 30, 3)).enumerate_support(), "3^30"),
    (lambda: RegCCRF(["O", "B"], "O* X"), "X"), (lambda: RegCCRF(["O", "B"], "O* (B"), "("),
    (lambda: RegCCRF(3, "0*"), "names"),
    (lambda: R.nll(E, torch.full((2, 4), 2)), "outside the model's language"),
    (lambda: constrained_decode(M, "X*", E), "X"),
    (lambda: bio([]), "at least one"), (lambda: bio(["PER", "PER"]), "distinct"),
    (lambda: bioes(['P"ER']), "without"), (lambda: iob1("PER"), "list of names"),
]


@pytest.mark.parametrize("make,word", BAD)
def test_bad_crf_inputs(make, word, clear_error):
    clear_error(make, word)


@given(pos=st.integers(0, 3), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_impossible_labels_give_exactly_minus_inf(pos, dtype):
    e = E.to(dtype).clone()
    e[:, pos, 0] = float("-inf")
    lp = R.log_prob(e, TAGS)
    assert torch.isneginf(lp).all()
    assert torch.isneginf(R.log_prob(E.to(dtype), torch.full((2, 4), 2))).all()
    assert torch.isneginf(M.partial_log_likelihood(e, torch.nn.functional.one_hot(
        TAGS, 3).bool())).all()


@given(scale=st.sampled_from([1e-30, 1.0, 1e4]), dtype=st.sampled_from([torch.float32,
                                                                          torch.float64]))
def test_valid_emissions_never_give_nan(scale, dtype):
    e = (E * scale).to(dtype)
    for model in (M, R):
        out = [model.log_prob(e, TAGS), model.log_partition(e), model.marginals(e),
               model.entropy(e), model.decode(e)[0]]
        assert all(not torch.isnan(o).any() for o in out)


def test_minus_inf_emissions_at_masked_or_forbidden_positions_keep_gradients_finite():
    e = torch.randn(2, 4, 3, dtype=torch.float64)
    e[1, 3] = float("-inf")            # padding
    e[:, :, 2] = float("-inf")         # a label never allowed
    e.requires_grad_(True)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    for model in (LinearChainCRF(3), RegCCRF(["O", "B", "I"], "O* (B I* O*)*")):
        loss = model.nll(e, TAGS, mask)
        loss.backward()
        assert torch.isfinite(loss) and not torch.isnan(e.grad).any()
        assert not any(torch.isnan(p.grad).any() for p in model.parameters())
        e.grad = None
