import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch

import tpp.hawkes as hawkes_module
from condprob.errors import ValidationError
from condprob.spaces import Euclidean, FiniteSpace, SequenceSpace, Unit
from tpp.data import EventBatch
from tpp.hawkes import Hawkes
from tpp.kernel import history_space
from tpp.metrics import time_rescaling_ks

DEP = Hawkes([0.1, 0.05], [[0.2, 0.1], [0.2, 0.3]], 1.0)      # Waghmare et al.'s Dep(I)
SUMEXP = Hawkes([0.3, 0.2], [[[0.2, 0.1], [0.0, 0.1]], [[0.2, 0.05], [0.3, 0.0]]],
                torch.tensor([[[1.0, 5.0], [0.7, 3.0]], [[2.0, 9.0], [1.3, 0.5]]]))


def intensity(h: Hawkes, t: float, times, marks) -> np.ndarray:
    """lambda_k(t) summed over all events strictly before t, directly from the definition."""
    mu, a, b = h.mu.numpy(), h.alpha.numpy(), h.full_beta.numpy()
    lam = mu.copy()
    for s, j in zip(times, marks, strict=True):
        if s < t:
            lam += (a[:, j, :] * b[:, j, :] * np.exp(-b[:, j, :] * (t - s))).sum(-1)
    return lam


def brute_loglik(h: Hawkes, times, marks, T: float) -> float:
    """O(N^2) log-likelihood with the compensator integrated numerically between events."""
    ll = sum(math.log(intensity(h, t, times, marks)[m]) for t, m in zip(times, marks, strict=True))
    grid = [0.0, *times, T]
    comp = sum(scipy.integrate.quad(lambda s: intensity(h, s, times, marks).sum(), lo, hi,
                                    epsabs=1e-13, epsrel=1e-13)[0]
               for lo, hi in zip(grid[:-1], grid[1:], strict=True))
    return ll - comp


@pytest.mark.parametrize("h", [DEP, SUMEXP], ids=["exp", "sum-of-exp, per-pair decays"])
def test_loglik_matches_definition_and_quadrature(h):
    b = h.simulate(30.0, 3, seed=3)
    ll = h.log_likelihood(b)
    for i in range(len(b)):
        t, m = b.sequence(i)
        ref = brute_loglik(h, t.tolist(), m.tolist(), 30.0)
        assert ll[i].item() == pytest.approx(ref, rel=1e-10, abs=1e-10)


def test_intensity_at_query_times_matches_definition():
    b = SUMEXP.simulate(20.0, 2, seed=9)
    grid = torch.linspace(0, 20, 57, dtype=torch.float64)
    lam = SUMEXP.intensity(b, grid)
    for i in range(2):
        t, m = b.sequence(i)
        for q, g in enumerate(grid.tolist()):
            ref = intensity(SUMEXP, g, t.tolist(), m.tolist())
            assert np.allclose(lam[i, q].numpy(), ref, rtol=1e-12)
    empty = EventBatch.from_sequences([[]], [[]], 1.0, num_marks=2)
    assert torch.equal(SUMEXP.intensity(empty, grid[:3])[0], SUMEXP.mu.expand(3, 2))


def test_parametrisations_convert():
    a = torch.tensor([[0.2, 0.1], [0.2, 0.3]]) * 2.0
    h = Hawkes.from_amplitudes([0.1, 0.05], a, torch.full((2, 2), 2.0))
    assert torch.allclose(h.alpha[..., 0], a.double() / 2, atol=1e-15)
    assert torch.allclose(h.amplitudes[..., 0], a.double(), atol=1e-15)
    tick = DEP.to_tick()
    assert np.allclose(tick["adjacency"], [[0.2, 0.1], [0.2, 0.3]]) and np.allclose(tick["decays"], 1)
    with pytest.raises(ValidationError, match="one component"):
        SUMEXP.to_tick()


def test_branching_ratio_and_stationarity():
    eig = np.linalg.eigvals(np.array([[0.2, 0.1], [0.2, 0.3]])).max()
    assert DEP.spectral_radius == pytest.approx(eig, rel=1e-12)
    assert DEP.is_stationary
    rate = np.linalg.solve(np.eye(2) - [[0.2, 0.1], [0.2, 0.3]], [0.1, 0.05])
    assert np.allclose(DEP.stationary_rate.numpy(), rate, rtol=1e-13)
    bad = Hawkes([0.1], [[1.2]], 1.0)
    assert not bad.is_stationary
    with pytest.raises(ValidationError, match="no stationary rate"):
        _ = bad.stationary_rate
    with pytest.raises(ValidationError, match="max_events"):
        bad.simulate(200.0, seed=0, max_events=1000)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(mu=[0.0], alpha=[[0.1]], beta=1.0), "mu must be"),
    (dict(mu=[0.1], alpha=[[-0.1]], beta=1.0), "alpha must be"),
    (dict(mu=[0.1], alpha=[[0.1]], beta=0.0), "beta must be"),
    (dict(mu=[0.1, 0.1], alpha=[[0.1]], beta=1.0), "alpha must have shape"),
    (dict(mu=[0.1], alpha=[[0.1]], beta=[[1.0, 2.0]]), "beta must be"),
])
def test_parameter_validation(kwargs, msg):
    with pytest.raises(ValidationError, match=msg):
        Hawkes(**kwargs)


def test_input_validation():
    with pytest.raises(ValidationError, match="T must be"):
        DEP.simulate(-1.0)
    with pytest.raises(ValidationError, match="method"):
        DEP.simulate(1.0, method="euler")
    three = EventBatch.from_sequences([[0.1]], [[2]], 1.0)
    with pytest.raises(ValidationError, match="2 categorical marks"):
        DEP.log_likelihood(three)
    with pytest.raises(ValidationError, match="decays must be"):
        Hawkes.fit(DEP.simulate(10.0, seed=0), decays="per-event")
    with pytest.raises(ValidationError, match="without events"):
        Hawkes.fit(EventBatch.from_sequences([[]], [[]], 1.0, num_marks=2))


def test_next_event_law_is_normalised_and_sampler_matches_it():
    hist = DEP.simulate(20.0, 3, seed=5)
    law = DEP.next_event(hist)
    assert law.dom == Unit and law.cod == Euclidean(1, "tau") @ FiniteSpace(2, "mark")
    assert law.batch_shape == (3,)
    for b in range(3):
        def dens(tau, b=b):
            t = torch.full((3,), tau, dtype=torch.float64)
            return sum(law.log_prob((t, torch.full((3,), k))).exp()[b].item() for k in range(2))
        assert scipy.integrate.quad(dens, 0, np.inf, epsabs=1e-12)[0] == pytest.approx(1, abs=1e-9)
    tau, mark = law.sample((4000,), generator=torch.Generator().manual_seed(0))
    _, Lam = DEP._law_parts(DEP._state_after(hist))
    z = Lam(tau).flatten().numpy()                      # Exp(1) under the true law
    assert scipy.stats.kstest(z, "expon").pvalue > 0.01
    assert scipy.stats.kstest(1.2 * z, "expon").pvalue < 1e-6      # power: a wrong law fails
    with pytest.raises(ValidationError, match="tau must"):
        law.log_prob((torch.ones(2), torch.zeros(2)))
    with pytest.raises(ValidationError, match="> 0"):
        law.log_prob((torch.zeros(3), torch.zeros(3)))
    with pytest.raises(ValidationError, match="marks must be integers"):
        law.log_prob((torch.ones(3), torch.full((3,), 2)))


def test_next_event_after_empty_history_is_the_baseline_law():
    empty = EventBatch(torch.zeros(2, 0), torch.zeros(2, 0, dtype=torch.long), torch.zeros(2,
                       dtype=torch.long), 1.0, num_marks=2)
    lp = DEP.next_event(empty).log_prob((torch.full((2,), 0.5), torch.tensor([0, 1])))
    ref = torch.log(torch.tensor([0.1, 0.05], dtype=torch.float64)) - 0.15 * 0.5
    assert torch.allclose(lp, ref, rtol=1e-14)


def test_kernel_protocol():
    k = DEP.kernel()
    hist = DEP.simulate(5.0, 2, seed=1)
    assert k.dom == SequenceSpace(FiniteSpace(2, "mark"), "history") == history_space(k.dom.base)
    tau, mark = k.sample(hist, (5,), generator=torch.Generator().manual_seed(0))
    assert tau.shape == (5, 2) and torch.equal(k.log_prob(hist, (tau, mark)),
                                               k(hist).log_prob((tau, mark)))
    packed = torch.stack([tau, mark.double()], -1)
    assert torch.equal(k(hist).log_prob(packed), k.log_prob(hist, (tau, mark)))
    with pytest.raises(TypeError, match="not available"):
        k._condition(None)


def test_predict_matches_quadrature():
    hist = DEP.simulate(30.0, 1, seed=2)
    mean, mark = DEP.predict(hist)
    poisson = Hawkes([0.1, 0.05], [[0.0, 0.0], [0.0, 0.0]], 1.0)
    assert torch.allclose(poisson.predict(hist)[0][hist.mask], torch.tensor(1 / 0.15,
                          dtype=torch.float64), rtol=1e-12)
    i = int(hist.lengths[0]) - 1
    prefix = hist[0]
    prefix = EventBatch(prefix.times[:, :i], prefix.marks[:, :i], torch.tensor([i]), prefix.T, 2)
    law = DEP.next_event(prefix)
    _, Lam = DEP._law_parts(DEP._state_after(prefix))
    def surv(s):
        return math.exp(-Lam(torch.tensor([s], dtype=torch.float64)).item())

    # split at 10: quad's own map of [0, inf) alone is only good to about 1e-8 here
    ref = sum(scipy.integrate.quad(surv, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=500)[0]
              for lo, hi in ((0, 10), (10, np.inf)))
    assert mean[0, i].item() == pytest.approx(ref, rel=1e-12)
    p = [scipy.integrate.quad(lambda s, k=k: law.log_prob((torch.tensor([s]), torch.tensor([k])))
                              .exp().item(), 0, np.inf)[0] for k in range(2)]
    assert mark[0, i].item() == int(np.argmax(p))


@pytest.mark.slow
def test_mle_recovers_parameters_within_standard_errors():
    """10 sequences of T = 2000 (about 6,700 events): each estimate lies within 4 asymptotic
    standard errors (observed Fisher information) of the truth; a 20% wrong value does not."""
    data = DEP.simulate(2000.0, 10, seed=11)
    fit = Hawkes.fit(data)
    se = fit.standard_errors(data)
    for name in ("mu", "alpha"):
        est, true, s = getattr(fit, name), getattr(DEP, name), se[name]
        assert ((est - true).abs() <= 4 * s).all(), (name, est, true, s)
        assert not ((est - 1.2 * true).abs() <= 4 * s).all()
    assert abs(float(fit.beta.flatten()[0]) - 1.0) <= 4 * float(se["beta"].max())
    assert fit.nll_per_event(data) <= DEP.nll_per_event(data)      # the MLE beats the truth


def test_fixed_decay_fit_is_the_concave_mle():
    data = Hawkes([0.5], [[0.5]], 2.0).simulate(500.0, 2, seed=4)
    fit = Hawkes.fit(data, beta=2.0)
    mu = fit.mu.clone().requires_grad_(True)
    al = fit.alpha.clone().requires_grad_(True)
    Hawkes(mu, al, 2.0).log_likelihood(data).sum().backward()
    assert mu.grad.abs().max() < 1e-5 and al.grad.abs().max() < 1e-5


@pytest.mark.parametrize("method", ["branching", "thinning"])
def test_simulators_pass_time_rescaling_and_wrong_model_fails(method):
    data = SUMEXP.simulate(400.0, 4, seed=7, method=method)
    assert time_rescaling_ks(SUMEXP, data).pvalue > 0.01
    wrong = Hawkes(SUMEXP.mu, SUMEXP.alpha * 0.5, SUMEXP.beta)
    assert time_rescaling_ks(wrong, data).pvalue < 1e-3


def test_compiled_single_decay_path_matches_the_scan_path(monkeypatch):
    h = Hawkes([0.3, 0.2], [[0.2, 0.1], [0.2, 0.3]], 1.5)
    assert h._scalar_beta is not None
    data = h.simulate(200.0, 3, seed=8)
    args = [h.mu.clone().requires_grad_(), h.alpha[..., 0].clone().requires_grad_(),
            torch.tensor(1.5, dtype=torch.float64, requires_grad=True)]
    # the compiled pass, compiled here if it is not yet (without numba's cache, a first call
    # elsewhere takes the scan path and the second compiles it)
    monkeypatch.setattr(hawkes_module, "_compiled_pass_ready", lambda: True)
    fast = Hawkes(*args).log_likelihood(data)
    monkeypatch.setattr(hawkes_module, "_compiled_pass_ready", lambda: False)
    assert torch.equal(Hawkes(*args).log_likelihood(data),
                       Hawkes(args[0], args[1], args[2].expand(2, 2)).log_likelihood(data))
    slow = Hawkes(args[0], args[1], args[2].expand(2, 2)).log_likelihood(data)
    assert torch.allclose(fast, slow, rtol=1e-13, atol=0)
    g_fast = torch.autograd.grad(fast.sum(), args)
    g_slow = torch.autograd.grad(slow.sum(), args)
    for a, b in zip(g_fast, g_slow, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *p: Hawkes(*p).log_likelihood(data), args)


@pytest.mark.parametrize("scale", [1e-120, 1e-3, 1e40, 1e150])
def test_compiled_pass_at_extreme_intensities_matches_the_scan_path(monkeypatch, scale):
    """Intensities beyond [1e-100, 1e100] (logged one by one), and products of intensities that
    leave [1e-200, 1e200] within a few events (rescaled): the compiled pass sums the same logs.
    The windows end both within and beyond 40 / beta of the last events (where the compensator
    term e^{-beta (T - t)} is below half an ulp of 1 and skipped)."""
    h = Hawkes([0.3, 0.2], [[0.2, 0.1], [0.2, 0.3]], 1.5)
    data = h.simulate(60.0, 4, seed=2)
    times = [data.sequence(i)[0].tolist() for i in range(4)]
    marks = [data.sequence(i)[1].tolist() for i in range(4)]
    batch = EventBatch.from_sequences(times, marks, T=[60.0, 61.0, 90.0, 200.0], num_marks=2)
    # lambda = scale * (mu + beta sum alpha S): every intensity, and the likelihood, rescaled
    args = [(h.mu * scale).requires_grad_(), (h.alpha[..., 0] * scale).requires_grad_(),
            torch.tensor(1.5, dtype=torch.float64, requires_grad=True)]
    monkeypatch.setattr(hawkes_module, "_compiled_pass_ready", lambda: True)
    fast = Hawkes(*args).log_likelihood(batch)
    slow = Hawkes(args[0], args[1], args[2].expand(2, 2)).log_likelihood(batch)
    assert torch.isfinite(fast).all()
    assert torch.allclose(fast, slow, rtol=1e-13, atol=0)
    for a, b in zip(torch.autograd.grad(fast.sum(), args), torch.autograd.grad(slow.sum(), args),
                    strict=True):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max()


@pytest.mark.parametrize("beta", [1.5, [[1.0, 2.0], [0.5, 3.0]], [[[1.0, 2.0], [0.5, 3.0]]],
                                  [[[1.0, 4.0], [0.5, 2.0]], [[2.0, 0.7], [1.5, 3.0]]]],
                         ids=["shared", "pair", "source, 2 components", "pair, 2 components"])
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled pass", "scan"])
def test_fixed_decay_sums_give_the_likelihood_and_its_gradient(monkeypatch, beta, compiled):
    """What `fit` with fixed decays evaluates: the same log-likelihood (summed over sequences of
    different lengths, with ties) and gradient in (mu, alpha) as the model's. One decay takes
    its states from the compiled pass when that is compiled."""
    monkeypatch.setattr(hawkes_module, "_compiled_pass_ready", lambda: compiled)
    beta = torch.tensor(beta, dtype=torch.float64)
    R = 2 if beta.ndim == 3 and beta.shape[-1] == 2 else 1
    mu = torch.tensor([0.3, 0.2], dtype=torch.float64, requires_grad=True)
    alpha = torch.full((2, 2, R), 0.3 / R, dtype=torch.float64, requires_grad=True)
    data = Hawkes(mu.detach(), alpha.detach(), beta).simulate(50.0, 3, seed=6)
    times = [data.sequence(i)[0].tolist() for i in range(3)] + [[1.0, 1.0, 2.0, 2.0, 2.0]]
    marks = [data.sequence(i)[1].tolist() for i in range(3)] + [[0, 1, 1, 0, 1]]
    batch = EventBatch.from_sequences(times, marks, T=[50.0, 50.0, 60.0, 3.0], num_marks=2)
    sums = hawkes_module._FixedDecaySums(Hawkes([1.0, 1.0], torch.ones(2, 2, R), beta), batch)
    fast = sums.log_likelihood(mu, alpha)
    ref = Hawkes(mu, alpha, beta).log_likelihood(batch).sum()
    assert fast.item() == pytest.approx(ref.item(), rel=1e-13)
    for a, b in zip(torch.autograd.grad(fast, (mu, alpha)), torch.autograd.grad(ref, (mu, alpha)),
                    strict=True):
        assert torch.allclose(a, b, rtol=1e-11, atol=1e-13)


FIRST_USES = """
import tpp.hawkes as h
data = h.Hawkes([0.3], [[0.2]], 1.5).simulate(50.0, seed=1)
for _ in range(2):
    h.Hawkes([0.3], [[0.2]], 1.5).log_likelihood(data)
stats = h._exp_pass.stats
print(len(h._exp_pass.signatures), sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


@pytest.mark.slow
def test_first_uses_in_fresh_processes_compile_once_then_load_from_numbas_cache(tmp_path):
    """Without numba's cache the first call takes the scan path and the second compiles the
    pass (a cache miss); a later process loads it from the cache (a hit), compiling nothing."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=str(Path(hawkes_module.__file__).parent.parent))

    def run() -> list[int]:
        out = subprocess.run([sys.executable, "-c", FIRST_USES], env=env, capture_output=True,
                             text=True, check=True).stdout
        return [int(x) for x in out.split()[-3:]]

    assert run() == [1, 0, 1]   # one signature, compiled: a miss
    assert run() == [1, 1, 0]   # loaded: a hit, no miss


def test_gradient_through_likelihood_matches_finite_differences():
    data = SUMEXP.simulate(20.0, 2, seed=1)

    def f(mu, alpha, beta):
        return Hawkes(mu, alpha, beta, validate=False).log_likelihood(data).sum()

    args = (SUMEXP.mu.clone().requires_grad_(), SUMEXP.alpha.clone().requires_grad_(),
            SUMEXP.beta.clone().requires_grad_())
    assert torch.autograd.gradcheck(f, args)


def test_next_event_law_in_pyro():
    import pyro
    import pyro.poutine

    hist = DEP.simulate(20.0, 3, seed=5)
    law = DEP.next_event(hist)
    d = law.to_pyro()
    assert d.batch_shape == (3,) and d.event_shape == (2,)
    x = d.sample((4,))
    assert x.shape == (4, 3, 2)
    assert torch.allclose(d.log_prob(x), law.log_prob((x[..., 0], x[..., 1].long())), rtol=1e-15)

    def model():
        with pyro.plate("histories", 3):
            pyro.sample("next", d, obs=x[0])

    tr = pyro.poutine.trace(model).get_trace()
    assert torch.allclose(tr.log_prob_sum(), law.log_prob((x[0, :, 0], x[0, :, 1].long())).sum())
    with pytest.raises(ValidationError, match="whole number"):
        d.log_prob(torch.tensor([[1.0, 0.5]] * 3, dtype=torch.float64))


def test_fixed_decay_sums_of_a_shard_without_events():
    # a shard of a sharded fit may hold no events: its log-likelihood is -T sum(mu), not an error
    batch = EventBatch.from_sequences([[]], [[]], T=2.0, num_marks=2)
    mu = torch.tensor([0.3, 0.5], dtype=torch.float64, requires_grad=True)
    alpha = torch.full((2, 2, 1), 0.2, dtype=torch.float64, requires_grad=True)
    sums = hawkes_module._FixedDecaySums(Hawkes([1.0, 1.0], torch.ones(2, 2, 1), 1.5), batch)
    ll = sums.log_likelihood(mu, alpha)
    ref = Hawkes(mu, alpha, 1.5).log_likelihood(batch).sum()
    assert ll.item() == pytest.approx(-1.6, rel=1e-15) == ref.item()
    assert torch.equal(torch.autograd.grad(ll, mu)[0], torch.full((2,), -2.0, dtype=torch.float64))
