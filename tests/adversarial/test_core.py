"""Adversarial inputs to the finite core: states, kernels, predicates, spaces, seeds and
conditioning, each answered by a value, -inf where the contract says so, or a clear house error."""

import math
from fractions import Fraction as F

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import condprob as cp
from condprob.errors import ValidationError, check_nonnegative_int, check_positive_int

D = cp.FiniteSpace(["a", "b"], "d")
S = cp.State([0.5, 0.5], D)
K = cp.Kernel([[0.9, 0.1], [0.2, 0.8]], D, D)

bad_number = st.sampled_from([math.nan, math.inf, -math.inf])


@given(n=st.integers(2, 6), bad=bad_number, at=st.integers(0, 5))
def test_non_finite_probabilities(n, bad, at, clear_error):
    p = [1.0 / n] * n
    p[at % n] = bad
    clear_error(lambda: cp.State(p), "non-finite")


@given(ws=st.lists(st.floats(0.01, 10.0), min_size=2, max_size=6), neg=st.floats(-5.0, -1e-3))
def test_negative_probabilities(ws, neg, clear_error):
    p = [w / sum(ws) for w in ws]
    p[1] += p[0] - neg
    p[0] = neg
    clear_error(lambda: cp.State(p), "negative")


@given(ws=st.lists(st.floats(0.01, 10.0), min_size=1, max_size=6),
       off=st.floats(1e-6, 1.0) | st.floats(-0.9, -1e-6))
def test_unnormalised_masses(ws, off, clear_error):
    p = [w / sum(ws) * (1 + off) for w in ws]
    clear_error(lambda: cp.State(p), "must sum to 1", "tolerance")


@given(n=st.integers(1, 300_000), mass=st.sampled_from([0.5, 1.001, 2.0]),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_mass_off_one_is_rejected_at_any_size_and_dtype(n, mass, dtype, clear_error):
    clear_error(lambda: cp.State(torch.full((n,), mass / n, dtype=dtype)), "must sum to 1")


@given(st.integers(1, 50_000), st.sampled_from([torch.float32, torch.float64]))
def test_softmax_states_are_accepted(n, dtype):
    g = torch.Generator().manual_seed(n)
    s = cp.State(torch.softmax(torch.randn(n, generator=g, dtype=dtype) * 3, -1))
    assert s.probs.dtype == dtype


BAD_DATA = [
    (lambda: cp.State(["a", "b"]), "probabilities"), (lambda: cp.State(None), "outcome"),
    (lambda: cp.Kernel([[1.0], [0.5, 0.5]], 2, 2), "rectangular"),
    (lambda: cp.State(torch.tensor([0.5 + 0j, 0.5])), "real"),
    (lambda: cp.State(np.array([0.5 + 0j, 0.5])), "real"),
    (lambda: cp.Kernel([[1.0, 0.0]], 1, 2, dtype=torch.int64), "dtype"),
    (lambda: cp.State([]), "at least one"), (lambda: cp.State([0.5, 0.5], 3), "shape"),
    (lambda: cp.Kernel([0.5, 0.5], 1, 2), "shape"),
    (lambda: cp.State([F(-1, 2), F(3, 2)]), "negative"),
    (lambda: cp.State([F(1, 3), F(1, 3)]), "sum to 1"),
    (lambda: cp.State([1 / 3, 2 / 3], exact=True), "to_exact"),
    (lambda: cp.State([F(1, 2), math.inf], exact=True), "finite"),
]


@pytest.mark.parametrize("make,word", BAD_DATA)
def test_malformed_data(make, word, clear_error):
    clear_error(make, word)


BAD_LABELS = [
    (lambda: S.prob("z"), "z"), (lambda: S.log_prob("z"), "z"), (lambda: K.at("z"), "z"),
    (lambda: K("z"), "z"), (lambda: K.prob("a", "z"), "z"), (lambda: K.sample("z"), "z"),
    (lambda: cp.State.from_dict({"z": 1.0}, D), "z"), (lambda: cp.State.point("z", D), "z"),
    (lambda: cp.Predicate.event(["z"], D), "z"), (lambda: cp.condition(S, {"d": "z"}), "z"),
    (lambda: cp.condition(S, {"q": "a"}), "q"), (lambda: (S @ S).marginal("zzz"), "zzz"),
    (lambda: cp.disintegrate(S @ S, "zz"), "zz"), (lambda: cp.projection(D @ D, "zz"), "zz"),
    (lambda: D.index("z"), "z"), (lambda: D.label(5), "index 5"), (lambda: D.label(-5), "-5"),
    (lambda: D.label(1.5), "1.5"),
]


@pytest.mark.parametrize("make,word", BAD_LABELS)
def test_unknown_labels_and_out_of_range_indices(make, word, clear_error):
    clear_error(make, word)


BAD_SPACES = [
    (lambda: cp.FiniteSpace(["a", "a"]), "distinct"), (lambda: cp.FiniteSpace([]), "at least"),
    (lambda: cp.FiniteSpace(-1), "-1"), (lambda: cp.FiniteSpace([[1], [2]]), "hashable"),
    (lambda: cp.Euclidean(-1), "-1"), (lambda: cp.State.uniform(0), "0"),
]


@pytest.mark.parametrize("make,word", BAD_SPACES)
def test_bad_spaces(make, word, clear_error):
    clear_error(make, word)


@pytest.mark.parametrize("seed", ["x", 1.5, True, 2**70])
def test_bad_seeds(seed, clear_error):
    clear_error(lambda: cp.rng(seed), "seed")
    assert cp.rng(np.int64(3)).initial_seed() == 3


@pytest.mark.parametrize("shape", [(-1,), 2.5, "x"])
def test_bad_sample_shapes(shape, clear_error):
    clear_error(lambda: S.sample(shape), "shape")


def test_impossible_evidence_in_every_finite_form(clear_error):
    point = cp.State([1.0, 0.0], D)
    clear_error(lambda: cp.condition(point, {"d": "b"}), "probability zero")
    clear_error(lambda: point | cp.Predicate.event(["b"], D), "probability zero")
    clear_error(lambda: cp.update(point, cp.Predicate.event(["b"], D)), "probability zero")
    exact = cp.State([F(1), F(0)], D)
    clear_error(lambda: cp.condition(exact, {"d": "b"}), "probability zero")
    assert exact.log_prob("b") == -math.inf or str(exact.log_prob("b")) == "-oo"
    assert point.log_prob("b").item() == -math.inf
    clear_error(lambda: cp.condition(point @ S, {0: "b"}), "probability zero")


def test_mismatched_spaces(clear_error):
    three = cp.State([1 / 3] * 3, 3)
    clear_error(lambda: K >> cp.Kernel([[1.0, 0], [0, 1], [0, 1]], 3, 2), "expected")
    clear_error(lambda: S.kl(three), "expected")
    clear_error(lambda: S | cp.Predicate([1, 0, 1], 3), "expected")
    clear_error(lambda: cp.invert(K, three), "expected")
    clear_error(lambda: cp.Predicate([1, 0, 1], D), "shape")
    clear_error(lambda: cp.Predicate([math.nan, 0], D), "finite")
    clear_error(lambda: cp.Predicate([-0.5, 0], D), "nonnegative")


def test_exact_results_stay_exact():
    s = cp.State([1 / 3, 2 / 3]).to_exact()
    assert sum(s.as_dict().values()) == 1 and s.as_dict()[0] == F(1, 3)
    post = cp.condition(cp.State([F(1, 3), F(2, 3)], D) @ cp.State([F(1, 2), F(1, 2)], D),
                        {0: "a"})
    assert post.marginal(0).as_dict() == {"a": 1, "b": 0}


def _law(n, zeros, tiny, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(n, generator=g, dtype=torch.float64) * 10.0 ** (-tiny * torch.rand(
        n, generator=g, dtype=torch.float64))
    w[torch.rand(n, generator=g) < zeros] = 0
    w[0] += float(w.sum() == 0)
    return (w / w.sum()).to(dtype)


@given(n=st.integers(1, 4), m=st.integers(1, 4), zeros=st.sampled_from([0.0, 0.5]),
       tiny=st.sampled_from([0, 30, 300]), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_valid_inputs_never_give_nan(n, m, zeros, tiny, seed, dtype):
    """Pushforward, joints, inversion, conditioning, updates and information measures of valid
    states with zeros and subnormal probabilities: a number, inf or a ConditioningError."""
    X, Y = cp.FiniteSpace(n, "x"), cp.FiniteSpace(m, "y")
    s = cp.State(_law(n, zeros, tiny, seed, dtype), X)
    k = cp.Kernel(torch.stack([_law(m, zeros, tiny, seed + 1 + i, dtype) for i in range(n)]), X, Y)
    joint = s >> cp.graph(k)
    outs = [(s >> k).probs, joint.probs, s.entropy(), s.kl(s), s.tvd(s),
            cp.disintegrate(joint, "x").kernel.matrix]
    for attempt in [lambda: cp.invert(k, s).matrix] + [
            (lambda y=y: cp.condition(joint, {"y": y}).probs) for y in range(m)] + [
            (lambda y=y: (s | (k << cp.Predicate.event([y], Y))).probs) for y in range(m)]:
        try:
            outs.append(attempt())
        except cp.ConditioningError:
            pass
    assert not any(torch.isnan(torch.as_tensor(o)).any() for o in outs)
    exact = s.to_exact()
    assert sum(exact.as_dict().values()) == 1


@pytest.mark.parametrize("bad", [0, -3, True, 2.0, "2", None])
def test_positive_int_check_names_the_argument(bad):
    assert check_positive_int(5, "n") == 5 and check_nonnegative_int(0, "n") == 0
    with pytest.raises(ValidationError, match=r"num_particles must be a positive integer, got "):
        check_positive_int(bad, "num_particles")
    if bad != 0:
        with pytest.raises(ValidationError, match=r"steps must be a non-negative integer, got "):
            check_nonnegative_int(bad, "steps")
