"""Checks for lesson 04: FGSM (warm-up) and the PGD attack loop (core)."""

from __future__ import annotations

import torch
from torch import nn

from ..robust import fgsm, input_gradient, pgd
from .core import call_learner, expect_tensor, expect_unchanged, run_check


def tiny_model(seed: int = 0, shape=(1, 6, 6), classes: int = 3, batchnorm: bool = False) -> nn.Module:
    """A small fixed classifier (conv, [BatchNorm,] ReLU, linear) for hand-sized checks, in eval mode.

    With `batchnorm`, running the model in training mode would both change its outputs (batch
    statistics) and its buffers, which is how the PGD check sees a model left in train mode.
    """
    torch.manual_seed(seed)
    c, h, w = shape
    norm = [nn.BatchNorm2d(4)] if batchnorm else []
    model = nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), *norm, nn.ReLU(), nn.Flatten(), nn.Linear(4 * h * w, classes))
    if batchnorm:  # running statistics unlike a fresh layer's, so train-mode outputs differ from eval-mode ones
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


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
                                 "[x - eps, x + eps] after every step (the ball is around the clean x)")
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


# ---------------------------------------------------------------- PGD (the lesson's core exercise)
def pgd_variant(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float, steps: int,
                seed: int = 0, *, start: str = "uniform", direction: float = 1.0, signed: bool = True,
                project: bool = True, clip: bool = True) -> torch.Tensor:
    """PGD with the usual mistakes as switches, so the check can name the one a learner made.

    With the defaults it is `cu.robust.pgd` (random start drawn as
    `torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))`, scaled to [-eps, eps]);
    the unit tests hold the two equal. start: "uniform" ([-eps, eps]), "positive" ([0, eps]) or
    "none" (start at x); direction -1: descent; signed False: raw gradient steps; project/clip False:
    no projection onto the eps-ball / no clipping to [0, 1] (the start is still clipped).
    """
    x_adv = x.clone()
    if start != "none" and eps > 0:
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
        x_adv = (x + (2 * noise - 1 if start == "uniform" else noise) * eps).clamp(0, 1)
    for _ in range(steps):
        grad = input_gradient(model, x_adv, y)
        x_adv = x_adv + direction * step * (grad.sign() if signed else grad)
        if project:
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
        if clip:
            x_adv = x_adv.clamp(0, 1)
    return x_adv.detach()


_PGD_MISTAKES = {  # switch -> what the learner most likely did
    "start_none": ({"start": "none"}, "there is no random start: begin at a uniform random point of the eps-ball, "
                                      "x + (2 * u - 1) * eps with u drawn by torch.rand from a generator seeded with "
                                      "`seed`, clipped to [0, 1]"),
    "start_positive": ({"start": "positive"}, "the random start lies in [x, x + eps] only: draw u in [0, 1) and map it "
                                              "to [-eps, eps] (2 * u - 1)"),
    "descent": ({"direction": -1.0}, "the steps go *down* the loss: an attack adds + step * sign(gradient)"),
    "unsigned": ({"signed": False}, "the steps use the raw gradient: PGD in the L-inf ball moves every pixel by "
                                    "+/- step, the sign of its gradient"),
}


def _model_unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    """The attack must use the model, never change it (mode, weights, BatchNorm buffers, .grad)."""
    if model.training:
        raise AssertionError("the model was left in training mode: an attack only reads the model (it comes in "
                             "eval mode; do not call model.train())")
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    if changed:
        raise AssertionError(f"the model's weights or buffers changed ({', '.join(changed[:3])}): was it run in "
                             "training mode (BatchNorm updates its running statistics there)?")
    grads = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    if grads:
        raise AssertionError(f"gradients accumulated in the model's parameters ({', '.join(grads[:3])}): take the "
                             "gradient with respect to the images only, torch.autograd.grad(loss, x_adv), not "
                             "loss.backward()")


def check_pgd(fn) -> bool:
    """fn(model, x, y, eps, step, steps, seed) -> PGD examples (Madry et al., 2018), as `cu.robust.pgd`."""
    def body():
        model = tiny_model(3, batchnorm=True)
        x, y = _cases(3)
        # (eps, step, steps, seed): Madry-like; a step larger than eps; one step; another seed; eps = 0
        cases = [(0.1, 0.025, 10, 0), (0.05, 0.2, 3, 1), (0.2, 0.05, 1, 2), (0.1, 0.025, 10, 7), (0.0, 0.01, 3, 0)]
        for eps, step, steps, seed in cases:
            x0, state = x.clone(), {k: v.clone() for k, v in model.state_dict().items()}
            what = f"eps={eps}, step={step}, steps={steps}, seed={seed}"
            got = call_learner(fn, model, x, y, eps, step, steps, seed=seed)  # keyword: as cu.robust.pgd takes it
            expect_unchanged(x0, x, "x")
            _model_unchanged(model, state)
            if isinstance(got, torch.Tensor):
                got = got.detach()
            want = pgd(model, x0, y, eps, step, steps, seed=seed)
            if isinstance(got, torch.Tensor) and got.shape == want.shape and got.is_floating_point():
                _name_pgd_mistake(got, model, x0, y, eps, step, steps, seed, want)
            expect_tensor(got, want, f"PGD with {what}")
        return "5 settings (a step larger than eps, one step, eps = 0), the model left untouched"
    return run_check("pgd_attack", body)


def _name_pgd_mistake(got, model, x, y, eps, step, steps, seed, want) -> None:
    far = (got - x).abs().max().item()
    if far > eps + 1e-5:
        raise AssertionError(f"with eps={eps}, some pixels moved {far:.4g} from the clean x: after every step, project "
                             "back into [x - eps, x + eps] around the *clean* images")
    if got.min() < -1e-6 or got.max() > 1 + 1e-6:
        raise AssertionError(f"with eps={eps}, values range over [{got.min():.3g}, {got.max():.3g}]: clip to [0, 1] "
                             "after every step")
    for kwargs, message in _PGD_MISTAKES.values():
        wrong = pgd_variant(model, x, y, eps, step, steps, seed, **kwargs)
        if torch.allclose(got, wrong, atol=1e-5) and not torch.allclose(want, wrong, atol=1e-5):
            off = (got - want).abs().max().item()
            raise AssertionError(f"with eps={eps}, step={step}, steps={steps}: {message} (largest difference from "
                                 f"the expected images {off:.3g})")

