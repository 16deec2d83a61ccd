"""Next-event laws in the core's kernel protocol.

Every model's next-event distribution is a Markov kernel history -> law of (tau, mark): `tau > 0`
is the waiting time after the history's last event and `mark` the next event's mark.
`NextEventKernel` has `dom = SequenceSpace(marks, "history")` and `cod = Euclidean(1, "tau") @
marks`; `model.next_event(history)` gives a `NextEvent`, a state (a kernel out of `Unit`) with batch
shape (B,), and `kernel(history)` its Pyro distribution. An outcome y is the pair (tau, mark) or, as
Pyro needs one tensor, the packed vector (..., B, 1 + w) of `NextEventDistribution`; `log_prob`
accepts both. The exact operations of `condprob.conditioning` raise the base class's `TypeError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

from condprob.errors import ValidationError, check_positive_int
from condprob.protocol import Morphism, SampleShape, as_sample_shape, num_draws
from condprob.spaces import Euclidean, FiniteSpace, SequenceSpace, Space, Unit

if TYPE_CHECKING:
    from tpp.data import EventBatch
    from tpp.process import PointProcess

__all__ = ["NextEvent", "NextEventDistribution", "NextEventKernel", "history_space", "mark_space"]

NextEventValue = tuple[Tensor, Tensor] | Tensor
"""An outcome (tau, mark), or the packed vector (..., 1 + w) of `NextEventDistribution`."""


def mark_space(num_marks: int | None, mark_dim: int | None = None) -> Space:
    """FiniteSpace(K, "mark") for categorical marks, Euclidean(d, "mark") for continuous ones."""
    if num_marks is not None:
        return FiniteSpace(num_marks, "mark")
    if mark_dim is None:
        raise ValidationError("give num_marks (categorical) or mark_dim (continuous marks)")
    return Euclidean(mark_dim, "mark")


def history_space(marks: Space) -> SequenceSpace:
    """The space of finite event histories with marks in `marks`: the domain of next-event laws."""
    return SequenceSpace(marks, "history")


class NextEvent(Morphism):
    """The law of the next event (tau, mark) after each of B histories: a state on R_+ x marks.

    `log_prob((tau, mark))` is the joint log density log f*(tau) + log p*(mark | tau) (for
    categorical marks a density in tau and a probability in the mark); `sample(sample_shape)`
    returns (tau, mark) with leading dims `sample_shape` and then the batch dim.
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

    def __call__(self) -> NextEventDistribution:
        """This law as a Pyro distribution (see `NextEventDistribution`)."""
        return self.to_pyro()

    def _split(self, y: NextEventValue) -> tuple[Tensor, Tensor]:
        """(tau, mark) from a pair or from a packed vector (..., 1 + w)."""
        if isinstance(y, tuple):
            if len(y) != 2:
                raise ValidationError("a next event is a pair (tau, mark)")
            return y
        v = torch.as_tensor(y)
        if v.shape[-1:] != torch.Size(self.event_shape):
            raise ValidationError(f"a packed next event ends in dimension {self.event_shape[0]} "
                                  f"(tau, then the mark), got shape {tuple(v.shape)}")
        if isinstance(self.marks, FiniteSpace):
            if (v[..., 1] != v[..., 1].round()).any():
                raise ValidationError("a categorical mark must be a whole number")
            return v[..., 0], v[..., 1].long()
        return v[..., 0], v[..., 1:]

    def log_prob(self, y: NextEventValue) -> Tensor:
        """Joint log density of y = (tau, mark): tau (..., B) > 0, mark (..., B) or (..., B, d)
        (or the packed vector (..., B, 1 + w))."""
        tau, mark = self._split(y)
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
        elif not bool(torch.isfinite(mark).all()):
            raise ValidationError("continuous marks must be finite (no NaN or inf)")
        return self._log_prob_fn(tau, mark)

    def sample(self, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draws (tau, mark) of shape sample_shape + (B,) (+ (d,) for continuous marks)."""
        shape = as_sample_shape(sample_shape)
        if num_draws(shape) == 0:
            width = (self.marks.dim,) if isinstance(self.marks, Euclidean) else ()
            return (torch.empty(*shape, self._batch, dtype=torch.float64),
                    torch.empty(*shape, self._batch, *width,
                                dtype=torch.float64 if width else torch.long))
        tau, mark = self._sample_fn(num_draws(shape), generator)
        return (tau.reshape(*shape, self._batch),
                mark.reshape(*shape, self._batch, *mark.shape[2:]))

    def to_pyro(self) -> NextEventDistribution:
        """This law as a Pyro distribution over vectors (tau, mark...) (see NextEventDistribution)."""
        return NextEventDistribution(self)

    def mean_time(self, num_samples: int = 2000, *,
                  generator: torch.Generator | None = None) -> Tensor:
        """Monte Carlo estimate of E[tau] per history (models with a closed form override it)."""
        check_positive_int(num_samples, "num_samples")
        return self.sample((num_samples,), generator=generator)[0].mean(0)


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

    def log_prob(self, value: NextEventValue) -> Tensor:
        return self.law.log_prob(value)


class NextEventKernel(Morphism):
    """The kernel history -> law of the next event of a point-process model."""

    def __init__(self, model: PointProcess):
        self.model = model
        marks = mark_space(model.num_marks, getattr(model, "mark_dim", None))
        self.dom = history_space(marks)
        self.cod = Euclidean(1, "tau") @ marks

    def __call__(self, history: EventBatch) -> NextEventDistribution:
        """The next-event law after each history, a Pyro distribution of batch shape (B,)."""
        return self.model.next_event(history).to_pyro()

    def sample(self, history: EventBatch, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draws (tau, mark) of the next event after each history: sample_shape + (B,)."""
        return self.model.next_event(history).sample(sample_shape, generator=generator)

    def log_prob(self, history: EventBatch, y: NextEventValue) -> Tensor:
        """log density of the next event y = (tau, mark) after each history."""
        return self.model.next_event(history).log_prob(y)
