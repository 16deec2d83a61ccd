"""Training of the neural models on the core's loop (`condprob.train.fit`): Adam on the negative
log-likelihood per event (an importance-weighted lower bound for the conditional generator),
mini-batches, early stopping on a validation set, seeds, checkpoints and exact resume, on one
process or under `torchrun`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from condprob.errors import ValidationError
from condprob.train import Dataset, Loss, fit
from tpp.data import EventBatch
from tpp.neural import ConditionalGenerator, _Neural

__all__ = ["event_objective", "train"]

SCALING_SEQUENCES = 4096


def event_objective(model: _Neural, batch: EventBatch) -> Loss:
    """Minus the log-likelihood (the ELBO for the conditional generator) summed over sequences,
    per event: Loss(-sum_b log p(x_b), number of events)."""
    ll = model.elbo(batch, model.train_particles) if isinstance(model, ConditionalGenerator) \
        else model.log_likelihood(batch)
    return Loss(-ll.sum(), batch.num_events)


def train(model: _Neural, data: EventBatch | Dataset, valid: EventBatch | Dataset | None = None,
          epochs: int = 50, lr: float = 1e-2, batch_size: int = 64, patience: int = 5,
          seed: int = 0, checkpoint_dir: str | Path | None = None, resume: bool = False,
          progress: bool = True, weight_decay: float = 0.0, **options: Any
          ) -> dict[str, list[float]]:
    """Fit `model` to `data`; returns the per-epoch training and validation losses (per event).

    The log-tau scaling is set from `data` (from its first 4096 sequences when it is a streamed
    data set). With `valid`, training stops after `patience` epochs without improvement and the
    best weights are restored (and written to `checkpoint_dir / "best.pt"`). `data` may be an
    `EventBatch` or any data set whose `data[indices]` is one (e.g. `tpp.stream.EventFiles`).
    Other `options` go to `condprob.train.fit` (metrics, on_epoch_end, max_steps, ...).
    """
    if epochs < 1 or batch_size < 1 or lr <= 0 or patience < 1:
        raise ValidationError("epochs, batch_size and patience must be >= 1 and lr > 0, got "
                              f"{epochs}, {batch_size}, {patience}, {lr}")
    model.fit_scaling(data if isinstance(data, EventBatch)
                      else data[list(range(min(len(data), SCALING_SEQUENCES)))])
    return fit(model, event_objective, data, valid=valid, epochs=epochs, batch_size=batch_size,
               optimizer=lambda p: torch.optim.Adam(p, lr=lr, weight_decay=weight_decay),
               seed=seed, clip_grad_norm=10.0, patience=patience if valid is not None else None,
               checkpoint_dir=checkpoint_dir, resume=resume, progress=progress, **options)
