"""A RegCCRF tagger trained by `torchrun --standalone --nproc_per_node 2 crf_job.py OUT` (or
imported by tests/crf/test_train.py, one process): 30 float64 sentences, global batch 8."""

import sys
from pathlib import Path

import torch

import crf
from condprob.train import TensorData, fit, init_distributed

LABELS, PATTERN = crf.bio(["a", "b"])


def data() -> TensorData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 7, 3, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, 8, (30,), generator=g)
    mask = torch.arange(7) < lengths[:, None]
    tags = torch.where(x[..., 0] > 0.8, LABELS.index("B-a"), LABELS.index("O"))
    return TensorData(x, tags.masked_fill(~mask, 0), mask)


def run() -> list[torch.Tensor]:
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(3, 8, dtype=torch.float64), torch.nn.Tanh(),
                              torch.nn.Linear(8, len(LABELS), dtype=torch.float64))
    tagger = crf.Tagger(enc, crf.RegCCRF(LABELS, PATTERN).double())
    fit(tagger, crf.token_nll, data(), epochs=3, batch_size=8, lr=0.05, progress=False)
    return [p.detach().clone() for p in tagger.parameters()]


if __name__ == "__main__":
    torch.set_num_threads(1)
    rank, size = init_distributed()
    params = run()
    if rank == 0:
        torch.save(params, Path(sys.argv[1]) / f"crf_{size}.pt")
