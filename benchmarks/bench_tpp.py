"""Point processes: Hawkes speed side by side with tick 0.8.0.2, and ground-truth benchmarks.

Speed: a 5-dimensional exponential Hawkes process (mu = 0.5, alpha = 0.1, beta = 2: 5 events per
unit time), simulated to 100k and 1M events, and its log-likelihood plus gradient on 1M events
(in (mu, alpha, beta) by one pass; and with the decay fixed, as tick's model has it, from sums
precomputed once, what `Hawkes.fit(beta=...)` runs); tick's `SimuHawkesExpKernels` and `ModelHawkesExpKernLogLik` run in their own environment
(`tick`, made by `bash benchmarks/peers/make_all.sh`) on the same events, and the two
log-likelihoods are compared.

Ground truth (the true model's NLL is the floor): Omi et al. (2019)'s processes (one sequence of
100k events, the last 20k held out, gap = held-out NLL per event minus the true model's, both
conditional on the past), and Waghmare et al. (2022)'s two-mark Hawkes Ind and Dep(I) (T = 100,
4000 training and 1000 test sequences; mark accuracy given the event's time).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_tpp            # ~15 min on 2 cores
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_tpp --quick    # small sizes, ~1 min
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_tpp --part speed   # tick table only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import ROOT, Table, median_time, run_peer
from benchmarks.roofline import Work
from tpp import ConditionalGenerator, EventBatch, Hawkes, IntensityFree, TimeGivenMark, train
from tpp.hawkes import _FixedDecaySums
from tpp.metrics import mark_accuracy, rmse
from tpp.simple import omi_processes

D5 = Hawkes(torch.full((5,), 0.5), torch.full((5, 5), 0.1), 2.0)

PEER_SIM = """
import numpy as np
from tick.hawkes import SimuHawkesExpKernels, ModelHawkesExpKernLogLik
D = 5
out = {}
for n in SIZES:
    def sim():
        s = SimuHawkesExpKernels(adjacency=np.full((D, D), 0.1), decays=np.full((D, D), 2.0),
                                 baseline=np.full(D, 0.5), end_time=n / 5.0, verbose=False, seed=1)
        s.simulate()
        return s
    out[f"sim{n}"] = median_time(sim, repeat=REPEAT)
    out[f"events{n}"] = int(sum(len(t) for t in sim().timestamps))
data = np.load(PATH)
events = [data["times"][data["marks"] == k] for k in range(D)]
coeffs = np.concatenate([np.full(D, 0.5), np.full(D * D, 0.1)])
def fit_loss_grad():
    model = ModelHawkesExpKernLogLik(2.0)
    model.fit(events, float(data["T"]))      # precomputes the decay-dependent sums
    return model, model.loss(coeffs), model.grad(coeffs)
out["fit_llgrad_first"] = median_time(fit_loss_grad, repeat=1, warmup=0)
out["fit_llgrad"] = median_time(fit_loss_grad, repeat=REPEAT)
model = fit_loss_grad()[0]
out["loss"] = float(model.loss(coeffs))
out["grad"] = model.grad(coeffs).tolist()
out["llgrad"] = median_time(lambda: (model.loss(coeffs), model.grad(coeffs)), repeat=REPEAT)
print(json.dumps(out))
"""


# the model D5, built from `tpp` alone: importing this module would also import scipy (through
# tpp.metrics), which numba's first load in a process imports otherwise (about 0.3 s)
COLD = """
import sys, time, torch
torch.set_num_threads(1)
from tpp import Hawkes
model = Hawkes(torch.full((5,), 0.5), torch.full((5, 5), 0.1), 2.0)
big = model.simulate(int(sys.argv[1]) / 5.0, seed=2)
params = [model.mu.clone().requires_grad_(), model.alpha.clone().requires_grad_(),
          torch.tensor(2.0, dtype=torch.float64, requires_grad=True)]
for _ in range(2):
    t0, w0 = time.thread_time(), time.perf_counter()
    torch.autograd.grad(Hawkes(*params, validate=False).log_likelihood(big).sum(), params)
    print(time.thread_time() - t0, time.perf_counter() - w0)
"""


def first_llgrads(n: int, cached: bool) -> list[tuple[float, float]]:
    """Our first two log-likelihood + gradient calls in a fresh process that imported only
    `tpp` (the imports and the simulation done before): (CPU time of the calling thread, wall
    time) of each. With numba's cache the first call loads the compiled pass; without it (a
    first use after installing) the first call takes the scan path and the second compiles."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        env["NUMBA_CACHE_DIR"] = tmp
        if cached:  # a first process fills numba's cache
            subprocess.run([sys.executable, "-c", "from tpp.hawkes import _compile_pass; "
                            "_compile_pass()"], env=env, cwd=str(ROOT), check=True)
        out = subprocess.run([sys.executable, "-c", COLD, str(n)], env=env, cwd=str(ROOT),
                             capture_output=True, text=True, check=True).stdout
    lines = [line.split() for line in out.strip().splitlines()[-2:]]
    return [(float(cpu), float(wall)) for cpu, wall in lines]


def speed(sizes: tuple[int, ...], repeat: int) -> Table:
    table = Table("tpp: 5-d exponential Hawkes, condprob vs tick 0.8.0.2 (1 thread)")
    ours = {}
    for n in sizes:
        ours[n] = median_time(lambda n=n: D5.simulate(n / 5.0, seed=1), repeat=repeat)
    big = D5.simulate(sizes[-1] / 5.0, seed=2)
    n_big = big.num_events
    params = [D5.mu.clone().requires_grad_(), D5.alpha.clone().requires_grad_(),
              torch.tensor(2.0, dtype=torch.float64, requires_grad=True)]

    def llgrad(validate: bool) -> None:
        ll = Hawkes(*params, validate=validate).log_likelihood(big).sum()
        torch.autograd.grad(ll, params)

    t_ll = median_time(lambda: llgrad(False), repeat=repeat)
    t_ll_default = median_time(lambda: llgrad(True), repeat=repeat)
    pair = [params[0], params[1], params[2].expand(5, 5)]  # per-pair decays: the scan path
    t_scan = median_time(lambda: torch.autograd.grad(
        Hawkes(*pair, validate=False).log_likelihood(big).sum(), params), repeat=repeat)
    one = Hawkes(*params, validate=False)
    one._scalar_beta = None  # one decay by the scan path: a first call before numba compiles
    t_scan_one = median_time(lambda: torch.autograd.grad(one.log_likelihood(big).sum(), params),
                             repeat=repeat)

    # decay fixed, as tick's model: what Hawkes.fit(beta=2.0) computes once, then every step
    def fixed_sums() -> _FixedDecaySums:
        return _FixedDecaySums(Hawkes(torch.ones(5), torch.ones(5, 5), 2.0), big)

    sums = fixed_sums()
    t_fixed = median_time(lambda: torch.autograd.grad(
        sums.log_likelihood(params[0], params[1]), params[:2]), repeat=repeat)
    t_fixed_all = median_time(lambda: torch.autograd.grad(
        fixed_sums().log_likelihood(params[0], params[1]), params[:2]), repeat=repeat)
    # per event and mark five multiply-adds (the decays of S and W, the two sums over marks,
    # the alpha gradient), exp and log not counted; the events (time, mark) read once
    work = Work(flops=10.0 * 5 * n_big, bytes=16.0 * n_big, dtype=torch.float64)
    t_cold = first_llgrads(sizes[-1], cached=True)[0]
    t_install, t_install_2 = first_llgrads(sizes[-1], cached=False)
    ours_loss = float(-D5.log_likelihood(big).sum()) / n_big
    mu, alpha = D5.mu.clone().requires_grad_(), D5.alpha.clone().requires_grad_()
    (-Hawkes(mu, alpha, 2.0).log_likelihood(big).sum() / n_big).backward()
    ours_grad = torch.cat([mu.grad, alpha.grad.flatten()]).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.npz"
        t, m = big.sequence(0)
        np.savez(path, times=t.numpy(), marks=m.numpy(), T=float(big.T[0]))
        peer = run_peer("tick", f"SIZES = {list(sizes)}\nREPEAT = {repeat}\nPATH = {str(path)!r}\n"
                        + PEER_SIM)
    get = (lambda k: peer[k]) if peer else (lambda k: None)
    for n in sizes:
        table.add_time(f"simulate {n:,} events (branching, exact)", ours[n], "tick",
                       get(f"sim{n}"), "Ogata thinning")
    table.add_time(f"log-likelihood + gradient in (mu, alpha, beta), {n_big:,} events (default: "
                   "parameters validated)", t_ll_default, "tick", get("fit_llgrad"),
                   "fit() precomputation + loss + grad in (mu, alpha)", work=work)
    table.add_time(f"log-likelihood + gradient in (mu, alpha, beta), {n_big:,} events "
                   "(validate=False)", t_ll, "tick", get("fit_llgrad"),
                   "fit() precomputation + loss + grad in (mu, alpha)", work=work)
    table.add_time(f"log-likelihood + gradient in (mu, alpha, beta), {n_big:,} events "
                   "(validate=False), against tick's sums precomputed", t_ll, "tick",
                   get("llgrad"), "loss + grad only, decay fixed", work=work)
    table.add_time(f"decay fixed: sums precomputed + log-likelihood + gradient in (mu, alpha), "
                   f"{n_big:,} events (Hawkes.fit(beta=...))", t_fixed_all, "tick",
                   get("fit_llgrad"), "fit() precomputation + loss + grad")
    table.add_time(f"decay fixed: log-likelihood + gradient in (mu, alpha) from the precomputed "
                   f"sums, {n_big:,} events (each step of Hawkes.fit(beta=...))", t_fixed, "tick",
                   get("llgrad"), "loss + grad only, decay fixed")
    first = ("fit_llgrad_first", "first fit() + loss + grad")
    for (cpu, wall), call, (key, note) in (
            (t_cold, "first log-likelihood + gradient in a fresh process (numba's cache present: "
                     "loads the compiled pass", first),
            (t_install, "first log-likelihood + gradient in a fresh process (no numba cache, a "
                        "first use after installing: the scan path", first),
            (t_install_2, "second log-likelihood + gradient in that process (compiles the pass, "
                          "once per installation", ("fit_llgrad", "fit() + loss + grad"))):
        table.add_time(f"{call}; CPU time of the calling thread, wall time {wall * 1e3:,.0f} ms), "
                       f"{n_big:,} events", cpu, "tick", get(key), note)
    table.add_value(f"log-likelihood + gradient, {n_big:,} events, one decay, by the torch scan "
                    "path (twice differentiable; a first call before numba compiles)",
                    f"{t_scan_one * 1e3:,.0f} ms", "tick", "n/a", "tick has no such path")
    table.add_value(f"log-likelihood + gradient, {n_big:,} events, one decay per pair (25 states "
                    "per event, the torch scan path)", f"{t_scan * 1e3:,.0f} ms", "tick", "n/a",
                    "tick's model has one decay")
    if peer is not None:
        # tick's loss omits a parameter-free term: it equals ours minus D * T / N
        offset = 5 * float(big.T[0]) / n_big
        diff = abs(peer["loss"] + offset - ours_loss) / abs(ours_loss)
        peer_grad = np.array(peer["grad"])
        gdiff = np.abs(peer_grad - ours_grad).max()
        table.add_value("NLL per event on the same events (tick + D T / N)", f"{ours_loss:.12f}",
                        "tick", f"{peer['loss'] + offset:.12f}", f"relative difference {diff:.1e}")
        table.add_value("gradient in (mu, alpha): largest entry (max abs)",
                        f"{np.abs(ours_grad).max():.6e}", "tick",
                        f"{np.abs(peer_grad).max():.6e}",
                        f"max abs difference {gdiff:.1e}")
    return table


def long_windows(times: torch.Tensor, t1: float, width: float) -> EventBatch:
    """Cut one sequence on [0, t1] into windows of length `width` (each shifted to start at 0)."""
    edges = np.arange(0.0, t1, width).tolist() + [t1]
    seqs = [(times[(times > a) & (times <= b)] - a).tolist()
            for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return EventBatch.from_sequences(seqs, None, T=width)


def omi(n_events: int, epochs: int, table: Table) -> None:
    n_test = n_events // 5
    for name, proc in omi_processes().items():
        seq = proc.simulate(n_events * 1.3, seed=0)            # every process has rate ~1
        t = seq.sequence(0)[0][:n_events]
        split, end = float(t[n_events - n_test - 1]), float(t[-1])
        first = EventBatch.from_sequences([t[:n_events - n_test].tolist()], None, T=split)
        full = EventBatch.from_sequences([t.tolist()], None, T=end)
        held = EventBatch.from_sequences([(t[n_events - n_test:] - split).tolist()], None,
                                         T=end - split)

        def conditional_nll(model, full=full, first=first) -> float:
            with torch.no_grad():
                return -float(model.log_likelihood(full) - model.log_likelihood(first)) / n_test

        truth = conditional_nll(proc)
        models: dict[str, object] = {}
        if name.startswith("hawkes"):
            models["Hawkes MLE (exp)"] = Hawkes.fit(first)
            if name == "hawkes2":
                models["Hawkes MLE (2 exps)"] = Hawkes.fit(first, num_components=2)
        data = long_windows(t[:n_events - n_test], split, 100.0)
        tr, va = data.split((0.9, 0.1), seed=0)
        neural = {"IntensityFree": lambda: IntensityFree(1, hidden=32, components=8)}
        if name.startswith("hawkes"):
            neural["ConditionalGenerator"] = lambda: ConditionalGenerator(
                1, hidden=32, latent=4, num_particles=64)
        for label, make in neural.items():
            torch.manual_seed(0)
            model = make()
            train(model, tr, va, epochs=epochs, lr=1e-2, batch_size=64, patience=6,
                  progress=False)
            models[label] = model
        published = {"hawkes1": "0.020", "hawkes2": "0.018", "stationary_renewal": "0.002",
                     "self_correcting": "0.032"}.get(name, "n/a")
        for label, model in models.items():
            gap = (conditional_nll(model) if isinstance(model, Hawkes)
                   else model.nll_per_event(held)) - truth
            table.add_value(f"Omi {name}: {label}, NLL gap (true NLL {truth:.4f})",
                            f"{gap:+.4f}", "Omi et al. 2019 neural (published)", published)
            print(f"omi {name} {label}: gap {gap:+.4f}", flush=True)


def hawkes_recovery(n_events: int, table: Table) -> None:
    h1 = omi_processes()["hawkes1"]
    seq = h1.simulate(n_events * 1.3, seed=5)
    t = seq.sequence(0)[0][:n_events]
    data = EventBatch.from_sequences([t.tolist()], None, T=float(t[-1]))
    fit = Hawkes.fit(data)
    err = max(abs(float(fit.mu[0]) - 0.2), abs(float(fit.alpha.sum()) - 0.8),
              abs(float(fit.beta.flatten()[0]) - 1.0))
    test = h1.simulate(20000.0, seed=6)
    gap = fit.nll_per_event(test) - h1.nll_per_event(test)
    table.add_value(f"Hawkes1 MLE, {n_events:,} events: max abs parameter error", f"{err:.4f}",
                    "target", "<= 0.02")
    table.add_value("Hawkes1 MLE: held-out NLL gap (nats/event)", f"{gap:+.5f}", "target",
                    "<= 0.001")


WAGHMARE = {
    "Hawkes Ind": Hawkes([0.1, 0.05], [[0.2, 0.0], [0.0, 0.4 / 2]],
                         torch.tensor([[1.0, 1.0], [1.0, 2.0]])),
    "Hawkes Dep(I)": Hawkes([0.1, 0.05], [[0.2, 0.1], [0.2, 0.3]], 1.0),
}
PUBLISHED_F1 = {"Hawkes Ind": ("67.08", "70.80"), "Hawkes Dep(I)": ("57.06", "60.37")}


def waghmare(n_train: int, epochs: int, table: Table) -> None:
    """Their kernel is a e^{-b t}: alpha = a / b (Ind: a = 0.4, b = 2 gives alpha 0.2)."""
    for name, truth in WAGHMARE.items():
        tr = truth.simulate(100.0, n_train, seed=1)
        te = truth.simulate(100.0, n_train // 4, seed=2)
        tr, va = tr.split((0.9, 0.1), seed=0)
        t_nll = truth.nll_per_event(te)
        t_acc = mark_accuracy(truth.mark_given_time(te), te)
        t_rmse = rmse(truth.predict(te)[0], te)
        models: dict[str, object] = {"Hawkes MLE": Hawkes.fit(tr, decays="pair")}
        for label, make in (("IntensityFree (marks independent)", lambda: IntensityFree(2, 32, 8)),
                            ("TimeGivenMark", lambda: TimeGivenMark(2, 32, 8)),
                            ("ConditionalGenerator", lambda: ConditionalGenerator(
                                2, hidden=32, num_particles=32))):
            torch.manual_seed(0)
            model = make()
            train(model, tr, va, epochs=epochs, lr=1e-2, batch_size=64, patience=6,
                  progress=False)
            models[label] = model
        lnm, prop = PUBLISHED_F1[name]
        for label, model in models.items():
            gap = model.nll_per_event(te) - t_nll
            acc = mark_accuracy(model.mark_given_time(te), te)
            err = rmse(model.predict(te)[0], te)
            pub = lnm if label.startswith("Intensity") else prop if label == "TimeGivenMark" \
                else "n/a"
            table.add_value(f"{name}: {label}, NLL gap / mark acc. / RMSE of tau (truth "
                            f"{t_acc:.2%}, {t_rmse:.3f})", f"{gap:+.4f} / {acc:.2%} / {err:.3f}",
                            "Waghmare et al. 2022 micro-F1 %", pub)
            print(f"{name} {label}: gap {gap:+.4f} acc {acc:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--part", choices=["all", "speed", "truth"], default="all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    q = args.quick
    if args.part in ("all", "speed"):
        speed((10_000, 100_000) if q else (100_000, 1_000_000), 1 if q else 3).emit("tpp")
    if args.part == "speed":
        return
    truth = Table("tpp: ground truth (gap = held-out NLL per event minus the true model's)")
    hawkes_recovery(10_000 if q else 100_000, truth)
    waghmare(200 if q else 4000, 2 if q else 40, truth)
    omi(5_000 if q else 100_000, 2 if q else 40, truth)
    truth.emit("tpp_truth")


if __name__ == "__main__":
    main()
