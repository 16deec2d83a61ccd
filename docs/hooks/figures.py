"""MkDocs hook: draws the string diagrams of the concept pages with the `diagrams` package at
build time and adds them to the site as `figures/<name>.svg`, so they always match the code.

Each figure is the defining equation of a construction (the diagrams' own `Equation` objects,
checked by evaluating both sides on a small exact example before they are drawn) or a law of the
Markov category.
"""

from __future__ import annotations

from fractions import Fraction as F

from mkdocs.structure.files import File, Files

import condprob as cp
import diagrams as dg

X = cp.FiniteSpace(["x0", "x1"], "X")
Y = cp.FiniteSpace(["y0", "y1"], "Y")
Z = cp.FiniteSpace(["z0", "z1"], "Z")


def _example() -> tuple[cp.State, cp.Kernel]:
    prior = cp.State([F(1, 3), F(2, 3)], X)
    channel = cp.Kernel([[F(3, 4), F(1, 4)], [F(1, 5), F(4, 5)]], X, Y)
    return prior, channel


def figures() -> dict[str, str]:
    """name -> SVG text of every figure used by the docs."""
    prior, channel = _example()
    joint = prior >> cp.graph(channel)
    evidence = cp.Predicate([F(1, 2), 1], X, name="p")
    soft = cp.State([F(1, 4), F(3, 4)], Y)
    equations = {
        "disintegration": dg.disintegration(joint, "X"),
        "inversion": dg.bayesian_inversion(prior, channel),
        "pearl": dg.pearl_update(prior, evidence),
        "jeffrey": dg.jeffrey_update(prior, channel, soft),
        "conditioning": dg.exact_conditioning(joint, "Y", "y1"),
    }
    out = {}
    for name, eq in equations.items():
        eq.check()
        out[name] = dg.to_svg(eq.draw())
    sigma, f, g = dg.State("σ", X), dg.Box("f", X, Y), dg.Box("g", Y, Z)
    h = dg.Box("h", X, Z)
    out["composition"] = dg.to_svg(dg.figure(sigma >> f >> g, title="σ >> f >> g"))
    out["tensor"] = dg.to_svg(dg.figure(f @ h, title="f @ h"))
    out["graph"] = dg.to_svg(dg.figure(sigma >> dg.Copy(X) >> (dg.Id(X) @ f),
                                       title="σ >> graph(f): the joint"))
    counit = dg.Copy(X) >> (dg.Discard(X) @ dg.Id(X))
    assert counit == dg.Id(X)
    out["counit"] = dg.to_svg(dg.figure(counit, "=", dg.Id(X), title="discard is copy's counit"))
    causal = f >> dg.Discard(Y)
    assert causal == dg.Discard(X)
    out["causal"] = dg.to_svg(dg.figure(causal, "=", dg.Discard(X), title="every kernel is causal"))
    return out


def on_files(files: Files, config) -> Files:
    for name, svg in figures().items():
        files.append(File.generated(config, f"figures/{name}.svg", content=svg))
    return files
