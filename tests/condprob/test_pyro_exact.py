"""condprob.pyro.exact against Pyro's own enumeration and Kalman filter."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import TraceEnum_ELBO, config_enumerate

import condprob as cp
from condprob.dsl import Mixture
from condprob.pyro import exact

T = torch.float64


def sprinkler(wet):
    rain = pyro.sample("rain", dist.Bernoulli(torch.tensor(0.2, dtype=T)))
    season = pyro.sample("season", dist.Categorical(torch.tensor([0.5, 0.3, 0.2], dtype=T)))
    on = torch.tensor([0.6, 0.3, 0.1], dtype=T)[season.long()]
    sprinkler = pyro.sample("sprinkler", dist.Bernoulli(on * (1 - 0.9 * rain)))
    p = torch.tensor([[0.01, 0.8], [0.9, 0.99]], dtype=T)[rain.long(), sprinkler.long()]
    with pyro.plate("obs", len(wet)):
        pyro.sample("wet", dist.Bernoulli(p), obs=wet)


def test_discrete_model_matches_pyro_enumeration():
    wet = torch.tensor([1.0, 1.0, 0.0], dtype=T)
    post = exact(sprinkler)(wet)
    assert isinstance(post, cp.State)
    rain = {r: sum(v for (rr, _, _), v in post.as_dict().items() if rr == r) for r in (0.0, 1.0)}
    pyro.clear_param_store()
    marg = TraceEnum_ELBO(max_plate_nesting=1).compute_marginals(
        config_enumerate(sprinkler), lambda wet: None, wet)
    ref = marg["rain"].log_prob(torch.tensor(1.0, dtype=T)).exp()
    assert abs(rain[1.0] - float(ref)) < 1e-12


def _lssm():
    f = torch.tensor([[0.9, 0.2], [-0.1, 0.8]], dtype=T)
    q = torch.tensor([[0.1, 0.02], [0.02, 0.05]], dtype=T)
    h = torch.tensor([[1.0], [0.5]], dtype=T)
    r = torch.tensor([[0.3]], dtype=T)
    return f, q, h, r, torch.tensor([0.2, -0.3], dtype=T), torch.eye(2, dtype=T)


def lssm_model(ys):
    f, q, h, r, m0, p0 = _lssm()
    z = pyro.sample("z_init", dist.MultivariateNormal(m0, p0))
    for t, y in enumerate(ys):
        z = pyro.sample(f"z_{t}", dist.MultivariateNormal(z @ f, q))
        pyro.sample(f"y_{t}", dist.MultivariateNormal(z @ h, r), obs=y)


def test_linear_state_space_matches_pyro_kalman_filter():
    ys = torch.tensor([[0.5], [0.1], [-0.4], [0.3], [0.8]], dtype=T)
    post = exact(lssm_model)(ys)
    assert isinstance(post, cp.Gaussian)
    last = post.marginal(f"z_{len(ys) - 1}")
    f, q, h, r, m0, p0 = _lssm()
    hmm = dist.GaussianHMM(dist.MultivariateNormal(m0, p0), f, dist.MultivariateNormal(
        torch.zeros(2, dtype=T), q), h, dist.MultivariateNormal(torch.zeros(1, dtype=T), r),
        duration=len(ys))
    ref = hmm.filter(ys)
    torch.testing.assert_close(last.mean, ref.loc, atol=1e-10, rtol=0)
    torch.testing.assert_close(last.cov, ref.covariance_matrix, atol=1e-10, rtol=0)


def test_hybrid_pyro_model():
    def model(y):
        b = pyro.sample("b", dist.Bernoulli(torch.tensor(0.5, dtype=T)))
        x = pyro.sample("x", dist.Normal(3.0 if b else 0.0, 1.0))
        pyro.sample("y", dist.Normal(x, 0.5), obs=y)
    post = exact(model)(torch.tensor(2.5, dtype=T))
    assert isinstance(post, Mixture) and post.space == cp.Euclidean(1, "x")
    ratio = torch.exp(torch.tensor(-0.5 * (0.25 - 6.25) / 1.25, dtype=T))
    assert abs(float(post.prob(1.0)) - float(ratio / (1 + ratio))) < 1e-12


def test_sites_outside_the_fragment_are_named():
    def gamma_site():
        pyro.sample("rate", dist.Gamma(1.0, 1.0))
    with pytest.raises(TypeError, match="site 'rate': Gamma is outside"):
        exact(gamma_site)()

    def square():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(x * x, 1.0), obs=torch.tensor(1.0))
    with pytest.raises(TypeError, match="product x \\* x is not affine in the Gaussian variable x"):
        exact(square)()

    def logistic():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("b", dist.Bernoulli(logits=x))
    with pytest.raises(TypeError, match="site 'b'"):
        exact(logistic)()

    def batched_mvn():
        pyro.sample("v", dist.MultivariateNormal(torch.zeros(3, 2), torch.eye(2)))
    with pytest.raises(TypeError, match="site 'v': batched"):
        exact(batched_mvn)()


def test_inconsistent_observation_names_the_site():
    def model():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(x, 0.0), obs=torch.tensor(1.0))
        pyro.sample("y2", dist.Normal(x, 0.0), obs=torch.tensor(2.0))
    with pytest.raises(cp.ConditioningError, match="y2 =="):
        exact(model)()


def test_plate_of_discrete_latents_matches_closed_form():
    data = torch.tensor([0.5, 2.5, 1.0], dtype=T)

    def model():
        with pyro.plate("n", 3):
            z = pyro.sample("z", dist.Bernoulli(torch.tensor(0.3, dtype=T)))
            pyro.sample("x", dist.Normal(2.0 * z, 1.0), obs=data)
    post = exact(model)()
    assert isinstance(post, cp.State) and len(post.as_dict()) == 8
    like1 = 0.3 * torch.exp(-0.5 * (data - 2.0) ** 2)
    p1 = like1 / (like1 + 0.7 * torch.exp(-0.5 * data**2))
    for i in range(3):
        marginal = sum(v for lab, v in post.as_dict().items() if lab[i] == 1.0)
        assert abs(marginal - float(p1[i])) < 1e-12


def test_conversions():
    from condprob.pyro import from_pyro, to_pyro
    g = cp.Gaussian([1.0], [[2.0]])
    assert isinstance(to_pyro(g), dist.MultivariateNormal)
    s = from_pyro(dist.Categorical(torch.tensor([0.25, 0.75], dtype=T)))
    assert isinstance(s, cp.State) and s.as_dict() == {0: 0.25, 1: 0.75}
    assert isinstance(to_pyro(s), dist.Categorical)
    assert from_pyro(dist.Normal(torch.tensor([0.0], dtype=T), 2.0)).cov.tolist() == [[4.0]]
    with pytest.raises(cp.ValidationError, match="depends on its input"):
        to_pyro(cp.LinearGaussian([[1.0]]))


def test_delta_observation_is_an_exact_equation():
    def model():
        x = pyro.sample("x", dist.Normal(torch.tensor(0.0, dtype=T), 1.0))
        pyro.sample("y", dist.Delta(2 * x + 1), obs=3.0)
    post = exact(model)()
    assert post.mean.tolist() == [1.0] and post.cov.tolist() == [[0.0]]

    def noisy(delta):
        x = pyro.sample("x", dist.Normal(torch.tensor(0.5, dtype=T), 2.0))
        if delta:
            e = pyro.sample("e", dist.Normal(torch.tensor(0.0, dtype=T), 0.5))
            pyro.sample("y", dist.Delta(x + e), obs=torch.tensor(1.5, dtype=T))
        else:
            pyro.sample("y", dist.Normal(x, 0.5), obs=torch.tensor(1.5, dtype=T))
    with_delta, direct = exact(noisy)(True).marginal("x"), exact(noisy)(False)
    # x | x + e == 1.5: mean 0.5 + 4 / 4.25 (1.5 - 0.5), variance 4 - 16 / 4.25
    for post in (with_delta, direct):
        torch.testing.assert_close(post.mean, torch.tensor([0.5 + 4 / 4.25], dtype=T),
                                   atol=1e-14, rtol=0)
        torch.testing.assert_close(post.cov, torch.tensor([[4 - 16 / 4.25]], dtype=T),
                                   atol=1e-14, rtol=0)


def test_inconsistent_delta_observation_names_the_site():
    def model():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Delta(0 * x + 1), obs=3.0)
    with pytest.raises(cp.ConditioningError, match="y == 3.0: the condition is inconsistent"):
        exact(model)()

    def twice():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Delta(x), obs=1.0)
        pyro.sample("z", dist.Delta(2 * x), obs=2.5)
    with pytest.raises(cp.ConditioningError, match="z == 2.5"):
        exact(twice)()


def test_deterministic_site_is_a_latent_affine_function():
    def model():
        x = pyro.sample("x", dist.Normal(torch.tensor(0.0, dtype=T), 1.0))
        y = pyro.deterministic("y", 2 * x + 1)
        pyro.sample("obs", dist.Normal(y, 1.0), obs=torch.tensor(3.0, dtype=T))
    post = exact(model)()
    assert post.cod == cp.Euclidean(1, "x") @ cp.Euclidean(1, "y")
    # x | 2x + 1 + N(0, 1) == 3: precision 1 + 4, mean 2 * 2 / 5
    torch.testing.assert_close(post.mean, torch.tensor([0.8, 2.6], dtype=T), atol=1e-14, rtol=0)
    torch.testing.assert_close(post.cov, torch.tensor([[0.2, 0.4], [0.4, 0.8]], dtype=T),
                               atol=1e-14, rtol=0)


def test_a_point_mass_branch_dominates_a_density_branch():
    def model():
        b = pyro.sample("b", dist.Bernoulli(torch.tensor(0.5, dtype=T)))
        x = pyro.sample("x", dist.Normal(torch.tensor(0.0, dtype=T), 1.0))
        pyro.sample("y", dist.Delta(x if b else torch.tensor(1.0, dtype=T)),
                    obs=torch.tensor(1.0, dtype=T))
        return x
    post = exact(model)()
    assert isinstance(post, Mixture) and post.prob(0.0) == 1


@pytest.mark.parametrize(("site", "value", "message"), [
    (lambda: dist.Bernoulli(torch.tensor(0.3, dtype=T)), 0.5, "0.5 is outside the support"),
    (lambda: dist.Bernoulli(torch.tensor(0.3, dtype=T)), -1.0, "outside the support"),
    (lambda: dist.Categorical(torch.tensor([0.5, 0.5], dtype=T)), 2.0, "outside the support"),
    (lambda: dist.Categorical(torch.tensor([0.5, 0.5], dtype=T)), 0.5, "outside the support"),
    (lambda: dist.Normal(torch.tensor(0.0, dtype=T), 1.0), float("inf"), "non-finite"),
    (lambda: dist.Normal(torch.tensor(0.0, dtype=T), 1.0), float("nan"), "non-finite"),
])
def test_observations_outside_the_support_name_the_site(site, value, message):
    def model():
        pyro.sample("s", site(), obs=torch.tensor(value, dtype=T))
    with pytest.raises(cp.ValidationError, match=f"site 's': .*{message}"):
        exact(model)()


def test_discrete_observations_broadcast_against_the_site():
    def model(data):
        p = pyro.sample("p", dist.Bernoulli(torch.tensor(0.5, dtype=T)))
        pyro.sample("x", dist.Bernoulli(torch.tensor([0.2, 0.9], dtype=T)[p.long()]), obs=data)
    post = exact(model)(torch.tensor([1.0, 1.0, 0.0], dtype=T))
    # P(p = 1 | data) from 0.9 * 0.9 * 0.1 against 0.2 * 0.2 * 0.8
    assert abs(float(post.as_dict()[1.0]) - 0.081 / (0.081 + 0.032)) < 1e-12

    def mismatch():
        with pyro.plate("n", 2):
            pyro.sample("x", dist.Bernoulli(torch.tensor(0.5, dtype=T)),
                        obs=torch.ones(3, dtype=T))
    with pytest.raises(cp.ValidationError, match="site 'x': an observed value of shape"):
        exact(mismatch)()
