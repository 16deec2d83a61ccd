"""Batched Gaussian states and kernels: every operation equals looping over the batch (float64,
1e-12), including 1,000 Kalman filters and 1,000 GP posteriors at once."""

import math

import pytest
import torch
from hypothesis import given, settings

import condprob as cp
from condprob.gaussian import (
    Gaussian,
    LinearEquation,
    LinearGaussian,
    SingularMultivariateNormal,
    copy,
    identity,
)
from condprob.laws import gaussian as glaws

T = torch.float64
ATOL = 1e-12
X, Y = cp.Euclidean(2, "x"), cp.Euclidean(1, "y")


def rand_cov(gen: torch.Generator, *batch: int, n: int, rank: int | None = None) -> torch.Tensor:
    f = torch.randn(*batch, n, n if rank is None else rank, generator=gen, dtype=T)
    return f @ f.mT


def entry(k: LinearGaussian, i: tuple[int, ...]) -> LinearGaussian:
    """Batch entry i of a batched kernel or state, as an unbatched one."""
    full = k.expand(k.batch_shape)
    if isinstance(k, Gaussian):
        return Gaussian(full.mean[i], full.cov[i], k.cod, validate=False)
    return LinearGaussian(full.matrix[i], full.offset[i], full.cov[i], k.dom, k.cod,
                          validate=False)


def same(batched: LinearGaussian, loop: list[LinearGaussian], idx: list[tuple[int, ...]]) -> None:
    assert batched.dom == loop[0].dom and batched.cod == loop[0].cod
    for i, one in zip(idx, loop, strict=True):
        got = entry(batched, i)
        for u, v in ((got.matrix, one.matrix), (got.offset, one.offset), (got.cov, one.cov)):
            torch.testing.assert_close(u, v, atol=ATOL, rtol=0)


def indices(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [tuple(int(j) for j in i) for i in torch.cartesian_prod(
        *(torch.arange(s) for s in shape)).reshape(-1, len(shape))]


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_batch_shape_broadcasts_and_is_checked(gen):
    g = Gaussian(torch.zeros(4, 3, dtype=T), rand_cov(gen, n=3))
    assert g.batch_shape == (4,) and g.event_shape == (3,)
    k = LinearGaussian(torch.randn(5, 1, 2, 3, generator=gen, dtype=T), torch.zeros(2, dtype=T),
                       rand_cov(gen, 4, n=2))
    assert k.batch_shape == (5, 4)
    assert (g >> k).batch_shape == (5, 4)
    with pytest.raises(cp.ValidationError, match="do not broadcast"):
        Gaussian(torch.zeros(3, 2, dtype=T), rand_cov(gen, 4, n=2))
    with pytest.raises(cp.ValidationError, match="not positive semi-definite.*batch entry"):
        Gaussian(torch.zeros(2, 2, dtype=T), torch.stack([torch.eye(2, dtype=T),
                                                          -torch.eye(2, dtype=T)]))


def test_composition_tensor_marginal_equal_the_loop(gen):
    b = (3, 2)
    g = Gaussian(torch.randn(*b, 3, generator=gen, dtype=T), rand_cov(gen, *b, n=3, rank=2),
                 X @ Y)
    k = LinearGaussian(torch.randn(3, 1, 2, 3, generator=gen, dtype=T),
                       torch.randn(2, 2, generator=gen, dtype=T), rand_cov(gen, 2, n=2), X @ Y, 2)
    h = Gaussian(torch.randn(2, 2, generator=gen, dtype=T), rand_cov(gen, n=2), 2)
    idx = indices(b)
    same(g >> k, [entry(g, i) >> entry(k, i) for i in idx], idx)
    same(g @ h, [entry(g, i) @ entry(h, i[1:]) for i in idx], idx)
    same(g.marginal("y", "x"), [entry(g, i).marginal("y", "x") for i in idx], idx)
    same(k.at(torch.ones(3, 1, 3, dtype=T)), [entry(k, i).at(torch.ones(3, dtype=T))
                                              for i in idx], idx)


def test_conditioning_and_evidence_equal_the_loop(gen):
    b = (4,)
    # a singular prior in every other entry: both the Cholesky and the eigh paths run
    covs = torch.stack([rand_cov(gen, n=4, rank=4 if i % 2 else 2) for i in range(4)])
    g = Gaussian(torch.randn(*b, 4, generator=gen, dtype=T), covs)
    a = torch.randn(2, 4, generator=gen, dtype=T)
    x = g.sample(generator=gen)                              # consistent values, (4, 4)
    rhs = (a @ x[..., None])[..., 0]
    post, logp, deficit = g.condition_evidence(a, rhs)
    for i in indices(b):
        one, lp, d = entry(g, i).condition_evidence(a, rhs[i])
        same(post, [one], [i])
        assert abs(float(logp[i]) - float(lp)) < 1e-10 and int(deficit[i]) == int(d)
    # observations of coordinates, values batched, prior shared
    shared = Gaussian(torch.zeros(4, dtype=T), rand_cov(gen, n=4))
    vals = torch.randn(6, 2, generator=gen, dtype=T)
    post = shared.condition_linear(LinearEquation.observe([3, 1], vals, 4))
    assert post.batch_shape == (6,)
    loop = [shared.condition_linear(LinearEquation.observe([3, 1], vals[i], 4)) for i in range(6)]
    same(post, loop, indices((6,)))
    torch.testing.assert_close(post.variance, torch.stack([p.variance for p in loop]),
                               atol=ATOL, rtol=0)
    by_factor = cp.condition(Gaussian(torch.zeros(3, dtype=T), rand_cov(gen, n=3), X @ Y),
                             {"y": torch.tensor([[1.0], [2.0]], dtype=T)})
    assert by_factor.batch_shape == (2,) and by_factor.mean[:, 2].tolist() == [1.0, 2.0]


def test_observed_blocks_of_different_ranks_equal_the_loop(gen):
    # the conditioned blocks Q[o, o] have ranks 1, 2, 3 and 0 across the batch: the gain is
    # formed on the directions some entry keeps, each entry's own zero directions dropped
    covs = torch.stack([rand_cov(gen, n=4, rank=k) for k in (1, 2, 3)] + [torch.zeros(4, 4, dtype=T)])
    g = Gaussian(torch.randn(4, 4, generator=gen, dtype=T), covs)
    x = g.sample(generator=gen)
    eq = LinearEquation.observe([0, 2, 3], x[:, [0, 2, 3]], 4)
    post, logp, deficit = g.condition_evidence(eq)
    assert deficit.tolist() == [2, 1, 0, 3]
    for i in indices((4,)):
        one, lp, d = entry(g, i).condition_evidence(
            LinearEquation.observe([0, 2, 3], x[i][[0, 2, 3]], 4))
        same(post, [one], [i])
        torch.testing.assert_close(post.variance[i], one.variance, atol=ATOL, rtol=0)
        assert abs(float(logp[i]) - float(lp)) < 1e-10 and int(deficit[i]) == int(d)


def test_inconsistent_entry_is_named(gen):
    g = Gaussian(torch.zeros(3, 2, dtype=T), torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=T))
    rhs = torch.tensor([[0.0], [0.0], [1.0]], dtype=T)
    with pytest.raises(cp.ConditioningError, match=r"inconsistent.*batch entry \(2,\)"):
        g.condition_linear([[1.0, -1.0]], rhs)


def test_update_invert_disintegrate_equal_the_loop(gen):
    b = (5,)
    prior = Gaussian(torch.randn(*b, 2, generator=gen, dtype=T), rand_cov(gen, *b, n=2), X)
    c = LinearGaussian(torch.randn(3, 2, generator=gen, dtype=T), torch.zeros(3, dtype=T),
                       rand_cov(gen, *b, n=3, rank=1), X, 3)
    y = torch.randn(*b, 3, generator=gen, dtype=T)
    idx = indices(b)
    same(cp.update(prior, (c, y)), [cp.update(entry(prior, i), (entry(c, i), y[i]))
                                    for i in idx], idx)
    same(cp.invert(c, prior), [cp.invert(entry(c, i), entry(prior, i)) for i in idx], idx)
    joint = prior @ Gaussian(torch.zeros(*b, 1, dtype=T), rand_cov(gen, *b, n=1), Y)
    d = cp.disintegrate(joint, "y")
    loop = [cp.disintegrate(entry(joint, i), "y") for i in idx]
    same(d.marginal, [one.marginal for one in loop], idx)
    same(d.kernel, [one.kernel for one in loop], idx)


def test_densities_sampling_and_pyro_laws(gen):
    b = (3,)
    g = Gaussian(torch.randn(*b, 2, generator=gen, dtype=T),
                 torch.stack([rand_cov(gen, n=2), rand_cov(gen, n=2, rank=1),
                              rand_cov(gen, n=2)]))
    ys = torch.cat([g.sample((4,), generator=gen), torch.randn(1, 3, 2, generator=gen, dtype=T)])
    lp = g.log_prob(ys)
    assert lp.shape == (5, 3)
    for i in indices(b):
        torch.testing.assert_close(lp[:, i[0]], entry(g, i).log_prob(ys[:, i[0]]), atol=ATOL,
                                   rtol=0)
    assert math.isfinite(float(lp[:4, 1].max())) and float(lp[4, 1]) == -math.inf
    law = g.to_pyro()
    assert isinstance(law, SingularMultivariateNormal) and law.batch_shape == (3,)
    torch.testing.assert_close(law.log_prob(ys), lp, atol=0, rtol=0)
    pd = Gaussian(g.mean, g.cov + torch.eye(2, dtype=T))
    assert type(pd.to_pyro()) is torch.distributions.MultivariateNormal or \
        pd.to_pyro().batch_shape == (3,)
    k = LinearGaussian(torch.eye(2, dtype=T).expand(3, 2, 2), None, torch.eye(2, dtype=T))
    assert k(torch.zeros(2, dtype=T)).batch_shape == (3,)
    assert k.sample(torch.zeros(2, dtype=T), (7,), generator=gen).shape == (7, 3, 2)
    probs = g.prob_below([1.0, -1.0], 0.2)
    for i in indices(b):
        assert abs(float(probs[i]) - float(entry(g, i).prob_below([1.0, -1.0], 0.2))) < ATOL


def test_thousand_kalman_filters_at_once(gen):
    """x_t = F x_{t-1} + N(0, Q), y_t = H x_t + N(0, R): 1,000 filters, one batched object."""
    nb, steps = 1000, 4
    f = torch.tensor([[1.0, 0.1], [0.0, 1.0]], dtype=T)
    trans = LinearGaussian(f, None, 0.01 * torch.eye(2, dtype=T))
    obs = LinearGaussian(torch.tensor([[1.0, 0.0]], dtype=T), None,
                         (0.1 + torch.rand(nb, 1, 1, generator=gen, dtype=T)) ** 2)
    ys = torch.randn(steps, nb, 1, generator=gen, dtype=T)
    state = Gaussian(torch.zeros(nb, 2, dtype=T), torch.eye(2, dtype=T))
    for t in range(steps):
        state = cp.update(state >> trans, (obs, ys[t]))
    assert state.batch_shape == (nb,)
    for i in range(0, nb, 97):
        one = Gaussian(torch.zeros(2, dtype=T), torch.eye(2, dtype=T))
        oi = entry(obs, (i,))
        for t in range(steps):
            one = cp.update(one >> trans, (oi, ys[t, i]))
        same(state, [one], [(i,)])


def test_thousand_gp_posteriors_at_once(gen):
    s = torch.linspace(0, 1, 50, dtype=T)
    k = torch.exp(-0.5 * (s[:, None] - s[None, :]) ** 2 / 0.2**2)
    idx = torch.tensor([3, 17, 30, 44])
    vals = torch.randn(1000, 4, generator=gen, dtype=T)
    prior = Gaussian(torch.zeros(50, dtype=T), k)
    post = prior.condition_linear(LinearEquation.observe(idx, vals, 50))
    var = post.variance
    assert post.mean.shape == var.shape == (1000, 50)
    for i in range(0, 1000, 111):
        one = prior.condition_linear(LinearEquation.observe(idx, vals[i], 50))
        torch.testing.assert_close(post.mean[i], one.mean, atol=ATOL, rtol=0)
        torch.testing.assert_close(var[i], one.variance, atol=ATOL, rtol=0)


def test_the_kernel_protocol(gen):
    """k(x) is a Pyro MultivariateNormal whose log_prob is k.log_prob(x, .); draws are input first
    and seeded by a generator only; a state leaves its input out."""
    import pyro
    import pyro.distributions as dist

    from condprob.protocol import law_at, log_prob_at, sample_at

    k = LinearGaussian(torch.randn(4, 2, 3, generator=gen, dtype=T), torch.zeros(2, dtype=T),
                       rand_cov(gen, n=2) + torch.eye(2, dtype=T))
    g = Gaussian(torch.randn(4, 2, generator=gen, dtype=T), rand_cov(gen, 4, n=2))
    x = torch.randn(4, 3, generator=gen, dtype=T)
    y = torch.randn(5, 4, 2, generator=gen, dtype=T)
    for kern, inp in ((k, x), (g, ())):
        law = law_at(kern, inp)
        assert isinstance(law, dist.MultivariateNormal)
        assert law.batch_shape == (4,) and law.event_shape == (2,)
        assert law.support.check(y).all()
        torch.testing.assert_close(law.log_prob(y), log_prob_at(kern, inp, y), atol=ATOL, rtol=0)
        a = sample_at(kern, inp, (3,), generator=cp.rng(7))
        assert a.shape == (3, 4, 2)
        torch.testing.assert_close(a, sample_at(kern, inp, (3,), generator=cp.rng(7)))
    torch.testing.assert_close(k(x).log_prob(y), k.log_prob(x, y), atol=ATOL, rtol=0)
    torch.testing.assert_close(g().log_prob(y), g.log_prob(y), atol=ATOL, rtol=0)

    def model():
        return pyro.sample("z", k(x).to_event(1))
    trace = pyro.poutine.trace(model).get_trace()
    assert trace.nodes["z"]["value"].shape == (4, 2)
    torch.testing.assert_close(trace.log_prob_sum(), k.log_prob(x, trace.nodes["z"]["value"]).sum(),
                               atol=1e-10, rtol=0)


def test_protocol_laws_hold_for_gaussian_kinds(gen):
    from condprob import laws

    k = LinearGaussian(torch.randn(3, 2, 2, generator=gen, dtype=T), None, rand_cov(gen, n=2))
    x, y = torch.randn(3, 2, generator=gen, dtype=T), torch.randn(6, 3, 2, generator=gen, dtype=T)
    laws.law_call_matches_log_prob(k, x, y)
    point = Gaussian([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]])            # singular: -inf off x = y
    laws.law_call_matches_log_prob(point, (), torch.tensor([[0.3, 0.3], [0.3, 0.4]], dtype=T))
    one = LinearGaussian([[2.0]], [1.0], [[0.25]], dtype=T)
    assert laws.law_sampling_matches_density(one, [0.5], -1.0, 5.0, generator=cp.rng(0)) >= 1e-3
    wrong = LinearGaussian([[2.0]], [1.1], [[0.25]], dtype=T)
    assert laws.law_sampling_matches_density(one, [0.5], -1.0, 5.0, generator=cp.rng(0),
                                             target=wrong) < 1e-6


@settings(max_examples=25)
@given(glaws.gaussian_states(2, batch=(3,)), glaws.gaussian_kernels(2, 2, batch=(3,)),
       glaws.gaussian_states(2, batch=(2, 1)), glaws.gaussian_kernels(2, 1, batch=(3,)))
def test_kernel_laws_hold_entrywise_on_batches(prior, c, first, second):
    assert prior.batch_shape == c.batch_shape == (3,) and first.batch_shape == (2, 1)
    glaws.law_inversion_gaussian(prior, c)
    glaws.law_discard_gaussian(c)
    joint = first >> copy(first.cod) >> (identity(first.cod) @ second)
    assert joint.batch_shape == (2, 3)
    glaws.law_disintegration_gaussian(joint, 0)
