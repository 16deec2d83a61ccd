"""The finite core: exact fixtures, backends, batches, autograd, Pyro interop and error paths."""

import math
from fractions import Fraction as F

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import sympy
import torch

import condprob as cp
from condprob import ConditioningError, SpaceMismatchError, ValidationError

D = cp.FiniteSpace(["d", "h"], "disease")
T = cp.FiniteSpace(["pos", "neg"], "test")


def disease(exact=True):
    prior = cp.State.from_dict({"d": F(1, 100), "h": F(99, 100)}, D)
    test = cp.Kernel([[F(9, 10), F(1, 10)], [F(1, 20), F(19, 20)]], D, T)
    return (prior, test) if exact else (prior.to_float(), test.to_float())


def test_disease_fixture_exact():
    prior, test = disease()
    assert (prior >> test).prob("pos") == F(117, 2000)
    post = cp.invert(test, prior).at("pos")
    assert post.prob("d") == F(2, 13)
    joint = prior >> cp.graph(test)
    assert cp.condition(joint, {"test": "pos"}).marginal("disease").prob("d") == F(2, 13)
    assert (prior | (test << cp.Predicate.event(["pos"], T))).prob("d") == F(2, 13)


def test_disease_fixture_float():
    prior, test = disease(exact=False)
    assert abs((prior >> test).prob("pos").item() - 117 / 2000) < 1e-15
    assert abs(cp.invert(test, prior).at("pos").prob("d").item() - 2 / 13) < 1e-15


def test_symbolic_prior_gives_closed_form():
    p = sympy.Symbol("p", positive=True)
    _, test = disease()
    prior = cp.State([p, 1 - p], D)
    post = cp.invert(test, prior).at("pos").prob("d")
    assert sympy.simplify(post - 18 * p / (17 * p + 1)) == 0
    assert sympy.simplify(post.subs(p, sympy.Rational(1, 100)) - sympy.Rational(2, 13)) == 0


def test_exact_information_measures():
    s = cp.State([F(1, 2), F(1, 4), F(1, 4)], ["a", "b", "c"])
    u = cp.State.uniform(["a", "b", "c"], exact=True)
    assert sympy.simplify(s.entropy() - sympy.Rational(3, 2) * sympy.log(2)) == 0
    assert s.tvd(u) == F(1, 6)
    kl = s.kl(u)
    assert abs(float(kl) - (1.5 * math.log(2) * -1 + math.log(3))) < 1e-15
    z = cp.State([F(1), F(0), F(0)], ["a", "b", "c"])
    assert z.entropy() == 0
    assert torch.isinf(s.to_float().kl(z.to_float()))


def test_marginals_and_projections_by_name_and_index():
    prior, test = disease()
    joint = prior >> cp.graph(test)
    assert joint.marginal("test").allclose(prior >> test)
    assert joint.marginal(0).allclose(prior)
    swapped = joint.marginal("test", "disease")
    assert swapped.allclose(joint >> cp.swap(D, T))
    assert (joint >> cp.projection(joint.cod, "test", exact=True)).allclose(prior >> test)


def test_disintegration_on_null_set_is_reported_and_defined():
    x = cp.FiniteSpace(["a", "b", "c"], "X")
    y = cp.FiniteSpace(["u", "v"], "Y")
    joint = cp.State([F(1, 4), F(1, 4), F(0), F(0), F(1, 2), F(0)], x @ y)
    m, k, null = cp.disintegrate(joint, "X")
    assert null.tolist() == [False, True, False]
    assert k.at("b").probs.tolist() == [F(3, 4), F(1, 4)]  # fallback: the Y-marginal
    assert k.at("c").probs.tolist() == [F(1), F(0)]
    assert (m >> cp.graph(k)).allclose(joint)
    fm, fk, fnull = cp.disintegrate(joint.to_float(), "X")
    assert fnull.tolist() == [False, True, False]
    assert not torch.isnan(fk.array).any()
    # a positive joint (its checks skipped) reports no null outcome, batched, in each backend
    positive = cp.State(torch.full((2, 6), 1 / 6, dtype=torch.float64), x @ y)
    pnull = cp.disintegrate(positive, "Y").null
    assert pnull.dtype == torch.bool and pnull.tolist() == [[False, False]] * 2
    exact = cp.State([F(1, 6)] * 6, x @ y)
    assert cp.disintegrate(exact, "X").null.tolist() == [False] * 3


def test_pyro_interop():
    _, test = disease(exact=False)
    assert isinstance(test("d"), dist.Categorical)

    def model():
        x = pyro.sample("x", dist.Categorical(torch.tensor([0.01, 0.99], dtype=torch.float64)))
        return pyro.sample("y", test(D.label(int(x))))

    pyro.set_rng_seed(0)
    tr = pyro.poutine.trace(model).get_trace()
    assert tr.nodes["y"]["fn"].probs.shape == (2,)
    s = cp.State.from_pyro(dist.Categorical(probs=torch.tensor([0.2, 0.8])), ["a", "b"])
    assert s.probs.dtype == torch.float32 and s.prob("b").item() == pytest.approx(0.8)
    b = cp.State.from_pyro(dist.Bernoulli(torch.tensor(0.3, dtype=torch.float64)))
    assert b.prob(1).item() == pytest.approx(0.3, abs=1e-15)
    with pytest.raises(TypeError, match="Normal"):
        cp.State.from_pyro(dist.Normal(0.0, 1.0))


def test_batches_and_autograd():
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    states = cp.State(torch.softmax(logits, -1), ["a", "b", "c"])
    k = cp.Kernel(torch.softmax(torch.randn(3, 2, dtype=torch.float64), -1), ["a", "b", "c"], 2)
    out = states >> k
    assert out.batch_shape == (5,) and out.probs.shape == (5, 2)
    for i in range(5):
        single = cp.State(states.probs[i].detach(), ["a", "b", "c"]) >> k
        assert torch.allclose(single.probs, out.probs[i], atol=1e-14)
    post = cp.invert(k, states).at(0).prob("a").sum()
    post.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_float32_backend():
    s = cp.State([0.25, 0.75], ["a", "b"], dtype=torch.float32)
    k = cp.Kernel([[0.5, 0.5], [0.1, 0.9]], ["a", "b"], ["u", "v"])
    assert (s >> k).probs.dtype == torch.float64  # promoted with a float64 kernel
    k32 = k.to_float(torch.float32)
    assert (s >> k32).probs.dtype == torch.float32


def test_deterministic_kernel_and_structural_kernels_adopt_backend():
    x = cp.FiniteSpace(range(4), "n")
    parity = cp.deterministic(lambda n: n % 2, x, [0, 1])
    s = cp.State([F(1, 10), F(2, 10), F(3, 10), F(4, 10)], x)
    assert (s >> parity).probs.tolist() == [F(2, 5), F(3, 5)]
    assert (s >> cp.copy(x)).marginal(1).allclose(s)
    assert (s >> cp.discard(x)).probs.tolist() == [F(1)]


def test_seeded_sampling_matches_state_and_power_check():
    s = cp.State([0.1, 0.2, 0.3, 0.4], ["a", "b", "c", "d"])
    n = 20000
    draws = s.sample((n,), generator=cp.rng(1234))
    assert torch.equal(draws, s.sample((n,), generator=cp.rng(1234)))
    counts = torch.bincount(draws, minlength=4).double()

    def g_stat(p):
        expected = n * p
        return 2 * (counts * torch.log(counts / expected)).sum().item()

    crit = 16.27  # chi-square(3) at 0.001
    assert g_stat(s.probs) < crit
    wrong = torch.tensor([0.1, 0.2, 0.35, 0.35], dtype=torch.float64)
    assert g_stat(wrong) > crit
    assert s.sample_labels(3, generator=cp.rng(0)) == s.sample_labels(3, generator=cp.rng(0))


def test_log_prob_protocol():
    s = cp.State([0.25, 0.75], ["a", "b"])
    lp = s.log_prob(torch.tensor([0, 1, 1]))
    assert torch.allclose(lp, torch.log(torch.tensor([0.25, 0.75, 0.75], dtype=torch.float64)))
    assert s.log_prob("a").item() == pytest.approx(math.log(0.25))
    assert cp.State([F(0), F(1)], ["a", "b"]).log_prob("a") == -sympy.oo
    _, test = disease(exact=False)
    assert test.log_prob("d", "pos").item() == pytest.approx(math.log(0.9))


def test_hmm_filtering_exact_matches_brute_force():
    states, obs = cp.FiniteSpace(["r", "s"], "w"), cp.FiniteSpace(["u", "n"], "o")
    trans = cp.Kernel([[F(7, 10), F(3, 10)], [F(3, 10), F(7, 10)]], states, states)
    emit = cp.Kernel([[F(9, 10), F(1, 10)], [F(2, 10), F(8, 10)]], states, obs)
    belief = cp.State([F(1, 2), F(1, 2)], states)
    ys = ["u", "u", "n"]
    for y in ys:
        belief = belief | (emit << cp.Predicate.event([y], obs))
        belief = belief >> trans
    # brute force over paths
    import itertools
    post = {s: F(0) for s in states}
    for path in itertools.product(states.labels, repeat=4):
        w = F(1, 2)
        for t, y in enumerate(ys):
            w *= emit.prob(path[t], y) * trans.prob(path[t], path[t + 1])
        post[path[-1]] += w
    z = sum(post.values())
    assert belief.probs.tolist() == [post["r"] / z, post["s"] / z]


# Error paths -----------------------------------------------------------------------------
def test_composing_mismatched_spaces_names_both():
    _, test = disease()
    with pytest.raises(SpaceMismatchError, match=r"disease\{d, h\}.*test\{pos, neg\}"):
        test >> test


def test_conditioning_on_impossible_event_raises_naming_it():
    prior, test = disease()
    joint = prior >> cp.graph(test)
    impossible = cp.condition(joint, {"disease": "d"})
    with pytest.raises(ConditioningError, match="disease='h'"):
        cp.condition(impossible, {"disease": "h"})
    fl = impossible.to_float()
    with pytest.raises(ConditioningError, match="'h'"):
        fl | cp.Predicate.event(lambda v: v[0] == "h", fl.cod, name="{disease='h'}")
    assert issubclass(ConditioningError, ValueError)


def test_batched_impossible_evidence_names_batch_entry():
    s = cp.State(torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64), ["a", "b"])
    with pytest.raises(ConditioningError, match=r"'b'.*batch entries \[\[1\]\]"):
        s | {"b"}


def test_condition_needs_a_sharp_event():
    prior, _ = disease()
    with pytest.raises(ValidationError, match="fuzzy"):
        cp.condition(prior, cp.Predicate([F(1, 2), F(1)], D, name="half"))


@pytest.mark.parametrize(
    "matrix, message",
    [([[0.5, 0.6], [0.5, 0.5]], "sum to 1"), ([[1.5, -0.5], [0.5, 0.5]], "negative"),
     ([[float("nan"), 1.0], [0.5, 0.5]], "non-finite"), ([[1.0, 0.0]], "does not fit"),
     ([[F(1, 2), F(1, 3)], [F(1), F(0)]], "sum to 1"), ([[F(3, 2), F(-1, 2)], [F(1), F(0)]], "negative")])
def test_invalid_kernels_are_rejected(matrix, message):
    with pytest.raises(ValidationError, match=message):
        cp.Kernel(matrix, D, T)


def test_bad_labels_and_factors():
    with pytest.raises(ValidationError, match="unknown label 'x'"):
        D.index("x")
    with pytest.raises(ValidationError, match="distinct"):
        cp.FiniteSpace(["a", "a"])
    with pytest.raises(ValidationError, match="at least one"):
        cp.FiniteSpace([])
    with pytest.raises(ValidationError, match="no factor named 'z'"):
        (D @ T).factor_index("z")
    with pytest.raises(ValidationError, match="ambiguous"):
        (D @ D).factor_index("disease")
    with pytest.raises(ValidationError, match="unknown label"):
        cp.State.from_dict({"x": 1.0}, D)
    with pytest.raises(ValidationError, match="both sides"):
        cp.disintegrate(cp.State.uniform(D @ T), ("disease", "test"))
    with pytest.raises(ValidationError, match="cannot read"):
        cp.State.uniform(D) | 3.5
    with pytest.raises(SpaceMismatchError):
        cp.State.uniform(D) | cp.Predicate.truth(T)


def test_mixing_exact_and_float_needs_explicit_conversion():
    prior, test = disease()
    with pytest.raises(TypeError, match="to_exact"):
        prior >> test.to_float()
    assert (prior.to_float() >> test.to_float()).allclose((prior >> test).to_float())


def test_exact_ops_on_unsupported_kinds_say_which_kinds_can():
    class Dummy(cp.Morphism):
        dom, cod = cp.Unit, D

    with pytest.raises(TypeError, match="finite kernels"):
        cp.disintegrate(Dummy(), 0)


def test_inversion_on_null_outcome_falls_back_to_prior():
    prior = cp.State([F(1, 2), F(1, 2)], ["a", "b"])
    c = cp.Kernel([[F(1), F(0)], [F(1), F(0)]], ["a", "b"], ["u", "v"])
    assert cp.invert(c, prior).at("v").allclose(prior)
    fl = cp.invert(c.to_float(), prior.to_float()).at("v")
    assert not np.isnan(fl.probs.numpy()).any()


def test_spaces_of_different_kinds_compare_unequal():
    r = cp.Euclidean(2, "x")
    assert D != r and r != D
    assert cp.ProductSpace([D]) == D and D == cp.ProductSpace([D])
    assert (D @ r).select(1) == r and cp.Unit != D


def test_jeffrey_and_pearl_differ_on_soft_evidence_and_agree_on_points():
    prior, test = disease()
    soft = cp.State([F(7, 10), F(3, 10)], T)
    jeffrey = cp.jeffrey(prior, test, soft)
    pearl = prior | (test << cp.Predicate([F(7, 10), F(3, 10)], T, name="soft"))
    assert jeffrey.prob("d") == F(7, 10) * F(2, 13) + F(3, 10) * F(2, 1883)
    assert pearl.prob("d") == F(1, 100) * F(66, 100) / (F(1, 100) * F(66, 100) + F(99, 100) * F(32, 100))
    assert jeffrey.prob("d") != pearl.prob("d")
    assert (cp.State.point("pos", T, exact=True) >> cp.invert(test, prior)).allclose(
        prior | (test << cp.Predicate.event(["pos"], T)))
    # Jeffrey updates need not commute: two soft updates in either order differ.
    other = cp.Kernel([[F(1, 2), F(1, 2)], [F(1, 10), F(9, 10)]], D, T)
    soft2 = cp.State([F(1, 5), F(4, 5)], T)
    ab = cp.jeffrey(cp.jeffrey(prior, test, soft), other, soft2)
    ba = cp.jeffrey(cp.jeffrey(prior, other, soft2), test, soft)
    assert ab.prob("d") != ba.prob("d")


def test_symbolic_states_cannot_be_sampled_until_substituted():
    p = sympy.Symbol("p", positive=True)
    s = cp.State([p, 1 - p], D)
    with pytest.raises(ValueError, match="symbolic entries \\(in p\\)"):
        s.sample(3, generator=cp.rng(0))
    with pytest.raises(ValueError, match="substitute"):
        s.to_float()


def test_log_prob_of_index_tensors_checks_the_indices():
    s = cp.State([0.2, 0.3, 0.5], ["a", "b", "c"])
    assert float(s.log_prob(torch.tensor(2.0))) == math.log(0.5)
    with pytest.raises(ValidationError, match="whole numbers"):
        s.log_prob(torch.tensor(1.5))                                 # was read as index 1
    with pytest.raises(ValidationError, match="whole numbers"):
        s.log_prob(torch.tensor(float("nan")))
    with pytest.raises(ValidationError, match=r"must lie in \[0, 3\), got indices in \[-1, 3\]"):
        s.log_prob(torch.tensor([-1, 3]))


def test_positive_state_changed_after_validation_still_gets_the_null_fallback():
    # validation finds the joint positive, which spares disintegration its zero-mass check; a
    # change in place (or a new matrix) after validation must bring the check back
    xy = cp.FiniteSpace(2, "x") @ cp.FiniteSpace(3, "y")
    probs = torch.full((6,), 1 / 6, dtype=torch.float64)
    joint = cp.State(probs, xy)
    assert joint._least_entry() == 1 / 6
    probs[:3] = 0
    probs[3:] = 1 / 3
    assert joint._least_entry() == 0.0
    m, k, null = cp.disintegrate(joint, "x")
    assert null.tolist() == [True, False]
    assert torch.equal(k.matrix[0], torch.full((3,), 1 / 3, dtype=torch.float64))
    assert not torch.isnan(k.matrix).any()
    replaced = cp.State(torch.full((6,), 1 / 6, dtype=torch.float64), xy)
    replaced.array = torch.tensor([[0.0, 0, 0, 0.5, 0.25, 0.25]], dtype=torch.float64)
    assert cp.disintegrate(replaced, "x").null.tolist() == [True, False]


def test_inversion_where_products_underflow_falls_back_to_the_prior():
    # prior and channel are positive, but 0.5 * 5e-324 rounds to 0: (prior >> c)(1) is 0, and
    # the inverse at 1 must be the prior (the fallback), not 0 / 0
    prior = cp.State(torch.tensor([0.5, 0.5], dtype=torch.float64), 2)
    c = cp.Kernel(torch.tensor([[1.0, 5e-324], [1.0, 5e-324]], dtype=torch.float64), 2, 2)
    assert prior._least_entry() == 0.5 and c._least_entry() == 5e-324
    assert (prior >> c).probs[1].item() == 0.0
    dagger = cp.invert(c, prior)
    assert torch.equal(dagger.matrix, torch.full((2, 2), 0.5, dtype=torch.float64))
    # in float32 the product underflows where its value in Python floats does not
    prior32 = cp.State(torch.tensor([0.5, 0.5]), 2)
    c32 = cp.Kernel(torch.tensor([[1.0, 1e-45], [1.0, 1e-45]]), 2, 2)
    assert prior32._least_entry() * c32._least_entry() > 0
    assert torch.equal(cp.invert(c32, prior32).matrix, torch.full((2, 2), 0.5))
    # products that do not underflow: the quotient, as computed without the shortcut
    c = cp.Kernel(torch.tensor([[1.0, 1e-300], [1.0, 1e-300]], dtype=torch.float64), 2, 2)
    joint = prior.probs[:, None] * c.matrix
    assert torch.equal(cp.invert(c, prior).matrix, (joint / joint.sum(0)).mT)


def test_states_of_inference_tensors_are_validated_and_disintegrate():
    with torch.inference_mode():
        probs = torch.full((6,), 1 / 6, dtype=torch.float64)
    joint = cp.State(probs, cp.FiniteSpace(2) @ cp.FiniteSpace(3))
    assert joint._least_entry() == 0.0
    m, k, null = cp.disintegrate(joint, 0)
    assert torch.equal(m.probs, torch.full((2,), 0.5, dtype=torch.float64))
    assert not null.any()


def test_a_state_from_numpy_does_not_see_later_writes_to_the_array():
    # the state copies: a write through numpy (unseen by torch's version counter) cannot turn a
    # validated positive joint into one with a null row behind the checks' back
    arr = np.full(4, 0.25)
    space = cp.product(cp.FiniteSpace([0, 1], name="a"), cp.FiniteSpace([0, 1], name="b"))
    s = cp.State(arr, space)
    arr[:] = [0.5, 0.5, 0.0, 0.0]
    kernel = cp.disintegrate(s, 0).kernel.array
    assert torch.equal(kernel, torch.full((2, 2), 0.5, dtype=torch.float64))
    assert torch.equal(s.array, torch.full((1, 4), 0.25, dtype=torch.float64))
