"""where_positive: fn on the positive entries, 0 and a zero gradient elsewhere, by hand-computed cases."""

import torch

from retrieval.methods.losses.safe import where_positive


def test_values_and_gradients_match_fn_on_positives_and_vanish_at_zero():
    x = torch.tensor([0.0, 4.0, 0.25, 0.0, 9.0], dtype=torch.float64, requires_grad=True)
    y = where_positive(x, torch.sqrt)
    assert torch.equal(y.detach(), torch.tensor([0.0, 2.0, 0.5, 0.0, 3.0], dtype=torch.float64))
    y.sum().backward()
    # d sqrt(v)/dv = 1 / (2 sqrt(v)) on the positives; 0, not inf or NaN, at the zeros
    assert torch.equal(x.grad, torch.tensor([0.0, 0.25, 1.0, 0.0, 1 / 6], dtype=torch.float64))


def test_a_power_below_one_stays_finite_in_float32():
    x = torch.tensor([0.0, 1e-30, 2.0], requires_grad=True)
    plain = x.pow(0.5)
    plain.sum().backward()
    assert torch.isinf(x.grad[0])  # what the helper is for: the plain power's derivative at 0
    x.grad = None
    y = where_positive(x, lambda v: v.pow(0.5))
    assert torch.equal(y.detach(), plain.detach())
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[0] == 0
