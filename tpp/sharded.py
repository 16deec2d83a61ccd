"""Hawkes maximum likelihood with the sequences sharded over processes (`torch.distributed`).

The log-likelihood of independent sequences, and so its gradient, is a sum over sequences (and,
inside each, over marks): every process evaluates `Hawkes.log_likelihood` on its own shard and an
all-reduce sums the values and gradients, so every process runs the single-process L-BFGS
trajectory of `Hawkes.fit` on the union of the shards. Launch with
`torchrun --nproc_per_node N script.py`; without a process group it is `Hawkes.fit`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from condprob.train import all_reduce_sum, init_distributed
from tpp.data import EventBatch
from tpp.hawkes import Hawkes

__all__ = ["fit_hawkes", "local_shard"]


def local_shard(batch: EventBatch) -> EventBatch:
    """This process's share of the sequences: those at positions rank, rank + W, ..."""
    rank, size = init_distributed()
    return batch[list(range(rank, len(batch), size))]


def fit_hawkes(shard: EventBatch, num_marks: int | None = None, **kwargs: Any) -> Hawkes:
    """`Hawkes.fit` on the union of every process's `shard` (the same fit on every process).

    The number of marks defaults to the largest over the shards; other arguments are those of
    `Hawkes.fit` (decays, beta, num_components, max_iter, tol).
    """
    _, size = init_distributed()
    if num_marks is None:
        marks = torch.tensor(shard.num_marks or 1)
        if size > 1:
            dist.all_reduce(marks, op=dist.ReduceOp.MAX)
        num_marks = int(marks)
    return Hawkes.fit(shard, num_marks=num_marks, reduce=all_reduce_sum, **kwargs)
