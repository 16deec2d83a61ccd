"""condprob: conditional probability on Markov kernels.

States and kernels read like the math: `state >> kernel` pushes forward, `f >> g` composes,
`f @ g` tensors; `disintegrate`, `invert`, `update`, `jeffrey` and `condition` are exact, and
conditioning on an impossible event raises `ConditioningError`.
"""

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
from condprob.spaces import Euclidean, FiniteSpace, ProductSpace, Space, Unit, product

__version__ = "0.1.0"

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
    "Space",
    "SpaceMismatchError",
    "Unit",
    "ValidationError",
    "condition",
    "disintegrate",
    "invert",
    "jeffrey",
    "product",
    "rng",
    "update",
]
