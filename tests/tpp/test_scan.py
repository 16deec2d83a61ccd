import pytest
import torch

from tpp.scan import linear_scan


def loop(a, b):
    x, out = torch.zeros_like(b[:, 0]), []
    for i in range(b.shape[1]):
        x = a[:, i] * x + b[:, i]
        out.append(x)
    return torch.stack(out, 1)


@pytest.mark.parametrize("shape", [(3, 37, 4), (2, 1, 3), (1, 2, 1), (2, 100, 2), (1, 0, 2)])
def test_matches_sequential_recurrence(shape):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(shape, dtype=torch.float64, generator=g)
    b = torch.rand(shape, dtype=torch.float64, generator=g)
    x = linear_scan(a, b)
    assert x.shape == shape
    if shape[1]:
        assert torch.allclose(x, loop(a, b), rtol=1e-14, atol=0)


def test_gradients_and_second_derivatives():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 11, 2, dtype=torch.float64, generator=g).requires_grad_()
    b = torch.rand(2, 11, 2, dtype=torch.float64, generator=g).requires_grad_()
    assert torch.autograd.gradcheck(linear_scan, (a, b))
    assert torch.autograd.gradgradcheck(linear_scan, (a, b))


def test_one_factor_for_all_channels():
    """a of shape (B, L, 1) scans like a repeated over the channels, with its gradient summed
    over them (and second derivatives)."""
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 13, 1, dtype=torch.float64, generator=g).requires_grad_()
    b = torch.rand(2, 13, 3, dtype=torch.float64, generator=g).requires_grad_()
    assert torch.equal(linear_scan(a, b), linear_scan(a.expand(2, 13, 3), b))
    assert torch.autograd.gradcheck(linear_scan, (a, b))
    assert torch.autograd.gradgradcheck(linear_scan, (a, b))


@pytest.mark.parametrize("L", [1, 2, 3, 16, 17, 26])
def test_gradient_is_the_reverse_recurrence(L):
    """Whole chunks only (L a square) and steps outside them, before them in the reverse scan:
    d sum(w x) / d b is the recurrence run backwards, g_i = w_i + a_{i+1} g_{i+1}."""
    g = torch.Generator().manual_seed(L)
    a = torch.rand(2, L, 3, dtype=torch.float64, generator=g)
    b = torch.rand(2, L, 3, dtype=torch.float64, generator=g).requires_grad_()
    w = torch.rand(2, L, 3, dtype=torch.float64, generator=g)
    (grad,) = torch.autograd.grad((linear_scan(a, b) * w).sum(), b)
    a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], 1)
    want = loop(a_next.flip(1), w.flip(1)).flip(1)
    assert torch.allclose(grad, want, rtol=1e-14, atol=0)


def test_inputs_are_not_modified_and_shapes_checked():
    a = torch.full((1, 4, 1), 0.5, dtype=torch.float64)
    b = torch.ones(1, 4, 1, dtype=torch.float64)
    linear_scan(a, b)
    assert (b == 1).all()
    with pytest.raises(ValueError, match="one shape"):
        linear_scan(a, b[:, :2])
