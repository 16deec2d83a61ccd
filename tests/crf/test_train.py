"""A CRF and RegCCRF with an encoder, trained on the core's loop."""

import pytest
import torch

import crf
from condprob.train import TensorData, evaluate, fit

LABELS, PATTERN = crf.bio(["a", "b"])


def data(n=24, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, T, 3, generator=g, dtype=torch.float64)
    lengths = torch.randint(2, T + 1, (n,), generator=g)
    mask = torch.arange(T) < lengths[:, None]
    # gold tags: B-a where x0 > 1, continued by I-a while x1 > 0; B-b where x2 > 1
    tags = torch.zeros(n, T, dtype=torch.long)
    for b in range(n):
        prev = "O"
        for t in range(int(lengths[b])):
            if prev.endswith("-a") and x[b, t, 1] > 0:
                lab = "I-a"
            elif x[b, t, 0] > 1:
                lab = "B-a"
            elif x[b, t, 2] > 1:
                lab = "B-b"
            else:
                lab = "O"
            tags[b, t], prev = LABELS.index(lab), lab
    return TensorData(x, tags, mask)


@pytest.mark.parametrize("head", [crf.LinearChainCRF(LABELS), crf.RegCCRF(LABELS, PATTERN)],
                         ids=["crf", "regccrf"])
def test_tagger_trains_on_the_loop_and_objectives_are_sums(head):
    torch.manual_seed(0)
    tagger = crf.Tagger(torch.nn.Linear(3, len(LABELS), dtype=torch.float64), head.double())
    tr, te = data(), data(seed=1)
    x, tags, mask = te[list(range(len(te)))]
    before = head.nll(tagger(x), tags, mask, reduction="token_mean").item()
    assert evaluate(tagger, crf.token_nll, te, batch_size=5) == pytest.approx(before, rel=1e-12)
    assert evaluate(tagger, crf.sentence_nll, te, batch_size=7) == pytest.approx(
        head.nll(tagger(x), tags, mask, reduction="mean").item(), rel=1e-12)
    hist = fit(tagger, crf.token_nll, tr, valid=te, epochs=15, batch_size=8, lr=0.1,
               patience=3, progress=False)
    assert min(hist["valid"]) < 0.5 * before
    pred = tagger.decode(x, mask=mask)
    assert ((pred == tags) | ~mask).float().mean() > 0.8
    if isinstance(head, crf.RegCCRF):
        assert bool(head.accepts(pred.clamp(min=0), mask).all())
