"""GPU check of the Triton kernels (issue 16): each kernel of `condprob.accel` against its torch twin
on the same device, for agreement, speed and achieved throughput, in one markdown table.

- Chain kernels (forward, backward, Viterbi; float32) at B in {32, 512, 4096}, T in {100, 1000},
  S in {8, 20, 64}, random lengths (the first chain full): log Z with its gradient (autograd),
  marginals and Viterbi through `condprob.chain`, routed to Triton and to the torch path. Agreement
  is against the float64 torch path: errors of log Z, gradients and marginals within the float32
  tolerance 4 eps32 sqrt(T) max(1, |log Z|) (log-space rounding accumulates along the chain), and
  Viterbi paths optimal up to that tolerance when scored in float64. Throughput: chain cells
  (kept positions x S^2) per second.
- Token samplers at B in {1, 64, 256}, V in {32,000, 128,000} (logits 2 N(0, 1), float32) for five
  temperature / top-k / top-p / min-p settings, through `condprob.lm.sampling.sample_filtered`
  routed to the fused kernels (Gumbel-max without filters, dual-pivot rejection with them) and to
  the torch path, plus the sort-based torch sampler of `benchmarks.bench_lm`. Agreement: a G-test
  of 4,096 draws (the B rows tiled) against the exact filtered law (float64), pooled over rows
  on bins of equal filtered mass, with a power check: the same draws must reject the law at 1.5 x
  the temperature (p < 1e-6); the torch path's draws take the same test. Throughput: bytes of
  logits read once per second against the device's peak memory bandwidth.
- Speculative verification (4 drafts) through `condprob.lm.speculative.speculative_step`; agreement:
  with one draft drawn from the draft law, the first emitted token follows the target law (G-test
  of 2,048 draws) and the same draws reject the draft law.

Timings are medians of CUDA-synchronised runs after the first call, which is shown apart (it runs
before the agreement checks, so the first size of each kernel variant includes its compilation).
Every check runs within a time budget (rows past it read "skipped"), and a failing case becomes a
row naming the error, so one run always ends with the table. The table goes to OUTDIR/gpu_check.md
(rewritten after every row, with a progress line per row on standard output) and, at the end, to
standard output; the exit status is 1 when a check failed, 2 without a CUDA GPU.

    python -m benchmarks.gpu_check OUTDIR            # on a CUDA machine, within 8 minutes
    python -m benchmarks.gpu_check OUTDIR --only chain samplers speculative   # some of them
    python -m benchmarks.gpu_check OUTDIR --smoke    # tiny sizes, Triton's interpreter on CPU
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

EPS32 = float(torch.finfo(torch.float32).eps)
SETTINGS = {
    "t=1 (Gumbel-max)": {},
    "t=0.7, top-k 50": {"temperature": 0.7, "top_k": 50},
    "top-p 0.9": {"top_p": 0.9},
    "t=1.5, min-p 0.1": {"temperature": 1.5, "min_p": 0.1},
    "t=0.8, top-k 100 + top-p 0.95 + min-p 0.05": {"temperature": 0.8, "top_k": 100,
                                                   "top_p": 0.95, "min_p": 0.05},
}
PEAK_GBS = (  # HBM/GDDR peak bandwidth in GB/s by device name, most specific names first
    ("GH200", 4000), ("H200", 4800), ("H100 PCIe", 2000), ("H100 NVL", 3900), ("H100", 3350),
    ("B200", 8000), ("A100-SXM4-80GB", 2039), ("A100 80GB PCIe", 1935), ("A100", 1555),
    ("L40S", 864), ("L40", 864), ("L4", 300), ("A10G", 600), ("A10", 600), ("T4", 320),
    ("V100", 900), ("RTX 4090", 1008), ("RTX 3090", 936),
)


@dataclass(frozen=True)
class Plan:
    """Sizes, draws and limits of one run."""

    device: str
    chain_sizes: list[tuple[int, int, int]]  # (B, T, S), goal size first
    sampler_sizes: list[tuple[int, int]]  # (B, V), goal size first
    law_draws: int
    drafts: int
    repeat: int
    budget_s: float


FULL = Plan("cuda",
            [(512, 1000, 20)] + [(b, t, s) for b in (32, 512, 4096) for t in (100, 1000)
                                 for s in (8, 20, 64) if (b, t, s) != (512, 1000, 20)],
            [(64, 128_000)] + [(b, v) for b in (1, 64, 256) for v in (32_000, 128_000)
                               if (b, v) != (64, 128_000)],
            law_draws=4096, drafts=4, repeat=7, budget_s=420.0)
SMOKE = Plan("cpu", [(3, 6, 5)], [(3, 64)], law_draws=256, drafts=2, repeat=1, budget_s=600.0)


def peak_bandwidth(name: str) -> float | None:
    """Peak memory bandwidth in GB/s of a device named `name`, or None when not in the table."""
    for key, gbs in PEAK_GBS:
        if key in name:
            return float(gbs)
    return None


# Routing: the same public functions, sent to Triton or to the torch path -------------------------

@contextlib.contextmanager
def routed(triton: bool) -> Iterator[None]:
    """Send condprob's dispatch (chain engine, filtered sampling, speculative verification) to the
    Triton kernels or to the torch path, whatever the device."""
    from condprob import accel
    from condprob.lm import sampling, speculative

    saved = [(accel, "chain_kernels_apply"), (sampling, "_use_triton"),
             (speculative, "gpu_available")]
    old = [getattr(mod, name) for mod, name in saved]
    accel.chain_kernels_apply = lambda *a: triton
    sampling._use_triton = lambda *a: triton
    speculative.gpu_available = lambda *a: triton
    try:
        yield
    finally:
        for (mod, name), fn in zip(saved, old, strict=True):
            setattr(mod, name, fn)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str, repeat: int) -> tuple[float, float]:
    """(first call, median of `repeat` further calls) in seconds; CUDA events on a GPU."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


# The table --------------------------------------------------------------------------------------

@dataclass
class Row:
    kernel: str
    size: str
    setting: str
    agreement: str = ""
    ok: bool | None = None
    triton: float | None = None
    first: float | None = None
    twin: float | None = None
    sort: float | None = None
    throughput: str = ""


@dataclass
class Report:
    device_name: str
    plan: Plan
    out: Path  # the table file, rewritten after every row (a run cut short keeps its figures)
    started: float = field(default_factory=time.perf_counter)
    rows: list[Row] = field(default_factory=list)

    def over_budget(self) -> bool:
        return time.perf_counter() - self.started > self.plan.budget_s

    def run(self, row: Row, body: Callable[[Row], None]) -> None:
        """Fill `row` by `body`; a failure becomes the row's agreement text (and a FAIL)."""
        self.rows.append(row)
        if self.over_budget():
            row.agreement = "skipped: time budget spent"
            return
        try:
            body(row)
        except Exception as exc:  # one failing case must not lose the others' figures
            traceback.print_exc()
            row.agreement = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            row.ok = False
            if self.plan.device == "cuda":
                torch.cuda.empty_cache()
        check = {True: "ok", False: "FAIL", None: ""}[row.ok]
        print(f"[{time.perf_counter() - self.started:5.0f} s] {row.kernel}, {row.size}, "
              f"{row.setting}: {check}", flush=True)
        self.out.write_text(self.markdown())

    def failed(self) -> bool:
        return any(r.ok is False for r in self.rows)

    def markdown(self) -> str:
        peak = peak_bandwidth(self.device_name)
        head = ["kernel", "size", "setting", "agreement", "check", "Triton", "first call",
                "torch path", "torch / Triton", "torch sort-based", "sort / Triton",
                "throughput"]

        def ms(t: float | None) -> str:
            return "" if t is None else f"{t * 1e3:.3f} ms"

        def ratio(a: float | None, b: float | None) -> str:
            return "" if a is None or b is None or b <= 0 else f"{a / b:.2f}x"

        lines = [f"### Triton kernels against the torch path on {self.device_name}", "",
                 f"Peak memory bandwidth: {'unknown' if peak is None else f'{peak:,.0f} GB/s'}; "
                 f"torch {torch.__version__}, Triton {_triton_version()}; float32; medians of "
                 f"{self.plan.repeat} runs after the first call; run took "
                 f"{time.perf_counter() - self.started:.0f} s.", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            check = {True: "ok", False: "FAIL", None: ""}[r.ok]
            cells = [r.kernel, r.size, r.setting, r.agreement, check, ms(r.triton),
                     "" if r.first is None else f"{r.first:.2f} s", ms(r.twin),
                     ratio(r.twin, r.triton), ms(r.sort), ratio(r.sort, r.triton), r.throughput]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines + ["", *self.goals()]) + "\n"

    def goals(self) -> list[str]:
        """The issue's goals, each with the figures that decide it."""
        out = ["Goals (issue 16):",
               f"- every kernel agrees with its twin: {'no' if self.failed() else 'yes'}"]
        b, v = self.plan.sampler_sizes[0]
        for r in self.rows:
            if r.kernel.endswith(" sampling") and r.size == _sampler_size(b, v):
                out.append(f"- {r.setting} at {r.size}: {r.throughput or 'n/a'} (goal: half the "
                           f"peak); {_ratio_text(r.sort, r.triton)} the sort-based path (goal 5x)")
        b, t, s = self.plan.chain_sizes[0]
        for r in self.rows:
            if r.kernel == "chain log Z + gradient" and r.size == _chain_size(b, t, s):
                out.append(f"- chain forward-backward at {r.size}: "
                           f"{_ratio_text(r.twin, r.triton)} the torch path (goal: faster)")
        return out


def _ratio_text(theirs: float | None, ours: float | None) -> str:
    return "n/a against" if theirs is None or not ours else f"{theirs / ours:.2f}x faster than"


def _triton_version() -> str:
    import triton

    return triton.__version__


def _chain_size(b: int, t: int, s: int) -> str:
    return f"B={b}, T={t}, S={s}"


def _sampler_size(b: int, v: int) -> str:
    return f"B={b}, V={v:,}"


# Chain kernels ----------------------------------------------------------------------------------

def chain_case(b: int, t: int, s: int, device: str, seed: int = 0):
    """Random float32 potentials (unary, trans, start, end) and a mask of random lengths (the
    first chain full)."""
    g = torch.Generator().manual_seed(seed)
    unary, trans = torch.randn(b, t, s, generator=g), torch.randn(s, s, generator=g)
    start, end = torch.randn(s, generator=g), torch.randn(s, generator=g)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t
    from condprob.chain import lengths_to_mask

    mask = lengths_to_mask(lengths, t)
    return [x.to(device) for x in (unary, trans, start, end, mask)]


def check_chains(report: Report) -> None:
    from condprob import chain as ch

    plan = report.plan
    for b, t, s in plan.chain_sizes:
        size = _chain_size(b, t, s)
        case: dict[str, object] = {}

        def reference(b=b, t=t, s=s, case=case) -> None:
            unary, trans, start, end, mask = chain_case(b, t, s, plan.device)
            leaves = [x.double().requires_grad_(True) for x in (unary, trans)]
            chain64 = ch.Chain(leaves[0], leaves[1], start.double(), end.double(), mask)
            logz = ch.log_partition(chain64)
            logz.sum().backward()
            with torch.no_grad():
                best, _ = ch.viterbi(ch.Chain(*(x.detach() for x in leaves), start.double(),
                                              end.double(), mask))
            cells = mask.sum().item() * s * s
            tol = 4 * EPS32 * math.sqrt(t) * max(1.0, logz.detach().abs().max().item())
            case.update(inputs=(unary, trans, start, end, mask), logz=logz.detach(),
                        grads=[x.grad for x in leaves], best=best, cells=cells, tol=tol,
                        chain64=ch.Chain(unary.double(), trans.double(), start.double(),
                                         end.double(), mask))

        def logz_grad(row: Row, case=case) -> None:
            if "tol" not in case:
                reference()
            unary, trans, start, end, mask = case["inputs"]
            errs = []
            for triton in (True, False):
                leaves = [x.clone().requires_grad_(True) for x in (unary, trans)]

                def run(leaves=leaves) -> torch.Tensor:
                    for x in leaves:
                        x.grad = None
                    logz = ch.log_partition(ch.Chain(leaves[0], leaves[1], start, end, mask))
                    logz.sum().backward()
                    return logz.detach()

                with routed(triton):
                    first, med = timed(run, plan.device, plan.repeat)  # first: cold
                    logz = run()
                grads = [x.grad.double() for x in leaves]
                ref = case["grads"]
                errs.append(((logz.double() - case["logz"]).abs().max().item(),
                             (grads[0] - ref[0]).abs().max().item(),
                             (grads[1] - ref[1]).abs().max().item()
                             / max(1.0, ref[1].abs().max().item())))
                if triton:
                    row.triton, row.first = med, first
                else:
                    row.twin = med
            tri, twin = errs
            row.ok = max(tri) <= case["tol"]
            row.agreement = (f"vs float64: log Z {tri[0]:.1e}, d/d unary {tri[1]:.1e}, "
                             f"d/d trans {tri[2]:.1e} rel (torch float32: {max(twin):.1e}; "
                             f"tol {case['tol']:.1e})")
            row.throughput = f"{case['cells'] / row.triton / 1e9:.2f} G cells/s"

        def marginals(row: Row, case=case) -> None:
            if "tol" not in case:
                reference()
            chain = ch.Chain(*case["inputs"])
            with routed(True):
                row.first, row.triton = timed(lambda: ch.marginals(chain), plan.device,
                                              plan.repeat)
                err = (ch.marginals(chain).double() - case["grads"][0]).abs().max().item()
            with routed(False):
                twin = (ch.marginals(chain).double() - case["grads"][0]).abs().max().item()
                row.twin = timed(lambda: ch.marginals(chain), plan.device, plan.repeat)[1]
            row.ok = err <= case["tol"]
            row.agreement = (f"vs float64: {err:.1e} (torch float32: {twin:.1e}; "
                             f"tol {case['tol']:.1e})")
            row.throughput = f"{case['cells'] / row.triton / 1e9:.2f} G cells/s"

        def viterbi(row: Row, case=case) -> None:
            if "tol" not in case:
                reference()
            chain = ch.Chain(*case["inputs"])
            with routed(True):
                row.first, row.triton = timed(lambda: ch.viterbi(chain), plan.device,
                                              plan.repeat)
                best, path = ch.viterbi(chain)
            with routed(False):
                _, twin_path = ch.viterbi(chain)
                row.twin = timed(lambda: ch.viterbi(chain), plan.device, plan.repeat)[1]
            exact = ch.score(case["chain64"], path)
            score_err = (best.double() - case["best"]).abs().max().item()
            gap = (case["best"] - exact).max().item()
            same = (path == twin_path).all(-1).double().mean().item()
            row.ok = score_err <= case["tol"] and gap <= case["tol"]
            row.agreement = (f"best score vs float64: {score_err:.1e}; path optimal within "
                             f"{max(gap, 0.0):.1e} (tol {case['tol']:.1e}); "
                             f"{same:.1%} of paths equal to torch's")
            row.throughput = f"{case['cells'] / row.triton / 1e9:.2f} G cells/s"

        for name, body in (("chain log Z + gradient", logz_grad), ("chain marginals", marginals),
                           ("chain Viterbi", viterbi)):
            report.run(Row(name, size, "float32, random lengths"), body)
        case.clear()
        if plan.device == "cuda":
            torch.cuda.empty_cache()


# Samplers ---------------------------------------------------------------------------------------

def exact_law(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
              top_p: float | None = None, min_p: float | None = None) -> torch.Tensor:
    """The filtered, tempered law of each row in float64 (`condprob.lm.filters.filtered_probs`)."""
    from condprob.lm.filters import filtered_probs

    return filtered_probs(logits.double(), temperature, top_k, top_p, min_p)


def g_test(draws: torch.Tensor, law: torch.Tensor, bins: int) -> float:
    """p-value of the G-test of draws (N,) from rows law[i % R] (law: (R, V)) pooled on `bins`
    bins of equal mass of each row's law (tokens sorted by probability); a draw of a token the
    law excludes gives 0."""
    from condprob import laws

    r, v = law.shape
    probs, order = torch.sort(law, -1, descending=True)
    before = torch.cumsum(probs, -1) - probs
    sorted_bin = torch.clamp((before * bins).long(), max=bins - 1)
    sorted_bin = torch.where(probs > 0, sorted_bin, bins)  # bin `bins`: outside the support
    token_bin = torch.empty_like(sorted_bin).scatter_(-1, order, sorted_bin)
    mass = torch.zeros(r, bins + 1, dtype=torch.float64, device=law.device)
    mass.scatter_add_(-1, sorted_bin, probs)
    rows = torch.arange(draws.numel(), device=law.device) % r
    per_row = torch.bincount(rows, minlength=r).double()
    expected = (per_row[:, None] * mass).sum(0)
    counts = torch.bincount(token_bin[rows, draws], minlength=bins + 1)
    return laws.g_test(counts, expected / expected.sum())


def law_verdict(draws: dict[str, torch.Tensor], law: torch.Tensor, wrong: torch.Tensor,
                bins: int) -> tuple[str, bool]:
    """G-tests of each path's draws against the law (p > 1e-4 passes) and, for Triton's draws,
    against the wrong law (the power check: p < 1e-6 passes)."""
    p = {name: g_test(d, law, bins) for name, d in draws.items()}
    power = g_test(draws["Triton"], wrong, bins)
    text = "; ".join(f"{name} p = {v:.2g}" for name, v in p.items())
    ok = all(v > 1e-4 for v in p.values()) and power < 1e-6
    return f"G-test ({draws['Triton'].numel()} draws, {bins} bins): {text}; wrong law p = " \
           f"{power:.1g}", ok


def check_samplers(report: Report) -> None:
    from benchmarks.bench_lm import sort_based
    from condprob.lm.sampling import sample_filtered

    plan = report.plan
    peak = peak_bandwidth(report.device_name)
    bins = max(4, min(64, plan.law_draws // 32))
    for b, v in plan.sampler_sizes:
        inputs: dict[str, torch.Tensor] = {}
        for name, kw in SETTINGS.items():
            def body(row: Row, kw=kw, b=b, v=v, inputs=inputs) -> None:
                if not inputs:
                    g = torch.Generator().manual_seed(1)
                    inputs["logits"] = (2 * torch.randn(b, v, generator=g)).to(plan.device)
                    inputs["tiled"] = inputs["logits"].repeat(-(-plan.law_draws // b), 1)
                logits, tiled = inputs["logits"], inputs["tiled"]
                gen = torch.Generator(device=plan.device).manual_seed(2)
                with routed(True):  # first: cold
                    row.first, row.triton = timed(
                        lambda: sample_filtered(logits, generator=gen, **kw), plan.device,
                        plan.repeat)
                with routed(False):
                    row.twin = timed(lambda: sample_filtered(logits, generator=gen, **kw),
                                     plan.device, plan.repeat)[1]
                row.sort = timed(lambda: sort_based(logits, **kw), plan.device, plan.repeat)[1]
                draws = {}
                for label, triton in (("Triton", True), ("torch", False)):
                    with routed(triton):
                        draws[label] = sample_filtered(tiled, generator=gen, **kw)
                law = exact_law(logits, **kw)
                t = kw.get("temperature", 1.0)
                wrong = exact_law(logits, **{**kw, "temperature": 1.5 * t})
                row.agreement, row.ok = law_verdict(draws, law, wrong, bins)
                gbs = logits.numel() * logits.element_size() / row.triton / 1e9
                share = "" if peak is None else f" ({gbs / peak:.1%} of peak)"
                row.throughput = f"{gbs:,.1f} GB/s of logits{share}"

            kernel = "Gumbel-max sampling" if not kw else "filtered sampling"
            report.run(Row(kernel, _sampler_size(b, v), name), body)
        inputs.clear()
        if plan.device == "cuda":
            torch.cuda.empty_cache()


def speculative_case(b: int, n: int, v: int, device: str, seed: int):
    """Target laws (b, n+1, v), draft laws (b, n, v) and drafts drawn from the draft laws."""
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(2 * torch.randn(b, n + 1, v, generator=g), -1).to(device)
    q = torch.softmax(2 * torch.randn(b, n, v, generator=g), -1).to(device)
    gd = torch.Generator(device=device).manual_seed(seed)
    drafts = torch.multinomial(q.reshape(-1, v), 1, generator=gd).reshape(b, n)
    return p, q, drafts


def check_speculative(report: Report) -> None:
    from condprob.lm.speculative import speculative_step

    plan = report.plan
    peak = peak_bandwidth(report.device_name)
    n_law = plan.law_draws // 2  # each row holds two target laws and a draft law
    bins = max(4, min(64, n_law // 32))
    n = plan.drafts
    for b, v in plan.sampler_sizes:
        def body(row: Row, b=b, v=v) -> None:
            gen = torch.Generator(device=plan.device).manual_seed(5)
            p, q, drafts = speculative_case(b, n, v, plan.device, seed=6)
            with routed(True):  # first: cold
                row.first, row.triton = timed(
                    lambda: speculative_step(p, q, drafts, generator=gen), plan.device,
                    plan.repeat)
            with routed(False):
                row.twin = timed(lambda: speculative_step(p, q, drafts, generator=gen),
                                 plan.device, plan.repeat)[1]
            gbs = (p.numel() + q.numel()) * p.element_size() / row.triton / 1e9
            share = "" if peak is None else f" ({gbs / peak:.1%} of peak)"
            row.throughput = f"{gbs:,.1f} GB/s of laws{share}"
            # the law: the B rows with one draft each, tiled; the first token follows p[:, 0]
            p, q, _ = speculative_case(b, 1, v, plan.device, seed=3)
            reps = -(-n_law // b)
            pt, qt = p.repeat(reps, 1, 1), q.repeat(reps, 1, 1)
            gd = torch.Generator(device=plan.device).manual_seed(4)
            dt = torch.multinomial(qt.reshape(-1, v), 1, generator=gd).reshape(-1, 1)
            draws = {}
            for label, triton in (("Triton", True), ("torch", False)):
                with routed(triton):
                    draws[label] = speculative_step(pt, qt, dt, generator=gen)[0][:, 0]
            row.agreement, row.ok = law_verdict(draws, p[:, 0].double(), q[:, 0].double(), bins)

        report.run(Row("speculative verification", _sampler_size(b, v), f"{n} drafts"), body)


def check_dispatch(report: Report) -> None:
    """The unrouted dispatch: Triton for CUDA float32 tensors on a GPU backend, torch otherwise."""
    from condprob import accel
    from condprob.lm import sampling

    def body(row: Row) -> None:
        x = torch.zeros(2, 3, 4)
        trans = torch.zeros(4, 4)
        cases = {"CPU float32": (x, trans, False)}
        if report.plan.device == "cuda":
            cases.update({"CUDA float32": (x.cuda(), trans.cuda(), True),
                          "CUDA float64": (x.double().cuda(), trans.double().cuda(), False)})
        seen = []
        ok = True
        for name, (u, tr, want) in cases.items():
            chain, lm = accel.chain_kernels_apply(u, tr), sampling._use_triton(u)
            ok &= chain == want and (lm == want or u.dtype == torch.float64)
            seen.append(f"{name}: chain {'Triton' if chain else 'torch'}, sampling "
                        f"{'Triton' if lm else 'torch'}")
        row.ok = ok
        row.agreement = "; ".join(seen)

    report.run(Row("dispatch", "", f"GPU backend: {accel.gpu_available()}"), body)


# Entry point ------------------------------------------------------------------------------------

SECTIONS = {"chain": check_chains, "samplers": check_samplers, "speculative": check_speculative}


def _use_interpreter() -> None:
    """Triton's interpreter for kernels defined from now on (modules already imported are
    reloaded, since Triton reads the setting when a kernel is decorated)."""
    os.environ["TRITON_INTERPRET"] = "1"
    for name in ("condprob.accel.chain_kernels", "condprob.accel.sampling"):
        if name in sys.modules:
            importlib.reload(sys.modules[name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="folder for gpu_check.md")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes on CPU under TRITON_INTERPRET=1 (proves the pipeline)")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), default=sorted(SECTIONS),
                        help="the kernels to check (default: all)")
    args = parser.parse_args(argv)
    if args.smoke:
        _use_interpreter()
        plan, name = SMOKE, "CPU (Triton interpreter, smoke sizes)"
    else:
        from condprob import accel

        if not torch.cuda.is_available() or not accel.gpu_available():
            why = ("torch sees no CUDA device" if not torch.cuda.is_available() else
                   "Triton has no GPU driver or TRITON_INTERPRET is set")
            print(f"gpu_check needs a CUDA GPU with Triton's GPU backend: {why}. "
                  "Use --smoke for the CPU interpreter run.", file=sys.stderr)
            return 2
        plan, name = FULL, torch.cuda.get_device_name()
    args.outdir.mkdir(parents=True, exist_ok=True)
    report = Report(name, plan, args.outdir / "gpu_check.md")
    check_dispatch(report)
    for key in ("samplers", "speculative", "chain"):  # the sections' order: quick ones first
        if key in args.only:
            SECTIONS[key](report)
    text = report.markdown()
    print(text)
    report.out.write_text(text)
    return 1 if report.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
