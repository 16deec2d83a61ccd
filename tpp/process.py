"""The interface every point-process model of `tpp` offers."""

from __future__ import annotations

import torch
from torch import Tensor

from condprob.errors import ValidationError
from tpp.data import EventBatch
from tpp.kernel import NextEvent, NextEventKernel

__all__ = ["PointProcess"]


class PointProcess:
    """A (marked) temporal point process on windows [0, T].

    Subclasses give `log_likelihood` (the exact log density of each sequence of a batch on its
    window, survival term to T included, or an estimate where no closed form exists) and
    `next_event` (the law of (tau, mark) after each history).
    """

    num_marks: int | None = 1

    def log_likelihood(self, batch: EventBatch) -> Tensor:
        """sum_i log lambda*_{m_i}(t_i) - int_0^T sum_k lambda*_k(s) ds, per sequence (B,)."""
        raise NotImplementedError

    def next_event(self, history: EventBatch) -> NextEvent:
        """Law of the next event after each history's last event (a state of batch shape (B,))."""
        raise NotImplementedError

    def interval_compensators(self, batch: EventBatch) -> Tensor:
        """-log S*(tau_i | history before i) = int_{t_{i-1}}^{t_i} lambda*(s) ds per event (B, L).

        Under the model these are i.i.d. Exp(1) (the time-rescaling theorem)."""
        raise NotImplementedError

    def log_likelihood_parts(self, batch: EventBatch) -> tuple[Tensor, Tensor]:
        """(time part, mark part) of the log-likelihood per sequence: sum_i log p*(m_i | t_i)
        is the mark part; the rest (time densities and survival to T) is the time part."""
        if self.num_marks == 1:
            ll = self.log_likelihood(batch)
            return ll, torch.zeros_like(ll)
        raise NotImplementedError

    def mark_given_time(self, batch: EventBatch) -> Tensor:
        """argmax_k p*(m_i = k | t_i, history before i) for every event (B, L): the mark
        prediction when the next event's time is observed."""
        raise NotImplementedError

    def kernel(self) -> NextEventKernel:
        """The next-event law as a kernel history -> (tau, mark) in the core's protocol."""
        return NextEventKernel(self)

    def nll_per_event(self, batch: EventBatch) -> float:
        """Negative log-likelihood of the batch divided by its number of events."""
        if batch.num_events == 0:
            raise ValidationError("NLL per event needs at least one event")
        with torch.no_grad():
            return float(-self.log_likelihood(batch).sum()) / batch.num_events

    def check_marks(self, batch: EventBatch) -> None:
        """Raise unless the batch is an EventBatch whose marks fit this model's mark space."""
        if not isinstance(batch, EventBatch):
            raise TypeError(f"{type(self).__name__} takes event data as a tpp.EventBatch (e.g. "
                            f"EventBatch.from_sequences), got {type(batch).__name__}")
        if self.num_marks is not None:
            if batch.continuous or (batch.num_marks or 1) > self.num_marks:
                raise ValidationError(
                    f"{type(self).__name__} has {self.num_marks} categorical marks; the batch has "
                    f"{'continuous marks' if batch.continuous else f'{batch.num_marks} marks'}")
        elif not batch.continuous or batch.mark_dim != getattr(self, "mark_dim", None):
            raise ValidationError(f"{type(self).__name__} needs continuous marks of dimension "
                                  f"{getattr(self, 'mark_dim', None)}")
