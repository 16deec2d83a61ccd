"""Pyro interop: exact inference for Pyro models in the Gaussian/discrete fragment.

`exact(model)(*args, **kwargs)` runs an ordinary Pyro model under a messenger that records each
sample site as a `condprob.dsl` variable: Normal and MultivariateNormal sites become Gaussian
variables (their locations may be affine in earlier Gaussian sites), Bernoulli and Categorical
sites are enumerated, `obs=` values become exact conditions (continuous) or likelihood factors
(discrete), and `pyro.plate` broadcasts as usual. A `Delta` site observed at y is the exact
condition v == y on its (affine) value v, so `pyro.sample("y", dist.Delta(2 * x + 1), obs=3.)`
conditions on the equation 2 x + 1 == 3 (an inconsistent one raises `ConditioningError`);
`pyro.deterministic` sites and unobserved `Delta` sites are recorded as latents without a
condition. Observed values are checked against the site's support (a Bernoulli observed at 0.5,
a Categorical at an index out of range or a Normal at inf raise `ValidationError` naming the site). The result is the exact posterior over the latent
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
from condprob.dsl.variables import Gauss, NonAffineError, _as_gauss
from condprob.errors import ValidationError
from condprob.finite import State
from condprob.gaussian import Gaussian, _bshape
from condprob.protocol import Morphism, law_at

__all__ = ["Gaussian", "State", "exact", "from_pyro", "to_pyro"]

FRAGMENT = "Normal, MultivariateNormal, Delta, Bernoulli and Categorical"


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
            if msg["infer"].get("_deterministic"):
                value = msg["value"]
            else:
                value = self._site(name, msg["fn"], msg["value"] if msg["is_observed"] else None)
        except NonAffineError as err:
            raise TypeError(f"site {name!r}: {err}") from None
        if not msg["is_observed"] or msg["infer"].get("_deterministic"):
            self.latents[name] = value
        msg["value"] = value
        msg["done"] = True
        msg["stop"] = True

    def _site(self, name: str, fn: Any, obs: torch.Tensor | None) -> Any:
        run: Model = _current()
        base = fn
        while isinstance(base, dist.Independent | dist.MaskedDistribution):
            base = base.base_dist
        if obs is not None:
            obs = _check_observation(name, base, obs)
        if isinstance(base, dist.Delta):
            return self._delta(run, name, base, obs)
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

    def _delta(self, run: Model, name: str, base: dist.Delta, obs: torch.Tensor | None) -> Any:
        """A point mass at its value v: observed at y, the exact condition v == y."""
        density = base.log_density
        if isinstance(density, Gauss):
            raise NonAffineError(f"a Delta whose log density depends on {density.name}", density)
        if bool((density != 0).any()):
            run.weight = run.weight * float(density.sum().exp())
        if obs is None:
            return base.v
        v = _as_gauss(base.v, run, run.dtype)
        cond = v == obs
        cond.name = f"{name} == {'<obs>' if obs.numel() > 3 else obs.tolist()}"
        run.condition(cond)
        return obs

    def _discrete(self, run: Model, name: str, base: Any, obs: torch.Tensor | None) -> Any:
        probs = base.probs
        if isinstance(probs, Gauss) or isinstance(getattr(base, "logits", None), Gauss):
            raise TypeError(f"site {name!r}: a discrete site whose probabilities depend on a "
                            "Gaussian variable is outside the exact fragment")
        probs = probs.detach().to(torch.float64)
        table = torch.stack([1 - probs, probs], -1) if isinstance(base, dist.Bernoulli) else probs
        flat = table.reshape(-1, table.shape[-1])
        if obs is not None:
            try:
                shape = _bshape(table.shape[:-1], obs.shape)
            except ValidationError:
                raise ValidationError(f"site {name!r}: an observed value of shape "
                                      f"{tuple(obs.shape)} does not broadcast with the site's "
                                      f"batch shape {tuple(table.shape[:-1])}") from None
            rows = table.expand(*shape, table.shape[-1]).reshape(-1, table.shape[-1])
            idx = obs.expand(shape).reshape(-1).long()
            mass = rows.gather(1, idx[:, None]).prod()
            if float(mass) == 0:
                run.condition(False)
            run.weight = run.weight * float(mass)
            return obs
        picks = [run.choose(row.tolist(), f"site {name!r}") for row in flat]
        value = torch.tensor(picks, dtype=torch.float64 if isinstance(base, dist.Bernoulli)
                             else torch.long).reshape(table.shape[:-1])
        return value


def _check_observation(name: str, base: Any, obs: Any) -> torch.Tensor:
    """The observed value as a tensor, after checking it lies in the site's support."""
    if isinstance(obs, Gauss):
        raise TypeError(f"site {name!r}: the observed value must be data, not the Gaussian "
                        f"variable {obs.name}")
    value = torch.as_tensor(obs, dtype=torch.float64 if not isinstance(obs, torch.Tensor)
                            else None)
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise ValidationError(f"site {name!r}: the observed value has non-finite entries")
    if isinstance(base, dist.Bernoulli | dist.Categorical):
        if not bool(base.support.check(value).all()):
            bad = value.reshape(-1)[~base.support.check(value).reshape(-1)][0]
            raise ValidationError(f"site {name!r}: observed value {float(bad):g} is outside the "
                                  f"support of its {type(base).__name__} ({base.support})")
    return value


def to_pyro(k: Morphism, x: Any = None) -> dist.Distribution:
    """The law k(x) of a kernel of any kind at input x as a Pyro distribution, usable in
    `pyro.sample`; a state's law takes no input (`to_pyro(state)`). A finite state gives a
    Categorical over outcome indices, a Gaussian a MultivariateNormal, a TokenKernel a Categorical
    over token ids, a CRF kernel a `CRFDistribution`, a next-event kernel a
    `NextEventDistribution`."""
    if not isinstance(k, Morphism):
        raise TypeError(f"to_pyro converts condprob kernels (finite, Gaussian, bffg, TokenKernel, "
                        f"SequenceKernel, CRFKernel, NextEventKernel); got {type(k).__name__}")
    if k.is_state:
        if x is not None:
            raise ValidationError(f"a state has no input: call to_pyro(state), not with x={x!r}")
        return law_at(k, ())
    if x is None:
        raise ValidationError(f"the law of a {type(k).__name__} depends on its input: call "
                              f"to_pyro(kernel, x) with x in {k.dom}")
    return law_at(k, x)


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
