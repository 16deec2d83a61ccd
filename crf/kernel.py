"""The kernel view of a CRF: emissions -> law of label sequences, in the core's protocol.

`model.kernel()` is a `CRFKernel` with `dom = SequenceSpace(Euclidean(L, "score"), "emissions")`
and `cod = SequenceSpace(labels, "labels")`. An input x is an emissions tensor (*batch, T, L) or a
pair (emissions, mask); `kernel(x)` is the `CRFDistribution`, usable in `pyro.sample`, and
`kernel.sample(x, sample_shape=(), *, generator=None)` / `kernel.log_prob(x, tags)` are exact. The
exact operations of `condprob.conditioning` raise the protocol's `TypeError` (tabulate the kernel on
finitely many inputs with `condprob.tabulate` to use them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from condprob.errors import ValidationError
from condprob.protocol import Morphism, SampleShape
from condprob.spaces import Euclidean, FiniteSpace, SequenceSpace
from crf.distribution import CRFDistribution

if TYPE_CHECKING:
    from crf.linear_chain import LinearChainCRF

__all__ = ["CRFKernel", "Emissions"]

Emissions = Tensor | tuple[Tensor, Tensor | None]
"""An input of the kernel: emissions (*batch, T, L), or a pair (emissions, mask)."""


class CRFKernel(Morphism):
    """The kernel emissions -> p(label sequence | emissions) of a `LinearChainCRF` or `RegCCRF`."""

    def __init__(self, model: LinearChainCRF):
        self.model = model
        self.dom = SequenceSpace(Euclidean(model.num_labels, "score"), "emissions")
        self.cod = SequenceSpace(FiniteSpace(model.labels, "label"), "labels")

    def __repr__(self) -> str:
        return f"CRFKernel({type(self.model).__name__}: {self.dom} -> {self.cod})"

    @staticmethod
    def _split(x: Emissions) -> tuple[Tensor, Tensor | None]:
        if isinstance(x, tuple):
            if len(x) != 2:
                raise ValidationError("a CRF input is emissions or a pair (emissions, mask)")
            return x
        return x, None

    def __call__(self, x: Emissions) -> CRFDistribution:
        """p(y | emissions) as a Pyro distribution: batch (*batch,), event (T,); its inputs are
        checked by the model (ValidationError), not by torch's argument validation."""
        emissions, mask = self._split(x)
        return CRFDistribution(self.model, emissions, mask, validate_args=False)

    def sample(self, x: Emissions, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> Tensor:
        """Exact label sequences, shape sample_shape + (*batch, T), -1 at masked positions."""
        emissions, mask = self._split(x)
        with torch.no_grad():
            return self.model.sample(emissions, sample_shape, mask=mask, generator=generator)

    def log_prob(self, x: Emissions, y: Tensor) -> Tensor:
        """log p(y | emissions) for label sequences y (..., *batch, T); -inf outside the
        model's language."""
        return self(x).log_prob(y)
