"""Adversarial examples and adversarial training: FGSM, PGD, Madry's PGD training, I-BAU.

All attacks take float images in [0, 1] (uint8 is converted) of shape (N, C, H, W) and
int64 labels (N,), never change their inputs, and return new float tensors in [0, 1].
They use the model as it is (call `model.eval()` first, as for `cu.predict`) and only
take gradients with respect to the inputs, so the model's own gradients stay untouched.

- `fgsm`: one signed-gradient step of size eps (Goodfellow et al., ICLR 2015).
- `pgd`: projected gradient descent in the L-inf ball, with a random start
  (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018).
- `adversarial_training`: Madry's min-max training on PGD examples (in place, any data).
- `pgd_at`: the repair defense built on it, adversarial fine-tuning on a small clean set.
- `universal_perturbation` + `i_bau`: adversarial unlearning of one universal perturbation
  (Zeng et al., "Adversarial Unlearning of Backdoors via Implicit Hypergradient", ICLR 2022).

`train_loop` is the short training loop that every defense here and in `course_utils.repair`
uses (Adam, cosine learning-rate decay, optional random shifts), so they differ only in loss.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import ImageData, as_float
from .metrics import attack_success_rate, clean_accuracy
from .poison import BackdoorAttack
from .runtime import get_profile
from .train import batches, predict_logits


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
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"x and y must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"expected x of shape (N, C, H, W) and y of shape (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if y.dtype != torch.int64:
        raise TypeError(f"labels must be int64 class indices, got {y.dtype}")
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


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 0.1, step: float | None = None,
                    steps: int = 10, random_start: bool = True, seed: int = 0, batch_size: int = 500) -> float:
    """Accuracy in [0, 1] on PGD examples of radius `eps` (step defaults to 2.5 * eps / steps).

    eps=0 gives the clean accuracy. Runs in batches; the model must be in eval mode.
    """
    x, y = _check_batch(model, x, y)
    eps, steps = check_eps(eps), check_steps(steps)
    if model.training:
        raise RuntimeError("the model is in training mode; call model.eval() first")
    step = 2.5 * eps / steps if step is None else check_eps(step, "step")
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        adv = pgd(model, xb, yb, eps, step, steps, random_start, seed + i) if eps > 0 else xb
        correct += (predict_logits(model, adv).argmax(1) == yb).sum().item()
    return correct / max(len(x), 1)


def evaluate(model: nn.Module, data: ImageData, attack: BackdoorAttack, *, robust_eps: float = 0.1,
             robust_n: int = 200, robust_steps: int = 5) -> dict[str, float]:
    """The three numbers of lessons 04-06, each in [0, 1]: {"ca", "asr", "robust"}.

    robust: accuracy under PGD-`robust_steps` (random start) of radius `robust_eps` on the
    first `robust_n` test images (a small sample, to stay fast: about +/- 3 points).
    """
    x, y = data.x_test[:robust_n], data.y_test[:robust_n]
    return {"ca": clean_accuracy(model, data), "asr": attack_success_rate(model, data, attack),
            "robust": robust_accuracy(model, x, y, eps=robust_eps, steps=robust_steps)}


# ---------------------------------------------------------------- training
def random_shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Shift every image by its own random offset of up to `pixels` in x and y (zero fill), batched.

    A cheap augmentation for digits (no flips: a flipped 2 is not a 2).
    """
    n, _, h, w = x.shape
    shifts = torch.randint(-pixels, pixels + 1, (n, 2), generator=generator).float()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shifts[:, 0] / w
    theta[:, 1, 2] = -2 * shifts[:, 1] / h
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def train_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_loss: Callable, *, epochs: int, lr: float,
               batch_size: int = 64, seed: int = 0, shift: int = 0, progress: bool = False,
               desc: str = "training") -> nn.Module:
    """Train `model` in place with Adam and a cosine learning-rate decay; return it in eval mode.

    batch_loss(model, xb, yb) -> scalar loss, called in train mode on float batches in [0, 1].
    shift: random shifts of up to this many pixels as augmentation (0: none).
    """
    x, y = _check_batch(model, x, y)
    epochs = check_steps(epochs, "epochs")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    device = _device(model)
    x, y = x.to(device), y.to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    total = epochs * -(-len(x) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    model.train()
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        for idx in batches(len(x), batch_size, generator=generator):
            xb, yb = x[idx.to(device)], y[idx.to(device)]
            if shift:
                xb = random_shift(xb, generator, shift)
            loss = batch_loss(model, xb, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def pgd_loss(eps: float, step: float, steps: int, random_start: bool = True, seed: int = 0) -> Callable:
    """Madry's inner maximisation as a `batch_loss`: cross-entropy on PGD examples of the batch.

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


def adversarial_training(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 0.2,
                         step: float | None = None, steps: int = 3, epochs: int = 6, lr: float = 2e-3,
                         batch_size: int = 128, seed: int = 0, random_start: bool = True,
                         progress: bool = True) -> nn.Module:
    """PGD adversarial training (Madry et al., ICLR 2018), in place: min over weights of the loss
    on PGD-`steps` examples of radius `eps` (step defaults to 2.5 * eps / steps).

    Use it from scratch on a (possibly poisoned) training set, or to fine-tune. eps=0 is plain
    training with the same loop. Each step costs about (steps + 1) plain steps. Returns the model
    in eval mode; `model.train_seconds` holds the time it took.
    """
    eps, steps = check_eps(eps), check_steps(steps)
    step = 2.5 * eps / steps if step is None else check_eps(step, "step")
    start = time.perf_counter()
    if eps > 0:
        batch_loss = pgd_loss(eps, step, steps, random_start, seed)
    else:
        def batch_loss(model, xb, yb):
            return F.cross_entropy(model(xb), yb)
    train_loop(model, x, y, batch_loss, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
               progress=progress, desc=f"PGD training (eps={eps:g}, {steps} steps)")
    model.train_seconds = time.perf_counter() - start
    return model


MADRY_EPS = {"cpu": 0.3, "gpu": 8 / 255}  # Madry et al.'s radii for MNIST and CIFAR-10


def pgd_at(model: nn.Module, x_clean: torch.Tensor, y_clean: torch.Tensor, *, seed: int = 0, eps: float | None = None,
           step: float | None = None, steps: int = 3, epochs: int = 10, lr: float = 1e-3,
           batch_size: int = 64) -> nn.Module:
    """Repair defense: fine-tune a copy of `model` adversarially (PGD, L-inf) on the defender's clean set.

    eps defaults to Madry et al.'s radius for the profile's data: 0.3 on MNIST, 8/255 on CIFAR-10.
    lr is gentle on purpose (plain fine-tuning at this lr leaves the backdoor in place), so that
    what changes is due to the adversarial examples.

    Madry et al. (2018) applied to fine-tuning; it is *not* designed against backdoors, and
    Weng et al. (NeurIPS 2020, "On the trade-off between adversarial and backdoor robustness")
    found that L-inf adversarial training can leave a patch backdoor in place. The input model
    is left untouched; the new one comes back in eval mode.
    """
    eps = MADRY_EPS[get_profile().name] if eps is None else eps
    repaired = copy.deepcopy(model)
    return adversarial_training(repaired, x_clean, y_clean, eps=eps, step=step, steps=steps, epochs=epochs, lr=lr,
                                batch_size=batch_size, seed=seed, progress=False)


# ---------------------------------------------------------------- I-BAU
def project_l2(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """`delta` scaled down (never up) so that its L2 norm is at most `radius`."""
    norm = delta.norm()
    return delta * min(1.0, radius / (norm.item() + 1e-12))


def universal_perturbation(model: nn.Module, x: torch.Tensor, *, radius: float = 4.0, steps: int = 30,
                           step: float = 0.5, noise: float = 0.3, batch_size: int = 50, seed: int = 0) -> torch.Tensor:
    """I-BAU's inner maximisation: one perturbation delta (1, C, H, W) with ||delta||_2 <= radius that
    changes the model's own predictions on the clean images `x` as much as it can.

    Ascends the cross-entropy between model(clip(x + delta + noise)) and the model's predictions
    on x: normalised gradient steps of length `step` on random minibatches, projected onto the L2
    ball. `noise` (std of Gaussian noise added to the inputs, fresh every step) smooths the loss:
    on the black border of a digit a ReLU network has exactly zero input gradient, so without
    it the search never looks where a corner trigger sits. A backdoor trigger is exactly such a
    perturbation, so this tends to rediscover it. The model is used in eval mode.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    radius, steps, noise = check_eps(radius, "radius"), check_steps(steps), check_eps(noise, "noise")
    device = _device(model)
    x = as_float(x).to(device)
    was_training = model.training
    model.eval()
    own = predict_logits(model, x).argmax(1).to(device)
    generator = torch.Generator().manual_seed(seed)
    delta = torch.zeros((1, *x.shape[1:]), device=device)
    for _ in range(steps):
        idx = torch.randperm(len(x), generator=generator)[:batch_size]
        jitter = noise * torch.randn((len(idx), *x.shape[1:]), generator=generator)
        delta.requires_grad_(True)
        loss = F.cross_entropy(model((x[idx.to(device)] + delta + jitter.to(device)).clamp(0, 1)), own[idx.to(device)])
        (grad,) = torch.autograd.grad(loss, delta)
        delta = project_l2((delta + step * grad / (grad.norm() + 1e-12)).detach(), radius)
    model.train(was_training)
    return delta


def i_bau(model: nn.Module, x_clean: torch.Tensor, y_clean: torch.Tensor, *, seed: int = 0, rounds: int = 5,
          radius: float = 4.0, inner_steps: int = 30, inner_batch: int = 50, noise: float = 0.3, outer_epochs: int = 2,
          lr: float = 1e-3, batch_size: int = 64, shift: int = 2) -> nn.Module:
    """Adversarial unlearning of universal perturbations, I-BAU style (Zeng et al., ICLR 2022).

    For `rounds` rounds (the paper's default is 5): find the universal perturbation that most
    changes the model's outputs on the clean set (`universal_perturbation`, L2 radius `radius`,
    `inner_steps` steps on batches of `inner_batch` clean images),
    then train the model for `outer_epochs` to classify the clean images correctly both as they
    are and with a perturbation added. Every image gets one of the perturbations found so far,
    drawn at random, so a trigger unlearned in one round is not relearned in the next.
    I-BAU solves this min-max with an implicit hypergradient; we alternate the two steps, which
    is simpler and, at this scale, enough. The input model is left untouched; the new one comes
    back in eval mode with the perturbations found in `.perturbations` (rounds, C, H, W).
    """
    rounds = check_steps(rounds, "rounds")
    x_clean, y_clean = _check_batch(model, x_clean, y_clean)
    repaired = copy.deepcopy(model).eval()
    found: list[torch.Tensor] = []
    pick = torch.Generator().manual_seed(seed)

    def batch_loss(m, xb, yb):
        pool = torch.cat(found)
        deltas = pool[torch.randint(len(pool), (len(xb),), generator=pick).to(pool.device)]
        both = torch.cat([xb, (xb + deltas).clamp(0, 1)])
        return F.cross_entropy(m(both), torch.cat([yb, yb]))

    for r in range(rounds):
        found.append(universal_perturbation(repaired, x_clean, radius=radius, steps=inner_steps, noise=noise,
                                            batch_size=inner_batch, seed=seed * 1000 + r))
        train_loop(repaired, x_clean, y_clean, batch_loss, epochs=outer_epochs, lr=lr, batch_size=batch_size,
                   seed=seed * 1000 + r, shift=shift)
    repaired.perturbations = torch.cat(found)
    return repaired.eval()
