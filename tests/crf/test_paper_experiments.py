"""The synthetic experiments of Papay, Klinger and Pado (ICLR 2022): emissions are free
parameters, no transition scores; constrained training (RegCCRF) against constrained decoding
(an unconstrained CRF decoded under the language)."""

from __future__ import annotations

import math

import pytest
import torch

import crf

H34 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))  # 0.5623 nats


def fit(model, data: torch.Tensor, steps: int = 300, lr: float = 0.1) -> torch.nn.Parameter:
    """Train free per-position emissions (T, L) by Adam on the NLL of `data` (N, T)."""
    for p in (model.transitions, model.start, model.end):
        p.data.zero_()
        p.requires_grad_(False)
    model.double()
    em = torch.nn.Parameter(torch.zeros(data.shape[1], model.num_labels, dtype=torch.float64))
    opt = torch.optim.Adam([em], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        model.nll(em.expand(len(data), -1, -1), data).backward()
        opt.step()
    return em.detach()


def constrained(model, labels, pattern):
    reg = crf.RegCCRF(labels, pattern).double()
    reg.load_state_dict(model.state_dict())
    return reg


def test_experiment_a_constrained_training_recovers_the_data():
    labels = ["a", "b", "c", "d"]
    language = "a c | a d | b d"
    data = torch.tensor([[0, 2]] * 4 + [[0, 3]] * 3 + [[1, 3]] * 3)
    seqs = torch.tensor([[0, 2], [0, 3], [1, 3]])
    reg = crf.RegCCRF(labels, language)
    em = fit(reg, data)
    p = reg.log_prob(em.expand(3, -1, -1), seqs).exp()
    torch.testing.assert_close(p, torch.tensor([0.4, 0.3, 0.3], dtype=torch.float64), atol=2e-3,
                               rtol=0)
    assert reg.decode(em[None])[1].tolist() == [[0, 2]]
    assert reg.nll(em.expand(10, -1, -1), data).item() == pytest.approx(
        -(0.4 * math.log(0.4) + 0.6 * math.log(0.3)), abs=1e-3)
    # constrained decoding: the free model learns the per-position frequencies (a .7, c .4);
    # under the language that is .28 : .42 : .18 and the decoded sequence is ad, not ac
    free = crf.LinearChainCRF(labels)
    em_free = fit(free, data)
    dec = constrained(free, labels, language)
    q = dec.log_prob(em_free.expand(3, -1, -1), seqs).exp()
    torch.testing.assert_close(q, torch.tensor([0.28, 0.42, 0.18], dtype=torch.float64) / 0.88,
                               atol=2e-3, rtol=0)
    assert dec.decode(em_free[None])[1].tolist() == [[0, 3]]


@pytest.mark.slow
def test_experiment_b_constrained_training_is_length_independent():
    labels = ["a", "b", "x"]
    language = "(a x)* | (b x)*"
    nll_decoding = []
    for k in (1, 4, 10):
        ax = torch.tensor([0, 2] * k)
        bx = torch.tensor([1, 2] * k)
        data = torch.stack([ax, ax, ax, bx])
        reg = crf.RegCCRF(labels, language)
        em = fit(reg, data, steps=200)
        assert reg.nll(em.expand(4, -1, -1), data).item() == pytest.approx(H34, abs=1e-3)
        free = crf.LinearChainCRF(labels)
        em_free = fit(free, data, steps=200)
        dec = constrained(free, labels, language)
        nll = dec.nll(em_free.expand(4, -1, -1), data).item()
        # the free model's position-wise fit (a: 3/4) gives log(3^k + 1) - (3/4) k log 3
        assert nll == pytest.approx(math.log(3**k + 1) - 0.75 * k * math.log(3), abs=1e-2)
        nll_decoding.append(nll)
    assert nll_decoding[0] == pytest.approx(H34, abs=1e-2)
    assert nll_decoding[0] < nll_decoding[1] < nll_decoding[2] and nll_decoding[2] > 2.5
