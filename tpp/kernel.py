"""Next-event laws in the core's kernel protocol.

Every model's next-event distribution is a Markov kernel history -> law of (tau, mark): `tau > 0`
is the waiting time after the history's last event and `mark` the next event's mark.
`NextEventKernel` has `dom = HistorySpace(...)` and `cod = Euclidean(1, "tau") @ marks`; applying
it to a batch of histories gives a `NextEvent`, a state (a kernel out of `Unit`) with batch shape
(B,). The exact operations of `condprob.conditioning` raise the base class's `TypeError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

from condprob.errors import ValidationError
from condprob.protocol import Morphism
from condprob.spaces import Euclidean, FiniteSpace, Space, Unit

if TYPE_CHECKING:
    from tpp.data import EventBatch
    from tpp.process import PointProcess

__all__ = ["HistorySpace", "NextEvent", "NextEventDistribution", "NextEventKernel", "mark_space"]


def mark_space(num_marks: int | None, mark_dim: int | None = None) -> Space:
    """FiniteSpace(K, "mark") for categorical marks, Euclidean(d, "mark") for continuous ones."""
    if num_marks is not None:
        return FiniteSpace(num_marks, "mark")
    if mark_dim is None:
        raise ValidationError("give num_marks (categorical) or mark_dim (continuous marks)")
    return Euclidean(mark_dim, "mark")


class HistorySpace(Space):
    """Finite event histories (times in [0, inf), marks in `marks`): the domain of next-event laws."""

    def __init__(self, marks: Space):
        self.marks = marks
        self.name = "history"
        self.factors = (self,)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return isinstance(other, HistorySpace) and other.marks == self.marks

    def __hash__(self) -> int:
        return hash(("history", self.marks))

    def __repr__(self) -> str:
        return f"History[{self.marks!r}]"


class NextEvent(Morphism):
    """The law of the next event (tau, mark) after each of B histories: a state on R_+ x marks.

    `log_prob(tau, mark)` is the joint log density log f*(tau) + log p*(mark | tau) (for
    categorical marks a density in tau and a probability in the mark); `sample(shape)` returns
    (tau, mark) with leading dims `shape` and then the batch dim.
    """

    def __init__(self, marks: Space, batch_size: int,
                 log_prob_fn: Callable[[Tensor, Tensor], Tensor],
                 sample_fn: Callable[[int, torch.Generator | None], tuple[Tensor, Tensor]]):
        self.dom = Unit
        self.cod = Euclidean(1, "tau") @ marks
        self.marks = marks
        self._batch = batch_size
        self._log_prob_fn = log_prob_fn
        self._sample_fn = sample_fn

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """(B,): one law per history."""
        return (self._batch,)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """(1 + mark width,): tau and the mark, as in `NextEventDistribution`."""
        return (1 + (self.marks.dim if isinstance(self.marks, Euclidean) else 1),)

    def log_prob(self, tau: Tensor, mark: Tensor) -> Tensor:  # type: ignore[override]
        """Joint log density of (tau, mark); tau (..., B) > 0, mark (..., B) or (..., B, d)."""
        tau = torch.as_tensor(tau, dtype=torch.float64)
        if tau.shape[-1:] != (self._batch,):
            raise ValidationError(f"tau must end in the batch size {self._batch}, "
                                  f"got shape {tuple(tau.shape)}")
        if not torch.isfinite(tau).all() or (tau <= 0).any():
            raise ValidationError("waiting times tau must be finite and > 0")
        mark = torch.as_tensor(mark)
        if isinstance(self.marks, FiniteSpace):
            if mark.is_floating_point() or ((mark < 0) | (mark >= self.marks.size)).any():
                raise ValidationError(f"marks must be integers in [0, {self.marks.size})")
            mark = mark.long().expand(tau.shape)
        elif mark.shape[-1:] != (self.marks.dim,):
            raise ValidationError(f"continuous marks must end in dimension {self.marks.dim}")
        return self._log_prob_fn(tau, mark)

    def sample(self, sample_shape: tuple[int, ...] = (),  # type: ignore[override]
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draws (tau, mark) of shape sample_shape + (B,) (+ (d,) for continuous marks)."""
        n = 1
        for s in sample_shape:
            n *= s
        tau, mark = self._sample_fn(n, generator)
        return (tau.reshape(*sample_shape, self._batch),
                mark.reshape(*sample_shape, self._batch, *mark.shape[2:]))

    def to_pyro(self) -> NextEventDistribution:
        """This law as a Pyro distribution over vectors (tau, mark...) (see NextEventDistribution)."""
        return NextEventDistribution(self)

    def mean_time(self, num_samples: int = 2000, generator: torch.Generator | None = None) -> Tensor:
        """Monte Carlo estimate of E[tau] per history (models with a closed form override it)."""
        return self.sample((num_samples,), generator)[0].mean(0)


class NextEventDistribution(TorchDistribution):
    """A `NextEvent` law as a Pyro distribution: a value (..., B, 1 + w) holds tau in column 0 and
    the mark in the other w columns (w = 1 for a categorical mark, stored as a float)."""

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, law: NextEvent):
        self.law = law
        super().__init__(torch.Size(law.batch_shape), torch.Size(law.event_shape),
                         validate_args=False)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:  # noqa: B008
        tau, mark = self.law.sample(tuple(sample_shape))
        mark = mark[..., None].to(tau.dtype) if mark.ndim == tau.ndim else mark
        return torch.cat([tau[..., None], mark], -1)

    def log_prob(self, value: Tensor) -> Tensor:
        tau, mark = value[..., 0], value[..., 1:]
        if isinstance(self.law.marks, FiniteSpace):
            if (mark != mark.round()).any():
                raise ValidationError("a categorical mark must be a whole number")
            mark = mark[..., 0].long()
        return self.law.log_prob(tau, mark)


class NextEventKernel(Morphism):
    """The kernel history -> law of the next event of a point-process model."""

    def __init__(self, model: PointProcess):
        self.model = model
        marks = mark_space(model.num_marks, getattr(model, "mark_dim", None))
        self.dom = HistorySpace(marks)
        self.cod = Euclidean(1, "tau") @ marks

    def __call__(self, history: EventBatch) -> NextEvent:
        """The next-event law after each history (a state of batch shape (B,))."""
        return self.model.next_event(history)

    def sample(self, history: EventBatch, sample_shape: tuple[int, ...] = (),  # type: ignore[override]
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draws (tau, mark) of the next event after each history."""
        return self.model.next_event(history).sample(sample_shape, generator)

    def log_prob(self, history: EventBatch, tau: Tensor,  # type: ignore[override]
                 mark: Tensor) -> Tensor:
        """log density of the next event (tau, mark) after each history."""
        return self.model.next_event(history).log_prob(tau, mark)
