"""Training loop for the neural models: Adam on the negative log-likelihood per event (an
importance-weighted lower bound for the conditional generator), mini-batches, a progress bar, early stopping on a validation set,
seeds and checkpoints."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from tqdm.auto import tqdm

from condprob.errors import ValidationError
from tpp.data import EventBatch
from tpp.neural import ConditionalGenerator, _Neural

__all__ = ["train"]


def _objective(model: _Neural, batch: EventBatch) -> torch.Tensor:
    ll = model.elbo(batch, model.train_particles) if isinstance(model, ConditionalGenerator) \
        else model.log_likelihood(batch)
    return -ll.sum() / max(batch.num_events, 1)


def train(model: _Neural, data: EventBatch, valid: EventBatch | None = None, epochs: int = 50,
          lr: float = 1e-2, batch_size: int = 64, patience: int = 5, seed: int = 0,
          checkpoint: str | Path | None = None, progress: bool = True,
          weight_decay: float = 0.0) -> dict[str, list[float]]:
    """Fit `model` to `data`; returns the per-epoch training and validation losses (per event).

    The log-tau scaling is set from `data`. With `valid`, training stops after `patience` epochs
    without improvement and the best weights are restored (and written to `checkpoint`).
    """
    if epochs < 1 or batch_size < 1 or lr <= 0 or patience < 1:
        raise ValidationError("epochs, batch_size and patience must be >= 1 and lr > 0, got "
                              f"{epochs}, {batch_size}, {patience}, {lr}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.fit_scaling(data)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: dict[str, list[float]] = {"train": [], "valid": []}
    best, best_state, stale = math.inf, None, 0
    bar = tqdm(range(epochs), desc=type(model).__name__, disable=not progress, leave=False)
    for _ in bar:
        model.train()
        total, count = 0.0, 0
        for mb in data.batches(batch_size, shuffle=True, generator=gen):
            opt.zero_grad()
            loss = _objective(model, mb)
            if not torch.isfinite(loss):
                raise ValidationError(f"non-finite training loss {loss.item()}; lower the "
                                      "learning rate")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            total += loss.item() * mb.num_events
            count += mb.num_events
        history["train"].append(total / max(count, 1))
        if valid is None:
            bar.set_postfix(train=f"{history['train'][-1]:.4f}")
            continue
        model.eval()
        with torch.no_grad():
            v = float(_objective(model, valid))
        history["valid"].append(v)
        bar.set_postfix(train=f"{history['train'][-1]:.4f}", valid=f"{v:.4f}")
        if v < best - 1e-6:
            best, best_state, stale = v, copy.deepcopy(model.state_dict()), 0
            if checkpoint is not None:
                torch.save(best_state, checkpoint)
        else:
            stale += 1
            if stale >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
