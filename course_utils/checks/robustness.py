"""Checks for lesson 04: FGSM and one PGD step."""

from __future__ import annotations

import torch
from torch import nn

from ..robust import fgsm, input_gradient, pgd_step
from .core import call_learner, expect_tensor, expect_unchanged, run_check


def tiny_model(seed: int = 0, shape=(1, 6, 6), classes: int = 3) -> nn.Module:
    """A small fixed classifier (conv, ReLU, linear) for hand-sized checks, in eval mode."""
    torch.manual_seed(seed)
    c, h, w = shape
    return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * h * w, classes)).eval()


def _cases(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(5, 1, 6, 6, generator=g)
    x[0, 0, :2] = 0.0  # pixels at the borders of [0, 1], where clipping matters
    x[1, 0, -2:] = 1.0
    y = torch.randint(0, 3, (5,), generator=g)
    return x, y


def _diagnose(got: torch.Tensor, x: torch.Tensor, eps: float, want: torch.Tensor, descent: torch.Tensor) -> None:
    """Name the usual mistakes before the element-wise comparison."""
    if isinstance(got, torch.Tensor) and got.shape == x.shape and got.is_floating_point():
        far = (got - x).abs().max().item()
        if far > eps + 1e-5:
            raise AssertionError(f"some pixels moved {far:.4g} from x, more than eps={eps}: project back into "
                                 "[x - eps, x + eps] (torch.min / torch.max or clamp)")
        if got.min() < -1e-6 or got.max() > 1 + 1e-6:
            raise AssertionError(f"values range over [{got.min():.3g}, {got.max():.3g}]: clip the result to [0, 1]")
        if torch.allclose(got, descent, atol=1e-5) and not torch.allclose(want, descent, atol=1e-5):
            raise AssertionError("the step goes *down* the loss: an attack adds + step * sign(gradient)")


def check_fgsm(fn) -> bool:
    """fn(model, x, y, eps) -> x + eps * sign(grad of the cross-entropy), clipped to [0, 1]."""
    def body():
        model = tiny_model(0)
        x, y = _cases(0)
        for eps in (0.1, 0.25, 0.0):
            x0 = x.clone()
            got = call_learner(fn, model, x, y, eps)
            expect_unchanged(x0, x, "x")
            want = fgsm(model, x0, y, eps)
            descent = (x0 - eps * input_gradient(model, x0, y).sign()).clamp(0, 1)
            _diagnose(got.detach() if isinstance(got, torch.Tensor) else got, x0, eps, want, descent)
            expect_tensor(got.detach() if isinstance(got, torch.Tensor) else got, want, f"FGSM with eps={eps}")
        return "3 radii, clipping at 0 and 1"
    return run_check("fgsm_attack", body)


def check_pgd_step(fn) -> bool:
    """fn(model, x_adv, x, y, eps, step) -> one signed-gradient ascent step, projected to the eps-ball and [0, 1]."""
    def body():
        model = tiny_model(1)
        x, y = _cases(1)
        g = torch.Generator().manual_seed(2)
        cases = [(0.1, 0.03, x.clone()),  # first step, from x
                 (0.1, 0.03, (x + (torch.rand(x.shape, generator=g) * 2 - 1) * 0.1).clamp(0, 1)),  # random start
                 (0.05, 0.2, (x + 0.05 * torch.randn(x.shape, generator=g).sign()).clamp(0, 1))]  # step > eps
        for eps, step, x_adv in cases:
            x0, adv0 = x.clone(), x_adv.clone()
            got = call_learner(fn, model, x_adv, x, y, eps, step)
            expect_unchanged(x0, x, "x")
            expect_unchanged(adv0, x_adv, "x_adv")
            want = pgd_step(model, adv0, x0, y, eps, step)
            descent = pgd_step(model, adv0, x0, y, eps, -step)
            if isinstance(got, torch.Tensor):
                got = got.detach()
            _diagnose(got, x0, eps, want, descent)
            expect_tensor(got, want, f"PGD step with eps={eps}, step={step}")
        return "from x, from a random start, and a step larger than eps"
    return run_check("pgd_step", body)
