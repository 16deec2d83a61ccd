"""Evaluation of point-process models: likelihoods, next-event predictions, goodness of fit."""

from __future__ import annotations

from typing import NamedTuple

import scipy.stats
import torch
from torch import Tensor

from condprob.errors import ValidationError
from tpp.data import EventBatch
from tpp.process import PointProcess

__all__ = ["KSResult", "NLL", "crps", "mae", "mark_accuracy", "micro_f1", "nll_per_event",
           "rmse", "time_rescaling_ks", "weighted_f1"]


class NLL(NamedTuple):
    """Negative log-likelihood per event: total = time + mark."""

    total: float
    time: float
    mark: float


def nll_per_event(model: PointProcess, batch: EventBatch) -> NLL:
    """-log L / (number of events), split into the time part and the mark part."""
    if batch.num_events == 0:
        raise ValidationError("NLL per event needs at least one event")
    with torch.no_grad():
        t, m = model.log_likelihood_parts(batch)
    n = batch.num_events
    return NLL(float(-(t + m).sum()) / n, float(-t.sum()) / n, float(-m.sum()) / n)


def _real(pred: Tensor, batch: EventBatch, what: str) -> tuple[Tensor, Tensor]:
    if pred.shape != batch.times.shape:
        raise ValidationError(f"{what} must have the batch's shape {tuple(batch.times.shape)}, "
                              f"got {tuple(pred.shape)}")
    if batch.num_events == 0:
        raise ValidationError(f"{what}: the batch has no events")
    return pred[batch.mask], batch.mask


def rmse(pred_times: Tensor, batch: EventBatch) -> float:
    """Root mean squared error of predicted inter-event times (pred_times: (B, L) taus)."""
    p, mask = _real(pred_times, batch, "predicted times")
    return float(((p - batch.inter_times[mask]) ** 2).mean().sqrt())


def mae(pred_times: Tensor, batch: EventBatch) -> float:
    """Mean absolute error of predicted inter-event times."""
    p, mask = _real(pred_times, batch, "predicted times")
    return float((p - batch.inter_times[mask]).abs().mean())


def mark_accuracy(pred_marks: Tensor, batch: EventBatch) -> float:
    """Fraction of events whose mark is predicted correctly."""
    p, mask = _real(pred_marks, batch, "predicted marks")
    return float((p == batch.marks[mask]).double().mean())


def _f1_per_class(pred: Tensor, true: Tensor, K: int) -> tuple[Tensor, Tensor, Tensor]:
    tp = torch.bincount(true[pred == true], minlength=K).double()
    fp = torch.bincount(pred[pred != true], minlength=K).double()
    fn = torch.bincount(true[pred != true], minlength=K).double()
    return tp, fp, fn


def micro_f1(pred_marks: Tensor, batch: EventBatch) -> float:
    """Micro-averaged F1 (for single-label predictions it equals the accuracy)."""
    p, mask = _real(pred_marks, batch, "predicted marks")
    tp, fp, fn = _f1_per_class(p, batch.marks[mask], batch.num_marks or 1)
    return float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()))


def weighted_f1(pred_marks: Tensor, batch: EventBatch) -> float:
    """Per-class F1 averaged with weights proportional to class support (0 for empty classes)."""
    p, mask = _real(pred_marks, batch, "predicted marks")
    true = batch.marks[mask]
    tp, fp, fn = _f1_per_class(p, true, batch.num_marks or 1)
    denom = 2 * tp + fp + fn
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1), 0.0)
    support = tp + fn
    return float((f1 * support).sum() / support.sum())


def crps(samples: Tensor, y: Tensor) -> Tensor:
    """CRPS = E|X - y| - E|X - X'| / 2 from samples (S, ...) of X, per observation y (...)."""
    if samples.shape[1:] != y.shape or samples.shape[0] < 2:
        raise ValidationError(f"samples must have shape (S >= 2, *{tuple(y.shape)}), "
                              f"got {tuple(samples.shape)}")
    x, _ = samples.sort(0)
    S = x.shape[0]
    # E|X - X'| from sorted samples: 2 / S^2 sum_i (2 i - S - 1) x_(i)
    i = torch.arange(1, S + 1, dtype=x.dtype).view(-1, *[1] * y.ndim)
    spread = 2 * ((2 * i - S - 1) * x).sum(0) / S**2
    return (x - y).abs().mean(0) - spread / 2


class KSResult(NamedTuple):
    """Kolmogorov-Smirnov statistic and p-value."""

    statistic: float
    pvalue: float


def time_rescaling_ks(model: PointProcess, batch: EventBatch) -> KSResult:
    """KS test of the rescaled gaps int_{t_{i-1}}^{t_i} lambda* against Exp(1) (scipy's kstest)."""
    with torch.no_grad():
        z = model.interval_compensators(batch)[batch.mask]
    if z.numel() == 0:
        raise ValidationError("the time-rescaling test needs at least one event")
    res = scipy.stats.kstest(z.numpy(), "expon")
    return KSResult(float(res.statistic), float(res.pvalue))
