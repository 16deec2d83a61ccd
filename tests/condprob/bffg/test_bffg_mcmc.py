"""pCN over the driving noise and Metropolis-Hastings parameter updates."""

import math

import pytest
import torch

from condprob.bffg import GaussianMessage, LinearSDE, Model, backward_filter, time_grid
from condprob.bffg.mcmc import mh_parameters, pcn
from condprob.errors import ValidationError
from condprob.finite import Kernel, State
from condprob.gaussian import Gaussian

T64 = torch.float64


def mat(x):
    return torch.tensor(x, dtype=T64)


def ou_model(beta=0.1, aux_b=None, steps=50):
    k = LinearSDE(mat([[-0.2]]), mat([beta]), mat([[0.9]]), time_grid(0.0, 1.0, steps))
    aux = None if aux_b is None else LinearSDE(mat([[aux_b]]), mat([beta]), mat([[1.3]]), k.grid)
    m = Model("x0", Gaussian(mat([1.1]), mat([[0.0]])))
    m.add_edge("x0", "xT", k, auxiliary=aux)
    m.observe("xT", GaussianMessage.observation(mat([[1.0]]), mat([[0.2]]), mat([1.39])))
    return m, k


def exact_end(k, y=1.39, var=0.2):
    tr = k.transition(0.0, 1.0).at(mat([1.1]))
    m, q = tr.mean.item(), tr.cov.item()
    gain = q / (q + var)
    return m + gain * (y - m), q * (1 - gain)


@pytest.mark.slow
def test_pcn_corrects_a_wrong_auxiliary():
    model, k = ou_model(aux_b=1.0)
    filt = backward_filter(model)
    pm, pv = exact_end(k)
    n = 1000
    res = pcn(filt, 60, rho=0.5, chains=n, seed=1, record=("xT",))
    assert 0.2 < res.acceptance < 0.95
    assert len(res.trace) == 60
    x = res.samples.values["xT"][:, 0]
    se = math.sqrt(pv / n)
    assert abs(x.mean().item() - pm) < 4 * se + 0.01
    # power: the guided proposal alone (iteration 0 states) is far off
    start = res.trace[0]["xT"][:, 0]
    assert abs(start.mean().item() - pm) > 4 * se + 0.01


def test_pcn_errors():
    model, _ = ou_model()
    filt = backward_filter(model)
    with pytest.raises(ValidationError, match="rho"):
        pcn(filt, 5, rho=1.0)
    with pytest.raises(ValidationError, match="positive"):
        pcn(filt, 0)
    fm = Model("a", State([0.5, 0.5], 2)).add_edge("a", "b", Kernel([[1.0, 0.0], [0.5, 0.5]],
                                                                     2, 2))
    with pytest.raises(TypeError, match="finite"):
        pcn(backward_filter(fm), 3)
    with pytest.raises(ValidationError, match="prior"):
        mh_parameters(lambda th: ou_model(th.item())[0], mat([0.0]),
                      lambda th: -math.inf, 3, 0.5)


@pytest.mark.slow
def test_mh_parameter_posterior_matches_grid():
    """Posterior of the drift offset beta (prior N(0, 1)) against exact evidence on a grid."""

    def log_prior(th):
        return -0.5 * th.item() ** 2

    grid = torch.linspace(-4, 4, 161, dtype=T64)
    logp = torch.stack([backward_filter(ou_model(b.item(), steps=1)[0]).log_evidence
                        - 0.5 * b**2 for b in grid])
    w = torch.softmax(logp, 0)
    mean = (w * grid).sum().item()
    sd = math.sqrt((w * (grid - mean) ** 2).sum().item())
    res = mh_parameters(lambda th: ou_model(th.item(), aux_b=0.5, steps=10)[0], mat([0.0]),
                        log_prior, 800, step=1.5, rho=0.5, seed=3, record=("xT",))
    th = res.thetas[200:, 0]
    assert 0.15 < res.acceptance_theta < 0.9
    assert res.acceptance_noise > 0.2
    batches = th.reshape(12, -1).mean(1)
    se = batches.std().item() / math.sqrt(12)
    assert abs(th.mean().item() - mean) < 4 * se + 0.03
    assert abs(th.std().item() - sd) < 0.2 * sd
    assert abs(th.mean().item() - (mean + 0.3)) > 4 * se + 0.03
