"""BFFG on DAGs (nodes with several parents, several roots): exact against brute force and against
the core's exact Gaussian conditioning of the full joint."""

import itertools
import math
from fractions import Fraction as Fr

import networkx as nx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from condprob.bffg import (
    FiniteMessage,
    GaussianMessage,
    Model,
    NonlinearGaussian,
    PointMessage,
    backward_filter,
    forward_guide,
    posterior_marginals,
)
from condprob.errors import ConditioningError, SpaceMismatchError, ValidationError
from condprob.finite import Kernel, State
from condprob.gaussian import Gaussian, LinearGaussian
from condprob.laws.gaussian import gaussian_kernels, gaussian_states
from condprob.laws.protocol import g_test
from condprob.laws.strategies import finite_spaces, kernels, predicates, states
from condprob.spaces import Euclidean, FiniteSpace, product

T = torch.float64
A = FiniteSpace(["a0", "a1"], name="A")
B = FiniteSpace(["b0", "b1", "b2"], name="B")
C = FiniteSpace(["c0", "c1"], name="C")
D = FiniteSpace(["d0", "d1"], name="D")
PA = State([Fr(1, 3), Fr(2, 3)], A)
PE = State([Fr(1, 4), Fr(3, 4)], C)
KB = Kernel([[Fr(1, 2), Fr(1, 4), Fr(1, 4)], [Fr(1, 5), Fr(3, 5), Fr(1, 5)]], A, B)
KC = Kernel([[Fr(1, 2), Fr(1, 2)], [Fr(1, 7), Fr(6, 7)]], A, C)
KD = Kernel([[Fr(i + 1, i + j + 3), Fr(j + 2, i + j + 3)] for i in range(3) for j in range(2)],
            B @ C, D)
LIK_B = [Fr(1), Fr(1, 2), Fr(1, 4)]
LIK_D = [Fr(1, 3), Fr(1)]


def diamond(exact=True):
    """a -> b, a -> c, (b, c) -> d; likelihoods at b and d."""
    conv = (lambda k: k) if exact else (lambda k: k.to_float())
    m = Model().add_node("a", conv(PA)).add_node("b", conv(KB), ("a",))
    m.add_node("c", conv(KC), ("a",)).add_node("d", conv(KD), ("b", "c"))
    m.observe("b", FiniteMessage.likelihood(LIK_B if exact else [float(x) for x in LIK_B], B))
    m.observe("d", FiniteMessage.likelihood(LIK_D if exact else [float(x) for x in LIK_D], D))
    return m


def brute_diamond():
    out = {}
    for a, b, c, d in itertools.product(range(2), range(3), range(2), range(2)):
        out[a, b, c, d] = (PA.probs[a] * KB.matrix[a, b] * KC.matrix[a, c]
                           * KD.matrix[2 * b + c, d] * LIK_B[b] * LIK_D[d])
    return out


def two_roots():
    """Roots a (on A) and e (on C); b | a, d | (b, e) with parents stated as (e, b), c | e."""
    kd = Kernel([[Fr(1 + i + j, 2 * (2 + i + j)), Fr(3 + i + j, 2 * (2 + i + j))]
                 for i in range(2) for j in range(3)], C @ B, D)
    m = Model().add_node("a", PA).add_node("e", PE).add_node("b", KB, ("a",))
    m.add_node("d", kd, ("e", "b")).add_node("c", KC.to_exact(), ("a",))
    m.observe("d", FiniteMessage.observe("d1", D, exact=True))
    m.observe("c", FiniteMessage.likelihood([Fr(2, 3), Fr(1, 5)], C))
    return m, kd


def brute_two_roots(kd):
    out = {}
    for a, e, b, d, c in itertools.product(range(2), range(2), range(3), range(2), range(2)):
        out[a, e, b, d, c] = (PA.probs[a] * PE.probs[e] * KB.matrix[a, b] * kd.matrix[3 * e + b, d]
                              * KC.matrix[a, c] * (d == 1) * [Fr(2, 3), Fr(1, 5)][c])
    return out


def exact_marginals(joint, names):
    ev = sum(joint.values())
    out = {}
    for i, v in enumerate(names):
        acc = {}
        for key, p in joint.items():
            acc[key[i]] = acc.get(key[i], 0) + p / ev
        out[v] = [acc[k] for k in sorted(acc)]
    return ev, out


def test_finite_diamond_exact():
    filt = backward_filter(diamond())
    ev, marg = exact_marginals(brute_diamond(), "abcd")
    assert filt.evidence == ev and filt.exact
    assert filt.log_evidence.item() == pytest.approx(math.log(ev), abs=1e-14)
    post = posterior_marginals(filt)
    for v in "abcd":
        assert list(post[v].probs) == marg[v]
    # of b and c, the later one in the order is guided given the shared ancestor and the other
    first, second = sorted("bc", key=filt.order.index)
    assert set(filt.scope(second)) == {"a", first} and filt.scope(first) == ("a",)


def test_finite_diamond_float_agrees():
    filt = backward_filter(diamond(exact=False))
    ev, marg = exact_marginals(brute_diamond(), "abcd")
    assert filt.log_evidence.item() == pytest.approx(math.log(ev), abs=1e-13)
    post = posterior_marginals(filt)
    for v in "abcd":
        assert torch.allclose(post[v].probs, torch.tensor([float(p) for p in marg[v]], dtype=T),
                              atol=1e-14, rtol=0)


def test_finite_two_roots_exact():
    m, kd = two_roots()
    filt = backward_filter(m)
    ev, marg = exact_marginals(brute_two_roots(kd), "aebdc")
    assert filt.evidence == ev
    post = posterior_marginals(filt)
    for v in "aebdc":
        assert list(post[v].probs) == marg[v]


def test_guided_diamond_g_test_with_power_check():
    """Joint guided draws of (a, b, c, d) against the exact posterior, and a wrong target fails."""
    filt = backward_filter(diamond(exact=False))
    n = 20000
    s = forward_guide(filt, n, seed=5)
    assert torch.equal(s.log_weights, torch.zeros(n, dtype=T))
    joint = brute_diamond()
    ev = sum(joint.values())
    exact = torch.zeros(2, 3, 2, 2, dtype=T)
    for key, p in joint.items():
        exact[key] = float(p / ev)
    counts = torch.zeros(2, 3, 2, 2, dtype=T)
    counts.index_put_(tuple(s.values[v] for v in "abcd"), torch.ones(n, dtype=T), accumulate=True)

    # 24 cells, all of positive probability (23 degrees of freedom)
    assert bool((exact > 0).all())
    assert g_test(counts, exact) > 1e-3
    # the target that ignores the shared ancestor (c sampled given a from K_C alone) must fail
    wrong = exact.sum(2, keepdim=True) * KC.to_float().matrix[:, None, :, None]
    wrong = wrong / wrong.sum()
    assert g_test(counts, wrong) < 1e-3


def test_impossible_observations_raise():
    m, _ = two_roots()
    m.observe("d", FiniteMessage.observe("d0", D, exact=True))
    filt = backward_filter(m)
    assert filt.evidence == 0 and filt.log_evidence.item() == -math.inf
    with pytest.raises(ConditioningError, match="probability zero"):
        forward_guide(filt, 5, seed=0)
    with pytest.raises(ConditioningError, match="probability zero"):
        posterior_marginals(filt)


# Linear-Gaussian ----------------------------------------------------------------------------
def mat(x):
    return torch.tensor(x, dtype=T)


RA, RB, RC, RE, RD = (Euclidean(2), Euclidean(2), Euclidean(1),
                      Euclidean(1), Euclidean(2))
GA = Gaussian(mat([0.5, -0.3]), mat([[1.0, 0.3], [0.3, 0.5]]), RA)
GE = Gaussian(mat([1.0]), mat([[2.0]]), RE)
LB = LinearGaussian(mat([[0.8, 0.5], [-0.1, 0.8]]), mat([0.1, 0.2]), mat([[0.2, 0.0], [0.0, 0.0]]),
                    RA, RB)
LC = LinearGaussian(mat([[1.0, -1.0]]), mat([0.3]), mat([[0.5]]), RA, RC)
LD = LinearGaussian(mat([[0.5, 0.0, 1.0, 0.2], [0.1, 0.7, -0.4, 0.0]]), mat([0.0, -0.5]),
                    mat([[0.3, 0.1], [0.1, 0.4]]), RB @ RC @ RE, RD)
OBS = {"c": (mat([[1.0]]), mat([[0.25]]), mat([0.9])),
       "d": (mat([[1.0, 1.0]]), mat([[0.5]]), mat([-0.4])),
       "b": (mat([[0.0, 1.0]]), mat([[1.0]]), mat([0.2]))}


def gaussian_dag():
    """Roots a and e; b | a (singular noise), c | a, d | (b, c, e): a diamond a -> {b, c} -> d."""
    m = Model().add_node("a", GA).add_node("e", GE).add_node("b", LB, ["a"])
    m.add_node("c", LC, ["a"]).add_node("d", LD, ["b", "c", "e"])
    for v, (L, R, y) in OBS.items():
        m.observe(v, GaussianMessage.observation(L, R, y))
    return m


def gaussian_joint(model, names, obs):
    """The joint Gaussian of the nodes (`names` in a topological order) and then the observations
    y_v = L x_v + e (obs: v -> (L, R, y)) built with the core's kernels, and each node's slice."""
    g, sl = None, {}
    for v in names:
        k, parents = model.node_kernel(v)
        n = 0 if g is None else g.cod.dim
        pick = torch.zeros(k.dom.dim, n, dtype=T)
        row = 0
        for p in parents:
            w = sl[p].stop - sl[p].start
            pick[row:row + w, sl[p]] = torch.eye(w, dtype=T)
            row += w
        sl[v] = slice(n, n + k.cod.dim)
        if g is None:
            g = Gaussian(k.offset, k.cov)
            continue
        g = g >> LinearGaussian(torch.cat([torch.eye(n, dtype=T), k.matrix @ pick]),
                                torch.cat([torch.zeros(n, dtype=T), k.offset]),
                                torch.block_diag(torch.zeros(n, n, dtype=T), k.cov))
    for v, (L, R, _) in obs.items():
        n = g.cod.dim
        sel = torch.zeros(L.shape[0], n, dtype=T)
        sel[:, sl[v]] = L
        g = g >> LinearGaussian(torch.cat([torch.eye(n, dtype=T), sel]),
                                cov=torch.block_diag(torch.zeros(n, n, dtype=T), R))
    return g, sl


def test_gaussian_dag_equals_conditioning_the_joint():
    m = gaussian_dag()
    filt = backward_filter(m)
    joint, sl = gaussian_joint(m, "aebcd", OBS)
    n = 8
    y = torch.cat([OBS[v][2] for v in OBS])
    post, log_density, deficit = joint.condition_evidence(
        torch.cat([torch.zeros(3, n, dtype=T), torch.eye(3, dtype=T)], 1), y)
    assert deficit == 0
    assert filt.log_evidence.item() == pytest.approx(float(log_density), abs=1e-10)
    marg = posterior_marginals(filt)
    for v, s in sl.items():
        assert torch.allclose(marg[v].mean, post.mean[s], atol=1e-10, rtol=0), v
        assert torch.allclose(marg[v].cov, post.cov[s, s], atol=1e-10, rtol=0), v


@pytest.mark.parametrize("node", ["d", "e"])
def test_exact_point_observation_equals_conditioning_the_joint(node):
    """x_d (several parents) or the root x_e observed exactly, with the noisy y_c and y_b."""
    m = Model().add_node("a", GA).add_node("e", GE).add_node("b", LB, ["a"])
    m.add_node("c", LC, ["a"]).add_node("d", LD, ["b", "c", "e"])
    for v in "cb":
        m.observe(v, GaussianMessage.observation(*OBS[v]))
    x = mat([0.3, -1.1]) if node == "d" else mat([0.4])
    m.observe(node, PointMessage(x))
    filt = backward_filter(m)
    joint, sl = gaussian_joint(m, "aebcd", OBS)
    rows = torch.zeros(x.shape[0] + 2, 11, dtype=T)
    rows[:x.shape[0], sl[node]] = torch.eye(x.shape[0], dtype=T)
    rows[x.shape[0], 8] = rows[x.shape[0] + 1, 10] = 1.0  # y_c and y_b (y_d is not observed)
    y = torch.cat([x, OBS["c"][2], OBS["b"][2]])
    post, log_density, _ = joint.condition_evidence(rows, y)
    assert filt.log_evidence.item() == pytest.approx(float(log_density), abs=1e-10)
    marg = posterior_marginals(filt)
    for v, s in sl.items():
        assert torch.allclose(marg[v].mean, post.mean[s], atol=1e-10, rtol=0), v
        assert torch.allclose(marg[v].cov, post.cov[s, s], atol=1e-10, rtol=0), v
    draws = forward_guide(filt, 10, seed=0)
    assert torch.equal(draws.values[node], x.expand(10, -1))
    assert torch.equal(draws.log_weights, torch.zeros(10, dtype=T))


def test_gaussian_guided_samples_are_exact():
    """Log-weights 0; the sample mean and covariance of d match the exact posterior."""
    filt = backward_filter(gaussian_dag())
    s = forward_guide(filt, 40000, seed=2)
    assert torch.equal(s.log_weights, torch.zeros(40000, dtype=T))
    marg = posterior_marginals(filt)
    for v in ["a", "d"]:
        x = s.values[v]
        se = marg[v].cov.diagonal().sqrt() / math.sqrt(x.shape[0])
        assert ((x.mean(0) - marg[v].mean).abs() < 4 * se).all(), v
        assert torch.allclose(torch.cov(x.T), marg[v].cov, atol=0.03)
    # power: a shifted target is rejected by the same check
    se = marg["d"].cov.diagonal().sqrt() / math.sqrt(40000)
    assert ((s.values["d"].mean(0) - marg["d"].mean - 10 * se).abs() > 4 * se).any()


# Errors -------------------------------------------------------------------------------------
def test_structure_errors():
    m = diamond()
    m.graph.add_edge("d", "a")
    with pytest.raises(ValidationError, match="cycle"):
        backward_filter(m)
    m = Model().add_node("a", PA).add_node("b", KB, ("a",)).add_node("c", KC, ("a",))
    m.add_edge("b", "d", KD).add_edge("c", "d", KD)
    with pytest.raises(ValidationError, match="node 'd' has several parents"):
        m.validate()
    m = diamond()
    m.graph.add_edge("a", "d")
    with pytest.raises(ValidationError, match=r"node 'd': parents \['b', 'c'\] .* do not match"):
        m.validate()
    with pytest.raises(ValidationError, match="repeat"):
        Model().add_node("d", KD, ("b", "b"))
    with pytest.raises(ValidationError, match="its own parent"):
        Model().add_node("d", KD, ("d", "b"))
    m = Model().add_node("b", KB, ("a",))
    with pytest.raises(ValidationError, match="root 'a' needs a prior"):
        m.validate()
    m = Model().add_node("a", KB)
    with pytest.raises(ValidationError, match="root 'a' needs a prior state"):
        m.validate()


def test_kernel_and_space_errors():
    m = Model().add_node("a", PA).add_node("b", KB, ("a",)).add_node("c", KC, ("a",))
    m.add_node("d", KD, ("c", "b"))
    with pytest.raises(SpaceMismatchError, match=r"node 'd' from its parents \['c', 'b'\]"):
        m.validate()
    m = Model().add_node("a", PA).add_node("b", None, ("a",))
    with pytest.raises(ValidationError, match=r"node 'b' has no kernel for its parents \('a',\)"):
        m.validate()
    nl = NonlinearGaussian(lambda x: x, torch.eye(2, dtype=T), RA, RB)
    m = Model().add_node("a", GA).add_node("b", nl, ("a",))
    with pytest.raises(ValidationError, match="unsupported kernel kind NonlinearGaussian"):
        m.validate()
    m = Model().add_node("a", GA).add_node("b", LB, ("a",)).add_node("c", KC, ("a",))
    with pytest.raises(SpaceMismatchError, match="node 'c'"):
        m.validate()
    m = Model().add_node("a", GA).add_node("b", LB, ("a",)).add_node("x", PA)
    with pytest.raises(ValidationError, match="either all finite or all linear-Gaussian"):
        m.validate()
    m = Model("a", GA).add_edge("a", "b", LB, auxiliary=LB).add_node("e", GE)
    with pytest.raises(ValidationError, match="'a' -> 'b': DAG models are exact"):
        m.validate()
    batched = Kernel(torch.full((3, 2, 3), 1 / 3, dtype=T), A, B)
    m = Model().add_node("a", PA.to_float()).add_node("b", batched, ("a",))
    with pytest.raises(ValidationError, match="batched"):
        m.validate()


def test_observation_errors():
    m = gaussian_dag().observe("e", GaussianMessage.uninformative(2))
    with pytest.raises(SpaceMismatchError, match="observation at node 'e'"):
        m.validate()
    m = Model().add_node("a", GA).add_node("b", LB, ("a",)).observe("b", PointMessage([0.0, 1.0]))
    with pytest.raises(ValidationError, match="needs a density"):
        backward_filter(m)


def test_trees_keep_the_tree_filter():
    """A model built with add_edge only is a tree model; one node added with add_node switches to
    the DAG filter, which agrees with the tree filter on a tree."""
    tree = Model("a", GA).add_edge("a", "b", LB).add_edge("a", "c", LC)
    dag = Model().add_node("a", GA).add_node("b", LB, ("a",)).add_node("c", LC, ("a",))
    for m in (tree, dag):
        m.observe("c", GaussianMessage.observation(*OBS["c"]))
        m.observe("b", GaussianMessage.observation(*OBS["b"]))
    assert not tree.is_dag and dag.is_dag
    ft, fd = backward_filter(tree), backward_filter(dag)
    assert ft.log_evidence.item() == pytest.approx(fd.log_evidence.item(), abs=1e-12)
    mt, md = posterior_marginals(ft), posterior_marginals(fd)
    for v in "abc":
        assert torch.allclose(mt[v].mean, md[v].mean, atol=1e-12, rtol=0)
        assert torch.allclose(mt[v].cov, md[v].cov, atol=1e-12, rtol=0)
    assert isinstance(nx.DiGraph(dag.graph), nx.DiGraph)


# Random DAGs ---------------------------------------------------------------------------------
@st.composite
def finite_dags(draw):
    """2..5 nodes; node i takes up to 2 parents among the earlier ones (none: a root with a prior),
    exact kernels with zeros, and exact likelihoods (possibly all zero) at some nodes."""
    n = draw(st.integers(2, 5))
    spaces = [draw(finite_spaces(1, 3, name=f"v{i}")) for i in range(n)]
    m, parents, obs = Model(), {}, {}
    for i in range(n):
        ps = tuple(draw(st.lists(st.sampled_from(range(i)), max_size=min(i, 2), unique=True))) \
            if i else ()
        parents[i] = ps
        if ps:
            m.add_node(i, draw(kernels(product(*(spaces[p] for p in ps)), spaces[i], exact=True)),
                       ps)
        else:
            m.add_node(i, draw(states(spaces[i], exact=True)))
        if draw(st.booleans()):
            obs[i] = draw(predicates(spaces[i], exact=True))
            m.observe(i, FiniteMessage(obs[i]))
    return m, spaces, parents, obs


def brute_force(m, spaces, parents, obs):
    joint = {}
    for x in itertools.product(*(range(s.size) for s in spaces)):
        p = Fr(1)
        for i, ps in parents.items():
            k = m.node_kernel(i)[0]
            row = 0
            for q in ps:
                row = row * spaces[q].size + x[q]
            p *= k.matrix[row, x[i]]
            if i in obs:
                p *= obs[i].values[x[i]]
        joint[x] = p
    return joint


@given(finite_dags())
def test_random_finite_dags_equal_brute_force(dag):
    m, spaces, parents, obs = dag
    filt = backward_filter(m)
    joint = brute_force(m, spaces, parents, obs)
    assert filt.evidence == sum(joint.values())
    if filt.evidence == 0:
        with pytest.raises(ConditioningError):
            posterior_marginals(filt)
        return
    _, marg = exact_marginals(joint, list(parents))
    post = posterior_marginals(filt)
    for i in parents:
        assert list(post[i].probs) == marg[i]
    # the float backend agrees
    fm = Model()
    for i, ps in parents.items():
        fm.add_node(i, m.node_kernel(i)[0].to_float(), ps)
        if i in obs:
            fm.observe(i, FiniteMessage.likelihood([float(v) for v in obs[i].values], spaces[i]))
    ff = backward_filter(fm)
    assert ff.log_evidence.item() == pytest.approx(math.log(filt.evidence), rel=1e-12)
    fpost = posterior_marginals(ff)
    for i in parents:
        want = torch.tensor([float(p) for p in marg[i]], dtype=T)
        assert torch.allclose(fpost[i].probs, want, atol=1e-12, rtol=0)


def _close(a, b, tol=1e-9):
    scale = 1 + max(a.abs().max().item(), b.abs().max().item())
    assert (a - b).abs().max().item() <= tol * scale, (a, b)


@st.composite
def gaussian_dags(draw):
    """2..4 nodes of dimension 1..2; node i takes up to 2 parents among the earlier ones (none: a
    root), noise and priors possibly singular; noisy linear observations at some nodes."""
    n = draw(st.integers(2, 4))
    dims = [draw(st.integers(1, 2)) for _ in range(n)]
    m, obs = Model(), {}
    for i in range(n):
        ps = tuple(draw(st.lists(st.sampled_from(range(i)), max_size=min(i, 2), unique=True))) \
            if i else ()
        if ps:
            k = draw(gaussian_kernels(sum(dims[p] for p in ps), dims[i]))
            dom = product(*(m.space(p) for p in ps))
            m.add_node(i, LinearGaussian(k.matrix, k.offset, k.cov, dom, Euclidean(dims[i])), ps)
        else:
            m.add_node(i, draw(gaussian_states(dims[i])))
        if draw(st.booleans()):
            rows = draw(st.integers(1, dims[i]))
            L = draw(gaussian_kernels(dims[i], rows)).matrix
            R = torch.diag(torch.tensor(draw(st.lists(st.integers(1, 4), min_size=rows,
                                                      max_size=rows)), dtype=T) / 2)
            y = torch.tensor(draw(st.lists(st.integers(-4, 4), min_size=rows, max_size=rows)),
                             dtype=T) / 2
            obs[i] = (L, R, y)
            m.observe(i, GaussianMessage.observation(L, R, y))
    return m, obs


@given(gaussian_dags())
def test_random_gaussian_dags_equal_conditioning_the_joint(dag):
    m, obs = dag
    filt = backward_filter(m)
    names = list(range(m.graph.number_of_nodes()))
    joint, sl = gaussian_joint(m, names, obs)
    nx_ = sl[names[-1]].stop
    ny = joint.cod.dim - nx_
    marg = posterior_marginals(filt)
    if ny == 0:
        assert filt.log_evidence.item() == 0
        post = joint
    else:
        y = torch.cat([o[2] for o in obs.values()])
        rows = torch.cat([torch.zeros(ny, nx_, dtype=T), torch.eye(ny, dtype=T)], 1)
        post, log_density, _ = joint.condition_evidence(rows, y)
        assert filt.log_evidence.item() == pytest.approx(float(log_density), abs=1e-9, rel=1e-9)
    for v, s in sl.items():
        _close(marg[v].mean, post.mean[s])
        _close(marg[v].cov, post.cov[s, s])
