"""Backward Filtering Forward Guiding (van der Meulen & Schauer) on condprob's kernels.

Models are networkx trees of kernels (`Model`), or DAGs whose nodes have several parents and
roots (`Model.add_node`; exact on sets of nodes, `condprob.bffg.dag`); `backward_filter` pulls
observations back as h-transforms (`FiniteMessage`, `GaussianMessage` (c, F, H), `PointMessage`),
`forward_guide` draws weighted guided samples (`WeightedSamples`), `posterior_marginals` gives
exact smoothing marginals for finite and linear-Gaussian models. Diffusions: `SDEKernel`, `LinearSDE`, `backward_ode`,
`guided_path`; MCMC: `condprob.bffg.mcmc` (`pcn`, `mh_parameters`); chains: `condprob.bffg.special`.
"""

from condprob.bffg.dag import DagFiltered
from condprob.bffg.inference import (
    Filtered,
    WeightedSamples,
    backward_filter,
    forward_guide,
    posterior_marginals,
)
from condprob.bffg.kernels import NonlinearGaussian
from condprob.bffg.messages import FiniteMessage, GaussianMessage, PointMessage
from condprob.bffg.model import Model
from condprob.bffg.sde import Guide, LinearSDE, SDEKernel, backward_ode, guided_path, time_grid

__all__ = [
    "DagFiltered",
    "FiniteMessage",
    "Filtered",
    "GaussianMessage",
    "Guide",
    "LinearSDE",
    "Model",
    "NonlinearGaussian",
    "PointMessage",
    "SDEKernel",
    "WeightedSamples",
    "backward_filter",
    "backward_ode",
    "forward_guide",
    "guided_path",
    "posterior_marginals",
    "time_grid",
]
