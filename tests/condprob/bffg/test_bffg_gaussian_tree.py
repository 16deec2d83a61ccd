"""Linear-Gaussian trees: BFFG against exact Gaussian conditioning of the full joint."""

import math

import pytest
import torch

from condprob.bffg import (
    GaussianMessage,
    Model,
    PointMessage,
    backward_filter,
    forward_guide,
    posterior_marginals,
)
from condprob.bffg.rules import log_integral, pullback_linear
from condprob.gaussian import Gaussian, LinearGaussian

T = torch.float64


def mat(x):
    return torch.tensor(x, dtype=T)


PHI = mat([[0.8, 0.5], [-0.1, 0.8]])
BETA = mat([0.1, 0.2])
QS = mat([[0.2, 0.0], [0.0, 1.0]])
L = mat([[1.0, 0.0]])
R = mat([[1.0]])


def tree_model(singular=False):
    """x0 -> x1 -> x3, x0 -> x2; y1 = x1[0] + e, y2 = x2 + e, y3 = x3[0] + e."""
    q = mat([[0.2, 0.0], [0.0, 0.0]]) if singular else QS
    m = Model("x0", Gaussian(mat([0.5, -0.3]), mat([[1.0, 0.3], [0.3, 0.5]])))
    m.add_edge("x0", "x1", LinearGaussian(PHI, BETA, q))
    m.add_edge("x0", "x2", LinearGaussian(PHI.T, -BETA, QS))
    m.add_edge("x1", "x3", LinearGaussian(PHI @ PHI, BETA, q))
    obs = {"x1": (L, R, mat([0.7])), "x2": (torch.eye(2, dtype=T), 0.5 * torch.eye(2, dtype=T),
                                             mat([0.1, -0.4])), "x3": (L, R, mat([-1.2]))}
    for v, (Lv, Rv, y) in obs.items():
        m.observe(v, GaussianMessage.observation(Lv, Rv, y))
    return m, obs


def joint(model, obs):
    """Joint Gaussian of (x0, x1, x2, x3, y1, y2, y3) and the coordinates of each block."""
    g = model.graph
    prior = model.prior()
    names = ["x0", "x1", "x2", "x3"]
    blocks = {}
    # each variable = mean + factor @ (all independent unit normals); 4 state noises + obs noises
    width = 2 * 4 + 1 + 2 + 1
    fac = {}
    col = 0

    def noise(cov):
        nonlocal col
        k = cov.shape[0]
        f = torch.zeros(k, width, dtype=T)
        w, v = torch.linalg.eigh(cov)
        f[:, col:col + k] = v * w.clamp(min=0).sqrt()
        col += k
        return f

    means = {"x0": prior.mean}
    fac["x0"] = noise(prior.cov)
    for v in names[1:]:
        u = next(iter(g.predecessors(v)))
        k = model.kernel(u, v)
        means[v] = k.matrix @ means[u] + k.offset
        fac[v] = k.matrix @ fac[u] + noise(k.cov)
    for v, (Lv, Rv, _) in obs.items():
        means["y" + v] = Lv @ means[v]
        fac["y" + v] = Lv @ fac[v] + noise(Rv)
    order = names + ["y" + v for v in obs]
    start = 0
    for v in order:
        blocks[v] = slice(start, start + means[v].shape[0])
        start += means[v].shape[0]
    mean = torch.cat([means[v] for v in order])
    F = torch.cat([fac[v] for v in order])
    return Gaussian(mean, F @ F.T), blocks


@pytest.mark.parametrize("singular", [False, True])
def test_tree_marginals_and_evidence_equal_exact_conditioning(singular):
    model, obs = tree_model(singular)
    filt = backward_filter(model)
    marg = posterior_marginals(filt)
    j, blocks = joint(model, obs)
    yidx = torch.cat([torch.arange(blocks["y" + v].start, blocks["y" + v].stop) for v in obs])
    yval = torch.cat([obs[v][2] for v in obs])
    A = torch.zeros(len(yidx), j.mean.shape[0], dtype=T)
    A[torch.arange(len(yidx)), yidx] = 1
    post = j.condition_linear(A, yval)
    for v in ["x0", "x1", "x2", "x3"]:
        s = blocks[v]
        assert torch.allclose(marg[v].mean, post.mean[s], atol=1e-10, rtol=0)
        assert torch.allclose(marg[v].cov, post.cov[s, s], atol=1e-10, rtol=0)
    ymarg = Gaussian(j.mean[yidx], j.cov[yidx][:, yidx])
    assert abs(filt.log_evidence.item() - ymarg.log_prob(yval).item()) < 1e-10


def test_guided_samples_have_zero_log_weight_and_right_moments():
    model, obs = tree_model()
    filt = backward_filter(model)
    assert filt.exact
    s = forward_guide(filt, 20000, seed=1)
    assert torch.equal(s.log_weights, torch.zeros(20000, dtype=T))
    assert s.ess() == pytest.approx(20000)
    assert s.log_evidence().item() == pytest.approx(filt.log_evidence.item(), abs=1e-12)
    marg = posterior_marginals(filt)
    for v in ["x0", "x1", "x2", "x3"]:
        x = s.values[v]
        se = marg[v].cov.diagonal().sqrt() / math.sqrt(20000)
        assert ((x.mean(0) - marg[v].mean).abs() < 4 * se).all()
        emp = torch.cov(x.T)
        assert torch.allclose(emp, marg[v].cov, atol=0.05)


def test_pullback_matches_integral_against_density():
    """c' of the pullback equals log of the Gaussian integral computed a second way."""
    h = GaussianMessage.observation(torch.eye(2, dtype=T), mat([[0.3, 0.1], [0.1, 0.4]]),
                                    mat([0.2, -0.1]))
    A, b, Q = PHI, BETA, QS
    x = mat([0.4, 1.1])
    pulled = pullback_linear(h, A, b, Q)
    direct = Gaussian(A @ x + b, Q + mat([[0.3, 0.1], [0.1, 0.4]])).log_prob(mat([0.2, -0.1]))
    assert abs(pulled.log_h(x) - direct) < 1e-12
    assert abs(log_integral(h, A @ x + b, Q) - direct) < 1e-12


def test_singular_message_and_zero_noise():
    h = GaussianMessage.observation(L, R, mat([0.3]))        # H has rank 1
    pulled = pullback_linear(h, PHI, BETA, torch.zeros(2, 2, dtype=T))   # deterministic kernel
    x = mat([0.2, 0.9])
    assert abs(pulled.log_h(x) - h.log_h(PHI @ x + BETA)) < 1e-14


def test_fusing_identical_messages_doubles_log_h():
    h = GaussianMessage.observation(torch.eye(2, dtype=T), 0.5 * torch.eye(2, dtype=T),
                                    mat([1.0, 2.0]))
    x = mat([[0.3, -0.2], [1.0, 0.5]])
    assert torch.allclose((h & h).log_h(x), 2 * h.log_h(x), atol=1e-14, rtol=0)


def test_covariance_form_roundtrip():
    h = GaussianMessage.observation(torch.eye(2, dtype=T), mat([[0.5, 0.1], [0.1, 0.3]]),
                                    mat([1.0, 2.0]))
    nu, P, s = h.to_covariance()
    assert h.allclose(GaussianMessage.from_covariance(nu, P, s), atol=1e-12)


def test_exactly_observed_leaf_gives_density():
    m = Model("x0", Gaussian(mat([0.0, 0.0]), torch.eye(2, dtype=T)))
    k = LinearGaussian(PHI, BETA, QS)
    m.add_edge("x0", "x1", k)
    v = mat([0.3, 0.2])
    m.observe("x1", PointMessage(v))
    filt = backward_filter(m)
    direct = (Gaussian(mat([0.0, 0.0]), torch.eye(2, dtype=T)) >> k).log_prob(v)
    assert abs(filt.log_evidence - direct) < 1e-12
    marg = posterior_marginals(filt)
    assert torch.equal(marg["x1"].mean, v)
    s = forward_guide(filt, 10, seed=0)
    assert torch.equal(s.values["x1"], v.expand(10, 2))


def test_exactly_observed_root():
    """A root observed exactly: evidence = prior density at v times the children's message."""
    prior = Gaussian(mat([0.1, 0.2]), mat([[1.0, 0.2], [0.2, 0.5]]))
    k = LinearGaussian(PHI, BETA, QS)
    v, y = mat([0.4, -0.1]), mat([0.3])
    m = Model("x0", prior).add_edge("x0", "x1", k)
    m.observe("x0", PointMessage(v))
    m.observe("x1", GaussianMessage.observation(L, R, y))
    filt = backward_filter(m)
    want = prior.log_prob(v) + Gaussian(L @ (PHI @ v + BETA), L @ QS @ L.T + R).log_prob(y)
    assert abs(filt.log_evidence - want) < 1e-12
    marg = posterior_marginals(filt)
    assert torch.equal(marg["x0"].mean, v) and torch.equal(marg["x0"].cov, torch.zeros(2, 2,
                                                                                         dtype=T))
    s = forward_guide(filt, 5, seed=0)
    assert torch.equal(s.values["x0"], v.expand(5, 2))
