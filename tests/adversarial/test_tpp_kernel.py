"""Adversarial inputs to next-event kernels (the protocol view of point processes)."""

import math

import pytest
import torch

from tpp import EventBatch, Hawkes, HomogeneousPoisson

H = Hawkes([0.5, 0.3], [[0.2, 0.1], [0.3, 0.4]], 1.5)
K = H.kernel()
B = EventBatch.from_sequences([[1.0, 2.0]], [[0, 1]], T=3.0, num_marks=2)
B3 = EventBatch.from_sequences([[1.0, 2.0]], [[0, 2]], T=3.0, num_marks=3)


def y(tau, mark):
    return torch.tensor([tau], dtype=torch.float64), torch.tensor([mark])


BAD = [
    (lambda: K([[1.0]]), "EventBatch"), (lambda: H.log_likelihood([[1.0]]), "EventBatch"),
    (lambda: K(B3), "marks"),
    (lambda: K.log_prob(B, y(math.nan, 0)), "tau"),
    (lambda: K.log_prob(B, y(1.0, 5)), "mark"),
    (lambda: K.log_prob(B, (torch.tensor([1.0]), torch.tensor([0.5]))), "mark"),
    (lambda: K.log_prob(B, torch.zeros(1, 7)), "shape"),
    (lambda: K.sample(B, (-1,)), "sample_shape"), (lambda: K.sample(B, 2.5), "sample_shape"),
    (lambda: H.next_event(B).mean_time(0), "num_samples"),
]


@pytest.mark.parametrize("make,word", BAD)
def test_bad_inputs(make, word, clear_error):
    clear_error(make, word)


@pytest.mark.parametrize("model", [H, HomogeneousPoisson([1.0, 2.0])], ids=["hawkes", "poisson"])
@pytest.mark.parametrize("tau", [-1.0, 0.0, math.inf])
def test_waiting_times_off_the_support_are_refused(model, tau, clear_error):
    clear_error(lambda: model.kernel().log_prob(B, y(tau, 0)), "tau", "> 0")
