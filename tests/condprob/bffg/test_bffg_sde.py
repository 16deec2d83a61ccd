"""Guided proposals for diffusions: backward ODEs, guided Euler-Maruyama, Girsanov weights."""

import math

import pytest
import torch

import condprob as cp
from condprob.bffg import (
    GaussianMessage,
    LinearSDE,
    Model,
    PointMessage,
    SDEKernel,
    backward_filter,
    backward_ode,
    forward_guide,
    time_grid,
)
from condprob.bffg.rules import pullback_linear
from condprob.errors import ValidationError
from condprob.gaussian import Gaussian

T64 = torch.float64


def mat(x):
    return torch.tensor(x, dtype=T64)


B2 = mat([[-0.3, 0.2], [-0.1, -0.5]])
BETA2 = mat([0.1, 0.2])
SIG2 = mat([[0.9, 0.0], [0.3, 0.5]])


def ou(theta=-0.2, beta=0.1, sigma=0.9, steps=100, T=1.0):
    return LinearSDE(mat([[theta]]), mat([beta]), mat([[sigma]]), time_grid(0.0, T, steps))


def test_three_backward_filters_agree():
    aux = LinearSDE(B2, BETA2, SIG2, time_grid(0.0, 1.0, 50))
    end = GaussianMessage.observation(torch.eye(2, dtype=T64), 0.2 * torch.eye(2, dtype=T64),
                                      mat([1.0, -1.0]))
    closed = backward_ode(aux, end, "closed")
    info = backward_ode(aux, end, "information", substeps=20)
    cov = backward_ode(aux, end, "covariance", substeps=20)
    for g in (info, cov):
        assert torch.allclose(g.H, closed.H, atol=1e-10, rtol=0)
        assert torch.allclose(g.F, closed.F, atol=1e-10, rtol=0)
        assert torch.allclose(g.c, closed.c, atol=1e-10, rtol=0)
    # the closed form at 0 is the pullback through the exact transition over [0, 1]
    tr = aux.transition(0.0, 1.0)
    assert pullback_linear(end, tr.matrix, tr.offset, tr.cov).allclose(closed.message(0), 1e-12)


def test_closed_form_matches_lyapunov_solution():
    """P(t) = Phi (P_T + Lambda) Phi' - Lambda, nu(t) = Phi (nu_T + B^-1 beta) - B^-1 beta."""
    aux = LinearSDE(B2, BETA2, SIG2, time_grid(0.0, 1.0, 10))
    nuT, PT = mat([1.0, -1.0]), mat([[0.3, 0.1], [0.1, 0.2]])
    guide = backward_ode(aux, GaussianMessage.from_covariance(nuT, PT, 0.7), "closed")
    a = SIG2 @ SIG2.T
    eye = torch.eye(2, dtype=T64)
    lam = torch.linalg.solve(torch.kron(eye, B2) + torch.kron(B2, eye), -a.T.reshape(-1))
    lam = lam.reshape(2, 2).T
    binv_beta = torch.linalg.solve(B2, BETA2)
    for i, t in enumerate(aux.grid[:-1].tolist()):
        phi = torch.linalg.matrix_exp(-(1.0 - t) * B2)
        nu, P, c = guide.message(i).to_covariance()
        assert torch.allclose(P, phi @ (PT + lam) @ phi.T - lam, atol=1e-12, rtol=0)
        assert torch.allclose(nu, phi @ (nuT + binv_beta) - binv_beta, atol=1e-12, rtol=0)
        assert abs(c.item() - (0.7 - (1.0 - t) * torch.trace(B2).item())) < 1e-12


def test_exact_endpoint_filters_agree():
    aux = LinearSDE(B2, BETA2, SIG2, time_grid(0.0, 1.0, 20))
    end = PointMessage(mat([1.0, -1.0]))
    closed = backward_ode(aux, end, "closed")
    cov = backward_ode(aux, end, "covariance", substeps=20)
    assert torch.allclose(cov.H, closed.H, rtol=1e-10, atol=0)
    assert torch.allclose(cov.F, closed.F, rtol=1e-10, atol=0)
    assert torch.allclose(cov.c, closed.c, atol=1e-10, rtol=0)
    with pytest.raises(ValidationError, match="information form"):
        backward_ode(aux, end, "information")


def ou_model(kernel, aux=None, y=1.39, var=0.2, x0=1.1):
    m = Model("x0", Gaussian(mat([x0]), mat([[0.0]])))
    m.add_edge("x0", "xT", kernel, auxiliary=aux)
    m.observe("xT", GaussianMessage.observation(mat([[1.0]]), mat([[var]]), mat([y])))
    return m


def test_linear_sde_guided_by_itself():
    """log-weight exactly 0; evidence = exact p(y | x0); endpoint law = exact conditional."""
    k = ou(steps=1000)
    filt = backward_filter(ou_model(k))
    tr = k.transition(0.0, 1.0)
    exact_ev = Gaussian(tr.matrix @ mat([1.1]) + tr.offset, tr.cov + 0.2).log_prob(mat([1.39]))
    assert abs(filt.log_evidence - exact_ev) < 1e-12
    n = 4000
    s = forward_guide(filt, n, seed=11)
    assert torch.equal(s.log_weights, torch.zeros(n, dtype=T64))
    prior_end = tr.at(mat([1.1]))
    # exact conditional of x_T given y: Gaussian update with the observation kernel
    m, q = prior_end.mean.item(), prior_end.cov.item()
    gain = q / (q + 0.2)
    pm, pv = m + gain * (1.39 - m), q * (1 - gain)
    x = s.values["xT"][:, 0]
    se = math.sqrt(pv / n)
    assert abs(x.mean().item() - pm) < 4 * se + 2e-3
    assert abs(x.var().item() - pv) < 4 * pv * math.sqrt(2 / n) + 2e-3
    # power: a wrong target mean is rejected by the same check
    assert abs(x.mean().item() - (pm + 0.05)) > 4 * se + 2e-3


def test_ou_bridge_matches_closed_form():
    theta, sigma, u, v, T = 0.5, 0.7, 1.0, -0.5, 1.0
    k = LinearSDE(mat([[-theta]]), mat([0.0]), mat([[sigma]]), time_grid(0.0, T, 1000))
    m = Model("x0", Gaussian(mat([u]), mat([[0.0]])))
    m.add_edge("x0", "xT", k)
    m.observe("xT", PointMessage(mat([v])))
    filt = backward_filter(m)
    guide = filt.guides["x0", "xT"]
    # h(t, x) = N(v; e^{-theta (T - t)} x, s2 (1 - e^{-2 theta (T - t)}) / (2 theta)) exactly
    tau = T - guide.grid
    q = sigma**2 * (1 - torch.exp(-2 * theta * tau)) / (2 * theta)
    assert torch.allclose(guide.H[:, 0, 0], torch.exp(-2 * theta * tau) / q, rtol=1e-10, atol=0)
    n = 4000
    s = forward_guide(filt, n, seed=2)
    path = s.paths["x0", "xT"][:, :, 0]
    assert torch.equal(path[:, -1], torch.full((n,), v, dtype=T64))
    assert torch.equal(s.log_weights, torch.zeros(n, dtype=T64))
    for i in (250, 500, 750):
        t = float(k.grid[i])
        mean = u * math.exp(-theta * t) + math.sinh(theta * t) / math.sinh(theta * T) * (
            v - u * math.exp(-theta * T))
        var = sigma**2 * math.sinh(theta * t) * math.sinh(theta * (T - t)) / (
            theta * math.sinh(theta * T))
        se = math.sqrt(var / n)
        assert abs(path[:, i].mean().item() - mean) < 4 * se + 2e-3
        assert abs(path[:, i].var().item() - var) < 4 * var * math.sqrt(2 / n) + 2e-3
        assert abs(path[:, i].mean().item() - (mean + 0.04)) > 4 * se + 2e-3


@pytest.mark.slow
def test_wrong_auxiliary_is_unbiased():
    """OU (-0.2, 0.1, 0.9) guided by the tilted auxiliary (-0.1, -0.05, 1.0): E°[Psi] h~ = p."""
    k = ou(steps=100)
    aux = LinearSDE(mat([[-0.1]]), mat([-0.05]), mat([[1.0]]), k.grid)
    filt = backward_filter(ou_model(k, aux))
    exact = backward_filter(ou_model(k)).log_evidence
    n = 10000
    s = forward_guide(filt, n, seed=7)
    assert s.log_weights.abs().max() > 0.01
    r = torch.exp(s.log_weights + filt.log_evidence - exact)
    z = (r.mean() - 1) * math.sqrt(n) / r.std()
    assert abs(z.item()) < 3
    # power: the evidence of the auxiliary alone is off by many standard errors
    r0 = torch.exp(filt.log_evidence - exact)
    assert abs((r0 - r.mean()).item()) * math.sqrt(n) / r.std().item() > 3


def test_nonlinear_sde_with_linearised_auxiliary():
    """dX = (sin X - X/2) dt + 0.5 dW to an exact end point: weights finite, ESS reasonable."""
    k = SDEKernel(lambda t, x: torch.sin(x) - x / 2, mat([[0.5]]), time_grid(0.0, 1.0, 200), 1)
    aux = k.linearise(1.0, mat([0.8]))
    m = Model("x0", Gaussian(mat([0.0]), mat([[0.0]])))
    m.add_edge("x0", "xT", k, auxiliary=aux)
    m.observe("xT", PointMessage(mat([0.8])))
    s = forward_guide(backward_filter(m), 2000, seed=0)
    assert torch.isfinite(s.log_weights).all()
    assert s.ess() > 1000
    assert torch.equal(s.values["xT"], torch.full((2000, 1), 0.8, dtype=T64))


def test_sde_kernel_errors():
    with pytest.raises(ValidationError, match="t1 > t0"):
        time_grid(1.0, 0.0, 5)
    with pytest.raises(ValidationError, match="strictly increasing"):
        SDEKernel(lambda t, x: x, mat([[1.0]]), mat([0.0, 0.5, 0.5]), 1)
    with pytest.raises(ValidationError, match="diffusion"):
        SDEKernel(lambda t, x: x, mat([[1.0], [0.0]]), time_grid(0, 1, 2), 1)
    with pytest.raises(ValidationError, match="shapes"):
        LinearSDE(mat([[1.0]]), mat([0.0, 1.0]), mat([[1.0]]), time_grid(0, 1, 2))
    with pytest.raises(TypeError, match="intractable"):
        ou().log_prob(mat([0.0]), mat([1.0]))
    with pytest.raises(ValidationError, match="unknown method"):
        backward_ode(ou(), GaussianMessage.uninformative(1), "euler")
    with pytest.raises(ValidationError, match="dimension"):
        backward_ode(ou(), GaussianMessage.uninformative(2))
    var = LinearSDE(lambda t: mat([[-t]]), mat([0.0]), mat([[1.0]]), time_grid(0, 1, 4))
    with pytest.raises(ValidationError, match="constant"):
        backward_ode(var, GaussianMessage.uninformative(1), "closed")
    with pytest.raises(ValidationError, match="constant"):
        var.transition(0.0, 1.0)


def test_time_varying_auxiliary_information_vs_covariance():
    aux = LinearSDE(lambda t: mat([[-0.2 - t]]), lambda t: mat([0.1 * t]),
                    lambda t: mat([[0.5 + t]]), time_grid(0.0, 1.0, 20))
    end = GaussianMessage.observation(mat([[1.0]]), mat([[0.3]]), mat([0.4]))
    info = backward_ode(aux, end, "auto", substeps=40)
    cov = backward_ode(aux, end, "covariance", substeps=40)
    # RK4 with 800 steps on a time-varying Riccati equation: agreement to 1e-9 (error ~ h^4)
    assert torch.allclose(info.H, cov.H, atol=1e-9, rtol=0)
    assert torch.allclose(info.F, cov.F, atol=1e-9, rtol=0)
    assert torch.allclose(info.c, cov.c, atol=1e-9, rtol=0)
    paths = aux.sample(mat([[0.0], [1.0]]), generator=cp.rng(0), path=True)
    assert paths.shape == (2, 21, 1)


def test_linearise_along_a_path():
    """For a linear drift the path linearisation is the drift itself, step by step."""
    grid = time_grid(0.0, 1.0, 10)
    k = SDEKernel(lambda t, x: x @ B2.T + BETA2, SIG2, grid, 2)
    path = k.sample(mat([[0.3, -0.2]]), generator=cp.rng(0), path=True)[0]
    aux = k.linearise_along(path)
    assert aux.piecewise and not aux.constant
    for i in range(10):
        Bi, bi, si = aux.step_coefficients(i)
        assert torch.allclose(Bi, B2, atol=1e-14) and torch.allclose(bi, BETA2, atol=1e-14)
        assert torch.equal(si, SIG2)
    end = GaussianMessage.observation(torch.eye(2, dtype=T64), 0.3 * torch.eye(2, dtype=T64),
                                      mat([0.5, 0.5]))
    ref = backward_ode(LinearSDE(B2, BETA2, SIG2, grid), end)
    got = backward_ode(aux, end)
    assert torch.allclose(got.H, ref.H, atol=1e-12) and torch.allclose(got.c, ref.c, atol=1e-12)
    assert torch.equal(aux.coefficients(0.95)[0], aux.step_coefficients(9)[0])
    with pytest.raises(ValidationError, match="path must have shape"):
        k.linearise_along(path[:-1])
    with pytest.raises(ValidationError, match="per-step coefficients"):
        LinearSDE(torch.zeros(3, 2, 2, dtype=T64), torch.zeros(3, 2, dtype=T64),
                  torch.zeros(3, 2, 2, dtype=T64), grid)
    with pytest.raises(ValidationError, match="constant"):
        aux.transition(0.0, 1.0)


def test_state_dependent_diffusion_path_matches_fixed():
    """A diffusion given as a function (here constant) takes the batched code path: same result."""
    grid = time_grid(0.0, 1.0, 30)
    drift = lambda t, x: torch.sin(x) - x  # noqa: E731
    fixed = SDEKernel(drift, SIG2, grid, 2)
    func = SDEKernel(drift, lambda t, x: SIG2.expand(x.shape[0], 2, 2), grid, 2)
    aux = fixed.linearise(1.0, mat([0.2, 0.1]))
    out = []
    for k in (fixed, func):
        m = Model("a", Gaussian(mat([0.0, 0.5]), torch.zeros(2, 2, dtype=T64)))
        m.add_edge("a", "b", k, aux)
        m.observe("b", GaussianMessage.observation(torch.eye(2, dtype=T64),
                                                   0.1 * torch.eye(2, dtype=T64), mat([0.2, 0.1])))
        out.append(forward_guide(backward_filter(m), 64, seed=5))
    assert torch.allclose(out[0].paths["a", "b"], out[1].paths["a", "b"], atol=1e-12)
    assert torch.allclose(out[0].log_weights, out[1].log_weights, atol=1e-12)
    assert out[0].log_weights.abs().max() > 1e-3
    assert torch.allclose(fixed.sample(mat([[0.0, 0.5]]), generator=cp.rng(1), path=True),
                          func.sample(mat([[0.0, 0.5]]), generator=cp.rng(1), path=True), atol=1e-12)


def test_wrong_per_step_auxiliary_is_unbiased():
    k = ou(steps=50)
    n_steps = 50
    Bs = torch.linspace(-1.0, 0.5, n_steps, dtype=T64).reshape(n_steps, 1, 1)
    aux = LinearSDE(Bs, torch.full((n_steps, 1), -0.1, dtype=T64),
                    torch.full((n_steps, 1, 1), 1.1, dtype=T64), k.grid)
    filt = backward_filter(ou_model(k, aux))
    exact = backward_filter(ou_model(k)).log_evidence
    n = 10000
    s = forward_guide(filt, n, seed=8)
    r = torch.exp(s.log_weights + filt.log_evidence - exact)
    assert abs(((r.mean() - 1) * math.sqrt(n) / r.std()).item()) < 3
    assert abs(torch.exp(filt.log_evidence - exact).item() - 1) > 3 * r.std().item() / math.sqrt(n)
