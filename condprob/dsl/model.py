"""Models: Gaussian and discrete random variables, exact conditions, and exact inference.

Inside `with Model() as m:` Gaussian draws (`normal`, `mvnormal`) and exact conditions
(`condition(x == y)`) update a Gaussian state over the latent standard normals; `m.posterior(...)`
returns the exact `Gaussian` of any affine expressions. Programs with discrete draws (`bernoulli`,
`categorical`) are written as functions and solved by `infer(program)`, which enumerates every
branch of discrete choices by re-running the program: branch weights are the products of the
choice probabilities (exact when those are Fractions or sympy numbers) times the density of each
Gaussian condition (w.r.t. Lebesgue measure on the condition's coordinates). Branches whose
conditions hold with probability one in more coordinates dominate (the limit of conditioning on
ever smaller balls), and an inconsistent branch has weight zero; when every branch fails, the
program fails with `ConditioningError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import sympy
import torch

from condprob.dsl.posterior import Mixture
from condprob.dsl.variables import Condition, Gauss, NonAffineError, _broadcast
from condprob.errors import ConditioningError, ValidationError
from condprob.finite import State
from condprob.gaussian import Gaussian, LinearGaussian
from condprob.spaces import Euclidean, Unit, product
from condprob.tolerance import within

__all__ = ["Model", "bernoulli", "categorical", "condition", "infer", "mvnormal", "normal"]

_STACK: list[Model] = []


class _Reject(Exception):
    """A branch whose discrete condition failed or whose choice had probability zero."""


def _negative(p: Any) -> bool:
    """p < 0, for numbers; for sympy expressions only when provably negative."""
    if isinstance(p, sympy.Basic):
        return (p < 0) is sympy.true
    return p < 0


def _current() -> Model:
    if not _STACK:
        raise RuntimeError("no model is active: use `with Model():` or `infer(program)`")
    return _STACK[-1]


class Model:
    """One run of a probabilistic program: the latent Gaussian state and the branch's weight."""

    def __init__(self, dtype: torch.dtype = torch.float64,
                 choices: Sequence[int] | None = None, enumerate: bool = False):
        self.dtype = dtype
        self.state: Gaussian | None = None
        self.k = 0
        self._prefix = list(choices or [])
        self._enumerate = enumerate
        self.taken: list[int] = []
        self.arity: list[int] = []
        self.weight: Any = 1
        self.log_density = 0.0
        self.deficit = 0
        self._names = 0

    def __enter__(self) -> Model:
        _STACK.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _STACK.remove(self)

    # Draws ---------------------------------------------------------------------------------
    def _fresh(self, shape: tuple[int, ...], name: str | None) -> Gauss:
        m = math.prod(shape)
        self._names += 1
        name = name or f"z{self._names}"
        if m == 0:
            raise ValidationError(f"the draw {name} has no entries")
        std = Gaussian.standard(m, self.dtype)
        self.state = std if self.state is None else self.state @ std  # type: ignore[assignment]
        coef = torch.zeros(self.k + m, m, dtype=self.dtype)
        coef[self.k:] = torch.eye(m, dtype=self.dtype)
        self.k += m
        return Gauss(self, torch.zeros(shape, dtype=self.dtype), coef.reshape(self.k, *shape), name)

    def normal(self, mean: Any = 0.0, std: Any = 1.0, shape: Sequence[int] = (),
               name: str | None = None) -> Gauss:
        """x ~ N(mean, std^2) elementwise; `mean` may be a Gaussian variable, `std` a constant."""
        if isinstance(std, Gauss):
            raise NonAffineError(f"a normal draw with random scale {std.name}", std)
        s = torch.as_tensor(std, dtype=self.dtype)
        if bool((s < 0).any()) or not bool(torch.isfinite(s).all()):
            raise ValidationError(f"the standard deviation of {name or 'a normal draw'} must be "
                                  f"finite and non-negative, got {std!r}")
        if not all(isinstance(k, int) and k >= 0 for k in shape):
            raise ValidationError(f"the shape of {name or 'a normal draw'} must be non-negative "
                                  f"integers, got {tuple(shape)!r}")
        shp = _broadcast(tuple(shape), s.shape, tuple(getattr(mean, "shape", ())),
                         what=f"the draw {name or 'normal()'}")
        z = self._fresh(tuple(shp), name)
        x = z * s + mean
        x.name = z.name
        return x

    def mvnormal(self, mean: Any, cov: Any, name: str | None = None) -> Gauss:
        """x ~ N(mean, cov) on R^n (cov constant and positive semi-definite, maybe singular)."""
        lf = Gaussian(torch.zeros(torch.as_tensor(cov).shape[0], dtype=self.dtype), cov,
                      dtype=self.dtype).factor
        z = self._fresh((lf.shape[1],), name)
        x = lf @ z + mean
        x.name = z.name
        return x

    def choose(self, probs: Sequence[Any], what: str) -> int:
        """Index of a discrete choice with the given probabilities (enumerated by `infer`)."""
        if not self._enumerate:
            raise TypeError(f"{what} is discrete: write the program as a function and solve it "
                            "with condprob.dsl.infer(program), which enumerates the choices")
        ps = list(probs)
        if not ps:
            raise ValidationError(f"{what} needs at least one outcome")
        exact = all(isinstance(p, int | Fraction | sympy.Basic) for p in ps)
        total = sum(ps)
        if not exact:
            off = not within(float(total) - 1, torch.float64)
        elif isinstance(total, sympy.Basic):
            off = sympy.simplify(total - 1) != 0
        else:
            off = total != 1
        if any(_negative(p) for p in ps) or off:
            raise ValidationError(f"the probabilities of {what} must be non-negative and sum to "
                                  f"1, got {ps}")
        pos = len(self.taken)
        idx = self._prefix[pos] if pos < len(self._prefix) else 0
        self.taken.append(idx)
        self.arity.append(len(ps))
        if ps[idx] == 0:
            raise _Reject
        self.weight = self.weight * ps[idx]
        return idx

    # Conditions ----------------------------------------------------------------------------
    def condition(self, cond: Condition | bool | torch.Tensor) -> None:
        """Condition exactly on an equation of Gaussian variables, or on a discrete event."""
        if isinstance(cond, Condition):
            self._condition_gauss(cond)
            return
        if isinstance(cond, Gauss):
            raise TypeError(f"condition({cond.name}) needs an equation such as "
                            f"condition({cond.name} == value)")
        if isinstance(cond, torch.Tensor):
            if cond.numel() != 1:
                raise ValidationError("a discrete condition must be a single truth value")
            cond = bool(cond)
        if not isinstance(cond, bool | int):
            raise TypeError(f"condition() takes x == y for Gaussian variables or a bool for "
                            f"discrete events, got {type(cond).__name__}")
        if not cond:
            if self._enumerate:
                raise _Reject
            raise ConditioningError("a false discrete condition", "it has probability zero")

    def _own(self, x: Gauss) -> Gauss:
        if x.model is not self:
            raise ValidationError(f"{x.name} belongs to another model")
        return x

    def _condition_gauss(self, cond: Condition) -> None:
        e = self._own(cond.expr)
        rhs = -e.const.reshape(-1)
        if self.state is None:
            if bool((rhs != 0).any()):
                raise ConditioningError(cond.name, "the condition is inconsistent (it compares "
                                        "different constants)")
            self.deficit += rhs.numel()
            return
        a = e._coef(self.k).reshape(self.k, -1).T
        post, logp, deficit = self.state.condition_evidence(a, rhs, name=cond.name)
        self.state = post
        self.log_density += float(logp)
        self.deficit += int(deficit)

    # Queries -------------------------------------------------------------------------------
    def posterior(self, *xs: Any, **named: Any) -> Gaussian:
        """The exact joint posterior of affine expressions, flattened and concatenated.

        Keyword arguments name the factors of the result's space: `m.posterior(x=x, y=y)`.
        """
        items = [(None, x) for x in xs] + list(named.items())
        if not items:
            raise ValidationError("posterior() needs at least one variable")
        parts = [(k, self._own(x) if isinstance(x, Gauss) else Gauss(
            self, torch.as_tensor(x, dtype=self.dtype),
            torch.zeros(0, *torch.as_tensor(x).shape, dtype=self.dtype), "<const>"))
            for k, x in items]
        space = product(*(Euclidean(max(p.const.numel(), 1), k) for k, p in parts))
        const = torch.cat([p.const.reshape(-1) for _, p in parts])
        if self.state is None:
            n = const.shape[0]
            return Gaussian._make(const.new_zeros(n, 0), const,  # type: ignore[return-value]
                                  const.new_zeros(n, n), Unit, space)
        coef = torch.cat([p._coef(self.k).reshape(self.k, -1) for _, p in parts], 1).T
        kernel = LinearGaussian._make(coef, const, coef.new_zeros(len(const), len(const)),
                                      self.state.cod, space)
        return self.state >> kernel  # type: ignore[return-value]


# Module-level program syntax ------------------------------------------------------------------
def normal(mean: Any = 0.0, std: Any = 1.0, shape: Sequence[int] = (),
           name: str | None = None) -> Gauss:
    """A fresh Gaussian variable N(mean, std^2) in the active model."""
    return _current().normal(mean, std, shape, name)


def mvnormal(mean: Any, cov: Any, name: str | None = None) -> Gauss:
    """A fresh multivariate Gaussian variable N(mean, cov) in the active model."""
    return _current().mvnormal(mean, cov, name)


def bernoulli(p: Any, name: str = "bernoulli") -> int:
    """A Bernoulli(p) draw: 1 with probability p, else 0 (enumerated by `infer`)."""
    if isinstance(p, Gauss):
        raise NonAffineError(f"a Bernoulli with random probability {p.name}", p)
    return _current().choose([1 - p, p], f"{name}({p})")


def categorical(probs: Sequence[Any] | Mapping[Hashable, Any],
                labels: Sequence[Hashable] | None = None, name: str = "categorical") -> Hashable:
    """A categorical draw over `labels` (default 0..n-1), or over the keys of a mapping."""
    if isinstance(probs, Mapping):
        labels, probs = list(probs), list(probs.values())
    ps = list(probs)
    labs = list(range(len(ps))) if labels is None else list(labels)
    if len(labs) != len(ps):
        raise ValidationError(f"{name} has {len(ps)} probabilities but {len(labs)} labels")
    return labs[_current().choose(ps, name)]


def condition(cond: Condition | bool | torch.Tensor) -> None:
    """Condition the active model: `condition(x == y)` exactly, or on a discrete truth value."""
    _current().condition(cond)


# Inference ------------------------------------------------------------------------------------
def _split(out: Any) -> tuple[Hashable, list[tuple[str | None, Gauss]]]:
    """Discrete label and named Gaussian parts of a program's return value."""
    if isinstance(out, Gauss):
        return None, [(None, out)]
    if isinstance(out, Mapping):
        items: list[tuple[Any, Any]] = list(out.items())
    elif isinstance(out, tuple | list):
        items = [(None, v) for v in out]
    else:
        return _label(out), []
    gauss = [(k, v) for k, v in items if isinstance(v, Gauss)]
    disc = [_label(v) for _, v in items if not isinstance(v, Gauss)]
    label = None if not disc else disc[0] if len(disc) == 1 else tuple(disc)
    return label, gauss


def _label(v: Any) -> Hashable:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else tuple(v.reshape(-1).tolist())
    return v


def infer(program: Callable[..., Any], *args: Any, dtype: torch.dtype = torch.float64,
          max_branches: int = 100_000, **kwargs: Any) -> State | Gaussian | Mixture:
    """Exact posterior of a program's return value, by enumerating its discrete choices.

    Returns a finite `State` over the return values when they are discrete, a `Gaussian` when the
    program has no discrete choice and returns Gaussian variables, and a `Mixture` (discrete label,
    exact weight, Gaussian) for hybrid programs.
    """
    branches: list[tuple[Model, Any]] = []
    failures: list[ConditioningError] = []
    prefix: list[int] = []
    for _ in range(max_branches):
        run = Model(dtype, prefix, enumerate=True)
        with run:
            try:
                branches.append((run, program(*args, **kwargs)))
            except _Reject:
                pass
            except ConditioningError as err:
                failures.append(err)
        j = len(run.taken) - 1
        while j >= 0 and run.taken[j] + 1 >= run.arity[j]:
            j -= 1
        if j < 0:
            break
        prefix = run.taken[:j] + [run.taken[j] + 1]
    else:
        raise ValidationError(f"the program has more than max_branches={max_branches} branches")
    if not branches:
        if failures:
            raise failures[0]
        raise ConditioningError("the program's conditions", "every branch has probability zero")
    top = max(run.deficit for run, _ in branches)
    kept = [(run, out) for run, out in branches if run.deficit == top]
    logs = [run.log_density for run, _ in kept]
    ref = max(logs)
    weights = [run.weight if all(v == ref for v in logs) else
               float(run.weight) * math.exp(run.log_density - ref) for run, _ in kept]
    total = sum(weights)
    weights = [w / total for w in weights]
    splits = [(_split(out), run) for run, out in kept]
    if all(not gauss for (_, gauss), _ in splits):
        probs: dict[Hashable, Any] = {}
        for ((label, _), _run), w in zip(splits, weights, strict=True):
            probs[label] = probs.get(label, 0) + w
        return State.from_dict(probs)
    comps = []
    for ((label, gauss), run), w in zip(splits, weights, strict=True):
        if not gauss:
            raise ValidationError("a hybrid program must return Gaussian variables in every "
                                  f"branch; the branch {label!r} returned none")
        comps.append((label, w, run.posterior(*[g for k, g in gauss if k is None],
                                             **{k: g for k, g in gauss if k is not None})))
    if len(comps) == 1 and comps[0][0] is None:
        return comps[0][2]
    return Mixture(comps)
