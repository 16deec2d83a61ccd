"""Training at scale: throughput of the training loop on 1 and 2 processes, and peak memory of the
streaming event loader against loading everything.

Throughput: `tpp.train` of an IntensityFree model (hidden 32, 8 components, global batch 64) on
800 sequences of a two-mark Hawkes process on [0, 100] (about 50k events), and the sharded
Hawkes fit (`tpp.sharded.fit_hawkes`) on 400 sequences on [0, 4000] (about 10^6 events); each run is a fresh
`torchrun --standalone --nproc_per_node N` launch (gloo, one thread per process), the first epoch
(warm-up) excluded, the median epoch time reported. Both runs follow the same trajectory, so the
times compare like for like; on this 2-core machine shared with other work the second process
competes for the same cores.

Memory: 10^6 events (10^4 sequences, 5 marks) in 20 CSV files; each loader runs in a fresh
process and goes once over all mini-batches of 64 sequences; the figure is the peak resident set
size (ru_maxrss) of that process, and its increase over a process that only imports the library.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_train            # ~3 min on 2 cores
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_train --quick    # 10^5 events, 1 epoch
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import ROOT, Table

TRUTH = ([0.2, 0.1], [[0.3, 0.1], [0.4, 0.2]], 1.0)


def worker(epochs: int, hawkes_T: float) -> None:
    """One process of a torchrun launch: time the epochs of tpp.train and a sharded Hawkes fit."""
    import torch

    from condprob.train import init_distributed
    from tpp import Hawkes, IntensityFree, train
    from tpp.sharded import fit_hawkes, local_shard

    torch.set_num_threads(1)
    rank, size = init_distributed()
    data = Hawkes(*TRUTH).simulate(100.0, 800, seed=0)
    torch.manual_seed(0)
    model = IntensityFree(2)
    stamps = [time.perf_counter()]
    train(model, data, epochs=epochs + 1, batch_size=64, lr=1e-2, progress=False,
          on_epoch_end=lambda e, h: stamps.append(time.perf_counter()))
    epoch = statistics.median(np.diff(stamps[1:]))
    fit_hawkes(local_shard(data))                          # compile and warm up
    big = Hawkes(*TRUTH).simulate(hawkes_T, 400, seed=1)
    t0 = time.perf_counter()
    fitted = fit_hawkes(local_shard(big))
    t_fit = time.perf_counter() - t0
    if rank == 0:
        print(json.dumps({"epoch": epoch, "sequences": len(data), "events": data.num_events,
                          "fit": t_fit, "fit_events": big.num_events,
                          "mu": fitted.mu.tolist()}))


def launch(nproc: int, epochs: int, hawkes_T: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", str(Path(__file__).resolve()), "--worker",
           "--epochs", str(epochs), "--hawkes-T", str(hawkes_T)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


MEMORY = """
import json, resource, sys, time
from pathlib import Path
from condprob.train import ShardedBatches
from tpp.data import EventBatch
from tpp.stream import EventFiles
mode, parts = sys.argv[1], sorted(Path(sys.argv[2]).glob("*.csv"))
t0 = time.perf_counter()
if mode == "stream":
    data = EventFiles(parts, num_marks=5, T=100.0)
elif mode == "memory":
    seqs = [ ]
    for p in parts:
        b = EventBatch.from_csv(p, T=100.0, num_marks=5)
        seqs += [tuple(x.tolist() for x in b.sequence(i)) for i in range(len(b))]
        del b
    data = EventBatch.from_sequences([s[0] for s in seqs], [s[1] for s in seqs], 100.0, 5)
    del seqs
events = 0
if mode != "import":
    for idx, _ in ShardedBatches(len(data), 64, shuffle=True):
        events += data[idx].num_events
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_mb": peak, "events": events, "seconds": time.perf_counter() - t0}))
"""


def write_events(folder: Path, events: int, files: int = 20) -> int:
    """`events` Poisson events (rate 1 per sequence on [0, 100], 5 marks) in `files` CSV files."""
    rng = np.random.default_rng(0)
    n_seq, total = events // 100, 0
    per_file = n_seq // files
    for f in range(files):
        lines = ["seq_id,time,mark"]
        for s in range(f * per_file, (f + 1) * per_file):
            n = rng.poisson(100)
            times = np.sort(rng.uniform(0, 100, n))
            marks = rng.integers(0, 5, n)
            lines += [f"{s},{t!r},{m}" for t, m in zip(times.tolist(), marks.tolist(),
                                                       strict=True)]
            total += n
        (folder / f"part{f:02d}.csv").write_text("\n".join(lines) + "\n")
    return total


def memory(mode: str, folder: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", MEMORY, mode, str(folder)], env=env,
                         capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"memory run {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10^5 events and 1 timed epoch")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--hawkes-T", type=float, default=4000.0)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.epochs, args.hawkes_T)
        return ""
    epochs = 1 if args.quick else args.epochs
    table = Table("train: 1 and 2 processes (gloo), streaming against in-memory loading")
    hawkes_T = 400.0 if args.quick else args.hawkes_T
    runs = {n: launch(n, epochs, hawkes_T) for n in (1, 2)}
    one, two = runs[1], runs[2]
    assert np.allclose(one["mu"], two["mu"], rtol=0, atol=1e-8), (one["mu"], two["mu"])
    table.add_time("IntensityFree epoch, 2 processes", two["epoch"], "1 process", one["epoch"],
                   note=f"{one['sequences']} sequences, {one['events']} events")
    table.add_time("sharded Hawkes fit, 2 processes", two["fit"], "1 process", one["fit"],
                   note=f"400 sequences, {one['fit_events']} events; same fit to 1e-8")
    for n, run in runs.items():
        table.add_value(f"IntensityFree throughput, {n} process{'es' if n > 1 else ''}",
                        f"{run['sequences'] / run['epoch']:.0f} seq/s, "
                        f"{run['events'] / run['epoch']:.0f} events/s", "", "")
    with tempfile.TemporaryDirectory() as tmp:
        total = write_events(Path(tmp), 100_000 if args.quick else 1_000_000)
        base = memory("import", Path(tmp))
        stream, full = memory("stream", Path(tmp)), memory("memory", Path(tmp))
    assert stream["events"] == full["events"] == total
    for name, run in (("EventFiles (streamed)", stream), ("EventBatch (all loaded)", full)):
        table.add_value(f"peak RSS, {total:,} events: {name}",
                        f"{run['peak_mb']:.0f} MB (+{run['peak_mb'] - base['peak_mb']:.0f} MB "
                        f"over import), {run['seconds']:.1f} s", "", "")
    table.add_value("peak RSS increase, all loaded / streamed", "", "", "",
                    f"{(full['peak_mb'] - base['peak_mb']) / (stream['peak_mb'] - base['peak_mb']):.1f}x")
    return table.emit("train")


if __name__ == "__main__":
    main()
