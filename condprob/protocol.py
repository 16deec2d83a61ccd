"""The one kernel protocol shared by every kind of kernel in condprob.

A `Morphism` is a Markov kernel dom -> D(cod). States are morphisms out of `Unit`. Every kind
(finite, Gaussian, learned next-event or next-token laws) offers `dom`, `cod`, `>>` (first self,
then other), `@` (tensor), `sample` and `log_prob`. The exact operations of `condprob.conditioning`
(disintegrate, invert, update, condition) are implemented by the kinds that support them; the others
raise `TypeError` saying which kinds do.
"""

from __future__ import annotations

from typing import Any

import torch

from condprob.errors import SpaceMismatchError
from condprob.spaces import Space, Unit

EXACT_KINDS = "finite kernels (condprob.State/Kernel) and Gaussian kernels (condprob.Gaussian)"


class Morphism:
    """Base class of all kernels: a Markov kernel from `dom` to distributions on `cod`."""

    dom: Space
    cod: Space

    @property
    def is_state(self) -> bool:
        """A state is a kernel out of the unit space."""
        return self.dom == Unit

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return ()

    # Composition -------------------------------------------------------------------------
    def __rshift__(self, other: Morphism) -> Morphism:
        """`f >> g`: first f, then g (for a state, the pushforward)."""
        if not isinstance(other, Morphism):
            return NotImplemented
        check_composable(self, other)
        return self.then(other)

    def __matmul__(self, other: Morphism) -> Morphism:
        """`f @ g`: the tensor (parallel, independent) product."""
        if not isinstance(other, Morphism):
            return NotImplemented
        return self.tensor(other)

    def then(self, other: Morphism) -> Morphism:
        raise TypeError(f"{type(self).__name__} cannot be composed with {type(other).__name__}")

    def tensor(self, other: Morphism) -> Morphism:
        raise TypeError(f"{type(self).__name__} has no tensor with {type(other).__name__}")

    # Sampling and densities --------------------------------------------------------------
    def sample(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def log_prob(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    # Exact operations (see condprob.conditioning) -----------------------------------------
    def _unsupported(self, op: str) -> TypeError:
        return TypeError(f"{op} is not available for {type(self).__name__}; it is for {EXACT_KINDS}")

    def _disintegrate(self, along: Any) -> Any:
        raise self._unsupported("disintegration")

    def _invert(self, prior: Morphism) -> Morphism:
        raise self._unsupported("Bayesian inversion")

    def _update(self, evidence: Any) -> Morphism:
        raise self._unsupported("a Pearl update")

    def _condition(self, event: Any) -> Morphism:
        raise self._unsupported("exact conditioning")


def rng(seed: int | None = None,
        generator: torch.Generator | None = None) -> torch.Generator | None:
    """The generator a seeded `sample` draws from: the one given, else a new one from `seed`."""
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(seed)
    return generator


def check_composable(f: Morphism, g: Morphism) -> None:
    """Raise `SpaceMismatchError` naming both spaces unless f's codomain is g's domain."""
    if f.cod != g.dom:
        raise SpaceMismatchError(
            f"cannot compose {type(f).__name__} into {type(g).__name__}: codomain does not match "
            "domain",
            expected=g.dom,
            got=f.cod,
        )
