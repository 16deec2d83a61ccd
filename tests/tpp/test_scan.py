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


def test_inputs_are_not_modified_and_shapes_checked():
    a = torch.full((1, 4, 1), 0.5, dtype=torch.float64)
    b = torch.ones(1, 4, 1, dtype=torch.float64)
    linear_scan(a, b)
    assert (b == 1).all()
    with pytest.raises(ValueError, match="one shape"):
        linear_scan(a, b[:, :2])
