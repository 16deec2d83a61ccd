"""p(y | x) of a CRF as a torch distribution, usable in `pyro.sample`.

The event is a whole label sequence (event_shape (T,)); batch_shape is the emissions' batch.
`log_prob`, `sample` (exact; no `rsample`), `entropy`, `mode`; `enumerate_support` lists all L^T sequences (small cases),
so Pyro can enumerate a CRF site exactly.
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints

from condprob.errors import ValidationError

MAX_SUPPORT = 100_000


class CRFDistribution(TorchDistribution):
    """The distribution of label sequences of a `LinearChainCRF` (or `RegCCRF`) given emissions
    (*batch, T, L) and an optional mask."""

    arg_constraints = {"emissions": constraints.real}
    has_enumerate_support = True

    def __init__(self, model, emissions: Tensor, mask: Tensor | None = None,
                 validate_args: bool | None = None):
        model._check(emissions, mask)
        self.model, self.emissions, self.mask = model, emissions, mask
        super().__init__(emissions.shape[:-2], emissions.shape[-2:-1], validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(
            constraints.integer_interval(0, self.model.num_labels - 1), 1)

    def _expand_to(self, value: Tensor) -> tuple[Tensor, Tensor | None]:
        lead = value.shape[:-1]
        em = self.emissions.expand(*lead, *self.emissions.shape[-2:])
        mask = None if self.mask is None else self.mask.expand(*lead, self.mask.shape[-1])
        return em, mask

    def log_prob(self, value: Tensor) -> Tensor:
        """log p(y | x) for label sequences (*sample, *batch, T); labels are checked by the
        model (integers in [0, L) at unmasked positions: a sample's -1 at masked positions is
        accepted)."""
        if not isinstance(value, Tensor) or value.shape[-1:] != self.event_shape:
            raise ValidationError(f"value must be label sequences (*sample, *batch, "
                                  f"{self.event_shape[0]}), got "
                                  f"{tuple(value.shape) if isinstance(value, Tensor) else value!r}")
        em, mask = self._expand_to(value)
        return self.model.log_prob(em, value, mask)

    def sample(self, sample_shape: tuple[int, ...] | torch.Size = ()) -> Tensor:
        """Exact samples (*sample_shape, *batch, T); -1 at masked positions."""
        with torch.no_grad():
            return self.model.sample(self.emissions, tuple(sample_shape), mask=self.mask)

    def entropy(self) -> Tensor:
        return self.model.entropy(self.emissions, self.mask)

    @property
    def mode(self) -> Tensor:
        return self.model.decode(self.emissions, self.mask)[1]

    def enumerate_support(self, expand: bool = True) -> Tensor:
        """All L^T label sequences, shape (L^T, *batch, T) (or (L^T, 1.., T) unexpanded)."""
        steps, labels = self.event_shape[0], self.model.num_labels
        if self.mask is not None and not bool(self.mask.all()):
            raise ValidationError("enumerate_support needs unmasked sequences (equal lengths)")
        if labels**steps > MAX_SUPPORT:
            raise ValidationError(f"enumerate_support would list {labels}^{steps} sequences "
                                  f"(limit {MAX_SUPPORT})")
        grid = torch.cartesian_prod(*[torch.arange(labels)] * steps).reshape(-1, steps)
        grid = grid.to(self.emissions.device).reshape(-1, *[1] * len(self.batch_shape), steps)
        return grid.expand(-1, *self.batch_shape, steps) if expand else grid

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        em = self.emissions.expand(*batch_shape, *self.emissions.shape[-2:])
        mask = None if self.mask is None else self.mask.expand(*batch_shape, self.mask.shape[-1])
        return CRFDistribution(self.model, em, mask, validate_args=self._validate_args)



