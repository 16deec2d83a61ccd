import math

import numpy as np
import pytest
import scipy.integrate
import torch

from condprob.errors import ValidationError
from condprob.spaces import Euclidean
from tpp.data import EventBatch
from tpp.hawkes import Hawkes
from tpp.metrics import mark_accuracy
from tpp.neural import ConditionalGenerator, IntensityFree, LogNormalMixture, TimeGivenMark
from tpp.train import train

F64 = torch.float64
DEP = Hawkes([0.1, 0.05], [[0.2, 0.1], [0.2, 0.3]], 1.0)


@pytest.fixture(scope="module")
def data():
    return DEP.simulate(100.0, 60, seed=0).split((0.5, 0.25, 0.25), seed=0)


def quad(f, lo=0.0, hi=np.inf):
    return sum(scipy.integrate.quad(f, a, b, epsabs=1e-13, epsrel=1e-11, limit=300)[0]
               for a, b in ((lo, 1.0), (1.0, 30.0), (30.0, hi)))


def test_lognormal_mixture_density_survival_mean():
    mix = LogNormalMixture(torch.tensor([0.3, -0.2], dtype=F64), torch.tensor([-1.0, 0.5], dtype=F64),
                           torch.tensor([0.4, 1.2], dtype=F64))

    def f(t):
        return mix.log_prob(torch.tensor(t, dtype=F64)).exp().item()

    assert quad(f) == pytest.approx(1.0, abs=1e-10)
    for t in (0.2, 1.5, 7.0):
        head = scipy.integrate.quad(f, 0, t, epsabs=1e-14, epsrel=1e-13)[0]
        assert mix.log_survival(torch.tensor(t, dtype=F64)).exp().item() == pytest.approx(
            1 - head, abs=1e-11)
    assert mix.mean().item() == pytest.approx(quad(lambda t: t * f(t)), rel=1e-9)
    s = mix.sample(20000, torch.Generator().manual_seed(0))
    se = s.std() / math.sqrt(s.numel())
    assert abs(s.mean() - mix.mean()) < 4 * se and abs(s.mean() - 1.2 * mix.mean()) > 4 * se


@pytest.mark.parametrize("cls", [IntensityFree, TimeGivenMark])
def test_likelihood_is_the_product_of_next_event_laws(cls, data):
    torch.manual_seed(0)
    model = cls(2, hidden=8, components=3)
    model.fit_scaling(data[0])
    seq = data[1][0]
    n = int(seq.lengths[0])
    total = 0.0
    for i in range(n):
        prefix = EventBatch(seq.times[:, :i], seq.marks[:, :i], torch.tensor([i]), seq.T, 2)
        law = model.next_event(prefix)
        total += law.log_prob((seq.inter_times[:, i], seq.marks[:, i])).item()
    prefix = seq
    law = model.next_event(prefix)
    rest = float(seq.T[0] - seq.last_times[0])
    dens = [quad(lambda t, k=k: law.log_prob((torch.tensor([t], dtype=F64),
                                              torch.tensor([k]))).exp().item(), lo=rest)
            for k in range(2)]
    total += math.log(sum(dens))
    with torch.no_grad():
        assert model.log_likelihood(seq).item() == pytest.approx(total, rel=1e-9)
        t_part, m_part = model.log_likelihood_parts(seq)
        assert (t_part + m_part).item() == pytest.approx(total, rel=1e-9)
        # a next-event law integrates to one over times and marks
        full = [quad(lambda t, k=k: law.log_prob((torch.tensor([t], dtype=F64),
                                                  torch.tensor([k]))).exp().item())
                for k in range(2)]
        assert sum(full) == pytest.approx(1.0, abs=1e-9)
        z = model.interval_compensators(seq)
        assert (z[seq.mask] > 0).all()


def test_training_lowers_nll_seeded_early_stopping_and_checkpoint(data, tmp_path):
    tr, va, te = data
    model = TimeGivenMark(2, hidden=8, components=2)
    model.fit_scaling(tr)
    before = model.nll_per_event(te)
    hist = train(model, tr, va, epochs=40, lr=2e-2, batch_size=16, patience=2, seed=1,
                 checkpoint_dir=tmp_path, progress=False)
    assert len(hist["valid"]) < 40                     # stopped early
    assert model.nll_per_event(te) < before
    best = TimeGivenMark(2, hidden=8, components=2)
    best.load_state_dict(torch.load(tmp_path / "best.pt"))
    assert best.nll_per_event(te) == pytest.approx(model.nll_per_event(te), rel=1e-12)
    again = TimeGivenMark(2, hidden=8, components=2)
    torch.manual_seed(0)
    model2 = TimeGivenMark(2, hidden=8, components=2)
    torch.manual_seed(0)
    again = TimeGivenMark(2, hidden=8, components=2)
    h1 = train(model2, tr, None, epochs=2, batch_size=16, seed=3, progress=False)
    h2 = train(again, tr, None, epochs=2, batch_size=16, seed=3, progress=False)
    assert h1 == h2


def test_batches_without_events_take_no_step():
    # two whole batches of empty sequences: no optimiser step on them, so the weights are exactly
    # those of training without them; their compensator still enters the epoch's loss per event
    full = DEP.simulate(100.0, 12, seed=0)
    seqs = [(full.times[b, :n].tolist(), full.marks[b, :n].tolist())
            for b, n in enumerate(full.lengths.tolist())]
    empty = [([], [])] * 8
    runs = []
    for part in (empty + seqs, seqs):
        batch = EventBatch.from_sequences([t for t, _ in part], [m for _, m in part], T=100.0,
                                          num_marks=2)
        torch.manual_seed(0)
        model, steps = IntensityFree(2, hidden=4, components=2), []
        hist = train(model, batch, epochs=2, batch_size=4, seed=0, progress=False, shuffle=False,
                     on_step_end=lambda step, _, steps=steps: steps.append(step))
        runs.append((model, hist, steps))
    (m1, h1, s1), (m2, h2, s2) = runs
    assert s1 == s2 == list(range(1, 7))
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters(), strict=True))
    assert all(a > b for a, b in zip(h1["train"], h2["train"], strict=True))
    nothing = EventBatch.from_sequences([[]] * 4, T=10.0, num_marks=2)
    with pytest.raises(ValidationError, match="at least one event, got 4 sequences without"):
        train(IntensityFree(2, hidden=4), nothing, epochs=1, progress=False)


def test_errors(data):
    tr = data[0]
    with pytest.raises(ValidationError, match="exactly one"):
        ConditionalGenerator()
    with pytest.raises(ValidationError, match="train_particles"):
        ConditionalGenerator(2, train_particles=0)
    with pytest.raises(ValidationError, match="hidden must be"):
        IntensityFree(2, hidden=0)
    tied = EventBatch.from_sequences([[0.5, 0.5]], [[0, 1]], T=1.0)
    with pytest.raises(ValidationError, match="tied or zero"):
        IntensityFree(2).log_likelihood(tied)
    cont = EventBatch.from_sequences([[0.5]], [[[0.1, 0.2]]], T=1.0)
    with pytest.raises(ValidationError, match="categorical marks"):
        IntensityFree(2).log_likelihood(cont)
    with pytest.raises(ValidationError, match="continuous marks of dimension"):
        ConditionalGenerator(mark_dim=3).log_likelihood(cont)
    with pytest.raises(ValidationError, match="epochs"):
        train(IntensityFree(2), tr, epochs=0)
    broken = IntensityFree(2, hidden=4)
    with torch.no_grad():
        broken.time_head.weight.fill_(float("nan"))
    with pytest.raises(ValidationError, match="non-finite"):
        train(broken, tr, epochs=1, progress=False)
    with pytest.raises(NotImplementedError, match="no closed-form split"):
        ConditionalGenerator(2).log_likelihood_parts(tr)


def test_conditional_generator_categorical(data):
    tr, va, te = data
    torch.manual_seed(0)
    gen = ConditionalGenerator(num_marks=2, hidden=8, latent=2, num_particles=8)
    train(gen, tr, va, epochs=6, lr=2e-2, batch_size=16, seed=0, progress=False)
    with torch.no_grad():
        elbo = gen.elbo(te).sum().item()
        iw = np.mean([gen.log_likelihood(te).sum().item() for _ in range(5)])
    assert elbo <= iw                                  # E[IWAE] >= ELBO
    law = gen.next_event(te)
    tau, mark = law.sample((3,), generator=torch.Generator().manual_seed(0))
    assert tau.shape == (3, len(te)) and (tau > 0).all() and set(mark.unique().tolist()) <= {0, 1}
    mean, pred = gen.predict(te)
    assert 0.3 < mark_accuracy(pred, te) <= 1.0 and (mean[te.mask] > 0).all()


def test_conditional_generator_continuous_marks():
    g = torch.Generator().manual_seed(0)
    times, marks = [], []
    for _ in range(40):
        t = torch.cumsum(torch.distributions.Exponential(1.0).sample((20,)), 0)
        times.append(t.tolist())
        marks.append(torch.stack([t.diff(prepend=torch.zeros(1)).log(),
                                  torch.randn(20, generator=g)], 1).tolist())
    batch = EventBatch.from_sequences(times, marks, T=None)
    gen = ConditionalGenerator(mark_dim=2, hidden=8, latent=2, num_particles=64)
    train(gen, batch, epochs=2, lr=1e-2, batch_size=20, seed=0, progress=False)
    assert gen.kernel().cod == Euclidean(1, "tau") @ Euclidean(2, "mark")
    law = gen.next_event(batch[0])
    tau, mark = law.sample((5,))
    assert tau.shape == (5, 1) and mark.shape == (5, 1, 2)
    with torch.no_grad():
        lp = law.log_prob((tau, mark))
        value = law.to_pyro().sample((2,))
        lp_pyro = law.to_pyro().log_prob(value)
    assert lp.shape == (5, 1) and torch.isfinite(lp).all()
    assert value.shape == (2, 1, 3) and lp_pyro.shape == (2, 1) and torch.isfinite(lp_pyro).all()


def test_generator_decoder_is_normalised_and_iwae_is_unbiased(data):
    torch.manual_seed(0)
    gen = ConditionalGenerator(num_marks=2, hidden=8, latent=2, num_particles=64)
    gen.fit_scaling(data[0])
    with torch.no_grad():
        h = gen.encoder.h0
        z = torch.randn(2, dtype=F64)
        total = sum(quad(lambda t, k=k: gen._log_px(h, z, torch.tensor(t, dtype=F64),
                                                    torch.tensor(k)).exp().item())
                    for k in range(2))
        assert total == pytest.approx(1.0, abs=1e-9)           # p(x | z, h) is a density
        tau, mark = torch.tensor(2.0, dtype=F64), torch.tensor(1)
        # p(x | h) = E_{z ~ N(0, I)} p(x | z, h), by plain Monte Carlo over the prior
        zs = torch.randn(200_000, 2, dtype=F64)
        prior = gen._log_px(h, zs, tau, mark).exp()
        ref, ref_se = prior.mean(), prior.std() / math.sqrt(prior.numel())
        iw = torch.stack([gen._event_terms(h, tau, mark, 64)[1].exp() for _ in range(400)])
        se = (iw.var() / iw.numel() + ref_se**2).sqrt()
        assert abs(iw.mean() - ref) < 4 * se                  # exp(IWAE) is unbiased for p(x|h)
        assert abs(1.1 * iw.mean() - ref) > 4 * se            # power: a 10% bias would show


def test_mark_given_time(data):
    tr, va, te = data
    torch.manual_seed(0)
    tgm = TimeGivenMark(2, hidden=8, components=2)
    tgm.fit_scaling(tr)
    pred = tgm.mark_given_time(te)
    with torch.no_grad():
        h, _, _ = tgm._contexts(te)
        ref = tgm._joint(h, torch.where(te.mask, te.inter_times, 1.0)).argmax(-1) * te.mask
    assert torch.equal(pred, ref)
    assert torch.equal(DEP.mark_given_time(te),
                       DEP.intensities_at_events(te).argmax(-1) * te.mask)
    gen = ConditionalGenerator(2, hidden=8)
    gen.fit_scaling(tr)
    assert gen.mark_given_time(te).shape == te.marks.shape
    with pytest.raises(ValidationError, match="categorical"):
        ConditionalGenerator(mark_dim=2).mark_given_time(te)


def test_resumed_training_equals_an_uninterrupted_run(data, tmp_path):
    tr, va, _ = data
    runs = []
    for stop in (None, 2):
        torch.manual_seed(0)
        model = TimeGivenMark(2, hidden=6, components=2)
        if stop is not None:
            train(model, tr, va, epochs=stop, batch_size=16, seed=4, progress=False,
                  checkpoint_dir=tmp_path)
            torch.manual_seed(123)                        # a different process state
            model = TimeGivenMark(2, hidden=6, components=2)
        hist = train(model, tr, va, epochs=4, batch_size=16, seed=4, progress=False,
                     checkpoint_dir=tmp_path if stop else None, resume=stop is not None)
        runs.append((hist, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(a.equal(b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
