import itertools
import math

import pytest
import torch

from condprob.errors import ValidationError
from tpp.data import EventBatch
from tpp.hawkes import Hawkes
from tpp.metrics import (
    crps,
    mae,
    mark_accuracy,
    micro_f1,
    nll_per_event,
    rmse,
    time_rescaling_ks,
    weighted_f1,
)

BATCH = EventBatch.from_sequences([[1.0, 3.0, 4.0], [2.0]], [[0, 1, 2], [1]], T=5.0, num_marks=3)


def test_time_errors():
    pred = torch.tensor([[1.5, 2.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    # inter-event times: [1, 2, 1], [2]; errors 0.5, 0, 0, -1
    assert rmse(pred, BATCH) == pytest.approx(math.sqrt((0.25 + 1) / 4), rel=1e-15)
    assert mae(pred, BATCH) == pytest.approx(1.5 / 4, rel=1e-15)
    with pytest.raises(ValidationError, match="shape"):
        rmse(pred[:, :2], BATCH)


def test_mark_scores_against_hand_counts():
    pred = torch.tensor([[0, 1, 1], [1, 0, 0]])
    # true 0,1,2,1 vs pred 0,1,1,1: class 0: tp1; class 1: tp2 fp1; class 2: fn1
    assert mark_accuracy(pred, BATCH) == 0.75
    assert micro_f1(pred, BATCH) == pytest.approx(0.75, rel=1e-15)
    f1 = {0: 1.0, 1: 2 * 2 / (2 * 2 + 1), 2: 0.0}
    support = {0: 1, 1: 2, 2: 1}
    ref = sum(f1[k] * support[k] for k in f1) / 4
    assert weighted_f1(pred, BATCH) == pytest.approx(ref, rel=1e-15)
    empty = EventBatch.from_sequences([[]], [[]], T=1.0, num_marks=2)
    with pytest.raises(ValidationError, match="no events"):
        mark_accuracy(torch.zeros(1, 0, dtype=torch.long), empty)


def test_crps_matches_pairwise_definition_and_closed_form():
    x = torch.tensor([[0.3], [1.2], [2.0], [0.7]], dtype=torch.float64)
    y = torch.tensor([1.0], dtype=torch.float64)
    pairs = sum(abs(a - b) for a, b in itertools.product(x[:, 0].tolist(), repeat=2)) / 16
    ref = (x[:, 0] - 1.0).abs().mean().item() - pairs / 2
    assert crps(x, y).item() == pytest.approx(ref, rel=1e-14)
    # Exp(1): CRPS(y) = y + 2 e^{-y} - 3/2; 200k samples give about 3e-3 accuracy
    s = torch.empty(200_000, 1, dtype=torch.float64).exponential_(
        generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0.8], dtype=torch.float64)
    exact = 0.8 + 2 * math.exp(-0.8) - 1.5
    assert crps(s, y).item() == pytest.approx(exact, abs=5e-3)
    assert crps(2 * s, y).item() != pytest.approx(exact, abs=5e-3)     # power
    with pytest.raises(ValidationError, match="samples must have shape"):
        crps(s[:1], y)


def test_nll_parts_and_ks_errors():
    h = Hawkes([0.2, 0.3], [[0.1, 0.2], [0.0, 0.3]], 1.0)
    data = h.simulate(50.0, 3, seed=0)
    nll = nll_per_event(h, data)
    assert nll.total == pytest.approx(h.nll_per_event(data), rel=1e-12)
    assert nll.total == pytest.approx(nll.time + nll.mark, rel=1e-12)
    lam = h.intensities_at_events(data)
    mark = -(lam.gather(2, data.marks[..., None])[..., 0] / lam.sum(-1)).log()[data.mask].sum()
    assert nll.mark == pytest.approx(float(mark) / data.num_events, rel=1e-12)
    empty = EventBatch.from_sequences([[]], [[]], T=1.0, num_marks=2)
    with pytest.raises(ValidationError, match="at least one event"):
        nll_per_event(h, empty)
    with pytest.raises(ValidationError, match="at least one event"):
        time_rescaling_ks(h, empty)
