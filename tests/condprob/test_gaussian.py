"""Gaussian states and linear-Gaussian kernels: exact values, laws, Kalman/RTS, error paths."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import condprob as cp
from condprob.gaussian import (
    Gaussian,
    LinearEquation,
    LinearGaussian,
    SingularMultivariateNormal,
    copy,
    discard,
    identity,
    projection,
    swap,
)
from condprob.laws import gaussian as glaws

X, Y = cp.Euclidean(1, "x"), cp.Euclidean(1, "y")
T = torch.float64


def std2() -> Gaussian:
    return Gaussian.standard(X) @ Gaussian.standard(Y)


def test_x_equals_y_fixture():
    post = cp.condition(std2(), ([1.0, -1.0], [0.0]))
    torch.testing.assert_close(post.cov, torch.full((2, 2), 0.5, dtype=T), atol=1e-15, rtol=0)
    torch.testing.assert_close(post.mean, torch.zeros(2, dtype=T), atol=0, rtol=0)
    torch.testing.assert_close(post.variance, torch.full((2,), 0.5, dtype=T), atol=1e-15, rtol=0)


def test_condition_on_factor_value_is_exact():
    g = Gaussian([1.0, 2.0], [[2.0, 1.0], [1.0, 2.0]], X @ Y)
    post = cp.condition(g, {"x": 3.0})
    # y | x = 3 ~ N(2 + 1/2 (3 - 1), 2 - 1/2)
    torch.testing.assert_close(post.mean, torch.tensor([3.0, 3.0], dtype=T), atol=1e-14, rtol=0)
    torch.testing.assert_close(post.cov, torch.tensor([[0, 0], [0, 1.5]], dtype=T),
                               atol=1e-14, rtol=0)
    d = cp.disintegrate(g, "x")
    torch.testing.assert_close(d.kernel.at([3.0]).mean, torch.tensor([3.0], dtype=T))


def test_singular_prior_condition_inside_and_outside_support():
    # x = y exactly (rank-1 covariance); x == 2 forces y == 2
    g = Gaussian([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]], X @ Y)
    post = cp.condition(g, {"x": 2.0})
    torch.testing.assert_close(post.mean, torch.tensor([2.0, 2.0], dtype=T), atol=1e-14, rtol=0)
    assert float(post.cov.abs().max()) < 1e-14
    with pytest.raises(cp.ConditioningError, match="x - y"):
        cp.condition(g, LinearEquation([[1.0, -1.0]], [1e-3], name="x - y == 1e-3"))
    # consistent redundant equation on the singular direction
    same = cp.condition(g, LinearEquation([[1.0, -1.0]], [0.0]))
    glaws.assert_same_gaussian(same, g, atol=1e-14)


def test_inconsistent_condition_names_it():
    with pytest.raises(cp.ConditioningError, match=r"x == \[1.0\] and x == \[2.0\]|inconsistent"):
        cp.condition(std2(), LinearEquation([[1.0, 0.0], [1.0, 0.0]], [1.0, 2.0],
                                            name="x == [1.0] and x == [2.0]"))


def _gp(n: int, kernel: str) -> Gaussian:
    s = torch.linspace(0, 1, n, dtype=T)
    d = (s[:, None] - s[None, :]).abs()
    cov = torch.exp(-0.5 * d**2 / 0.2**2) if kernel == "rbf" else torch.exp(-d / 0.3)
    return Gaussian(torch.zeros(n, dtype=T), cov, validate=False)


@pytest.mark.parametrize(("kernel", "atol"), [("rbf", 1e-8), ("ou", 1e-11)])
def test_gp_exact_observations_no_false_failure(kernel, atol):
    """60 exact observations of a 300-point GP. With the smooth (RBF) kernel the observed block
    is numerically singular: an absolute 1e-5 check fails here, ours must not."""
    prior = _gp(300, kernel)
    values = prior.sample(generator=cp.rng(3))
    idx = torch.arange(0, 300, 5)
    post = prior.condition_linear(torch.eye(300, dtype=T)[idx], values[idx])
    assert float((post.mean[idx] - values[idx]).abs().max()) < atol
    assert float(post.variance[idx].abs().max()) < atol
    free = torch.arange(2, 300, 5)
    ref = prior.cov[free][:, idx] @ torch.linalg.lstsq(prior.cov[idx][:, idx], values[idx]).solution
    if kernel == "ou":
        torch.testing.assert_close(post.mean[free], ref, atol=1e-10, rtol=0)


def test_full_rank_agrees_with_schur():
    g = Gaussian([1.0, -1.0, 0.5], [[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
    a = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, -1.0]], dtype=T)
    glaws.law_schur_complement(g, a, torch.tensor([2.0, 0.0], dtype=T))


def test_composition_tensor_structure():
    f = LinearGaussian([[1.0, 2.0]], [1.0], [[0.5]], dom=2)
    g = LinearGaussian([[3.0]], [0.0], [[0.0]])
    h = f >> g
    torch.testing.assert_close(h.matrix, torch.tensor([[3.0, 6.0]], dtype=T))
    torch.testing.assert_close(h.offset, torch.tensor([3.0], dtype=T))
    torch.testing.assert_close(h.cov, torch.tensor([[4.5]], dtype=T))
    assert (f @ g).dom == cp.Euclidean(2) @ cp.Euclidean(1)
    s = Gaussian([1.0, 2.0], [[1.0, 0.0], [0.0, 4.0]], X @ Y)
    assert s.marginal("y").mean.tolist() == [2.0] and s.marginal("y").cov.tolist() == [[4.0]]
    sw = s >> swap(X, Y)
    assert sw.cod == Y @ X and sw.mean.tolist() == [2.0, 1.0]
    assert (s >> projection(s.cod, "y", "x")).mean.tolist() == [2.0, 1.0]
    assert isinstance(s >> copy(s.cod), Gaussian)


def test_kalman_update_is_inversion():
    prior = Gaussian([0.5], [[2.0]])
    c = LinearGaussian([[3.0]], [1.0], [[0.5]])
    post = cp.update(prior, (c, [4.0]))
    gain = 2.0 * 3.0 / (9 * 2.0 + 0.5)
    assert math.isclose(float(post.mean), 0.5 + gain * (4.0 - 1.0 - 1.5), abs_tol=1e-14)
    assert math.isclose(float(post.cov), (1 - gain * 3.0) * 2.0, abs_tol=1e-14)


def _lssm(steps: int):
    f = torch.tensor([[1.0, 0.1], [-0.2, 0.9]], dtype=T)
    q = torch.tensor([[0.05, 0.01], [0.01, 0.03]], dtype=T)
    h = torch.tensor([[1.0, 0.5]], dtype=T)
    r = torch.tensor([[0.2]], dtype=T)
    m0, p0 = torch.tensor([0.3, -0.1], dtype=T), torch.eye(2, dtype=T)
    return f, q, h, r, m0, p0


def kalman_rts(ys, f, q, h, r, m0, p0):
    """Textbook Kalman filter and RTS smoother (reference implementation)."""
    ms, ps, mp, pp = [], [], [], []
    m, p = m0, p0
    for t, y in enumerate(ys):
        if t:
            m, p = f @ m, f @ p @ f.T + q
        mp.append(m)
        pp.append(p)
        s = h @ p @ h.T + r
        k = p @ h.T @ torch.linalg.inv(s)
        m, p = m + k @ (y - h @ m), p - k @ s @ k.T
        ms.append(m)
        ps.append(p)
    sm, sp = [ms[-1]], [ps[-1]]
    for t in range(len(ys) - 2, -1, -1):
        g = ps[t] @ f.T @ torch.linalg.inv(pp[t + 1])
        sm.insert(0, ms[t] + g @ (sm[0] - mp[t + 1]))
        sp.insert(0, ps[t] + g @ (sp[0] - pp[t + 1]) @ g.T)
    return ms, ps, sm, sp


def test_kalman_and_rts_agree_with_conditioning_the_joint():
    steps = 6
    f, q, h, r, m0, p0 = _lssm(steps)
    ys = torch.tensor([[0.4], [0.1], [-0.3], [0.2], [0.9], [0.5]], dtype=T)
    # the joint of (x_0..x_T, y_0..y_T), built by composing kernels
    state = Gaussian(m0, p0)
    joint = state
    emit = LinearGaussian(h, None, r)
    step = LinearGaussian(f, None, q)
    for t in range(steps):
        n = joint.cod.dim
        last = LinearGaussian(torch.eye(n, dtype=T)[n - 2:], None, None, joint.cod, 2)
        pieces = identity(joint.cod) @ (last >> emit)
        joint = joint >> copy(joint.cod) >> pieces
        if t < steps - 1:
            n = joint.cod.dim
            xlast = LinearGaussian(torch.eye(n, dtype=T)[n - 3:n - 1], None, None, joint.cod, 2)
            joint = joint >> copy(joint.cod) >> (identity(joint.cod) @ (xlast >> step))
    dim = joint.cod.dim  # layout: x0 y0 x1 y1 ...
    yi = [3 * t + 2 for t in range(steps)]
    post = joint.condition_linear(torch.eye(dim, dtype=T)[yi], ys[:, 0])
    _, _, sm, sp = kalman_rts(ys, f, q, h, r, m0, p0)
    ms, ps, _, _ = kalman_rts(ys, f, q, h, r, m0, p0)
    for t in range(steps):
        xi = [3 * t, 3 * t + 1]
        torch.testing.assert_close(post.mean[xi], sm[t], atol=1e-12, rtol=0)
        torch.testing.assert_close(post.cov[xi][:, xi], sp[t], atol=1e-12, rtol=0)
    # filtering: conditioning on y_0..y_t only
    for t in (0, 3):
        part = joint.condition_linear(torch.eye(dim, dtype=T)[yi[: t + 1]], ys[: t + 1, 0])
        xi = [3 * t, 3 * t + 1]
        torch.testing.assert_close(part.mean[xi], ms[t], atol=1e-12, rtol=0)
        torch.testing.assert_close(part.cov[xi][:, xi], ps[t], atol=1e-12, rtol=0)


def test_log_prob_matches_torch_and_singular_support():
    g = Gaussian([1.0, -1.0], [[2.0, 0.3], [0.3, 1.0]])
    y = torch.tensor([[0.2, 0.1], [1.0, -1.0]], dtype=T)
    ref = torch.distributions.MultivariateNormal(g.mean, g.cov).log_prob(y)
    torch.testing.assert_close(g.log_prob(y), ref, atol=1e-13, rtol=0)
    s = Gaussian([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]])
    # on the support x = y the density is N(0, 2) along (1, 1)/sqrt(2)
    on = s.log_prob([1.0, 1.0])
    assert math.isclose(float(on), -0.5 * (2 / 2 + math.log(2) + math.log(2 * math.pi)),
                        abs_tol=1e-13)
    assert float(s.log_prob([1.0, 0.0])) == -math.inf
    k = LinearGaussian([[2.0]], [0.0], [[1.0]])
    assert math.isclose(float(k.log_prob([1.0], [2.0])), -0.5 * math.log(2 * math.pi),
                        abs_tol=1e-14)


def test_sampling_is_seeded_and_matches_moments():
    g = Gaussian([1.0, -2.0], [[2.0, 0.8], [0.8, 1.0]])
    a = g.sample((20000,), generator=cp.rng(1))
    torch.testing.assert_close(a, g.sample((20000,), generator=cp.rng(1)))
    assert a.shape == (20000, 2)

    def close(samples, target) -> bool:
        se = (target.variance / len(samples)).sqrt()
        mean_ok = bool(((samples.mean(0) - target.mean).abs() < 5 * se).all())
        cov_ok = bool(((torch.cov(samples.T) - target.cov).abs() < 0.06).all())
        return mean_ok and cov_ok

    assert close(a, g)
    wrong = Gaussian([1.0, -1.9], [[2.0, 0.8], [0.8, 1.0]])
    assert not close(a, wrong)  # power check
    k = LinearGaussian([[1.0, 1.0]], [0.0], [[0.0]])
    assert float(k.sample([1.0, 2.0], (3,), generator=cp.rng(0)).sub(3.0).abs().max()) == 0.0
    post = cp.condition(std2(), ([1.0, -1.0], [0.0]))
    draws = post.sample(5, generator=cp.rng(0))
    assert float((draws[:, 0] - draws[:, 1]).abs().max()) < 1e-14


@given(glaws.gaussian_states(3), st.sampled_from([0, 1]))
def test_law_disintegration(g, split):
    joint = Gaussian(g.mean, g.cov, cp.Euclidean(1 + split) @ cp.Euclidean(2 - split),
                     validate=False)
    glaws.law_disintegration_gaussian(joint, 0)


@given(glaws.gaussian_states(2, rank=2), glaws.gaussian_kernels(2, 2))
def test_law_inversion(prior, c):
    # full-rank priors: the inversion laws then hold everywhere
    prior = Gaussian(prior.mean, prior.cov + torch.eye(2, dtype=T), prior.cod)
    glaws.law_inversion_gaussian(prior, c)


@given(glaws.gaussian_kernels(2, 3), glaws.gaussian_kernels(3, 1), glaws.gaussian_kernels(1, 2))
def test_law_associativity_and_discard(f, g, h):
    glaws.assert_same_gaussian((f >> g) >> h, f >> (g >> h), what="associativity")
    glaws.assert_same_gaussian(identity(f.dom) >> f, f, what="identity")
    glaws.law_discard_gaussian(f)


def test_errors():
    with pytest.raises(cp.ValidationError, match="positive semi-definite"):
        Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(cp.ValidationError, match="symmetric"):
        Gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(cp.ValidationError, match="non-finite"):
        Gaussian([math.nan], [[1.0]])
    with pytest.raises(cp.ValidationError, match="exactly one"):
        Gaussian([0.0])
    with pytest.raises(cp.ValidationError, match="factor must have shape"):
        Gaussian([0.0, 1.0], factor=[1.0, 2.0, 3.0])
    with pytest.raises(cp.SpaceMismatchError):
        LinearGaussian([[1.0, 2.0]], dom=3)
    with pytest.raises(cp.ValidationError, match="offset"):
        LinearGaussian([[1.0]], [1.0, 2.0])
    with pytest.raises(cp.ValidationError, match="covariance must have shape"):
        LinearGaussian([[1.0]], [1.0], [[1.0, 0.0]])
    with pytest.raises(cp.ValidationError, match=r"shape \(\*batch, n, d\)"):
        LinearGaussian([1.0])
    with pytest.raises(cp.ValidationError, match="Euclidean"):
        LinearGaussian([[1.0]], dom=cp.FiniteSpace(["a"]))
    with pytest.raises(cp.SpaceMismatchError):
        std2() >> LinearGaussian([[1.0]])
    with pytest.raises(TypeError, match="cannot condition a Gaussian"):
        cp.condition(std2(), "x")
    with pytest.raises(cp.SpaceMismatchError):
        cp.condition(std2(), ([1.0, 0.0, 0.0], [0.0]))
    with pytest.raises(cp.ValidationError, match="dimension 1"):
        cp.condition(std2(), {"x": [1.0, 2.0]})
    with pytest.raises(cp.ValidationError, match=r"shape \(r, n\)"):
        LinearEquation([[1.0, 0.0]], [1.0, 2.0])
    with pytest.raises(TypeError, match="a Gaussian update takes"):
        cp.update(std2(), "x")
    with pytest.raises(cp.ValidationError, match="both sides"):
        cp.disintegrate(std2(), ("x", "y"))
    with pytest.raises(cp.SpaceMismatchError):
        std2().log_prob([1.0, 2.0, 3.0])
    with pytest.raises(cp.SpaceMismatchError):
        LinearGaussian([[1.0]]).at([1.0, 2.0])
    with pytest.raises(TypeError, match="cannot combine"):
        Gaussian.standard(1).then(object())  # type: ignore[arg-type]
    fin = cp.Morphism()
    with pytest.raises(TypeError, match="Bayesian inversion is not available"):
        LinearGaussian([[1.0]])._invert(fin)


def test_discard_and_structural_kernels():
    g = Gaussian([1.0], [[2.0]])
    assert (g >> discard(1)).cod == cp.Unit
    assert (g >> copy(1)).cov.tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert g.to_pyro().log_prob(torch.tensor([1.0], dtype=T)).item() == pytest.approx(
        float(g.log_prob([1.0])), abs=1e-14)


def test_observe_equation_and_its_errors():
    g = Gaussian([0.0, 1.0, 2.0], torch.eye(3, dtype=T))
    post = g.condition_linear(LinearEquation.observe([2, 0], [5.0, 4.0], 3))
    assert post.mean.tolist() == [4.0, 1.0, 5.0] and post.variance.tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(cp.ValidationError, match="2 indices but 1 observed"):
        LinearEquation.observe([0, 1], [1.0], 3)
    with pytest.raises(cp.ValidationError, match=r"must lie in \[0, 3\)"):
        LinearEquation.observe([3], [1.0], 3)
    with pytest.raises(cp.ConditioningError, match="x0 twice"):
        g.condition_linear(LinearEquation.observe([0, 0], [1.0, 2.0], 3, name="x0 twice"))


def test_pyro_conversion_and_half_space_probabilities():
    g = Gaussian([1.0, -1.0], [[2.0, 0.3], [0.3, 1.0]])
    back = Gaussian.from_pyro(g.to_pyro())
    glaws.assert_same_gaussian(back, g, atol=1e-14)
    n = Gaussian.from_pyro(torch.distributions.Normal(torch.tensor([0.0, 1.0], dtype=T), 2.0))
    assert n.cov.tolist() == [[4.0, 0.0], [0.0, 4.0]]
    with pytest.raises(TypeError, match="cannot convert Gamma"):
        Gaussian.from_pyro(torch.distributions.Gamma(1.0, 1.0))
    # a singular state converts too: same draws, densities on its support
    point = g.condition_linear([[1.0, 0.0]], [0.0])
    law = point.to_pyro()
    assert isinstance(law, SingularMultivariateNormal) and law.event_shape == (2,)
    y = torch.tensor([[0.0, -0.5], [0.1, -0.5]], dtype=T)
    torch.testing.assert_close(law.log_prob(y), point.log_prob(y), atol=0, rtol=0)
    assert float(law.log_prob(y)[1]) == -math.inf
    assert float(law.sample((100,))[:, 0].abs().max()) < 1e-15
    # P(x0 + x1 <= 0.5) with x0 + x1 ~ N(0, 3.6)
    p = g.prob_below([1.0, 1.0], 0.5)
    assert math.isclose(float(p), 0.5 * (1 + math.erf(0.5 / math.sqrt(3.6 * 2))), abs_tol=1e-14)
    point = g.condition_linear(torch.eye(2, dtype=T), [2.0, 0.0])
    assert float(point.prob_below([1.0, 0.0], 2.0)) == 1.0
    assert float(point.prob_below([1.0, 0.0], 1.9)) == 0.0
    with pytest.raises(cp.SpaceMismatchError):
        g.prob_below([1.0], 0.0)


def test_law_checks_have_power():
    g = Gaussian([0.0], [[1.0]])
    with pytest.raises(AssertionError, match="covariance differs"):
        glaws.assert_same_gaussian(g, Gaussian([0.0], [[1.0 + 1e-6]]))
    with pytest.raises(AssertionError, match="spaces differ"):
        glaws.assert_same_gaussian(g, Gaussian([0.0], [[1.0]], X))
    # 2 x == 1 gives x = 0.5 exactly; a wrong target must fail the same comparison
    post = cp.condition(g, ([[2.0]], [1.0]))
    glaws.assert_same_gaussian(post, Gaussian([0.5], [[0.0]]))
    with pytest.raises(AssertionError, match="offset differs"):
        glaws.assert_same_gaussian(post, Gaussian([0.4], [[0.0]]))


def test_unvalidated_construction_still_checks_shapes():
    with pytest.raises(cp.ValidationError, match="covariance must have shape"):
        Gaussian([0.0, 0.0], [[1.0]], validate=False)
    assert Gaussian([0.0], [[-1.0]], validate=False).cov.item() == -1.0  # the PSD check is off
