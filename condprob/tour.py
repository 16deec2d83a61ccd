"""The core's tour section: exact Bayesian reasoning with finite kernels."""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import sympy

from condprob.conditioning import condition, invert
from condprob.finite import Kernel, Predicate, State, graph
from condprob.spaces import FiniteSpace


def run(out: Path) -> str:
    """Disease testing exactly and symbolically, an HMM filter, and a figure of the update."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    disease = FiniteSpace(["ill", "healthy"], "disease")
    test = FiniteSpace(["pos", "neg"], "test")
    prior = State.from_dict({"ill": F(1, 100), "healthy": F(99, 100)}, disease)
    channel = Kernel([[F(9, 10), F(1, 10)], [F(1, 20), F(19, 20)]], disease, test)
    p_pos = (prior >> channel).prob("pos")
    post = invert(channel, prior).at("pos")
    joint = prior >> graph(channel)
    same = condition(joint, {"test": "pos"}).marginal("disease")
    p = sympy.Symbol("p", positive=True)
    symbolic = invert(channel, State([p, 1 - p], disease)).at("pos").prob("ill")
    twice = prior | (channel << Predicate.event(["pos"], test))
    twice = twice | (channel << Predicate.event(["pos"], test))
    print(f"  P(pos) = {p_pos}, P(ill | pos) = {post.prob('ill')}", flush=True)

    weather = FiniteSpace(["rain", "sun"], "weather")
    obs = FiniteSpace(["umbrella", "none"], "obs")
    trans = Kernel([[F(7, 10), F(3, 10)], [F(3, 10), F(7, 10)]], weather, weather)
    emit = Kernel([[F(9, 10), F(1, 10)], [F(1, 5), F(4, 5)]], weather, obs)
    belief = State.uniform(weather, exact=True)
    history = []
    for y in ["umbrella", "umbrella", "none", "umbrella"]:
        belief = (belief | (emit << Predicate.event([y], obs))) >> trans
        history.append(belief.prob("rain"))

    fig, ax = plt.subplots(1, 2, figsize=(8, 3))
    labels = ["prior", "one positive", "two positives"]
    ax[0].bar(labels, [float(prior.prob("ill")), float(post.prob("ill")),
                       float(twice.prob("ill"))], color=["#888", "#c55", "#a22"])
    ax[0].set_ylabel("P(ill)")
    ax[0].set_title("Pearl updates on test results")
    ax[1].plot(range(1, 5), [float(h) for h in history], "o-")
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("P(rain tomorrow)")
    ax[1].set_title("HMM filter (exact)")
    fig.tight_layout()
    fig.savefig(out / "updates.png", dpi=120)
    plt.close(fig)
    return (
        f"Disease test: P(pos) = {p_pos}, P(ill | pos) = {post.prob('ill')} "
        f"(also by conditioning the joint: {same.prob('ill')}); after two positives "
        f"{twice.prob('ill')}.\nWith a symbolic prior p: P(ill | pos) = {symbolic}.\n"
        f"HMM filter, exact predictive P(rain): {', '.join(map(str, history))}."
    )
