"""A training job for tests/condprob/test_train.py, run as a script by 1 or 2 processes
(`torchrun --standalone --nproc_per_node 2 train_job.py ddp OUT`) or imported in the test.

A tiny float64 GRU language model on 33 sequences of random tokens: with a global batch of 8 the
last batch has one sequence, so under 2 processes one shard is empty.
"""

import os
import signal
import sys
from pathlib import Path

import torch
from torch import nn

from condprob.train import Loss, TensorData, fit, init_distributed

F64 = torch.float64


def dataset(n: int = 33) -> TensorData:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 5, (n, 7), generator=g)
    lengths = torch.randint(2, 8, (n,), generator=g)
    return TensorData(tokens, lengths)


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4, dtype=F64)
        self.gru = nn.GRU(4, 6, batch_first=True, dtype=F64)
        self.out = nn.Linear(6, 5, dtype=F64)


def objective(model: TinyLM, batch: tuple[torch.Tensor, torch.Tensor]) -> Loss:
    """Next-token cross-entropy summed over tokens; count = predicted tokens."""
    tokens, lengths = batch
    h, _ = model.gru(model.embed(tokens[:, :-1]))
    logp = model.out(h).log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    mask = torch.arange(tokens.shape[1] - 1) < (lengths[:, None] - 1)
    return Loss(-(logp * mask).sum(), mask.sum())


def fresh() -> TinyLM:
    torch.manual_seed(0)
    return TinyLM()


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def one_step_grads() -> list[torch.Tensor]:
    """Gradients of the first step (global batch of 8)."""
    model = fresh()
    fit(model, objective, dataset(), epochs=1, batch_size=8, max_steps=1, progress=False,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    return [p.grad.clone() for p in model.parameters()]


def short_run(out: Path | None = None, epochs: int = 4, resume: bool = False,
              on_epoch_end=None) -> tuple[list[torch.Tensor], dict]:
    model = fresh()
    hist = fit(model, objective, dataset(), valid=dataset(9), epochs=epochs, batch_size=8,
               lr=0.05, clip_grad_norm=1.0, seed=3, progress=False, restore_best=False,
               checkpoint_dir=out, resume=resume, on_epoch_end=on_epoch_end)
    return params(model), hist


def empty_batch_run() -> tuple[list[torch.Tensor], dict]:
    """Two epochs on data whose first global batch (of 8) has no predicted tokens: count 0."""
    tokens, lengths = dataset().tensors
    model = fresh()
    hist = fit(model, objective, TensorData(tokens, torch.where(torch.arange(33) < 8, 1, lengths)),
               epochs=2, batch_size=8, lr=0.05, shuffle=False, progress=False)
    return params(model), hist


def kill_after_epoch_1(epoch: int, history: dict) -> None:
    if epoch == 1:
        os.kill(os.getpid(), signal.SIGKILL)


def main(mode: str, out: Path) -> None:
    torch.set_num_threads(1)
    rank, size = init_distributed()
    if mode == "ddp":
        result = {"grads": one_step_grads(), "run": short_run(), "empty": empty_batch_run()}
        result["interrupted"] = short_run(out / "ck", epochs=2)
        result["resumed"] = short_run(out / "ck", epochs=4, resume=True)
        if rank == 0:
            torch.save(result, out / f"ddp_{size}.pt")
    elif mode == "kill":
        torch.save(short_run(), out / "uninterrupted.pt")
        short_run(out / "ck", on_epoch_end=kill_after_epoch_1)
    elif mode == "resume":
        torch.save(short_run(out / "ck", resume=True), out / "resumed.pt")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
