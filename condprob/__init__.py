"""condprob: conditional probability on Markov kernels.

States and kernels read like the math: `state >> kernel` pushes forward, `f >> g` composes,
`f @ g` tensors; `disintegrate`, `invert`, `update`, `jeffrey` and `condition` are exact, and
conditioning on an impossible event raises `ConditioningError`. Every kind of kernel follows one
protocol (`condprob.protocol`: `k(x)`, `k.sample(x, sample_shape, generator=rng(seed))`,
`k.log_prob(x, y)`); `tabulate` makes any kernel on finitely many inputs and outputs a finite
`Kernel`; `condprob.laws` is the law suite.
"""

import importlib
from types import ModuleType

from condprob.conditioning import Disintegration, condition, disintegrate, invert, jeffrey, update
from condprob.errors import ConditioningError, CondprobError, SpaceMismatchError, ValidationError
from condprob.finite import (
    Kernel,
    Predicate,
    State,
    copy,
    deterministic,
    discard,
    graph,
    identity,
    pair,
    projection,
    swap,
)
from condprob.gaussian import Gaussian, LinearEquation, LinearGaussian
from condprob.protocol import Morphism, rng
from condprob.spaces import (
    Euclidean,
    FiniteSpace,
    ProductSpace,
    SequenceSpace,
    Space,
    Unit,
    product,
)
from condprob.tabulation import tabulate

__version__ = "0.1.0"


def __getattr__(name: str) -> ModuleType:
    """`condprob.laws`, the law suite, imported on first use (it loads Hypothesis and scipy)."""
    if name == "laws":
        return importlib.import_module("condprob.laws")
    raise AttributeError(f"module 'condprob' has no attribute {name!r}")


__all__ = [
    "Gaussian",
    "LinearEquation",
    "LinearGaussian",
    "Kernel",
    "Predicate",
    "State",
    "copy",
    "deterministic",
    "discard",
    "graph",
    "identity",
    "pair",
    "projection",
    "swap",
    "ConditioningError",
    "CondprobError",
    "Disintegration",
    "Euclidean",
    "FiniteSpace",
    "Morphism",
    "ProductSpace",
    "SequenceSpace",
    "Space",
    "SpaceMismatchError",
    "Unit",
    "ValidationError",
    "condition",
    "disintegrate",
    "invert",
    "jeffrey",
    "laws",
    "product",
    "rng",
    "tabulate",
    "update",
]
