"""The conditional-probability constructions of Cho and Jacobs as diagrams of their equations.

Each function takes condprob kernels, computes the construction with the core
(`condprob.disintegrate`, `invert`, `update`, `jeffrey`), and returns an `Equation`: the two
diagrams of the defining equation, with an interpretation that sends the boxes to the given kernels
and to the computed result. `Equation.check()` evaluates both sides; `Equation.draw()` draws
"lhs = rhs" in the Cho-Jacobs style.

- disintegration:      omega = omega_X ; copy_X ; (id_X @ c)               (c the conditional)
- Bayesian inversion:  sigma ; copy ; (id @ c) = sigma ; c ; copy ; (d @ id)  (d = c-dagger)
- Pearl update:        sigma|p = normalise(sigma ; copy ; (id @ p))
- Jeffrey update:      sigma' = tau ; d                                       (d = c-dagger)
- exact conditioning:  normalise(omega ; (id_X @ [Y = y])) = y ; c            (c = omega's
                       conditional of X given Y, evaluated at the point y)

Disintegration, inversion and Jeffrey's update take finite or Gaussian kernels; Pearl's update and
exact conditioning on a point are drawn with predicates, so they take finite kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from condprob.conditioning import disintegrate, invert, jeffrey, update
from condprob.errors import SpaceMismatchError, ValidationError
from condprob.finite import Predicate as KernelPredicate
from condprob.finite import State
from condprob.protocol import Morphism
from condprob.spaces import FactorKey, Unit
from diagrams.semantics import Interpretation, same_kernel
from diagrams.syntax import Box, Copy, Diagram, Discard, Id, Permute, Predicate
from diagrams.syntax import State as StateBox


@dataclass(frozen=True)
class Equation:
    """A defining equation lhs = rhs between diagrams, with the interpretation that makes it hold."""

    name: str
    lhs: Diagram
    rhs: Diagram
    interpretation: Interpretation

    def sides(self) -> tuple[Morphism, Morphism]:
        """Both sides evaluated to kernels."""
        return self.interpretation(self.lhs), self.interpretation(self.rhs)

    def holds(self, atol: float = 1e-10) -> bool:
        """True when both sides denote the same kernel (exactly in the exact backend)."""
        a, b = self.sides()
        return same_kernel(a, b, atol)

    def check(self, atol: float = 1e-10) -> None:
        """Raise AssertionError, showing both sides, unless the equation holds."""
        a, b = self.sides()
        if not same_kernel(a, b, atol):
            raise AssertionError(f"{self.name} fails:\n{a.array}\n!=\n{b.array}")

    def draw(self, path: Any = None, **kwargs: Any) -> Any:
        """Draw "lhs = rhs" (saved to `path` if given); returns the matplotlib figure."""
        from diagrams.drawing import figure, save
        fig = figure(self.lhs, "=", self.rhs, title=kwargs.pop("title", self.name), **kwargs)
        if path is not None:
            save(fig, path)
        return fig


def _state(s: Any, what: str) -> Any:
    if not isinstance(s, Morphism) or not s.is_state:
        raise TypeError(f"{what} must be a state (a condprob.State or Gaussian), got {s!r}")
    return s


def _finite_state(s: Any, what: str) -> State:
    if not isinstance(s, State):
        raise TypeError(f"{what} must be a condprob.State, got {type(s).__name__}")
    return s


def disintegration(joint: Morphism, along: FactorKey | tuple[FactorKey, ...] = 0) -> Equation:
    """Disintegrate a joint state along some factors: joint = marginal ; copy ; (id @ c)."""
    joint = _state(joint, "the joint")
    keys = (along,) if isinstance(along, int | str) else tuple(along)
    xs = joint.cod.factor_indices(keys)
    ys = tuple(i for i in range(joint.cod.ndim) if i not in xs)
    if not ys:
        raise ValidationError(f"disintegration along {keys} leaves no factor of {joint.cod}")
    X, Y = joint.cod.select(xs), joint.cod.select(ys)
    split = list(xs + ys)
    omega = StateBox("ω", joint.cod)
    c = Box("c", X, Y)
    to_xy = Permute(joint.cod, split)
    back = Permute(X @ Y, [split.index(i) for i in range(joint.cod.ndim)])
    marginal = omega >> to_xy >> (Id(X) @ Discard(Y))
    rhs = marginal >> Copy(X) >> (Id(X) @ c) >> back
    meaning = {"ω": joint, "c": disintegrate(joint, keys).kernel}
    return Equation("disintegration", omega, rhs, Interpretation(meaning))


def bayesian_inversion(prior: Morphism, channel: Morphism) -> Equation:
    """The Bayesian inverse d of c w.r.t. sigma: `<id, c> sigma = swap <id, d> (sigma ; c)`."""
    prior = _state(prior, "the prior")
    if prior.cod != channel.dom:
        raise SpaceMismatchError("Bayesian inversion: the prior's space", channel.dom, prior.cod)
    X, Y = channel.dom, channel.cod
    sigma, c, d = StateBox("σ", X), Box("c", X, Y), Box("d", Y, X)
    lhs = sigma >> Copy(X) >> (Id(X) @ c)
    rhs = sigma >> c >> Copy(Y) >> (d @ Id(Y))
    meaning = {"σ": prior, "c": channel, "d": invert(channel, prior)}
    return Equation("Bayesian inversion", lhs, rhs, Interpretation(meaning))


def pearl_update(state: State, predicate: KernelPredicate) -> Equation:
    """Pearl's update sigma|p as the normalised diagram sigma ; copy ; (id @ p)."""
    state = _finite_state(state, "the state")
    if not isinstance(predicate, KernelPredicate):
        raise TypeError(f"the evidence must be a condprob.Predicate, got {type(predicate).__name__}")
    X = state.cod
    lhs = StateBox("σ|p", X)
    rhs = StateBox("σ", X) >> Copy(X) >> (Id(X) @ Predicate("p", X))
    meaning = {"σ|p": update(state, predicate), "σ": state, "p": predicate}
    return Equation("Pearl update", lhs, rhs, Interpretation(meaning))


def jeffrey_update(prior: Morphism, channel: Morphism, evidence: Morphism) -> Equation:
    """Jeffrey's update with soft evidence tau on Y: sigma' = tau ; c-dagger."""
    prior, evidence = _state(prior, "the prior"), _state(evidence, "the evidence")
    X, Y = channel.dom, channel.cod
    if evidence.cod != Y:
        raise SpaceMismatchError("Jeffrey update: the evidence's space", Y, evidence.cod)
    lhs = StateBox("σ'", X)
    rhs = StateBox("τ", Y) >> Box("d", Y, X)
    meaning = {"σ'": jeffrey(prior, channel, evidence), "τ": evidence,
               "d": invert(channel, prior)}
    return Equation("Jeffrey update", lhs, rhs, Interpretation(meaning))


def exact_conditioning(joint: State, observe: FactorKey, value: Any) -> Equation:
    """Conditioning a joint on factor `observe` = `value` is its conditional at that point.

    normalise(omega ; (id_X @ [Y = y])) = y ; c, with c : Y -> X the disintegration along Y.
    """
    joint = _finite_state(joint, "the joint")
    (yi,) = joint.cod.factor_indices(observe)
    xs = tuple(i for i in range(joint.cod.ndim) if i != yi)
    if not xs:
        raise ValidationError(f"conditioning {joint.cod} on its only factor leaves nothing")
    X, Y = joint.cod.select(xs), joint.cod.select((yi,))
    event = KernelPredicate.event([value], Y, name=f"{observe}={value!r}", exact=joint.exact)
    omega = StateBox("ω", joint.cod)
    lhs = omega >> Permute(joint.cod, list(xs) + [yi]) >> (Id(X) @ Predicate("=y", Y))
    rhs = Box("y", Unit, Y, deterministic=True) >> Box("c", Y, X)
    meaning = {"ω": joint, "=y": event,
               "y": State.point(value, Y, exact=joint.exact),
               "c": disintegrate(joint, (yi,)).kernel}
    return Equation("exact conditioning", lhs, rhs, Interpretation(meaning))
