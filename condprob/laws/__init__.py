"""The law suite: Hypothesis strategies and one function per law, for our kernels and yours: the
laws of finite kernels, of Gaussian kernels, and of the kernel protocol for every kind.

Example::

    from hypothesis import given
    from condprob import laws

    @given(laws.states(space), laws.kernels(space, space))
    def test_my_kernel(prior, c):
        laws.law_inversion(prior, c)
"""

from condprob.laws.finite import *  # noqa: F403
from condprob.laws.finite import __all__ as _finite_all
from condprob.laws.gaussian import *  # noqa: F403
from condprob.laws.gaussian import __all__ as _gaussian_all
from condprob.laws.protocol import *  # noqa: F403
from condprob.laws.protocol import __all__ as _protocol_all
from condprob.laws.strategies import (
    distributions,
    finite_spaces,
    kernels,
    predicates,
    product_spaces,
    states,
)

__all__ = [*_finite_all, *_gaussian_all, *_protocol_all, "distributions", "finite_spaces",
           "kernels", "predicates", "product_spaces", "states"]
