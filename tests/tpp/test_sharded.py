"""Two processes (gloo) against one: the sharded Hawkes fit and neural training."""

import importlib.util
from pathlib import Path

import pytest
import torch

from tpp.hawkes import Hawkes

JOB = Path(__file__).with_name("tpp_job.py")
_spec = importlib.util.spec_from_file_location("tpp_job", JOB)
job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(job)


@pytest.fixture(scope="module")
def two(torchrun, tmp_path_factory):
    out = tmp_path_factory.mktemp("tpp")
    torchrun(JOB, str(out))
    return torch.load(out / "tpp_2.pt", weights_only=False)


@pytest.mark.parametrize("decays", ["shared", "pair"])
def test_sharded_hawkes_fit_equals_the_single_process_fit(two, decays):
    single = Hawkes.fit(job.data(), decays=decays)
    assert job.hawkes_fit(decays).mu.equal(single.mu)     # no process group: Hawkes.fit itself
    for got, want in zip(two[decays], (single.mu, single.alpha, single.beta), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-8)
    # the fit is the maximum: the gradient of the full log-likelihood vanishes there
    theta = [single.mu.clone().requires_grad_(), single.alpha.clone().requires_grad_()]
    batch = job.data()
    (Hawkes(theta[0], theta[1], single.beta).log_likelihood(batch).sum()
     / batch.num_events).backward()
    assert max(float(t.grad.abs().max()) for t in theta) < 1e-6


def test_two_process_neural_training_matches_one_process(two):
    for got, want in zip(two["neural"], job.neural_run(), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-8)
