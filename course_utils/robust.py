"""Adversarial examples: FGSM and PGD, the accuracy under PGD, and PGD as a training loss.

All attacks take float images in [0, 1] (uint8 is converted) of shape (N, C, H, W) and
int64 labels (N,), never change their inputs, and return new float tensors in [0, 1].
They use the model as it is (call `model.eval()` first, as for `cu.predict`) and only
take gradients with respect to the inputs, so the model's own gradients stay untouched.

- `fgsm`: one signed-gradient step of size eps (Goodfellow et al., ICLR 2015).
- `pgd`: projected gradient descent in the L-inf ball, with a random start
  (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018);
  the course's one PGD: the clean-label attack (`poison.pgd_away`) uses it too.
- `pgd_accuracy`: accuracy on PGD examples (robust accuracy in Madry's sense; not the RA of
  backdoor papers, which `metrics` computes with the trigger).
- `pgd_loss`: Madry's inner maximisation as a loss for `train.fit` (adversarial training and
  the PGD-AT repair live in `course_utils.repair`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import as_float
from .train import check_xy, fast_layout, predict_logits


# ---------------------------------------------------------------- input checks
def check_eps(eps, name: str = "eps") -> float:
    """`eps` as a float, or a ValueError unless it is a finite number >= 0."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a number >= 0 (a radius in pixel units, images in [0, 1]), got {eps!r}")
    return float(eps)


def check_steps(steps, name: str = "steps") -> int:
    """`steps` as an int, or a ValueError unless it is an int >= 1."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{name} must be an int >= 1, got {steps!r}")
    return steps


def _check_batch(model: nn.Module, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """(float x, y) after checking the model, the shapes and the int64 labels."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    check_xy(x, y)
    return as_float(x), y


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# ---------------------------------------------------------------- attacks
def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d(cross-entropy summed over the batch)/d(x): shape and dtype of `x`; the model's grads stay untouched."""
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast Gradient Sign Method: x + eps * sign(grad of the loss), clipped to [0, 1].

    x: images (N, C, H, W) in [0, 1]; y: int64 labels (N,); eps >= 0 (L-inf radius).
    Returns new float images with |x_adv - x| <= eps everywhere.
    """
    x, y = _check_batch(model, x, y)
    eps = check_eps(eps)
    x = x.to(_device(model))
    return (x + eps * input_gradient(model, x, y.to(x.device)).sign()).clamp(0, 1).detach()


def pgd_step(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps: float,
             step: float) -> torch.Tensor:
    """One PGD step: ascend the loss by `step` * sign(grad) at x_adv, then project into the
    L-inf ball of radius `eps` around `x` and into the image range [0, 1]. Returns a new tensor."""
    moved = x_adv + step * input_gradient(model, x_adv, y).sign()
    return torch.min(torch.max(moved, x - eps), x + eps).clamp(0, 1).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float, steps: int,
        random_start: bool = True, seed: int = 0) -> torch.Tensor:
    """Projected gradient descent in the L-inf ball (Madry et al., 2018).

    x: images (N, C, H, W) in [0, 1]; y: int64 labels (N,).
    eps: radius (>= 0); step: step size (>= 0, Madry use about 2.5 * eps / steps); steps: >= 1.
    random_start: begin at a uniform random point of the ball (seeded by `seed`), else at x.
    Returns new float images in [0, 1] with |x_adv - x| <= eps.
    """
    x, y = _check_batch(model, x, y)
    eps, step, steps = check_eps(eps), check_eps(step, "step"), check_steps(steps)
    device = _device(model)
    x, y = x.to(device), y.to(device)
    x_adv = x.clone()
    if random_start and eps > 0:
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)).to(device)
        x_adv = (x + (2 * noise - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        x_adv = pgd_step(model, x_adv, x, y, eps, step)
    return x_adv


def pgd_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 0.1, step: float | None = None,
                 steps: int = 10, random_start: bool = True, seed: int = 0, batch_size: int = 500) -> float:
    """Accuracy in [0, 1] on PGD examples of radius `eps` (step defaults to 2.5 * eps / steps).

    Madry et al.'s robust accuracy; named apart from RA (`metrics.robust_accuracy`: triggered
    inputs, true labels). eps=0 gives the clean accuracy. Runs in batches; the model must be in
    eval mode.
    """
    x, y = _check_batch(model, x, y)
    eps, steps = check_eps(eps), check_steps(steps)
    if model.training:
        raise RuntimeError("the model is in training mode; call model.eval() first")
    step = 2.5 * eps / steps if step is None else check_eps(step, "step")
    correct = 0
    with fast_layout(model):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            adv = pgd(model, xb, yb, eps, step, steps, random_start, seed + i) if eps > 0 else xb
            correct += (predict_logits(model, adv).argmax(1) == yb).sum().item()
    return correct / max(len(x), 1)


def pgd_loss(eps: float, step: float, steps: int, random_start: bool = True, seed: int = 0) -> Callable:
    """Madry's inner maximisation as a loss for `train.fit`: cross-entropy on PGD examples of the batch.

    The examples are made with the model in eval mode (BatchNorm statistics fixed), then the
    loss is taken in train mode. Every call draws a new random start (seeded from `seed`).
    """
    calls = itertools.count(seed * 1_000_003)

    def loss(model, xb, yb):
        model.eval()
        adv = pgd(model, xb, yb, eps, step, steps, random_start, seed=next(calls))
        model.train()
        return F.cross_entropy(model(adv), yb)

    return loss
