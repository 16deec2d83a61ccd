"""A modelling language with exact conditioning (Stein & Staton's Gaussian language, plus discrete
choices solved by enumeration).

Example::

    from condprob.dsl import Model, normal, condition

    with Model() as m:
        x, y = normal(), normal()
        condition(x == y)
        post = m.posterior(x=x, y=y)       # covariance [[.5, .5], [.5, .5]]

Programs with discrete choices are functions solved by `infer(program)`.
"""

from condprob.dsl.model import (
    Model,
    bernoulli,
    categorical,
    condition,
    infer,
    mvnormal,
    normal,
)
from condprob.dsl.posterior import Mixture
from condprob.dsl.variables import Condition, Gauss, NonAffineError, cat, stack

__all__ = [
    "Condition",
    "Gauss",
    "Mixture",
    "Model",
    "NonAffineError",
    "bernoulli",
    "cat",
    "categorical",
    "condition",
    "infer",
    "mvnormal",
    "normal",
    "stack",
]
