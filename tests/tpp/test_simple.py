import math

import numpy as np
import pytest
import scipy.integrate
import torch
from torch.distributions import Exponential, LogNormal, Normal

from condprob.errors import ValidationError
from tpp.data import EventBatch
from tpp.metrics import time_rescaling_ks
from tpp.simple import (
    HomogeneousPoisson,
    InhomogeneousPoisson,
    Renewal,
    SelfCorrecting,
    omi_processes,
    sinusoidal_rate,
)

PROCS = omi_processes()


def test_homogeneous_poisson_closed_form_and_mle():
    p = HomogeneousPoisson([0.5, 1.5])
    b = EventBatch.from_sequences([[0.1, 0.4, 2.0]], [[0, 1, 1]], T=3.0)
    ref = math.log(0.5) + 2 * math.log(1.5) - 2.0 * 3.0
    assert p.log_likelihood(b).item() == pytest.approx(ref, rel=1e-15)
    fit = HomogeneousPoisson.fit(b)
    assert fit.rates.tolist() == pytest.approx([1 / 3, 2 / 3], rel=1e-15)
    with pytest.raises(ValidationError, match="no events of mark"):
        HomogeneousPoisson.fit(b, num_marks=3)
    with pytest.raises(ValidationError, match="rates must be"):
        HomogeneousPoisson([1.0, -1.0])


def test_sinusoidal_compensator_is_the_integral_of_the_rate():
    rate = sinusoidal_rate(0.99, 20.0)
    for t in (0.3, 7.0, 33.3):
        quad = scipy.integrate.quad(lambda s: rate.intensity(torch.tensor(s, dtype=torch.float64))
                                    .item(), 0, t,
                                    epsabs=1e-13, epsrel=1e-13)[0]
        assert rate.compensator(torch.tensor(t, dtype=torch.float64)).item() == pytest.approx(
            quad, rel=1e-12)
    with pytest.raises(ValidationError, match="exceeds bound"):
        InhomogeneousPoisson(rate.intensity, rate.compensator, 1.5).simulate(50.0, seed=0)


def test_self_correcting_matches_numerical_integration():
    p = SelfCorrecting(1.3, 0.7)
    b = p.simulate(6.0, 2, seed=0)
    for i in range(2):
        t, _ = b.sequence(i)
        t = t.tolist()

        def lam(s, t=t):
            return math.exp(1.3 * s - 0.7 * sum(x < s for x in t))

        ll = sum(1.3 * x - 0.7 * k for k, x in enumerate(t))
        grid = [0.0, *t, 6.0]
        comp = sum(scipy.integrate.quad(lam, lo, hi, epsabs=1e-13, epsrel=1e-13)[0]
                   for lo, hi in zip(grid[:-1], grid[1:], strict=True))
        assert p.log_likelihood(b)[i].item() == pytest.approx(ll - comp, rel=1e-11)


def test_renewal_matches_manual_formula():
    d = LogNormal(torch.tensor(-0.3, dtype=torch.float64), torch.tensor(0.8, dtype=torch.float64))
    p = Renewal(d)
    b = EventBatch.from_sequences([[0.5, 0.9, 2.0]], None, T=3.5)
    gaps = torch.tensor([0.5, 0.4, 1.1], dtype=torch.float64)
    surv = 1 - d.cdf(torch.tensor(1.5, dtype=torch.float64))
    ref = d.log_prob(gaps).sum() + surv.log()
    assert p.log_likelihood(b).item() == pytest.approx(ref.item(), rel=1e-13)
    with pytest.raises(ValidationError, match="no survival function"):
        Renewal(Normal(0.0, 1.0))


@pytest.mark.parametrize("name", sorted(PROCS))
def test_omi_generators_pass_time_rescaling(name):
    p = PROCS[name]
    data = p.simulate(3000.0, 1, seed=1)
    assert time_rescaling_ks(p, data).pvalue > 0.01


@pytest.mark.parametrize("name", sorted(PROCS))
def test_next_event_densities_integrate_to_one(name):
    p = PROCS[name]
    hist = p.simulate(30.0, 2, seed=2)
    law = p.next_event(hist)
    for b in range(2):
        def dens(s, b=b):
            tau = torch.full((2,), s, dtype=torch.float64)
            return law.log_prob((tau, torch.zeros(2, dtype=torch.long))).exp()[b].item()
        total = sum(scipy.integrate.quad(dens, lo, hi, epsabs=1e-12, limit=200)[0]
                    for lo, hi in ((0, 1), (1, 20), (20, np.inf)))
        assert total == pytest.approx(1.0, abs=1e-7)
    tau, mark = law.sample((3,))
    assert tau.shape == (3, 2) and (tau > 0).all() and (mark == 0).all()


def test_time_rescaling_has_power():
    data = PROCS["hawkes1"].simulate(3000.0, 1, seed=3)
    assert time_rescaling_ks(PROCS["stationary_poisson"], data).pvalue < 1e-6
    assert time_rescaling_ks(Renewal(Exponential(torch.tensor(1.0, dtype=torch.float64))),
                             PROCS["stationary_poisson"].simulate(3000.0, seed=4)).pvalue > 0.01


def test_next_event_samplers_follow_their_laws():
    """Rescaled by the exact conditional compensator, sampled waiting times are Exp(1)."""
    import scipy.stats

    rate = sinusoidal_rate(0.99, 20.0)
    hist = rate.simulate(7.0, 3, seed=0)
    tau, _ = rate.next_event(hist).sample((3000,), generator=torch.Generator().manual_seed(1))
    t0 = hist.last_times
    z = (rate.compensator(t0 + tau) - rate.compensator(t0)).flatten().numpy()
    assert scipy.stats.kstest(z, "expon").pvalue > 0.01
    assert scipy.stats.kstest(1.1 * z, "expon").pvalue < 1e-4           # power
    sc = SelfCorrecting(1.0, 1.0)
    hist = sc.simulate(5.0, 3, seed=2)
    tau, _ = sc.next_event(hist).sample((3000,), generator=torch.Generator().manual_seed(3))
    c = torch.exp(hist.last_times - hist.lengths.double())
    z = (c * torch.expm1(tau)).flatten().numpy()
    assert scipy.stats.kstest(z, "expon").pvalue > 0.01
    assert scipy.stats.kstest(1.1 * z, "expon").pvalue < 1e-4


def test_mean_time_estimate():
    p = HomogeneousPoisson([0.5, 1.5])
    hist = p.simulate(3.0, 2, seed=0)
    m = p.next_event(hist).mean_time(40_000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(m, torch.full((2,), 0.5, dtype=torch.float64), rtol=0.02)
