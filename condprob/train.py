"""The one training loop for every trainable model, on one process or many (`torch.distributed`).

A model plugs in through an *objective*: `objective(model, batch) -> Loss(total, count)`, where
`total` is a **sum** over the batch's sequences (a negative log-likelihood, an ELBO, a
cross-entropy) and `count` its normaliser (sequences, events or tokens). The loss of a step is

    L = sum_r total_r / sum_r count_r        (r over the processes' shards of the global batch),

the same number one process gets on the whole global batch, so gradients, clipping and the
optimiser trajectory do not depend on the number of processes. Data is anything with `len(data)`
and `data[indices] -> batch` (`tpp.EventBatch`, `TensorData`, `Records`, the streaming file
datasets). `fit` gives progress bars, seeds, validation loss and metrics per epoch, early
stopping with the best weights restored, checkpoints and exact resume; under `torchrun` it wraps
the model in `DistributedDataParallel` and every process reads its own shard of each global
batch (`ShardedBatches`), rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import copy
import math
import os
import random
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from condprob.errors import ValidationError, check_positive_int
from condprob.protocol import rng

__all__ = ["Dataset", "FileRecords", "Loss", "Objective", "Records", "ShardedBatches", "TensorData",
           "all_reduce_sum", "evaluate", "fit", "init_distributed", "world"]


class Loss(NamedTuple):
    """A batch's loss as a sum over its sequences (`total`) and its normaliser (`count`)."""

    total: Tensor
    count: float | Tensor


class Objective(Protocol):
    """`objective(model, batch)`: the batch's `Loss` (a sum over sequences, and a count)."""

    def __call__(self, model: nn.Module, batch: Any) -> Loss: ...


class Dataset(Protocol):
    """Random access to sequences: `len(data)` and `data[indices]` (a list of ints) -> a batch."""

    def __len__(self) -> int: ...

    def __getitem__(self, indices: list[int]) -> Any: ...


class TensorData:
    """Tensors sharing their first dimension; `data[indices]` is the tuple of their rows."""

    def __init__(self, *tensors: Tensor):
        if not tensors or any(t.shape[:1] != tensors[0].shape[:1] for t in tensors):
            raise ValidationError("TensorData needs tensors with the same first dimension, got "
                                  f"shapes {[tuple(t.shape) for t in tensors]}")
        self.tensors = tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, indices: list[int]) -> tuple[Tensor, ...]:
        idx = torch.as_tensor(_check_indices(indices, len(self)), dtype=torch.long)
        return tuple(t[idx] for t in self.tensors)


def _check_indices(indices: Sequence[int] | Tensor, n: int) -> list[int]:
    """`indices` as a list of ints in [-n, n); else `ValidationError` naming the bad ones."""
    idx = torch.as_tensor(indices)
    if idx.numel() and (idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool):
        raise ValidationError(f"record indices must be integers, got dtype {idx.dtype}")
    out = idx.reshape(-1).long().tolist()
    bad = [i for i in out if not -n <= i < n]
    if bad:
        raise ValidationError(f"record indices must lie in [-{n}, {n}), got {bad[:5]}")
    return out


class Records:
    """A list of records (sentences, documents, ...) and `collate`, which makes a batch of some."""

    def __init__(self, records: Sequence[Any], collate: Callable[[list[Any]], Any]):
        self.records, self.collate = records, collate

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, indices: list[int]) -> Any:
        return self.collate([self.records[i] for i in _check_indices(indices, len(self))])


class FileRecords:
    """Records in many text files, read on demand: a data set larger than memory.

    One pass over the files indexes every record (file, byte offset, byte length: 20 bytes a
    record); `data[indices]` reads just those records and returns `collate(records)`, a record
    being the list of its lines. A record is one line (`group="line"`), a block of lines between
    blank lines (`"blank"`, e.g. CoNLL "word TAB tag" sentences) or a run of consecutive lines
    with the same key `group(line)` (e.g. the sequence-id column of a CSV file; a key must not
    come back later in the same file). With `header`, each file's first line is skipped and kept
    in `headers`. Memory: the index and one batch, whatever the size of the files.
    """

    def __init__(self, paths: Sequence[str | Path], collate: Callable[[list[list[str]]], Any],
                 group: str | Callable[[str], Any] = "line", header: bool = False):
        if isinstance(group, str) and group not in ("line", "blank"):
            raise ValidationError(f"group must be 'line', 'blank' or a key function, got {group!r}")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValidationError("FileRecords needs at least one file")
        self.collate, self.headers = collate, []
        self._file, self._start, self._size = array("i"), array("q"), array("i")
        for f, path in enumerate(self.paths):
            if not path.is_file():
                raise ValidationError(f"no such file: {path}")
            self._index(f, path, group, header)

    def _index(self, f: int, path: Path, group: str | Callable[[str], Any], header: bool) -> None:
        start, key, seen, offset = None, None, set(), 0

        def add(begin: int | None, end: int) -> None:
            if begin is not None and end > begin:
                self._file.append(f)
                self._start.append(begin)
                self._size.append(end - begin)

        try:
            with open(path, "rb") as fh:
                if header:
                    first = fh.readline()
                    self.headers.append(first.decode().rstrip("\r\n"))
                    offset = len(first)
                for raw in fh:
                    line = raw.decode().strip()
                    if group == "line":
                        if line:
                            add(offset, offset + len(raw))
                    elif group == "blank":
                        if not line:
                            add(start, offset)
                            start = None
                        elif start is None:
                            start = offset
                    elif line:
                        k = group(line)
                        if k != key:
                            if k in seen:
                                raise ValidationError(f"{path}: the rows of record {k!r} are not "
                                                      "contiguous (sort the file by its key)")
                            add(start, offset)
                            start, key = offset, k
                            seen.add(k)
                    offset += len(raw)
                add(start, offset)
        except UnicodeDecodeError as err:
            raise ValidationError(f"{path}: not UTF-8 text ({err.reason} at byte "
                                  f"{err.start} of a line)") from None

    def __len__(self) -> int:
        return len(self._start)

    def __getitem__(self, indices: list[int]) -> Any:
        indices = [i % len(self) for i in _check_indices(indices, len(self))]
        records: list[list[str]] = [[] for _ in indices]
        by_place = sorted(range(len(indices)), key=lambda i: (self._file[indices[i]],
                                                              self._start[indices[i]]))
        handle, current = None, -1
        try:
            for i in by_place:
                j = indices[i]
                if self._file[j] != current:
                    if handle is not None:
                        handle.close()
                    current = self._file[j]
                    handle = open(self.paths[current], "rb")
                handle.seek(self._start[j])
                text = handle.read(self._size[j]).decode()
                records[i] = [line for line in text.splitlines() if line.strip()]
        finally:
            if handle is not None:
                handle.close()
        return self.collate(records)


# Processes ------------------------------------------------------------------------------------
def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """(rank, world size); joins the process group `torchrun` describes (environment variables
    RANK, WORLD_SIZE, MASTER_ADDR, ...) if there is one and it is not joined yet. The backend
    defaults to NCCL when CUDA is there and gloo otherwise."""
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE",
                                                                                "1")) > 1:
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return world()


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(x: Tensor) -> Tensor:
    """The sum of `x` over all processes (x itself on one process); `x` is not modified."""
    if world()[1] == 1:
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y


class ShardedBatches:
    """Global batches of a permutation of range(n), each split between the processes.

    The permutation of an epoch depends only on (seed, epoch), as in `DistributedSampler`, but a
    global batch of `batch_size` indices is dealt out (rank r takes positions r, r + W, ...)
    without padding: the union of the shards is exactly the batch one process would take, so the
    summed loss is the same. A shard of a short last batch can be empty (see `fit`).
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if n < 1:
            raise ValidationError("the data set is empty")
        if batch_size < 1:
            raise ValidationError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of this epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[list[int], int]]:
        """(this process's indices, the first index of the global batch) per global batch."""
        if self.shuffle:
            order = torch.randperm(self.n, generator=rng(self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.n))
        for start in range(0, self.n, self.batch_size):
            block = order[start:start + self.batch_size]
            yield block[self.rank::self.world_size], block[0]


# The loop -------------------------------------------------------------------------------------
class _LossModule(nn.Module):
    """The model with its objective as `forward`, so that DistributedDataParallel can wrap it."""

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, batch: Any) -> Loss:
        return self.objective(self.model, batch)


@dataclass
class _State:
    epoch: int = 0
    step: int = 0
    best: float = math.inf
    best_state: dict | None = None
    stale: int = 0
    done: bool = False
    history: dict[str, list[float]] | None = None


def _to_device(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return batch
    if isinstance(batch, Tensor) or hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(obj: Any, path: Path) -> None:
    """Write through a temporary file, so that a run killed while writing leaves the old one."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _shard_sums(model: nn.Module | _LossModule, objective: Objective | None, data: Dataset,
                indices: list[int], fallback: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(total, count) of this process's shard; an empty shard evaluates one sequence of the
    global batch with weight zero, so every process takes part in the gradient reduction."""
    batch = _to_device(data[indices or [fallback]], device)
    out = model(batch) if objective is None else objective(model, batch)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Tensor)
            and out[0].ndim == 0):
        raise ValidationError("the objective must return Loss(total, count) with total a "
                              f"scalar tensor (a sum over the batch), got {out!r:.200}")
    total, count = out
    count = torch.as_tensor(count, dtype=torch.float64, device=total.device)
    if not indices:
        total, count = total * 0, count * 0
    return total, count


def fit(model: nn.Module, objective: Objective, data: Dataset, *, valid: Dataset | None = None,
        epochs: int = 10, batch_size: int = 32, lr: float = 1e-3,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
        seed: int = 0, shuffle: bool = True, clip_grad_norm: float | None = None,
        max_steps: int | None = None, patience: int | None = None, min_delta: float = 1e-6,
        metrics: Callable[[nn.Module], Mapping[str, float]] | None = None,
        monitor: str = "valid", mode: str = "min", restore_best: bool = True,
        checkpoint_dir: str | Path | None = None, resume: bool = False,
        on_epoch_end: Callable[[int, dict[str, list[float]]], None] | None = None,
        on_step_end: Callable[[int, float], None] | None = None,
        progress: bool = True, desc: str | None = None, valid_batch_size: int | None = None,
        find_unused_parameters: bool = False) -> dict[str, list[float]]:
    """Minimise sum(total) / sum(count) of `objective` over mini-batches of `data`.

    Each step takes a global batch of `batch_size` sequences (split between the processes under
    `torchrun`), computes L = sum total / sum count and takes an optimiser step (default
    Adam(lr)) after optional gradient-norm clipping. A global batch whose count is 0 (e.g.
    sequences without events) takes no step and does not count towards `max_steps` (every
    process runs a zero-weight backward, so the gradient reductions stay matched); its total
    still enters the epoch's training loss, sum total / sum count over the epoch. After each epoch: the validation loss on
    `valid` (the same ratio, no gradients), `metrics(model)`, early stopping after `patience`
    epochs without an improvement of `monitor` by `min_delta`, and with `checkpoint_dir`
    the files `last.pt` (everything needed to resume: weights, optimiser, epoch, history, random
    states of every process) and `best.pt` (the best weights), written by rank 0. With `resume`,
    a run continues from `last.pt` (or starts afresh when there is none; every process must see
    the directory) and ends with exactly the parameters of an uninterrupted run (bit for bit on
    CPU), with as many processes as wrote it. `max_steps` stops after that many optimiser steps. `on_epoch_end(epoch, history)` and
    `on_step_end(step, loss)` are called on every process. Returns the history: per epoch
    "train" (and "valid", and each metric).

    The torch, Python and NumPy random generators are seeded with seed + rank; the order of the
    data depends on (seed, epoch) only.
    """
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise ValidationError(f"lr must be > 0, got {lr}")
    if patience is not None and patience < 1:
        raise ValidationError(f"patience must be >= 1, got {patience}")
    if max_steps is not None and max_steps < 1:
        raise ValidationError(f"max_steps must be >= 1, got {max_steps}")
    if mode not in ("min", "max"):
        raise ValidationError(f"mode must be 'min' or 'max', got {mode!r}")
    rng(seed)  # the core's seed check, before any work
    if monitor != "valid" and metrics is None:
        raise ValidationError(f"monitor={monitor!r} needs `metrics` that report it")
    if monitor == "valid" and valid is None and patience is not None:
        raise ValidationError("early stopping on the validation loss needs `valid` data")
    if resume and checkpoint_dir is None:
        raise ValidationError("resume needs the checkpoint_dir of the interrupted run")
    rank, size = init_distributed()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValidationError("the model has no trainable parameters")
    device = params[0].device
    sampler = ShardedBatches(len(data), batch_size, shuffle, seed, rank, size)
    opt = (optimizer or (lambda p: torch.optim.Adam(p, lr=lr)))(params)
    step_module: nn.Module = _LossModule(model, objective)
    if size > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters)
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckdir is not None and rank == 0:
        ckdir.mkdir(parents=True, exist_ok=True)
    state = _State(history={"train": []})
    if resume and (ckdir / "last.pt").exists():
        saved = torch.load(ckdir / "last.pt", weights_only=False, map_location="cpu")
        if saved["world_size"] != size:
            raise ValidationError(f"the checkpoint was written by {saved['world_size']} "
                                  f"process(es); resume it with as many, not {size}")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        _set_rng_state(saved["rng"][rank])
    else:
        torch.manual_seed(seed + rank)
        random.seed(seed + rank)
        np.random.seed(seed + rank)
    sign = 1.0 if mode == "min" else -1.0
    bar = tqdm(range(state.epoch, epochs), desc=desc or type(model).__name__,
               disable=not progress or rank != 0, leave=False)
    for epoch in bar:
        if state.done or (max_steps is not None and state.step >= max_steps):
            break
        model.train()
        sampler.set_epoch(epoch)
        total_loss, total_count = 0.0, 0.0
        for indices, first in sampler:
            total, count = _shard_sums(step_module, None, data, indices, first, device)
            sums = all_reduce_sum(torch.stack([total.detach().to(torch.float64), count]))
            if not torch.isfinite(sums[0]):
                raise ValidationError(f"non-finite training loss {sums[0].item()} at step "
                                      f"{state.step}; lower the learning rate")
            if sums[1] < 0:
                raise ValidationError(f"the objective's count of a batch must be >= 0, got "
                                      f"{sums[1].item()}")
            total_loss += float(sums[0])
            total_count += float(sums[1])
            opt.zero_grad()
            if sums[1] == 0:  # nothing to normalise by: a zero-weight backward, no step
                (total * 0).backward()
                continue
            (total * (size / sums[1].to(total.dtype))).backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, clip_grad_norm)
            opt.step()
            state.step += 1
            if on_step_end is not None:
                on_step_end(state.step, float(sums[0] / sums[1]))
            if max_steps is not None and state.step >= max_steps:
                break
        if total_count == 0:
            raise ValidationError(f"the objective's count is 0 in every batch of epoch {epoch} "
                                  "(e.g. no events at all): there is nothing to train on")
        history = state.history
        history["train"].append(total_loss / total_count)
        model.eval()
        if valid is not None:
            history.setdefault("valid", []).append(evaluate(model, objective, valid,
                                                            valid_batch_size or batch_size))
        if metrics is not None:
            for name, value in metrics(model).items():
                history.setdefault(name, []).append(float(value))
        bar.set_postfix({k: f"{v[-1]:.4f}" for k, v in history.items()})
        state.epoch = epoch + 1
        if monitor != "valid" and monitor not in history:
            raise ValidationError(f"monitor={monitor!r} is not among the metrics reported: "
                                  f"{sorted(history)}")
        if monitor in history:
            value = sign * history[monitor][-1]
            if value < state.best - min_delta:
                state.best, state.stale = value, 0
                state.best_state = copy.deepcopy(model.state_dict())
                if ckdir is not None and rank == 0:
                    _save(state.best_state, ckdir / "best.pt")
            else:
                state.stale += 1
                state.done = patience is not None and state.stale >= patience
        if ckdir is not None:
            rngs: list[Any] = [_rng_state()]
            if size > 1:
                rngs = [None] * size
                dist.all_gather_object(rngs, _rng_state())
            if rank == 0:
                _save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                       "state": state, "rng": rngs, "world_size": size}, ckdir / "last.pt")
            if size > 1:
                dist.barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
        if state.done:
            break
    if restore_best and state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    return state.history


def evaluate(model: nn.Module, objective: Objective, data: Dataset, batch_size: int = 256
             ) -> float:
    """sum(total) / sum(count) of `objective` over all of `data`, without gradients (summed
    over the processes' shards under `torch.distributed`)."""
    rank, size = world()
    device = next(model.parameters()).device
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    with torch.no_grad():
        for indices, first in ShardedBatches(len(data), batch_size, False, 0, rank, size):
            total, count = _shard_sums(model, objective, data, indices, first, device)
            sums += torch.stack([total.to(torch.float64), count])
    sums = all_reduce_sum(sums)
    if not sums[1] > 0:
        raise ValidationError(f"the objective's count over the evaluated data must be > 0, got "
                              f"{sums[1].item()}")
    return float(sums[0] / sums[1])
