"""Finite trees and chains: BFFG against brute-force enumeration, exactly with Fractions."""

import itertools
import math
from fractions import Fraction as Fr

import pytest
import torch

from condprob.bffg import FiniteMessage, Model, backward_filter, forward_guide, posterior_marginals
from condprob.bffg.special import hmm_model, hmm_smoother
from condprob.errors import ConditioningError
from condprob.finite import Kernel, State
from condprob.laws.protocol import g_test
from condprob.spaces import FiniteSpace

X = FiniteSpace(["a", "b", "c"], name="X")
Y = FiniteSpace([0, 1], name="Y")
PRIOR = State([Fr(1, 2), Fr(1, 3), Fr(1, 6)], X)
K1 = Kernel([[Fr(1, 2), Fr(1, 2)], [Fr(1, 4), Fr(3, 4)], [Fr(9, 10), Fr(1, 10)]], X, Y)
K2 = Kernel([[Fr(1, 5), Fr(3, 5), Fr(1, 5)], [Fr(1, 3), Fr(1, 3), Fr(1, 3)],
             [Fr(0), Fr(1, 2), Fr(1, 2)]], X, X)
K3 = Kernel([[Fr(2, 3), Fr(1, 3)], [Fr(1, 8), Fr(7, 8)], [Fr(1, 2), Fr(1, 2)]], X, Y)
LIK = {"u": [Fr(1, 3), Fr(2, 3)], "w": [Fr(1, 10), Fr(1, 2), Fr(4, 5)], "z": [Fr(1), Fr(0)]}


def tree(exact=True):
    """r -> u (K1), r -> w (K2), w -> z (K3); likelihoods at u, w, z."""
    conv = (lambda k: k) if exact else (lambda k: k.to_float())
    m = Model("r", conv(PRIOR))
    m.add_edge("r", "u", conv(K1)).add_edge("r", "w", conv(K2)).add_edge("w", "z", conv(K3))
    for v, sp in (("u", Y), ("w", X), ("z", Y)):
        vals = LIK[v] if exact else [float(x) for x in LIK[v]]
        m.observe(v, FiniteMessage.likelihood(vals, sp))
    return m


def brute_force():
    """Joint weights of (r, u, w, z) including the likelihoods."""
    out = {}
    for r, u, w, z in itertools.product(range(3), range(2), range(3), range(2)):
        p = (PRIOR.probs[r] * K1.matrix[r, u] * K2.matrix[r, w] * K3.matrix[w, z]
             * LIK["u"][u] * LIK["w"][w] * LIK["z"][z])
        out[r, u, w, z] = p
    return out


def test_evidence_and_marginals_exact():
    filt = backward_filter(tree(exact=True))
    bf = brute_force()
    ev = sum(bf.values())
    assert filt.evidence == ev
    assert not isinstance(filt.evidence, float | torch.Tensor)  # an exact rational
    marg = posterior_marginals(filt)
    for pos, node in enumerate("ruwz"):
        size = 2 if node in "uz" else 3
        want = [sum(p for k, p in bf.items() if k[pos] == i) / ev for i in range(size)]
        assert list(marg[node].probs) == want


def test_float_backend_agrees():
    filt = backward_filter(tree(exact=False))
    ev = float(sum(brute_force().values()))
    assert filt.log_evidence.item() == pytest.approx(math.log(ev), abs=1e-13)
    assert filt.evidence.item() == pytest.approx(ev, rel=1e-13)


def test_guided_samples_match_posterior_g_test():
    """Joint guided draws of (r, w) against the exact posterior (G-test), with a power check."""
    filt = backward_filter(tree(exact=False))
    n = 20000
    s = forward_guide(filt, n, seed=3)
    assert torch.equal(s.log_weights, torch.zeros(n, dtype=torch.float64))
    bf = brute_force()
    ev = sum(bf.values())
    exact = torch.zeros(3, 3, dtype=torch.float64)
    for (r, _, w, _), p in bf.items():
        exact[r, w] += float(p / ev)
    counts = torch.zeros(3, 3, dtype=torch.float64)
    counts.index_put_((s.values["r"], s.values["w"]), torch.ones(n, dtype=torch.float64),
                      accumulate=True)

    # 8 cells of positive probability (K2(c, a) = 0): 7 degrees of freedom
    assert exact[2, 0] == 0 and counts[2, 0] == 0
    assert g_test(counts, exact) > 1e-3
    wrong = exact.clone()
    wrong[0, 0] += 0.02
    wrong[1, 1] -= 0.02
    assert g_test(counts, wrong) < 1e-3


def test_impossible_observations_raise():
    m = Model("r", PRIOR)
    m.add_edge("r", "w", K2)
    m.observe("w", FiniteMessage.observe("a", X, exact=True))
    m.observe("w", FiniteMessage.observe("b", X, exact=True))
    filt = backward_filter(m)
    assert filt.evidence == 0
    assert filt.log_evidence.item() == -math.inf
    with pytest.raises(ConditioningError):
        forward_guide(filt, 5, seed=0)


def test_impossible_observations_float_give_minus_inf():
    m = Model("r", PRIOR.to_float())
    m.add_edge("r", "w", K2.to_float())
    m.observe("w", FiniteMessage.likelihood([0.0, 0.0, 1.0], X))
    m.observe("w", FiniteMessage.likelihood([1.0, 0.0, 0.0], X))
    filt = backward_filter(m)
    assert filt.log_evidence.item() == -math.inf


def test_wrong_auxiliary_weights_are_unbiased():
    """Backward pass through a wrong kernel K~: weights restore the posterior and the evidence."""
    m = tree(exact=False)
    aux = Kernel([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]], X, X)
    m.graph.edges["r", "w"]["auxiliary"] = aux
    filt = backward_filter(m)
    assert not filt.exact
    n = 20000
    s = forward_guide(filt, n, seed=5)
    bf = brute_force()
    ev = float(sum(bf.values()))
    ratio = ev / math.exp(filt.log_evidence.item())
    z = (torch.exp(s.log_weights).mean() - ratio) / (torch.exp(s.log_weights).std() / n**0.5)
    assert abs(z.item()) < 3
    # posterior P(r = a) by self-normalised weights, within 3 standard errors
    p_true = float(sum(p for k, p in bf.items() if k[0] == 0)) / ev
    ind = (s.values["r"] == 0).double()
    wn = s.weights()
    est = (wn * ind).sum().item()
    se = math.sqrt(((wn**2) * (ind - est) ** 2).sum().item())
    assert abs(est - p_true) < 3 * se + 1e-12
    # power: the unweighted guided frequency is biased (the wrong kernel shows)
    assert abs(ind.mean().item() - p_true) > 3 * math.sqrt(p_true * (1 - p_true) / n)


def test_hmm_bffg_equals_chain_engine_and_exact():
    T_ = Kernel([[Fr(8, 10), Fr(1, 10), Fr(1, 10)], [Fr(1, 5), Fr(3, 5), Fr(1, 5)],
                 [Fr(1, 4), Fr(1, 4), Fr(1, 2)]], X, X)
    obs = [0, 1, 1, 0, 1, 0, 0]
    filt = backward_filter(hmm_model(PRIOR, T_, K1, obs))
    marg = posterior_marginals(filt)
    cm, logz = hmm_smoother(PRIOR.to_float(), T_.to_float(), K1.to_float(), obs)
    assert abs(math.log(filt.evidence) - logz.item()) < 1e-12
    for t in range(len(obs)):
        got = torch.tensor([float(p) for p in marg[t].probs], dtype=torch.float64)
        assert torch.allclose(got, cm[t], atol=1e-12, rtol=0)
    # forward algorithm in exact arithmetic
    alpha = [PRIOR.probs[i] * K1.matrix[i, obs[0]] for i in range(3)]
    for y in obs[1:]:
        alpha = [sum(alpha[i] * T_.matrix[i, j] for i in range(3)) * K1.matrix[j, y]
                 for j in range(3)]
    assert filt.evidence == sum(alpha)
