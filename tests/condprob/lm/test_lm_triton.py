"""Triton sampling kernels in interpreter mode against the torch path (laws by G-tests)."""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")
if "condprob.accel.sampling" in sys.modules:
    ts = importlib.reload(sys.modules["condprob.accel.sampling"])
else:
    ts = importlib.import_module("condprob.accel.sampling")

from condprob.errors import ValidationError  # noqa: E402
from condprob.lm.filters import TopK, TopP, filtered_probs  # noqa: E402


def law(logits, t=1.0, top_k=None, top_p=None, min_p=None):
    return filtered_probs(logits.double(), t, top_k, top_p, min_p)


LOGITS = torch.tensor([1.0, 0.2, -0.5, 2.0, 0.0, -1.0, 0.7, float("-inf")])


def test_gumbel_max_kernel_law(gtest):
    draws = ts.gumbel_max_sample(LOGITS.expand(4000, -1), 0.8, seed=1, rows=512, block=4)
    assert gtest(draws, law(LOGITS, 0.8)) > 1e-3
    assert gtest(draws, law(LOGITS, 1.0)) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("kw", [dict(top_p=0.7), dict(top_k=3, t=0.9), dict(min_p=0.2),
                                dict(top_k=5, top_p=0.9, min_p=0.05)])
def test_filtered_kernel_law(kw, gtest):
    t = kw.pop("t", 1.0)
    draws = ts.filtered_sample(LOGITS.expand(3000, -1), t, seed=2, rows=512, block=4, **kw)
    target = law(LOGITS, t, **kw)
    assert gtest(draws, target) > 1e-3
    assert gtest(draws, law(LOGITS, t)) < 1e-6


def test_kernels_agree_with_the_torch_sets_on_random_rows():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 40, generator=g) * 3
    draws = ts.filtered_sample(logits, 1.0, top_k=10, top_p=0.8, seed=3, rows=4, block=16)
    keep = TopK(10).keep(logits) & TopP(0.8).keep(logits)
    assert keep.gather(-1, draws.unsqueeze(-1)).all()
    out = ts.gumbel_max_sample(logits, 1.0, seed=3, rows=4, block=16)
    assert ((out >= 0) & (out < 40)).all()


def test_tile_sizes_must_be_powers_of_two():
    with pytest.raises(ValidationError, match="rows must be a power of two"):
        ts.filtered_sample(LOGITS.expand(2, -1), rows=3)
    with pytest.raises(ValidationError, match="block must be a power of two"):
        ts.gumbel_max_sample(LOGITS.expand(2, -1), block=6)


def test_sample_filtered_dispatches_to_the_kernel(monkeypatch, gtest):
    from condprob.lm import sampling

    monkeypatch.setattr(sampling, "_use_triton", lambda logits: True)
    monkeypatch.setattr(ts, "_launch", _small_tiles(ts._launch))
    g = torch.Generator().manual_seed(5)
    draws = sampling.sample_filtered(LOGITS.expand(2000, -1), 0.9, top_k=4, generator=g)
    assert gtest(draws, law(LOGITS, 0.9, top_k=4)) > 1e-3
    draws = sampling.sample_filtered(LOGITS.expand(2000, -1), 0.9, generator=g)
    assert gtest(draws, law(LOGITS, 0.9)) > 1e-3


def _small_tiles(launch):
    def run(kernel, logits, *args, rows, block):
        return launch(kernel, logits, *args, rows=512, block=4)
    return run


def test_speculative_kernel_law(gtest):
    g = torch.Generator().manual_seed(8)
    p = torch.softmax(torch.randn(2, 6, generator=g, dtype=torch.float64) * 1.5, -1)
    q = torch.softmax(torch.randn(1, 6, generator=g, dtype=torch.float64) * 1.5, -1)
    n = 3000
    drafts = torch.multinomial(q[0], n, replacement=True, generator=g).unsqueeze(-1)
    tokens, counts = ts.speculative_verify(p.expand(n, -1, -1), q.expand(n, -1, -1), drafts,
                                           seed=4, rows=512, block=4)
    assert ((counts == 1) | (counts == 2)).all()
    assert (tokens[:, 1] == -1).eq(counts == 1).all()
    assert (tokens[counts == 2, 0] == drafts[counts == 2, 0]).all()
    assert gtest(tokens[:, 0], p[0]) > 1e-3
    assert gtest(tokens[:, 0], q[0]) < 1e-6
    assert gtest(tokens[counts == 2, 1], p[1]) > 1e-3
