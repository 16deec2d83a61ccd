"""Benchmark of exact Gaussian conditioning against gprob 1.0.1, funsor 0.4.8, GaussianInfer and the
plain float64 numpy solve a user would write.

Task: a zero-mean Gaussian process with the squared-exponential kernel exp(-(s - s')^2 / (2 l^2))
on n equally spaced points, conditioned on m exact observations at every (n/m)-th point (spacing
0.1), values drawn from the observed block's own law (seed 0). Problems: l = 0.1 with 1000/100
(the observed block is well conditioned, cond ~ 70) and 5000/1000 points/observations, and a
smooth GP, l = 0.5 with 1000/100, whose observed block is numerically singular (cond ~ 1e18): its
observations are consistent, so declaring them inconsistent is a false failure. Each problem runs
twice, with no jitter and with a jitter of 1e-8 added to the diagonal of the kernel matrix, the
same choice on every side (funsor needs a positive-definite matrix: it gets the smallest jitter
of 1e-10, 1e-8, ... that lets it build, at least the row's, and says which). Every side gets the
same points, indices, values and kernel code; the timed part goes from (mean, covariance,
observations) to the posterior mean and the posterior variances of all n points, with each
library's default checks.

Every side runs in a fresh process of its own environment (one thread): `cold` is its first call
there (lazy initialisation included, imports not), `warm` the median of the next runs (21 for the
1000-point problems, 3 of them for GaussianInfer, which takes seconds a run; 1 for the large
problem), by the harness's clock (CPU time of the process unless BENCH_CLOCK=wall). On the
1000-point problems and the small operations every side runs in `--rounds` (3) interleaved
rounds of fresh processes and each figure is the least over the rounds, as in the finite-core
benchmark: a shared machine's load only ever adds time (GaussianInfer runs one round).

- condprob: `Gaussian(0, K).condition_linear(LinearEquation.observe(idx, y, n))`, then `.mean`
  and `.variance`; validation on (the default; for n > 128 it checks the observed block by the
  factorisation the conditioning computes, the cross-covariance's symmetry and the variances,
  and defers the rest of the PSD check to the first use of the whole covariance), and a second
  row with `validate=False`.
- numpy (the baseline): `np.linalg.solve(K[o, o], [y, K[o, :]])`, mean K[:, o] a, variances
  diag(K) - sum(K[:, o] * B', 1); no checks.
- gprob: `gprob.normal(0, K).condition({v[idx]: y})`, then `.mean()` and `.var()`.
- funsor: `mvn_to_funsor` of a Pyro MultivariateNormal on (unobserved, observed) blocks,
  substitute the observed values, read mean and variances from the Gaussian's precision.
- GaussianInfer (github.com/damast93/GaussianInfer, Python sources; not on PyPI): `Infer()`,
  `from_dist(N(K))`, one `condition` per observation, then the inferred state's mean and
  covariance. Its sources are read from $GAUSSIANINFER_SRC (default `.peers/gaussianinfer/src`,
  a checkout of the repository); rows say n/a without them. 1000-point problems only.

Errors, side by side: max |posterior mean - reference| and max |posterior variance - reference|
over all n points, where the reference is the least-squares solution K[:, o] lstsq(K[o, o], .) in
numpy float64 for the same jittered K (accurate when the observed block is well conditioned; on the
smooth problem without jitter the reference is itself uncertain at the 1e-7 level), and the miss
max |posterior mean[o] - y| at the observed points (an exact condition makes it 0).

Small operations (the fixed cost of a call): a 2-d state observed at x1 == 0.5, a 3-d state
conditioned on the linear equation x0 + x1 == 1, and a 2-d state pushed through a linear-Gaussian
kernel x -> N(A x + b, Q), each to its mean and covariance. Every call builds its objects from
the same float64 arrays (tensors made once outside the timed part, numpy arrays for gprob), with
each library's default checks; `warm` is the median of 21 loops of 200 calls per call, `cold` the
first call in a fresh process. Peers: gprob (`x.condition({x[1]: 0.5})`,
`x.condition({x[0] + x[1]: 1.0})`, `A @ x + normal(b, Q)`) and funsor (`mvn_to_funsor`, then
substitution of the observed block, or `matrix_and_mvn_to_funsor` and a logaddexp reduction over
x; mean and covariance read from the resulting Gaussian's precision). funsor conditions on observed
variables only, so the linear-equation row has no funsor figure. Errors: max |mean - reference|
and max |covariance - reference| against the closed forms in numpy.

Run: `.venv/bin/python -m benchmarks.bench_gaussian` from the repository root (`--smoke` for a
tiny problem, `--small` for the small operations alone). Peers come from
`bash benchmarks/peers/make_all.sh`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

from benchmarks.harness import (
    CLOCK,
    PEER_PRELUDE,
    ROOT,
    Table,
    fmt_seconds,
    one_thread_env,
    over_rounds,
    run_peer,
)

# (points, observations, warm repeats, length scale)
PROBLEMS = [(1000, 100, 21, 0.1), (1000, 100, 21, 0.5), (5000, 1000, 1, 0.1)]
SMOKE = [(100, 10, 1, 0.1), (100, 10, 1, 0.5)]
JITTERS = (0.0, 1e-8)
GI_MAX = 1000

KERNEL = """
def kernel_matrix(s, ell, jitter):
    d = s[:, None] - s[None, :]
    return np.exp(-0.5 * (d / ell) ** 2) + jitter * np.eye(len(s))
"""
exec(KERNEL)  # the same kernel code runs here and on every side

# Each side: imports, then a `run()` from (mean, K, observations) to (posterior mean, variances).
# PROBLEM loads s, idx, y and K; TIMING times the cold call and the warm runs and saves the result.
PROBLEM = """
import numpy as np
KERNEL
d = np.load(PATH); s, idx, y = d["s"], d["idx"], d["y"]
K = kernel_matrix(s, LENGTH, JITTER)
"""
TIMING = """
import time
try:
    t0 = time.CLOCK(); first = run(); cold = time.CLOCK() - t0
    res = [first]
    t = median_time(lambda: res.append(run()), repeat=REPEAT, warmup=0)
    mean, var = (np.asarray(v, dtype=np.float64) for v in res[-1])
    np.savez(OUT, mean=mean, var=var)
    print(json.dumps({"time": t, "cold": cold, **EXTRA}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__ + ": " + str(e)[:200],
                      "false_failure": type(e).__name__ in FALSE}))
"""
SIDES = {
    "condprob": ("ours", """
import torch
torch.set_num_threads(1)
from condprob.gaussian import Gaussian, LinearEquation
Kt, it, yt = torch.from_numpy(K), torch.from_numpy(idx), torch.from_numpy(y)
def run():
    prior = Gaussian(torch.zeros(len(Kt), dtype=torch.float64), Kt, validate=VALIDATE)
    post = prior.condition_linear(LinearEquation.observe(it, yt, len(Kt)))
    return post.mean.numpy(), post.variance.numpy()
EXTRA = {}; FALSE = ("ConditioningError",)
"""),
    "numpy solve (baseline)": ("ours", """
def run():
    koo, kuo = K[np.ix_(idx, idx)], K[:, idx]
    sol = np.linalg.solve(koo, np.concatenate([y[:, None], kuo.T], 1))
    return kuo @ sol[:, 0], np.diag(K) - np.einsum("ij,ji->i", kuo, sol[:, 1:])
EXTRA = {}; FALSE = ()
"""),
    "gprob": ("gprob", """
import gprob
def run():
    v = gprob.normal(np.zeros(len(s)), K)
    post = v.condition({v[idx]: y})
    return post.mean(), post.var()
EXTRA = {}; FALSE = ()
"""),
    "funsor": ("funsor", """
import torch, funsor, funsor.gaussian, pyro.distributions as pdist
from collections import OrderedDict
from funsor.pyro.convert import mvn_to_funsor
from funsor.domains import Reals
funsor.set_backend("torch")
torch.set_num_threads(1)
Kt, yt = torch.from_numpy(K), torch.from_numpy(y)
n, m = len(s), len(idx)
obs = torch.from_numpy(idx); mask = torch.ones(n, dtype=torch.bool); mask[obs] = False
unobs = mask.nonzero()[:, 0]; perm = torch.cat([unobs, obs])
def solve(extra):
    Kp = Kt[perm][:, perm] + extra * torch.eye(n, dtype=Kt.dtype)
    f = mvn_to_funsor(pdist.MultivariateNormal(torch.zeros(n, dtype=Kt.dtype), Kp),
                      real_inputs=OrderedDict([("u", Reals[n - m]), ("o", Reals[m])]))
    g = f(o=yt)
    gauss = [t for t in g.terms if isinstance(t, funsor.gaussian.Gaussian)][0]
    ps, wv = gauss.prec_sqrt, gauss.white_vec
    L = torch.linalg.cholesky(ps @ ps.T)
    mu = torch.cholesky_solve((ps @ wv)[:, None], L)[:, 0]
    var = torch.cholesky_inverse(L).diagonal()
    mean = torch.zeros(n, dtype=Kt.dtype); mean[unobs] = mu; mean[obs] = yt
    full = torch.zeros(n, dtype=Kt.dtype); full[unobs] = var
    return mean.numpy(), full.numpy()
extra = 0.0
for total in (JITTER, 1e-10, 1e-8, 1e-6, 1e-4):
    if total < JITTER:
        continue
    try:
        extra = total - JITTER; solve(extra); break
    except Exception:
        continue
run = lambda: solve(extra)
EXTRA = {"jitter": JITTER + extra}; FALSE = ()
"""),
    "gaussianinfer": ("gaussianinfer", """
import sys
sys.path.insert(0, SRC)
from Infer import Infer, InferenceError
import Gaussian as G
def run():
    g = Infer(); ys = g.from_dist(G.N(K))
    for i, v in zip(idx, y):
        g.condition(ys[int(i)], float(v))
    g.do_inference()
    return g.state.b[:, 0], np.diag(g.state.Sigma)
EXTRA = {}; FALSE = ("InferenceError",)
"""),
}


SMALL_INPUTS = """
import numpy as np
m2, K2 = np.array([0.0, 1.0]), np.array([[2.0, 0.5], [0.5, 1.0]])
m3 = np.array([0.0, 1.0, 2.0])
K3 = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 1.5]])
A, b, Q = np.array([[1.0, 0.5], [0.2, 1.0]]), np.array([0.1, 0.2]), 0.3 * np.eye(2)
"""
exec(SMALL_INPUTS)
SMALL_LOOP = 200
SMALL_TIMING = """
t0 = time.CLOCK(); first = run(); cold = time.CLOCK() - t0
t = median_time(lambda: [run() for _ in range(LOOP)], repeat=21, warmup=1) / LOOP
mean, cov = (np.asarray(v, dtype=np.float64) for v in run())
print(json.dumps({"time": t, "cold": cold, "mean": mean.tolist(), "cov": cov.tolist()}))
"""
SMALL_PRELUDE = {
    "condprob": ("ours", """
import torch
torch.set_num_threads(1)
from condprob.gaussian import Gaussian, LinearEquation, LinearGaussian
m2, K2, m3, K3, A, b, Q = (torch.from_numpy(x) for x in (m2, K2, m3, K3, A, b, Q))
"""),
    "gprob": ("gprob", """
import gprob
"""),
    "funsor": ("funsor", """
import torch, funsor, funsor.gaussian, pyro.distributions as pdist
from collections import OrderedDict
from funsor.pyro.convert import matrix_and_mvn_to_funsor, mvn_to_funsor
from funsor.domains import Reals
funsor.set_backend("torch")
torch.set_num_threads(1)
m2, K2, m3, K3, A, b, Q = (torch.from_numpy(x) for x in (m2, K2, m3, K3, A, b, Q))
def moments(g):
    gauss = g if isinstance(g, funsor.gaussian.Gaussian) else [
        t for t in g.terms if isinstance(t, funsor.gaussian.Gaussian)][0]
    ps, wv = gauss.prec_sqrt, gauss.white_vec
    cov = torch.linalg.inv(ps @ ps.T)
    return cov @ (ps @ wv), cov
"""),
}
SMALL = {  # task: {side: code defining run() -> (mean, covariance)}
    "2-d state observed at x1 == 0.5: posterior mean and covariance": {
        "condprob": """
def run():
    post = Gaussian(m2, K2).condition_linear(LinearEquation.observe([1], [0.5], 2))
    return post.mean.numpy(), post.cov.numpy()
""",
        "gprob": """
def run():
    x = gprob.normal(m2, K2)
    post = x.condition({x[1]: 0.5})
    return post.mean(), post.cov()
""",
        "funsor": """
y1 = torch.tensor([0.5], dtype=torch.float64)
def run():
    f = mvn_to_funsor(pdist.MultivariateNormal(m2, K2),
                      real_inputs=OrderedDict([("u", Reals[1]), ("o", Reals[1])]))
    mu, var = moments(f(o=y1))
    mean = torch.cat([mu, y1]); cov = torch.zeros(2, 2, dtype=torch.float64); cov[0, 0] = var[0, 0]
    return mean.numpy(), cov.numpy()
"""},
    "3-d state conditioned on x0 + x1 == 1: posterior mean and covariance": {
        "condprob": """
def run():
    post = Gaussian(m3, K3).condition_linear([[1.0, 1.0, 0.0]], [1.0])
    return post.mean.numpy(), post.cov.numpy()
""",
        "gprob": """
def run():
    x = gprob.normal(m3, K3)
    post = x.condition({x[0] + x[1]: 1.0})
    return post.mean(), post.cov()
"""},
    "2-d state >> linear-Gaussian kernel: mean and covariance": {
        "condprob": """
def run():
    out = Gaussian(m2, K2) >> LinearGaussian(A, b, Q)
    return out.mean.numpy(), out.cov.numpy()
""",
        "gprob": """
def run():
    out = A @ gprob.normal(m2, K2) + gprob.normal(b, Q)
    return out.mean(), out.cov()
""",
        "funsor": """
def run():
    fx = mvn_to_funsor(pdist.MultivariateNormal(m2, K2), real_inputs=OrderedDict([("x", Reals[2])]))
    fyx = matrix_and_mvn_to_funsor(A.T, pdist.MultivariateNormal(b, Q), x_name="x", y_name="y")
    mean, cov = moments((fx + fyx).reduce(funsor.ops.logaddexp, "x"))
    return mean.numpy(), cov.numpy()
"""},
}


def small_reference(task: str) -> tuple[np.ndarray, np.ndarray]:
    """The closed-form mean and covariance of a small task, in numpy float64."""
    if task.startswith("2-d state observed"):
        k = K2[:, 1] / K2[1, 1]  # noqa: F821
        return m2 + k * (0.5 - m2[1]), K2 - np.outer(k, K2[1])  # noqa: F821
    if task.startswith("3-d"):
        a = np.array([1.0, 1.0, 0.0])
        ka = K3 @ a  # noqa: F821
        return m3 + ka * (1.0 - a @ m3) / (a @ ka), K3 - np.outer(ka, ka) / (a @ ka)  # noqa: F821
    return A @ m2 + b, A @ K2 @ A.T + Q  # noqa: F821


def run_small(side: str, task: str) -> dict | None:
    """Time one side of a small task in a fresh process; its JSON (time, cold, mean, cov)."""
    env_name, prelude = SMALL_PRELUDE[side]
    code = SMALL_INPUTS + prelude + SMALL[task][side] + SMALL_TIMING
    code = code.replace("LOOP", str(SMALL_LOOP)).replace("CLOCK", CLOCK.__name__)
    if env_name != "ours":
        return run_peer(env_name, code)
    return run_ours(code, side, timeout=600)


def run_ours(code: str, name: str, timeout: float) -> dict:
    """Run timing code on condprob's side in a fresh process (1 thread); its last JSON line."""
    proc = subprocess.run([sys.executable, "-c", PEER_PRELUDE + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT),
                          env=one_thread_env(PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def small_rounds(task: str, rounds: int) -> dict[str, dict | None]:
    """Every side of a small task, side -> its result, in `rounds` interleaved rounds of fresh
    processes, each timing the least over the rounds (None: the peer is not installed)."""
    sides = ["condprob"] + [side for side in ("gprob", "funsor") if side in SMALL[task]]
    runs: dict[str, list[dict | None]] = {side: [] for side in sides}
    for _ in range(rounds):
        for side in sides:
            runs[side].append(run_small(side, task))
    return {side: None if None in res else over_rounds(res, ("time", "cold"))  # type: ignore[arg-type]
            for side, res in runs.items()}


def small_rows(table: Table, rounds: int) -> None:
    """The small-operation rows: warm and cold times and errors, condprob against each peer."""
    for task in SMALL:
        ref = small_reference(task)
        results = small_rounds(task, rounds)
        ours = results["condprob"]
        assert ours is not None
        print(f"{task}: condprob {ours['time'] * 1e6:.1f} us (cold {ours['cold'] * 1e6:.0f} us)",
              flush=True)
        errs = {}
        for side in ("condprob", "gprob", "funsor"):
            res = results.get(side)
            if res is not None:
                errs[side] = (f"{np.abs(np.asarray(res['mean']) - ref[0]).max():.1e}",
                              f"{np.abs(np.asarray(res['cov']) - ref[1]).max():.1e}")
            if side == "condprob":
                continue
            if side not in SMALL[task]:
                table.add_time(f"{task}: warm", ours["time"], side, None,
                               "conditions on observed variables only")
                continue
            if res is None:
                table.add_time(f"{task}: warm", ours["time"], side, None, "not installed")
                continue
            print(f"  {side}: {res['time'] * 1e6:.1f} us (cold {res['cold'] * 1e6:.0f} us)",
                  flush=True)
            table.add_time(f"{task}: warm", ours["time"], side, res["time"])
            table.add_time(f"{task}: cold (first call, fresh process)", ours["cold"], side,
                           res["cold"])
            for i, what in enumerate(("max error of the mean", "max error of the covariance")):
                table.add_value(f"{task}: {what}", errs["condprob"][i], side, errs[side][i])


def make_problem(n: int, m: int, ell: float, path: Path) -> dict:
    """Points, observed indices and values (drawn from the observed block's law), saved to path."""
    s = np.arange(n) * (0.1 * m / n)
    idx = np.arange(0, n, n // m)[:m]
    koo = kernel_matrix(s[idx], ell, 0.0)  # noqa: F821
    w, v = np.linalg.eigh(koo)
    y = v @ (np.sqrt(np.clip(w, 0, None)) * np.random.default_rng(0).standard_normal(m))
    np.savez(path, s=s, idx=idx, y=y)
    return {"s": s, "idx": idx, "y": y, "ell": ell, "cond": float(np.linalg.cond(koo))}


def reference(prob: dict, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and variances by least squares in numpy float64."""
    k = kernel_matrix(prob["s"], prob["ell"], jitter)  # noqa: F821
    idx = prob["idx"]
    sol = np.linalg.lstsq(k[np.ix_(idx, idx)], np.concatenate([prob["y"][:, None], k[idx, :]], 1),
                          rcond=None)[0]
    return k[:, idx] @ sol[:, 0], np.diag(k) - np.einsum("ij,ji->i", k[:, idx], sol[:, 1:])


def run_side(name: str, path: Path, prob: dict, jitter: float, repeat: int,
             validate: bool = True) -> dict | None:
    """Run one side in a fresh process; its JSON plus the mean and variances it computed."""
    env_name, code = SIDES[name]
    src = Path(os.environ.get("GAUSSIANINFER_SRC", ROOT / ".peers" / "gaussianinfer" / "src"))
    if name == "gaussianinfer" and not (src / "python" / "Infer.py").exists():
        return None
    out = path.with_suffix(f".{name.split()[0]}.{validate}.npz")
    full = (PROBLEM + code + TIMING)
    for key, val in (("KERNEL", KERNEL), ("PATH", repr(str(path))), ("OUT", repr(str(out))),
                     ("LENGTH", repr(prob["ell"])), ("JITTER", repr(jitter)),
                     ("REPEAT", str(repeat)), ("VALIDATE", str(validate)),
                     ("SRC", repr(str(src / "python"))), ("CLOCK", CLOCK.__name__)):
        full = full.replace(key, val)
    if env_name == "ours":
        res = run_ours(full, name, timeout=1800)
    else:
        res = run_peer(env_name, full)
    if res is not None and "time" in res:
        data = np.load(out)
        res["mean"], res["var"] = data["mean"], data["var"]
    return res


def _summary(res: dict | None) -> dict:
    return {k: v for k, v in (res or {}).items() if k not in ("mean", "var")}


def errors(res: dict, prob: dict, ref: tuple[np.ndarray, np.ndarray]) -> tuple[str, str, str]:
    mean_err = float(np.abs(res["mean"] - ref[0]).max())
    var_err = float(np.abs(res["var"] - ref[1]).max())
    miss = float(np.abs(res["mean"][prob["idx"]] - prob["y"]).max())
    return f"{mean_err:.1e}", f"{var_err:.1e}", f"{miss:.1e}"


PEERS = ("numpy solve (baseline)", "gprob", "funsor", "gaussianinfer")


def run_rounds(path: Path, prob: dict, jitter: float, repeat: int, rounds: int
               ) -> dict[tuple[str, bool], dict | None]:
    """Every side of one problem, (name, validate) -> its result, in `rounds` interleaved rounds
    (one for GaussianInfer, which takes seconds a run), each timing the least over the rounds."""
    n = len(prob["s"])
    sides = [("condprob", True), ("condprob", False)] + [
        (name, True) for name in PEERS if not (name == "gaussianinfer" and n > GI_MAX)]
    runs: dict[tuple[str, bool], list[dict | None]] = {side: [] for side in sides}
    for r in range(rounds):
        for name, validate in sides:
            if r and name == "gaussianinfer":
                continue
            reps = min(repeat, 3) if name == "gaussianinfer" else repeat
            runs[name, validate].append(run_side(name, path, prob, jitter, reps, validate))
    out: dict[tuple[str, bool], dict | None] = {}
    for side, res in runs.items():
        failed = [x for x in res if x is None or "time" not in x]
        out[side] = failed[0] if failed else over_rounds(res, ("time", "cold"))  # type: ignore[arg-type]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="tiny problems, one repeat, nothing written")
    ap.add_argument("--small", action="store_true", help="the small operations alone")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds of every side on the small operations and the "
                         "1000-point problems (least median over rounds)")
    args = ap.parse_args()
    problems = [] if args.small else SMOKE if args.smoke else PROBLEMS
    table = Table("Exact Gaussian conditioning: GP posterior mean and variances, and small "
                  "operations (float64)")
    small_rows(table, 1 if args.smoke else args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        for n, m, repeat, ell in problems:
            path = Path(tmp) / f"gp_{n}_{m}_{ell}.npz"
            prob = make_problem(n, m, ell, path)
            rounds = 1 if args.smoke or n > GI_MAX else args.rounds
            for jitter in JITTERS:
                task = (f"GP {n} points, {m} exact obs, l = {ell} (cond(K_oo) "
                        f"{prob['cond']:.0e}), jitter {jitter:g}")
                ref = reference(prob, jitter)
                results = run_rounds(path, prob, jitter, repeat, rounds)
                ours, fast = results["condprob", True], results["condprob", False]
                assert ours is not None and fast is not None
                print(f"{task}: condprob {_summary(ours)}, unvalidated {_summary(fast)}",
                      flush=True)
                if "time" not in ours:
                    for name in PEERS:
                        table.add_value(f"{task}: time", f"failed: {ours['error']}", name, "")
                    continue
                mine = errors(ours, prob, ref)
                for name in PEERS:
                    if (name, True) not in results:
                        table.add_value(f"{task}: time", fmt_seconds(ours["time"]), name,
                                        "not run (too slow at this size)")
                        continue
                    res = results[name, True]
                    print(f"  {name}: {_summary(res)}", flush=True)
                    note = f"jitter {res['jitter']:g}" if res and res.get("jitter") else ""
                    if res is None:
                        table.add_time(f"{task}: warm", ours["time"], name, None, "not installed")
                        continue
                    if "time" not in res:
                        what = "FALSE FAILURE: " if res.get("false_failure") else "failed: "
                        table.add_value(f"{task}: time", fmt_seconds(ours["time"]), name,
                                        what + res["error"][:120], "n/a")
                        continue
                    table.add_time(f"{task}: warm", ours["time"], name, res["time"], note)
                    table.add_time(f"{task}: cold (first call, fresh process)", ours["cold"],
                                   name, res["cold"], note)
                    table.add_time(f"{task}: warm, validate=False", fast["time"], name,
                                   res["time"], note)
                    theirs = errors(res, prob, ref)
                    for what, a, b in zip(("max error of the mean", "max error of the variances",
                                           "max miss at the observed points"), mine, theirs,
                                          strict=True):
                        table.add_value(f"{task}: {what}", a, name, b, note)
    if args.smoke:  # a check that it runs: nothing written
        print(table.markdown())
    else:
        table.emit("gaussian")


if __name__ == "__main__":
    main()
