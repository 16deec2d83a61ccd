"""BFFG benchmark: guided proposals against a bootstrap particle filter (`particles` 0.4, N.
Chopin's SMC library, run in its own environment) with the same number of particles, on diffusions
observed sparsely and precisely.

- OU dX = (-0.2 X + 0.1) dt + 0.9 dW, X_0 = 1.1, X observed at t = 1..5 with variance 1e-4: the
  exact log p(y) is known (BFFG closed form; for the particle filter's Euler scheme, the exact
  evidence of the discretised linear-Gaussian chain). Guided by its own auxiliary, the guided
  proposal is exact (log-weights 0).
- FitzHugh-Nagumo (eps = 0.1, gamma = 1.5, beta = 0.8, sigma = diag(0.2, 0.3)), X_0 = (-0.5, -0.6),
  first coordinate observed at t = 1..5 with variance 1e-4. Both methods take 100 Euler steps per
  observation interval (the guided ones on the time-changed grid s(2 - s), finer near each
  observation). Auxiliary: the drift linearised at each
  observation, and (second set of rows) linearised along the weighted mean path of a first guided
  run, refined twice before timing (the refinement is a one-off cost per data set, not timed).

Figures: time of one run (N particles, including the backward filter), ESS (guided: of the path
weights; particle filter: of the final filtering weights, an upper bound for its path ESS), ESS per
second, the spread of log p(y) estimates over repeated runs, and the error against the exact value.
Run: `.venv/bin/python -m benchmarks.bench_bffg` from the repository root (create the peer with
`bash benchmarks/peers/make_all.sh`).
"""

from __future__ import annotations

import json
import math
import statistics

import torch

from benchmarks.harness import Table, median_time, run_peer
from condprob.bffg import (
    GaussianMessage,
    LinearSDE,
    Model,
    SDEKernel,
    backward_filter,
    forward_guide,
    time_grid,
)
from condprob.gaussian import Gaussian, LinearGaussian

T64 = torch.float64
N = 1000
REPEATS = 20
NOBS = 5
STEPS = 100
OBS_VAR = 1e-4
FHN = {"eps": 0.1, "s": 0.0, "gamma": 1.5, "beta": 0.8}
FHN_SIGMA = [0.2, 0.3]

PF_CODE = """
import numpy as np, particles
from particles import distributions as dists, state_space_models as ssm
cfg = json.loads('''CFG''')
sig = np.array(cfg["sigma"]); dim = len(sig); dt = 1.0 / cfg["steps"]

def drift(x):
    if cfg["kind"] == "ou":
        return -0.2 * x + 0.1
    p = cfg["fhn"]
    X, Y = x[:, 0], x[:, 1]
    return np.stack([(X - X**3 - Y + p["s"]) / p["eps"], p["gamma"] * X - Y + p["beta"]], 1)

class EulerMaruyama(dists.ProbDist):
    dim = dim
    def __init__(self, start):
        self.start = start
    def rvs(self, size=None):
        x = np.broadcast_to(self.start, (size, dim)).copy()
        for _ in range(cfg["steps"]):
            x = x + drift(x) * dt + sig * np.sqrt(dt) * np.random.randn(size, dim)
        return x

class Diffusion(ssm.StateSpaceModel):
    def PX0(self):
        return EulerMaruyama(np.array(cfg["x0"]))
    def PX(self, t, xp):
        return EulerMaruyama(xp)
    def PY(self, t, xp, x):
        return dists.Normal(loc=x[:, 0], scale=np.sqrt(cfg["obs_var"]))

data = np.array(cfg["ys"])
def run(seed):
    np.random.seed(seed)
    pf = particles.SMC(fk=ssm.Bootstrap(ssm=Diffusion(), data=data), N=cfg["n"],
                       resampling="systematic", ESSrmin=1.0)
    pf.run()
    return pf
runs = [run(s) for s in range(cfg["repeats"])]
t = median_time(lambda: run(0), repeat=3)
print(json.dumps({"time": t, "logev": [float(r.logLt) for r in runs],
                  "ess": [float(r.wgts.ESS) for r in runs]}))
"""


def mat(x: object) -> torch.Tensor:
    return torch.tensor(x, dtype=T64)


def fhn_drift(t: float, x: torch.Tensor) -> torch.Tensor:
    X, Y = x[:, 0], x[:, 1]
    return torch.stack([(X - X**3 - Y + FHN["s"]) / FHN["eps"],
                        FHN["gamma"] * X - Y + FHN["beta"]], -1)


def ou_kernel(i: int) -> LinearSDE:
    return LinearSDE(mat([[-0.2]]), mat([0.1]), mat([[0.9]]), time_grid(i, i + 1, STEPS))


def simulate(kind: str) -> tuple[list[float], list[float]]:
    """A path from the model (seed 0) and its noisy first coordinate at t = 1..NOBS."""
    g = torch.Generator().manual_seed(0)
    if kind == "ou":
        x0, k = [1.1], LinearSDE(mat([[-0.2]]), mat([0.1]), mat([[0.9]]),
                                 time_grid(0, NOBS, NOBS * STEPS))
    else:
        x0, k = [-0.5, -0.6], SDEKernel(fhn_drift, torch.diag(mat(FHN_SIGMA)),
                                        time_grid(0, NOBS, NOBS * STEPS), 2)
    path = k.sample(mat([x0]), generator=g, path=True)[0]
    ys = [float(path[(i + 1) * STEPS, 0] + math.sqrt(OBS_VAR) * torch.randn((), generator=g,
                                                                              dtype=T64))
          for i in range(NOBS)]
    return x0, ys


def build(kind: str, x0: list[float], ys: list[float]) -> Model:
    d = len(x0)
    m = Model(0, Gaussian(mat(x0), torch.zeros(d, d, dtype=T64)))
    L = torch.zeros(1, d, dtype=T64)
    L[0, 0] = 1.0
    for i, y in enumerate(ys):
        if kind == "ou":
            m.add_edge(i, i + 1, ou_kernel(i))
        else:
            u = torch.linspace(0, 1, STEPS + 1, dtype=T64)
            k = SDEKernel(fhn_drift, torch.diag(mat(FHN_SIGMA)), i + u * (2 - u), 2)
            m.add_edge(i, i + 1, k, k.linearise(float(i + 1), mat([y, y - y**3 + FHN["s"]])))
        m.observe(i + 1, GaussianMessage.observation(L, mat([[OBS_VAR]]), mat([y])))
    return m


def refine(model: Model, passes: int = 2) -> Model:
    """Replace each SDE auxiliary by the drift linearised along the weighted mean guided path."""
    for p in range(passes):
        s = forward_guide(backward_filter(model), N, seed=100 + p)
        for u, v in list(model.graph.edges):
            mean_path = torch.einsum("n,nkd->kd", s.weights(), s.paths[u, v])
            model.graph.edges[u, v]["auxiliary"] = model.kernel(u, v).linearise_along(mean_path)
    return model


def discretised_ou_evidence(ys: list[float]) -> float:
    """Exact log p(y) of the Euler-Maruyama chain that the particle filter simulates."""
    dt = 1.0 / STEPS
    step = LinearGaussian(mat([[1 - 0.2 * dt]]), mat([0.1 * dt]), mat([[0.81 * dt]]))
    m = Model(0, Gaussian(mat([1.1]), mat([[0.0]])))
    for j in range(1, NOBS * STEPS + 1):
        m.add_edge(j - 1, j, step)
        if j % STEPS == 0:
            m.observe(j, GaussianMessage.observation(mat([[1.0]]), mat([[OBS_VAR]]),
                                                     mat([ys[j // STEPS - 1]])))
    return backward_filter(m).log_evidence.item()


def ours(model: Model) -> dict:
    def run(seed: int):
        return forward_guide(backward_filter(model), N, seed=seed)

    runs = [run(s) for s in range(REPEATS)]
    return {"time": median_time(lambda: run(0), repeat=3),
            "logev": [r.log_evidence().item() for r in runs], "ess": [r.ess() for r in runs]}


def peer(kind: str, x0: list[float], ys: list[float], sigma: list[float]) -> dict | None:
    cfg = {"kind": kind, "x0": x0, "ys": ys, "sigma": sigma, "steps": STEPS, "n": N,
           "repeats": REPEATS, "obs_var": OBS_VAR, "fhn": FHN}
    return run_peer("bffg-particles", PF_CODE.replace("CFG", json.dumps(cfg)))


def rows(table: Table, name: str, a: dict, b: dict | None, exact: tuple[float, float] | None):
    peer_name = "particles 0.4 bootstrap PF"
    table.add_time(f"{name}: one run, N = {N}", a["time"], peer_name, b and b["time"])
    ess_a, ess_b = statistics.median(a["ess"]), b and statistics.median(b["ess"])
    table.add_value(f"{name}: ESS (median of {REPEATS})", f"{ess_a:.1f}", peer_name,
                    "n/a" if b is None else f"{ess_b:.1f}")
    eps_a = ess_a / a["time"]
    eps_b = None if b is None else ess_b / b["time"]
    table.add_value(f"{name}: ESS per second", f"{eps_a:.0f}", peer_name,
                    "n/a" if b is None else f"{eps_b:.0f}")
    sd_a = statistics.pstdev(a["logev"])
    sd_b = None if b is None else statistics.pstdev(b["logev"])
    table.add_value(f"{name}: sd of log p(y) estimates", f"{sd_a:.3g}", peer_name,
                    "n/a" if b is None else f"{sd_b:.3g}")
    if exact is not None:
        err_a = statistics.fmean(abs(v - exact[0]) for v in a["logev"])
        err_b = None if b is None else statistics.fmean(abs(v - exact[1]) for v in b["logev"])
        table.add_value(f"{name}: mean abs error of log p(y) vs exact", f"{err_a:.2e}",
                        peer_name, "n/a" if b is None else f"{err_b:.2e}")


def main() -> None:
    torch.set_num_threads(1)
    table = Table(f"BFFG guided proposals vs bootstrap particle filter ({N} particles, "
                  f"{NOBS} observations, variance {OBS_VAR})")
    x0, ys = simulate("ou")
    model = build("ou", x0, ys)
    exact = (backward_filter(model).log_evidence.item(), discretised_ou_evidence(ys))
    rows(table, "OU (exact known)", ours(model), peer("ou", x0, ys, [0.9]), exact)
    x0, ys = simulate("fhn")
    pf = peer("fhn", x0, ys, FHN_SIGMA)
    rows(table, "FitzHugh-Nagumo", ours(build("fhn", x0, ys)), pf, None)
    rows(table, "FitzHugh-Nagumo, path-linearised auxiliary", ours(refine(build("fhn", x0, ys))),
         pf, None)
    table.emit("bffg")


if __name__ == "__main__":
    main()
