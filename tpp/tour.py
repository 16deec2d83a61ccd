"""The tpp tour section: simulate a two-mark Hawkes process, recover it by maximum likelihood,
check the fit by time rescaling, and train a time-given-mark neural model against the truth."""

from __future__ import annotations

from pathlib import Path

import torch

from tpp.hawkes import Hawkes
from tpp.metrics import mark_accuracy, nll_per_event, time_rescaling_ks
from tpp.neural import TimeGivenMark
from tpp.simple import HomogeneousPoisson
from tpp.train import train


def run(out: Path) -> str:
    """Hawkes Dep(I) end to end: simulation, MLE, KS checks, a neural model, two figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = Hawkes([0.1, 0.05], [[0.2, 0.1], [0.2, 0.3]], 1.0)
    data = truth.simulate(100.0, 600, seed=0)
    train_set, valid, test = data.split((0.6, 0.2, 0.2), seed=0)
    print(f"  simulated {data}; spectral radius {truth.spectral_radius:.3f}", flush=True)

    fit = Hawkes.fit(train_set)
    err = max(float((fit.mu - truth.mu).abs().max()), float((fit.alpha - truth.alpha).abs().max()))
    print(f"  Hawkes MLE: mu {fit.mu.numpy().round(3)}, max abs error {err:.3f}", flush=True)
    ks_true = time_rescaling_ks(truth, test)
    ks_poisson = time_rescaling_ks(HomogeneousPoisson.fit(train_set, 2), test)
    print(f"  time-rescaling KS p-values: truth {ks_true.pvalue:.3f}, "
          f"Poisson {ks_poisson.pvalue:.2e}", flush=True)

    torch.manual_seed(0)
    neural = TimeGivenMark(2, hidden=16, components=4)
    train(neural, train_set, valid, epochs=8, lr=2e-2, batch_size=32, progress=False)
    rows = []
    for name, model in (("truth", truth), ("Hawkes MLE", fit), ("TimeGivenMark", neural)):
        nll = nll_per_event(model, test)
        acc = mark_accuracy(model.mark_given_time(test), test)
        rows.append(f"{name}: NLL/event {nll.total:.4f} (time {nll.time:.4f}, mark "
                    f"{nll.mark:.4f}), mark accuracy {acc:.1%}")
        print("  " + rows[-1], flush=True)

    fig, ax = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    seq = test[0]
    grid = torch.linspace(0, 100, 2000, dtype=torch.float64)
    t, m = seq.sequence(0)
    lam = truth.intensity(seq, grid)[0]
    for k in range(2):
        ax[0].plot(grid, lam[:, k], label=f"lambda_{k}")
        ax[1].eventplot(t[m == k].numpy(), lineoffsets=k, linelengths=0.8)
    ax[0].legend()
    ax[0].set_title("Hawkes Dep(I): intensities and events")
    ax[1].set_xlabel("time")
    fig.savefig(out / "tpp_hawkes.png", dpi=80)
    plt.close(fig)

    z = truth.interval_compensators(test)[test.mask].sort().values
    q = -torch.log1p(-(torch.arange(1, len(z) + 1, dtype=torch.float64) - 0.5) / len(z))
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(q, z, ".", ms=2)
    ax.plot([0, q.max()], [0, q.max()], "k--", lw=1)
    ax.set(xlabel="Exp(1) quantiles", ylabel="rescaled gaps", title="time-rescaling QQ")
    fig.savefig(out / "tpp_rescaling_qq.png", dpi=80)
    plt.close(fig)
    return (f"Hawkes MLE max abs error {err:.3f}; KS p {ks_true.pvalue:.2f} (truth) vs "
            f"{ks_poisson.pvalue:.1e} (Poisson); " + "; ".join(rows))
