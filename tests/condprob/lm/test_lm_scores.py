"""Token scores and the analytic Fast-DetectGPT curvature against brute-force enumeration."""

from __future__ import annotations

import itertools

import pytest
import torch

from condprob.errors import ValidationError
from condprob.lm.filters import TopK
from condprob.lm.scores import curvature, token_scores


def test_token_scores(bigram):
    s = token_scores(bigram, [[0, 1, 2]], 1)
    t = bigram.model.transition_matrix()
    torch.testing.assert_close(s.surprisal[0], -t[[0, 1], [1, 2]].log(), atol=1e-15, rtol=0)
    torch.testing.assert_close(s.log_prob, -s.surprisal)
    assert s.entropy.shape == (1, 2)


def test_curvature_equals_enumerated_moments(bigram, make_bigram):
    text = torch.tensor([[0, 3, 1, 2]])
    ref = make_bigram(4, seed=5)
    t, r = bigram.model.transition_matrix(), ref.model.transition_matrix()
    mean = var = 0.0
    for a, b in zip(text[0, :-1].tolist(), text[0, 1:].tolist(), strict=True):
        del b
        m = float((r[a] * t[a].log()).sum())
        mean += m
        var += float((r[a] * t[a].log() ** 2).sum()) - m**2
    logp = float(sum(t[a, b].log() for a, b in zip(text[0, :-1], text[0, 1:], strict=True)))
    want = (logp - mean) / var**0.5
    torch.testing.assert_close(curvature(bigram, text, 1, reference=ref)[0],
                               torch.tensor(want, dtype=torch.float64), atol=1e-12, rtol=0)


def test_curvature_is_standardised_under_the_model(bigram):
    seqs = torch.tensor([[0, *s] for s in itertools.product(range(4), repeat=3)])
    p = bigram.steps(3).log_prob(seqs[:, :1], seqs).exp()
    c = curvature(bigram, seqs, 1)
    # for a bigram the per-position moments depend on the previous token only; the mean of the
    # curvature numerator under the model is zero
    num = c * curvature_scale(bigram, seqs)
    torch.testing.assert_close((p * num).sum(), torch.tensor(0.0, dtype=torch.float64),
                               atol=1e-12, rtol=0)


def curvature_scale(kernel, seqs):
    var = torch.zeros(seqs.shape[0], dtype=torch.float64)
    for t in range(1, seqs.shape[1]):
        lp = kernel.logits(seqs[:, :t])
        q = lp.exp()
        var += (q * lp**2).sum(-1) - (q * lp).sum(-1) ** 2
    return var.sqrt()


def test_curvature_errors(bigram, make_bigram):
    with pytest.raises(ValidationError, match="share the scoring"):
        curvature(bigram, [[0, 1]], 1, reference=make_bigram(5))
    with pytest.raises(ValidationError, match="prefix_len"):
        curvature(bigram, [[0, 1]], 2)
    with pytest.raises(ValidationError, match="zero variance"):
        curvature(bigram.transform(TopK(1)), [[0, 1]], 1)
