"""`diagrams`: string diagrams for Markov categories, evaluated as condprob kernels and drawn in
the Cho-Jacobs style.

- Syntax (`diagrams.syntax`): `Box`, `State`, `Predicate`, `Id`, `Swap`, `Copy`, `Discard`,
  `Permute`, composed with `>>` and `@`; wires are typed by condprob spaces.
- Normal form and equality (`diagrams.normal`): `==` is equality in the free Markov category
  (comonoid laws, the Markov law, symmetric monoidal laws, copy-naturality of deterministic boxes).
- Semantics (`diagrams.semantics`): an `Interpretation` sends boxes to finite kernels and evaluates
  diagrams by tensor contraction, in float64 or exactly.
- Drawing (`diagrams.drawing`): `draw`, `figure`, `to_svg`, `to_png`; notebooks show diagrams.
- Constructions (`diagrams.constructions`): disintegration, Bayesian inversion, Pearl and Jeffrey
  updates and exact conditioning as `Equation`s of diagrams, checked by evaluating both sides.
- Random interpretations for property tests: `diagrams.laws` (needs Hypothesis).
"""

from diagrams.constructions import (
    Equation,
    bayesian_inversion,
    disintegration,
    exact_conditioning,
    jeffrey_update,
    pearl_update,
)
from diagrams.drawing import draw, figure, to_png, to_svg
from diagrams.normal import normal_form, port_graph
from diagrams.semantics import Interpretation, evaluate
from diagrams.syntax import (
    Box,
    Copy,
    Diagram,
    Discard,
    Id,
    Permute,
    Predicate,
    State,
    Swap,
)

__all__ = [
    "Box",
    "Copy",
    "Diagram",
    "Discard",
    "Equation",
    "Id",
    "Interpretation",
    "Permute",
    "Predicate",
    "State",
    "Swap",
    "bayesian_inversion",
    "disintegration",
    "draw",
    "evaluate",
    "exact_conditioning",
    "figure",
    "jeffrey_update",
    "normal_form",
    "pearl_update",
    "port_graph",
    "to_png",
    "to_svg",
]
