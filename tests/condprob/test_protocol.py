"""The kernel protocol on every kind: each cell of the table of docs/concepts/protocol.md.

Each kind is checked through `condprob.laws` (k(x).log_prob(y) == k.log_prob(x, y), sampling
agrees with log_prob with a power check, associativity of >>, tabulated inversion), through
`condprob.pyro.to_pyro` inside a Pyro model, and for the TypeError of the exact operations it
does not support.
"""

from __future__ import annotations

import itertools
import math

import pyro
import pyro.distributions as pdist
import pytest
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st

import condprob as cp
import crf
from condprob import laws
from condprob.bffg import NonlinearGaussian, SDEKernel
from condprob.errors import SpaceMismatchError, ValidationError
from condprob.lm.kernel import SequenceKernel, TokenKernel
from condprob.lm.models import BigramLM
from condprob.protocol import Law, sample_at
from condprob.pyro import to_pyro
from condprob.spaces import Euclidean, FiniteSpace, SequenceSpace
from tpp import EventBatch, HomogeneousPoisson, NextEventKernel, history_space
from tpp.kernel import NextEventDistribution

F64 = torch.float64
VOCAB = ["a", "b", "c"]


def token_kernel(trans: torch.Tensor, init: torch.Tensor, eos: int | None = None) -> TokenKernel:
    return TokenKernel(BigramLM.from_matrix(trans, init), VOCAB, eos=eos)


def fixed_bigram(seed: int = 0) -> TokenKernel:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(3, 3, generator=g, dtype=F64) + 0.2
    i = torch.rand(3, generator=g, dtype=F64) + 0.2
    return token_kernel(t / t.sum(-1, keepdim=True), i / i.sum())


def crf_model(kind: str = "crf", seed: int = 0) -> crf.LinearChainCRF:
    torch.manual_seed(seed)
    if kind == "crf":
        return crf.LinearChainCRF(["O", "B", "I"], init_scale=1.0).double()
    return crf.RegCCRF(["O", "B", "I"], "(O | B I*)*", init_scale=1.0).double()


def history(times: list[float]) -> EventBatch:
    return EventBatch.from_sequences([times], [[0] * len(times)], T=max(times, default=0.0) + 1.0,
                                     num_marks=1)


# Spaces ---------------------------------------------------------------------------------------
def test_sequence_space_is_one_class_for_prefixes_and_histories():
    vocab = FiniteSpace(VOCAB, "token")
    assert fixed_bigram().dom == SequenceSpace(vocab, "prefix")
    assert hash(SequenceSpace(vocab, "prefix")) == hash(SequenceSpace(vocab, "prefix"))
    assert SequenceSpace(vocab, "prefix") != SequenceSpace(vocab, "history")
    assert repr(history_space(FiniteSpace(1, "mark"))) == "history[mark{0}]"
    assert HomogeneousPoisson([1.0]).kernel().dom == history_space(FiniteSpace(1, "mark"))
    with pytest.raises(ValidationError, match="base of a sequence space"):
        SequenceSpace([1, 2])


# Finite kernels ---------------------------------------------------------------------------------
X, Y = FiniteSpace(["x0", "x1", "x2"], "X"), FiniteSpace(["y0", "y1"], "Y")


@given(laws.kernels(X, Y), st.sampled_from(X.labels), st.integers(0, 1))
def test_finite_kernel_law_is_its_log_prob(c, x, y):
    laws.law_call_matches_log_prob(c, x, torch.tensor(y))
    assert isinstance(c(x), pdist.Categorical) and cp.tabulate(c) is c


@given(laws.states(X), laws.kernels(X, Y))
def test_finite_tabulated_inversion_is_invert(prior, c):
    laws.law_tabulated_inversion(c, prior)


def test_finite_sampling_follows_log_prob_with_power():
    c = cp.Kernel([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]], X, Y)
    wrong = cp.Kernel([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1]], X, Y)
    outputs = [torch.tensor(0), torch.tensor(1)]
    laws.law_sampling_matches_log_prob(c, "x0", outputs, generator=cp.rng(0))
    assert laws.law_sampling_matches_log_prob(c, "x0", outputs, generator=cp.rng(0),
                                              target=wrong) < 1e-6
    s = cp.State([0.1, 0.6, 0.3], X)
    laws.law_sampling_matches_log_prob(s, (), [torch.tensor(i) for i in range(3)],
                                       generator=cp.rng(1))
    laws.law_call_matches_log_prob(s, (), torch.tensor([0, 2]))
    assert torch.equal(to_pyro(s).probs, s.probs)
    torch.testing.assert_close(s().logits, s.probs.log(), atol=0, rtol=0)


# Token and sequence kernels ---------------------------------------------------------------------
@given(laws.bigram_tables(3), laws.prefixes(3, batch=2), st.lists(st.integers(0, 2), min_size=2,
                                                                   max_size=2))
def test_token_kernel_law_is_its_log_prob(tables, prefix, tokens):
    k = token_kernel(*tables)
    law = k(prefix)
    assert isinstance(law, pdist.Categorical) and law.batch_shape == (2,)
    laws.law_call_matches_log_prob(k, prefix, torch.tensor(tokens))
    laws.law_call_matches_log_prob(k, prefix, torch.tensor([tokens, tokens[::-1]]))


@given(laws.bigram_tables(3), st.lists(st.tuples(st.integers(0, 2)), min_size=1, max_size=3,
                                       unique=True), st.data())
def test_state_over_prefixes_then_token_kernel_is_the_exact_mixture(tables, prefixes, data):
    k = token_kernel(*tables)
    prior = cp.State(data.draw(laws.distributions(len(prefixes))), prefixes)
    mix = prior >> k
    assert isinstance(mix, cp.State) and mix.cod == k.cod
    trans = tables[0]
    want = sum(p * trans[pref[-1]] for p, pref in zip(prior.probs.tolist(), prefixes, strict=True))
    torch.testing.assert_close(mix.probs, want, atol=1e-14, rtol=0)
    laws.law_tabulated_inversion(k, prior)


def test_token_kernel_sampling_follows_log_prob_with_power():
    k, wrong = fixed_bigram(0), fixed_bigram(1)
    outputs = [torch.tensor([i]) for i in range(3)]
    laws.law_sampling_matches_log_prob(k, [[0, 2]], outputs, generator=cp.rng(0))
    assert laws.law_sampling_matches_log_prob(k, [[0, 2]], outputs, generator=cp.rng(0),
                                              target=wrong) < 1e-6


def test_sequence_kernel_law_sampling_and_tabulated_inversion():
    k = fixed_bigram(2)
    seqk = k.steps(2)
    prefix = torch.tensor([[1]])
    outputs = [torch.tensor([[1, a, b]]) for a, b in itertools.product(range(3), repeat=2)]
    laws.law_call_matches_log_prob(seqk, prefix, torch.stack(outputs))
    assert isinstance(seqk(prefix), Law) and seqk(prefix).event_shape == (3,)
    laws.law_sampling_matches_log_prob(seqk, prefix, outputs, generator=cp.rng(3))
    assert laws.law_sampling_matches_log_prob(seqk, prefix, outputs, generator=cp.rng(3),
                                              target=fixed_bigram(1).steps(2)) < 1e-6
    prior = cp.State([0.25, 0.75], [(0,), (1,)])
    seqs = [(p, a, b) for p in range(2) for a, b in itertools.product(range(3), repeat=2)]
    laws.law_tabulated_inversion(seqk, prior, seqs)


def test_composition_is_associative_across_kinds():
    k = fixed_bigram(0)
    prefixes = FiniteSpace([(0,), (1, 2)], "prefix")
    f = cp.Kernel([[0.5, 0.5], [0.1, 0.9]], ["u", "v"], prefixes)
    g = cp.Kernel([[0.3, 0.7], [1.0, 0.0]], prefixes, prefixes)
    laws.law_composition_associative(f, g, k)
    inputs = FiniteSpace([(0,), (2,)], "prefix")
    outputs = [p + rest for p in inputs.labels for rest in itertools.product(range(3), repeat=3)]
    laws.law_composition_associative(k.steps(1), k.steps(1), k.steps(1), inputs, outputs)
    with pytest.raises(ValidationError, match="a prefix label is a tuple"):
        _ = cp.State([0.5, 0.5], ["p", "q"]) >> k
    with pytest.raises(SpaceMismatchError):
        _ = cp.State([0.5, 0.5], ["p", "q"]) >> k.steps(1)


def test_tabulation_errors_name_the_problem():
    k = fixed_bigram(0)
    with pytest.raises(ValidationError, match="needs its inputs"):
        cp.tabulate(k)
    with pytest.raises(ValidationError, match="carry probability"):
        cp.tabulate(k, [(0,)], ["a", "b"])
    with pytest.raises(ValidationError, match="neither a token"):
        cp.tabulate(k, [(0, "z")])
    with pytest.raises(ValidationError, match="state is already its own law"):
        cp.tabulate(cp.State([1.0], ["u"]))


def test_g_test_statistic_support_and_power():
    # G = 2 (30 log(30/25) + 20 log(20/25)) = 2.0136..., chi-squared with 1 degree of freedom
    g = 2 * (30 * math.log(30 / 25) + 20 * math.log(20 / 25))
    assert laws.g_test([30, 20], [0.5, 0.5]) == pytest.approx(scipy.stats.chi2.sf(g, 1), rel=1e-12)
    assert laws.g_test([10, 0, 5], [0.5, 0.0, 0.5]) > 0.05
    assert laws.g_test([10, 1, 5], [0.5, 0.0, 0.5]) == 0.0
    assert laws.g_test([7, 0], [1.0, 0.0]) == 1.0
    draws = torch.multinomial(torch.tensor([0.2, 0.3, 0.5]), 5000, replacement=True,
                              generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=3)
    assert laws.g_test(counts, [0.2, 0.3, 0.5]) > 1e-3
    assert laws.g_test(counts, [0.25, 0.3, 0.45]) < 1e-6
    with pytest.raises(ValidationError, match="3 counts for a law on 2"):
        laws.g_test([1, 2, 3], [0.5, 0.5])


def test_sampling_law_reads_a_float32_kernel_at_its_precision():
    """A float32 table's outputs sum to 1 only within float32 rounding (here off by 2.8e-8):
    the law checks the sum by the tolerance policy at the law's dtype, not at a fixed 1e-8."""
    p = torch.softmax(torch.randn(2, 7, generator=cp.rng(1)), -1)
    k = cp.Kernel(p, ["p", "q"], list("abcdefg"))
    outputs = [torch.tensor(i) for i in range(7)]
    assert laws.law_sampling_matches_log_prob(k, "p", outputs, generator=cp.rng(0)) > 1e-3
    with pytest.raises(AssertionError, match="carry probability"):
        laws.law_sampling_matches_log_prob(k, "p", outputs[:6], generator=cp.rng(0))


class _NaNKernel(cp.Kernel):
    """A finite kernel whose log_prob is NaN at one input (a broken user kernel)."""

    def log_prob(self, x, y):
        return torch.tensor(float("nan") if x == "q" else -0.6931471805599453)


def test_tabulation_refuses_a_nan_log_prob():
    k = _NaNKernel(torch.full((2, 2), 0.5, dtype=F64), ["p", "q"], ["a", "b"])
    with pytest.raises(ValidationError, match="non-finite probability .* input 'q'"):
        cp.tabulate(k, ["p", "q"], ["a", "b"])


# CRF kernels ---------------------------------------------------------------------------------------
@given(st.sampled_from(["crf", "reg"]), laws.emissions(3, batch=2, max_len=3))
def test_crf_kernel_law_is_its_log_prob(kind, em):
    k = crf_model(kind).kernel()
    assert k.dom == SequenceSpace(Euclidean(3, "score"), "emissions")
    assert k.cod == SequenceSpace(FiniteSpace(["O", "B", "I"], "label"), "labels")
    tags = torch.tensor(list(itertools.product(range(3), repeat=em.shape[1])))[:, None, :]
    tags = tags.expand(-1, 2, -1)
    laws.law_call_matches_log_prob(k, em, tags)
    assert isinstance(k(em), crf.CRFDistribution) and k(em).batch_shape == (2,)
    mask = torch.tensor([[True] * em.shape[1], [True] + [False] * (em.shape[1] - 1)])
    laws.law_call_matches_log_prob(k, (em, mask), tags.masked_fill(~mask, 0))


@pytest.mark.parametrize("kind", ["crf", "reg"])
def test_crf_kernel_sampling_follows_log_prob_with_power(kind):
    k = crf_model(kind).kernel()
    em = torch.randn(1, 3, 3, generator=cp.rng(0), dtype=F64)
    outputs = [torch.tensor([s]) for s in itertools.product(range(3), repeat=3)
               if float(k.log_prob(em, torch.tensor([s])).detach()) > float("-inf")]
    laws.law_sampling_matches_log_prob(k, em, outputs, generator=cp.rng(1))
    assert laws.law_sampling_matches_log_prob(k, em, outputs, generator=cp.rng(1),
                                              target=crf_model(kind, seed=5).kernel()) < 1e-6
    assert k.sample(em, (4, 5), generator=cp.rng(2)).shape == (4, 5, 1, 3)


def test_masked_crf_samples_have_a_log_prob():
    """A sample holds -1 at masked positions; k(x).log_prob and the distribution read it (the
    support check of torch's validation refused it), and bad labels give ValidationError."""
    model = crf_model("crf")
    k = model.kernel()
    em = torch.randn(2, 3, 3, generator=cp.rng(4), dtype=F64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    draws = k.sample((em, mask), (5,), generator=cp.rng(5))
    assert bool((draws[:, 1, 2] == -1).all())
    want = model.log_prob(em.expand(5, -1, -1, -1), draws, mask.expand(5, -1, -1))
    torch.testing.assert_close(k((em, mask)).log_prob(draws), want, rtol=0, atol=0)
    torch.testing.assert_close(model.distribution(em, mask).log_prob(draws), want, rtol=0, atol=0)
    laws.law_call_matches_log_prob(k, (em, mask), draws)
    with pytest.raises(ValidationError, match="integer tensor"):
        k(em).log_prob(torch.tensor([[0.5, 1.0, 2.0]] * 2))
    with pytest.raises(ValidationError, match=r"tags must lie in \[0, 3\)"):
        k(em).log_prob(torch.tensor([[0, 5, 1]] * 2))
    with pytest.raises(ValidationError, match="NaN"):
        k(torch.full((1, 2, 3), float("nan"), dtype=F64)).log_prob(torch.tensor([[0, 1]]))


def test_crf_is_the_likelihood_of_a_pyro_sample():
    k = crf_model("reg").kernel()
    em = torch.randn(2, 4, 3, generator=cp.rng(3), dtype=F64)
    tags = k.sample(em, generator=cp.rng(4))

    def model():
        scale = pyro.sample("scale", pdist.Uniform(torch.tensor(0.5, dtype=F64), 2.0))
        with pyro.plate("sentences", 2):
            pyro.sample("tags", to_pyro(k, em * scale), obs=tags)

    tr = pyro.poutine.trace(model).get_trace()
    scale = tr.nodes["scale"]["value"]
    assert torch.allclose(tr.nodes["tags"]["fn"].log_prob(tags), k.log_prob(em * scale, tags))
    tr.compute_log_prob()
    assert torch.allclose(tr.nodes["tags"]["log_prob"], k.log_prob(em * scale, tags))


# Next-event kernels --------------------------------------------------------------------------------
def test_next_event_kernel_law_sampling_and_power():
    k = NextEventKernel(HomogeneousPoisson([1.5]))
    hist = history([0.2, 0.9])
    tau = torch.tensor([[0.3], [2.0]], dtype=F64)
    mark = torch.zeros(2, 1, dtype=torch.long)
    laws.law_call_matches_log_prob(k, hist, (tau, mark))
    laws.law_call_matches_log_prob(k, hist, torch.stack([tau, mark.double()], -1))
    assert to_pyro(k, hist).batch_shape == (1,)

    def as_output(t):
        return t[:, None], torch.zeros(t.shape[0], 1, dtype=torch.long)

    def taus(draws):
        return draws[0].reshape(-1)

    kw = dict(low=1e-12, high=20.0, to_output=as_output, from_draws=taus, generator=cp.rng(0))
    laws.law_sampling_matches_density(k, hist, **kw)
    wrong = NextEventKernel(HomogeneousPoisson([1.2]))
    assert laws.law_sampling_matches_density(k, hist, target=wrong, **kw) < 1e-6
    state = HomogeneousPoisson([1.5]).next_event(hist)
    laws.law_call_matches_log_prob(state, (), (tau, mark))
    assert isinstance(to_pyro(state), NextEventDistribution) and state().batch_shape == (1,)


# Gaussian kernels ------------------------------------------------------------------------------------
@given(laws.gaussian_states(2), laws.gaussian_kernels(2, 1), st.lists(st.floats(-3, 3), min_size=2,
                                                                     max_size=2))
def test_gaussian_laws_are_their_log_prob(prior, c, x):
    x = torch.tensor(x, dtype=F64)
    ys = torch.linspace(-2, 2, 5, dtype=F64)[:, None]
    if bool(torch.linalg.eigvalsh(c.cov).min() > 1e-6):
        laws.law_call_matches_log_prob(c, x, ys)
    assert isinstance(c(x), pdist.MultivariateNormal) and to_pyro(c, x).event_shape == (1,)
    assert isinstance(prior(), pdist.MultivariateNormal) and c.sample(x, (3,)).shape == (3, 1)


@given(laws.gaussian_kernels(1, 1), laws.gaussian_kernels(1, 1), laws.gaussian_kernels(1, 2))
def test_gaussian_composition_is_associative(f, g, h):
    laws.law_composition_associative(f, g, h)


def test_gaussian_sampling_follows_density_with_power():
    c = cp.LinearGaussian([[2.0]], [0.5], [[0.3]])
    x = torch.tensor([0.25], dtype=F64)
    laws.law_sampling_matches_density(c, x, -4.0, 6.0, generator=cp.rng(0))
    wrong = cp.LinearGaussian([[2.0]], [0.5], [[0.5]])
    assert laws.law_sampling_matches_density(c, x, -4.0, 6.0, generator=cp.rng(0),
                                             target=wrong) < 1e-6
    g = cp.Gaussian([1.0], [[0.5]])
    laws.law_call_matches_log_prob(g, (), torch.tensor([[0.0], [2.0]], dtype=F64))
    laws.law_sampling_matches_density(g, (), -5.0, 7.0, generator=cp.rng(1))
    prior = cp.Gaussian([0.0], [[1.0]])
    assert isinstance(cp.invert(c, prior), cp.LinearGaussian)
    joint = prior @ g
    assert isinstance(joint, cp.Gaussian) and isinstance(cp.disintegrate(joint, 0).kernel,
                                                         cp.LinearGaussian)


# bffg kernels ----------------------------------------------------------------------------------------
def nonlinear() -> NonlinearGaussian:
    return NonlinearGaussian(lambda x: torch.sin(x) + x**2 / 4, torch.tensor([[0.3]], dtype=F64),
                             1, 1)


@given(st.floats(-2, 2), st.lists(st.floats(-3, 3), min_size=1, max_size=4))
def test_nonlinear_gaussian_law_is_its_log_prob(x, ys):
    k = nonlinear()
    laws.law_call_matches_log_prob(k, torch.tensor([x], dtype=F64),
                                   torch.tensor(ys, dtype=F64)[:, None])
    xs = torch.tensor([[x], [x / 2]], dtype=F64)
    laws.law_call_matches_log_prob(k, xs, torch.tensor(ys, dtype=F64)[:, None, None].expand(
        -1, 2, 1))
    assert isinstance(k(xs), pdist.MultivariateNormal) and k(xs).batch_shape == (2,)


def test_nonlinear_gaussian_sampling_follows_density_with_power():
    k = nonlinear()
    x = torch.tensor([0.7], dtype=F64)
    assert k.sample(x, (7,)).shape == (7, 1) and k.sample(x[None], (7,)).shape == (7, 1, 1)
    laws.law_sampling_matches_density(k, x, -4.0, 6.0, generator=cp.rng(0))
    shifted = NonlinearGaussian(lambda v: torch.sin(v) + v**2 / 4 + 0.1,
                                torch.tensor([[0.3]], dtype=F64), 1, 1)
    assert laws.law_sampling_matches_density(k, x, -4.0, 6.0, generator=cp.rng(0),
                                             target=shifted) < 1e-6


def test_nonlinear_gaussian_refuses_non_finite_points():
    k, nan = nonlinear(), float("nan")
    with pytest.raises(ValidationError, match="value has non-finite"):
        k.log_prob(torch.tensor([0.5], dtype=F64), torch.tensor([nan], dtype=F64))
    with pytest.raises(ValidationError, match="input point has non-finite"):
        k.sample(torch.tensor([nan], dtype=F64))
    broken = NonlinearGaussian(lambda x: x / 0 * 0, torch.tensor([[0.3]], dtype=F64), 1, 1)
    with pytest.raises(ValidationError, match="mean function returned non-finite"):
        broken(torch.tensor([0.5], dtype=F64))


def test_sde_kernel_samples_but_has_no_density():
    k = SDEKernel(lambda t, x: -x, torch.eye(1, dtype=F64), torch.linspace(0, 1, 11), 1)
    x0 = torch.tensor([[0.5], [1.0]], dtype=F64)
    law = to_pyro(k, x0)
    assert law.batch_shape == (2,) and law.event_shape == (1,)
    assert law.sample((3,)).shape == (3, 2, 1) and k.sample(x0, (3,), path=True).shape == (3, 2,
                                                                                             11, 1)
    with pytest.raises(TypeError, match="intractable"):
        law.log_prob(torch.zeros(2, 1, dtype=F64))
    with pytest.raises(ValidationError, match="x0 has non-finite"):
        k.sample(torch.tensor([float("nan")], dtype=F64))             # gave a NaN path
    with pytest.raises(SpaceMismatchError, match="x0"):
        k(torch.zeros(2, 3, dtype=F64))


# Empty sample shapes ---------------------------------------------------------------------------------
def test_a_zero_in_sample_shape_gives_no_draws_for_every_kind():
    """sample_shape (2, 0) is a valid shape (nonnegative ints): every kind returns an empty
    tensor of shape (2, 0) + batch + event, no RuntimeError from torch.multinomial."""
    g = torch.Generator().manual_seed(0)
    k = fixed_bigram(0)
    emb = torch.zeros(1, 2, 3, dtype=F64)
    hp = NextEventKernel(HomogeneousPoisson(torch.tensor([1.0], dtype=F64)))
    cases = [(cp.Kernel(torch.full((2, 2), 0.5, dtype=F64), ["p", "q"], ["a", "b"]), "p", ()),
             (cp.State([0.5, 0.5], ["a", "b"]), None, ()),
             (k, [[0], [1]], (2,)), (k.steps(2), [[0]], (1, 3)),
             (crf_model("crf").kernel(), emb, (1, 2)),
             (cp.Gaussian(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)), None, (2,)),
             (nonlinear(), torch.tensor([0.7], dtype=F64), (1,))]
    for kern, x, tail in cases:
        draws = sample_at(kern, x, (2, 0), generator=g)
        assert draws.shape == (2, 0, *tail), type(kern).__name__
    tau, mark = hp.sample(history([0.5]), (2, 0), generator=g)
    assert tau.shape == mark.shape == (2, 0, 1) and mark.dtype == torch.long


# Errors that say what works ------------------------------------------------------------------------
def test_type_errors_name_the_kinds_that_work():
    k = fixed_bigram(0)
    with pytest.raises(TypeError, match="condprob.tabulate"):
        _ = k >> cp.Kernel([[1.0], [1.0], [1.0]], k.cod, ["z"])
    with pytest.raises(TypeError, match="tensor products are defined between finite kernels"):
        _ = k @ k
    with pytest.raises(TypeError, match="condprob.tabulate"):
        cp.condition(crf_model().kernel(), {})
    with pytest.raises(TypeError, match="a Pearl update is not available for NextEventKernel"):
        cp.update(HomogeneousPoisson([1.0]).kernel(), {})
    with pytest.raises(TypeError, match="disintegration is not available for NonlinearGaussian"):
        cp.disintegrate(nonlinear())
    with pytest.raises(TypeError, match="sequence kernels compose"):
        _ = k.steps(1) >> fixed_bigram(1).steps(1)
    with pytest.raises(TypeError, match="to_pyro converts condprob kernels"):
        to_pyro(pdist.Normal(0.0, 1.0))
    with pytest.raises(ValidationError, match="depends on its input"):
        to_pyro(k)
    with pytest.raises(ValidationError, match="a state has no input"):
        to_pyro(cp.State([1.0], ["u"]), "u")
    with pytest.raises(ValidationError, match="sample_shape"):
        cp.State([1.0], ["u"]).sample("3")


def test_laws_are_reachable_from_the_package():
    import importlib

    import condprob
    assert condprob.laws is importlib.import_module("condprob.laws")
    assert callable(condprob.laws.law_call_matches_log_prob)
    assert isinstance(SequenceKernel(fixed_bigram(), 1), cp.Morphism)
