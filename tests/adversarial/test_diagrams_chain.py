"""Adversarial inputs to diagrams (syntax, semantics, drawing, constructions) and to the core's
chain engine and automata."""

import pytest
import torch

import condprob as cp
import diagrams as dg
from condprob import chain as ch
from condprob.automata import DFA

D = cp.FiniteSpace(["a", "b"], "d")
K = cp.Kernel([[0.9, 0.1], [0.2, 0.8]], D, D)
F = dg.Box("f", D, D)


def chain(*shape):
    return ch.Chain(torch.zeros(*shape, 3), torch.zeros(3, 3))


BAD = [
    (lambda: dg.Box("f", 3, "x"), "x"),
    (lambda: F >> dg.Box("g", cp.FiniteSpace(3), D), "compose"),
    (lambda: dg.evaluate(F, {}), "f"),
    (lambda: dg.evaluate(F, {"f": cp.Kernel([[1.0, 0, 0]], 1, 3)}), "f"),
    (lambda: dg.evaluate(F, {"f": 5}), "f"),
    (lambda: dg.Interpretation({"f": K})(F, method="x"), "method"),
    (lambda: dg.Permute(D @ D, [0, 0]), "permutation"),
    (lambda: dg.figure(), "at least one"), (lambda: dg.to_svg(5), "diagram"),
    (lambda: dg.draw(F, "/tmp/x.txt"), ".svg"),
    (lambda: dg.pearl_update(5, 6), "state"), (lambda: dg.normal_form(5), "diagram"),
    (lambda: dg.exact_conditioning(cp.State([0.5, 0.5], D) @ cp.State([0.5, 0.5], D), 0, "z"),
     "z"),
    (lambda: dg.exact_conditioning(cp.State([1.0, 0.0], D) @ cp.State([0.5, 0.5], D), 0,
                                   "b").check(), "probability zero"),
    (lambda: ch.Chain(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 3)), "floating"),
    (lambda: ch.Chain(torch.zeros(2, 3), torch.zeros(4, 4)), "shape"),
    (lambda: ch.Chain([[0.0]], torch.zeros(1, 1)), "floating"),
    (lambda: ch.Chain(torch.zeros(1, 0, 3), torch.zeros(3, 3)), "T"),
    (lambda: ch.Chain(torch.zeros(1, 2, 3), torch.zeros(3, 3), mask=torch.ones(1, 2)), "mask"),
    (lambda: ch.log_partition(ch.Chain(torch.full((2, 3), float("nan")), torch.zeros(3, 3))),
     "nan"),
    (lambda: ch.kbest(chain(2), 0), "k"), (lambda: ch.sample(chain(1, 2), 0), "num_samples"),
    (lambda: ch.score(chain(1, 2), torch.tensor([[0, 7]])), "[0, 3)"),
    (lambda: ch.score(chain(1, 2), torch.tensor([[0, -2]])), "[0, 3)"),
    (lambda: ch.score(chain(1, 2), torch.tensor([[0.0, 1.0]])), "integer"),
    (lambda: DFA.from_regex("(a", ["a"]), "("), (lambda: DFA.from_regex("b", ["a"]), "b"),
    (lambda: DFA.from_regex("a*", ["a", "b"]).accepts_batch(torch.tensor([[5]])), "[0, 2)"),
]


@pytest.mark.parametrize("make,word", BAD)
def test_bad_inputs(make, word, clear_error):
    clear_error(make, word)


def test_forbidden_paths_are_minus_inf_and_all_forbidden_is_an_error(clear_error):
    u = torch.zeros(1, 3, 3, dtype=torch.float64)
    u[0, 1, 0] = float("-inf")
    c = ch.Chain(u, torch.zeros(3, 3, dtype=torch.float64))
    assert ch.log_prob(c, torch.zeros(1, 3, dtype=torch.long)).item() == float("-inf")
    u[0, 1] = float("-inf")
    c = ch.Chain(u, torch.zeros(3, 3, dtype=torch.float64))
    assert ch.log_partition(c).item() == float("-inf")
    clear_error(lambda: ch.log_prob(c, torch.zeros(1, 3, dtype=torch.long)), "weight zero")


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_law_suite_strategies_and_laws_name_misuse(clear_error):
    from condprob import laws

    clear_error(lambda: laws.states(5).example(), "space")
    clear_error(lambda: laws.kernels("x", D).example(), "dom")
    clear_error(lambda: laws.predicates(3.5).example(), "space")
    clear_error(lambda: laws.distributions(0).example(), "n >= 1")
    clear_error(lambda: laws.law_inversion(5, 6), "kernels")
