"""Benchmark of exact Gaussian conditioning (issue 3, section 5) against gprob 1.0.1, funsor 0.4.8
and GaussianInfer.

Task: a zero-mean Gaussian process with the squared-exponential kernel exp(-(s - s')^2 / (2 l^2))
on n equally spaced points (spacing 0.02 for 5000 points, 0.01 for 1000), conditioned on m exact
observations at every (n/m)-th point (spacing 0.1), values drawn from the observed block's own law
(seed 0). Three problems: l = 0.1 with 1000/100 and 5000/1000 points/observations (the observed
block is well conditioned, cond ~ 70), and a smooth GP, l = 0.5 with 1000/100, whose observed block
is numerically singular (cond ~ 1e18): its observations are consistent, so declaring them
inconsistent is a false failure. Every library gets the same points, indices and values and computes the same
kernel matrix with numpy; the timed part goes from (mean, covariance, observations) to the
posterior mean and the posterior variances of all n points, with each library's default checks.
condprob's default check of the prior (symmetric, positive semi-definite: one Cholesky
factorisation of K + 2 tol I) is the only O(n^3) step of its pipeline; a second row times it with
`validate=False`.

Errors: max |posterior mean - reference| over all n points, where the reference is the
least-squares solution K[:, o] lstsq(K[o, o], y) in numpy float64 (accurate when the observed block
is well conditioned; on the smooth problem the reference is itself uncertain at the 1e-7 level),
and the miss max |posterior mean[o] - y| at the observed points (an exact condition makes it 0).

- gprob: `gprob.normal(0, K).condition({v[idx]: y})`, then `.mean()` and `.var()`.
- funsor: `mvn_to_funsor` of a Pyro MultivariateNormal on (unobserved, observed) blocks,
  substitute the observed values, read mean and variances from the Gaussian's precision. The
  MultivariateNormal needs a positive-definite covariance, so the smallest jitter in
  1e-10, 1e-8, ... that lets it build is added (reported).
- GaussianInfer (github.com/damast93/GaussianInfer, Python sources; not on PyPI): `Infer()`,
  `from_dist(N(K))`, one `condition` per observation, then the inferred state's mean and
  covariance. Its sources are read from $GAUSSIANINFER_SRC (default `.peers/gaussianinfer/src`,
  a checkout of the repository); rows say n/a without them. Run on the small problem only (it
  builds dense (n + m) x (n + m) maps per equation).

Timings are medians of 3 runs after a warm-up for the 1000-point problems and single runs for the
large one (each run takes seconds there); one thread everywhere.

Run: `.venv/bin/python -m benchmarks.bench_gaussian` from the repository root (`--smoke` for a
tiny problem). Peers come from `bash benchmarks/peers/make_all.sh`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import ROOT, Table, median_time, run_peer
from condprob.gaussian import Gaussian, LinearEquation

# (points, observations, timed repeats, length scale)
PROBLEMS = [(1000, 100, 3, 0.1), (5000, 1000, 1, 0.1), (1000, 100, 3, 0.5)]
SMOKE = [(100, 10, 1, 0.1), (100, 10, 1, 0.5)]
GI_MAX = 1000

KERNEL = """
def kernel_matrix(s, ell):
    d = s[:, None] - s[None, :]
    return np.exp(-0.5 * (d / ell) ** 2)
"""
exec(KERNEL)  # the same kernel code runs here and in every peer


def make_problem(n: int, m: int, ell: float, path: Path) -> dict:
    """Points, observed indices and values (drawn from the observed block's law), reference."""
    s = np.arange(n) * (0.1 * m / n)
    idx = np.arange(0, n, n // m)[:m]
    k = kernel_matrix(s, ell)  # noqa: F821
    koo = k[np.ix_(idx, idx)]
    w, v = np.linalg.eigh(koo)
    y = v @ (np.sqrt(np.clip(w, 0, None)) * np.random.default_rng(0).standard_normal(m))
    ref = k[:, idx] @ np.linalg.lstsq(koo, y, rcond=None)[0]
    np.savez(path, s=s, idx=idx, y=y)
    return {"s": s, "idx": idx, "y": y, "ref": ref, "ell": ell,
            "cond": float(np.linalg.cond(koo))}


def ours(prob: dict, repeat: int, validate: bool = True) -> tuple[float, np.ndarray]:
    k = torch.from_numpy(kernel_matrix(prob["s"], prob["ell"]))  # noqa: F821
    idx, y = torch.from_numpy(prob["idx"]), torch.from_numpy(prob["y"])

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        prior = Gaussian(torch.zeros(len(k), dtype=torch.float64), k, validate=validate)
        post = prior.condition_linear(LinearEquation.observe(idx, y, len(k)))
        return post.mean, post.variance

    out: list = []
    seconds = median_time(lambda: out.append(run()), repeat=repeat, warmup=int(repeat > 1))
    return seconds, out[-1][0].numpy()


PEER_CODE = {
    "gprob": """
import numpy as np, gprob
KERNEL
d = np.load(PATH); s, idx, y = d["s"], d["idx"], d["y"]
K = kernel_matrix(s, LENGTH)
def run():
    v = gprob.normal(np.zeros(len(s)), K)
    post = v.condition({v[idx]: y})
    return post.mean(), post.var()
res = []
try:
    t = median_time(lambda: res.append(run()), repeat=REPEAT, warmup=WARMUP)
    np.save(OUT, res[-1][0]); print(json.dumps({"time": t}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__ + ": " + str(e)[:200]}))
""",
    "funsor": """
import numpy as np, torch, funsor, funsor.gaussian, pyro.distributions as pdist
from collections import OrderedDict
from funsor.domains import Reals
from funsor.pyro.convert import mvn_to_funsor
funsor.set_backend("torch")
KERNEL
d = np.load(PATH); s, idx, y = d["s"], d["idx"], d["y"]
K = torch.from_numpy(kernel_matrix(s, LENGTH)); yt = torch.from_numpy(y)
n, m = len(s), len(idx)
obs = torch.from_numpy(idx); mask = torch.ones(n, dtype=torch.bool); mask[obs] = False
unobs = mask.nonzero()[:, 0]; perm = torch.cat([unobs, obs])
def run(jitter):
    Kp = K[perm][:, perm] + jitter * torch.eye(n, dtype=K.dtype)
    f = mvn_to_funsor(pdist.MultivariateNormal(torch.zeros(n, dtype=K.dtype), Kp),
                      real_inputs=OrderedDict([("u", Reals[n - m]), ("o", Reals[m])]))
    g = f(o=yt)
    gauss = [t for t in g.terms if isinstance(t, funsor.gaussian.Gaussian)][0]
    ps, wv = gauss.prec_sqrt, gauss.white_vec
    L = torch.linalg.cholesky(ps @ ps.T)
    mu = torch.cholesky_solve((ps @ wv)[:, None], L)[:, 0]
    var = torch.cholesky_inverse(L).diagonal()
    mean = torch.zeros(n, dtype=K.dtype); mean[unobs] = mu; mean[obs] = yt
    full = torch.zeros(n, dtype=K.dtype); full[unobs] = var
    return mean, full
out = None
for jitter in (1e-10, 1e-8, 1e-6, 1e-4):
    try:
        run(jitter); break
    except Exception as e:
        out = {"error": type(e).__name__ + ": " + str(e)[:200]}
else:
    print(json.dumps(out)); raise SystemExit
res = []
t = median_time(lambda: res.append(run(jitter)), repeat=REPEAT, warmup=WARMUP)
np.save(OUT, res[-1][0].numpy()); print(json.dumps({"time": t, "jitter": jitter}))
""",
    "gaussianinfer": """
import sys, numpy as np
sys.path.insert(0, SRC)
from Infer import Infer, InferenceError
import Gaussian as G
KERNEL
d = np.load(PATH); s, idx, y = d["s"], d["idx"], d["y"]
K = kernel_matrix(s, LENGTH)
def run():
    g = Infer(); ys = g.from_dist(G.N(K))
    for i, v in zip(idx, y):
        g.condition(ys[int(i)], float(v))
    g.do_inference()
    return g.state.b[:, 0], np.diag(g.state.Sigma)
res = []
try:
    t = median_time(lambda: res.append(run()), repeat=1, warmup=0)
    np.save(OUT, res[-1][0]); print(json.dumps({"time": t}))
except InferenceError as e:
    print(json.dumps({"error": "InferenceError: " + str(e), "false_failure": True}))
""",
}


def peer(name: str, path: Path, repeat: int, ell: float) -> tuple[dict | None, np.ndarray | None]:
    src = Path(os.environ.get("GAUSSIANINFER_SRC", ROOT / ".peers" / "gaussianinfer" / "src"))
    if name == "gaussianinfer" and not (src / "python" / "Infer.py").exists():
        return None, None
    out = path.with_suffix(f".{name}.npy")
    code = (PEER_CODE[name].replace("KERNEL", KERNEL).replace("PATH", repr(str(path)))
            .replace("OUT", repr(str(out))).replace("REPEAT", str(repeat))
            .replace("WARMUP", str(int(repeat > 1)))
            .replace("LENGTH", repr(ell)).replace("SRC", repr(str(src / "python"))))
    res = run_peer(name, code)
    return res, (np.load(out) if res is not None and "time" in res else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a tiny problem, one repeat")
    args = ap.parse_args()
    torch.set_num_threads(1)
    problems = SMOKE if args.smoke else PROBLEMS
    table = Table("Exact Gaussian conditioning: GP posterior mean and variances (float64)")
    with tempfile.TemporaryDirectory() as tmp:
        for n, m, repeat, ell in problems:
            path = Path(tmp) / f"gp_{n}_{m}_{ell}.npz"
            prob = make_problem(n, m, ell, path)
            task = f"GP {n} points, {m} exact obs, l = {ell}"
            t_ours, mean = ours(prob, repeat)
            err_ours = float(np.abs(mean - prob["ref"]).max())
            miss_ours = float(np.abs(mean[prob["idx"]] - prob["y"]).max())
            t_fast, _ = ours(prob, repeat, validate=False)
            print(f"{task}: condprob {t_ours:.3f} s ({t_fast:.3f} s unvalidated), error "
                  f"{err_ours:.2e}, cond(K_oo) {prob['cond']:.1e}", flush=True)
            for name in ("gprob", "funsor", "gaussianinfer"):
                if name == "gaussianinfer" and n > GI_MAX:
                    table.add_time(f"{task}: time", t_ours, name, None, "not run: too slow at this size")
                    continue
                res, pmean = peer(name, path, repeat, ell)
                note = f"jitter {res['jitter']:g}" if res and "jitter" in res else ""
                if res is None:
                    table.add_time(f"{task}: time", t_ours, name, None, "not installed")
                elif pmean is None:
                    what = "FALSE FAILURE: " if res.get("false_failure") else "failed: "
                    table.add_time(f"{task}: time", t_ours, name, None,
                                   what + res["error"][:120])
                else:
                    table.add_time(f"{task}: time", t_ours, name, res["time"], note)
                    table.add_time(f"{task}: time, prior's PSD check skipped (validate=False)",
                                   t_fast, name, res["time"], note)
                    err = float(np.abs(pmean - prob["ref"]).max())
                    table.add_value(f"{task}: max error of the mean", f"{err_ours:.1e}", name,
                                    f"{err:.1e}")
                    miss = float(np.abs(pmean[prob["idx"]] - prob["y"]).max())
                    table.add_value(f"{task}: max miss at the observed points", f"{miss_ours:.1e}",
                                    name, f"{miss:.1e}")
                print(f"  {name}: {res}", flush=True)
    table.emit("gaussian")


if __name__ == "__main__":
    main()
