"""Adversarial inputs to the DSL, the Pyro bridge and guided inference: bad parameters, NaN
observations, observations off the support, impossible and inconsistent conditions."""

import pyro
import pyro.distributions as pd
import pytest
import torch

import condprob as cp
import condprob.pyro as cpyro
from condprob.bffg import (
    FiniteMessage,
    GaussianMessage,
    Model,
    NonlinearGaussian,
    backward_filter,
    forward_guide,
    posterior_marginals,
    time_grid,
)
from condprob.dsl import bernoulli, categorical, infer, normal
from condprob.dsl import condition as given

D = cp.FiniteSpace(["a", "b"], "d")


def bad_bernoulli():
    return bernoulli(1.5)


def unnormalised_categorical():
    return categorical([0.5, 0.6])


def empty_categorical():
    return categorical([])


def nan_mean():
    return normal(float("nan"), 1.0)


def negative_std():
    return normal(0.0, -1.0)


def impossible():
    b = bernoulli(0.0)
    given(b == 1)
    return b


def never():
    given(False)
    return 1


def inconsistent():
    x = normal(0.0, 0.0)
    given(x == 1.0)
    return x


def nan_observation():
    pyro.sample("x", pd.Normal(0.0, 1.0), obs=torch.tensor(float("nan")))


def bernoulli_at_half():
    pyro.sample("x", pd.Bernoulli(0.3), obs=torch.tensor(0.5))


def category_out_of_range():
    pyro.sample("x", pd.Categorical(torch.tensor([0.5, 0.5])), obs=torch.tensor(5))


def zero_probability_observation():
    pyro.sample("z", pd.Categorical(torch.tensor([1.0, 0.0])), obs=torch.tensor(1))


BAD = [
    (lambda: infer(bad_bernoulli), "1.5"), (lambda: infer(unnormalised_categorical), "sum to 1"),
    (lambda: infer(empty_categorical), "at least one"), (lambda: infer(nan_mean), "finite"),
    (lambda: infer(negative_std), "standard deviation"), (lambda: infer(impossible), "probability zero"),
    (lambda: infer(never), "probability zero"), (lambda: infer(inconsistent), "cannot condition"),
    (lambda: cpyro.exact(nan_observation)(), "x"),
    (lambda: cpyro.exact(bernoulli_at_half)(), "x"),
    (lambda: cpyro.exact(category_out_of_range)(), "x"),
    (lambda: cpyro.exact(zero_probability_observation)(), "probability zero"),
    (lambda: cpyro.to_pyro(5), "convert"), (lambda: cpyro.from_pyro(pd.Beta(1.0, 1.0)), "Beta"),
    (lambda: time_grid(1.0, 0.0, 5), "t1 > t0"), (lambda: time_grid(0.0, 1.0, 0), "steps"),
    (lambda: NonlinearGaussian(lambda x: x, torch.tensor([[1.0, 2.0], [0.0, 1.0]]), 2, 2),
     "symmetric"),
    (lambda: NonlinearGaussian(lambda x: x, torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), 2,
                               2), "finite"),
    (lambda: NonlinearGaussian(5, torch.eye(2), 2, 2), "mean"),
    (lambda: Model("a", 5), "prior"),
    (lambda: Model("a", cp.State([0.5, 0.5], D)).add_edge("a", "b", 7), "kernel"),
    (lambda: GaussianMessage.observation(torch.eye(2), torch.eye(3), torch.zeros(2)), "shape"),
]


@pytest.mark.parametrize("make,word", BAD)
def test_bad_inputs(make, word, clear_error):
    clear_error(make, word)


def test_impossible_finite_evidence_in_a_bffg_model(clear_error):
    m = Model("a", cp.State([1.0, 0.0], D)).add_edge("a", "b", cp.identity(D))
    clear_error(lambda: m.observe("b", "b"), "message")
    m.observe("b", FiniteMessage.observe("b", D))
    filtered = backward_filter(m)
    assert filtered.log_evidence.item() == float("-inf") and filtered.evidence.item() == 0
    clear_error(lambda: forward_guide(filtered, 4, seed=0), "probability zero")
    clear_error(lambda: posterior_marginals(filtered), "probability zero")
