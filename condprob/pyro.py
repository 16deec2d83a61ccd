"""Pyro interop: exact inference for Pyro models in the Gaussian/discrete fragment.

`exact(model)(*args, **kwargs)` runs an ordinary Pyro model under a messenger that records each
sample site as a `condprob.dsl` variable: Normal and MultivariateNormal sites become Gaussian
variables (their locations may be affine in earlier Gaussian sites), Bernoulli and Categorical
sites are enumerated, `obs=` values become exact conditions (continuous) or likelihood factors
(discrete), and `pyro.plate` broadcasts as usual. The result is the exact posterior over the latent
sites (see `condprob.dsl.infer`): a finite `State` whose labels are the tuples of discrete latent
values (in site order; a single value for one site), a `Gaussian` whose factors are named after
the Gaussian latent sites, or a `Mixture` of both. A site outside the fragment raises TypeError
naming the site and the reason.

Finite kernels convert to and from Pyro's Categorical with `State.from_pyro` / `State.to_pyro`,
and Gaussian states to MultivariateNormal with `Gaussian.to_pyro`; they are re-exported here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample

from condprob.dsl.model import Model, _current, infer
from condprob.dsl.posterior import Mixture
from condprob.dsl.variables import Gauss, NonAffineError
from condprob.finite import State
from condprob.gaussian import Gaussian

__all__ = ["Gaussian", "State", "exact", "from_pyro", "to_pyro"]

FRAGMENT = "Normal, MultivariateNormal, Bernoulli and Categorical"


class _ExactMessenger(Messenger):
    """Records every sample site of a model run as a DSL variable of the active `Model`."""

    def __init__(self) -> None:
        super().__init__()
        self.latents: dict[str, Any] = {}

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        name = msg["name"]
        if isinstance(msg["fn"], _Subsample):
            return
        try:
            value = self._site(name, msg["fn"], msg["value"] if msg["is_observed"] else None)
        except NonAffineError as err:
            raise TypeError(f"site {name!r}: {err}") from None
        if not msg["is_observed"]:
            self.latents[name] = value
        msg["value"] = value
        msg["done"] = True
        msg["stop"] = True

    def _site(self, name: str, fn: Any, obs: torch.Tensor | None) -> Any:
        run: Model = _current()
        base = fn
        while isinstance(base, dist.Independent):
            base = base.base_dist
        if isinstance(base, dist.Normal):
            x = run.normal(base.loc, base.scale, name=name)
        elif isinstance(base, dist.MultivariateNormal):
            if base.batch_shape:
                raise TypeError(f"site {name!r}: batched MultivariateNormal is outside the exact "
                                "fragment; use a plate of Normals or one MultivariateNormal")
            x = run.mvnormal(base.loc, base.covariance_matrix, name=name)
        elif isinstance(base, dist.Bernoulli | dist.Categorical):
            return self._discrete(run, name, base, obs)
        else:
            raise TypeError(f"site {name!r}: {type(base).__name__} is outside the exact fragment "
                            f"({FRAGMENT} sites with affine Gaussian dependence)")
        if obs is not None:
            cond = x == obs
            cond.name = f"{name} == {'<obs>' if obs.numel() > 3 else obs.tolist()}"
            run.condition(cond)
            return obs
        return x

    def _discrete(self, run: Model, name: str, base: Any, obs: torch.Tensor | None) -> Any:
        probs = base.probs
        if isinstance(probs, Gauss) or isinstance(getattr(base, "logits", None), Gauss):
            raise TypeError(f"site {name!r}: a discrete site whose probabilities depend on a "
                            "Gaussian variable is outside the exact fragment")
        probs = probs.detach().to(torch.float64)
        table = torch.stack([1 - probs, probs], -1) if isinstance(base, dist.Bernoulli) else probs
        flat = table.reshape(-1, table.shape[-1])
        if obs is not None:
            idx = obs.reshape(-1).long().expand(flat.shape[0])
            mass = flat.gather(1, idx[:, None]).prod()
            if float(mass) == 0:
                run.condition(False)
            run.weight = run.weight * float(mass)
            return obs
        picks = [run.choose(row.tolist(), f"site {name!r}") for row in flat]
        value = torch.tensor(picks, dtype=torch.float64 if isinstance(base, dist.Bernoulli)
                             else torch.long).reshape(table.shape[:-1])
        return value


def to_pyro(state: State | Gaussian) -> dist.Distribution:
    """A finite state as a Categorical over its outcome indices, a Gaussian state as a
    MultivariateNormal."""
    if isinstance(state, State | Gaussian):
        return state.to_pyro()
    raise TypeError(f"cannot convert {type(state).__name__} to a Pyro distribution; supported: "
                    "finite State, Gaussian")


def from_pyro(d: torch.distributions.Distribution) -> State | Gaussian:
    """A Categorical/Bernoulli as a finite State, a Normal/MultivariateNormal as a Gaussian."""
    if isinstance(d, torch.distributions.Categorical | torch.distributions.Bernoulli
                  | torch.distributions.OneHotCategorical):
        return State.from_pyro(d)
    return Gaussian.from_pyro(d)


def exact(model: Callable[..., Any], max_branches: int = 100_000
          ) -> Callable[..., State | Gaussian | Mixture]:
    """`exact(model)(*args, **kwargs)`: the exact posterior over the model's latent sites."""

    @functools.wraps(model)
    def posterior(*args: Any, **kwargs: Any) -> State | Gaussian | Mixture:
        def program() -> dict[str, Any]:
            with _ExactMessenger() as msgr:
                model(*args, **kwargs)
            return msgr.latents

        previous = torch.distributions.Distribution._validate_args
        torch.distributions.Distribution.set_default_validate_args(False)
        try:
            return infer(program, max_branches=max_branches)
        finally:
            torch.distributions.Distribution.set_default_validate_args(previous)

    return posterior
