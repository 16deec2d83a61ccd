"""The one kernel protocol shared by every kind of kernel in condprob.

A `Morphism` is a Markov kernel k : dom -> D(cod). Every kind (finite `Kernel`/`State`,
`Gaussian`/`LinearGaussian`, the bffg nonlinear and SDE kernels, `tpp.NextEventKernel`,
`lm.TokenKernel` and its `SequenceKernel`, the kernel view of a CRF) offers the same calls:

| call | means |
|---|---|
| `k(x)` | the law k(x) at input x, a `pyro.distributions` distribution (usable in `pyro.sample`) |
| `k.sample(x, sample_shape=(), *, generator=None)` | draws from k(x): shape `sample_shape + batch + event` |
| `k.log_prob(x, y)` | log density (or log probability) of output y at input x |
| `k.batch_shape` | the shape of a batch of kernels held in one object (() when there is one) |
| `k.dom`, `k.cod` | the input and output `Space` |
| `f >> g`, `f @ g` | composition (first f, then g) and tensor, across kinds where the math is defined |

Input first, always; one way to seed: a `torch.Generator`, made from a seed by `rng(seed)`.
A batch of inputs (a batch of prefixes, histories or emissions) adds its leading dims to the
batch shape of the law `k(x)`.

A state s : Unit -> Y is a kernel whose one input is the point `()` of the unit space, so it is
its own law and the input is left out: `s.to_pyro()` (the law as a Pyro distribution),
`s.sample(sample_shape=(), *, generator=None)`, `s.log_prob(y)`. `sample_at` and `log_prob_at` call either form, for code (such
as `condprob.laws`) written once for every kind.

The exact operations of `condprob.conditioning` (disintegrate, invert, update, condition) are
implemented by the kinds that support them; the others raise a `TypeError` that names the kinds
that do. A kernel of any kind with finite domain and finite codomain can be tabulated into a finite
`Kernel` (`condprob.tabulate`), to which they all apply.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

import torch
from pyro.distributions import TorchDistribution, constraints

from condprob.errors import SpaceMismatchError, ValidationError
from condprob.spaces import Space, Unit

EXACT_KINDS = ("finite kernels (condprob.State/Kernel, or any finite kernel after "
               "condprob.tabulate) and Gaussian kernels (condprob.Gaussian/LinearGaussian)")

SampleShape = tuple[int, ...] | torch.Size | int
"""A sample shape: a tuple of ints (or a torch.Size, or one int n meaning (n,))."""


def as_sample_shape(sample_shape: SampleShape) -> tuple[int, ...]:
    """`sample_shape` as a tuple of nonnegative ints; `ValidationError` names what is wrong."""
    shape = (sample_shape,) if isinstance(sample_shape, int) else sample_shape
    if not isinstance(shape, tuple | torch.Size | list) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape):
        raise ValidationError(f"sample_shape must be a tuple of nonnegative ints, got {sample_shape!r}")
    return tuple(shape)


class Morphism:
    """Base class of all kernels: a Markov kernel from `dom` to distributions on `cod`.

    Subclasses implement the protocol of this module: `k(x)`, `k.sample(x, sample_shape=(), *,
    generator=None)` and `k.log_prob(x, y)` (for a state: `s.to_pyro()`, `s.sample(sample_shape=(), *,
    generator=None)`, `s.log_prob(y)`), `batch_shape` and `event_shape`.
    """

    dom: Space
    cod: Space

    @property
    def is_state(self) -> bool:
        """A state is a kernel out of the unit space."""
        return self.dom == Unit

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Shape of the batch of kernels this object holds (() for one kernel)."""
        return ()

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one draw (() for a label index or a token id, (d,) for a vector in R^d)."""
        return ()

    # Composition -------------------------------------------------------------------------
    def __rshift__(self, other: Morphism) -> Morphism:
        """`f >> g`: first f, then g (for a state, the pushforward). Where f's codomain is not
        g's domain but g knows how to read f's outputs as its inputs (a finite state over token
        prefixes into a `TokenKernel`), `g._after(f)` computes it."""
        if not isinstance(other, Morphism):
            return NotImplemented
        if self.cod != other.dom:
            composed = other._after(self)
            if composed is None:
                check_composable(self, other)
            return composed
        return self.then(other)

    def __matmul__(self, other: Morphism) -> Morphism:
        """`f @ g`: the tensor (parallel, independent) product."""
        if not isinstance(other, Morphism):
            return NotImplemented
        return self.tensor(other)

    def _after(self, first: Morphism) -> Morphism | None:
        """`first >> self` where first's codomain differs from this domain but its outcomes can
        be read as inputs of this kernel; None where they cannot (the default)."""
        return None

    def then(self, other: Morphism) -> Morphism:
        """f >> g (spaces already checked); kinds override it for the compositions they compute."""
        raise TypeError(
            f"{type(self).__name__} >> {type(other).__name__} is not computed in closed form; "
            "composition is defined between finite kernels (any finite-domain, finite-codomain "
            "kernel after condprob.tabulate), between Gaussian kernels, from a finite state over "
            "prefixes into a TokenKernel, and between SequenceKernels of one TokenKernel")

    def tensor(self, other: Morphism) -> Morphism:
        """f @ g; kinds override it for the products they compute."""
        raise TypeError(
            f"{type(self).__name__} @ {type(other).__name__} is not computed in closed form; "
            "tensor products are defined between finite kernels (tabulate others with "
            "condprob.tabulate) and between Gaussian kernels")

    def _table(self, inputs: Space, outputs: Space) -> torch.Tensor | None:
        """Probabilities (|inputs|, |outputs|) in one batch, where a kind computes them so (for
        `condprob.tabulate`); None: tabulate asks `log_prob` entry by entry."""
        return None

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


class Law(TorchDistribution):
    """The law k(x) of a kernel at an input, as a Pyro distribution, for kinds whose laws have no
    ready-made Pyro class: `sample(sample_shape)` is `k.sample(x, sample_shape)` and
    `log_prob(y)` is `k.log_prob(x, y)`. `generator` seeds every draw of this object."""

    arg_constraints: dict = {}

    def __init__(self, kernel: Morphism, x: Any, batch_shape: tuple[int, ...],
                 event_shape: tuple[int, ...], support: constraints.Constraint,
                 generator: torch.Generator | None = None):
        self.kernel, self.x, self.generator = kernel, x, generator
        self._support = support
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return self._support

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Any:
        return sample_at(self.kernel, self.x, tuple(sample_shape), generator=self.generator)

    def log_prob(self, value: Any) -> Any:
        return log_prob_at(self.kernel, self.x, value)

    def expand(self, batch_shape: torch.Size | tuple[int, ...], _instance: Any = None) -> Law:
        if tuple(batch_shape) != tuple(self.batch_shape):
            raise ValidationError(f"the law of {type(self.kernel).__name__} has batch shape "
                                  f"{tuple(self.batch_shape)}; give a batch of inputs instead of "
                                  f"expanding to {tuple(batch_shape)}")
        return self


def sample_at(k: Morphism, x: Any, sample_shape: SampleShape = (), *,
              generator: torch.Generator | None = None) -> Any:
    """`k.sample(x, sample_shape, generator=...)`, or `k.sample(sample_shape, ...)` for a state
    (whose input x is the unit point `()`)."""
    if k.is_state:
        return k.sample(sample_shape, generator=generator)
    return k.sample(x, sample_shape, generator=generator)


def log_prob_at(k: Morphism, x: Any, y: Any) -> Any:
    """`k.log_prob(x, y)`, or `k.log_prob(y)` for a state."""
    return k.log_prob(y) if k.is_state else k.log_prob(x, y)


def law_at(k: Morphism, x: Any) -> TorchDistribution:
    """`k(x)`, or `s.to_pyro()` for a state: the law at x as a Pyro distribution."""
    return k.to_pyro() if k.is_state else k(x)


def rng(seed: int | None = None,
        generator: torch.Generator | None = None) -> torch.Generator | None:
    """The one way to seed: `k.sample(x, generator=rng(seed))`. Returns `generator` if given, else
    a new CPU generator seeded with `seed` (None when neither is given: torch's global RNG)."""
    if generator is None and seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, Integral) or \
                not -2**63 <= seed < 2**64:
            raise ValidationError(f"seed must be an integer (64 bits), got {seed!r}")
        generator = torch.Generator().manual_seed(int(seed))
    return generator


def num_draws(sample_shape: tuple[int, ...]) -> int:
    """The number of draws a sample shape asks for (1 for ())."""
    return math.prod(sample_shape)


def categorical_draws(probs: torch.Tensor, sample_shape: SampleShape = (), *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices drawn from each law of `probs` (*batch, N), i ~ Cat(probs[b]): shape
    sample_shape + batch (empty when sample_shape has a zero)."""
    shape = as_sample_shape(sample_shape)
    n, batch = num_draws(shape), probs.shape[:-1]
    if n == 0:
        return torch.empty((*shape, *batch), dtype=torch.long, device=probs.device)
    draws = torch.multinomial(probs.reshape(-1, probs.shape[-1]), n, replacement=True,
                              generator=generator)  # (prod(batch), n)
    return draws.T.reshape((*shape, *batch))


def check_composable(f: Morphism, g: Morphism) -> None:
    """Raise `SpaceMismatchError` naming both spaces unless f's codomain is g's domain (and a
    `TypeError` when either is not a kernel)."""
    for k in (f, g):
        if not isinstance(k, Morphism):
            raise TypeError(f"composition needs kernels (condprob Morphisms), got "
                            f"{type(k).__name__}")
    if f.cod != g.dom:
        raise SpaceMismatchError(
            f"cannot compose {type(f).__name__} into {type(g).__name__}: codomain does not match "
            "domain",
            expected=g.dom,
            got=f.cod,
        )
