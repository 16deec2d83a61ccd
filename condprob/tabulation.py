"""Tabulation: any kernel restricted to finitely many inputs and outputs as a finite `Kernel`.

For a kernel k of any kind, finite sets of inputs X' (a subset of k.dom) and outputs Y' (a subset
of k.cod carrying all the mass of each k(x)) give the finite kernel
tabulate(k, X', Y')(x)(y) = exp(k.log_prob(x, y)), to which `invert`, `condition`, `update`, `>>`
and `@` apply: Bayes' rule over the prefixes of a language model, say.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import torch

from condprob.errors import ValidationError
from condprob.finite import Kernel
from condprob.protocol import Morphism, log_prob_at
from condprob.spaces import FiniteSpace, Space
from condprob.tolerance import tolerance

__all__ = ["tabulate"]


def _finite(space: Space | Iterable[Hashable] | None, default: Space, what: str,
            kind: str) -> Space:
    if space is None:
        if not default.is_finite:
            raise ValidationError(f"tabulating a {kind} needs its {what}: {default} is not "
                                  f"finite; give {what}=[...] (labels the kernel accepts)")
        return default
    if isinstance(space, Space):
        if not space.is_finite:
            raise ValidationError(f"{what} must be a finite space, got {space}")
        return space
    return FiniteSpace(space, name=getattr(default, "name", None))


def tabulate(k: Morphism, inputs: Space | Iterable[Hashable] | None = None,
             outputs: Space | Iterable[Hashable] | None = None, *,
             dtype: torch.dtype = torch.float64) -> Kernel:
    """The finite kernel inputs -> outputs with entries exp(k.log_prob(x, y)).

    `inputs` and `outputs` (finite spaces or lists of labels) default to k's domain and codomain
    when those are finite (a finite `Kernel` is its own table). Labels are inputs and outputs as
    the kernel reads them (a token prefix as a tuple of ids or of token strings). Each row must carry all the mass of k(x):
    `ValidationError` names the input whose listed outputs miss probability.
    """
    kind = type(k).__name__
    if k.is_state:
        raise ValidationError("tabulate reads a kernel; a state is already its own law (use "
                              "State or a kernel out of Unit)")
    if isinstance(k, Kernel) and inputs is None and outputs is None:
        return k
    xs = _finite(inputs, k.dom, "inputs", kind)
    ys = _finite(outputs, k.cod, "outputs", kind)
    table = k._table(xs, ys)
    if table is None:
        table = torch.tensor([[float(torch.as_tensor(log_prob_at(k, x, y)).detach().exp())
                               for y in ys.labels] for x in xs.labels], dtype=torch.float64)
    table = table.to(dtype)
    if not bool(torch.isfinite(table).all()):
        i = int((~torch.isfinite(table)).any(-1).nonzero()[0])
        raise ValidationError(f"the {kind} gives a non-finite probability (NaN or inf) at input "
                              f"{xs.label(i)!r}")
    missing = (1 - table.sum(-1)).abs()
    tol = tolerance(dtype)
    if bool((missing > tol).any()):
        i = int(missing.argmax())
        raise ValidationError(f"the outputs listed for tabulating the {kind} carry probability "
                              f"{float(table[i].sum()):.6g} at input {xs.label(i)!r}, not 1; list "
                              "every output of positive probability")
    return Kernel(table, xs, ys, validate=False)
