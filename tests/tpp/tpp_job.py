"""Distributed jobs for tests/tpp/test_sharded.py, run by `torchrun --standalone --nproc_per_node
2 tpp_job.py OUT` or imported in the test (one process): a sharded Hawkes fit and a short
IntensityFree run, each process holding its shard of the sequences."""

import sys
from pathlib import Path

import torch

from condprob.train import init_distributed
from tpp.hawkes import Hawkes
from tpp.neural import IntensityFree
from tpp.sharded import fit_hawkes, local_shard
from tpp.train import train

TRUTH = Hawkes([0.3, 0.2], [[0.3, 0.1], [0.2, 0.2]], 1.5)


def data():
    return TRUTH.simulate(60.0, 25, seed=1)


def hawkes_fit(decays: str = "shared") -> Hawkes:
    return fit_hawkes(local_shard(data()), decays=decays)


def neural_run() -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = IntensityFree(2, hidden=6, components=2)
    tr, va = data().split((0.8, 0.2), seed=0)
    train(model, tr, va, epochs=3, lr=1e-2, batch_size=8, seed=2, progress=False)
    return [p.detach().clone() for p in model.parameters()]


if __name__ == "__main__":
    torch.set_num_threads(1)
    rank, size = init_distributed()
    result = {decays: (lambda h: (h.mu, h.alpha, h.beta))(hawkes_fit(decays))
              for decays in ("shared", "pair")}
    result["neural"] = neural_run()
    if rank == 0:
        torch.save(result, Path(sys.argv[1]) / f"tpp_{size}.pt")
