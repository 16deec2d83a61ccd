"""Size-1 and empty inputs across the packages: one outcome, one label, one position, one mark,
one event, one token, no events; each gives the right value, never NaN."""

import math

import torch

import condprob as cp
from condprob import chain as ch
from condprob.lm.filters import Eta, MinP, Temperature, TopK, TopP, Typical
from condprob.lm.sampling import sample_filtered
from crf import LinearChainCRF
from tpp import EventBatch, Hawkes, HomogeneousPoisson


def test_one_outcome_state_and_kernel():
    s = cp.State([1.0])
    assert s.entropy().item() == 0 and s.log_prob(0).item() == 0
    k = cp.Kernel([[1.0]], 1, 1)
    assert (s >> k).probs.tolist() == [1.0]
    assert cp.invert(k, s).matrix.tolist() == [[1.0]]
    assert cp.condition(s @ s, {0: 0}).probs.tolist() == [1.0]
    assert s.sample((3,), generator=cp.rng(0)).tolist() == [0, 0, 0]


def test_one_label_one_position_crf():
    m = LinearChainCRF(1)
    e = torch.randn(2, 1, 1, dtype=torch.float64)
    tags = torch.zeros(2, 1, dtype=torch.long)
    assert torch.allclose(m.log_prob(e, tags), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert m.entropy(e).abs().max() < 1e-12 and m.decode(e)[1].tolist() == [[0], [0]]
    c = ch.Chain(torch.zeros(1, 1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    assert ch.log_partition(c).item() == 0


def test_one_token_vocabulary_filters():
    x = torch.tensor([[0.3]])
    for f in (Temperature(1e-40), TopK(5), TopP(0.1), MinP(1.0), Typical(0.5), Eta(0.5)):
        assert f(x).isfinite().all()
    assert sample_filtered(x, temperature=1e-40, top_p=0.5, top_k=3).tolist() == [0]


def test_one_event_and_no_events():
    h = Hawkes([0.5], [[0.5]], 2.0)
    one = EventBatch.from_sequences([[1.0]], [[0]], T=2.0)
    want = math.log(0.5) - 0.5 * 2.0 - 0.5 * -math.expm1(-2.0 * 1.0)
    assert abs(h.log_likelihood(one).item() - want) < 1e-13
    none = EventBatch.from_sequences([[]], [[]], T=2.0, num_marks=1)
    assert h.log_likelihood(none).item() == -1.0
    assert HomogeneousPoisson(0.5).log_likelihood(none).item() == -1.0
    assert torch.isfinite(h.kernel().log_prob(none, (torch.tensor([0.3], dtype=torch.float64),
                                                     torch.tensor([0])))).all()
