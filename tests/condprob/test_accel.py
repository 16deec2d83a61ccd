"""The Triton chain kernels, run by the Triton interpreter on CPU, against the torch path."""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import pytest
import torch

os.environ["TRITON_INTERPRET"] = "1"  # read when triton and the kernels are imported: first
pytest.importorskip("triton")
if "condprob.accel.chain_kernels" in sys.modules:
    importlib.reload(sys.modules["condprob.accel.chain_kernels"])
from condprob import accel  # noqa: E402
from condprob import chain as ch  # noqa: E402
from condprob.accel import chain_kernels as K  # noqa: E402

NEG = float("-inf")
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's log(0) inside the interpreter
        yield


def case(seed=0, batch=3, steps=6, states=5):
    g = torch.Generator().manual_seed(seed)
    unary = torch.randn(batch, steps, states, generator=g)
    trans = torch.randn(states, states, generator=g)
    trans[0, 1] = trans[2, :2] = NEG
    start = torch.randn(batch, states, generator=g)
    end = torch.randn(batch, states, generator=g)
    lengths = torch.tensor([steps, steps - 2, 1][:batch])
    return unary, trans, start, end, lengths


def test_dispatch_is_off_without_a_gpu():
    unary, trans, *_ = case()
    assert not accel.chain_kernels_apply(unary, trans)
    if not torch.cuda.is_available():
        assert not accel.gpu_available()


def test_dispatch_is_off_while_triton_interprets(monkeypatch):
    """A GPU backend with TRITON_INTERPRET=1 (set by this module) still runs the torch path."""
    monkeypatch.setattr(accel, "_gpu_backend", lambda: True)
    assert not accel.gpu_available()


def test_forward_backward_kernels_match_the_torch_path():
    unary, trans, start, end, lengths = case()
    mask = ch.lengths_to_mask(lengths, unary.shape[1])
    logz, alpha = K.forward(unary, trans, start, end, lengths)
    leaves = [x.clone().requires_grad_(True) for x in (unary, trans, start, end)]
    ref = ch.log_partition(ch.Chain(*leaves, mask=mask))
    torch.testing.assert_close(logz, ref.detach(), **TOL)
    ref.sum().backward()
    marg, pair = K.backward(unary, trans, end, lengths, alpha, logz)
    torch.testing.assert_close(marg, leaves[0].grad, **TOL)
    torch.testing.assert_close(pair.sum(0), leaves[1].grad, **TOL)
    # the autograd Function gives the same gradients
    mine = [x.clone().requires_grad_(True) for x in (unary, trans, start, end)]
    out = K.LogPartition.apply(*mine, lengths)
    torch.testing.assert_close(out, ref.detach(), **TOL)
    (out * torch.tensor([1.0, 2.0, -1.0])).sum().backward()
    want = [x.clone().requires_grad_(True) for x in (unary, trans, start, end)]
    (ch.log_partition(ch.Chain(*want, mask=mask)) * torch.tensor([1.0, 2.0, -1.0])).sum().backward()
    for got, exp in zip(mine, want, strict=True):
        torch.testing.assert_close(got.grad, exp.grad, **TOL)


def test_viterbi_kernel_matches_the_torch_path():
    for seed in range(3):
        unary, trans, start, end, lengths = case(seed, states=7)
        mask = ch.lengths_to_mask(lengths, unary.shape[1])
        score, path = K.viterbi(unary, trans, start, end, lengths)
        ref_score, ref_path = ch.viterbi(ch.Chain(unary, trans, start, end, mask))
        torch.testing.assert_close(score, ref_score, **TOL)
        assert torch.equal(path, ref_path)


def test_impossible_chain_gives_minus_inf_and_zero_gradient():
    unary, _, start, end, _ = case(batch=2)
    lengths = torch.tensor([6, 1])
    trans = torch.full((5, 5), NEG)
    logz, alpha = K.forward(unary, trans, start, end, lengths)
    assert logz[0].item() == NEG and torch.isfinite(logz[1])  # length 1 needs no transition
    u = unary.clone().requires_grad_(True)
    K.LogPartition.apply(u, trans, start, end, lengths).sum().backward()
    assert torch.isfinite(u.grad).all() and (u.grad[0] == 0).all()


def test_long_chain_in_float32():
    unary, trans, start, end, _ = case(seed=4, batch=1, steps=64, states=4)
    unary = 5 * unary
    lengths = torch.tensor([64])
    logz, _ = K.forward(unary, trans, start, end, lengths)
    ref = ch.log_partition(ch.Chain(unary.double(), trans.double(), start.double(), end.double()))
    torch.testing.assert_close(logz.double(), ref, rtol=1e-6, atol=0)


COMPILE = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from condprob.accel import chain_kernels as K, sampling as s
f, i, ip = "*fp32", "i32", "*i32"
chain = [(K._forward_kernel, [f, f, f, f, ip, f, f, i, i]),
         (K._backward_kernel, [f, f, f, ip, f, f, f, f, i, i]),
         (K._viterbi_kernel, [f, f, f, f, ip, ip, ip, f, i, i])]
rows = [(s._gumbel_max_kernel, [f, ip, i, i, "fp32", i]),
        (s._filtered_kernel, [f, ip, i, i, "fp32", i, "fp32", "fp32", i]),
        (s._speculative_kernel, [f, f, ip, ip, i, i, i, i])]
jobs = [(fn, types, {"BLOCK": 64}) for fn, types in chain]
jobs += [(fn, types, {"ROWS": 4, "BLOCK": 1024}) for fn, types in rows]
for fn, types, const in jobs:
    names = fn.arg_names
    sig = dict(zip(names, types + ["constexpr"] * len(const), strict=True))
    for cap in (80, 90):
        src = ASTSource(fn=fn, signature=sig, constexprs=const)
        assert "cubin" in triton.compile(src, target=GPUTarget("cuda", cap, 32)).asm
print("compiled")
"""


@pytest.mark.slow
def test_kernels_compile_for_cuda_targets():
    """Beyond the interpreter: every chain and sampling kernel compiles to cubin for sm_80 and
    sm_90 (the compiler rejects code the interpreter accepts; no GPU is needed for this)."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", COMPILE], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-2000:]
