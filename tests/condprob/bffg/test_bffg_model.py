"""Model validation errors, message validation, nonlinear Gaussian kernels, Kalman smoother."""

import math

import networkx as nx
import pytest
import torch

import condprob as cp
from condprob.bffg import (
    FiniteMessage,
    GaussianMessage,
    LinearSDE,
    Model,
    NonlinearGaussian,
    PointMessage,
    SDEKernel,
    backward_filter,
    forward_guide,
    posterior_marginals,
    time_grid,
)
from condprob.bffg.special import kalman_model, kalman_smoother
from condprob.errors import SpaceMismatchError, ValidationError
from condprob.finite import Kernel, State
from condprob.gaussian import Gaussian, LinearGaussian

T64 = torch.float64


def mat(x):
    return torch.tensor(x, dtype=T64)


PHI = mat([[0.8, 0.5], [-0.1, 0.8]])
BETA = mat([0.1, 0.2])
QS = mat([[0.2, 0.0], [0.0, 1.0]])
PRIOR = Gaussian(mat([0.0, 0.0]), torch.eye(2, dtype=T64))


def test_cycle_missing_kernel_several_parents():
    g = nx.DiGraph()
    g.add_edge("a", "b", kernel=LinearGaussian(PHI, BETA, QS))
    g.add_edge("b", "a", kernel=LinearGaussian(PHI, BETA, QS))
    with pytest.raises(ValidationError, match="cycle"):
        Model(graph=g).validate()
    m = Model("a", PRIOR)
    m.graph.add_edge("a", "b")
    with pytest.raises(ValidationError, match="'a' -> 'b' has no kernel"):
        m.validate()
    m = Model("a", PRIOR).add_edge("a", "b", LinearGaussian(PHI, BETA, QS))
    m.add_edge("a", "c", LinearGaussian(PHI, BETA, QS)).add_edge("c", "b", LinearGaussian(PHI))
    with pytest.raises(ValidationError, match="node 'b' has several parents"):
        m.validate()


def test_wrong_dimension_and_kinds():
    m = Model("a", PRIOR).add_edge("a", "b", LinearGaussian(torch.ones(2, 3, dtype=T64)))
    with pytest.raises(SpaceMismatchError, match="'a' -> 'b'"):
        m.validate()
    m = Model("a", PRIOR).add_edge("a", "b", LinearGaussian(PHI))
    m.observe("b", GaussianMessage.uninformative(3))
    with pytest.raises(SpaceMismatchError, match="node 'b'"):
        m.validate()
    with pytest.raises(ValidationError, match="root 'a' needs a prior"):
        Model("a", None).add_edge("a", "b", LinearGaussian(PHI)).validate()
    with pytest.raises(ValidationError, match="exactly one root"):
        Model(graph=nx.DiGraph([("a", "b"), ("c", "d")])).validate()
    with pytest.raises(ValidationError, match="empty"):
        Model().validate()
    with pytest.raises(ValidationError, match="unknown node"):
        Model("a", PRIOR).observe("zz", GaussianMessage.uninformative(2))
    m = Model("a", PRIOR)
    m.graph.add_edge("a", "b", kernel="not a kernel")
    with pytest.raises(ValidationError, match="unsupported kernel kind"):
        m.validate()


def test_auxiliary_errors():
    nl = NonlinearGaussian(lambda x: torch.sin(x), QS, 2, 2)
    with pytest.raises(ValidationError, match="needs an auxiliary LinearGaussian"):
        Model("a", PRIOR).add_edge("a", "b", nl).validate()
    sde = SDEKernel(lambda t, x: torch.sin(x), torch.eye(2, dtype=T64), time_grid(0, 1, 5), 2)
    with pytest.raises(ValidationError, match="needs an auxiliary LinearSDE"):
        Model("a", PRIOR).add_edge("a", "b", sde).validate()
    with pytest.raises(ValidationError, match="auxiliary must be a LinearSDE"):
        Model("a", PRIOR).add_edge("a", "b", sde, LinearGaussian(PHI)).validate()
    other = LinearSDE(PHI, BETA, torch.eye(2, dtype=T64), time_grid(0, 1, 7))
    with pytest.raises(ValidationError, match="time grid"):
        Model("a", PRIOR).add_edge("a", "b", sde, other).validate()
    with pytest.raises(SpaceMismatchError, match="auxiliary"):
        Model("a", PRIOR).add_edge("a", "b", nl, LinearGaussian(torch.ones(3, 2,
                                                                dtype=T64))).validate()


def test_message_errors():
    with pytest.raises(ValidationError, match="positive definite"):
        GaussianMessage.observation(mat([[1.0, 0.0]]), mat([[0.0]]), mat([1.0]))
    with pytest.raises(ValidationError, match="observation matrix L"):
        GaussianMessage.observation(mat([[1.0, 0.0]]), mat([[1.0]]), mat([1.0, 2.0]))
    with pytest.raises(ValidationError, match="non-finite"):
        GaussianMessage(0.0, mat([math.nan]), mat([[1.0]]))
    with pytest.raises(ValidationError, match="H has shape"):
        GaussianMessage(0.0, mat([1.0]), mat([[1.0, 0.0]]))
    with pytest.raises(ValidationError, match="full information"):
        GaussianMessage.observation(mat([[1.0, 0.0]]), mat([[1.0]]), mat([1.0])).to_covariance()
    with pytest.raises(ValidationError, match="disagree"):
        PointMessage(mat([1.0])) & PointMessage(mat([2.0]))
    with pytest.raises(TypeError, match="cannot fuse"):
        GaussianMessage.uninformative(1) & FiniteMessage.uninformative(State([0.5, 0.5], 2).cod)
    with pytest.raises(SpaceMismatchError):
        GaussianMessage.uninformative(1) & GaussianMessage.uninformative(2)
    with pytest.raises(ValidationError, match="negative"):
        FiniteMessage.likelihood([-1.0, 1.0], State([0.5, 0.5], 2).cod)
    m = Model("a", PRIOR).add_edge("a", "b", LinearGaussian(PHI, BETA, mat([[1.0, 0], [0, 0]])))
    m.observe("b", PointMessage(mat([0.0, 0.0])))
    with pytest.raises(ValidationError, match="needs a density"):
        backward_filter(m)


def test_noise_shape_error():
    m = Model("a", PRIOR).add_edge("a", "b", LinearGaussian(PHI, BETA, QS))
    filt = backward_filter(m)
    with pytest.raises(ValueError, match="noise for 'root'"):
        forward_guide(filt, 4, noise={"root": torch.zeros(3, 2, dtype=T64)})


def test_posterior_marginals_refuse_auxiliaries():
    nl = NonlinearGaussian(lambda x: x @ PHI.T + BETA, QS, 2, 2)
    m = Model("a", PRIOR).add_edge("a", "b", nl, LinearGaussian(PHI, BETA, QS))
    with pytest.raises(TypeError, match="'a' -> 'b'"):
        posterior_marginals(backward_filter(m))


def test_nonlinear_kernel_with_exact_linear_auxiliary_has_zero_weights():
    """A NonlinearGaussian whose mean is linear, with that linear map as auxiliary: w = 1."""
    nl = NonlinearGaussian(lambda x: x @ PHI.T + BETA, QS, 2, 2)
    aux = nl.linearise(mat([0.3, -0.2]))
    assert aux.allclose(LinearGaussian(PHI, BETA, QS), atol=1e-14)
    m = Model("a", PRIOR).add_edge("a", "b", nl, aux)
    m.observe("b", GaussianMessage.observation(mat([[1.0, 0.0]]), mat([[1.0]]), mat([0.5])))
    s = forward_guide(backward_filter(m), 100, seed=0)
    assert s.log_weights.abs().max() < 1e-12


def test_nonlinear_evidence_unbiased_against_quadrature():
    """x ~ N(0, 1), x1 ~ N(sin(2x) + x/2, 0.3), y ~ N(x1, 0.1): E[w] p~(y) = p(y) by quadrature."""
    nl = NonlinearGaussian(lambda x: torch.sin(2 * x) + x / 2, mat([[0.3]]), 1, 1)
    m = Model("x", Gaussian(mat([0.0]), mat([[1.0]])))
    m.add_edge("x", "x1", nl)
    m.observe("x1", GaussianMessage.observation(mat([[1.0]]), mat([[0.1]]), mat([0.9])))
    m.derive_auxiliaries()          # linearised at the prior mean 0
    assert m.auxiliary("x", "x1").allclose(nl.linearise(mat([0.0])), atol=0)
    grid = torch.linspace(-9, 9, 200001, dtype=T64)
    dens = torch.exp(-grid**2 / 2 - (0.9 - torch.sin(2 * grid) - grid / 2) ** 2 / 0.8) / (
        2 * math.pi * math.sqrt(0.4))
    exact = torch.trapezoid(dens, grid)
    filt = backward_filter(m)
    n = 20000
    s = forward_guide(filt, n, seed=4)
    r = torch.exp(s.log_weights + filt.log_evidence) / exact
    z = (r.mean() - 1) * math.sqrt(n) / r.std()
    assert abs(z.item()) < 3
    assert abs(torch.exp(filt.log_evidence).item() / exact.item() - 1) > 3 * r.std() / n**0.5
    # posterior mean of x by weights vs quadrature
    pm = torch.trapezoid(grid * dens, grid) / exact
    assert abs(s.mean("x").item() - pm.item()) < 4 * math.sqrt(1 / s.ess())
    assert nl.at(mat([0.0])).mean.item() == 0.0
    y = nl.sample(mat([[0.0], [1.0]]), generator=cp.rng(1))
    assert y.shape == (2, 1)
    assert torch.allclose(nl.log_prob(mat([0.0]), mat([0.1])),
                          Gaussian(mat([0.0]), mat([[0.3]])).log_prob(mat([0.1])), atol=1e-14)


def test_wrong_linear_auxiliary_reference_setting():
    """Reference setting: Phi, beta, Q = diag(.2, 1), observe x[0] with R = 1, Phi~ wrong."""
    phi_wrong = mat([[1.0, 0.5], [-0.1, 1.0]])
    ys = [mat([0.7]), mat([-0.2]), mat([1.1])]
    m = Model(0, PRIOR)
    for t in range(1, 4):
        m.add_edge(t - 1, t, LinearGaussian(PHI, BETA, QS), LinearGaussian(phi_wrong, BETA, QS))
        m.observe(t, GaussianMessage.observation(mat([[1.0, 0.0]]), mat([[1.0]]), ys[t - 1]))
    exact_m = Model(0, PRIOR)
    for t in range(1, 4):
        exact_m.add_edge(t - 1, t, LinearGaussian(PHI, BETA, QS))
        exact_m.observe(t, GaussianMessage.observation(mat([[1.0, 0.0]]), mat([[1.0]]),
                                                       ys[t - 1]))
    exact_f = backward_filter(exact_m)
    truth = posterior_marginals(exact_f)
    n = 10000
    s = forward_guide(backward_filter(m), n, seed=9)
    w = s.weights()
    for t in range(4):
        x = s.values[t]
        est = w @ x
        se = ((w[:, None] ** 2) * (x - est) ** 2).sum(0).sqrt()
        assert ((est - truth[t].mean).abs() < 3 * se + 1e-12).all(), t
    r = torch.exp(s.log_evidence() - exact_f.log_evidence)
    assert abs(r.item() - 1) < 3 * math.sqrt(n / s.ess() - 1) / math.sqrt(n) + 1e-12


def test_kalman_smoother_equals_conditioning():
    trans = LinearGaussian(PHI, BETA, QS)
    obs = LinearGaussian(mat([[1.0, 0.0]]), mat([0.3]), mat([[0.5]]))
    ys = mat([[0.7], [-0.2], [1.1], [0.4]])
    marg, logev = kalman_smoother(PRIOR, trans, obs, ys)
    # joint of (x_0..x_3, y_0..y_3) by stacking kernels, then exact conditioning
    d, T = 2, 4
    means, facs, col = [], [], 0
    width = d * T + T
    F0 = torch.zeros(d, width, dtype=T64)
    F0[:, :d] = torch.eye(d, dtype=T64)
    xs_m, xs_f = [PRIOR.mean], [F0]
    col = d
    qs = torch.linalg.cholesky(QS)
    for _ in range(1, T):
        f = PHI @ xs_f[-1]
        f[:, col:col + d] += qs
        col += d
        xs_m.append(PHI @ xs_m[-1] + BETA)
        xs_f.append(f)
    for t in range(T):
        f = obs.matrix @ xs_f[t]
        f[:, col] += math.sqrt(0.5)
        col += 1
        means.append(obs.matrix @ xs_m[t] + obs.offset)
        facs.append(f)
    mean = torch.cat(xs_m + means)
    F = torch.cat(xs_f + facs)
    joint = Gaussian(mean, F @ F.T)
    A = torch.zeros(T, d * T + T, dtype=T64)
    A[torch.arange(T), d * T + torch.arange(T)] = 1
    post = joint.condition_linear(A, ys[:, 0])
    for t in range(T):
        s = slice(d * t, d * t + d)
        assert torch.allclose(marg[t].mean, post.mean[s], atol=1e-10, rtol=0)
        assert torch.allclose(marg[t].cov, post.cov[s, s], atol=1e-10, rtol=0)
    ymarg = Gaussian(mean[d * T:], (F @ F.T)[d * T:, d * T:])
    assert abs(logev.item() - ymarg.log_prob(ys[:, 0]).item()) < 1e-10
    with pytest.raises(ValidationError, match="observations must have shape"):
        kalman_model(PRIOR, trans, obs, mat([1.0, 2.0]))


def test_finite_kernel_on_euclidean_node_is_rejected():
    k = Kernel([[0.5, 0.5], [0.5, 0.5]], 2, 2)
    with pytest.raises(SpaceMismatchError):
        Model("a", PRIOR).add_edge("a", "b", k).validate()


def test_exactly_observed_child_with_auxiliary():
    """Point observation below a kernel with a (wrong) auxiliary: weights fix the evidence."""
    k = LinearGaussian(PHI, BETA, QS)
    v = mat([0.4, -0.3])
    exact = (PRIOR >> k).log_prob(v)
    for kern in (k, NonlinearGaussian(lambda x: x @ PHI.T + BETA, QS, 2, 2)):
        m = Model("a", PRIOR).add_edge("a", "b", kern, LinearGaussian(PHI.T, BETA, 2 * QS))
        m.observe("b", PointMessage(v))
        filt = backward_filter(m)
        s = forward_guide(filt, 20000, seed=1)
        r = torch.exp(s.log_weights + filt.log_evidence - exact)
        assert abs((r.mean() - 1).item()) < 3 * r.std().item() / math.sqrt(20000)
        assert abs(torch.exp(filt.log_evidence - exact).item() - 1) > 0.05


def test_derive_auxiliaries_along_the_noise_free_run():
    grid = time_grid(0.0, 1.0, 20)
    sde = SDEKernel(lambda t, x: x @ PHI.T + BETA, torch.eye(2, dtype=T64), grid, 2)
    nl = NonlinearGaussian(lambda x: x @ PHI.T + BETA, QS, 2, 2)
    m = Model("a", PRIOR).add_edge("a", "b", nl).add_edge("b", "c", sde)
    m.observe("c", GaussianMessage.observation(torch.eye(2, dtype=T64), torch.eye(2, dtype=T64),
                                               mat([0.3, 0.1])))
    m.derive_auxiliaries()
    assert m.auxiliary("a", "b").allclose(LinearGaussian(PHI, BETA, QS), atol=1e-14)
    aux = m.auxiliary("b", "c")
    assert aux.piecewise and torch.allclose(aux.step_coefficients(3)[0], PHI, atol=1e-14)
    s = forward_guide(backward_filter(m), 50, seed=0)
    assert s.log_weights.abs().max() < 1e-10
    with pytest.raises(ValidationError, match="Gaussian prior"):
        Model("a", State([0.5, 0.5], 2)).derive_auxiliaries()
    fin = Model("a", PRIOR)
    fin.graph.add_edge("a", "b", kernel=Kernel([[1.0]], 1, 1))
    with pytest.raises(ValidationError, match="cannot derive"):
        fin.derive_auxiliaries()


def test_state_dependent_covariance_matches_fixed():
    mean = lambda x: torch.tanh(x) @ PHI.T  # noqa: E731
    fixed = NonlinearGaussian(mean, QS, 2, 2)
    func = NonlinearGaussian(mean, lambda x: QS.expand(x.shape[0], 2, 2), 2, 2)
    out = []
    for k in (fixed, func):
        m = Model("a", PRIOR).add_edge("a", "b", k)
        m.observe("b", GaussianMessage.observation(mat([[1.0, 0.0]]), mat([[0.2]]), mat([0.5])))
        out.append(forward_guide(backward_filter(m.derive_auxiliaries()), 64, seed=2))
    assert torch.allclose(out[0].values["b"], out[1].values["b"], atol=1e-12)
    assert torch.allclose(out[0].log_weights, out[1].log_weights, atol=1e-12)
    assert torch.allclose(fixed.log_prob(mat([[0.1, 0.2]]), mat([[0.3, 0.0]])),
                          func.log_prob(mat([[0.1, 0.2]]), mat([[0.3, 0.0]])), atol=1e-12)
    with pytest.raises(ValidationError, match="cov function returned shape"):
        NonlinearGaussian(mean, lambda x: QS, 2, 2).sample(mat([[0.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValidationError, match="mean function returned shape"):
        NonlinearGaussian(lambda x: x[:, :1], QS, 2, 2).sample(mat([0.0, 0.0]))
    with pytest.raises(ValidationError, match="symmetric positive semidefinite"):
        NonlinearGaussian(mean, mat([[1.0, 2.0], [2.0, 1.0]]), 2, 2)


def test_remaining_argument_errors():
    from condprob.bffg.special import hmm_model, hmm_smoother
    from condprob.spaces import FiniteSpace

    two = FiniteSpace(["u", "v"])
    with pytest.raises(TypeError, match="cannot fuse a finite"):
        FiniteMessage.uninformative(two) & GaussianMessage.uninformative(1)
    with pytest.raises(ValidationError, match="must be a vector"):
        GaussianMessage.observation(mat([[1.0]]), mat([[1.0]]), mat([[1.0]]))
    with pytest.raises(ValidationError, match="covariance P"):
        GaussianMessage.from_covariance(mat([0.0]), mat([[-1.0]]))
    with pytest.raises(ValidationError, match="F must be a vector"):
        GaussianMessage(0.0, mat([[1.0]]), mat([[1.0]]))
    with pytest.raises(ValidationError, match="observed value must be a vector"):
        PointMessage(mat([[1.0]]))
    with pytest.raises(TypeError, match="cannot fuse a point"):
        PointMessage(mat([1.0])) & FiniteMessage.uninformative(two)
    with pytest.raises(SpaceMismatchError):
        PointMessage(mat([1.0])) & GaussianMessage.uninformative(2)
    with pytest.raises(ValidationError, match="mean must be a function"):
        NonlinearGaussian(mat([1.0]), QS, 2, 2)
    with pytest.raises(ValidationError, match="covariance must have shape"):
        NonlinearGaussian(lambda x: x, torch.eye(3, dtype=T64), 2, 2)
    with pytest.raises(ValidationError, match="drift must be a function"):
        SDEKernel(mat([1.0]), mat([[1.0]]), time_grid(0, 1, 2), 1)
    with pytest.raises(ValidationError, match="1-d tensor"):
        SDEKernel(lambda t, x: x, mat([[1.0]]), mat([[0.0, 1.0]]), 1)
    prior = State([0.5, 0.5], two)
    k = Kernel([[0.9, 0.1], [0.2, 0.8]], two, two)
    other = Kernel([[0.9, 0.1], [0.2, 0.8]], 2, 2)
    with pytest.raises(SpaceMismatchError, match="transition"):
        hmm_smoother(prior, other, k, ["u"])
    with pytest.raises(SpaceMismatchError, match="emission"):
        hmm_smoother(prior, k, other, [0])
    with pytest.raises(ValidationError, match="at least one observation"):
        hmm_smoother(prior, k, k, [])
    with pytest.raises(ValidationError, match="at least one observation"):
        hmm_model(prior, k, k, [])
