"""Adversarial inputs to the neural point processes, metrics and training entry point."""

import pytest
import torch

from tpp import (
    ConditionalGenerator,
    EventBatch,
    Hawkes,
    IntensityFree,
    TimeGivenMark,
    metrics,
    train,
)

B = EventBatch.from_sequences([[1.0, 2.0, 3.5]], [[0, 1, 0]], T=4.0, num_marks=2)
B3 = EventBatch.from_sequences([[1.0, 2.0]], [[0, 2]], T=3.0, num_marks=3)
TIE = EventBatch.from_sequences([[1.0, 1.0, 2.0]], [[0, 1, 0]], T=3.0, num_marks=2)
EMPTY = EventBatch.from_sequences([[]], T=1.0, num_marks=2)
H = Hawkes([0.5, 0.3], [[0.2, 0.1], [0.3, 0.4]], 1.5)
torch.manual_seed(0)
M = IntensityFree(2)

BAD = [
    (lambda: IntensityFree(0), "num_marks"), (lambda: IntensityFree(2, components=0), "components"),
    (lambda: IntensityFree(2, hidden=0), "hidden"), (lambda: IntensityFree("2"), "num_marks"),
    (lambda: TimeGivenMark(2, components=-1), "components"),
    (lambda: ConditionalGenerator(num_marks=2, mark_dim=2), "exactly one"),
    (lambda: ConditionalGenerator(num_marks=2, num_particles=0), "num_particles"),
    (lambda: ConditionalGenerator(num_marks=2, latent=0), "latent"),
    (lambda: M.log_likelihood(B3), "mark"), (lambda: M.log_likelihood(TIE), "tied"),
    (lambda: metrics.rmse(torch.zeros(5), B), "shape"),
    (lambda: metrics.mark_accuracy(torch.zeros(5), B), "shape"),
    (lambda: metrics.micro_f1(torch.zeros(5), B), "shape"),
    (lambda: metrics.crps(torch.zeros(4, 3), torch.zeros(2)), "shape"),
    (lambda: metrics.nll_per_event(H, EMPTY), "event"),
    (lambda: metrics.time_rescaling_ks(H, EMPTY), "event"),
    (lambda: train(IntensityFree(2), TIE, epochs=1), "tied"),
]


@pytest.mark.parametrize("make,word", BAD)
def test_bad_inputs(make, word, clear_error):
    clear_error(make, word)


@pytest.mark.parametrize("model", [IntensityFree(2), TimeGivenMark(2),
                                   ConditionalGenerator(num_marks=2)],
                         ids=["intensity-free", "time-given-mark", "generator"])
def test_valid_extreme_batches_give_finite_likelihoods(model):
    for times, T in (([1e-9, 2e-9], 1e-8), ([1.0, 1e6], 2e6), ([0.5], 0.5)):
        b = EventBatch.from_sequences([times], [[i % 2 for i in range(len(times))]], T=T,
                                      num_marks=2)
        ll = model.log_likelihood(b)
        assert torch.isfinite(ll).all(), (times, ll)
