"""The Gaussian tour section: exact conditioning in the DSL, a GP, a Kalman smoother, a hybrid
program and an exact posterior for a Pyro model."""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import torch

from condprob.dsl import Model, bernoulli, condition, infer, normal
from condprob.gaussian import Gaussian, LinearEquation

T = torch.float64


def _hybrid(y: float) -> dict:
    """A sensor is faulty with probability 1/10 (reads pure noise), else reads x plus noise."""
    faulty = bernoulli(F(1, 10))
    x = normal(0.0, 1.0)
    reading = normal(0.0, 3.0) if faulty else x + normal(0.0, 0.2)
    condition(reading == y)
    return {"faulty": faulty, "x": x}


def run(out: Path) -> str:
    """x == y exactly, GP regression through exact points, Kalman smoothing and a mixture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyro
    import pyro.distributions as dist

    from condprob.pyro import exact

    with Model() as m:
        x, y = normal(name="x"), normal(name="y")
        condition(x == y)
        fixture = m.posterior(x=x, y=y).cov
    print(f"  x, y ~ N(0, 1), x == y: covariance {fixture.tolist()}", flush=True)

    s = torch.linspace(0, 5, 400, dtype=T)
    k = torch.exp(-0.5 * (s[:, None] - s[None, :]) ** 2 / 0.5**2)
    idx = torch.tensor([40, 120, 200, 260, 350])
    obs = torch.tensor([1.0, -0.5, 0.8, 0.8, -1.2], dtype=T)
    gp = Gaussian(torch.zeros(400, dtype=T), k).condition_linear(
        LinearEquation.observe(idx, obs, 400, name="f(s_i) == y_i"))
    fit = float((gp.mean[idx] - obs).abs().max())
    print(f"  GP on 400 points through 5 exact points: max miss {fit:.1e}", flush=True)

    def lssm(ys: torch.Tensor) -> None:
        z = pyro.sample("z_init", dist.Normal(torch.zeros(2, dtype=T), 1.0).to_event(1))
        f = torch.tensor([[1.0, 0.1], [0.0, 1.0]], dtype=T)
        for t, yt in enumerate(ys):
            z = pyro.sample(f"z_{t}", dist.MultivariateNormal(z @ f.T, 0.01 * torch.eye(2,
                                                                                  dtype=T)))
            pyro.sample(f"y_{t}", dist.Normal(z[0], 0.3), obs=yt)

    ts = torch.arange(30, dtype=T)
    truth = torch.sin(ts / 5)
    ys = truth + 0.3 * torch.randn(30, generator=torch.Generator().manual_seed(0), dtype=T)
    post = exact(lssm)(ys)
    smooth = torch.stack([post.marginal(f"z_{t}").mean[0] for t in range(30)])
    sd = torch.stack([post.marginal(f"z_{t}").cov[0, 0].sqrt() for t in range(30)])
    print(f"  Pyro state-space model, 30 steps: smoothed RMSE "
          f"{float((smooth - truth).pow(2).mean().sqrt()):.3f} (obs noise 0.3)", flush=True)

    mix = infer(_hybrid, 2.5)
    p_fault = mix.prob(1)
    print(f"  faulty-sensor mixture, reading 2.5: P(faulty) = {float(p_fault):.3f}", flush=True)

    fig, ax = plt.subplots(1, 2, figsize=(9, 3))
    sd_gp = gp.variance.clamp(min=0).sqrt()
    ax[0].fill_between(s, gp.mean - 2 * sd_gp, gp.mean + 2 * sd_gp, alpha=0.3)
    ax[0].plot(s, gp.mean)
    ax[0].plot(s[idx], obs, "ko")
    ax[0].set_title("GP through exact observations")
    ax[1].plot(ts, truth, "k--", label="truth")
    ax[1].plot(ts, ys, ".", label="observed")
    ax[1].plot(ts, smooth, label="exact smoother")
    ax[1].fill_between(ts, smooth - 2 * sd, smooth + 2 * sd, alpha=0.3)
    ax[1].legend(fontsize=7)
    ax[1].set_title("Pyro model, exact posterior")
    fig.tight_layout()
    fig.savefig(out / "gaussian.png", dpi=120)
    plt.close(fig)
    return (f"x == y gives covariance {fixture.tolist()}; a GP passes its 5 exact points within "
            f"{fit:.0e}; a 30-step Pyro state-space model smoothed exactly; faulty-sensor "
            f"mixture P(faulty | 2.5) = {float(p_fault):.3f}. Figure: gaussian.png")
